package tests

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"backupd/apiserver"
	"backupd/config"
	"backupd/models"
	"backupd/workflows"
)

// Schedules made before user schedules had a namespace of their own
// (Temporal id backupd-<id>) move to backupd-schedule-<id> when the server
// starts; a schedule named "schedule-x", whose old id would be
// backupd-schedule-x, must not take (and delete) schedule "x"'s. Found by
// review.
func TestScheduleIDMigration(t *testing.T) {
	c, addr := devServer(t)
	ctx := context.Background()
	dir := t.TempDir()
	store, err := models.Open("sqlite", filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg := &config.Config{Host: "mig", Temporal: config.Temporal{Address: addr, Namespace: "default", TaskQueue: "backup@mig"},
		Components: map[string]config.Component{"data": {Paths: []string{dir}}},
		Storage:    map[string]config.Location{"local": {URL: filepath.Join(dir, "repo")}}}
	s := apiserver.New(&apiserver.Server{Cfg: cfg, Store: store, Temporal: c})
	sched := c.ScheduleClient()
	mk := func(tid, owner string) {
		_, err := sched.Create(ctx, client.ScheduleOptions{ID: tid, Paused: true,
			Spec: client.ScheduleSpec{Calendars: []client.ScheduleCalendarSpec{{Hour: []client.ScheduleRange{{Start: 2}}}}},
			Action: &client.ScheduleWorkflowAction{ID: "scheduled-backup:" + owner, Workflow: "BackupWorkflow", TaskQueue: "backup@mig",
				Args: []any{workflows.BackupRequest{Type: "full", Components: []string{"data"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sched.GetHandle(context.Background(), tid).Delete(context.Background()) })
	}
	for _, id := range []string{"a", "b", "schedule-b"} {
		if err := store.PutSchedule(ctx, &models.Schedule{ID: id, Enabled: true, Type: "full", Frequency: "daily", Time: "02:00",
			Timezone: "UTC", Components: models.Strings{"data"}, Locations: models.Strings{"local"}}); err != nil {
			t.Fatal(err)
		}
	}
	mk("backupd-a", "a")          // "a" under its old id
	mk("backupd-schedule-b", "b") // "b" already under its new id
	if err := s.MigrateScheduleIDs(ctx); err != nil {
		t.Fatal(err)
	}
	exists := func(tid string) bool {
		_, err := sched.GetHandle(ctx, tid).Describe(ctx)
		return err == nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for !exists("backupd-schedule-a") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !exists("backupd-schedule-a") || exists("backupd-a") {
		t.Fatalf("schedule a did not move: new %v, old %v", exists("backupd-schedule-a"), exists("backupd-a"))
	}
	if !exists("backupd-schedule-b") {
		t.Fatal("schedule b's Temporal schedule was deleted as schedule-b's old one")
	}
	t.Cleanup(func() { sched.GetHandle(context.Background(), "backupd-schedule-a").Delete(context.Background()) })
}
