package tests

// Retention, cleanup and schedules against the real stack: a dry run
// computes what removing the candidates frees, a real cleanup removes
// them, the daily cleanup is a Temporal schedule, an emergency cleanup
// starts when a location runs out of room, and schedules in a zone with
// daylight saving time behave as documented in the README.

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"

	"backupd/config"
)

func TestAPIRetentionCleanup(t *testing.T) {
	s := startAPIStack(t, "sqlite")
	const v1 = "/v1/cloud-integration/backup"
	ws := s.websocket(t, "", http.Header{"Authorization": {"Bearer " + s.tokens["viewer"]}})
	var ids []string
	conf := filepath.Join(filepath.Dir(s.src), "conf", "changing.bin")
	for i := 0; i < 3; i++ {
		// each backup has 256 KiB of its own (incompressible) data
		buf := make([]byte, 256<<10)
		rand.Read(buf)
		os.WriteFile(conf, buf, 0o644)
		cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
			"components": map[string]bool{"configurations": true}, "storage_locations": []string{"local"}})
		s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string))
		ids = append(ids, cr["backup_id"].(string))
	}
	// keep only the newest full backup of each day
	rp := map[string]any{"full_backups": map[string]int{"daily": 1, "weekly": 0, "monthly": 0, "yearly": 0},
		"incremental_backups": map[string]int{"keep_all_for_days": 0}, "differential_backups": map[string]int{"keep_all_for_days": 0},
		"snapshots": map[string]int{"keep_all_for_days": 0}}
	up := s.must(200, "POST", v1+"/retention", "admin", map[string]any{"retention_policies": rp,
		"cleanup_rules": map[string]any{"auto_cleanup": true, "cleanup_schedule": "daily", "cleanup_time": "04:30",
			"minimum_free_space": "1GB", "emergency_cleanup_threshold": "10MB", "cleanup_strategy": "oldest_first"}})
	next, err := time.Parse(time.RFC3339, fmt.Sprint(up["next_cleanup"]))
	if err != nil || next.UTC().Hour() != 4 || next.UTC().Minute() != 30 {
		t.Fatalf("the cleanup schedule: %v", up)
	}
	if code, m := s.do("POST", v1+"/retention", "admin", map[string]any{"cleanup_rules": map[string]any{"cleanup_schedule": "hourly",
		"cleanup_time": "04:30", "cleanup_strategy": "oldest_first", "minimum_free_space": "1GB", "emergency_cleanup_threshold": "1GB"}}); code != 400 ||
		get(m, "details.field") != "cleanup_rules.cleanup_schedule" {
		t.Fatalf("bad cleanup_schedule: %d %v", code, m)
	}
	// dry run: the two older backups would go; the bytes are computed
	dry := s.must(200, "POST", v1+"/cleanup", "admin", map[string]any{"dry_run": true})
	if dry["backups_candidate_for_removal"] != 2.0 {
		t.Fatalf("dry run: %v", dry)
	}
	rep := s.waitJob(t, "/cloud-integration/backup/cleanup/report/"+dry["cleanup_id"].(string))
	decided := map[string]string{}
	for _, d := range rep["decisions"].([]any) {
		d := d.(map[string]any)
		decided[d["backup_id"].(string)] = d["decision"].(string)
	}
	if decided[ids[0]] != "would_remove" || decided[ids[1]] != "would_remove" || decided[ids[2]] != "keep" {
		t.Fatalf("decisions: %v", decided)
	}
	// what removal frees is computed by pack: the second backup's pack is
	// its own, the first's also holds the files all three share, so it
	// stays until repack rewrites it (these packs are younger than the
	// safety window, so not yet: the report says so); nothing was removed
	if b := rep["unreferenced_bytes"].(float64); b < 256<<10 || b > 2*256<<10+200<<10 {
		t.Fatalf("would free %v bytes", rep["unreferenced_bytes"])
	}
	if rp, ok := get(rep, "outcome.gc.local.repack").(map[string]any); !ok || rp["packs"] != 0.0 || rp["qualifying_packs"] != 0.0 {
		t.Fatalf("the cleanup's repack: %v", get(rep, "outcome.gc.local"))
	}
	if l := s.must(200, "GET", v1+"/list", "viewer", nil); get(l, "pagination.total") != 3.0 {
		t.Fatalf("a dry run removed backups: %v", l["pagination"])
	}
	// for real
	real := s.must(200, "POST", v1+"/cleanup", "admin", map[string]any{"dry_run": false, "target_storage": []string{"local"}})
	s.waitJob(t, "/cloud-integration/backup/cleanup/report/"+real["cleanup_id"].(string))
	l := s.must(200, "GET", v1+"/list", "viewer", nil)
	if get(l, "pagination.total") != 1.0 || get(l, "backups.0.id") != ids[2] {
		t.Fatalf("after cleanup: %v", l)
	}
	// the kept backup still restores
	rr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": ids[2], "target_location": t.TempDir() + "/r"})
	if p := s.waitJob(t, v1+"/restore/progress?job_id="+rr["job_id"].(string)); p["status"] != "completed" {
		t.Fatalf("restore after cleanup: %v", p)
	}
	// emergency: a quota that leaves less free room than the threshold
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"configurations": true}, "storage_locations": []string{"local"}})
	s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string))
	s.must(200, "POST", v1+"/storage/update", "admin", map[string]any{"local": map[string]any{"quota": "5MB"}})
	al := ws.waitFor(t, "emergency storage_alert", 10*time.Second, func(m obj) bool {
		return m["type"] == "storage_alert" && get(m, "details.cleanup_id") != nil
	})
	cid := get(al, "details.cleanup_id").(string)
	erep := s.waitJob(t, "/cloud-integration/backup/cleanup/report/"+cid)
	if erep["status"] != "completed" || erep["dry_run"] != false {
		t.Fatalf("emergency cleanup: %v", erep)
	}
	l = s.must(200, "GET", v1+"/list", "viewer", nil)
	if get(l, "pagination.total") != 1.0 || get(l, "backups.0.id") != cr["backup_id"] {
		t.Fatalf("after the emergency cleanup: %v", l)
	}
	js := s.must(200, "GET", v1+"/jobs?type=cleanup", "viewer", nil)
	subtypes := map[string]bool{}
	for _, j := range js["jobs"].([]any) {
		subtypes[j.(map[string]any)["subtype"].(string)] = true
	}
	if !subtypes["emergency"] || !subtypes["manual"] {
		t.Fatalf("cleanup jobs: %v", subtypes)
	}
}

