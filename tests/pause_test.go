package tests

import (
	"backupd/activities"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"backupd/jobs"
	"backupd/repository"
	"backupd/storage/local"
	"backupd/workflows"
)

// waitPacks waits until the local location holds n data packs.
func (s *stack) waitPacks(t *testing.T, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		count := 0
		filepath.Walk(filepath.Join(s.repo, "data"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				count++
			}
			return nil
		})
		if count >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reached %d packs", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *stack) progress(t *testing.T, job *jobs.Job) *workflows.Progress {
	p, err := s.jc.Progress(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestJobsPauseResumeOnRealTemporal: a paused backup holds no activity,
// reports "paused", and after resume completes with a bit-identical restore.
func TestJobsPauseResumeOnRealTemporal(t *testing.T) {
	s := newStackFor(t, sourceTree(t))
	ctx := context.Background()
	// bzip2 makes the backup slow enough (tens of seconds) that the pause
	// surely lands while the component runs
	job, err := s.jc.StartBackup(ctx, workflows.BackupRequest{Type: "full", Components: []string{"data"},
		Locations: []string{"local"}, Compression: "bzip2"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.waitPacks(t, 1)
	// live counters of the running activity reach the progress answer
	deadline0 := time.Now().Add(20 * time.Second)
	for {
		p := s.progress(t, job)
		if p.BytesProcessed > 0 && p.Files > 0 && p.Status == workflows.StatusInProgress {
			break
		}
		if time.Now().After(deadline0) {
			t.Fatalf("progress never showed the running component's bytes: %+v", p)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := s.jc.Pause(ctx, job); err != nil {
		t.Fatal(err)
	}
	// within a few seconds the activity has stopped and none is pending
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := s.c.DescribeWorkflowExecution(ctx, job.WorkflowID, job.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.PendingActivities) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("paused backup still holds %d activities", len(d.PendingActivities))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p := s.progress(t, job); p.Status != workflows.StatusPaused || !p.Paused {
		t.Fatalf("paused job reports %s", p.Status)
	}
	if err := s.jc.Resume(ctx, job); err != nil {
		t.Fatal(err)
	}
	var out workflows.BackupOutcome
	if err := s.wait(t, job, &out); err != nil {
		t.Fatal(err)
	}
	if out.Status != workflows.StatusCompleted {
		t.Fatalf("after resume: %s", out.Status)
	}
	rj, _ := s.jc.StartRestore(ctx, workflows.RestoreRequest{RestoreInput: activities.RestoreInput{BackupID: out.Summary.BackupID, Location: "local", Target: filepath.Join(t.TempDir(), "r")}})
	var ro workflows.RestoreOutcome
	if err := s.wait(t, rj, &ro); err != nil {
		t.Fatal(err)
	}
}

// TestJobsCancelOnRealTemporal: a cancelled backup stops within seconds,
// ends cancelled, and leaves no manifest and no pending marker (its packs
// go at the next gc).
func TestJobsCancelOnRealTemporal(t *testing.T) {
	s := newStackFor(t, sourceTree(t))
	ctx := context.Background()
	job, err := s.jc.StartBackup(ctx, workflows.BackupRequest{Type: "full", Components: []string{"data"},
		Locations: []string{"local"}, Compression: "zstd", BackupID: "backup-cancel-test"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.waitPacks(t, 2)
	start := time.Now()
	if err := s.jc.Cancel(ctx, job); err != nil {
		t.Fatal(err)
	}
	err = s.wait(t, job, nil)
	var ce *temporal.CanceledError
	if !errors.As(err, &ce) {
		t.Fatalf("want cancelled, got %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	if p := s.progress(t, job); p.Status != workflows.StatusCancelled {
		t.Fatalf("cancelled job reports %s", p.Status)
	}
	be, err := local.New(s.repo)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Open(ctx, be, repository.Credentials{Password: []byte("job-test-password")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.LoadManifest(ctx, "backup-cancel-test"); !errors.Is(err, repository.ErrBackupNotFound) {
		t.Fatalf("cancelled backup left a manifest: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(s.repo, "pending")); len(left) > 0 {
		t.Fatalf("cancelled backup left %d pending marker(s)", len(left))
	}
}
