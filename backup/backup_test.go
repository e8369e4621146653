package backup_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"backupd/backup"
	"backupd/repository"
	"backupd/restore"
	"backupd/sources"
	"backupd/storage"
	"backupd/storage/mem"
)

func newRepo(t *testing.T) (*repository.Repository, *mem.Backend) {
	be := mem.New()
	kdf := repository.TestKDF()
	r, err := repository.Init(context.Background(), be, repository.InitOptions{Wrapping: repository.Wrapping{Password: []byte("pw"), KDF: &kdf}})
	if err != nil {
		t.Fatal(err)
	}
	return r, be
}

func write(t *testing.T, p string, data []byte) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func rnd(seed, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(seed))).Read(b)
	return b
}

// makeTree builds a source tree with the awkward cases.
func makeTree(t *testing.T, src string) {
	write(t, filepath.Join(src, "a/small.txt"), []byte("hello\n"))
	write(t, filepath.Join(src, "a/empty"), nil)
	write(t, filepath.Join(src, "a/b/big.bin"), rnd(1, 5<<20+123))
	write(t, filepath.Join(src, "a/b/c/deep.txt"), bytes.Repeat([]byte("deep "), 1000))
	os.MkdirAll(filepath.Join(src, "emptydir/sub"), 0o750)
	os.Symlink("a/small.txt", filepath.Join(src, "link"))
	os.Symlink("/nonexistent/target", filepath.Join(src, "dangling"))
	os.Link(filepath.Join(src, "a/small.txt"), filepath.Join(src, "hardlink"))
	os.Chmod(filepath.Join(src, "a/small.txt"), 0o640)
	syscall.Mkfifo(filepath.Join(src, "fifo"), 0o600)
	// sparse file: 8 MiB hole, then data
	f, _ := os.Create(filepath.Join(src, "sparse.img"))
	f.Seek(8<<20, 0)
	f.Write([]byte("tail data"))
	f.Close()
	old := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	os.Chtimes(filepath.Join(src, "a/b/c/deep.txt"), old, old)
	os.Chtimes(filepath.Join(src, "a/b/c"), old, old)
}

// compareTrees checks content, modes, mtimes, symlinks and hard links.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	err := filepath.Walk(want, func(p string, wi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		q := filepath.Join(got, rel)
		gi, err := os.Lstat(q)
		if err != nil {
			t.Errorf("%s: missing in restore: %v", rel, err)
			return nil
		}
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		if wi.Mode()&os.ModeSymlink != 0 {
			a, _ := os.Readlink(p)
			b, _ := os.Readlink(q)
			if a != b {
				t.Errorf("%s: link %q, want %q", rel, b, a)
			}
			return nil
		}
		if !wi.ModTime().Equal(gi.ModTime()) && rel != "." {
			t.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
		}
		if wi.Mode().IsRegular() {
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(q)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: content differs", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	src := t.TempDir()
	makeTree(t, src)
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Compression: repository.CompressZstd,
		Components: []backup.Component{{Name: "data", Paths: []string{src}}}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != "completed" || m.Stats.Files != 6 {
		t.Fatalf("manifest: status %s files %d warnings %v", m.Status, m.Stats.Files, m.Components[0].Warnings)
	}
	dst := t.TempDir()
	res, err := restore.Run(ctx, repo, m, restore.Options{Target: dst})
	if err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(dst, "data", src)
	compareTrees(t, src, got)
	var a, b syscall.Stat_t
	syscall.Stat(filepath.Join(got, "a/small.txt"), &a)
	syscall.Stat(filepath.Join(got, "hardlink"), &b)
	if a.Ino != b.Ino {
		t.Error("hard link not restored as a link")
	}
	syscall.Stat(filepath.Join(got, "sparse.img"), &a)
	if a.Blocks*512 >= a.Size {
		t.Errorf("sparse file restored dense: %d blocks for %d bytes", a.Blocks, a.Size)
	}
	if res.Verified != int64(len(m.Components)) && res.Verified < 5 {
		t.Errorf("verified %d files", res.Verified)
	}
	// A second restore into the same place is refused without overwrite.
	if _, err := restore.Run(ctx, repo, m, restore.Options{Target: dst}); !errors.Is(err, restore.ErrTargetNotEmpty) {
		t.Fatalf("restore into non-empty target: %v", err)
	}
	if _, err := restore.Run(ctx, repo, m, restore.Options{Target: dst, Overwrite: true}); err != nil {
		t.Fatalf("overwrite restore: %v", err)
	}
	compareTrees(t, src, got)
}