// A daily 02:30 schedule in Europe/Berlin around the 2026 DST changes:
// on spring-forward day (29 March) 02:30 does not exist and the run is
// skipped; on fall-back day (25 October) 02:30 happens twice and the
// run happens once, at the second (standard time) 02:30. Documented in
// the README.
func TestScheduleAcrossDaylightSavingTime(t *testing.T) {
	s := startAPIStack(t, "sqlite")
	const v1 = "/v1/cloud-integration/backup"
	s.must(200, "POST", v1+"/schedules", "operator", map[string]any{"id": "berlin-nightly", "frequency": "daily",
		"time": "02:30", "timezone": "Europe/Berlin", "components": map[string]bool{"configurations": true}})
	c, err := client.Dial(client.Options{HostPort: s.temporal, Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// the schedule in Temporal: the calendar spec and zone the API made
	d, err := c.ScheduleClient().GetHandle(context.Background(), "backupd-schedule-berlin-nightly").Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	spec := d.Schedule.Spec
	if spec.TimeZoneName != "Europe/Berlin" || len(spec.Calendars) != 1 || fmt.Sprint(spec.Calendars[0].Hour) != "[{2 2 1}]" ||
		fmt.Sprint(spec.Calendars[0].Minute) != "[{30 30 1}]" || len(spec.Calendars[0].DayOfWeek) != 1 {
		t.Fatalf("calendar spec in Temporal: zone %q %+v", spec.TimeZoneName, spec.Calendars)
	}
	gs := s.must(200, "GET", v1+"/schedules", "viewer", nil)
	if got := fmt.Sprint(get(gs, "schedules.0.next_execution")); got != d.Info.NextActionTimes[0].UTC().Format(time.RFC3339) {
		t.Fatalf("next_execution %s, Temporal %s", got, d.Info.NextActionTimes[0])
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	times := func(from, to string) []string {
		f, _ := time.ParseInLocation("2006-01-02", from, berlin)
		u, _ := time.ParseInLocation("2006-01-02", to, berlin)
		res, err := c.WorkflowService().ListScheduleMatchingTimes(context.Background(), &workflowservice.ListScheduleMatchingTimesRequest{
			Namespace: "default", ScheduleId: "backupd-schedule-berlin-nightly", StartTime: timestamppb.New(f), EndTime: timestamppb.New(u)})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ts := range res.StartTime {
			out = append(out, ts.AsTime().In(berlin).Format("01-02 15:04 MST"))
		}
		return out
	}
	spring := fmt.Sprint(times("2026-03-28", "2026-03-31"))
	if spring != "[03-28 02:30 CET 03-30 02:30 CEST]" {
		t.Errorf("spring forward: %s", spring)
	}
	fall := fmt.Sprint(times("2026-10-24", "2026-10-27"))
	if fall != "[10-24 02:30 CEST 10-25 02:30 CET 10-26 02:30 CET]" {
		t.Errorf("fall back: %s", fall)
	}
}

// A scheduled run that would overlap the schedule's running backup is
// skipped (overlap policy SKIP), recorded as a skipped job with BACKUP_002
// and announced on the WebSocket.
func TestScheduleOverlapIsSkippedAndRecorded(t *testing.T) {
	s := startAPIStack(t, "sqlite")
	const v1 = "/v1/cloud-integration/backup"
	ws := s.websocket(t, "", http.Header{"Authorization": {"Bearer " + s.tokens["viewer"]}})
	s.must(200, "POST", v1+"/schedules", "operator", map[string]any{"id": "busy", "frequency": "daily", "time": "03:00",
		"components": map[string]bool{"data": true}, "storage_locations": []string{"local"}})
	s.must(200, "POST", v1+"/schedules/busy/trigger", "operator", nil)
	// the scheduled run announces itself; hold it with a pause
	ev := ws.waitFor(t, "backup_started", 20*time.Second, func(m obj) bool {
		return m["type"] == "schedule_event" && m["event"] == "backup_started" && m["schedule_id"] == "busy"
	})
	jobID := ev["job_id"].(string)
	s.must(200, "POST", v1+"/jobs/pause", "operator", map[string]string{"job_id": jobID})
	s.must(200, "POST", v1+"/schedules/busy/trigger", "operator", nil)
	sk := ws.waitFor(t, "backup_skipped", 15*time.Second, func(m obj) bool {
		return m["type"] == "schedule_event" && m["event"] == "backup_skipped" && m["schedule_id"] == "busy"
	})
	if sk["code"] != "BACKUP_002" {
		t.Fatalf("skip event: %v", sk)
	}
	js := s.must(200, "GET", v1+"/jobs?status=skipped", "viewer", nil)
	if len(js["jobs"].([]any)) != 1 || get(js, "jobs.0.error.code") != "BACKUP_002" || get(js, "jobs.0.schedule_id") != "busy" {
		t.Fatalf("skipped job: %v", js)
	}
	gs := s.must(200, "GET", v1+"/schedules", "viewer", nil)
	if get(gs, "schedules.0.skipped_overlap") != 1.0 {
		t.Fatalf("schedule listing: %v", gs)
	}
	s.must(200, "POST", v1+"/jobs/resume", "operator", map[string]string{"job_id": jobID})
	if p := s.waitJob(t, v1+"/progress?job_id="+jobID); p["status"] != "completed" {
		t.Fatalf("the held run: %v", p)
	}
}

// A backup kept in one location falls short of 3-2-1: status and health
// say so, and a repair copies it to the others from the healthy copy.
func TestAPI321ShortfallAndRepair(t *testing.T) {
	s := startAPIStack(t, "sqlite")
	const v1 = "/v1/cloud-integration/backup"
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"configurations": true}, "storage_locations": []string{"local"}})
	s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string))
	id := cr["backup_id"].(string)
	st := s.must(200, "GET", v1+"/status", "viewer", nil)
	if get(st, "replication.short") != 1.0 || get(st, "replication.short_backups.0.backup_id") != id ||
		fmt.Sprint(get(st, "replication.short_backups.0.missing_locations")) != "[cloud remote]" ||
		get(st, "replication.short_backups.0.offsite") != 0.0 {
		t.Fatalf("status replication: %v", st["replication"])
	}
	h := s.must(200, "GET", v1+"/health", "viewer", nil)
	found := false
	for _, a := range h["alerts"].([]any) {
		found = found || a.(map[string]any)["component"] == "replication"
	}
	if !found || h["overall_health"] == "healthy" {
		t.Fatalf("health: %v", h)
	}
	dry := s.must(200, "POST", v1+"/repair", "operator", map[string]any{"dry_run": true})
	if dry["status"] != "dry_run" || dry["backups_to_repair"] != 1.0 {
		t.Fatalf("repair dry run: %v", dry)
	}
	rp := s.must(200, "POST", v1+"/repair", "operator", map[string]any{})
	rep := s.waitJob(t, rp["report_url"].(string))
	if rep["status"] != "completed" || fmt.Sprint(get(rep, "outcome.copied."+id)) != "[cloud remote]" {
		t.Fatalf("repair report: %v", rep)
	}
	d := s.must(200, "GET", v1+"/details/"+id, "viewer", nil)
	if len(get(d, "storage.locations").([]any)) != 3 {
		t.Fatalf("locations after repair: %v", get(d, "storage.locations"))
	}
	// the copies are real: verify the remote one
	vr := s.must(200, "POST", v1+"/verify", "operator", map[string]any{"backup_id": id, "storage_location": "remote"})
	if rep := s.waitJob(t, vr["report_url"].(string)); rep["passed"] != true {
		t.Fatalf("verify of the repaired copy: %v", rep)
	}
	if st := s.must(200, "GET", v1+"/status", "viewer", nil); get(st, "replication.short") != 0.0 {
		t.Fatalf("after repair: %v", st["replication"])
	}
}

