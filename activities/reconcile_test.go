package activities

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"backupd/backup"
	"backupd/models"
	"backupd/models/modelstest"
	"backupd/repository"
)

// A backup the catalog never learnt of (made by `backupd repo backup` into
// a location, say) is adopted; a catalog entry whose manifest vanished is
// flagged, but only when seen gone twice (a deletion in flight is not).
func TestReconcilerAdoptsAndFlags(t *testing.T) {
	ctx := context.Background()
	s, store, repo, src := reconcileFixture(t)
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

// A backup that commits while a reconciliation runs (after the run read
// the catalog) must keep its row: adoption never overwrites one. Found by
// review: the row was replaced and its protection lost.
func TestReconcilerNeverOverwritesARowWrittenMeanwhile(t *testing.T) {
	ctx := context.Background()
	s, store, repo, src := reconcileFixture(t)
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: []backup.Component{{Name: "data", Paths: []string{src}}}})
	if err != nil {
		t.Fatal(err)
	}
	rc := &Reconciler{Store: store, Stores: s}
	byID := map[string]*models.Backup{} // what the run read: not this backup yet
	// meanwhile the job's own record lands, protected, copied to two places
	store.PutBackup(ctx, &models.Backup{ID: m.ID, Type: "full", Status: "completed", Timestamp: m.Started, Protected: true,
		JobID: "JOB-1", Locations: models.Strings{"local", "cloud"}})
	res := &ReconcileResult{Missing: map[string][]string{}}
	rc.adopt(ctx, res, repo, "local", m.ID, byID)
	b, _ := store.GetBackup(ctx, m.ID)
	if !b.Protected || b.JobID != "JOB-1" || len(b.Locations) != 2 || len(res.Adopted) != 0 {
		t.Fatalf("the row written meanwhile was overwritten: %+v (adopted %v)", b, res.Adopted)
	}
}

// reconcileFixture: stores with a local location, an empty catalog, the
// local repository and a source directory with one file.
func reconcileFixture(t *testing.T) (*Stores, *models.Store, *repository.Repository, string) {
	s, _ := storesForTest(t)
	t.Cleanup(s.Close)
	repo, err := s.Open(context.Background(), "local")
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o600)
	return s, modelstest.Open(t, "sqlite"), repo, src
}
