package activities

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"backupd/backup"
	"backupd/models"
	"backupd/models/modelstest"
)

// A backup the catalog never learnt of (made by `backupd job backup` with
// no server, say) is adopted; a catalog entry whose manifest vanished is
// flagged, but only when seen gone twice (a deletion in flight is not).
func TestReconcilerAdoptsAndFlags(t *testing.T) {
	ctx := context.Background()
	s, _ := storesForTest(t)
	defer s.Close()
	store := modelstest.Open(t, "sqlite")
	repo, err := s.Open(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o600)
	comps := []backup.Component{{Name: "data", Paths: []string{src}}}
	m1, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	rc := &Reconciler{Store: store, Stores: s}
	res, err := rc.Run(ctx, []string{"local"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.GetBackup(ctx, m1.ID)
	if err != nil || len(res.Adopted) != 1 || b.Locations[0] != "local" || b.Status != "completed" {
		t.Fatalf("adopted %v, row %+v, %v", res.Adopted, b, err)
	}
	// the manifest goes behind the catalog's back
	if err := repo.DeleteManifest(ctx, m1.ID); err != nil {
		t.Fatal(err)
	}
	res, _ = rc.Run(ctx, []string{"local"})
	if len(res.Missing) != 0 {
		t.Fatalf("flagged at first sight: %v", res.Missing)
	}
	res, _ = rc.Run(ctx, []string{"local"})
	b, _ = store.GetBackup(ctx, m1.ID)
	if len(res.Missing[m1.ID]) != 1 || len(b.MissingFrom) != 1 || b.MissingFrom[0] != "local" {
		t.Fatalf("missing manifest not flagged: %v, row %v", res.Missing, b.MissingFrom)
	}
	// a location the catalog did not list is added
	m2, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	store.PutBackup(ctx, &models.Backup{ID: m2.ID, Type: "full", Status: "completed", Timestamp: m2.Started, Locations: models.Strings{"cloud"}})
	res, _ = rc.Run(ctx, []string{"local"})
	b, _ = store.GetBackup(ctx, m2.ID)
	if len(res.Located) != 1 || len(b.Locations) != 2 {
		t.Fatalf("located %v, row locations %v", res.Located, b.Locations)
	}
}
