package tests

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"backupd/config"
)

// `backupd all --metrics-listen`: after a real backup, /metrics shows it
// on the token-free listener and (with a viewer's token) on the API's,
// beside the real worker polling and the Temporal SDK's own metrics.
func TestMetricsEndToEnd(t *testing.T) {
	mport := freePort(t)
	maddr := "127.0.0.1:" + strconv.Itoa(mport)
	s := startAPIStackWith(t, "sqlite", func(*apiStack) {}, func(c *config.Config) { c.API.MetricsListen = maddr })
	const v1 = "/v1/cloud-integration/backup"
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"configurations": true}, "storage_locations": []string{"local"}})
	if p := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string)); p["status"] != "completed" {
		t.Fatalf("backup: %v", p)
	}

	scrape := func(url, token string) (int, map[string]*dto.MetricFamily) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			io.Copy(io.Discard, res.Body)
			return res.StatusCode, nil
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(res.Body)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		return res.StatusCode, fams
	}
	find := func(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
		t.Helper()
	next:
		for _, m := range fams[name].GetMetric() {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			return m
		}
		t.Fatalf("no %s%v", name, want)
		return nil
	}

	if code, _ := scrape(s.base+"/metrics", ""); code != 401 {
		t.Errorf("/metrics on the API listener without a token: %d", code)
	}
	if code, fams := scrape(s.base+"/metrics", s.tokens["viewer"]); code != 200 || fams["backupd_jobs_finished_total"] == nil {
		t.Errorf("/metrics on the API listener as viewer: %d", code)
	}
	// the job's end is recorded by the catalog activity just before the
	// progress shows it; a scrape a moment later has it
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(10 * time.Second)
	for {
		var code int
		code, fams = scrape("http://"+maddr+"/metrics", "")
		if code != 200 {
			t.Fatalf("/metrics on --metrics-listen without a token: %d", code)
		}
		if fams["backupd_jobs_finished_total"] != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := find(fams, "backupd_jobs_finished_total", map[string]string{"type": "backup", "component": "configurations", "outcome": "succeeded"}).Counter.GetValue(); v != 1 {
		t.Errorf("backups succeeded: %v", v)
	}
	// the manifest's figures add up: new content is at most the content,
	// compression and deduplication each save something or nothing
	src := find(fams, "backupd_backup_source_bytes_total", nil).Counter.GetValue()
	added := find(fams, "backupd_backup_added_bytes_total", nil).Counter.GetValue()
	comp := find(fams, "backupd_backup_compressed_bytes_total", nil).Counter.GetValue()
	stored := find(fams, "backupd_backup_stored_bytes_total", nil).Counter.GetValue()
	saved := find(fams, "backupd_backup_compression_saved_bytes_total", nil).Counter.GetValue()
	if src <= 0 || added > src || comp <= 0 || stored <= 0 || saved != max(src-comp, 0) {
		t.Errorf("bytes: source %v, added %v, compressed %v, stored %v, compression saved %v", src, added, comp, stored, saved)
	}
	if v := find(fams, "backupd_last_success_timestamp_seconds", map[string]string{"component": "configurations", "location": "local"}).Gauge.GetValue(); time.Since(time.Unix(int64(v), 0)) > 10*time.Minute {
		t.Errorf("last success: %v", time.Unix(int64(v), 0))
	}
	if v := find(fams, "backupd_worker_pollers", map[string]string{"host": "apitest", "kind": "activity"}).Gauge.GetValue(); v < 1 {
		t.Errorf("no worker polls: %v", v)
	}
	if v := find(fams, "backupd_temporal_up", nil).Gauge.GetValue(); v != 1 {
		t.Errorf("temporal_up: %v", v)
	}
	if m := find(fams, "backupd_http_request_duration_seconds", map[string]string{"route": "/backup/create", "status": "200"}); m.Histogram.GetSampleCount() != 1 {
		t.Errorf("create latency samples: %v", m.Histogram.GetSampleCount())
	}
	// the SDK's own metrics, from the server's Temporal client
	var sdk []string
	for name := range fams {
		if strings.HasPrefix(name, "temporal_") {
			sdk = append(sdk, name)
		}
	}
	if fams["temporal_request_total"] == nil || len(sdk) < 5 {
		t.Errorf("Temporal SDK metrics: %v", sdk)
	}
	t.Logf("%d families, %d of them the Temporal SDK's", len(fams), len(sdk))
}
