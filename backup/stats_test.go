package backup_test

import (
	"context"
	"path/filepath"
	"testing"

	"backupd/backup"
	"backupd/repository"
)

// One definition per number: Bytes is the content, StoredBytes what it
// takes in storage before deduplication (compression ratio =
// Bytes/StoredBytes), StoredAdded what the backup added (deduplication
// saves StoredBytes-StoredAdded), DataAdded the new content (at most
// Bytes; BytesAdded also counts trees, which made "bytes added" exceed
// "bytes processed").
func TestStatsAddUp(t *testing.T) {
	ctx := context.Background()
	repo, _ := newRepo(t)
	dir := t.TempDir()
	same := rnd(3, 400_000) // incompressible, stored twice over
	write(t, filepath.Join(dir, "a"), same)
	write(t, filepath.Join(dir, "b"), same)
	write(t, filepath.Join(dir, "text"), []byte(string(make([]byte, 300_000)))) // compresses well
	comps := []backup.Component{{Name: "data", Paths: []string{dir}}}
	m1, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: comps, Compression: repository.CompressZstd})
	if err != nil {
		t.Fatal(err)
	}
	s := m1.Stats
	if s.Bytes != 1_100_000 || s.DataAdded > s.Bytes || s.DataAdded < 700_000 {
		t.Fatalf("full: bytes %d, data added %d", s.Bytes, s.DataAdded)
	}
	// a and b are stored once, referenced twice
	if s.StoredBytes < 800_000 || s.StoredBytes > 900_000 || s.StoredAdded > s.StoredBytes-350_000 {
		t.Fatalf("full: stored %d (before dedup), added %d", s.StoredBytes, s.StoredAdded)
	}
	write(t, filepath.Join(dir, "new"), rnd(4, 10_000))
	m2, err := backup.Run(ctx, repo, backup.Options{Type: backup.Incremental, Components: comps, Compression: repository.CompressZstd})
	if err != nil {
		t.Fatal(err)
	}
	s2 := m2.Stats
	// unchanged files reused from the parent still count in what the
	// backup takes before deduplication, not in what it added
	if s2.Bytes != s.Bytes+10_000 || s2.StoredBytes < s.StoredBytes+10_000 || s2.StoredBytes > s.StoredBytes+11_000 ||
		s2.DataAdded != 10_000 || s2.StoredAdded > 20_000 {
		t.Fatalf("incremental: %+v (full %+v)", s2, s)
	}
}
