package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"backupd/activities"
	"backupd/config"
	"backupd/models"
	"backupd/models/modelstest"
	"backupd/repository"
)

// metricsServer is an API server over a real catalog and two real local
// repositories ("local", and "vault": offsite, another medium, with a
// quota); Temporal cannot be reached.
func metricsServer(t *testing.T, driver string) (*Server, map[string]string, *activities.Catalog) {
	t.Helper()
	store := modelstest.Open(t, driver)
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	os.WriteFile(pw, []byte("metrics-test-password\n"), 0o600)
	cfg := &config.Config{Host: "h", Primary: "local", PasswordFile: pw,
		Temporal:   config.Temporal{TaskQueue: "backup@h"},
		Components: map[string]config.Component{"data": {Paths: []string{dir}}, "logs": {Paths: []string{dir}}},
		Storage: map[string]config.Location{"local": {URL: filepath.Join(dir, "local")},
			"vault": {URL: filepath.Join(dir, "vault"), Offsite: true, Media: "tape", QuotaBytes: 50 << 20}},
	}
	stores := activities.NewStores(cfg)
	t.Cleanup(stores.Close)
	if err := stores.EnsureInitialized(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := New(&Server{Cfg: cfg, Store: store, Stores: stores, Temporal: unreachableTemporal{}})
	toks := map[string]string{}
	for _, role := range models.Roles {
		p, _, err := store.CreateToken(context.Background(), role+"-user", role, "test", 0)
		if err != nil {
			t.Fatal(err)
		}
		toks[role] = p
	}
	return s, toks, &activities.Catalog{Store: store, OnRecord: s.OnJobRecord}
}

// scrape reads /metrics from the API as the viewer and parses it.
func scrape(t *testing.T, s *Server, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return parseMetrics(t, rec.Body)
}

func parseMetrics(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("the metrics do not parse: %v", err)
	}
	return fams
}