func TestIncrementalReusesUnchangedFiles(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	src := t.TempDir()
	makeTree(t, src)
	comps := []backup.Component{{Name: "data", Paths: []string{src}}}
	m1, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "a/new.txt"), []byte("new file"))
	m2, err := backup.Run(ctx, repo, backup.Options{Type: backup.Incremental, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Parent != m1.ID {
		t.Fatalf("parent %q, want %q", m2.Parent, m1.ID)
	}
	if m2.Stats.BytesRead != int64(len("new file")) || m2.Stats.FilesUnread != 6 {
		t.Fatalf("incremental read %d bytes, reused %d files", m2.Stats.BytesRead, m2.Stats.FilesUnread)
	}
	m3, err := backup.Run(ctx, repo, backup.Options{Type: backup.Differential, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	if m3.Base != m1.ID {
		t.Fatalf("differential base %q, want %q", m3.Base, m1.ID)
	}
	dst := t.TempDir()
	if _, err := restore.Run(ctx, repo, m2, restore.Options{Target: dst}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, filepath.Join(dst, "data", src))
}

func TestUnreadableFileIsAWarning(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	ctx := context.Background()
	repo, _ := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "ok"), []byte("ok"))
	write(t, filepath.Join(src, "secret"), []byte("no"))
	os.Chmod(filepath.Join(src, "secret"), 0)
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: []backup.Component{{Name: "d", Paths: []string{src}}}})
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(m.Components[0].Warnings, "\n")
	if !strings.Contains(w, "secret") || m.Stats.Files != 1 {
		t.Fatalf("warnings %q files %d", w, m.Stats.Files)
	}
}

func TestPartialBackupWhenAComponentIsMissing(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), []byte("x"))
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: []backup.Component{
		{Name: "good", Paths: []string{src}}, {Name: "bad", Paths: []string{filepath.Join(src, "missing")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != "partial" || m.Component("bad").Error == "" {
		t.Fatalf("status %s, bad component error %q", m.Status, m.Component("bad").Error)
	}
	dst := t.TempDir()
	if _, err := restore.Run(ctx, repo, m, restore.Options{Target: dst, Components: []string{"good"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Run(ctx, repo, m, restore.Options{Target: t.TempDir(), Components: []string{"bad"}}); err == nil {
		t.Fatal("restoring a failed component succeeded")
	}
}

func TestRestoreSelectedPathsAndRefusals(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	src := t.TempDir()
	makeTree(t, src)
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: []backup.Component{{Name: "data", Paths: []string{src}}}})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if _, err := restore.Run(ctx, repo, m, restore.Options{Target: dst, Paths: []string{filepath.Join(src, "a/b/c")}}); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(dst, "data", src)
	if _, err := os.Stat(filepath.Join(got, "a/b/c/deep.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(got, "a/small.txt")); err == nil {
		t.Fatal("unselected file restored")
	}
	for _, bad := range []string{"../../etc", src + "/a/../../x/.."} {
		empty := t.TempDir()
		if _, err := restore.Run(ctx, repo, m, restore.Options{Target: empty, Paths: []string{bad}}); err == nil || !strings.Contains(err.Error(), "..") {
			t.Errorf("path %q: %v", bad, err)
		}
		if ents, _ := os.ReadDir(empty); len(ents) != 0 {
			t.Errorf("path %q: something was written", bad)
		}
	}
	if _, err := restore.Run(ctx, repo, m, restore.Options{Target: t.TempDir(), Paths: []string{"/no/such/path"}}); err == nil {
		t.Error("missing path restored without error")
	}
}

func TestRestoreRefusesSymlinkEscapeInTarget(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "etc/passwd"), []byte("restored"))
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: []backup.Component{{Name: "data", Paths: []string{src}}}})
	if err != nil {
		t.Fatal(err)
	}
	// The target holds a symlink where the restore will descend: it must
	// not be followed out of the target.
	outside := t.TempDir()
	dst := t.TempDir()
	os.MkdirAll(filepath.Join(dst, "data"), 0o755)
	first := strings.Split(strings.TrimPrefix(src, "/"), "/")[0]
	os.Symlink(outside, filepath.Join(dst, "data", first))
	_, err = restore.Run(ctx, repo, m, restore.Options{Target: dst, Overwrite: true})
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("restore wrote outside its target (err=%v)", err)
	}
}

