package activities

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"

	"backupd/models"
	"backupd/models/modelstest"
)

// ignore_protected was accepted and ignored: now a protected backup the
// policy lets go is removed only when the admin asks for it.
func TestPlanCleanupIgnoreProtected(t *testing.T) {
	ctx := context.Background()
	store := modelstest.Open(t, "sqlite")
	old := time.Now().Add(-400 * 24 * time.Hour).UTC()
	for i, id := range []string{"backup-old-protected", "backup-old"} {
		b := &models.Backup{ID: id, Type: "snapshot", Status: "completed", Timestamp: old.Add(time.Duration(i) * time.Hour),
			Protected: id == "backup-old-protected", Locations: models.Strings{"local"}}
		if err := store.PutBackup(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	c := &Catalog{Store: store}
	plan := func(ignore bool) map[string]bool {
		out, err := c.PlanCleanup(ctx, PlanInput{Targets: []string{"local"}, Strategy: "oldest_first", IgnoreProtected: ignore})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, id := range out.IDs {
			ids[id] = true
		}
		return ids
	}
	if ids := plan(false); ids["backup-old-protected"] || !ids["backup-old"] {
		t.Fatalf("without ignore_protected: %v", ids)
	}
	if ids := plan(true); !ids["backup-old-protected"] || !ids["backup-old"] {
		t.Fatalf("with ignore_protected: %v", ids)
	}
}

// A finished job's row is the catalog's last write: while its report was
// not yet written, the report endpoint answered "failed" for a cleanup
// that succeeded (seen in CI). A report that cannot be written leaves
// the job open, for the activity's retry.
func TestRecordJobFinishesTheJobLast(t *testing.T) {
	ctx := context.Background()
	store := modelstest.Open(t, "sqlite")
	failReports := true
	fail := func(db *gorm.DB) {
		if failReports && db.Statement.Table == "reports" {
			_ = db.AddError(errors.New("injected: reports table unavailable"))
		}
	}
	if err := store.DB.Callback().Create().Before("gorm:create").Register("test:fail-reports", fail); err != nil {
		t.Fatal(err)
	}
	if err := store.DB.Callback().Update().Before("gorm:update").Register("test:fail-reports", fail); err != nil {
		t.Fatal(err)
	}
	c := &Catalog{Store: store}
	started := time.Now().UTC().Add(-time.Minute)
	if err := c.RecordJob(ctx, JobRecord{JobID: "CLEANUP-JOB-1", Type: "cleanup", RefID: "CLEANUP-1", Status: "in_progress", Started: started}); err != nil {
		t.Fatal(err)
	}
	done := time.Now().UTC()
	final := JobRecord{JobID: "CLEANUP-JOB-1", Type: "cleanup", RefID: "CLEANUP-1", Status: "completed", Started: started,
		Finished: &done, Report: json.RawMessage(`{"cleanup_id":"CLEANUP-1"}`)}
	if err := c.RecordJob(ctx, final); err == nil {
		t.Fatal("the report's write failed, yet RecordJob succeeded")
	}
	if j, err := store.GetJob(ctx, "CLEANUP-JOB-1"); err != nil || j.Finished != nil {
		t.Fatalf("job finished without its report: %+v %v", j, err)
	}
	failReports = false
	if err := c.RecordJob(ctx, final); err != nil {
		t.Fatal(err)
	}
	j, err := store.GetJob(ctx, "CLEANUP-JOB-1")
	if err != nil || j.Finished == nil || j.Status != "completed" {
		t.Fatalf("job after retry: %+v %v", j, err)
	}
	if r, err := store.GetReport(ctx, "CLEANUP-1"); err != nil || r.Status != "completed" {
		t.Fatalf("report after retry: %+v %v", r, err)
	}
}

// An enrolled host's plan names its parent; a parent that is not its own
// backup is not recorded (it would hold another host's backup from
// deletion, or lead a restore astray).
func TestRecordJobKeepsAHostsParentsItsOwn(t *testing.T) {
	ctx := context.Background()
	store := modelstest.Open(t, "sqlite")
	for _, h := range []models.Host{{ID: "host-a", Name: "gw-a", Status: "active"}, {ID: "host-srv", Name: "srv", Local: true, Status: "active"}} {
		if err := store.DB.Create(&h).Error; err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	for _, b := range []models.Backup{{ID: "backup-srv", Host: "srv"}, {ID: "backup-a1", Host: "gw-a"}} {
		b.Type, b.Status, b.Timestamp, b.Locations = "full", "completed", now, models.Strings{"local"}
		if err := store.PutBackup(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	c := &Catalog{Store: store}
	for _, tc := range []struct{ id, parent, want string }{
		{"backup-a2", "backup-a1", "backup-a1"},
		{"backup-a3", "backup-srv", ""},
		{"backup-a4", "backup-nowhere", ""},
	} {
		rec := JobRecord{JobID: "JOB-" + tc.id, Type: "backup", Status: "completed", Started: now, BackupID: tc.id,
			Backup: &models.Backup{ID: tc.id, Host: "gw-a", Type: "incremental", Status: "completed", Timestamp: now,
				ParentBackup: tc.parent, BaseBackup: tc.parent, Locations: models.Strings{"local"}}}
		if err := c.RecordJob(ctx, rec); err != nil {
			t.Fatal(err)
		}
		b, err := store.GetBackup(ctx, tc.id)
		if err != nil || b.ParentBackup != tc.want || b.BaseBackup != tc.want {
			t.Errorf("%s naming %s: parent %q base %q (%v), want %q", tc.id, tc.parent, b.ParentBackup, b.BaseBackup, err, tc.want)
		}
	}
}

// An enrolled host's backups are planned with the others, the policy
// applied to each host's on its own, each named with its host's
// repository; every host's repository is collected where it has one.
func TestPlanCleanupCoversEnrolledHosts(t *testing.T) {
	ctx := context.Background()
	store := modelstest.Open(t, "sqlite")
	gw := &models.Host{ID: models.NewHostID(), Name: "gw-a", Status: models.HostActive, Repos: map[string]string{"local": "k1"}}
	idle := &models.Host{ID: models.NewHostID(), Name: "gw-idle", Status: models.HostActive, Repos: map[string]string{"local": "k2", "cloud": "k3"}}
	for _, h := range []*models.Host{gw, idle, {ID: models.NewHostID(), Name: "server", Local: true}} {
		if err := store.DB.Create(h).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := store.PutSetting(ctx, "retention", map[string]any{"retention_policies": map[string]any{"full_backups": map[string]any{"daily": 1, "weekly": 0, "monthly": 0, "yearly": 0}}}); err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	for i, b := range []struct{ id, host string }{{"backup-s-1", "server"}, {"backup-s-2", "server"}, {"backup-a-1", "gw-a"}, {"backup-a-2", "gw-a"}} {
		at := time.Now().UTC().Add(-time.Duration(3-i%2) * day)
		if err := store.PutBackup(ctx, &models.Backup{ID: b.id, Host: b.host, Type: "full", Status: "completed", Timestamp: at,
			Locations: models.Strings{"local"}}); err != nil {
			t.Fatal(err)
		}
	}
	c := &Catalog{Store: store}
	out, err := c.PlanCleanup(ctx, PlanInput{Targets: []string{"local"}, Strategy: "oldest_first"})
	if err != nil {
		t.Fatal(err)
	}
	// one daily full kept per host: the older of each pair goes
	got := map[string]bool{}
	for _, id := range out.IDs {
		got[id] = true
	}
	if len(got) != 2 || !got["backup-s-1"] || !got["backup-a-1"] {
		t.Fatalf("planned %v (lines %+v)", out.IDs, out.Lines)
	}
	if out.HostDirs["backup-a-1"] != "hosts/"+gw.ID || out.HostDirs["backup-s-1"] != "" {
		t.Fatalf("host dirs %v", out.HostDirs)
	}
	if want := []string{"hosts/" + gw.ID, "hosts/" + idle.ID}; len(out.CollectDirs["local"]) != 2 || len(out.CollectDirs["cloud"]) != 0 {
		t.Fatalf("collect %v, want local: %v", out.CollectDirs, want)
	}
}

// A cleanup brings a host's written bytes down to what its repositories
// hold, only once every location it has one in was measured.
func TestRecordJobLowersHostWrittenOnlyWithEveryLocation(t *testing.T) {
	ctx := context.Background()
	store := modelstest.Open(t, "sqlite")
	h := &models.Host{ID: models.NewHostID(), Name: "gw-q", Status: models.HostActive, Repos: map[string]string{"local": "k1", "cloud": "k2"}, WrittenBytes: 5000}
	if err := store.DB.Create(h).Error; err != nil {
		t.Fatal(err)
	}
	c := &Catalog{Store: store}
	written := func() int64 {
		got, err := store.GetHost(ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.WrittenBytes
	}
	rec := func(locs map[string]int64) {
		if err := c.RecordJob(ctx, JobRecord{JobID: "CLEANUP-JOB-1", Type: "cleanup", Status: "completed",
			HostStored: map[string]map[string]int64{HostRepoDir(h.ID): locs}}); err != nil {
			t.Fatal(err)
		}
	}
	rec(map[string]int64{"local": 100})
	if w := written(); w != 5000 {
		t.Fatalf("lowered from one location of two: %d", w)
	}
	rec(map[string]int64{"local": 100, "cloud": 300})
	if w := written(); w != 300 {
		t.Fatalf("written %d, want the largest location's 300", w)
	}
	rec(map[string]int64{"local": 900, "cloud": 900})
	if w := written(); w != 300 {
		t.Fatalf("a measurement raised written bytes: %d", w)
	}
}
