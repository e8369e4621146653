package tests

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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

// The lean backupd runs the server's commands in backupd-server, as the
// same process (exec), and says what to install when it is missing.
func TestLeanBuildHandsServerCommandsOver(t *testing.T) {
	lean, _ := leanPair(t)
	leanOut, err := exec.Command("go", "version", "-m", lean).Output()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(leanOut, []byte("go.temporal.io/sdk")) || bytes.Contains(leanOut, []byte("gorm.io/gorm")) {
		t.Fatalf("the lean build links Temporal's SDK or gorm:\n%s", leanOut)
	}

	// forwarded: token create is a server command
	// (its catalog goes to var/ in the working directory)
	cmd := exec.Command(lean, "token", "create", "--role", "viewer")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "bkd_") {
		t.Fatalf("backupd token create through the lean build: %v\n%s", err, out)
	}
	// its flags reach the server build, and its mistakes come back
	cmd = exec.Command(lean, "token", "create", "--role", "superuser")
	cmd.Dir = t.TempDir()
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "superuser") {
		t.Fatalf("a bad --role passed through: %v\n%s", err, out)
	}

	// alone, without backupd-server beside it or on PATH
	dir := t.TempDir()
	alone := filepath.Join(dir, "backupd")
	data, err := os.ReadFile(lean)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(alone, "worker", "--config", "/nonexistent")
	cmd.Env = append(os.Environ(), "PATH="+dir)
	out, err = cmd.CombinedOutput()
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("backupd worker without backupd-server: %v\n%s", err, out)
	}
	for _, want := range []string{"'backupd worker' runs in backupd-server", filepath.Join(dir, "backupd-server"), "make build writes both to bin/"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the error does not say %q:\n%s", want, out)
		}
	}
	// a lean build installed as backupd-server is refused, not run in a loop
	if err := os.WriteFile(filepath.Join(dir, "backupd-server"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(alone, "worker", "--config", "/nonexistent")
	cmd.Env = append(os.Environ(), "PATH="+dir)
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is the lean build as well") {
		t.Fatalf("a lean backupd-server: %v\n%s", err, out)
	}
	os.Remove(filepath.Join(dir, "backupd-server"))
	// what it holds itself still works
	cmd = exec.Command(alone, "version")
	cmd.Env = append(os.Environ(), "PATH="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backupd version, alone: %v\n%s", err, out)
	}
	// completion: every command's flags from backupd-server, and the
	// names of all commands without it
	full, err := exec.Command(lean, "completion", "bash").Output()
	if err != nil || !bytes.Contains(full, []byte("--metrics-listen")) {
		t.Fatalf("completion through backupd-server lacks the server's flags: %v", err)
	}
	cmd = exec.Command(alone, "completion", "bash")
	cmd.Env = append(os.Environ(), "PATH="+dir)
	own, err := cmd.Output()
	if err != nil || !bytes.Contains(own, []byte("worker")) || !bytes.Contains(own, []byte("--read-data")) {
		t.Fatalf("completion of the lean build alone: %v\n%s", err, own)
	}
}
