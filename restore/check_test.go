package restore

import (
	"errors"
	"os"
	"path/filepath"
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
