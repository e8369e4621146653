package workflows

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	sdkworker "go.temporal.io/sdk/worker"

	"backupd/activities"
	"backupd/backup"
	"backupd/codes"
	"backupd/repository"
)

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(30 * time.Second)
	// as in production (worker.New): heartbeats, and with them
	// cancellations, get through within a bounded time
	env.SetWorkerOptions(sdkworker.Options{MaxHeartbeatThrottleInterval: 200 * time.Millisecond})
	env.RegisterActivity(&activities.Activities{})
	env.RegisterWorkflow(BackupWorkflow)
	env.RegisterWorkflow(RestoreWorkflow)
	env.RegisterWorkflow(VerifyWorkflow)
	env.RegisterWorkflow(CleanupWorkflow)
	return env
}

var req = BackupRequest{JobID: "BACKUP-JOB-1", Type: "full", Components: []string{"configurations", "data"},
	Locations: []string{"local", "cloud", "remote"}, Compression: "zstd", Verify: true}

func plan() *backup.Plan {
	return &backup.Plan{ID: "backup-1", Type: "full", Host: "h", Compression: "zstd",
		Started: time.Date(2026, 12, 2, 2, 0, 0, 123456789, time.UTC)}
}

// uploadUntilCancelled stands for a long upload: it heartbeats (which is
// how cancellation reaches an activity) until cancelled.
func uploadUntilCancelled(ctx context.Context) error {
	for {
		activity.RecordHeartbeat(ctx, activities.Checkpoint{Phase: "uploading"})
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func okComponent(_ context.Context, in activities.ComponentInput) (repository.ComponentManifest, error) {
	return repository.ComponentManifest{Name: in.Component, Stats: repository.Stats{Files: 10, Bytes: 1000, BytesAdded: 500}}, nil
}

func TestBackupWorkflowCompletesAndReportsProgress(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(plan(), nil)
	env.OnActivity(a.BackupComponent, mock.Anything, mock.Anything).Return(okComponent)
	env.OnActivity(a.CommitBackup, mock.Anything, mock.Anything).Return(activities.BackupSummary{BackupID: "backup-1", Status: "completed"}, nil)
	var copies atomic.Int32
	env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ReplicateInput) (repository.CopyStats, error) {
		copies.Add(1)
		if in.To == "remote" {
			return repository.CopyStats{}, temporal.NewNonRetryableApplicationError("sftp down", string(codes.StorageConnectivity), nil)
		}
		return repository.CopyStats{BlobsCopied: 3}, nil
	})
	env.OnActivity(a.Verify, mock.Anything, mock.Anything).Return(activities.VerifyReport{BackupID: "backup-1", Passed: true}, nil)
	env.ExecuteWorkflow(BackupWorkflow, req)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out BackupOutcome
	env.GetWorkflowResult(&out)
	if copies.Load() != 2 {
		t.Fatalf("%d copies, want 2", copies.Load())
	}
	// a failed copy makes the job partial, not failed; the backup exists
	if out.Status != StatusPartial || out.Copies["cloud"] != "done" || out.Progress.StorageStatus["remote"] != "failed" {
		t.Fatalf("outcome: status %s copies %v storage %v", out.Status, out.Copies, out.Progress.StorageStatus)
	}
	p := out.Progress
	if p.Percentage != 100 || len(p.ComponentsCompleted) != 2 || len(p.ComponentsRemaining) != 0 ||
		p.BytesProcessed != 2000 || p.Files != 20 || p.StorageStatus["local"] != "done" || out.Verify == nil {
		t.Fatalf("progress: %+v", p)
	}
}

