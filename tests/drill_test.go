package tests

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"backupd/config"
)

// TestRestoreDrills: a drill's schedule fires (trigger), restores the
// newest backup of two components into a scratch directory, compares
// every file, runs a command check, and passes with its RTO and RPO
// measured (one RPO objective missed: a warning). Then a data pack is
// damaged: the next run fails, names the damaged files, alerts on the
// WebSocket and turns the metric to 0.
func TestRestoreDrills(t *testing.T) {
	var hookMu sync.Mutex
	var events []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct{ Event, Message string }
		json.NewDecoder(r.Body).Decode(&p)
		hookMu.Lock()
		events = append(events, p.Event)
		hookMu.Unlock()
		w.WriteHeader(204)
	}))
	defer hook.Close()
	delivered := func(event string) {
		t.Helper()
		waitFor(t, 30*time.Second, "notification "+event, func() bool {
			hookMu.Lock()
			defer hookMu.Unlock()
			return slices.Contains(events, event)
		})
	}
	s := startAPIStackWith(t, "sqlite", func(*apiStack) {}, func(c *config.Config) {
		c.Notifications = config.Notifications{Webhooks: []config.Webhook{{Name: "ops", URL: hook.URL, Secret: "s"}}}
		d := c.Components["data"]
		d.RPOSeconds = 1 // missed as soon as the backup is a second old
		d.RTOSeconds = 3600
		c.Components["data"] = d
		cf := c.Components["configurations"]
		cf.RPOSeconds = 86400
		c.Components["configurations"] = cf
	})
	const v1 = "/v1/cloud-integration/backup"
	ws := s.websocket(t, "?types=drill_result,job_complete", http.Header{"Authorization": {"Bearer " + s.tokens["viewer"]}})
	conf := filepath.Join(filepath.Dir(s.src), "conf")

	b := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"data": true, "configurations": true}, "storage_locations": []string{"local"}})
	if p := s.waitJob(t, v1+"/progress?job_id="+b["job_id"].(string)); p["status"] != "completed" {
		t.Fatalf("backup: %v", p)
	}
	backupID := b["backup_id"].(string)

	// the objectives, and data's RPO missed a second after its backup
	time.Sleep(1100 * time.Millisecond)
	for _, c := range s.must(200, "GET", v1+"/components", "viewer", nil)["components"].([]any) {
		c := c.(map[string]any)
		switch c["component"] {
		case "data":
			if c["rpo_objective_seconds"] != 1.0 || c["rpo_breached"] != true || c["rto_objective_seconds"] != 3600.0 {
				t.Errorf("data's objectives: %v", c)
			}
		case "configurations":
			if c["rpo_objective_seconds"] != 86400.0 || c["rpo_breached"] != false {
				t.Errorf("configurations' objectives: %v", c)
			}
		}
	}

	// mistakes: a check without an absolute program, an unknown
	// component, select backups without ids; an operator cannot define
	// a drill (its checks run commands on the worker)
	drill := map[string]any{"id": "nightly", "frequency": "daily", "time": "04:00", "components": []string{"data", "configurations"},
		"checks": []map[string]any{{"type": "command", "component": "configurations",
			"command": []string{"/usr/bin/grep", "-q", "setting = 1", "." + conf + "/app.conf"}}}}
	bad := map[string]any{"id": "bad", "frequency": "daily", "checks": []map[string]any{{"type": "command", "command": []string{"grep", "x"}}}}
	if st, e := s.do("POST", v1+"/drills", "admin", bad); st != 400 || get(e, "details.field") != "checks[0].command" {
		t.Errorf("relative command: %d %v", st, e)
	}
	bad = map[string]any{"id": "bad", "frequency": "daily", "components": []string{"nope"}}
	if st, e := s.do("POST", v1+"/drills", "admin", bad); st != 400 || !strings.Contains(fmt.Sprint(e), "unknown component") {
		t.Errorf("unknown component: %d %v", st, e)
	}
	bad = map[string]any{"id": "bad", "frequency": "daily", "select": "backups"}
	if st, e := s.do("POST", v1+"/drills", "admin", bad); st != 400 || get(e, "details.field") != "backup_ids" {
		t.Errorf("select backups without ids: %d %v", st, e)
	}
	if st, _ := s.do("POST", v1+"/drills", "operator", drill); st != 403 {
		t.Errorf("an operator defined a drill: %d", st)
	}
	saved := s.must(200, "POST", v1+"/drills", "admin", drill)
	if saved["status"] != "created" || saved["next_run"] == nil {
		t.Fatalf("drill saved: %v", saved)
	}

	// 1. the schedule fires: the run passes (data's backup is more than
	// its RPO of a second old)
	run1 := s.triggerDrill(t, "nightly", "")
	if run1["passed"] != true {
		t.Fatalf("first run failed: %v", run1)
	}
	bk := run1["backups"].([]any)
	if len(bk) != 1 || get(bk[0].(map[string]any), "backup_id") != backupID {
		t.Fatalf("run restored %v, want backup %s", bk, backupID)
	}
	comps := bk[0].(map[string]any)["components"].([]any)
	for _, c := range comps {
		c := c.(map[string]any)
		if c["passed"] != true || c["files_verified"].(float64) < 1 || c["rto_seconds"].(float64) <= 0 {
			t.Errorf("component %v", c)
		}
		if c["component"] == "data" && (c["seconds_per_gb"] == nil || c["rto_objective_seconds"] != 3600.0) {
			t.Errorf("data: per GB and objective: %v", c)
		}
	}
	checks := bk[0].(map[string]any)["checks"].([]any)
	if len(checks) != 1 || checks[0].(map[string]any)["passed"] != true {
		t.Errorf("checks: %v", checks)
	}
	var breached []string
	for _, b := range run1["breaches"].([]any) {
		b := b.(map[string]any)
		breached = append(breached, fmt.Sprint(b["component"], "/", b["objective"]))
	}
	if fmt.Sprint(breached) != "[data/rpo]" {
		t.Errorf("breaches %v, want data's RPO only", breached)
	}
	for _, r := range run1["rpo"].([]any) {
		r := r.(map[string]any)
		if r["newest_backup_id"] != backupID || r["age_seconds"].(float64) <= 0 {
			t.Errorf("rpo %v", r)
		}
	}
	m := ws.waitFor(t, "drill_result (passed)", 30*time.Second, func(m obj) bool {
		return m["type"] == "drill_result" && m["run_id"] == run1["run_id"]
	})
	if m["passed"] != true || m["level"] != "warning" || !strings.Contains(fmt.Sprint(m["message"]), "recovery point objective") {
		t.Errorf("drill_result of a passing run with a missed RPO: %v", m)
	}
	delivered("drill.warning") // passed, an objective missed
	if v := s.metric(t, `backupd_drill_last_passed{drill="nightly"}`); v != "1" {
		t.Errorf("backupd_drill_last_passed after a passed run: %q", v)
	}
	// every component of the backup was restored and compared: the
	// backup counts as verified (and, below, a damaged file found by a
	// drill of part of it counts as a failed verification)
	if ic := backupField(t, s, backupID, "integrity_check"); ic != "passed" {
		t.Errorf("integrity_check after a passed drill of the whole backup: %q", ic)
	}
	// incremental verification: nothing is due now (the backup was just
	// verified); a second backup, never verified, is
	s.must(200, "POST", v1+"/drills", "admin", map[string]any{"id": "verify-new", "frequency": "hourly", "time": "00:15",
		"select": "unverified", "reverify_after_days": 7, "max_backups": 3})
	if r := s.triggerDrill(t, "verify-new", ""); r["passed"] != true || len(r["backups"].([]any)) != 0 {
		t.Errorf("nothing due: %v", r)
	}
	b2 := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"configurations": true}, "storage_locations": []string{"local"}})
	if p := s.waitJob(t, v1+"/progress?job_id="+b2["job_id"].(string)); p["status"] != "completed" {
		t.Fatalf("second backup: %v", p)
	}
	d := s.must(200, "GET", v1+"/drills/verify-new", "operator", nil)
	r := s.triggerDrill(t, "verify-new", fmt.Sprint(get(d, "runs.0.run_id")))
	if r["passed"] != true || len(r["backups"].([]any)) != 1 || get(r, "backups.0.backup_id") != b2["backup_id"] {
		t.Errorf("the never-verified backup: %v", r)
	}
	if ic := backupField(t, s, b2["backup_id"].(string), "integrity_check"); ic != "passed" {
		t.Errorf("integrity_check after incremental verification: %q", ic)
	}
	s.must(200, "DELETE", v1+"/drills/verify-new", "admin", nil)

	// nothing left behind in the scratch directory
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(s.cfgPath), "drills", "*")); len(left) != 0 {
		t.Errorf("the scratch directory holds %v", left)
	}

	// 2. a data pack damaged: the next run fails and names the files
	var pack string
	var largest int64
	filepath.Walk(filepath.Join(filepath.Dir(s.cfgPath), "backups", "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > largest {
			pack, largest = p, fi.Size()
		}
		return nil
	})
	if largest < 64<<10 {
		t.Fatalf("no data pack to damage (largest %d bytes)", largest)
	}
	flipByte(t, pack, largest/2)
	run2 := s.triggerDrill(t, "nightly", fmt.Sprint(run1["run_id"]))
	if run2["passed"] != false {
		t.Fatalf("a run over a damaged pack passed: %v", run2)
	}
	var damaged []string
	for _, c := range run2["backups"].([]any)[0].(map[string]any)["components"].([]any) {
		fs, _ := get(c, "damaged").([]any)
		for _, f := range fs {
			damaged = append(damaged, f.(string))
		}
	}
	if len(damaged) == 0 || !strings.HasPrefix(damaged[0], s.src+"/") {
		t.Fatalf("damaged files not named under %s: %v", s.src, damaged)
	}
	m = ws.waitFor(t, "drill_result (failed)", 30*time.Second, func(m obj) bool {
		return m["type"] == "drill_result" && m["run_id"] == run2["run_id"]
	})
	if n, _ := m["damaged_files"].(float64); m["passed"] != false || m["level"] != "critical" || n < 1 || n != float64(len(damaged)) {
		t.Errorf("drill_result of a failed run: %v", m)
	}
	ws.waitFor(t, "job_complete of the failed drill", 30*time.Second, func(m obj) bool {
		return m["type"] == "job_complete" && m["job_id"] == run2["job_id"] && m["status"] == "failed" && m["operation"] == "drill"
	})
	delivered("drill.failure")
	if ic := backupField(t, s, backupID, "integrity_check"); ic != "failed" {
		t.Errorf("integrity_check after a failed drill: %q", ic)
	}
	if v := s.metric(t, `backupd_drill_last_passed{drill="nightly"}`); v != "0" {
		t.Errorf("backupd_drill_last_passed after a failed run: %q", v)
	}
	jobs := s.must(200, "GET", v1+"/jobs?type=drill", "viewer", nil)
	if n := len(jobs["jobs"].([]any)); n != 4 {
		t.Errorf("jobs of type drill: %d, want 4 (nightly twice, verify-new twice)", n)
	}
	// listed with its newest run; deleted, its runs stay in the catalog
	l := s.must(200, "GET", v1+"/drills", "operator", nil)
	if d := l["drills"].([]any); len(d) != 1 || get(d[0], "last_run.run_id") != run2["run_id"] {
		t.Errorf("drill list: %v", l)
	}
	s.must(200, "DELETE", v1+"/drills/nightly", "admin", nil)
	if st, _ := s.do("GET", v1+"/drills/nightly", "operator", nil); st != 404 {
		t.Errorf("deleted drill: %d", st)
	}
}

