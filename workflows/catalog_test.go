package workflows

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"backupd/activities"
	"backupd/backup"
	"backupd/codes"
	"backupd/repository"
)

func TestBackupRecordsStartAndEndInTheCatalog(t *testing.T) {
	env := newEnv(t)
	env.RegisterActivity(&activities.Catalog{})
	var mu sync.Mutex
	var recs []activities.JobRecord
	env.OnActivity(cat.RecordJob, mock.Anything, mock.Anything).Return(func(_ context.Context, r activities.JobRecord) error {
		mu.Lock()
		recs = append(recs, r)
		mu.Unlock()
		return nil
	})
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(plan(), nil)
	env.OnActivity(a.BackupComponent, mock.Anything, mock.Anything).Return(okComponent)
	env.OnActivity(a.CommitBackup, mock.Anything, mock.Anything).Return(activities.BackupSummary{BackupID: "backup-1", Status: "completed"}, nil)
	env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(repository.CopyStats{}, nil)
	env.OnActivity(a.Verify, mock.Anything, mock.Anything).Return(activities.VerifyReport{BackupID: "backup-1", Passed: true}, nil)
	r := req
	r.CatalogQueue = "cat"
	r.BackupID = "backup-1"
	r.Name = "nightly"
	env.ExecuteWorkflow(BackupWorkflow, r)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want start and end", len(recs))
	}
	start, end := recs[0], recs[1]
	if start.Status != "running" || start.Finished != nil || start.Backup.Status != StatusInProgress {
		t.Fatalf("start record: %+v", start)
	}
	b := end.Backup
	if end.Status != StatusCompleted || end.Finished == nil || b.Status != StatusCompleted || b.IntegrityCheck != "passed" ||
		len(b.Locations) != 3 || b.ComponentSizes["data"] != 1000 || b.Name != "nightly" || end.Result == nil {
		t.Fatalf("end record: %+v backup %+v", end, b)
	}
}

func TestFailedBackupIsRecordedWithItsCode(t *testing.T) {
	env := newEnv(t)
	last := lastRecord(env)
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(nil,
		temporal.NewNonRetryableApplicationError("no key", string(codes.KeyUnavailable), nil))
	r := req
	r.CatalogQueue = "cat"
	r.BackupID = "backup-2"
	env.ExecuteWorkflow(BackupWorkflow, r)
	if env.GetWorkflowError() == nil {
		t.Fatal("backup without key succeeded")
	}
	if last.Status != StatusFailed || last.ErrorCode != string(codes.KeyUnavailable) || last.Backup.Status != StatusFailed ||
		last.Backup.ErrorCode != string(codes.KeyUnavailable) {
		t.Fatalf("record: %+v backup %+v", last, last.Backup)
	}
}

func TestScheduledRunGetsIDsFromItsRun(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PrepareInput) (*backup.Plan, error) {
		if in.BackupID == "" {
			t.Error("no backup id")
		}
		return nil, temporal.NewNonRetryableApplicationError("stop", string(codes.InvalidConfiguration), nil)
	})
	r := req
	r.JobID, r.BackupID = "", ""
	env.ExecuteWorkflow(BackupWorkflow, r)
}

// A backup cancelled while it is still being prepared ends cancelled (and
// is recorded so), not failed.
func TestCancelDuringPrepareIsCancelled(t *testing.T) {
	env := newEnv(t)
	last := lastRecord(env)
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.PrepareInput) (*backup.Plan, error) {
		return nil, uploadUntilCancelled(ctx)
	})
	env.OnActivity(a.DiscardBackup, mock.Anything, mock.Anything).Return(nil)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)
	r := req
	r.CatalogQueue, r.BackupID = "cat", "backup-3"
	env.ExecuteWorkflow(BackupWorkflow, r)
	var ce *temporal.CanceledError
	if err := env.GetWorkflowError(); !errors.As(err, &ce) {
		t.Fatalf("want cancelled, got %v", err)
	}
	if last.Status != StatusCancelled || last.Backup.Status != StatusCancelled {
		t.Fatalf("record: %+v", last)
	}
}

