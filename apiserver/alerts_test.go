package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"backupd/activities"
	"backupd/api"
	"backupd/models"
	"backupd/repository"
)

var alertFiles = filepath.Join("..", "deploy", "prometheus")

// metricName finds the metric names in a PromQL expression or a series
// selector: every one of ours starts with backupd_ (or temporal_, the
// SDK's), and no function, keyword or label does.
var metricName = regexp.MustCompile(`\b(?:backupd|temporal)_[a-zA-Z0-9_]*[a-zA-Z0-9]\b`)

// exportedNames are the sample names a scrape holds (a histogram's
// _bucket, _sum and _count besides its family name).
func exportedNames(fams map[string]*dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for name, f := range fams {
		out[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = true
			}
		}
	}
	return out
}

// Every metric the alerting rules (and their promtool unit tests) name is
// one a real server exports, scraped from /metrics after jobs of each
// outcome, a schedule and a verification were recorded; promtool checks
// and unit-tests the rules when it is installed (make tools installs it;
// with BACKUPD_REQUIRE_SERVERS=1 its absence fails the test).
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	s, toks, cat := metricsServer(t, "sqlite")
	ctx := context.Background()
	if err := s.Store.PutSchedule(ctx, &models.Schedule{ID: "nightly", Enabled: true, Frequency: "daily", Time: "01:00",
		Components: models.Strings{"data", "logs"}, Locations: models.Strings{"local"}}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-time.Hour)
	st := repository.Stats{Bytes: 100, BytesRead: 100, BytesAdded: 60, DataAdded: 50, StoredBytes: 40, StoredAdded: 30}
	for i, status := range []string{"completed", "partial", "failed"} {
		start, end := backupRecords("JOB-"+status, "backup-"+status, "nightly", status, t0.Add(time.Duration(i)*time.Minute),
			time.Minute, []string{"local"}, st)
		for _, rec := range []activities.JobRecord{start, end} {
			if err := cat.RecordJob(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cat.RecordVerification(ctx, activities.VerifyResult{BackupID: "backup-completed", Passed: true, At: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// a component with recovery objectives, and a drill with a run
	comp := s.Cfg.Components["data"]
	comp.RTOSeconds, comp.RPOSeconds = 600, 3600
	s.Cfg.Components["data"] = comp
	if err := s.Store.PutDrill(ctx, &models.Drill{ID: "nightly", Enabled: true, Frequency: "daily", Select: "latest"}); err != nil {
		t.Fatal(err)
	}
	rep, _ := json.Marshal(api.DrillReport{RunID: "DRILL-1", DrillID: "nightly", Started: t0.Format(time.RFC3339Nano), Passed: true,
		Backups: []api.DrillBackup{{BackupID: "backup-completed", Components: []api.DrillComponent{{Component: "data", Passed: true, RTOSeconds: 3}}}}})
	if err := s.Store.PutDrillRun(ctx, &models.DrillRun{ID: "DRILL-1", DrillID: "nightly", Passed: true, Started: t0, Body: rep}); err != nil {
		t.Fatal(err)
	}
	exported := exportedNames(scrape(t, s, toks["viewer"]))

	check := func(file string, texts []string) {
		t.Helper()
		n := 0
		for _, text := range texts {
			for _, name := range metricName.FindAllString(text, -1) {
				n++
				if !exported[name] {
					t.Errorf("%s names %s, which the server does not export (expression: %s)", file, name, text)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s names no metric: the file or the pattern is wrong", file)
		}
	}

	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, filepath.Join(alertFiles, "alerts.yml"), &rules)
	var exprs []string
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s: a rule without an alert name or expression: %+v", g.Name, r)
			}
			alerts[r.Alert] = true
			exprs = append(exprs, r.Expr)
		}
	}
	check("alerts.yml", exprs)
	// the list: late on each schedule's own interval, failures,
	// storage thresholds, 3-2-1, no worker for a host, failed verification
	for _, a := range []string{"BackupdScheduledBackupLate", "BackupdJobFailed", "BackupdStorageUsageWarning", "BackupdStorageUsageCritical",
		"BackupdReplicationPolicyNotMet", "BackupdNoWorkerPolling", "BackupdVerificationFailed"} {
		if !alerts[a] {
			t.Errorf("alerts.yml has no rule %s", a)
		}
	}

	var unit struct {
		Tests []struct {
			InputSeries []struct {
				Series string `yaml:"series"`
			} `yaml:"input_series"`
		} `yaml:"tests"`
	}
	readYAML(t, filepath.Join(alertFiles, "alerts_test.yml"), &unit)
	var series []string
	for _, tc := range unit.Tests {
		for _, in := range tc.InputSeries {
			series = append(series, in.Series)
		}
	}
	check("alerts_test.yml", series)

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("BACKUPD_REQUIRE_SERVERS") == "1" {
			t.Fatal("promtool is not on PATH: 'make tools' installs it (Debian package prometheus)")
		}
		t.Skip("promtool is not on PATH (make tools installs it): the rules were not checked by it")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = alertFiles
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
	// the example Prometheus configuration, in full (promtool checks that
	// the token file and the rule files exist): a copy whose token file is
	// one made here
	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(alertFiles, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	const tokenFile = "/etc/prometheus/backupd-token"
	if !strings.Contains(string(cfg), tokenFile) {
		t.Fatalf("prometheus.yml no longer names %s: change this test", tokenFile)
	}
	os.WriteFile(filepath.Join(dir, "token"), []byte(toks["viewer"]), 0o600)
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(strings.ReplaceAll(string(cfg), tokenFile, filepath.Join(dir, "token"))), 0o600)
	ruleText, _ := os.ReadFile(filepath.Join(alertFiles, "alerts.yml"))
	os.WriteFile(filepath.Join(dir, "alerts.yml"), ruleText, 0o600)
	cmd := exec.Command(promtool, "check", "config", "prometheus.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check config prometheus.yml: %v\n%s", err, out)
	} else if !strings.Contains(string(out), fmt.Sprintf("%d rules found", len(exprs))) {
		t.Errorf("promtool check config did not load the rules:\n%s", out)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