// triggerDrill fires a drill's schedule and waits for a run newer than
// after (a run id, or "") to be reported.
func (s *apiStack) triggerDrill(t *testing.T, id, after string) obj {
	t.Helper()
	const v1 = "/v1/cloud-integration/backup"
	s.must(200, "POST", v1+"/drills/"+id+"/trigger", "operator", nil)
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		d := s.must(200, "GET", v1+"/drills/"+id, "operator", nil)
		if runs := d["runs"].([]any); len(runs) > 0 {
			r := runs[0].(map[string]any)
			if r["run_id"] != after {
				return r
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("drill %s: no run reported in 3 minutes", id)
	return nil
}

// metric reads one series' value from GET /metrics ("" when absent).
func (s *apiStack) metric(t *testing.T, series string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+s.tokens["viewer"])
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	if m := re.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// TestDrillDatabaseCheck: a drill loads a component's PostgreSQL dump
// into a scratch database, runs the query against the expected answer,
// and drops the scratch database; a wrong answer fails the drill.
func TestDrillDatabaseCheck(t *testing.T) {
	havePostgres(t)
	b := make([]byte, 4)
	rand.Read(b)
	db := "bkd_drill_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		exec.Command("dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", db).Run()
	})
	if out, err := exec.Command("createdb", "-h", "127.0.0.1", "-U", "postgres", db).CombinedOutput(); err != nil {
		t.Fatalf("createdb: %v %s", err, out)
	}
	psql(t, db, "CREATE TABLE orders (id int PRIMARY KEY, total numeric); INSERT INTO orders VALUES (1, 9.5), (2, 20), (3, 7.25)")
	s := startAPIStackWith(t, "sqlite", func(*apiStack) {}, func(c *config.Config) {
		c.Components["appdb"] = config.Component{Databases: []config.Database{{Name: "app", Kind: "postgresql",
			Host: "127.0.0.1", Port: 5432, User: "postgres", Database: db}}}
	})
	const v1 = "/v1/cloud-integration/backup"
	bk := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"appdb": true}, "storage_locations": []string{"local"}})
	if p := s.waitJob(t, v1+"/progress?job_id="+bk["job_id"].(string)); p["status"] != "completed" {
		t.Fatalf("backup: %v", p)
	}
	// a database check on a component without databases is refused
	if st, e := s.do("POST", v1+"/drills", "admin", map[string]any{"id": "x", "frequency": "daily", "components": []string{"data"},
		"checks": []map[string]any{{"type": "database"}}}); st != 400 || !strings.Contains(fmt.Sprint(e["message"]), "backs up no database") {
		t.Errorf("database check of a files component: %d %v", st, e)
	}
	check := map[string]any{"type": "database", "component": "appdb", "database": "app",
		"query": "SELECT count(*), sum(total) FROM orders", "expect": "3|36.75"}
	s.must(200, "POST", v1+"/drills", "admin", map[string]any{"id": "db", "frequency": "weekly", "day": "Sunday", "time": "02:00",
		"components": []string{"appdb"}, "checks": []any{check}})
	run := s.triggerDrill(t, "db", "")
	chk := get(run, "backups.0.checks.0")
	if run["passed"] != true || get(chk, "passed") != true || get(chk, "output") != "3|36.75" {
		t.Fatalf("database drill: %v", run)
	}
	if n := psql(t, "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'backupd_drill_%'"); n != "0" {
		t.Errorf("%s scratch databases left behind", n)
	}
	// the same backup, a wrong expectation: the drill fails and says why
	check["expect"] = "4|36.75"
	s.must(200, "POST", v1+"/drills", "admin", map[string]any{"id": "db", "checks": []any{check}})
	run2 := s.triggerDrill(t, "db", fmt.Sprint(run["run_id"]))
	if run2["passed"] != false || !strings.Contains(fmt.Sprint(get(run2, "backups.0.checks.0.error")), `expected "4|36.75"`) {
		t.Fatalf("a wrong answer passed: %v", run2)
	}
	if n := psql(t, "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'backupd_drill_%'"); n != "0" {
		t.Errorf("%s scratch databases left behind after a failed check", n)
	}
}

// backupField is one field of a backup as GET /backup/list shows it.
func backupField(t *testing.T, s *apiStack, id, field string) any {
	t.Helper()
	l := s.must(200, "GET", "/v1/cloud-integration/backup/list?limit=100", "viewer", nil)
	for _, b := range l["backups"].([]any) {
		if b := b.(map[string]any); b["id"] == id {
			return b[field]
		}
	}
	t.Fatalf("backup %s not listed", id)
	return nil
}
