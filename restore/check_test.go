package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"backupd/repository"
)

func TestCheckTargetsRefusesANonEmptyTargetBeforeAnyWrite(t *testing.T) {
	m := &repository.Manifest{ID: "b", Components: []repository.ComponentManifest{{Name: "data"}, {Name: "logs"}}}
	dir := t.TempDir()
	if err := CheckTargets(m, Options{Target: dir}); err != nil {
		t.Fatalf("missing component dirs are empty: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "logs"), 0o700)
	os.WriteFile(filepath.Join(dir, "logs", "mine.txt"), []byte("user data"), 0o600)
	if err := CheckTargets(m, Options{Target: dir}); !errors.Is(err, ErrTargetNotEmpty) {
		t.Fatalf("want ErrTargetNotEmpty, got %v", err)
	}
	if err := CheckTargets(m, Options{Target: dir, Components: []string{"data"}}); err != nil {
		t.Fatalf("only the selected components' targets count: %v", err)
	}
	if err := CheckTargets(m, Options{Target: dir, Overwrite: true}); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "logs", "mine.txt")); string(b) != "user data" {
		t.Fatal("the check changed the target")
	}
}

// A directory where a file is restored is in the way: the error says so
// and is ErrInTheWay, which codes classes as a conflict that retrying
// cannot solve (it was a storage error, retried for 15 minutes).
func TestADirectoryInTheWayIsAConflictNotAStorageError(t *testing.T) {
	f := newFixture(t)
	os.Remove(filepath.Join(f.src, "a", "f1")) // was a file: now a directory
	if err := os.MkdirAll(filepath.Join(f.src, "a", "f1", "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), f.repo, f.m, f.original(false))
	if !errors.Is(err, ErrInTheWay) || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("restore over a directory: %v", err)
	}
}