// A scheduled run comes without ids: they are drawn once and kept in the
// history. They used to be taken from the run id, but Temporal's run ids
// are UUIDv7 (time first): every scheduled job started within 65 s got
// the same job id. Two runs here share one run id, as two runs of the same
// minute shared its first digits.
func TestScheduledRunsGetTheirOwnIDs(t *testing.T) {
	type ids struct{ JobID, BackupID string }
	run := func() ids {
		env := newEnv(t)
		var prepared activities.PrepareInput
		env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PrepareInput) (*backup.Plan, error) {
			prepared = in
			return plan(), nil
		})
		env.OnActivity(a.BackupComponent, mock.Anything, mock.Anything).Return(okComponent)
		env.OnActivity(a.CommitBackup, mock.Anything, mock.Anything).Return(activities.BackupSummary{BackupID: "backup-1", Status: "completed"}, nil)
		env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(repository.CopyStats{}, nil)
		env.OnActivity(a.Verify, mock.Anything, mock.Anything).Return(activities.VerifyReport{BackupID: "backup-1", Passed: true}, nil)
		scheduled := req
		scheduled.JobID, scheduled.BackupID = "", ""
		env.ExecuteWorkflow(BackupWorkflow, scheduled)
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		var out BackupOutcome
		env.GetWorkflowResult(&out)
		got := ids{out.Progress.JobID, prepared.BackupID}
		if !regexp.MustCompile(`^backup-\d{8}-\d{6}-[0-9a-f]{12}$`).MatchString(got.BackupID) ||
			!regexp.MustCompile(`^BACKUP-JOB-[0-9A-F]{12}$`).MatchString(got.JobID) {
			t.Fatalf("scheduled ids %+v", got)
		}
		return got
	}
	one, two := run(), run()
	if one.JobID == two.JobID || one.BackupID[23:] == two.BackupID[23:] {
		t.Fatalf("two runs got the same ids: %q %q / %q %q", one.JobID, one.BackupID, two.JobID, two.BackupID)
	}
}

func TestBackupWorkflowQueryWhileRunning(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(plan(), nil)
	env.OnActivity(a.BackupComponent, mock.Anything, mock.Anything).After(10 * time.Second).Return(okComponent)
	env.OnActivity(a.CommitBackup, mock.Anything, mock.Anything).Return(activities.BackupSummary{BackupID: "backup-1", Status: "completed"}, nil)
	env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(repository.CopyStats{}, nil)
	env.OnActivity(a.Verify, mock.Anything, mock.Anything).Return(activities.VerifyReport{Passed: true}, nil)
	var mid Progress
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryProgress)
		if err != nil {
			t.Error(err)
			return
		}
		v.Get(&mid)
	}, 15*time.Second)
	env.ExecuteWorkflow(BackupWorkflow, req)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if mid.Status != StatusInProgress || mid.CurrentComponent != "data" ||
		len(mid.ComponentsCompleted) != 1 || mid.ComponentsRemaining[0] != "data" || mid.Percentage != 16.5 ||
		mid.ElapsedSeconds < 15 || mid.Elapsed != "00:00:15" {
		t.Fatalf("mid-job progress: %+v", mid)
	}
}

func TestBackupWorkflowNonRetryableErrorFailsWithItsCode(t *testing.T) {
	env := newEnv(t)
	var calls atomic.Int32
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(func(context.Context, activities.PrepareInput) (*backup.Plan, error) {
		calls.Add(1)
		return nil, temporal.NewNonRetryableApplicationError("unknown component \"x\"", string(codes.InvalidConfiguration), nil)
	})
	env.ExecuteWorkflow(BackupWorkflow, req)
	err := env.GetWorkflowError()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != string(codes.InvalidConfiguration) {
		t.Fatalf("want BACKUP_003, got %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("non-retryable error retried: %d calls", calls.Load())
	}
}

func TestBackupWorkflowRetriesTransientErrors(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(plan(), nil)
	var calls atomic.Int32
	env.OnActivity(a.BackupComponent, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ComponentInput) (repository.ComponentManifest, error) {
		if calls.Add(1) == 1 {
			return repository.ComponentManifest{}, temporal.NewApplicationError("connection reset", string(codes.StorageConnectivity))
		}
		return okComponent(ctx, in)
	})
	env.OnActivity(a.CommitBackup, mock.Anything, mock.Anything).Return(activities.BackupSummary{Status: "completed"}, nil)
	env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(repository.CopyStats{}, nil)
	env.OnActivity(a.Verify, mock.Anything, mock.Anything).Return(activities.VerifyReport{Passed: true}, nil)
	env.ExecuteWorkflow(BackupWorkflow, req)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 { // two components, the first tried twice
		t.Fatalf("%d component calls, want 3", calls.Load())
	}
}

