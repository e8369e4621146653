package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The real `backupd version` of a binary built in a git checkout names
// that checkout's commit, and says so when the tree was modified: built
// twice from a clone of this repository, once clean and once with an
// uncommitted change.
func TestVersionOfABuildInAGitCheckout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds backupd twice")
	}
	for _, tool := range []string{"git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	clone := filepath.Join(t.TempDir(), "backupd")
	run := func(dir string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=true", "TZ=UTC")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	run("", "git", "clone", "--quiet", "--no-hardlinks", strings.TrimSpace(string(top)), clone)
	commit := strings.TrimSpace(run(clone, "git", "rev-parse", "HEAD"))
	commitTime := strings.TrimSpace(run(clone, "git", "show", "-s", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ", "HEAD"))
	bin := filepath.Join(t.TempDir(), "backupd")

	run(clone, "go", "build", "-o", bin, "./cmd/backupd")
	out := run("", bin, "version")
	pseudo := regexp.MustCompile(`^backupd v\d+\.\d+\.\d+-(?:0\.)?\d{14}-` + commit[:12] + "\n")
	if !pseudo.MatchString(out) {
		t.Errorf("first line is not the pseudo-version of commit %s:\n%s", commit[:12], out)
	}
	for _, want := range []string{"commit:      " + commit + "\n", "commit time: " + commitTime + "\n", "go:          go"} {
		if !strings.Contains(out, want) {
			t.Errorf("version lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "modified") || strings.Contains(out, "+dirty") {
		t.Errorf("a clean checkout is reported modified:\n%s", out)
	}
	if flag := run("", bin, "--version"); flag != out {
		t.Errorf("--version differs from version:\n%s\n%s", flag, out)
	}

	f, err := os.OpenFile(filepath.Join(clone, "README.md"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\nan uncommitted change\n")
	f.Close()
	run(clone, "go", "build", "-o", bin, "./cmd/backupd")
	out = run("", bin, "version")
	if !strings.Contains(out, "+dirty\n") || !strings.Contains(out, "commit:      "+commit+" (modified: the tree had uncommitted changes)\n") {
		t.Errorf("a modified tree is not reported:\n%s", out)
	}
}
