package activities

import (
	"context"
	"testing"
	"time"

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
