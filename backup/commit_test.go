package backup_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupd/backup"
	"backupd/codes"
	"backupd/repository"
	"backupd/storage"
	"backupd/storage/fault"
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
	// every registration the backup made is ended (kept a while for
	// collections that ran meanwhile), none left open
	be.List(ctx, "writers/", func(oi storage.ObjectInfo) error {
		b, _ := storage.ReadAll(ctx, be, oi.Name)
		if !strings.Contains(string(b), `"ended"`) {
			t.Errorf("registration %s left open: %s", oi.Name, b)
		}
		return nil
	})
	if !strings.Contains(err.Error(), "missing") {
		t.Fatalf("error does not say what is missing: %v", err)
	}
}

// An incremental backup reuses its parent's chunk lists for unchanged
// files only while those chunks are stored and not condemned: a parent
// forgotten (and its packs condemned) while the backup runs must not
// leave the new backup pointing at packs about to be deleted.
func TestIncrementalDoesNotReuseCondemnedChunks(t *testing.T) {
	ctx := context.Background()
	repo, be := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), rnd(10, 200<<10))
	comps := []backup.Component{{Name: "d", Paths: []string{src}}}
	parent, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := backup.Prepare(ctx, repo, backup.Options{Type: backup.Incremental, Components: comps})
	if err != nil || plan.Parent != parent.ID {
		t.Fatalf("plan: %v %+v", err, plan)
	}
	// meanwhile: the parent is forgotten and its packs condemned
	repo.DeleteManifest(ctx, parent.ID)
	old := time.Now().Add(-48 * time.Hour)
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, old); return nil })
	gcRepo, _ := repository.Open(ctx, be, repository.Credentials{Password: []byte("pw")})
	if res, err := repository.GC(ctx, gcRepo, repository.GCOptions{SafetyWindow: time.Hour}); err != nil || res.Condemned == 0 {
		t.Fatalf("gc: %v %+v", err, res)
	}
	r2, _ := repository.Open(ctx, be, repository.Credentials{Password: []byte("pw")})
	cm, err := backup.RunComponent(ctx, r2, plan, comps[0], backup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Stats.FilesUnread != 0 {
		t.Fatalf("%d files reused from condemned packs", cm.Stats.FilesUnread)
	}
	m, err := backup.Commit(ctx, r2, plan, []repository.ComponentManifest{cm})
	if err != nil {
		t.Fatal(err)
	}
	// a window later (the condemned packs may go) the new backup is whole
	r3, _ := repository.Open(ctx, be, repository.Credentials{Password: []byte("pw")})
	if _, err := repository.GC(ctx, r3, repository.GCOptions{SafetyWindow: time.Hour, Now: time.Now().Add(2 * time.Hour)}); err != nil {
		t.Fatalf("second gc: %v", err)
	}
	r4, _ := repository.Open(ctx, be, repository.Credentials{Password: []byte("pw")})
	cr, err := repository.Check(ctx, r4, repository.CheckOptions{ReadDataPercent: 100})
	if err != nil || !cr.OK {
		t.Fatalf("check after gc: %v %+v", err, cr)
	}
	if _, err := r4.LoadManifest(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
}

// Two backups that get the same id (two hosts, or two jobs, in the same
// second: 16 random bits collided within seconds in the fault soak) stay
// two backups: the second one's commit refuses the first one's manifest
// rather than taking it for its own, and writes nothing over it; a retry
// of the first one's commit (its worker died after the write) is given
// its own manifest back.
func TestCommitNeverTakesAnotherBackupsManifest(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), rnd(3, 10<<10))
	comps := []backup.Component{{Name: "d", Paths: []string{src}}}
	commit := func(host string) (*backup.Plan, *repository.Manifest, error) {
		plan, cm := prepareAndRun(t, repo, "backup-20261202-020000-abcd", host, comps)
		m, err := backup.Commit(ctx, repo, plan, []repository.ComponentManifest{cm})
		return plan, m, err
	}
	first, m1, err := commit("host-a")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "f"), rnd(4, 10<<10))
	_, _, err = commit("host-b")
	if !errors.Is(err, repository.ErrBackupIDTaken) || !strings.Contains(err.Error(), `"host-a"`) ||
		!strings.Contains(err.Error(), "start the backup again") {
		t.Fatalf("a second backup under a taken id: %v", err)
	}
	got, err := repo.LoadManifest(ctx, first.ID)
	if err != nil || got.Host != "host-a" || got.Components[0].Tree != m1.Components[0].Tree {
		t.Fatalf("the first backup's manifest changed: %+v %v", got, err)
	}
	again, err := backup.Commit(ctx, repo, first, m1.Components)
	if err != nil || !again.SameBackup(m1) || !again.Finished.Equal(m1.Finished) {
		t.Fatalf("a retried commit is not given its own manifest: %+v %v", again, err)
	}
	if code := codes.Classify(fmt.Errorf("commit: %w", repository.ErrBackupIDTaken)).Code; code != codes.AlreadyInProgress {
		t.Fatalf("a taken id is %s, not a conflict", code)
	}
}