func TestBackupWorkflowCancelCleansUp(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(plan(), nil)
	env.OnActivity(a.BackupComponent, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ComponentInput) (repository.ComponentManifest, error) {
		env.CancelWorkflow() // an operator cancels mid-upload
		return repository.ComponentManifest{}, uploadUntilCancelled(ctx)
	})
	var discarded activities.DiscardInput
	env.OnActivity(a.DiscardBackup, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DiscardInput) error {
		discarded = in
		return nil
	})
	env.ExecuteWorkflow(BackupWorkflow, req)
	err := env.GetWorkflowError()
	var ce *temporal.CanceledError
	if !errors.As(err, &ce) {
		t.Fatalf("want cancelled, got %v", err)
	}
	if discarded.BackupID != "backup-1" || len(discarded.Locations) != 3 {
		t.Fatalf("cleanup not run: %+v", discarded)
	}
	// the cleanup names the backup by more than its id, so that it never
	// removes another backup's manifest under the same id
	if discarded.Host != "h" || !discarded.Started.Equal(plan().Started) {
		t.Fatalf("cleanup does not identify the backup: %+v", discarded)
	}
}

func TestBackupWorkflowPauseHoldsNoActivityAndResumes(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(plan(), nil)
	var running, calls atomic.Int32
	env.OnActivity(a.BackupComponent, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ComponentInput) (repository.ComponentManifest, error) {
		n := calls.Add(1)
		running.Add(1)
		defer running.Add(-1)
		if n == 1 {
			return repository.ComponentManifest{}, uploadUntilCancelled(ctx) // paused mid-upload
		}
		return okComponent(ctx, in)
	})
	env.OnActivity(a.CommitBackup, mock.Anything, mock.Anything).Return(activities.BackupSummary{Status: "completed"}, nil)
	env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(repository.CopyStats{}, nil)
	env.OnActivity(a.Verify, mock.Anything, mock.Anything).Return(activities.VerifyReport{Passed: true}, nil)
	var whilePaused Progress
	var activeWhilePaused int32 = -1
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalPause, nil) }, 100*time.Millisecond)
	env.RegisterDelayedCallback(func() {
		v, _ := env.QueryWorkflow(QueryProgress)
		v.Get(&whilePaused)
		activeWhilePaused = running.Load()
	}, time.Hour)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalResume, nil) }, 2*time.Hour)
	env.ExecuteWorkflow(BackupWorkflow, req)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if whilePaused.Status != StatusPaused || !whilePaused.Paused || activeWhilePaused != 0 {
		t.Fatalf("while paused: status %s, %d activities running", whilePaused.Status, activeWhilePaused)
	}
	if calls.Load() != 3 { // first component twice (paused, resumed), second once
		t.Fatalf("%d component calls, want 3", calls.Load())
	}
	var out BackupOutcome
	env.GetWorkflowResult(&out)
	if out.Status != StatusCompleted {
		t.Fatalf("status %s", out.Status)
	}
}

// A resume that arrives before the paused activity has acknowledged its
// cancellation must not fail the backup (found in review).
func TestBackupWorkflowQuickPauseResume(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(plan(), nil)
	var calls atomic.Int32
	env.OnActivity(a.BackupComponent, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ComponentInput) (repository.ComponentManifest, error) {
		if calls.Add(1) == 1 {
			return repository.ComponentManifest{}, uploadUntilCancelled(ctx)
		}
		return okComponent(ctx, in)
	})
	env.OnActivity(a.CommitBackup, mock.Anything, mock.Anything).Return(activities.BackupSummary{Status: "completed"}, nil)
	env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(repository.CopyStats{}, nil)
	env.OnActivity(a.Verify, mock.Anything, mock.Anything).Return(activities.VerifyReport{Passed: true}, nil)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalPause, nil)
		env.SignalWorkflow(SignalResume, nil)
	}, 100*time.Millisecond)
	env.ExecuteWorkflow(BackupWorkflow, req)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("quick pause/resume failed the backup: %v", err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d component calls, want 3", calls.Load())
	}
}