func dirBytes(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// A dry run and the real cleanup agree on what goes; the bytes the dry run
// computed are the bytes the storage loses; the kept backup restores.
func TestCleanupDryRunAndRealAgree(t *testing.T) {
	s := startAPIStackWith(t, "sqlite", func(*apiStack) {}, func(c *config.Config) { c.GCSafetyWindow = "0s" })
	const v1 = "/v1/cloud-integration/backup"
	var cfg config.Config
	raw, _ := os.ReadFile(s.cfgPath)
	yaml.Unmarshal(raw, &cfg)
	data := filepath.Join(cfg.Storage["local"].URL, "data")
	conf := filepath.Join(filepath.Dir(s.src), "conf", "changing.bin")
	var contents [][]byte
	var ids []string
	// the incremental's parent is the second full, which goes: the
	// incremental still restores (every manifest lists its whole tree)
	for _, typ := range []string{"full", "full", "incremental", "full"} {
		last := make([]byte, 300<<10)
		rand.Read(last)
		os.WriteFile(conf, last, 0o644)
		contents = append(contents, last)
		cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": typ,
			"components": map[string]bool{"configurations": true}, "storage_locations": []string{"local"}})
		s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string))
		ids = append(ids, cr["backup_id"].(string))
	}
	s.must(200, "POST", v1+"/retention", "admin", map[string]any{"retention_policies": map[string]any{
		"full_backups": map[string]int{"daily": 1}, "incremental_backups": map[string]int{"keep_all_for_days": 7},
		"differential_backups": map[string]int{}, "snapshots": map[string]int{}}})
	decided := func(rep obj) (map[string]bool, float64) {
		out := map[string]bool{}
		for _, d := range rep["decisions"].([]any) {
			d := d.(map[string]any)
			if d["decision"] == "remove" || d["decision"] == "would_remove" {
				out[d["backup_id"].(string)] = true
			}
		}
		return out, rep["unreferenced_bytes"].(float64)
	}
	dry := s.must(200, "POST", v1+"/cleanup", "admin", map[string]any{"dry_run": true, "target_storage": []string{"local"}})
	dryGo, dryBytes := decided(s.waitJob(t, "/cloud-integration/backup/cleanup/report/"+dry["cleanup_id"].(string)))
	before := dirBytes(t, data)
	real := s.must(200, "POST", v1+"/cleanup", "admin", map[string]any{"dry_run": false, "target_storage": []string{"local"}})
	rep := s.waitJob(t, "/cloud-integration/backup/cleanup/report/"+real["cleanup_id"].(string))
	realGo, _ := decided(rep)
	after := dirBytes(t, data)
	if fmt.Sprint(dryGo) != fmt.Sprint(realGo) || len(realGo) != 2 || !realGo[ids[0]] || !realGo[ids[1]] {
		t.Fatalf("dry run removes %v, the cleanup %v", dryGo, realGo)
	}
	freed := rep["space_freed_bytes"].(float64)
	// the first backup's pack also holds files the kept ones share: repack
	// copies those out and the pack goes. The dry run estimates the new
	// packs' size (how the copies fill packs); the cleanup reports what
	// the storage lost, net of them.
	if int64(freed) != before-after || freed < 300<<10 || math.Abs(freed-dryBytes) > 1024 {
		t.Fatalf("dry run computed %v bytes, the cleanup says %v, the storage lost %d", dryBytes, freed, before-after)
	}
	if rp := get(rep, "outcome.gc.local.repack").(map[string]any); rp["packs"] == 0.0 || rp["new_packs"] == 0.0 {
		t.Fatalf("the cleanup did not repack the shared pack: %v", rp)
	}
	l := s.must(200, "GET", v1+"/list", "viewer", nil)
	if get(l, "pagination.total") != 2.0 {
		t.Fatalf("kept: %v", l["backups"])
	}
	for _, i := range []int{2, 3} {
		target := filepath.Join(t.TempDir(), "r")
		rr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": ids[i], "target_location": target})
		if p := s.waitJob(t, v1+"/restore/progress?job_id="+rr["job_id"].(string)); p["status"] != "completed" {
			t.Fatalf("restore of kept backup %d: %v", i, p)
		}
		if b, _ := os.ReadFile(filepath.Join(target, "configurations", conf)); string(b) != string(contents[i]) {
			t.Fatalf("kept backup %d restores wrong content", i)
		}
	}
}

