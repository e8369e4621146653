package backup_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"backupd/backup"
	"backupd/restore"
	"backupd/sources"
)

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.EOF
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

type closeErr struct {
	io.Reader
	err error
}

func (c closeErr) Close() error { return c.err }

func stream(name string, data []byte, closeErrValue error, optional bool) sources.Stream {
	return sources.Stream{Name: name, Optional: optional, Open: func(context.Context) (io.ReadCloser, error) {
		return closeErr{strings.NewReader(string(data)), closeErrValue}, nil
	}}
}

// Streams (database dumps) land under @dumps beside the component's
// files; a failing stream fails its component, an optional one warns.
func TestStreamsBesideFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	repo, _ := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	write(t, filepath.Join(src, "a.txt"), []byte("file"))
	dump := rnd(7, 3<<20)
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: []backup.Component{
		{Name: "db", Paths: []string{src}, Streams: []sources.Stream{stream("app.dump", dump, nil, false),
			stream("app.globals.sql", nil, errors.New("permission denied"), true)}},
		{Name: "only", Streams: []sources.Stream{stream("x.dump", []byte("small dump"), nil, false)}},
		{Name: "bad", Streams: []sources.Stream{stream("y.dump", []byte("cut"), errors.New("pg_dump: exit status 1"), false)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != "partial" || m.Components[2].Error == "" || !strings.Contains(m.Components[2].Error, "pg_dump") {
		t.Fatalf("manifest: %+v", m.Components)
	}
	if len(m.Components[0].Warnings) != 1 || !strings.Contains(m.Components[0].Warnings[0], "app.globals.sql") {
		t.Fatalf("optional stream: %v", m.Components[0].Warnings)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := restore.Run(ctx, repo, m, restore.Options{Target: dst, Components: []string{"db", "only"}}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dst, "db", sources.DumpsDir, "app.dump"))
	if err != nil || string(got) != string(dump) {
		t.Fatalf("dump restored wrong: %v (%d bytes)", err, len(got))
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "db", src, "a.txt")); string(b) != "file" {
		t.Fatal("the component's file is missing")
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "only", sources.DumpsDir, "x.dump")); string(b) != "small dump" {
		t.Fatal("a streams-only component lost its dump")
	}
}

// A mirrored restore removes what the backup does not hold inside the
// source paths, and only there: excluded files and the directories above
// the source paths stay.
func TestMirroredRestore(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	write(t, filepath.Join(src, "keep.txt"), []byte("v1"))
	write(t, filepath.Join(src, "sub", "b.txt"), []byte("b"))
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: []backup.Component{
		{Name: "c", Paths: []string{src}, Exclude: []string{"*.gz"}}}})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := restore.Run(ctx, repo, m, restore.Options{Target: dst}); err != nil {
		t.Fatal(err)
	}
	at := func(p string) string { return filepath.Join(dst, "c", p) }
	write(t, at(filepath.Join(src, "extra.txt")), []byte("new"))
	write(t, at(filepath.Join(src, "sub", "deep", "x")), []byte("new"))
	write(t, at(filepath.Join(src, "old.gz")), []byte("excluded: stays"))
	write(t, at(filepath.Join(src, "newdir", "keep.gz")), []byte("excluded, in a new directory: stays"))
	write(t, at(filepath.Join(src, "newdir", "gone.txt")), []byte("goes"))
	write(t, at(filepath.Join(base, "beside.txt")), []byte("above the source path: stays"))
	write(t, at(filepath.Join(src, "keep.txt")), []byte("changed"))
	res, err := restore.Run(ctx, repo, m, restore.Options{Target: dst, Overwrite: true, Mirror: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 4 { // extra.txt, sub/deep/x, sub/deep, newdir/gone.txt
		t.Fatalf("removed %v", res.Removed)
	}
	if b, _ := os.ReadFile(at(filepath.Join(src, "newdir", "keep.gz"))); string(b) == "" {
		t.Error("an excluded file inside a new directory was removed")
	}
	for p, want := range map[string]string{"keep.txt": "v1", "sub/b.txt": "b", "old.gz": "excluded: stays"} {
		if b, _ := os.ReadFile(at(filepath.Join(src, p))); string(b) != want {
			t.Errorf("%s: %q", p, b)
		}
	}
	for _, p := range []string{filepath.Join(src, "extra.txt"), filepath.Join(src, "sub", "deep")} {
		if _, err := os.Lstat(at(p)); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
	if _, err := os.Lstat(at(filepath.Join(base, "beside.txt"))); err != nil {
		t.Error("a file above the source path was removed")
	}
}

// A log that grows while it is read is captured up to the bytes read (a
// prefix of the file, never torn), with a warning naming it; files
// deleted while the backup runs do not fail it.
func TestGrowingAndVanishingFiles(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	src := filepath.Join(t.TempDir(), "logs")
	logf := filepath.Join(src, "app.log")
	write(t, logf, rnd(1, 8<<20))
	for i := 0; i < 2000; i++ {
		write(t, filepath.Join(src, "old", fmt.Sprintf("%04d.log", i)), []byte("rotated"))
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	var written atomic.Int64 // lines appended
	go func() {              // the application keeps logging, and log rotation deletes old files
		defer close(done)
		f, _ := os.OpenFile(logf, os.O_APPEND|os.O_WRONLY, 0)
		defer f.Close()
		line := []byte(strings.Repeat("x", 1023) + "\n")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// at most 256 MiB, whatever happens: a backup that read to EOF
			// once chased this writer under the race detector until the
			// disk was full
			if written.Load() >= 256<<10 {
				return
			}
			f.Write(line)
			written.Add(1)
			if i < 2000 {
				os.Remove(filepath.Join(src, "old", fmt.Sprintf("%04d.log", 1999-i)))
			}
		}
	}()
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: []backup.Component{{Name: "logs", Paths: []string{src}}}})
	close(stop)
	<-done
	if err != nil || m.Status != "completed" {
		t.Fatalf("backup of a changing tree: %v %+v", err, m)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := restore.Run(ctx, repo, m, restore.Options{Target: dst}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "logs", logf))
	now, _ := os.ReadFile(logf)
	if len(got) < 8<<20 || len(got) > len(now) || string(got) != string(now[:len(got)]) {
		t.Fatalf("the restored log (%d bytes) is not a prefix of the log (%d bytes)", len(got), len(now))
	}
	// more than was there when it was listed: it changed before or while
	// it was read, and the warning says so
	if len(got) != 8<<20 {
		found := false
		for _, w := range m.Components[0].Warnings {
			found = found || strings.Contains(w, "app.log")
		}
		if !found {
			t.Errorf("the log changed while read but no warning names it: %v", m.Components[0].Warnings)
		}
	}
}

// A symlink planted where a component's directory goes is refused:
// nothing is written through it.
func TestRestoreRefusesASymlinkedComponentDirectory(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	write(t, filepath.Join(src, "a"), []byte("a"))
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: []backup.Component{{Name: "c", Paths: []string{src}}}})
	if err != nil {
		t.Fatal(err)
	}
	dst, outside := t.TempDir(), t.TempDir()
	os.Symlink(outside, filepath.Join(dst, "c"))
	_, err = restore.Run(ctx, repo, m, restore.Options{Target: dst, Overwrite: true})
	if !errors.Is(err, restore.ErrInvalidSelection) {
		t.Fatalf("want a refusal, got %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatal("the restore wrote through the symlink")
	}
}
