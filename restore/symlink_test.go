package restore

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// swapDir renames dir away and puts a symlink to target in its place.
func swapDir(t testing.TB, dir, target string) {
	t.Helper()
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, dir); err != nil {
		t.Fatal(err)
	}
}

// A directory swapped for a symlink to the victim before its child
// directory is made: the restore must not follow it.
func TestDirSwappedBeforeMkdir(t *testing.T) {
	f := newFixture(t)
	os.RemoveAll(f.src)
	before := state(t, f.victim)
	setHook(t, func(step, rel string) {
		if step == "mkdir" && rel == f.rel("a/b") {
			swapDir(t, filepath.Join(f.src, "a"), f.victim)
		}
	})
	_, err := Run(context.Background(), f.repo, f.m, f.original(false))
	if err == nil || !strings.Contains(err.Error(), "not followed") {
		t.Fatalf("want a refusal to follow the symlink, got %v", err)
	}
	sameState(t, "victim", before, state(t, f.victim))
}

// A directory swapped for a symlink to the victim before a file is
// created in it (its descriptor may be held already: then the file goes
// to the renamed directory; it must never reach the victim).
func TestDirSwappedBeforeCreate(t *testing.T) {
	for _, file := range []string{"a/b/f1", "c/f2"} {
		f := newFixture(t)
		os.RemoveAll(f.src)
		before := state(t, f.victim)
		setHook(t, func(step, rel string) {
			if step == "create" && rel == f.rel(file) {
				swapDir(t, filepath.Dir(filepath.Join(f.src, file)), f.victim)
			}
		})
		res, err := Run(context.Background(), f.repo, f.m, f.original(false))
		t.Logf("%s: %v %v", file, res, err)
		sameState(t, "victim", before, state(t, f.victim))
	}
}

// The final name swapped for a symlink to a victim file before metadata
// is set: the victim's mode must not change (fchmodat by name follows a
// symlink; the restore now sets metadata through the inode it made).
func TestFinalNameSwappedForSymlinkBeforeMeta(t *testing.T) {
	for _, entry := range []string{"a/f1", "a/fifo", "a/b", "top.txt"} {
		f := newFixture(t)
		os.RemoveAll(f.src)
		secret := filepath.Join(f.victim, "secret")
		before := state(t, f.victim)
		setHook(t, func(step, rel string) {
			if step == "meta" && rel == f.rel(entry) {
				p := filepath.Join(f.src, entry)
				if err := os.Rename(p, p+".moved"); err != nil {
					t.Fatal(err)
				}
				target := secret
				if entry == "a/b" {
					target = f.victim
				}
				if err := os.Symlink(target, p); err != nil {
					t.Fatal(err)
				}
			}
		})
		res, err := Run(context.Background(), f.repo, f.m, f.original(false))
		if err != nil {
			t.Fatalf("%s: %v", entry, err)
		}
		sameState(t, "victim after swapping "+entry, before, state(t, f.victim))
		if entry == "a/fifo" || entry == "a/b" {
			if !contains(res.Warnings, "metadata not set") {
				t.Errorf("%s: no warning about the swap: %v", entry, res.Warnings)
			}
		}
	}
}

// A hard link to a victim file swapped in under a restored name before
// metadata is set: the victim keeps its mode and owner.
func TestHardLinkSwappedBeforeMeta(t *testing.T) {
	for _, step := range []string{"meta", "finish"} {
		for _, entry := range []string{"a/f1", "a/fifo", "top.txt"} {
			f := newFixture(t)
			os.RemoveAll(f.src)
			secret := filepath.Join(f.victim, "secret")
			before := state(t, f.victim)
			setHook(t, func(s, rel string) {
				if s == step && rel == f.rel(entry) {
					p := filepath.Join(f.src, entry)
					os.Remove(p)
					if err := os.Link(secret, p); err != nil {
						t.Fatal(err)
					}
				}
			})
			res, err := Run(context.Background(), f.repo, f.m, f.original(false))
			t.Logf("%s at %s: warnings %v err %v", entry, step, res.Warnings, err)
			sameState(t, "victim after linking it in at "+entry, before, state(t, f.victim))
			if b, _ := os.ReadFile(secret); string(b) != "victim secret\n" {
				t.Fatalf("victim content %q", b)
			}
		}
	}
}