// sample finds the series of name whose labels include want; ok is false
// when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (*dto.Metric, bool) {
	f := fams[name]
	if f == nil {
		return nil, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m, ok := sample(fams, name, labels)
	if !ok {
		t.Fatalf("no %s%v in the scrape", name, labels)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	t.Fatalf("%s%v is not a counter or gauge", name, labels)
	return 0
}

func wantValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	if got := value(t, fams, name, labels); math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// backupRecords are the start and end records a backup job's workflow
// sends the catalog activity, with the manifest's statistics.
func backupRecords(jobID, backupID, schedule, status string, started time.Time, d time.Duration, locs []string, st repository.Stats) (activities.JobRecord, activities.JobRecord) {
	comps := models.Strings{"data", "logs"}
	start := activities.JobRecord{JobID: jobID, Type: "backup", Status: "running", BackupID: backupID, ScheduleID: schedule,
		Started: started, Backup: &models.Backup{ID: backupID, Type: "full", Status: "in_progress", Timestamp: started,
			Components: comps, ScheduleID: schedule, Locations: models.Strings{}}}
	fin := started.Add(d)
	end := start
	end.Status, end.Finished = status, &fin
	res, _ := json.Marshal(map[string]any{"summary": map[string]any{"stats": st}})
	end.Result = res
	end.Backup = &models.Backup{ID: backupID, Type: "full", Status: status, Timestamp: started, Finished: &fin,
		Components: comps, ScheduleID: schedule, Locations: models.Strings(locs), SizeBytes: st.Bytes,
		CompressedBytes: st.StoredAdded, IntegrityCheck: "not_run"}
	return start, end
}

// Counters move when jobs are recorded through the catalog activity (a
// retried record counts once), and the catalog's and the locations'
// state shows in the gauges.
func TestMetricsFollowRecordedJobsAndState(t *testing.T) {
	forDrivers(t, func(t *testing.T, d string) {
		s, toks, cat := metricsServer(t, d)
		ctx := context.Background()
		if err := s.Store.PutSchedule(ctx, &models.Schedule{ID: "nightly", Enabled: true, Frequency: "daily", Time: "01:00",
			Components: models.Strings{"data", "logs"}, Locations: models.Strings{"local", "vault"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Store.PutSchedule(ctx, &models.Schedule{ID: "paused", Enabled: false, Frequency: "hourly"}); err != nil {
			t.Fatal(err)
		}
		before := scrape(t, s, toks["viewer"])
		if _, ok := sample(before, "backupd_jobs_finished_total", nil); ok {
			t.Errorf("jobs counted before any was recorded")
		}

		t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		st := repository.Stats{Files: 3, Bytes: 10_000, BytesRead: 6_000, BytesAdded: 4_200, DataAdded: 4_000, StoredBytes: 3_000, StoredAdded: 1_500}
		start, end := backupRecords("JOB-1", "backup-1", "nightly", "completed", t0, 90*time.Second, []string{"local", "vault"}, st)
		for _, rec := range []activities.JobRecord{start, start, end, end} { // each sent twice: a retried activity
			if err := cat.RecordJob(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
		fstart, fend := backupRecords("JOB-2", "backup-2", "", "failed", t0.Add(time.Minute), 5*time.Second, nil, repository.Stats{})
		fend.Result, fend.Error, fend.ErrorCode = nil, "storage unreachable", "BACKUP_004"
		for _, rec := range []activities.JobRecord{fstart, fend} {
			if err := cat.RecordJob(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
		vdone := t0.Add(10 * time.Minute)
		if err := cat.RecordVerification(ctx, activities.VerifyResult{BackupID: "backup-1", Passed: false, At: vdone}); err != nil {
			t.Fatal(err)
		}

		fams := scrape(t, s, toks["viewer"])
		for _, comp := range []string{"data", "logs"} {
			wantValue(t, fams, "backupd_jobs_started_total", map[string]string{"type": "backup", "schedule": "nightly", "component": comp}, 1)
			wantValue(t, fams, "backupd_jobs_finished_total", map[string]string{"type": "backup", "schedule": "nightly", "component": comp, "outcome": "succeeded"}, 1)
			wantValue(t, fams, "backupd_jobs_finished_total", map[string]string{"type": "backup", "schedule": "", "component": comp, "outcome": "failed"}, 1)
		}
		if m, ok := sample(fams, "backupd_job_duration_seconds", map[string]string{"type": "backup", "outcome": "succeeded"}); !ok ||
			m.Histogram.GetSampleCount() != 1 || m.Histogram.GetSampleSum() != 90 {
			t.Errorf("duration histogram: %v", m)
		}
		sched := map[string]string{"schedule": "nightly"}
		wantValue(t, fams, "backupd_backup_read_bytes_total", sched, 6_000)
		wantValue(t, fams, "backupd_backup_source_bytes_total", sched, 10_000)
		wantValue(t, fams, "backupd_backup_compressed_bytes_total", sched, 3_000)
		wantValue(t, fams, "backupd_backup_added_bytes_total", sched, 4_000)
		wantValue(t, fams, "backupd_backup_stored_bytes_total", sched, 1_500)
		wantValue(t, fams, "backupd_backup_deduplicated_bytes_total", sched, 1_500)
		wantValue(t, fams, "backupd_backup_compression_saved_bytes_total", sched, 7_000)

		// from the catalog
		wantValue(t, fams, "backupd_backups", map[string]string{"status": "completed"}, 1)
		wantValue(t, fams, "backupd_backups", map[string]string{"status": "failed"}, 1)
		wantValue(t, fams, "backupd_backups_logical_bytes", nil, 10_000)
		wantValue(t, fams, "backupd_backups_stored_bytes", nil, 1_500)
		for _, loc := range []string{"local", "vault"} {
			wantValue(t, fams, "backupd_last_success_timestamp_seconds", map[string]string{"component": "data", "schedule": "nightly", "location": loc}, float64(t0.Unix()))
		}
		wantValue(t, fams, "backupd_schedule_interval_seconds", sched, 86400)
		if _, ok := sample(fams, "backupd_schedule_interval_seconds", map[string]string{"schedule": "paused"}); ok {
			t.Errorf("a disabled schedule has an expected interval")
		}
		wantValue(t, fams, "backupd_last_verification_timestamp_seconds", nil, float64(vdone.Unix()))
		wantValue(t, fams, "backupd_last_verification_success", nil, 0)
		// 2 copies on 2 media with 1 offsite: short of 3 copies
		wantValue(t, fams, "backupd_replication_backups_checked", nil, 1)
		wantValue(t, fams, "backupd_replication_backups_short", nil, 1)
		wantValue(t, fams, "backupd_replication_compliant", nil, 0)

		// the locations, measured here on disk
		for _, loc := range []string{"local", "vault"} {
			var size int64
			filepath.WalkDir(s.Cfg.Storage[loc].URL, func(p string, e fs.DirEntry, err error) error {
				if err == nil && e.Type().IsRegular() {
					if i, err := e.Info(); err == nil {
						size += i.Size()
					}
				}
				return nil
			})
			if size == 0 {
				t.Fatalf("location %s holds nothing", loc)
			}
			l := map[string]string{"location": loc}
			wantValue(t, fams, "backupd_storage_up", l, 1)
			wantValue(t, fams, "backupd_storage_repository_bytes", l, float64(size))
			if loc == "vault" {
				wantValue(t, fams, "backupd_storage_quota_bytes", l, 50<<20)
				wantValue(t, fams, "backupd_storage_free_bytes", l, float64(50<<20-size))
				wantValue(t, fams, "backupd_storage_utilization_ratio", l, float64(size)/(50<<20))
			} else {
				if _, ok := sample(fams, "backupd_storage_quota_bytes", l); ok {
					t.Errorf("a quota for a location without one")
				}
				// no quota: the room left is the filesystem's
				fsSize := value(t, fams, "backupd_storage_filesystem_size_bytes", l)
				fsUsed := value(t, fams, "backupd_storage_filesystem_used_bytes", l)
				free := value(t, fams, "backupd_storage_free_bytes", l)
				if fsSize <= 0 || fsUsed < float64(size) || free <= 0 || free > fsSize-fsUsed+1 {
					t.Errorf("filesystem of %s: size %v, used %v, free %v", loc, fsSize, fsUsed, free)
				}
				wantValue(t, fams, "backupd_storage_utilization_ratio", l, fsUsed/fsSize)
			}
		}
		wantValue(t, fams, "backupd_storage_utilization_threshold_ratio", map[string]string{"level": "warning"}, 0.8)
		// Temporal cannot be reached here: no worker polls, and it says so
		wantValue(t, fams, "backupd_temporal_up", nil, 0)
		wantValue(t, fams, "backupd_worker_pollers", map[string]string{"host": "h", "kind": "activity"}, 0)
		wantValue(t, fams, "backupd_websocket_clients", nil, 0)

		// a WebSocket client is counted while it is connected
		connectViewer(t, s, toks["viewer"])
		// the hub registers the client just after the upgrade answers
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if n := value(t, scrape(t, s, toks["viewer"]), "backupd_websocket_clients", nil); n == 1 {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("websocket clients: %v, want 1", n)
			}
		}
	})
}

// The latency of a request is labelled with its route's template, never
// the path it was called with; both prefixes share one series.
func TestMetricsLabelRequestsByRouteTemplate(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	for _, p := range Prefixes {
		call(t, s, "GET", p+"/backup/details/backup-20250101-000000-secret", toks["viewer"], nil)
	}
	call(t, s, "GET", "/cloud-integration/backup/jobs", "", nil)
	fams := scrape(t, s, toks["viewer"])
	m, ok := sample(fams, "backupd_http_request_duration_seconds", map[string]string{"method": "GET", "route": "/backup/details/{backup_id}", "status": "404"})
	if !ok || m.Histogram.GetSampleCount() != 2 {
		t.Errorf("details by template: %v", m)
	}
	if _, ok := sample(fams, "backupd_http_request_duration_seconds", map[string]string{"route": "/backup/jobs", "status": "401"}); !ok {
		t.Errorf("a refused request has no latency sample")
	}
	for _, m := range fams["backupd_http_request_duration_seconds"].Metric {
		for _, l := range m.Label {
			if strings.Contains(l.GetValue(), "backup-2025") || strings.HasPrefix(l.GetValue(), "/cloud-integration") {
				t.Errorf("a label holds a raw path: %s=%s", l.GetName(), l.GetValue())
			}
		}
	}
}

// GET /metrics on the API listener needs a viewer's token and is served
// at the root only; on the metrics listener it needs none, and that
// listener serves nothing else.
func TestMetricsTokenRules(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	for _, tok := range []string{"", "bkd_wrong"} {
		if res, body := call(t, s, "GET", "/metrics", tok, nil); res.StatusCode != http.StatusUnauthorized || body["code"] != "UNAUTHORIZED" {
			t.Errorf("/metrics with token %q: %d %v", tok, res.StatusCode, body)
		}
	}
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+toks["viewer"])
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") || !strings.Contains(rec.Body.String(), "backupd_storage_up") {
		t.Errorf("/metrics as viewer: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, p := range Prefixes {
		if res, _ := call(t, s, "GET", p+"/metrics", toks["viewer"], nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s/metrics: %d", p, res.StatusCode)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeMetrics(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	fams := parseMetrics(t, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || fams["backupd_storage_up"] == nil || fams["go_goroutines"] == nil {
		t.Errorf("metrics listener without a token: %d, %d families", res.StatusCode, len(fams))
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{{"GET", "/cloud-integration/backup/list", 404}, {"GET", "/", 404}, {"POST", "/metrics", 405}} {
		req, _ := http.NewRequest(c.method, base+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+toks["admin"])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("metrics listener: %s %s: %d, want %d", c.method, c.path, res.StatusCode, c.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeMetrics on the way out: %v", err)
	}
}

// The Temporal SDK's metrics land in the same registry: counters with
// _total, timers as histograms in seconds, gauges as they are; a family
// whose tags differ from call to call keeps every series.
func TestTemporalSDKMetricsInTheRegistry(t *testing.T) {
	m := NewMetrics()
	h := m.TemporalHandler().WithTags(map[string]string{"namespace": "default"})
	h.Counter("temporal_request").Inc(2)
	h.WithTags(map[string]string{"operation": "StartWorkflowExecution"}).Counter("temporal_request").Inc(1)
	h.Counter("temporal_request").Inc(-5) // never down
	h.Gauge("temporal_num_pollers").Update(3)
	tm := h.Timer("temporal_request_latency")
	tm.Record(30 * time.Millisecond)
	tm.Record(2 * time.Second)
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	wantValue(t, byName, "temporal_request_total", map[string]string{"namespace": "default", "operation": ""}, 2)
	wantValue(t, byName, "temporal_request_total", map[string]string{"namespace": "default", "operation": "StartWorkflowExecution"}, 1)
	wantValue(t, byName, "temporal_num_pollers", map[string]string{"namespace": "default"}, 3)
	hm, ok := sample(byName, "temporal_request_latency_seconds", nil)
	if !ok || hm.Histogram.GetSampleCount() != 2 || math.Abs(hm.Histogram.GetSampleSum()-2.03) > 1e-9 {
		t.Fatalf("timer: %v", hm)
	}
	for _, b := range hm.Histogram.Bucket {
		want := uint64(0)
		if b.GetUpperBound() >= 0.03 {
			want++
		}
		if b.GetUpperBound() >= 2 {
			want++
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
}

// The catalog's figures are read again after every write through the
// server's Store, and kept between writes (scrapes come every few
// seconds; the whole catalog is read each time it changed).
func TestMetricsCatalogFiguresFollowWrites(t *testing.T) {
	s, toks, _ := metricsServer(t, "sqlite")
	ctx := context.Background()
	now := time.Now().UTC()
	if err := s.Store.PutBackup(ctx, &models.Backup{ID: "backup-a", Type: "full", Status: "completed", Timestamp: now,
		Components: models.Strings{"data"}, Locations: models.Strings{"local"}, SizeBytes: 7}); err != nil {
		t.Fatal(err)
	}
	wantValue(t, scrape(t, s, toks["viewer"]), "backupd_backups", map[string]string{"status": "completed"}, 1)
	// a change behind the Store's back is not seen until a write (or a minute)
	if err := s.Store.DB.Exec("DELETE FROM backups").Error; err != nil {
		t.Fatal(err)
	}
	wantValue(t, scrape(t, s, toks["viewer"]), "backupd_backups", map[string]string{"status": "completed"}, 1)
	if err := s.Store.PutSchedule(ctx, &models.Schedule{ID: "weekly", Enabled: true, Frequency: "weekly", Day: "Sunday", Time: "02:00"}); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, s, toks["viewer"])
	wantValue(t, fams, "backupd_backups", map[string]string{"status": "completed"}, 0)
	wantValue(t, fams, "backupd_schedule_interval_seconds", map[string]string{"schedule": "weekly"}, 7*86400)
	if _, ok := sample(fams, "backupd_last_success_timestamp_seconds", nil); ok {
		t.Errorf("a last success without a backup")
	}
}

// The SDK reports from its pollers' and workers' goroutines while a
// scrape reads (the race detector runs this in make race).
func TestTemporalSDKMetricsConcurrently(t *testing.T) {
	m := NewMetrics()
	h := m.TemporalHandler()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			th := h.WithTags(map[string]string{"task_queue": "q" + strconv.Itoa(i%2)})
			for range 200 {
				th.Counter("temporal_poller_start").Inc(1)
				th.Timer("temporal_workflow_task_execution_latency").Record(time.Millisecond)
				th.Gauge("temporal_num_pollers").Update(float64(i))
			}
		}()
	}
	for range 20 {
		if _, err := m.Registry.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	wantValue(t, byName, "temporal_poller_start_total", map[string]string{"task_queue": "q0"}, 800)
	wantValue(t, byName, "temporal_poller_start_total", map[string]string{"task_queue": "q1"}, 800)
	if hm, _ := sample(byName, "temporal_workflow_task_execution_latency_seconds", map[string]string{"task_queue": "q1"}); hm.Histogram.GetSampleCount() != 800 {
		t.Errorf("timer samples: %d", hm.Histogram.GetSampleCount())
	}
}
