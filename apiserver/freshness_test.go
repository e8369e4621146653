package apiserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"backupd/models"
)

// Each component is judged against its own tightest schedule: an hourly
// component two hours behind is late while a weekly one three days behind
// is not, and a component no schedule covers is unscheduled, not late.
func TestComponentFreshnessIsAgainstItsOwnSchedule(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	made := now.Add(-30 * 24 * time.Hour)
	scheds := []models.Schedule{
		{ID: "hourly-db", Enabled: true, Frequency: "hourly", Components: models.Strings{"db"}, CreatedAt: made},
		{ID: "weekly-all", Enabled: true, Frequency: "weekly", Components: models.Strings{"db", "data", "new"}, CreatedAt: made},
		{ID: "daily-logs-off", Enabled: false, Frequency: "daily", Components: models.Strings{"logs"}, CreatedAt: made},
		{ID: "daily-fresh", Enabled: true, Frequency: "daily", Components: models.Strings{"fresh"}, CreatedAt: now.Add(-time.Hour)},
	}
	b := func(id string, ago time.Duration) *models.Backup {
		return &models.Backup{ID: id, Timestamp: now.Add(-ago), Locations: models.Strings{"local", "cloud"}}
	}
	newest := map[string]*models.Backup{"db": b("b1", 2*time.Hour), "data": b("b2", 72*time.Hour), "logs": b("b3", 400*time.Hour)}
	got := freshness([]string{"data", "db", "fresh", "logs", "new"}, newest, scheds, now)
	want := map[string]string{"data": "ok", "db": "late", "fresh": "waiting", "logs": "unscheduled", "new": "late"}
	for _, f := range got {
		if f.State != want[f.Component] {
			t.Errorf("%s: %s (%s), want %s", f.Component, f.State, f.Message, want[f.Component])
		}
	}
	db := got[1]
	if *db.ExpectedIntervalSeconds != 3600 || strings.Join(db.Schedules, ",") != "hourly-db,weekly-all" || db.LastBackupID != "b1" ||
		*db.AgeSeconds != 7200 || strings.Join(db.Locations, ",") != "local,cloud" || !strings.Contains(db.Message, "every 1h") {
		t.Errorf("db: %+v", db)
	}
	if got[3].ExpectedIntervalSeconds != nil || got[4].LastSuccess != nil || !strings.Contains(got[4].Message, "never backed up") {
		t.Errorf("logs/new: %+v %+v", got[3], got[4])
	}
}

func TestComponentsEndpointListsEveryConfiguredComponent(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	ctx := context.Background()
	if err := s.Store.PutBackup(ctx, &models.Backup{ID: "backup-1", Type: "full", Status: "completed", Timestamp: time.Now().Add(-time.Minute),
		Components: models.Strings{"data"}, Locations: models.Strings{"local"}}); err != nil {
		t.Fatal(err)
	}
	res, out := call(t, s, "GET", "/cloud-integration/backup/components", toks["viewer"], nil)
	if res.StatusCode != 200 || get(out, "components.0.component") != "data" || get(out, "components.0.last_backup_id") != "backup-1" ||
		get(out, "components.0.state") != "unscheduled" || get(out, "components.1.component") != "logs" || get(out, "components.1.last_success") != nil {
		t.Fatalf("%d %v", res.StatusCode, out)
	}
}
