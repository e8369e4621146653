package tests

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// `backupd dev` once waited out a 60 s dial when its Temporal child had
// already exited (its port taken, say). Now it notices at once and prints
// the end of Temporal's log.
func TestDevNoticesTemporalExitingAtOnce(t *testing.T) {
	bin := backupdBinary(t)
	if _, err := os.Stat(filepath.Join(filepath.Dir(bin), "temporal")); err != nil {
		t.Skip("the Temporal CLI is not beside the backupd binary (make bin/temporal)")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0") // Temporal cannot bind here
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dev", "--var", t.TempDir(), "--temporal-port", port,
		"--ui-port", strconv.Itoa(freePort(t)), "--sftp-port", strconv.Itoa(freePort(t)),
		"--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("backupd dev succeeded with Temporal's port taken:\n%s", out)
	}
	if took > 20*time.Second {
		t.Fatalf("backupd dev took %v to notice Temporal exiting:\n%s", took, out)
	}
	if !strings.Contains(string(out), "the Temporal dev server exited") || !strings.Contains(string(out), "temporal.log") {
		t.Fatalf("the output does not say Temporal exited and where its log is:\n%s", out)
	}
	t.Logf("noticed in %v", took.Round(10*time.Millisecond))
}