// Overlapping or repeated --path selections restore each file once
// (found in review: a second plan entry removed the first's file).
func TestRestoreOverlappingPaths(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	src := t.TempDir()
	makeTree(t, src)
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: []backup.Component{{Name: "data", Paths: []string{src}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, paths := range [][]string{
		{filepath.Join(src, "a"), filepath.Join(src, "a/b/c"), filepath.Join(src, "a")},
		{filepath.Join(src, "a/small.txt"), "/"},
	} {
		dst := t.TempDir()
		if _, err := restore.Run(ctx, repo, m, restore.Options{Target: dst, Paths: paths}); err != nil {
			t.Fatalf("%v: %v", paths, err)
		}
		got, err := os.ReadFile(filepath.Join(dst, "data", src, "a/small.txt"))
		if err != nil || string(got) != "hello\n" {
			t.Fatalf("%v: a/small.txt: %q %v", paths, got, err)
		}
	}
}

// A file replaced by a FIFO or a symlink after it was listed is a warning,
// never a hang or a read through the link (found in review).
func TestFileReplacedAfterListing(t *testing.T) {
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), []byte("data"))
	fi, _ := os.Lstat(filepath.Join(src, "f"))
	node, _ := sources.NodeFromInfo(filepath.Join(src, "f"), fi)
	os.Remove(filepath.Join(src, "f"))
	syscall.Mkfifo(filepath.Join(src, "f"), 0o600)
	done := make(chan error, 1)
	go func() { _, err := backup.OpenFileForTest(filepath.Join(src, "f"), node); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("opened a FIFO in place of a regular file")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked opening a FIFO swapped in after the listing")
	}
	os.Remove(filepath.Join(src, "f"))
	os.Symlink("/etc/passwd", filepath.Join(src, "f"))
	if _, err := backup.OpenFileForTest(filepath.Join(src, "f"), node); err == nil {
		t.Fatal("followed a symlink swapped in after the listing")
	}
}

// manifestReads counts the manifests a repository reads.
type manifestReads struct {
	storage.Backend
	n, lists atomic.Int64
}

func (m *manifestReads) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if strings.HasPrefix(prefix, "manifests/") {
		m.lists.Add(1)
	}
	return m.Backend.List(ctx, prefix, fn)
}

func (m *manifestReads) Get(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	if strings.HasPrefix(name, "manifests/") {
		m.n.Add(1)
	}
	return m.Backend.Get(ctx, name, off, n)
}

