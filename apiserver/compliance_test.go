package apiserver

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"backupd/api"
	"backupd/models"
	"backupd/retention"
)

// A simulated month in the catalog: daily backups of data with a gap of
// three days (an RPO of two days missed), a failed backup, drills whose
// RTO is within and then past the objective, a cleanup that removed a
// backup by a retention rule, a protected backup and audited deletes.
// The report flags what an auditor must see, in every format.
func TestComplianceReportOfASimulatedMonth(t *testing.T) {
	s, toks, _ := metricsServer(t, "sqlite")
	ctx := context.Background()
	comp := s.Cfg.Components["data"]
	comp.RPOSeconds, comp.RTOSeconds = 2*86400, 600
	s.Cfg.Components["data"] = comp
	now := time.Now().UTC()
	day := 24 * time.Hour
	if err := s.Store.PutSchedule(ctx, &models.Schedule{ID: "daily", Enabled: true, Frequency: "daily", Time: "01:00",
		Components: models.Strings{"data"}, Locations: models.Strings{"local"}, CreatedAt: now.Add(-60 * day)}); err != nil {
		t.Fatal(err)
	}
	put := func(id string, at time.Time, status string, protected bool) {
		if err := s.Store.PutBackup(ctx, &models.Backup{ID: id, Type: "full", Status: status, Host: "h", Timestamp: at,
			Components: models.Strings{"data"}, Locations: models.Strings{"local", "vault"}, Protected: protected}); err != nil {
			t.Fatal(err)
		}
	}
	// days 31..1 ago, except 20, 19 and 18 ago (a gap of 4 days from day
	// 21 to day 17), and day 10 failed
	for d := 31; d >= 1; d-- {
		switch {
		case d >= 18 && d <= 20:
			continue
		case d == 10:
			put("b-day"+strconv.Itoa(d), now.Add(-time.Duration(d)*day), "failed", false)
		default:
			put("b-day"+strconv.Itoa(d), now.Add(-time.Duration(d)*day), "completed", d == 25)
		}
	}
	run := func(id string, at time.Time, rto float64, passed bool) {
		rep := api.DrillReport{RunID: id, DrillID: "monthly", Started: at.Format(time.RFC3339Nano), Passed: passed,
			Backups: []api.DrillBackup{{BackupID: "b-day2", Components: []api.DrillComponent{{Component: "data", Passed: passed, RTOSeconds: rto}}}}}
		b, _ := json.Marshal(rep)
		if err := s.Store.PutDrillRun(ctx, &models.DrillRun{ID: id, DrillID: "monthly", Passed: passed, Started: at, Body: b}); err != nil {
			t.Fatal(err)
		}
	}
	run("DRILL-1", now.Add(-15*day), 300, true)
	run("DRILL-2", now.Add(-5*day), 900, true)
	run("DRILL-OLD", now.Add(-45*day), 5000, false) // before the period: not counted
	cr, _ := json.Marshal(api.CleanupReport{CleanupID: "CLEANUP-1", Outcome: &api.CleanupOutcome{Removed: map[string][]string{"local": {"b-old"}}},
		Decisions: []retention.Line{{ID: "b-old", Timestamp: "2026-10-01 01:00:00", Decision: "remove", Reason: "older than the full policy keeps"}}})
	if err := s.Store.PutReport(ctx, &models.Report{ID: "CLEANUP-1", Kind: api.JobCleanup, Status: "completed", Body: cr}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []models.AuditEntry{{Time: now.Add(-3 * day), Actor: "alice (tok1)", Action: "backup.delete", Outcome: "success", Count: 1},
		{Time: now.Add(-2 * day), Actor: "bob (tok2)", Action: "backup.delete", Outcome: "denied", Count: 3},
		{Time: now.Add(-2 * day), Actor: "bob (tok2)", Action: "backup.create", Outcome: "success", Count: 1}} {
		if err := s.Store.Audit(ctx, &e); err != nil {
			t.Fatal(err)
		}
	}

	res, body := call(t, s, "GET", "/cloud-integration/backup/reports/compliance?period=30d", toks["admin"], nil)
	if res.StatusCode != 200 {
		t.Fatalf("%d %v", res.StatusCode, body)
	}
	var rep api.ComplianceReport
	raw, _ := json.Marshal(body)
	json.Unmarshal(raw, &rep)
	var data *api.ComponentCompliance
	for i := range rep.Components {
		if rep.Components[i].Component == "data" && rep.Components[i].Host == "h" {
			data = &rep.Components[i]
		}
	}
	if data == nil {
		t.Fatalf("no data component: %+v", rep.Components)
	}
	// in the period: days 29..1 (day 30 is a moment older than the
	// report's start), less the 3 days of the gap: 25 completed, 1 failed
	if data.Completed != 25 || data.Failed != 1 || data.BackupsExpected == nil || *data.BackupsExpected != 30 {
		t.Errorf("counts: %+v expected %v", data, data.BackupsExpected)
	}
	if data.WorstRPOSeconds == nil || *data.WorstRPOSeconds < 4*86400-60 || *data.WorstRPOSeconds > 4*86400+60 || !data.RPOBreached {
		t.Errorf("worst RPO %v (want 4 days), breached %v", data.WorstRPOSeconds, data.RPOBreached)
	}
	if data.Drills != 2 || data.DrillsPassed != 2 || *data.LastRTOSeconds != 900 || *data.WorstRTOSeconds != 900 || !data.RTOBreached {
		t.Errorf("drills: %+v", data)
	}
	if data.Copies321 == "" || rep.Summary.Compliant || rep.Summary.RPOBreaches != 1 || rep.Summary.DrillsRun != 2 {
		t.Errorf("summary: %+v copies %s", rep.Summary, data.Copies321)
	}
	joined := strings.Join(rep.Summary.Findings, "\n")
	for _, want := range []string{"data: the recovery point reached 4 days 0 h, past its objective of 2 days 0 h",
		"data: a restore drill took 15 min 0 s, past its recovery time objective of 10 min 0 s", "data: 1 of 26 backups did not complete",
		"data: 25 completed backups, its schedules expected 30"} {
		if !strings.Contains(joined, want) {
			t.Errorf("finding %q missing from:\n%s", want, joined)
		}
	}
	if len(rep.Retention.Removed) != 1 || rep.Retention.Removed[0].Reason != "older than the full policy keeps" || rep.Retention.Cleanups != 1 {
		t.Errorf("retention: %+v", rep.Retention)
	}
	if len(rep.Protected) != 1 || rep.Protected[0].BackupID != "b-day25" {
		t.Errorf("protected: %+v", rep.Protected)
	}
	if len(rep.Audit) != 1 || rep.Audit[0].Action != "backup.delete" || rep.Audit[0].Calls != 4 || rep.Audit[0].Refused != 3 ||
		strings.Join(rep.Audit[0].Actors, ",") != "alice,bob" {
		t.Errorf("audit: %+v", rep.Audit)
	}
	if rep.Encryption.KeyCreated == nil || rep.Encryption.RotationDue {
		t.Errorf("encryption: %+v", rep.Encryption)
	}

	get := func(format string) (*httptest.ResponseRecorder, []byte) {
		req := httptest.NewRequest("GET", "/cloud-integration/backup/reports/compliance?period=30d&format="+format, nil)
		req.Header.Set("Authorization", "Bearer "+toks["admin"])
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", format, rec.Code, rec.Body)
		}
		return rec, rec.Body.Bytes()
	}
	_, b := get("csv")
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][0] != "host" || rows[1][1] != "data" || rows[1][11] != "true" {
		t.Errorf("csv: %v %q", err, rows)
	}
	rec, b := get("html")
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") || !bytes.Contains(b, []byte("MISSED")) ||
		!bytes.Contains(b, []byte("recovery point objective")) || !bytes.Contains(b, []byte("older than the full policy keeps")) {
		t.Errorf("html: %s", b)
	}
	rec, b = get("pdf")
	if rec.Header().Get("Content-Type") != "application/pdf" || !bytes.HasPrefix(b, []byte("%PDF-")) {
		t.Fatalf("pdf: %q", b[:min(len(b), 20)])
	}
	// the PDF rendered to an image, and its text read back: what an
	// auditor sees
	dir := os.Getenv("BACKUPD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	pdfPath := filepath.Join(dir, "compliance.pdf")
	os.WriteFile(pdfPath, b, 0o644)
	if _, err := exec.LookPath("pdftoppm"); err != nil {
		if os.Getenv("BACKUPD_REQUIRE_SERVERS") == "1" {
			t.Fatal("pdftoppm (poppler-utils) is needed to check the PDF: make tools installs it")
		}
		t.Skip("no pdftoppm: the PDF is not rendered")
	}
	if out, err := exec.Command("pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", pdfPath, filepath.Join(dir, "compliance")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v %s", err, out)
	}
	png, err := os.ReadFile(filepath.Join(dir, "compliance-1.png"))
	if err != nil || len(png) < 5000 {
		t.Fatalf("page 1 as PNG: %v, %d bytes", err, len(png))
	}
	text, err := exec.Command("pdftotext", "-layout", pdfPath, "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Backup compliance report", "Findings", "4 days 0 h", "MISSED", "older than the full policy keeps",
		"backup.delete", "alice, bob", "b-day25"} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("the PDF's text lacks %q:\n%s", want, text)
		}
	}
	// a bad period or format names the fix
	res, body = call(t, s, "GET", "/cloud-integration/backup/reports/compliance?period=31d", toks["admin"], nil)
	if res.StatusCode != 400 || !strings.Contains(body["message"].(string), "24h, 7d, 30d, 90d, 1y") {
		t.Errorf("bad period: %d %v", res.StatusCode, body)
	}
	res, _ = call(t, s, "GET", "/cloud-integration/backup/reports/compliance", toks["operator"], nil)
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("an operator read the compliance report: %d", res.StatusCode)
	}
}

func TestWorstGap(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	for _, c := range []struct {
		times []time.Time
		want  float64 // hours; -1: nil
	}{
		{nil, -1},
		{[]time.Time{h(200)}, -1},               // only after the period
		{[]time.Time{h(10)}, 90},                // first backup in the period: from it to the end
		{[]time.Time{h(-5), h(30), h(40)}, 60},  // the age at 30 h is 35 h, at the end 60 h
		{[]time.Time{h(-50), h(20), h(90)}, 70}, // the age at 20 h is 70 h (from -50 h)
		{[]time.Time{h(-20), h(10)}, 90},
		{[]time.Time{h(-60 * 24)}, 60*24 + 100},
	} {
		got := worstGap(c.times, h(0), h(100))
		if (got == nil) != (c.want < 0) || (got != nil && *got != c.want*3600) {
			t.Errorf("%v: %v, want %v h", c.times, got, c.want)
		}
	}
}