// The usage the API reports is what the storage holds: the repository's
// bytes on disk and in the S3 server's data directory, and the
// filesystem's own figures, within 1%.
func TestStorageUsageMatchesTheStorage(t *testing.T) {
	s := startAPIStack(t, "sqlite")
	const v1 = "/v1/cloud-integration/backup"
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"data": true}, "storage_locations": []string{"local", "cloud"}})
	s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string))
	var cfg config.Config
	raw, _ := os.ReadFile(s.cfgPath)
	yaml.Unmarshal(raw, &cfg)
	near := func(what string, got float64, want int64) {
		if want <= 0 || got < float64(want)*0.99 || got > float64(want)*1.01 {
			t.Errorf("%s: the API says %.0f, the storage %d", what, got, want)
		}
	}
	st := s.must(200, "GET", v1+"/storage", "viewer", nil)
	near("local current_usage", get(st, "storage_config.local.current_usage_bytes").(float64), dirBytes(t, cfg.Storage["local"].URL))
	near("cloud current_usage", get(st, "storage_config.cloud.current_usage_bytes").(float64), dirBytes(t, filepath.Join(s.s3.Dir, "apitest", "cloud")))
	var fs syscall.Statfs_t
	syscall.Statfs(cfg.Storage["local"].URL, &fs)
	status := s.must(200, "GET", v1+"/status", "viewer", nil)
	near("local used (filesystem)", get(status, "storage.local.used_bytes").(float64), int64(fs.Blocks-fs.Bfree)*int64(fs.Frsize))
	near("local total (filesystem)", get(status, "storage.local.total_bytes").(float64), int64(fs.Blocks)*int64(fs.Frsize))
	near("cloud used", get(status, "storage.cloud.used_bytes").(float64), dirBytes(t, filepath.Join(s.s3.Dir, "apitest", "cloud")))
}
