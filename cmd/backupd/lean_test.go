package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The lean build is the point of having two: it must not link what the
// server needs (a new import in a file both builds share would pull it
// back in, silently tripling the binary and its cold start).
func TestLeanBuildLeavesOutTheServer(t *testing.T) {
	deps := func(tags ...string) string {
		out, err := exec.Command("go", append(append([]string{"list", "-deps"}, tags...), ".")...).Output()
		if err != nil {
			t.Fatalf("go list %v: %v", tags, err)
		}
		return string(out)
	}
	server := []string{"go.temporal.io/sdk/client", "gorm.io/gorm", "github.com/glebarez/sqlite", "google.golang.org/grpc", "backupd/apiserver", "backupd/worker"}
	full := deps()
	for _, p := range server {
		if !strings.Contains(full, p+"\n") {
			t.Fatalf("the full build does not link %s: the test's list is stale", p)
		}
	}
	lean := deps("-tags", "lean")
	for _, p := range server {
		if strings.Contains(lean, p+"\n") {
			t.Errorf("the lean build links %s (go list -tags lean -deps ./cmd/backupd)", p)
		}
	}
}