// The name of an existing ancestor swapped for a symlink before the
// restore removes what is in the way (replaceable): the victim stays.
func TestSymlinkInTheWayIsReplacedNotFollowed(t *testing.T) {
	f := newFixture(t)
	os.RemoveAll(f.src)
	os.MkdirAll(f.src, 0o755)
	// planted before the restore: a/ -> victim, c/f1 -> victim/secret
	os.Symlink(f.victim, filepath.Join(f.src, "a"))
	os.MkdirAll(filepath.Join(f.src, "c"), 0o755)
	os.Symlink(filepath.Join(f.victim, "secret"), filepath.Join(f.src, "c/f1"))
	before := state(t, f.victim)
	if _, err := Run(context.Background(), f.repo, f.m, f.original(false)); err != nil {
		t.Fatal(err)
	}
	sameState(t, "victim", before, state(t, f.victim))
	if fi, err := os.Lstat(filepath.Join(f.src, "a")); err != nil || !fi.IsDir() {
		t.Fatalf("a: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(f.src, "c/f1")); string(b) != "restored c/f1\n" {
		t.Fatalf("c/f1: %q", b)
	}
}

// A mirror removal running into a directory swapped for a symlink to the
// victim: nothing of the victim is removed.
func TestMirrorRemovalOnSwappedDir(t *testing.T) {
	f := newFixture(t)
	extra := filepath.Join(f.src, "extra")
	for _, n := range []string{"f1", "f2", "secret", "b/f1"} {
		write(t, filepath.Join(extra, n), "untracked\n", 0o644)
	}
	before := state(t, f.victim)
	swapped := false
	setHook(t, func(step, rel string) {
		if step == "mirror" && strings.HasPrefix(rel, f.rel("extra")+"/") && !swapped {
			swapped = true
			swapDir(t, extra, f.victim)
		}
	})
	res, err := Run(context.Background(), f.repo, f.m, f.original(true))
	t.Logf("removed %v, err %v", res.Removed, err)
	if !swapped {
		t.Fatal("the mirror never reached extra/")
	}
	sameState(t, "victim", before, state(t, f.victim))
	// and without the race, extra goes
	testHook = nil
	os.Remove(extra)
	os.RemoveAll(extra + ".moved")
	write(t, filepath.Join(extra, "x"), "untracked\n", 0o644)
	res, err = Run(context.Background(), f.repo, f.m, f.original(true))
	if err != nil || !contains(res.Removed, extra) {
		t.Fatalf("mirror: removed %v, %v", res.Removed, err)
	}
	if _, err := os.Lstat(extra); !os.IsNotExist(err) {
		t.Fatalf("extra still there: %v", err)
	}
}

// Entries outside the confine paths are refused and named; existing
// ancestors keep their metadata; a missing ancestor may be made.
func TestConfineRefusesOutsideAndKeepsAncestors(t *testing.T) {
	base0 := t.TempDir()
	other := filepath.Join(base0, "other")
	write(t, filepath.Join(other, "o.txt"), "other\n", 0o644)
	f := newFixture(t, other)
	os.RemoveAll(other)
	// empty the source path (its parent, an ancestor, stays as it is:
	// making an entry in a directory would change its mtime)
	kids, _ := os.ReadDir(f.src)
	for _, k := range kids {
		os.RemoveAll(filepath.Join(f.src, k.Name()))
	}
	// the ancestor's metadata now differs from the backup's
	os.Chmod(f.base, 0o711)
	old := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(f.base, old, old)
	var stBefore syscall.Stat_t
	syscall.Lstat(f.base, &stBefore)
	res, err := Run(context.Background(), f.repo, f.m, f.original(false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(other); !os.IsNotExist(err) {
		t.Fatalf("%s written outside the confine paths: %v", other, err)
	}
	// named: the refused subtree's top (base0, above other) and the allowed path
	if !contains(res.Warnings, base0) || !contains(res.Warnings, "("+f.src+")") {
		t.Fatalf("warnings do not name the refused entry and the allowed paths: %v", res.Warnings)
	}
	var st syscall.Stat_t
	syscall.Lstat(f.base, &st)
	if st.Mode != stBefore.Mode || st.Mtim != stBefore.Mtim || st.Uid != stBefore.Uid {
		t.Fatalf("ancestor %s changed: mode %o -> %o, mtime %v -> %v", f.base, stBefore.Mode, st.Mode, stBefore.Mtim, st.Mtim)
	}
	if b, _ := os.ReadFile(filepath.Join(f.src, "a/b/f1")); string(b) != "restored a/b/f1\n" {
		t.Fatalf("a/b/f1: %q", b)
	}
	// the source path itself does get its metadata
	if fi, _ := os.Lstat(filepath.Join(f.src, "a")); fi.Mode().Perm() != 0o755 {
		t.Fatalf("a: mode %v", fi.Mode())
	}

	// a missing ancestor is made (and, being the restore's, gets the
	// backup's metadata); a non-directory in an ancestor's place is an
	// error, not replaced
	os.RemoveAll(f.base)
	if _, err := Run(context.Background(), f.repo, f.m, f.original(false)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.src, "top.txt")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(f.base)
	os.WriteFile(f.base, []byte("a file where an ancestor was"), 0o600)
	if _, err := Run(context.Background(), f.repo, f.m, f.original(false)); err == nil || !strings.Contains(err.Error(), "left alone") {
		t.Fatalf("ancestor replaced? %v", err)
	}
	if b, _ := os.ReadFile(f.base); string(b) != "a file where an ancestor was" {
		t.Fatalf("ancestor file changed: %q", b)
	}
	os.Remove(f.base)

	// an empty confinement restores nothing
	o := f.original(false)
	o.Confine["data"] = nil
	res, err = Run(context.Background(), f.repo, f.m, o)
	if err != nil || res.Files != 0 || res.Dirs != 0 {
		t.Fatalf("empty confinement: %+v %v", res, err)
	}
}
