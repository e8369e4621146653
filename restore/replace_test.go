package restore

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"backupd/repository"
	"backupd/storage"
	"backupd/storage/mem"
)

// A restore over existing files writes each beside its name and renames
// it over the old one only when complete and verified: when the backup's
// data cannot be read (a failing or lying storage), the live files stay
// as they were. Found by review: the old file was unlinked first, and a
// failed restore left the host without it.
func TestAFailedRestoreLeavesTheLiveFilesAlone(t *testing.T) {
	ctx := context.Background()
	big := filepath.Join(t.TempDir(), "big")
	data := make([]byte, 6<<20)
	rand.New(rand.NewSource(7)).Read(data)
	write(t, filepath.Join(big, "db.img"), string(data), 0o600)
	f := newFixture(t, big)
	opts := f.original(false)
	opts.Confine["data"] = append(opts.Confine["data"], big)
	// the live file has moved on since the backup
	write(t, filepath.Join(big, "db.img"), "live database\n", 0o600)
	// one blob in the middle of the pack is damaged: the file's first
	// chunks restore, a later one cannot
	be := f.repo.Backend().(*mem.Backend)
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		if oi.Size > 4<<20 {
			be.Corrupt(oi.Name, int(oi.Size/2))
		}
		return nil
	})
	_, err := Run(ctx, f.repo, f.m, opts)
	if err == nil {
		t.Fatal("a restore from damaged data succeeded")
	}
	if b, rerr := os.ReadFile(filepath.Join(big, "db.img")); rerr != nil || string(b) != "live database\n" {
		t.Fatalf("the live file after the failed restore: %.40q, %v (restore: %v)", b, rerr, err)
	}
	for _, dir := range []string{big, f.src} {
		filepath.WalkDir(dir, func(p string, _ os.DirEntry, _ error) error {
			if strings.Contains(p, ".backupd-restore-") {
				t.Errorf("temporary file left behind: %s", p)
			}
			return nil
		})
	}

	// and with good data the same restore replaces them
	f2 := newFixture(t)
	for _, p := range []string{"top.txt", "a/f1"} {
		write(t, filepath.Join(f2.src, p), "live "+p+"\n", 0o640)
	}
	if _, err := Run(ctx, f2.repo, f2.m, f2.original(false)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(f2.src, "a/f1")); string(b) != "restored a/f1\n" {
		t.Fatalf("a/f1 not replaced: %q", b)
	}
}

// A directory target is made without following a link planted on the way
// (a local user's symlink in /tmp pointing at /etc): the restore refuses
// instead of writing there.
func TestTargetPathIsNotFollowedThroughAPlantedLink(t *testing.T) {
	f := newFixture(t)
	base := t.TempDir()
	os.MkdirAll(filepath.Join(base, "elsewhere"), 0o700)
	os.Symlink(filepath.Join(base, "elsewhere"), filepath.Join(base, "planted"))
	os.Lchown(filepath.Join(base, "planted"), 65534, 65534) // a local user's link
	_, err := Run(context.Background(), f.repo, f.m, Options{Target: filepath.Join(base, "planted", "restore"), Workers: 2})
	if err == nil {
		t.Fatal("restored through a planted symlink")
	}
	if names, _ := os.ReadDir(filepath.Join(base, "elsewhere")); len(names) != 0 {
		t.Fatalf("wrote through the link: %v", names)
	}
	// a target below a root-owned link in a root-only directory is fine,
	// and one that does not exist yet is made
	if _, err := Run(context.Background(), f.repo, f.m, Options{Target: filepath.Join(base, "new", "restore"), Workers: 2}); err != nil {
		t.Fatal(err)
	}
}

// A restore over live files whose data cannot be read at all (the pack is
// gone: a storage server that lost it, or answers NotFound) fails those
// files before writing any of them, and leaves every live file as it was
// (it used to remove the name of each file it never got to write).
func TestARestoreThatNeverWroteAFileLeavesItAlone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, p := range []string{"top.txt", "a/f1", "a/b/f2", "c/f1"} {
		write(t, filepath.Join(f.src, p), "live "+p+"\n", 0o640)
	}
	before := state(t, f.src)
	// lose the packs of the files' data (trees are in packs of their own)
	be := f.repo.Backend().(*mem.Backend)
	var walk func(id repository.ID)
	walk = func(id repository.ID) {
		tree, err := f.repo.LoadTree(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tree.Nodes {
			if n.Subtree != nil {
				walk(*n.Subtree)
			}
			for _, c := range n.Content {
				if l, ok := f.repo.Lookup(c); ok {
					be.Delete(ctx, repository.PackName(l.Pack))
				}
			}
		}
	}
	walk(f.m.Components[0].Tree)
	res, err := Run(ctx, f.repo, f.m, f.original(false))
	if err == nil {
		t.Fatal("a restore without its data succeeded")
	}
	var fe *FileError
	if !errors.As(err, &fe) || len(fe.Files) < 4 {
		t.Fatalf("want the files named as failed: %v (%+v)", err, res)
	}
	sameState(t, "the live files", before, state(t, f.src))
}
