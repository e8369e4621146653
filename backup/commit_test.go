package backup_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"backupd/backup"
	"backupd/repository"
	"backupd/storage"
)

// A backup whose packs vanished before its commit (deleted by a collection
// that did not know of it) must not get a manifest: the commit checks
// that every pack its components depend on is stored.
func TestCommitRefusesAManifestOverMissingPacks(t *testing.T) {
	ctx := context.Background()
	repo, be := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), rnd(9, 300<<10))
	comps := []backup.Component{{Name: "d", Paths: []string{src}}}
	plan, err := backup.Prepare(ctx, repo, backup.Options{Type: backup.Full, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := backup.RunComponent(ctx, repo, plan, comps[0], backup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var packs []string
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { packs = append(packs, oi.Name); return nil })
	if len(packs) == 0 {
		t.Fatal("no packs written")
	}
	for _, p := range packs {
		be.Delete(ctx, p)
	}
	// a fresh session, as the commit activity has
	r2, err := repository.Open(ctx, be, repository.Credentials{Password: []byte("pw")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = backup.Commit(ctx, r2, plan, []repository.ComponentManifest{cm})
	if !errors.Is(err, repository.ErrPacksMissing) {
		t.Fatalf("commit over missing packs: %v", err)
	}
	if _, err := r2.LoadManifest(ctx, plan.ID); err == nil {
		t.Fatal("a manifest was written over missing packs")
	}
	var writers int
	be.List(ctx, "writers/", func(storage.ObjectInfo) error { writers++; return nil })
	if writers != 0 {
		t.Fatalf("%d writer registrations left behind", writers)
	}
	if !strings.Contains(err.Error(), "missing") {
		t.Fatalf("error does not say what is missing: %v", err)
	}
}
