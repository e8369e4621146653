package restore

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"backupd/backup"
)

// File names and symlink targets that are not UTF-8 (Latin-1 names, say)
// are backed up and restored byte for byte. Both Latin-1 names had been
// stored as "caf\ufffd": the backup completed without a warning and its
// directory could not be restored ("duplicate name").
func TestNamesThatAreNotUTF8AreRestoredByteForByte(t *testing.T) {
	src := t.TempDir()
	write(t, filepath.Join(src, "caf\xe9"), "e acute\n", 0o644)
	write(t, filepath.Join(src, "caf\xe8"), "e grave\n", 0o644)
	write(t, filepath.Join(src, "d\xff", "inner\xfe"), "inside\n", 0o600)
	if err := os.Symlink("caf\xe9/../t\xfe", filepath.Join(src, "link\xe9")); err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t)
	ctx := context.Background()
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full,
		Components: []backup.Component{{Name: "data", Paths: []string{src}}}})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if _, err := Run(ctx, repo, m, Options{Target: dst, Workers: 2}); err != nil {
		t.Fatal(err)
	}
	sameState(t, "restored tree", state(t, src), state(t, filepath.Join(dst, "data", src)))
	if got, err := os.Readlink(filepath.Join(dst, "data", src, "link\xe9")); err != nil || got != "caf\xe9/../t\xfe" {
		t.Fatalf("link target %q, %v", got, err)
	}
}