// An incremental backup finds its parent by reading the newest manifests,
// not every manifest in the repository (a year of hourly backups made each
// backup start with thousands of reads on S3), and still takes the newest
// backup of its own components, skipping other hosts' and other sets'.
func TestParentIsFoundWithoutReadingEveryManifest(t *testing.T) {
	ctx := context.Background()
	_, be := newRepo(t)
	src, other := t.TempDir(), t.TempDir()
	write(t, filepath.Join(src, "f"), []byte("data"))
	write(t, filepath.Join(other, "g"), []byte("other"))
	counted := &manifestReads{Backend: be}
	repo, err := repository.Open(ctx, counted, repository.Credentials{Password: []byte("pw")})
	if err != nil {
		t.Fatal(err)
	}
	mine := []backup.Component{{Name: "data", Paths: []string{src}}}
	var last *repository.Manifest
	for i := 0; i < 30; i++ {
		m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Incremental, Components: mine, ID: repository.NewBackupID(time.Now().Add(time.Duration(i) * time.Minute))})
		if err != nil {
			t.Fatal(err)
		}
		last = m
	}
	// newer backups of something else, and of another host
	later := time.Now().Add(time.Hour)
	if _, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: []backup.Component{{Name: "data", Paths: []string{other}}}, ID: repository.NewBackupID(later)}); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Host: "elsewhere", Components: mine, ID: repository.NewBackupID(later.Add(time.Minute))}); err != nil {
		t.Fatal(err)
	}
	counted.n.Store(0)
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Incremental, Components: mine, ID: repository.NewBackupID(later.Add(2 * time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	if m.Parent != last.ID {
		t.Fatalf("parent %s, want the newest backup of the same components %s", m.Parent, last.ID)
	}
	if n := counted.n.Load(); n > 12 {
		t.Fatalf("choosing the parent read %d of 33 manifests", n)
	}
}

// Parent candidates (the catalog's newest backups) are tried before any
// manifest is listed: the first that fits the type's rule is the parent,
// read with one request; candidates that are gone, of another host or of
// other components are passed over, and when none fits the repository is
// searched as before.
func TestParentFromCandidates(t *testing.T) {
	ctx := context.Background()
	_, be := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), []byte("data"))
	counted := &manifestReads{Backend: be}
	repo, err := repository.Open(ctx, counted, repository.Credentials{Password: []byte("pw")})
	if err != nil {
		t.Fatal(err)
	}
	mine := []backup.Component{{Name: "data", Paths: []string{src}}}
	at := time.Now()
	run := func(o backup.Options) *repository.Manifest {
		t.Helper()
		at = at.Add(time.Minute)
		o.ID = repository.NewBackupID(at)
		m, err := backup.Run(ctx, repo, o)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	full := run(backup.Options{Type: backup.Full, Components: mine})
	incr := run(backup.Options{Type: backup.Incremental, Components: mine})
	elsewhere := run(backup.Options{Type: backup.Full, Host: "elsewhere", Components: mine})
	newest := run(backup.Options{Type: backup.Incremental, Components: mine})
	gone := repository.NewBackupID(at.Add(-time.Second))

	counted.n.Store(0)
	counted.lists.Store(0)
	m := run(backup.Options{Type: backup.Incremental, Components: mine, ParentCandidates: []string{gone, elsewhere.ID, incr.ID}})
	// three candidates read, and the new manifest's name checked before it is written
	if m.Parent != incr.ID || counted.lists.Load() != 0 || counted.n.Load() > 4 {
		t.Fatalf("parent %s (want the first fitting candidate %s), %d manifest listings, %d manifest reads",
			m.Parent, incr.ID, counted.lists.Load(), counted.n.Load())
	}
	m = run(backup.Options{Type: backup.Differential, Components: mine, ParentCandidates: []string{newest.ID, full.ID}})
	if m.Parent != full.ID || m.Base != full.ID {
		t.Fatalf("differential: parent %s base %s, want the full %s", m.Parent, m.Base, full.ID)
	}
	counted.lists.Store(0)
	m = run(backup.Options{Type: backup.Incremental, Components: mine, ParentCandidates: []string{gone, elsewhere.ID}})
	if m.Parent == "" || m.Parent == elsewhere.ID || counted.lists.Load() == 0 {
		t.Fatalf("no candidate fits: parent %s, %d listings (want the repository searched)", m.Parent, counted.lists.Load())
	}
}

