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

// Another host's backup raises no privileges where it is restored: no
// set-id or sticky bits, no FIFOs or device nodes, no owners from the
// backup; a trusted restore keeps them.
func TestUntrustedRestoreRaisesNoPrivileges(t *testing.T) {
	src := t.TempDir()
	write(t, filepath.Join(src, "tool"), "#!/bin/sh\n", 0o755)
	if os.Geteuid() == 0 {
		os.Lchown(filepath.Join(src, "tool"), 4242, 4242) // before the chmod: a chown clears set-id bits
	}
	os.Chmod(filepath.Join(src, "tool"), 0o755|fs.ModeSetuid|fs.ModeSetgid)
	os.Mkdir(filepath.Join(src, "shared"), 0o777)
	os.Chmod(filepath.Join(src, "shared"), 0o777|fs.ModeSticky)
	if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o666); err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t)
	m, err := backup.Run(context.Background(), repo, backup.Options{Type: backup.Full, Components: []backup.Component{{Name: "data", Paths: []string{src}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, untrusted := range []bool{false, true} {
		out := t.TempDir()
		res, err := Run(context.Background(), repo, m, Options{Target: out, Untrusted: untrusted})
		if err != nil {
			t.Fatal(err)
		}
		at := func(n string) string { return filepath.Join(out, "data", src, n) }
		tool, err := os.Stat(at("tool"))
		if err != nil {
			t.Fatal(err)
		}
		shared, _ := os.Stat(at("shared"))
		_, pipeErr := os.Lstat(at("pipe"))
		setid := tool.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0
		sticky := shared.Mode()&fs.ModeSticky != 0
		owner := tool.Sys().(*syscall.Stat_t).Uid
		switch {
		case untrusted && (setid || sticky || pipeErr == nil):
			t.Errorf("untrusted: set-id %v sticky %v pipe made %v (warnings %v)", setid, sticky, pipeErr == nil, res.Warnings)
		case untrusted && os.Geteuid() == 0 && owner == 4242:
			t.Error("untrusted: the backup's owner was given to the file")
		case untrusted && !contains(res.Warnings, "set-id and sticky bits dropped") || untrusted && !contains(res.Warnings, "FIFOs are left out"):
			t.Errorf("untrusted: what was left out is not said: %v", res.Warnings)
		case !untrusted && (!setid || !sticky || pipeErr != nil):
			t.Errorf("trusted: set-id %v sticky %v pipe %v", setid, sticky, pipeErr)
		}
	}
}
