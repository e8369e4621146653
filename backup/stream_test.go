package backup_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
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