// The activities' retry policies refuse to retry exactly the codes whose
// errors the activities mark non-retryable: one table decides both.
func TestRetryPoliciesFollowTheCodesTable(t *testing.T) {
	for _, c := range codes.All() {
		listed := slices.Contains(nonRetryable, string(c))
		if listed == c.Retryable() {
			t.Errorf("%s: retryable %v, in the non-retryable list %v", c, c.Retryable(), listed)
		}
	}
}

// An enrolled host's job: its files are read and its repository written
// on its own queue; the workflow (and the catalog's activities) stay on
// the server.
func TestHostJobsActivitiesRunOnTheHostsQueue(t *testing.T) {
	env := newEnv(t)
	var mu sync.Mutex
	queues := map[string]string{}
	on := func(name string) func(ctx context.Context) {
		return func(ctx context.Context) {
			mu.Lock()
			queues[name] = activity.GetInfo(ctx).TaskQueue
			mu.Unlock()
		}
	}
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.PrepareInput) (*backup.Plan, error) {
		on("prepare")(ctx)
		p := plan()
		p.ID, p.Host = in.BackupID, "gw-a"
		return p, nil
	})
	env.OnActivity(a.BackupComponent, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ComponentInput) (repository.ComponentManifest, error) {
		on("component")(ctx)
		return okComponent(ctx, in)
	})
	env.OnActivity(a.CommitBackup, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.CommitInput) (activities.BackupSummary, error) {
		on("commit")(ctx)
		return activities.BackupSummary{BackupID: "backup-1", Status: "completed"}, nil
	})
	r := req
	r.Locations, r.Verify, r.HostQueue, r.Host = []string{"local"}, false, "backup@gw-a", "gw-a"
	env.ExecuteWorkflow(BackupWorkflow, r)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"prepare", "component", "commit"} {
		if queues[n] != "backup@gw-a" {
			t.Errorf("%s ran on %q, not the host's queue: %v", n, queues[n], queues)
		}
	}
	// cancelled: the server removes what the host wrote, in the host's
	// repository (the host cannot read or delete a manifest)
	env = newEnv(t)
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.PrepareInput) (*backup.Plan, error) {
		p := plan()
		p.ID, p.Host = in.BackupID, "gw-a"
		return p, nil
	})
	env.OnActivity(a.BackupComponent, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ComponentInput) (repository.ComponentManifest, error) {
		env.CancelWorkflow()
		return repository.ComponentManifest{}, uploadUntilCancelled(ctx)
	})
	var discarded activities.DiscardInput
	env.OnActivity(a.DiscardBackup, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.DiscardInput) error {
		on("discard")(ctx)
		discarded = in
		return nil
	})
	rc := r
	rc.HostDir = "hosts/host-0123456789ab"
	env.ExecuteWorkflow(BackupWorkflow, rc)
	if queues["discard"] == "backup@gw-a" || discarded.Dir != rc.HostDir || discarded.Host != "gw-a" {
		t.Fatalf("a cancelled host backup's discard ran on %q with %+v", queues["discard"], discarded)
	}
	// a plan for another backup or host is refused
	env = newEnv(t)
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.PrepareInput) (*backup.Plan, error) {
		p := plan()
		p.ID, p.Host = in.BackupID, "gw-b"
		return p, nil
	})
	env.ExecuteWorkflow(BackupWorkflow, r)
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "prepared backup") {
		t.Fatalf("a plan naming another host: %v", err)
	}
}
