package sftp_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"backupd/storage"
	"backupd/storage/sftp"
	"backupd/storage/sftp/sftptest"
	"backupd/storage/storagetest"
)

var dirs atomic.Int64

func open(t testing.TB, cfg sftp.Config) *sftp.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := sftp.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// freshDir gives each subtest its own directory on one server.
func freshDir(env *sftptest.Env) func(t *testing.T) storage.Backend {
	return func(t *testing.T) storage.Backend {
		return open(t, env.Config(fmt.Sprintf("/stores/%d", dirs.Add(1))))
	}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, freshDir(sftptest.Start(t)))
}

// TestConformanceWithoutExtensions runs the suite against a server without
// posix-rename and statvfs, exercising the fallbacks.
func TestConformanceWithoutExtensions(t *testing.T) {
	storagetest.Run(t, freshDir(sftptest.StartOpts(t, sftptest.Options{NoPosixRename: true, NoStatVFS: true})))
}

func TestFaults(t *testing.T) {
	storagetest.RunFaults(t, freshDir(sftptest.Start(t)))
}

func BenchmarkBackend(b *testing.B) {
	env := sftptest.Start(b)
	storagetest.Bench(b, func(b *testing.B) storage.Backend {
		return open(b, env.Config(fmt.Sprintf("/bench/%d", dirs.Add(1))))
	})
}

func TestCapacity(t *testing.T) {
	env := sftptest.Start(t)
	c, err := open(t, env.Config("store")).Capacity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.TotalBytes <= 0 || c.FreeBytes <= 0 || c.UsedBytes <= 0 {
		t.Fatalf("Capacity = %+v; want the filesystem's numbers from statvfs", c)
	}
	env2 := sftptest.StartOpts(t, sftptest.Options{NoStatVFS: true})
	c, err = open(t, env2.Config("store")).Capacity(context.Background())
	if err != nil || c != (storage.Capacity{TotalBytes: -1, FreeBytes: -1, UsedBytes: -1}) {
		t.Fatalf("Capacity without statvfs = %+v, %v; want all -1", c, err)
	}
}

func TestFilesOnServer(t *testing.T) {
	env := sftptest.Start(t)
	b := open(t, env.Config("rel/store")) // relative to the login directory, "/"
	storagetest.Put(t, b, "data/ab/ab12", []byte("hello"))
	got, err := os.ReadFile(filepath.Join(env.Root, "rel", "store", "data", "ab", "ab12"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("file on the server = %q, %v", got, err)
	}
	entries, err := os.ReadDir(filepath.Join(env.Root, "rel", "store", sftp.TempDir))
	if err != nil || len(entries) != 0 {
		t.Fatalf("temp dir after Put: %v, %v", entries, err)
	}
	if want := "sftp://" + env.User + "@" + env.Addr + "/rel/store"; b.Location() != want {
		t.Fatalf("Location = %q; want %q", b.Location(), want)
	}
}

func TestReconnect(t *testing.T) {
	env := sftptest.Start(t)
	b := open(t, env.Config("store"))
	data := storagetest.Data(1, 300<<10)
	storagetest.Put(t, b, "a", data)
	for i, op := range []func() error{
		func() error { _, err := b.Stat(context.Background(), "a"); return err },
		func() error { _, err := storage.ReadAll(context.Background(), b, "a"); return err },
		func() error { return b.Put(context.Background(), "b", bytes.NewReader(data), int64(len(data))) },
		func() error { return b.List(context.Background(), "", func(storage.ObjectInfo) error { return nil }) },
		func() error { _, err := b.Capacity(context.Background()); return err },
		func() error { return b.Delete(context.Background(), "b") },
	} {
		env.DropConnections()
		time.Sleep(20 * time.Millisecond) // let the client notice
		if err := op(); err != nil {
			t.Fatalf("op %d after the connection dropped: %v", i, err)
		}
	}
	storagetest.Expect(t, b, "a", data)
}

func TestAuth(t *testing.T) {
	env := sftptest.StartOpts(t, sftptest.Options{Password: "s3cret"})
	ctx := context.Background()
	cfg := env.Config("store")
	cfg.KeyFile = ""
	cfg.Password = "s3cret"
	open(t, cfg)

	cfg.Password = "wrong"
	if _, err := sftp.New(ctx, cfg); err == nil || !storage.IsPermanent(err) {
		t.Fatalf("wrong password: %v; want a permanent error", err)
	}

	// Host key pinned directly, no known_hosts file.
	cfg = env.Config("store")
	cfg.KnownHostsFile = ""
	cfg.HostKey = env.HostKey
	open(t, cfg)

	// A different server's key must be refused.
	other := sftptest.Start(t)
	cfg.HostKey = other.HostKey
	if _, err := sftp.New(ctx, cfg); err == nil || !storage.IsPermanent(err) {
		t.Fatalf("wrong host key: %v; want a permanent error", err)
	}
	cfg = env.Config("store")
	cfg.KnownHostsFile = other.KnownHostsFile
	if _, err := sftp.New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("host not in known_hosts: %v; want a refusal", err)
	}
}

func TestStaleTempsRemoved(t *testing.T) {
	env := sftptest.Start(t)
	tmp := filepath.Join(env.Root, "store", sftp.TempDir)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	old, young := filepath.Join(tmp, "old"), filepath.Join(tmp, "young")
	for _, p := range []string{old, young} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	b := open(t, env.Config("/store"))
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("stale temp file still there: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young temp file removed: %v", err)
	}
	if names := storagetest.Names(t, b, ""); len(names) != 0 {
		t.Errorf("temp files listed: %q", names)
	}
}