// An incremental backup reuses the parent's stored tree of a directory
// whose entries are all unchanged, and only of such a directory: a change
// of metadata alone (mode, times, a link's target), an entry added or
// removed, or a change below, is recorded.
func TestIncrementalReusesOnlyUnchangedTrees(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	src := t.TempDir()
	// made now: a directory made later beside src would change the
	// directory above it, which the component's tree holds
	dst := t.TempDir()
	makeTree(t, src)
	write(t, filepath.Join(src, "static/x/y.txt"), []byte("never changes"))
	write(t, filepath.Join(src, "meta/f.txt"), []byte("same bytes"))
	write(t, filepath.Join(src, "gone/f.txt"), []byte("removed later"))
	os.Symlink("one", filepath.Join(src, "meta/link"))
	comps := []backup.Component{{Name: "data", Paths: []string{src}}}
	m1, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(src, "meta/f.txt"), 0o600)
	os.Chmod(filepath.Join(src, "emptydir/sub"), 0o700)
	os.Remove(filepath.Join(src, "meta/link"))
	os.Symlink("two", filepath.Join(src, "meta/link"))
	os.Remove(filepath.Join(src, "gone/f.txt"))
	then := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	os.Chtimes(filepath.Join(src, "a/b/c"), then, then) // a directory's mtime, nothing in it
	reused, stop := backup.CountTreeReuses()
	defer stop()
	m2, err := backup.Run(ctx, repo, backup.Options{Type: backup.Incremental, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	// static, static/x, emptydir/sub (its own listing is unchanged) and
	// a/b/c (only its own mtime changed, which its parent records)
	if n := reused(); n != 4 {
		t.Errorf("%d parent trees reused, want 4", n)
	}
	if _, err := restore.Run(ctx, repo, m2, restore.Options{Target: dst}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, filepath.Join(dst, "data", src))
	if _, err := os.Lstat(filepath.Join(dst, "data", src, "gone/f.txt")); !os.IsNotExist(err) {
		t.Errorf("a file removed before the incremental backup was restored (%v)", err)
	}
	subtree := func(m *repository.Manifest, rel string) repository.ID {
		t.Helper()
		id := m.Components[0].Tree
		for _, el := range strings.Split(strings.TrimPrefix(filepath.Join(src, rel), "/"), "/") {
			tr, err := repo.LoadTree(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var n *repository.Node
			for _, c := range tr.Nodes {
				if c.Name == el {
					n = c
				}
			}
			if n == nil || n.Subtree == nil {
				t.Fatalf("%s: no directory %s", rel, el)
			}
			id = *n.Subtree
		}
		return id
	}
	if subtree(m1, "static") != subtree(m2, "static") {
		t.Error("the tree of an unchanged directory changed")
	}
	for _, rel := range []string{"meta", "emptydir", "gone", "a/b", "."} {
		if subtree(m1, rel) == subtree(m2, rel) {
			t.Errorf("%s: the tree of a changed directory was kept", rel)
		}
	}
	// nothing changed below src: each of its directories' trees is the
	// parent's (the directories above it, /tmp among them, may change
	// meanwhile: other programs use them)
	before := reused()
	m3, err := backup.Run(ctx, repo, backup.Options{Type: backup.Incremental, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	if subtree(m3, ".") != subtree(m2, ".") {
		t.Error("an unchanged tree got a new id")
	}
	dirs := int64(0)
	filepath.WalkDir(src, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs++
		}
		return nil
	})
	if n := reused() - before; n < dirs {
		t.Errorf("%d parent trees reused in an unchanged backup of %d directories", n, dirs)
	}
}
