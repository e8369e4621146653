package restore

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"backupd/backup"
)

// Files are created with their final mode when that exposes nothing
// (world-readable, written by the owner alone), and are then not given it
// again; every other mode, owner and umask still ends exactly as backed up.
func TestRestoredModesAndOwnersUnderEveryUmask(t *testing.T) {
	src := t.TempDir()
	modes := map[string]fs.FileMode{"pub": 0o644, "ro": 0o444, "exe": 0o755, "private": 0o600, "group": 0o640,
		"groupw": 0o664, "worldw": 0o666, "setuid": 0o755 | fs.ModeSetuid, "none": 0}
	for n, m := range modes {
		write(t, filepath.Join(src, n), "content of "+n+"\n", 0o600)
		if os.Geteuid() == 0 && n == "group" {
			os.Lchown(filepath.Join(src, n), 4243, 4244)
		}
		if err := os.Chmod(filepath.Join(src, n), m); err != nil {
			t.Fatal(err)
		}
	}
	repo := newRepo(t)
	m, err := backup.Run(context.Background(), repo, backup.Options{Type: backup.Full, Components: []backup.Component{{Name: "data", Paths: []string{src}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, mask := range []int{0o022, 0o077, 0o002, 0} {
		old := syscall.Umask(mask)
		out := t.TempDir()
		_, err := Run(context.Background(), repo, m, Options{Target: out})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		for n, want := range modes {
			fi, err := os.Lstat(filepath.Join(out, "data", src, n))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() &^ fs.ModeType; got != want {
				t.Errorf("umask %03o: %s restored %v, want %v", mask, n, got, want)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if os.Geteuid() == 0 && n == "group" && (st.Uid != 4243 || st.Gid != 4244) {
				t.Errorf("umask %03o: %s owned by %d:%d, want 4243:4244", mask, n, st.Uid, st.Gid)
			}
		}
	}
}
