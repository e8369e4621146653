// Package tests drives the real backupd binary end to end: repositories on
// a local directory, a real S3 server (versitygw) and a real SFTP server,
// holding a real tree (a copy of the Go installation) that none of this
// code wrote.
//
// The binary is $BACKUPD_BIN, or built once by TestMain from the module
// root. Key derivation is made cheap with BACKUPD_TEST_KDF=1.
package tests

import (
	"archive/tar"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"backupd/storage/s3/s3test"
	"backupd/storage/sftp/sftptest"
)

const (
	password = "correct horse battery staple"
	// goRoot is the real tree the tests back up.
	goRoot = "/usr/local/go"
)

var (
	binary  string // the backupd under test
	tempDir string // removed when the tests end

	goCopyOnce sync.Once
	goCopy     string
	goCopyErr  error
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	var err error
	tempDir, err = os.MkdirTemp("", "backupd-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tempDir)
	binary = os.Getenv("BACKUPD_BIN")
	if binary == "" {
		binary = filepath.Join(tempDir, "backupd")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/backupd")
		cmd.Dir = ".." // the module root, from tests/
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building backupd: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// sourceTree returns a private copy of the Go installation (tests may
// change it), made once per test binary with `cp -a`, plus a few entries
// the installation lacks: symlinks (relative, absolute, dangling, to a
// directory), a hard link, an empty directory, setuid and sticky bits.
func sourceTree(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(goRoot); err != nil {
		t.Skipf("no tree to back up: %v", err)
	}
	goCopyOnce.Do(func() {
		dst := filepath.Join(tempDir, "src", "go")
		if goCopyErr = os.MkdirAll(filepath.Dir(dst), 0o755); goCopyErr != nil {
			return
		}
		if out, err := exec.Command("cp", "-a", goRoot, dst).CombinedOutput(); err != nil {
			goCopyErr = fmt.Errorf("cp -a %s: %v: %s", goRoot, err, out)
			return
		}
		goCopyErr = addSpecialEntries(dst)
		goCopy = dst
	})
	if goCopyErr != nil {
		t.Fatal(goCopyErr)
	}
	return goCopy
}

func addSpecialEntries(root string) error {
	steps := []func() error{
		func() error { return os.Symlink("VERSION", filepath.Join(root, "link-relative")) },
		func() error { return os.Symlink("/usr/local/go/VERSION", filepath.Join(root, "link-absolute")) },
		func() error { return os.Symlink("does/not/exist", filepath.Join(root, "link-dangling")) },
		func() error { return os.Symlink("src/fmt", filepath.Join(root, "link-dir")) },
		func() error { return os.Link(filepath.Join(root, "VERSION"), filepath.Join(root, "VERSION.hardlink")) },
		func() error { return os.Mkdir(filepath.Join(root, "empty-dir"), 0o700) },
		func() error {
			p := filepath.Join(root, "setuid-file")
			if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
				return err
			}
			return os.Chmod(p, 0o755|fs.ModeSetuid)
		},
		func() error {
			p := filepath.Join(root, "sticky-dir")
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
			return os.Chmod(p, 0o777|fs.ModeSticky)
		},
		func() error { // a time with nanoseconds, in the past
			ts := time.Date(2001, 2, 3, 4, 5, 6, 789012345, time.UTC)
			return os.Chtimes(filepath.Join(root, "setuid-file"), ts, ts)
		},
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// repo runs backupd repo commands against one repository.
type repo struct {
	url   string
	env   []string // added to the environment
	flags []string // added to every command (e.g. --ssh-key)
}

type result struct {
	args   []string
	stdout string
	stderr string
	code   int
}

func (r result) String() string {
	return fmt.Sprintf("backupd %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, clip(r.stdout), clip(r.stderr))
}

func clip(s string) string {
	if len(s) > 4000 {
		return s[:2000] + "\n...\n" + s[len(s)-2000:]
	}
	return s
}

// baseEnv is the environment of every child: cheap key derivation, the
// password, and no AWS configuration from the host.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "BACKUPD_") {
			continue
		}
		env = append(env, kv)
	}
	// the commands' local caches stay in the test's scratch directory
	return append(env, "BACKUPD_TEST_KDF=1", "BACKUPD_PASSWORD="+password, "AWS_EC2_METADATA_DISABLED=true",
		"BACKUPD_CACHE_DIR="+filepath.Join(tempDir, "cache"))
}

// exec runs `backupd repo <sub> --repo URL <flags> <args>`; stdout goes to
// w when set.
func (r *repo) exec(t *testing.T, w io.Writer, sub string, args ...string) result {
	t.Helper()
	full := append([]string{"repo", sub, "--repo", r.url}, r.flags...)
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, full...)
	cmd.Env = append(baseEnv(), r.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if w != nil {
		cmd.Stdout = w
	}
	err := cmd.Run()
	res := result{args: full, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		t.Fatalf("backupd %s: %v\n%s", strings.Join(full, " "), err, res)
	}
	return res
}

func (r *repo) run(t *testing.T, sub string, args ...string) result {
	t.Helper()
	return r.exec(t, nil, sub, args...)
}

// ok runs a command that must succeed and returns its stdout.
func (r *repo) ok(t *testing.T, sub string, args ...string) string {
	t.Helper()
	res := r.run(t, sub, args...)
	if res.code != 0 {
		t.Fatalf("%s", res)
	}
	return res.stdout
}

// okJSON runs a command with --json that must succeed and decodes its output.
func (r *repo) okJSON(t *testing.T, v any, sub string, args ...string) {
	t.Helper()
	out := r.ok(t, sub, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("backupd repo %s --json: %v\n%s", sub, err, clip(out))
	}
}

type backupStats struct {
	BackupID       string   `json:"backup_id"`
	Type           string   `json:"type"`
	Parent         string   `json:"parent"`
	Status         string   `json:"status"`
	Files          int64    `json:"files"`
	Dirs           int64    `json:"dirs"`
	Bytes          int64    `json:"bytes"`
	BytesRead      int64    `json:"bytes_read"`
	BytesAdded     int64    `json:"bytes_added"`
	StoredAdded    int64    `json:"stored_added"`
	FilesUnchanged int64    `json:"files_unchanged"`
	Duration       float64  `json:"duration_seconds"`
	Warnings       []string `json:"warnings"`
}

// backup makes a backup of one component and returns its statistics.
func (r *repo) backup(t *testing.T, typ, component string, paths ...string) backupStats {
	t.Helper()
	var st backupStats
	r.okJSON(t, &st, "backup", "--type", typ, "--component", component+"="+strings.Join(paths, ","))
	if st.BackupID == "" || st.Status != "completed" || len(st.Warnings) > 0 {
		t.Fatalf("backup: %+v", st)
	}
	return st
}

// restore restores a backup into a fresh directory and returns it.
func (r *repo) restore(t *testing.T, id string) string {
	t.Helper()
	target := filepath.Join(t.TempDir(), "restore")
	var res struct {
		Files    int64    `json:"files"`
		Verified int64    `json:"verified"`
		Warnings []string `json:"warnings"`
		Error    string   `json:"error"`
	}
	r.okJSON(t, &res, "restore", "--backup", id, "--target", target)
	if res.Error != "" || len(res.Warnings) > 0 || res.Verified != res.Files {
		t.Fatalf("restore %s: %+v", id, res)
	}
	return target
}

// restored is where a restore puts source path src of component comp.
func restored(target, comp, src string) string { return filepath.Join(target, comp, src) }

func localRepo(t *testing.T) *repo {
	t.Helper()
	r := &repo{url: filepath.Join(t.TempDir(), "repo")}
	r.ok(t, "init")
	return r
}

// compareTrees checks that got is a faithful restore of want: `diff -r`
// for names and content, then a walk for what diff does not see: types,
// modes, owners, mtimes of files and directories, symlink targets, hard
// links.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	if out, err := exec.Command("diff", "-r", "--no-dereference", want, got).CombinedOutput(); err != nil {
		t.Errorf("diff -r %s %s: %v\n%s", want, got, err, clip(string(out)))
	}
	problems, err := treeDiff(want, got)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("restore of %s differs:\n%s", want, strings.Join(problems, "\n"))
	}
}