// A retried commit whose first attempt stored the manifest is given it
// back however the repository changed since: the manifest folded into a
// set (SaveManifest refuses), or a pack the retry's handle depends on
// gone (the pack check fails). The commit no longer looks for its
// manifest before it checks the packs; these are the paths that replaced
// that look.
func TestRetriedCommitFindsItsManifest(t *testing.T) {
	ctx := context.Background()
	repo, be := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), rnd(5, 64<<10))
	comps := []backup.Component{{Name: "d", Paths: []string{src}}}
	plan, cm := prepareAndRun(t, repo, "backup-20261202-030000-abcd", "h", comps)
	m1, err := backup.Commit(ctx, repo, plan, []repository.ComponentManifest{cm})
	if err != nil {
		t.Fatal(err)
	}
	retry := func(what string) {
		t.Helper()
		again, err := backup.Commit(ctx, repo, plan, []repository.ComponentManifest{cm})
		if err != nil || !again.SameBackup(m1) || !again.Finished.Equal(m1.Finished) {
			t.Fatalf("%s: a retried commit is not given its own manifest: %+v %v", what, again, err)
		}
	}
	retry("loose")
	// a retry that cannot register (its storage refuses writes now)
	fb := fault.New(be)
	fb.Add(fault.Rule{Op: fault.Put, Prefix: "writers/"})
	rf, err := repository.Open(ctx, fb, repository.Credentials{Password: []byte("pw")})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := backup.Commit(ctx, rf, plan, []repository.ComponentManifest{cm}); err != nil || !again.SameBackup(m1) {
		t.Fatalf("a retry that cannot register: %+v %v", again, err)
	}
	// a second backup, so that there are more loose manifests than 1
	if _, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: comps, Host: "h"}); err != nil {
		t.Fatal(err)
	}
	c, err := repository.Compact(ctx, repo, repository.IndexFileBound, 1)
	if err != nil || c.ManifestsFolded != 2 {
		t.Fatalf("fold: %+v %v", c, err)
	}
	if _, err := be.Stat(ctx, "manifests/"+plan.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the loose manifest is still there after the fold: %v", err)
	}
	retry("folded into a set")
	// the retry's handle depends on a pack that is gone
	var packs []string
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { packs = append(packs, oi.Name); return nil })
	if len(packs) == 0 {
		t.Fatal("no packs")
	}
	if err := be.Delete(ctx, packs[0]); err != nil {
		t.Fatal(err)
	}
	retry("a pack gone")
	// and a backup that never committed, over the same missing pack, is
	// refused: nothing is committed over missing data
	plan2, err := backup.Prepare(ctx, repo, backup.Options{ID: "backup-20261202-040000-abcd", Type: backup.Full,
		Components: comps, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Commit(ctx, repo, plan2, []repository.ComponentManifest{cm}); !errors.Is(err, repository.ErrPacksMissing) {
		t.Fatalf("a commit over a missing pack: %v", err)
	}
	if _, err := repo.LoadManifest(ctx, plan2.ID); !errors.Is(err, repository.ErrBackupNotFound) {
		t.Fatalf("a manifest was written over a missing pack: %v", err)
	}
}

// prepareAndRun prepares a full backup under id and runs its first
// component, leaving the commit to the test.
func prepareAndRun(t *testing.T, repo *repository.Repository, id, host string, comps []backup.Component) (*backup.Plan, repository.ComponentManifest) {
	t.Helper()
	ctx := context.Background()
	plan, err := backup.Prepare(ctx, repo, backup.Options{ID: id, Type: backup.Full, Components: comps, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := backup.RunComponent(ctx, repo, plan, comps[0], backup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return plan, cm
}
