package appendonly_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"backupd/storage"
	"backupd/storage/appendonly"
	"backupd/storage/mem"
	"backupd/storage/sftp"
	"backupd/storage/sftp/sftptest"
)

func removable(name string) bool {
	return strings.HasPrefix(name, "writers/") || strings.Contains(name, "/writers/") || strings.Contains(name, sftp.TempDir)
}

func put(be storage.Backend, name, data string) error {
	return be.Put(context.Background(), name, strings.NewReader(data), int64(len(data)))
}

// checkAppendOnly: through the decorator, objects are added, never
// deleted nor replaced, but for the removable ones.
func checkAppendOnly(t *testing.T, be storage.Backend) {
	t.Helper()
	ctx := context.Background()
	if err := put(be, "data/aa/pack", "pack"); err != nil {
		t.Fatal(err)
	}
	if err := be.Delete(ctx, "data/aa/pack"); !errors.Is(err, storage.ErrLocked) || !storage.IsPermanent(err) {
		t.Fatalf("Delete: %v, want permanent ErrLocked", err)
	}
	if err := be.Delete(ctx, "data/aa/missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Delete of a missing object: %v, want ErrNotFound", err)
	}
	if err := put(be, "data/aa/pack", "pack"); err != nil {
		t.Fatalf("Put of the same bytes again: %v", err)
	}
	for _, other := range []string{"PACK", "pack and more"} {
		if err := put(be, "data/aa/pack", other); !errors.Is(err, storage.ErrLocked) {
			t.Fatalf("Put of other bytes: %v, want ErrLocked", err)
		}
	}
	if got, _ := storage.ReadAll(ctx, be, "data/aa/pack"); string(got) != "pack" {
		t.Fatalf("object now %q", got)
	}
	if err := put(be, "writers/w1", "1"); err != nil {
		t.Fatal(err)
	}
	if err := put(be, "writers/w1", "22"); err != nil {
		t.Fatalf("replacing a removable object: %v", err)
	}
	if err := be.Delete(ctx, "writers/w1"); err != nil {
		t.Fatalf("deleting a removable object: %v", err)
	}
	if l, ok := be.(storage.Locker); !ok || l.LockPeriod() != storage.LockForever || !l.Unlocked("writers/x") || l.Unlocked("data/x") {
		t.Fatal("not a Locker whose locks never end")
	}
}

func TestAppendOnlyMem(t *testing.T) {
	checkAppendOnly(t, appendonly.New(mem.New(), removable))
}

// TestAppendOnlySFTPServerRefuses: against a server that enforces the
// rule for the account, backupd stores and refrains, and the same
// credential used by any other client cannot remove, truncate, replace or
// rename away what was stored.
func TestAppendOnlySFTPServerRefuses(t *testing.T) {
	env := sftptest.StartOpts(t, sftptest.Options{AppendOnly: true, Removable: removable})
	cfg := env.Config("/repo")
	cfg.NoReplace, cfg.Replaceable = true, removable
	ctx := context.Background()
	b, err := sftp.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	checkAppendOnly(t, appendonly.New(b, removable))
	// without the decorator, the server itself refuses
	if err := b.Delete(ctx, "data/aa/pack"); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("the server let the account delete: %v", err)
	}
	if err := put(b, "data/aa/pack", "evil"); err == nil {
		t.Fatal("the server let the account replace an object")
	}
	c, closer, err := env.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer closer()
	const p = "/repo/data/aa/pack"
	if err := c.Remove(p); err == nil {
		t.Fatal("removed")
	}
	if _, err := c.OpenFile(p, os.O_WRONLY|os.O_TRUNC); err == nil {
		t.Fatal("opened for writing")
	}
	if err := c.Truncate(p, 0); err == nil {
		t.Fatal("truncated")
	}
	if err := c.Chmod(p, 0o600); err == nil {
		t.Fatal("changed its mode")
	}
	if err := c.Rename(p, "/repo/data/aa/moved"); err == nil {
		t.Fatal("renamed away")
	}
	f, err := c.Create("/repo/evil")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("evil"))
	f.Close()
	if err := c.PosixRename("/repo/evil", p); err == nil {
		t.Fatal("replaced by posix-rename")
	}
	if err := c.RemoveDirectory("/repo/data/aa"); err == nil {
		t.Fatal("removed a directory")
	}
	r, err := c.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != "pack" {
		t.Fatalf("the object now holds %q", got)
	}
}
