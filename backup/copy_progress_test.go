package backup_test

import (
	"context"
	"path/filepath"
	"testing"

	"backupd/backup"
	"backupd/repository"
)

// A copy reports how far it is in the backup's own content bytes, so a
// job's percentage and ETA move while copies are made (they sat at 90%,
// eta 00:00:00, for most of a 3-location backup). Blobs the destination
// has, and content repeated within the backup, count as gone through.
func TestCopyProgressReachesTheBackupsSize(t *testing.T) {
	ctx := context.Background()
	src, _ := newRepo(t)
	dst, _ := newRepo(t)
	dir := t.TempDir()
	makeTree(t, dir)
	same := rnd(7, 300_000)
	write(t, filepath.Join(dir, "dup1"), same)
	write(t, filepath.Join(dir, "dup2"), same)
	comps := []backup.Component{{Name: "data", Paths: []string{dir}}}
	m1, err := backup.Run(ctx, src, backup.Options{Type: backup.Full, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a/new.txt"), []byte("new file"))
	m2, err := backup.Run(ctx, src, backup.Options{Type: backup.Incremental, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*repository.Manifest{m1, m2} {
		var calls int
		var last repository.CopyStats
		_, st, err := repository.CopyBackupProgress(ctx, src, dst, m.ID, func(s repository.CopyStats) {
			if s.BytesDone < last.BytesDone || s.BytesDone > s.BytesTotal {
				t.Errorf("progress went from %d to %d of %d", last.BytesDone, s.BytesDone, s.BytesTotal)
			}
			calls++
			last = s
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.BytesTotal != m.Stats.Bytes || st.BytesDone != st.BytesTotal || calls < 2 {
			t.Fatalf("%s: done %d of %d (backup holds %d bytes), %d progress calls", m.ID, st.BytesDone, st.BytesTotal, m.Stats.Bytes, calls)
		}
	}
}
