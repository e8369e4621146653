package restore

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A restore in many small batches gives the same tree as one in a single
// batch: hard links whose first name was written batches earlier, symlinks
// and fifos between files, directory metadata set at the end; verify-only
// and mirror restores walk the same batches.
func TestRestoreInBatches(t *testing.T) {
	old := batchBlobs
	batchBlobs = 1
	t.Cleanup(func() { batchBlobs = old })
	f := newFixture(t)
	ctx := context.Background()
	dst := t.TempDir()
	res, err := Run(ctx, f.repo, f.m, Options{Target: dst, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(dst, "data", f.src)
	want := state(t, f.src)
	sameState(t, "restored tree", want, state(t, got))
	if res.Files != 7 || res.Links != 1 {
		t.Fatalf("files %d links %d, want 7 and 1", res.Files, res.Links)
	}
	a, _ := os.Stat(filepath.Join(got, "c/f1"))
	b, _ := os.Stat(filepath.Join(got, "c/hard"))
	if !os.SameFile(a, b) {
		t.Fatal("c/hard is not a hard link of c/f1")
	}
	vres, err := Run(ctx, f.repo, f.m, Options{Target: dst, VerifyOnly: true, Workers: 3})
	if err != nil || vres.Verified != 7 {
		t.Fatalf("verify: %v, %d verified", err, vres.Verified)
	}
	os.Remove(filepath.Join(got, "a/b/f2"))
	if _, err := Run(ctx, f.repo, f.m, Options{Target: dst, VerifyOnly: true, Workers: 3}); err == nil {
		t.Fatal("verify passed with a file missing")
	}

	// mirror: an extra file goes, everything else is as backed up
	write(t, filepath.Join(f.src, "a/b/extra"), "not in the backup", 0o644)
	os.WriteFile(filepath.Join(f.src, "a/f1"), []byte("changed"), 0o644)
	before := state(t, f.victim)
	mres, err := Run(ctx, f.repo, f.m, f.original(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(mres.Removed) != 1 || mres.Removed[0] != filepath.Join(f.src, "a/b/extra") {
		t.Fatalf("mirror removed %v", mres.Removed)
	}
	sameState(t, "victim", before, state(t, f.victim))
	sameState(t, "source restored in place", want, state(t, f.src))
}
