package restore

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"backupd/backup"
	"backupd/repository"
	"backupd/storage/mem"
)

func newRepo(t testing.TB) *repository.Repository {
	t.Helper()
	kdf := repository.TestKDF()
	r, err := repository.Init(context.Background(), mem.New(), repository.InitOptions{Wrapping: repository.Wrapping{Password: []byte("pw"), KDF: &kdf}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func write(t testing.TB, p string, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// fixture: base/src is the component's source path (the only place a
// confined restore may write), base/victim what an attacker wants the
// restore to write to, chmod or delete. The victim holds files and
// directories named like the source's, with modes the backup does not
// have, so a redirected write, chmod or removal shows.
type fixture struct {
	base, src, victim string
	repo              *repository.Repository
	m                 *repository.Manifest
}

func newFixture(t testing.TB, extraPaths ...string) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{base: base, src: filepath.Join(base, "src"), victim: filepath.Join(base, "victim"), repo: newRepo(t)}
	for _, d := range []string{"a", "a/b", "c"} {
		for _, n := range []string{"f1", "f2"} {
			write(t, filepath.Join(f.src, d, n), "restored "+d+"/"+n+"\n", 0o644)
		}
	}
	write(t, filepath.Join(f.src, "top.txt"), strings.Repeat("big ", 40000), 0o664)
	os.Symlink("a/f1", filepath.Join(f.src, "link"))
	os.Link(filepath.Join(f.src, "c/f1"), filepath.Join(f.src, "c/hard"))
	syscall.Mkfifo(filepath.Join(f.src, "a/fifo"), 0o644)
	os.Chmod(filepath.Join(f.src, "a"), 0o755)
	for _, p := range []string{"f1", "f2", "hard", "fifo", "top.txt", "b/f1", "secret"} {
		write(t, filepath.Join(f.victim, p), "victim "+p+"\n", 0o600)
	}
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	filepath.WalkDir(f.victim, func(p string, _ fs.DirEntry, _ error) error { os.Chtimes(p, old, old); return nil })
	paths := append([]string{f.src}, extraPaths...)
	m, err := backup.Run(context.Background(), f.repo, backup.Options{Type: backup.Full,
		Components: []backup.Component{{Name: "data", Paths: paths}}})
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	return f
}

// original restores like a restore to the original location: into "/",
// overwriting, confined to the source path.
func (f *fixture) original(mirror bool) Options {
	return Options{ComponentTargets: map[string]string{"data": "/"}, Confine: map[string][]string{"data": {f.src}},
		Overwrite: true, Mirror: mirror, Workers: 4}
}

func (f *fixture) rel(p string) string { return strings.TrimPrefix(filepath.Join(f.src, p), "/") }

// state lists everything below root (not following symlinks) with type,
// mode, owner, mtime, size, content and link target: what must not change.
// Link counts and ctimes are left out: making a hard link to a file
// changes them without changing the file.
func state(t testing.TB, root string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		if err != nil {
			lines = append(lines, fmt.Sprintf("%s: %v", rel, err))
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			lines = append(lines, fmt.Sprintf("%s: %v", rel, err))
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		l := fmt.Sprintf("%s %v %d:%d %d %d", rel, fi.Mode(), st.Uid, st.Gid, fi.ModTime().UnixNano(), fi.Size())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			l += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			l += fmt.Sprintf(" %q", b[:min(len(b), 64)])
		}
		lines = append(lines, l)
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func sameState(t testing.TB, what, before, after string) {
	t.Helper()
	if before != after {
		t.Fatalf("%s changed:\nbefore:\n%s\nafter:\n%s", what, before, after)
	}
}

// outside describes base's own entries and metadata: a confined restore
// must add nothing there and change nothing of base.
func (f *fixture) outside(t testing.TB) string {
	t.Helper()
	fi, err := os.Lstat(f.base)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(f.base)
	var ns []string
	for _, n := range names {
		if n.Name() != "src" && n.Name() != "victim" {
			ns = append(ns, n.Name())
		}
	}
	return fmt.Sprintf("%v %d others=%v", fi.Mode(), fi.ModTime().UnixNano(), ns)
}

func setHook(t testing.TB, h func(step, rel string)) {
	testHook = h
	t.Cleanup(func() { testHook = nil })
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}