// treeDiff lists how got differs from want in what diff does not compare.
func treeDiff(want, got string) ([]string, error) {
	var problems []string
	bad := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	seen := map[string]bool{}
	links := map[uint64]string{} // inode in want -> first rel path
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		wi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		gp := filepath.Join(got, rel)
		gi, err := os.Lstat(gp)
		if err != nil {
			bad("%s: missing: %v", rel, err)
			return nil
		}
		if wi.Mode() != gi.Mode() {
			bad("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		ws, gs := wi.Sys().(*syscall.Stat_t), gi.Sys().(*syscall.Stat_t)
		if os.Geteuid() == 0 && (ws.Uid != gs.Uid || ws.Gid != gs.Gid) {
			bad("%s: owner %d:%d, want %d:%d", rel, gs.Uid, gs.Gid, ws.Uid, ws.Gid)
		}
		switch {
		case wi.Mode().IsRegular() || wi.IsDir():
			if !wi.ModTime().Equal(gi.ModTime()) {
				bad("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
			}
			if wi.Mode().IsRegular() && wi.Size() != gi.Size() {
				bad("%s: size %d, want %d", rel, gi.Size(), wi.Size())
			}
		case wi.Mode()&fs.ModeSymlink != 0:
			wl, _ := os.Readlink(p)
			gl, err := os.Readlink(gp)
			if err != nil || wl != gl {
				bad("%s: symlink to %q (%v), want %q", rel, gl, err, wl)
			}
		}
		if wi.Mode().IsRegular() && ws.Nlink > 1 {
			if first, ok := links[ws.Ino]; ok {
				fi, err := os.Lstat(filepath.Join(got, first))
				if err != nil || !os.SameFile(fi, gi) {
					bad("%s: not a hard link to %s as in the source", rel, first)
				}
			} else {
				links[ws.Ino] = rel
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		if !seen[rel] {
			bad("%s: restored but not in the source", rel)
		}
		return nil
	})
	return problems, err
}

// TestTreeDiff makes sure the comparison the other tests rely on sees
// each kind of difference.
func TestTreeDiff(t *testing.T) {
	want := filepath.Join(t.TempDir(), "want")
	if err := os.MkdirAll(filepath.Join(want, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(want, "f"), []byte("content"), 0o644)
	os.Link(filepath.Join(want, "f"), filepath.Join(want, "f.link"))
	os.Symlink("f", filepath.Join(want, "s"))
	ts := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	os.Chtimes(filepath.Join(want, "d"), ts, ts)
	changes := map[string]func(got string) error{
		"mode":      func(got string) error { return os.Chmod(filepath.Join(got, "f"), 0o600) },
		"file time": func(got string) error { return os.Chtimes(filepath.Join(got, "f"), ts, ts) },
		"dir time":  func(got string) error { return os.Chtimes(filepath.Join(got, "d"), ts.Add(1), ts.Add(1)) },
		"symlink": func(got string) error {
			os.Remove(filepath.Join(got, "s"))
			return os.Symlink("g", filepath.Join(got, "s"))
		},
		"hard link": func(got string) error {
			os.Remove(filepath.Join(got, "f.link"))
			return exec.Command("cp", "-a", filepath.Join(want, "f"), filepath.Join(got, "f.link")).Run()
		},
		"missing": func(got string) error { return os.Remove(filepath.Join(got, "s")) },
		"extra":   func(got string) error { return os.WriteFile(filepath.Join(got, "d", "x"), nil, 0o644) },
		"type": func(got string) error {
			os.Remove(filepath.Join(got, "s"))
			return os.WriteFile(filepath.Join(got, "s"), nil, 0o777)
		},
	}
	for name, change := range changes {
		got := filepath.Join(t.TempDir(), "got")
		if out, err := exec.Command("cp", "-a", want, got).CombinedOutput(); err != nil {
			t.Fatalf("cp -a: %v: %s", err, out)
		}
		if p, err := treeDiff(want, got); err != nil || len(p) != 0 {
			t.Fatalf("an exact copy differs: %v %v", p, err)
		}
		if err := change(got); err != nil {
			t.Fatal(err)
		}
		if name == "dir time" || name == "extra" {
			// (re)set the directory time after changing its entries
			os.Chtimes(filepath.Join(got, "d"), ts, ts)
			if name == "dir time" {
				os.Chtimes(filepath.Join(got, "d"), ts.Add(1), ts.Add(1))
			}
		}
		if p, err := treeDiff(want, got); err != nil || len(p) == 0 {
			t.Errorf("%s: difference not seen (%v)", name, err)
		}
	}
}

// change modifies a few files under each root for an incremental backup:
// one appended to, one rewritten, one chmod-ed (new ctime, same content),
// one removed and one added. It returns the bytes an incremental backup
// must read again and how many files that is.
func change(t *testing.T, roots ...string) (reread int64, files int) {
	t.Helper()
	for _, root := range roots {
		var regular []string
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && !strings.Contains(p, "hardlink") && filepath.Base(p) != "VERSION" {
				if fi, err := d.Info(); err == nil && fi.Size() > 100 && len(regular) < 5 {
					regular = append(regular, p)
				}
			}
			return nil
		})
		if len(regular) < 4 {
			t.Fatalf("%s: too few files to change", root)
		}
		f, err := os.OpenFile(regular[0], os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("\n// changed by the incremental test\n")
		f.Close()
		if err := os.WriteFile(regular[1], []byte(fmt.Sprintf("rewritten at %v\n", time.Now())), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(regular[2], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(regular[3]); err != nil {
			t.Fatal(err)
		}
		added := filepath.Join(filepath.Dir(regular[0]), fmt.Sprintf("added-%d.txt", time.Now().UnixNano()))
		if err := os.WriteFile(added, bytes.Repeat([]byte("new file\n"), 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{regular[0], regular[1], regular[2], added} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			reread += fi.Size()
			files++
		}
	}
	return reread, files
}

// roundTrip is the backend-independent part of the round-trip tests: a
// full backup, a restore compared with the source, a few changes, an
// incremental that reads only what changed, and its restore.
func roundTrip(t *testing.T, r *repo, paths ...string) {
	r.ok(t, "init")
	start := time.Now()
	full := r.backup(t, "full", "go", paths...)
	t.Logf("full backup: %d files, %d dirs, %d MB read, %d MB stored in %.1fs", full.Files, full.Dirs,
		full.BytesRead>>20, full.StoredAdded>>20, full.Duration)
	if full.Type != "full" || full.BytesRead != full.Bytes || full.FilesUnchanged != 0 {
		t.Errorf("full backup stats: %+v", full)
	}
	t0 := time.Now()
	target := r.restore(t, full.BackupID)
	t.Logf("restore: %.1fs", time.Since(t0).Seconds())
	for _, p := range paths {
		compareTrees(t, p, restored(target, "go", p))
	}

	reread, changed := change(t, paths...)
	incr := r.backup(t, "incremental", "go", paths...)
	t.Logf("incremental: %d files, %d unchanged, %d bytes read, %d bytes stored in %.1fs", incr.Files,
		incr.FilesUnchanged, incr.BytesRead, incr.StoredAdded, incr.Duration)
	if incr.Parent != full.BackupID {
		t.Errorf("incremental's parent is %q, want %s", incr.Parent, full.BackupID)
	}
	if incr.BytesRead != reread {
		t.Errorf("incremental read %d bytes, want %d (the changed files only)", incr.BytesRead, reread)
	}
	if incr.FilesUnchanged != incr.Files-int64(changed) {
		t.Errorf("incremental: %d of %d files unchanged, want %d", incr.FilesUnchanged, incr.Files, incr.Files-int64(changed))
	}
	if incr.StoredAdded > 1<<20 {
		t.Errorf("incremental stored %d bytes for a few small changes", incr.StoredAdded)
	}
	target = r.restore(t, incr.BackupID)
	for _, p := range paths {
		compareTrees(t, p, restored(target, "go", p))
	}
	t.Logf("round trip: %.1fs", time.Since(start).Seconds())
}

func TestRoundTripLocal(t *testing.T) {
	src := sourceTree(t)
	r := &repo{url: filepath.Join(t.TempDir(), "repo")}
	roundTrip(t, r, src)
}

func TestRoundTripS3(t *testing.T) {
	src := sourceTree(t)
	srv := s3test.StartTB(t)
	s3test.NewBackend(t, srv.Config("backups", "")) // creates the bucket
	r := &repo{
		url: fmt.Sprintf("s3://backups/team/repo?endpoint=%s&path_style=true", url.QueryEscape(srv.Endpoint)),
		env: []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=us-east-1"},
	}
	roundTrip(t, r, src)
}

func TestRoundTripSFTP(t *testing.T) {
	src := sourceTree(t)
	e := sftptest.Start(t)
	r := &repo{
		url:   fmt.Sprintf("sftp://%s@%s/backups/repo", e.User, e.Addr),
		flags: []string{"--ssh-key", e.KeyFile, "--known-hosts", e.KnownHostsFile},
	}
	roundTrip(t, r, src)
}

// packs lists the pack files of a local repository.
func packs(t *testing.T, repoDir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(filepath.Join(repoDir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(repoDir, p)
			out[filepath.ToSlash(rel)] = fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newPacks returns the packs in after but not in before, largest first.
func newPacks(before, after map[string]int64) []string {
	var out []string
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return after[out[i]] > after[out[j]] })
	return out
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// filesIn lists the regular files below root, relative to it.
func filesIn(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out[rel] = true
		}
		return nil
	})
	return out
}

func sameContent(a, b string) bool {
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// TestCorruption damages one data pack that only the second of two
// backups uses and checks what check, and restores of both backups, say
// and do.
func TestCorruption(t *testing.T) {
	if _, err := os.Stat(goRoot); err != nil {
		t.Skip(err)
	}
	netSrc, encSrc := filepath.Join(goRoot, "src", "net"), filepath.Join(goRoot, "src", "encoding")
	r := localRepo(t)
	b1 := r.backup(t, "full", "net", netSrc)
	before := packs(t, r.url)
	b2 := r.backup(t, "full", "enc", encSrc)
	fresh := newPacks(before, packs(t, r.url))
	if len(fresh) < 2 {
		t.Fatalf("the second backup wrote %d packs, want a data and a tree pack", len(fresh))
	}
	// The largest of them holds file content (tree packs hold small
	// directory listings); its middle is inside the blob area.
	damaged := fresh[0]
	size := packs(t, r.url)[damaged]
	flipByte(t, filepath.Join(r.url, damaged), size/2)
	damagedID := filepath.Base(damaged)

	// A structure check reads pack headers and trailers only: it cannot see
	// a flipped byte inside a blob, and passes.
	if res := r.run(t, "check"); res.code != 0 {
		t.Errorf("check without --read-data: %s", res)
	}

	res := r.run(t, "check", "--read-data")
	if res.code == 0 {
		t.Fatalf("check --read-data passed on a damaged pack: %s", res)
	}
	if !strings.Contains(res.stdout, "error: pack "+damaged) || !strings.Contains(res.stdout, "damaged blob(s): data ") {
		t.Errorf("check --read-data does not name the damaged pack %s and its data blob: %s", damaged, res)
	}
	var affected []string // source paths of the files check names
	for _, line := range strings.Split(res.stdout, "\n") {
		rest, ok := strings.CutPrefix(line, "affected: ")
		if !ok {
			continue
		}
		parts := strings.SplitN(rest, ":", 3)
		if len(parts) != 3 || parts[0] != b2.BackupID || parts[1] != "enc" || !strings.HasPrefix(parts[2], encSrc+"/") {
			t.Errorf("affected file %q: want %s:enc:%s/...", rest, b2.BackupID, encSrc)
			continue
		}
		affected = append(affected, parts[2])
	}
	if len(affected) == 0 {
		t.Fatalf("check --read-data names no affected file: %s", res)
	}
	t.Logf("check --read-data: exit %d, pack %s…, affected: %v", res.code, damagedID[:8], affected)
	var js struct {
		OK            bool     `json:"ok"`
		DamagedPacks  []string `json:"damaged_packs"`
		AffectedFiles []string `json:"affected_files"`
	}
	jres := r.run(t, "check", "--read-data", "--json")
	if err := json.Unmarshal([]byte(jres.stdout), &js); err != nil || jres.code == 0 || js.OK ||
		len(js.DamagedPacks) != 1 || js.DamagedPacks[0] != damaged || len(js.AffectedFiles) != len(affected) {
		t.Errorf("check --read-data --json: %v %+v\n%s", err, js, jres)
	}

	// The first backup's blobs are all in other packs: it restores whole.
	target := r.restore(t, b1.BackupID)
	compareTrees(t, netSrc, restored(target, "net", netSrc))

	// The second fails, names the damaged files, and leaves none of them
	// behind; every other file is restored correctly.
	target = filepath.Join(t.TempDir(), "restore")
	res = r.run(t, "restore", "--backup", b2.BackupID, "--target", target)
	if res.code == 0 {
		t.Fatalf("restore of a backup with a damaged blob succeeded: %s", res)
	}
	for _, a := range affected {
		rel := "enc" + a
		if !strings.Contains(res.stderr, rel) {
			t.Errorf("restore error does not name %s: %s", rel, res)
		}
	}
	t.Logf("restore of the damaged backup: exit %d: %s", res.code, strings.TrimSpace(res.stderr))
	root := restored(target, "enc", encSrc)
	gotFiles := filesIn(t, root)
	isAffected := map[string]bool{}
	for _, a := range affected {
		rel, _ := filepath.Rel(encSrc, a)
		isAffected[rel] = true
		if gotFiles[rel] {
			t.Errorf("damaged file %s was left in the target", rel)
		}
	}
	for rel := range filesIn(t, encSrc) {
		if isAffected[rel] {
			continue
		}
		if !gotFiles[rel] {
			t.Errorf("undamaged file %s was not restored", rel)
		} else if !sameContent(filepath.Join(encSrc, rel), filepath.Join(root, rel)) {
			t.Errorf("%s restored with wrong content", rel)
		}
	}
	// Metadata too: the only differences are the absent damaged files.
	problems, err := treeDiff(encSrc, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		rel, _, _ := strings.Cut(p, ": ")
		if !isAffected[rel] || !strings.Contains(p, "missing") {
			t.Errorf("restore of the damaged backup: %s", p)
		}
	}

	// An export of the damaged backup fails and leaves no archive that
	// looks whole.
	out := filepath.Join(t.TempDir(), "export.tar.gz")
	res = r.run(t, "export", "--backup", b2.BackupID, "--output", out)
	if res.code == 0 || !strings.Contains(res.stderr, damagedID) {
		t.Errorf("export of a damaged backup: %s", res)
	}
	if names, _ := os.ReadDir(filepath.Dir(out)); len(names) != 0 {
		t.Errorf("a failed export left %s behind", names[0].Name())
	}
	t.Logf("export of the damaged backup: exit %d: %s", res.code, strings.TrimSpace(res.stderr))
}

// TestCorruptTree damages a directory listing: check finds it without
// reading data, and a restore refuses before writing anything (it plans
// every tree first).
func TestCorruptTree(t *testing.T) {
	if _, err := os.Stat(goRoot); err != nil {
		t.Skip(err)
	}
	src := filepath.Join(goRoot, "src", "encoding")
	r := localRepo(t)
	b := r.backup(t, "full", "enc", src)
	ps := packs(t, r.url)
	if len(ps) != 2 {
		t.Fatalf("%d packs, want one of data and one of trees", len(ps))
	}
	// The smaller pack holds the directory listings.
	var tree string
	for p := range ps {
		if tree == "" || ps[p] < ps[tree] {
			tree = p
		}
	}
	flipByte(t, filepath.Join(r.url, tree), 100)
	res := r.run(t, "check")
	if res.code == 0 || !strings.Contains(res.stdout, "error: tree ") || !strings.Contains(res.stdout, "(directory listing lost)") ||
		!strings.Contains(res.stdout, filepath.Base(tree)) {
		t.Errorf("check of a damaged tree pack: %s", res)
	}
	t.Logf("check: exit %d: %s", res.code, firstLine(res.stdout, "affected: "))
	// (check read the stored pack although the backup had cached its own)
	target := filepath.Join(t.TempDir(), "restore")
	res = r.run(t, "restore", "--no-cache", "--backup", b.BackupID, "--target", target)
	if res.code == 0 || !strings.Contains(res.stderr, filepath.Base(tree)) {
		t.Errorf("restore with a damaged tree: %s", res)
	}
	if !isEmptyOrAbsent(t, target) {
		t.Errorf("the failed restore wrote into %s", target)
	}
	// with the writer's cached copy (verified by its hash) the trees are
	// intact, and the restore is whole
	res = r.run(t, "restore", "--backup", b.BackupID, "--target", target)
	if res.code != 0 {
		t.Errorf("restore with the cached trees: %s", res)
	}
	if out, err := exec.Command("diff", "-r", src, restored(target, "enc", src)).CombinedOutput(); err != nil {
		t.Errorf("restored tree differs: %v\n%s", err, out)
	}
}

// snapshot lists every object of a local repository with size and mtime.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out[p] = fmt.Sprintf("%d %v", fi.Size(), fi.ModTime())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// isEmptyOrAbsent reports whether dir holds nothing.
func isEmptyOrAbsent(t *testing.T, dir string) bool {
	t.Helper()
	names, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(names) == 0
}

// cloneRepo copies a local repository so each damage starts from a good one.
func cloneRepo(t *testing.T, r *repo) *repo {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	if out, err := exec.Command("cp", "-a", r.url, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	return &repo{url: dst}
}

func TestBadCredentialsAndDamage(t *testing.T) {
	if _, err := os.Stat(goRoot); err != nil {
		t.Skip(err)
	}
	src := filepath.Join(goRoot, "src", "fmt")
	good := localRepo(t)
	b := good.backup(t, "full", "fmt", src)

	// failRestore runs a restore that must fail with a message matching
	// want, writing nothing.
	failRestore := func(t *testing.T, r *repo, want string) {
		t.Helper()
		target := filepath.Join(t.TempDir(), "restore")
		res := r.run(t, "restore", "--backup", b.BackupID, "--target", target)
		if res.code == 0 || !strings.Contains(res.stderr, want) {
			t.Errorf("want a failure mentioning %q: %s", want, res)
		}
		if !isEmptyOrAbsent(t, target) {
			t.Errorf("the failed restore wrote into %s", target)
		}
		t.Logf("exit %d: %s", res.code, strings.TrimSpace(res.stderr))
	}

	t.Run("wrong password", func(t *testing.T) {
		r := &repo{url: good.url, env: []string{"BACKUPD_PASSWORD=wrong"}}
		failRestore(t, r, "wrong password")
		if res := r.run(t, "list"); res.code == 0 || !strings.Contains(res.stderr, "wrong password") {
			t.Errorf("list with a wrong password: %s", res)
		}
	})
	t.Run("no password", func(t *testing.T) {
		r := &repo{url: good.url, env: []string{"BACKUPD_PASSWORD="}}
		failRestore(t, r, "BACKUPD_PASSWORD")
	})
	t.Run("keys deleted", func(t *testing.T) {
		r := cloneRepo(t, good)
		if err := os.RemoveAll(filepath.Join(r.url, "keys")); err != nil {
			t.Fatal(err)
		}
		failRestore(t, r, "keys/ directory is missing")
	})
	t.Run("unknown version", func(t *testing.T) {
		r := cloneRepo(t, good)
		cfgPath := filepath.Join(r.url, "config")
		cfg, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(cfg, &m); err != nil {
			t.Fatal(err)
		}
		m["version"] = 99
		cfg, _ = json.Marshal(m)
		if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		failRestore(t, r, "version 99")
		if res := r.run(t, "check"); res.code == 0 || !strings.Contains(res.stderr, "version 99") {
			t.Errorf("check of a version 99 repository: %s", res)
		}
	})
	t.Run("not a repository", func(t *testing.T) {
		failRestore(t, &repo{url: t.TempDir()}, "no backupd repository")
	})
	t.Run("truncated pack", func(t *testing.T) {
		r := cloneRepo(t, good)
		ps := packs(t, r.url)
		for name, size := range ps {
			r := cloneRepo(t, r)
			if err := os.Truncate(filepath.Join(r.url, name), size-100); err != nil {
				t.Fatal(err)
			}
			res := r.run(t, "check")
			if res.code == 0 || !strings.Contains(res.stdout, "error: pack "+name) {
				t.Errorf("check does not fail naming the truncated pack %s: %s", name, res)
			}
			t.Logf("check, %s cut by 100 bytes: exit %d: %s", name, res.code, firstLine(res.stdout, "error: "))
			// The cut takes the trailer and part of the header, not blobs:
			// the index still locates every blob, and each is verified, so a
			// restore either succeeds with correct content or writes nothing
			// wrong.
			target := filepath.Join(t.TempDir(), "restore")
			res = r.run(t, "restore", "--backup", b.BackupID, "--target", target)
			t.Logf("restore with %s cut: exit %d %s", name, res.code, strings.TrimSpace(res.stderr))
			if res.code == 0 {
				compareTrees(t, src, restored(target, "fmt", src))
			} else {
				root := restored(target, "fmt", src)
				for rel := range filesIn(t, root) {
					if !sameContent(filepath.Join(src, rel), filepath.Join(root, rel)) {
						t.Errorf("%s restored with wrong content", rel)
					}
				}
			}
		}
	})
}

func firstLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// tarEntry is what an export holds for one name.
type tarEntry struct {
	typ      byte
	mode     int64
	mtime    time.Time
	content  []byte
	linkname string
	noMtime  bool // do not compare mtime
}

// tarMode is the tar header mode of a file mode: permissions and the
// setuid, setgid and sticky bits.
func tarMode(m fs.FileMode) int64 {
	out := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		out |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		out |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		out |= 0o1000
	}
	return out
}

func readTar(t *testing.T, r io.Reader) map[string]tarEntry {
	t.Helper()
	out := map[string]tarEntry{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading the archive: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s from the archive: %v", h.Name, err)
		}
		if _, dup := out[h.Name]; dup {
			t.Errorf("%s twice in the archive", h.Name)
		}
		out[h.Name] = tarEntry{typ: h.Typeflag, mode: h.Mode, mtime: h.ModTime, content: b, linkname: h.Linkname}
	}
}

func TestExport(t *testing.T) {
	src := sourceTree(t)
	// A part of the copy with every special entry, and a real subtree.
	paths := []string{filepath.Join(src, "src", "encoding"), filepath.Join(src, "lib")}
	for _, n := range []string{"link-relative", "link-absolute", "link-dangling", "link-dir", "VERSION", "VERSION.hardlink", "empty-dir", "setuid-file", "sticky-dir"} {
		paths = append(paths, filepath.Join(src, n))
	}
	r := localRepo(t)
	b := r.backup(t, "full", "part", paths...)

	// What the archive must hold: every entry below the paths, named
	// part/<absolute path> (directories with a trailing slash), plus the
	// parent directories of the paths.
	want := map[string]tarEntry{}
	hardlinks := map[uint64]string{}
	for _, p := range paths {
		err := filepath.WalkDir(p, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			name := "part" + p
			e := tarEntry{mode: tarMode(fi.Mode()), mtime: fi.ModTime()}
			st := fi.Sys().(*syscall.Stat_t)
			switch {
			case fi.IsDir():
				name += "/"
				e.typ = tar.TypeDir
			case fi.Mode()&fs.ModeSymlink != 0:
				e.typ = tar.TypeSymlink
				e.linkname, _ = os.Readlink(p)
			case st.Nlink > 1 && hardlinks[st.Ino] != "":
				e.typ = tar.TypeLink
				e.linkname = hardlinks[st.Ino]
			default:
				if st.Nlink > 1 {
					hardlinks[st.Ino] = name
				}
				e.typ = tar.TypeReg
				if e.content, err = os.ReadFile(p); err != nil {
					return err
				}
			}
			want[name] = e
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
			fi, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			// Outside the copy (/tmp), mtimes change as other programs work.
			want["part"+d+"/"] = tarEntry{typ: tar.TypeDir, mode: tarMode(fi.Mode()), mtime: fi.ModTime(), noMtime: !strings.HasPrefix(d, src)}
		}
	}

	readers := map[string]func(io.Reader) (io.Reader, error){
		"tar.gz":  func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
		"tar.bz2": func(r io.Reader) (io.Reader, error) { return bzip2.NewReader(r), nil },
		"tar.zst": func(r io.Reader) (io.Reader, error) {
			d, err := zstd.NewReader(r)
			if err != nil {
				return nil, err
			}
			return d.IOReadCloser(), nil
		},
	}
	for _, format := range []string{"tar.gz", "tar.bz2", "tar.zst"} {
		t.Run(format, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "export."+format)
			f, err := os.Create(file)
			if err != nil {
				t.Fatal(err)
			}
			res := r.exec(t, f, "export", "--backup", b.BackupID, "--format", format)
			f.Close()
			if res.code != 0 {
				t.Fatalf("%s", res)
			}
			f, err = os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			dr, err := readers[format](f)
			if err != nil {
				t.Fatal(err)
			}
			got := readTar(t, dr)
			fi, _ := os.Stat(file)
			t.Logf("%s: %d entries, %d bytes", format, len(got), fi.Size())
			var problems []string
			for name, w := range want {
				g, ok := got[name]
				switch {
				case !ok:
					problems = append(problems, name+": missing")
				case g.typ != w.typ:
					problems = append(problems, fmt.Sprintf("%s: type %c, want %c", name, g.typ, w.typ))
				case g.mode != w.mode:
					problems = append(problems, fmt.Sprintf("%s: mode %o, want %o", name, g.mode, w.mode))
				case !g.mtime.Equal(w.mtime) && !w.noMtime:
					problems = append(problems, fmt.Sprintf("%s: mtime %v, want %v", name, g.mtime, w.mtime))
				case !bytes.Equal(g.content, w.content):
					problems = append(problems, name+": content differs")
				case g.linkname != w.linkname:
					problems = append(problems, fmt.Sprintf("%s: link to %q, want %q", name, g.linkname, w.linkname))
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok {
					problems = append(problems, name+": in the archive but not in the source")
				}
			}
			sort.Strings(problems)
			if len(problems) > 20 {
				problems = append(problems[:20], fmt.Sprintf("and %d more", len(problems)-20))
			}
			if len(problems) > 0 {
				t.Errorf("export differs from the source:\n%s", strings.Join(problems, "\n"))
			}
		})
	}
}

type gcResult struct {
	Packs        int   `json:"packs"`
	Unreferenced int   `json:"unreferenced_packs"`
	Condemned    int   `json:"condemned"`
	Deleted      int   `json:"deleted"`
	BytesFreed   int64 `json:"bytes_freed"`
	TooYoung     int   `json:"too_young"`
	DryRun       bool  `json:"dry_run"`
}

func TestGC(t *testing.T) {
	if _, err := os.Stat(goRoot); err != nil {
		t.Skip(err)
	}
	netSrc, encSrc := filepath.Join(goRoot, "src", "net"), filepath.Join(goRoot, "src", "encoding")
	r := localRepo(t)
	b1 := r.backup(t, "full", "net", netSrc)
	before := packs(t, r.url)
	b2 := r.backup(t, "full", "enc", encSrc)
	all := packs(t, r.url)
	onlyB2 := newPacks(before, all)
	var b1Bytes int64
	for _, size := range before {
		b1Bytes += size
	}
	r.ok(t, "forget", "--backup", b1.BackupID)

	var dry gcResult
	snap := snapshot(t, r.url)
	r.okJSON(t, &dry, "gc", "--dry-run", "--safety-window", "0")
	t.Logf("gc --dry-run: %+v", dry)
	if !dry.DryRun || dry.Deleted != len(before) || dry.BytesFreed != b1Bytes || dry.Unreferenced != len(before) {
		t.Errorf("gc --dry-run reports %+v; want %d packs, %d bytes to free", dry, len(before), b1Bytes)
	}
	if got := packs(t, r.url); len(got) != len(all) {
		t.Fatalf("gc --dry-run deleted packs: %d left of %d", len(got), len(all))
	}
	if after := snapshot(t, r.url); fmt.Sprint(after) != fmt.Sprint(snap) {
		t.Errorf("gc --dry-run changed the repository:\nbefore %v\nafter  %v", snap, after)
	}

	var res gcResult
	r.okJSON(t, &res, "gc", "--safety-window", "0")
	t.Logf("gc: %+v", res)
	if res.DryRun || res.Deleted != len(before) || res.BytesFreed != b1Bytes {
		t.Errorf("gc reports %+v; want %d packs, %d bytes freed", res, len(before), b1Bytes)
	}
	left := packs(t, r.url)
	for p := range before {
		if _, ok := left[p]; ok {
			t.Errorf("pack %s of the forgotten backup is still there", p)
		}
	}
	for _, p := range onlyB2 {
		if _, ok := left[p]; !ok {
			t.Errorf("pack %s of the remaining backup was deleted", p)
		}
	}
	target := r.restore(t, b2.BackupID)
	compareTrees(t, encSrc, restored(target, "enc", encSrc))
	if res := r.run(t, "check", "--read-data"); res.code != 0 || strings.Contains(res.stdout, "warning") {
		t.Errorf("check --read-data after gc: %s", res)
	}
	var again gcResult
	r.okJSON(t, &again, "gc", "--safety-window", "0")
	if again.Deleted != 0 || again.Unreferenced != 0 || again.Packs != len(onlyB2) {
		t.Errorf("a second gc: %+v; want nothing to do", again)
	}
	if res := r.run(t, "restore", "--backup", b1.BackupID, "--target", filepath.Join(t.TempDir(), "x")); res.code == 0 {
		t.Errorf("restore of a forgotten backup succeeded: %s", res)
	}

	// With the default safety window, young unreferenced packs stay.
	r2 := localRepo(t)
	b := r2.backup(t, "full", "enc", encSrc)
	r2.ok(t, "forget", "--backup", b.BackupID)
	n := len(packs(t, r2.url))
	var def gcResult
	r2.okJSON(t, &def, "gc")
	t.Logf("gc with the default window: %+v", def)
	if def.Deleted != 0 || def.Condemned != 0 || def.TooYoung != n || def.Unreferenced != n {
		t.Errorf("gc with the default safety window: %+v; want all %d packs kept as too young", def, n)
	}
	if got := len(packs(t, r2.url)); got != n {
		t.Errorf("gc with the default safety window deleted packs: %d of %d left", got, n)
	}
}

type copyResult struct {
	BackupID string `json:"backup_id"`
	Stats    struct {
		BlobsCopied  int64 `json:"blobs_copied"`
		BytesCopied  int64 `json:"bytes_copied"`
		BlobsPresent int64 `json:"blobs_present"`
	} `json:"stats"`
}

func TestCopy(t *testing.T) {
	if _, err := os.Stat(goRoot); err != nil {
		t.Skip(err)
	}
	// A private copy: the test changes it between the backups.
	src := filepath.Join(t.TempDir(), "net")
	if out, err := exec.Command("cp", "-a", filepath.Join(goRoot, "src", "net"), src).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	a := localRepo(t)
	full := a.backup(t, "full", "net", src)
	b := &repo{url: filepath.Join(t.TempDir(), "copy")}
	b.ok(t, "init", "--copy-keys-from", a.url)

	var c1 copyResult
	a.okJSON(t, &c1, "copy", "--to", b.url, "--backup", full.BackupID)
	t.Logf("copy of the full backup: %+v", c1.Stats)
	// The copy starts empty: every blob the backup added moves.
	if c1.BackupID != full.BackupID || c1.Stats.BlobsCopied == 0 || c1.Stats.BytesCopied != full.BytesAdded || c1.Stats.BlobsPresent != 0 {
		t.Errorf("copy of the full backup: %+v (the backup added %d bytes)", c1, full.BytesAdded)
	}

	reread, _ := change(t, src)
	incr := a.backup(t, "incremental", "net", src)
	var c2 copyResult
	a.okJSON(t, &c2, "copy", "--to", b.url, "--backup", incr.BackupID)
	t.Logf("copy of the incremental: %+v (it added %d bytes)", c2.Stats, incr.BytesAdded)
	// Only what the incremental added (blobs of the changed files and the
	// trees of their directories) is missing in the copy.
	if c2.Stats.BlobsCopied == 0 || c2.Stats.BytesCopied != incr.BytesAdded || c2.Stats.BlobsPresent == 0 {
		t.Errorf("copy of the incremental moved %+v; want the %d bytes the incremental added", c2.Stats, incr.BytesAdded)
	}
	if incr.BytesRead != reread {
		t.Errorf("incremental read %d bytes, want %d", incr.BytesRead, reread)
	}
	if res := a.run(t, "copy", "--to", b.url, "--backup", incr.BackupID); res.code == 0 {
		t.Errorf("a second copy of the same backup succeeded: %s", res)
	}

	target := b.restore(t, incr.BackupID)
	compareTrees(t, src, restored(target, "net", src))
	if res := b.run(t, "check", "--read-data"); res.code != 0 {
		t.Errorf("check --read-data of the copy: %s", res)
	}
	// The copy opens with the same password and lists both backups.
	var list []struct {
		ID string `json:"id"`
	}
	b.okJSON(t, &list, "list")
	if len(list) != 2 {
		t.Errorf("the copy lists %d backups, want 2", len(list))
	}
	// the newest only
	b.okJSON(t, &list, "list", "--last", "1")
	if len(list) != 1 || list[0].ID != incr.BackupID {
		t.Errorf("list --last 1: %+v, want %s", list, incr.BackupID)
	}
	if res := b.run(t, "list", "--last", "-2"); res.code != 2 || !strings.Contains(res.stderr, "--last -2: give a number of backups above 0") {
		t.Errorf("list --last -2: %s", res)
	}
}

// TestGCRepack: a kept backup that uses part of a forgotten one's packs;
// gc --repack rewrites them (a dry run first says what it would do) and
// the repository shrinks to about what the kept backup needs.
func TestGCRepack(t *testing.T) {
	if _, err := os.Stat(goRoot); err != nil {
		t.Skip(err)
	}
	src := filepath.Join(t.TempDir(), "net")
	if err := exec.Command("cp", "-a", filepath.Join(goRoot, "src", "net"), src).Run(); err != nil {
		t.Fatal(err)
	}
	r := localRepo(t)
	b1 := r.backup(t, "full", "net", src)
	// keep a third of the files
	ents, _ := os.ReadDir(src)
	for i, e := range ents {
		if i%3 != 0 {
			os.RemoveAll(filepath.Join(src, e.Name()))
		}
	}
	b2 := r.backup(t, "full", "net", src)
	r.ok(t, "forget", "--backup", b1.BackupID)
	size := func() (n int64) {
		for _, s := range packs(t, r.url) {
			n += s
		}
		return n
	}
	var dry struct {
		ReferencedBytes int64 `json:"referenced_bytes"`
		Repack          struct {
			Packs    int   `json:"packs"`
			Frees    int64 `json:"frees_bytes"`
			NewPacks int   `json:"new_packs"`
		} `json:"repack"`
	}
	before := size()
	snap := snapshot(t, r.url)
	r.okJSON(t, &dry, "gc", "--repack", "--dry-run", "--safety-window", "0")
	if dry.Repack.Packs == 0 || dry.Repack.Frees < before/3 || dry.Repack.NewPacks != 0 {
		t.Fatalf("gc --repack --dry-run: %+v (packs %d bytes)", dry, before)
	}
	if after := snapshot(t, r.url); fmt.Sprint(after) != fmt.Sprint(snap) {
		t.Fatal("gc --repack --dry-run changed the repository")
	}
	res := r.run(t, "gc", "--repack", "--safety-window", "0")
	if res.code != 0 || !strings.Contains(res.stdout, "repack: ") || !strings.Contains(res.stdout, "rewrote") {
		t.Fatalf("gc --repack: %s", res)
	}
	after := size()
	if after > dry.ReferencedBytes*11/10+64<<10 {
		t.Errorf("after repack %d bytes in packs for %d referenced (%d before)", after, dry.ReferencedBytes, before)
	}
	t.Logf("packs: %d bytes before, %d after, %d referenced", before, after, dry.ReferencedBytes)
	compareTrees(t, src, restored(r.restore(t, b2.BackupID), "net", src))
	if res := r.run(t, "check", "--read-data"); res.code != 0 || strings.Contains(res.stdout, "warning") {
		t.Errorf("check --read-data after repack: %s", res)
	}
	if res := r.run(t, "gc", "--repack", "--repack-unused", "0"); res.code != 2 || !strings.Contains(res.stderr, "1 to 99") {
		t.Errorf("a bad --repack-unused: %s", res)
	}
}

// TestCLIObjectLock: `repo init --object-lock` makes the bucket (with
// Object Lock: it did not make buckets at all before), backups are
// locked, gc without the flag says what to give, and gc with it leaves a
// forgotten backup's data waiting for its locks.
func TestCLIObjectLock(t *testing.T) {
	srv := s3test.StartTB(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("locked data"), 0o644)
	lock := []string{"--object-lock", "compliance", "--lock-period", "1h"}
	r := &repo{
		url:   fmt.Sprintf("s3://lockedcli/repo?endpoint=%s&path_style=true", url.QueryEscape(srv.Endpoint)),
		env:   []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey, "AWS_REGION=us-east-1"},
		flags: lock,
	}
	r.ok(t, "init")
	st := r.backup(t, "full", "data", dir)
	r.ok(t, "forget", "--backup", st.BackupID)
	time.Sleep(1100 * time.Millisecond) // S3 times are in seconds
	plain := &repo{url: r.url, env: r.env}
	if res := plain.run(t, "gc", "--safety-window", "0"); res.code == 0 || !strings.Contains(res.stderr, "give --object-lock") {
		t.Fatalf("gc on a locked location without the flag: %s", res)
	}
	time.Sleep(1100 * time.Millisecond)
	out := r.ok(t, "gc", "--safety-window", "0")
	if !strings.Contains(out, "stay until their locks end") {
		t.Fatalf("gc with the flag:\n%s", out)
	}
	var list []map[string]any
	r.okJSON(t, &list, "list")
	if len(list) != 0 {
		t.Fatalf("forgotten backup still listed: %v", list)
	}
}

// TestListShowsTheNewest: `repo list` shows the newest 50 backups, as the
// API's list does by default, and says on stderr that older ones were
// left out and how to see them; --all lists every one; --last N the
// newest N.
func TestListShowsTheNewest(t *testing.T) {
	r := localRepo(t)
	src := filepath.Join(t.TempDir(), "d")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 52; i++ {
		if err := os.WriteFile(filepath.Join(src, "f"), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.backup(t, "incremental", "d", src).BackupID)
	}
	type listed []struct {
		ID string `json:"id"`
	}
	idsOf := func(l listed) []string {
		var out []string
		for _, m := range l {
			out = append(out, m.ID)
		}
		return out
	}
	const note = "older ones are not shown: --all lists every backup"
	for _, c := range []struct {
		args []string
		want []string
		note bool
	}{
		{nil, ids[2:], true},
		{[]string{"--all"}, ids, false},
		{[]string{"--last", "51"}, ids[1:], true},
		{[]string{"--last", "52"}, ids, false},
		{[]string{"--last", "60"}, ids, false},
	} {
		res := r.run(t, "list", append(c.args, "--json")...)
		var l listed
		if res.code != 0 || json.Unmarshal([]byte(res.stdout), &l) != nil {
			t.Fatalf("%s", res)
		}
		if got := idsOf(l); strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("list %v: %d backups %v..., want %d from %s", c.args, len(got), got[:min(2, len(got))], len(c.want), c.want[0])
		}
		if strings.Contains(res.stderr, note) != c.note {
			t.Errorf("list %v: stderr %q, want the note about older backups: %v", c.args, res.stderr, c.note)
		}
	}
	// the table: a header and the newest 50, oldest first
	table := strings.Split(strings.TrimSpace(r.ok(t, "list")), "\n")
	if len(table) != 51 || !strings.HasPrefix(table[1], ids[2]) || !strings.HasPrefix(table[50], ids[51]) {
		t.Errorf("list: %d lines, from %q to %q", len(table), table[1], table[len(table)-1])
	}
	if res := r.run(t, "list", "--all", "--last", "3"); res.code != 2 || !strings.Contains(res.stderr, "--all and --last 3: give one") {
		t.Errorf("list --all --last 3: %s", res)
	}
}