// A failed job's error is what a user reads: the failure's own message
// and code, never the SDK's chain ("activity error (type: …,
// scheduledEventID: …) … (type: wrapError, retryable: true)") with the
// text repeated at each level.
func TestFailedJobErrorIsTheFailureNotTheChain(t *testing.T) {
	for name, actErr := range map[string]error{
		"coded":   temporal.NewNonRetryableApplicationError(`BACKUP_003: unknown component "x"`, string(codes.InvalidConfiguration), errors.New(`BACKUP_003: unknown component "x"`)),
		"wrapped": temporal.NewNonRetryableApplicationError("reading /srv/data: disk on fire", "wrapError", nil),
	} {
		t.Run(name, func(t *testing.T) {
			env := newEnv(t)
			last := lastRecord(env)
			env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(nil, actErr)
			r := req
			r.CatalogQueue = "cat"
			env.ExecuteWorkflow(BackupWorkflow, r)
			if env.GetWorkflowError() == nil {
				t.Fatal("the backup succeeded")
			}
			if strings.Count(last.Error, "disk on fire")+strings.Count(last.Error, "unknown component") != 1 {
				t.Fatalf("error text repeats the failure: %q", last.Error)
			}
			for _, text := range []string{last.Error, string(last.Result)} {
				if strings.Contains(text, "activity error") || strings.Contains(text, "(type:") {
					t.Fatalf("error text is the SDK's chain: %q", text)
				}
			}
			if name == "coded" && (last.ErrorCode != string(codes.InvalidConfiguration) || last.Error != `unknown component "x"`) {
				t.Fatalf("coded failure recorded as %q %q", last.ErrorCode, last.Error)
			}
		})
	}
}

// lastRecord registers the catalog's activity in env and keeps the last
// job record the workflow sends it.
func lastRecord(env *testsuite.TestWorkflowEnvironment) *activities.JobRecord {
	env.RegisterActivity(&activities.Catalog{})
	last := &activities.JobRecord{}
	env.OnActivity(cat.RecordJob, mock.Anything, mock.Anything).Return(func(_ context.Context, r activities.JobRecord) error {
		*last = r
		return nil
	})
	return last
}

// An incremental backup asks the catalog for its parent's candidates and
// hands them to the worker; a catalog that fails costs the hint, not the
// backup.
func TestParentCandidatesFromTheCatalog(t *testing.T) {
	for _, catalogFails := range []bool{false, true} {
		env := newEnv(t)
		last := lastRecord(env)
		var asked activities.ParentQuery
		env.OnActivity(cat.ParentCandidates, mock.Anything, mock.Anything).Return(func(_ context.Context, q activities.ParentQuery) ([]string, error) {
			asked = q
			if catalogFails {
				return nil, temporal.NewNonRetryableApplicationError("database is down", "x", nil)
			}
			return []string{"backup-0"}, nil
		})
		var got []string
		env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PrepareInput) (*backup.Plan, error) {
			got = in.ParentCandidates
			return plan(), nil
		})
		env.OnActivity(a.BackupComponent, mock.Anything, mock.Anything).Return(okComponent)
		env.OnActivity(a.CommitBackup, mock.Anything, mock.Anything).Return(activities.BackupSummary{BackupID: "backup-1", Status: "completed"}, nil)
		env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(repository.CopyStats{}, nil)
		env.OnActivity(a.Verify, mock.Anything, mock.Anything).Return(activities.VerifyReport{BackupID: "backup-1", Passed: true}, nil)
		r := req
		r.CatalogQueue, r.BackupID, r.Type = "cat", "backup-1", "incremental"
		env.ExecuteWorkflow(BackupWorkflow, r)
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		if asked.Type != "incremental" || asked.Location != r.Locations[0] || strings.Join(asked.Components, ",") != "configurations,data" {
			t.Fatalf("catalog asked %+v", asked)
		}
		if want := !catalogFails; (len(got) == 1 && got[0] == "backup-0") != want || last.Status != StatusCompleted {
			t.Fatalf("catalog fails %v: worker got candidates %v; job %s", catalogFails, got, last.Status)
		}
	}
}
