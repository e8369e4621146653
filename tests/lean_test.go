package tests

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// leanPair returns make build's two binaries, the command-line tool and
// backupd-server beside it, or skips when BACKUPD_BIN is not the lean
// build (a test run without make builds the full one alone).
func leanPair(t *testing.T) (lean, server string) {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", binary, err)
	}
	if !bytes.Contains(out, []byte("-tags=lean")) {
		if os.Getenv("BACKUPD_REQUIRE_SERVERS") == "1" {
			t.Fatalf("BACKUPD_BIN=%s is not the lean build (make build writes it)", binary)
		}
		t.Skipf("BACKUPD_BIN=%s is not the lean build", binary)
	}
	server = filepath.Join(filepath.Dir(binary), "backupd-server")
	if _, err := os.Stat(server); err != nil {
		t.Fatalf("no backupd-server beside %s: %v", binary, err)
	}
	return binary, server
}

// leanRun runs bin with args in dir with env added, bounded in time (a
// hand-over loop would otherwise hang the suite), and returns its output
// and exit code.
func leanRun(t *testing.T, dir string, env []string, bin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not end in 30 s:\n%s", bin, args, out)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("%s %v: %v", bin, args, err)
	return "", -1
}

func copyExecutable(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// The lean backupd runs the server's commands in backupd-server beside it
// (exec: same process), never one found on PATH, and says what to install
// when it is missing or not to be trusted.
func TestLeanBuildHandsServerCommandsOver(t *testing.T) {
	lean, server := leanPair(t)
	info, err := exec.Command("go", "version", "-m", lean).Output()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(info, []byte("go.temporal.io/sdk")) || bytes.Contains(info, []byte("gorm.io/gorm")) {
		t.Fatalf("the lean build links Temporal's SDK or gorm:\n%s", info)
	}
	work := t.TempDir() // token create's catalog goes to var/ here

	// forwarded: token create is a server command; a hand-over marker
	// set by hand changes nothing
	out, code := leanRun(t, work, []string{"BACKUPD_FORWARDED=1"}, lean, "token", "create", "--role", "viewer")
	if code != 0 || !strings.HasPrefix(out, "bkd_") {
		t.Fatalf("backupd token create through the lean build: exit %d\n%s", code, out)
	}
	// its flags reach the server build, and its exit codes come back
	out, code = leanRun(t, work, nil, lean, "token", "create", "--role", "superuser")
	_, want := leanRun(t, work, nil, server, "token", "create", "--role", "superuser")
	if code == 0 || code != want || !strings.Contains(out, "superuser") {
		t.Fatalf("a bad --role through the lean build: exit %d (backupd-server's: %d)\n%s", code, want, out)
	}

	// alone, with a backupd-server on PATH that must not be used
	dir, other := t.TempDir(), t.TempDir()
	alone := filepath.Join(dir, "backupd")
	copyExecutable(t, lean, alone, 0o755)
	copyExecutable(t, server, filepath.Join(other, "backupd-server"), 0o755)
	path := []string{"PATH=" + other + ":" + os.Getenv("PATH")}
	out, code = leanRun(t, work, path, alone, "worker", "--config", "/nonexistent")
	if code != 1 {
		t.Fatalf("backupd worker without backupd-server beside it: exit %d\n%s", code, out)
	}
	for _, want := range []string{"'backupd worker' runs in backupd-server", filepath.Join(dir, "backupd-server"), "make build writes bin/backupd and bin/backupd-server"} {
		if !strings.Contains(out, want) {
			t.Errorf("the error does not say %q:\n%s", want, out)
		}
	}
	// one others may write is refused
	beside := filepath.Join(dir, "backupd-server")
	copyExecutable(t, server, beside, 0o775)
	out, code = leanRun(t, work, nil, alone, "worker", "--config", "/nonexistent")
	if code != 1 || !strings.Contains(out, "writable by its group or others") {
		t.Fatalf("a group-writable backupd-server: exit %d\n%s", code, out)
	}
	// a lean build installed as backupd-server is refused, not run in a loop
	copyExecutable(t, lean, beside, 0o755)
	out, code = leanRun(t, work, nil, alone, "worker", "--config", "/nonexistent")
	if code != 1 || !strings.Contains(out, "is the lean build as well") {
		t.Fatalf("a lean backupd-server: exit %d\n%s", code, out)
	}
	// completion: every command's flags from backupd-server; its own
	// (the server commands' names) when that is missing or cannot run
	out, code = leanRun(t, work, nil, lean, "completion", "bash")
	if code != 0 || !strings.Contains(out, "--metrics-listen") {
		t.Fatalf("completion through backupd-server lacks the server's flags: exit %d", code)
	}
	if err := os.WriteFile(beside, nil, 0o755); err != nil { // exec fails: not a program
		t.Fatal(err)
	}
	out, code = leanRun(t, work, nil, alone, "completion", "bash")
	if code != 0 || !strings.Contains(out, "worker") || !strings.Contains(out, "--read-data") {
		t.Fatalf("completion of the lean build alone: exit %d\n%s", code, out)
	}
	// what it holds itself still works
	out, code = leanRun(t, work, nil, alone, "version")
	if code != 0 || !strings.Contains(out, "build:       lean") {
		t.Fatalf("backupd version, alone: exit %d\n%s", code, out)
	}
}
