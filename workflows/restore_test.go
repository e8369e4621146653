package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"backupd/activities"
	"backupd/codes"
	"backupd/repository"
)

func TestRestoreWorkflowVerifiesFirstAndWritesNothingOnFailure(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Verify, mock.Anything, mock.Anything).Return(activities.VerifyReport{Passed: false}, nil)
	restored := false
	env.OnActivity(a.Restore, mock.Anything, mock.Anything).Return(func(context.Context, activities.RestoreInput) (activities.RestoreResult, error) {
		restored = true
		return activities.RestoreResult{}, nil
	})
	env.ExecuteWorkflow(RestoreWorkflow, RestoreRequest{RestoreInput: activities.RestoreInput{BackupID: "b", Location: "local", Target: "/t"}, JobID: "R1", VerifyBefore: true})
	var ae *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &ae) || ae.Type() != string(codes.VerificationFailed) {
		t.Fatalf("want BACKUP_006, got %v", err)
	}
	if restored {
		t.Fatal("restored a backup that failed verification")
	}
}

func TestRestoreWorkflowReportsResult(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Verify, mock.Anything, mock.Anything).Return(activities.VerifyReport{Passed: true}, nil)
	env.OnActivity(a.CheckRestoreTarget, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.Restore, mock.Anything, mock.Anything).Return(activities.RestoreResult{Files: 7, Bytes: 700, Verified: 7}, nil)
	env.ExecuteWorkflow(RestoreWorkflow, RestoreRequest{RestoreInput: activities.RestoreInput{BackupID: "b", Location: "local", Target: "/t", Components: []string{"data"}}, JobID: "R2", VerifyBefore: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out RestoreOutcome
	env.GetWorkflowResult(&out)
	if out.Result.Verified != 7 || out.Progress.Status != StatusCompleted || out.Progress.ComponentsCompleted[0] != "data" {
		t.Fatalf("outcome %+v", out)
	}
}

func TestVerifyWorkflowFailedReportIsAResult(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.Verify, mock.Anything, mock.Anything).Return(activities.VerifyReport{BackupID: "b",
		Check: &repository.CheckResult{OK: false, DamagedPacks: []string{"data/ab/ab12"}}}, nil)
	env.ExecuteWorkflow(VerifyWorkflow, VerifyRequest{JobID: "V1", BackupID: "b", Location: "local", ReadDataPercent: 100})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var rep activities.VerifyReport
	env.GetWorkflowResult(&rep)
	if rep.Passed || rep.Check.DamagedPacks[0] != "data/ab/ab12" {
		t.Fatalf("report %+v", rep)
	}
	v, _ := env.QueryWorkflow(QueryProgress)
	var p Progress
	v.Get(&p)
	if p.Status != StatusFailed {
		t.Fatalf("status %s", p.Status)
	}
}

func TestCleanupWorkflowDryRunForgetsNothing(t *testing.T) {
	env := newEnv(t)
	forgot := false
	env.OnActivity(a.Forget, mock.Anything, mock.Anything).Return(func(context.Context, activities.ForgetInput) error {
		forgot = true
		return nil
	})
	var windows []activities.GCInput
	env.OnActivity(a.GC, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.GCInput) (*repository.GCResult, error) {
		windows = append(windows, in)
		return &repository.GCResult{Packs: 4, Deleted: 1, BytesFreed: 123, DryRun: in.DryRun}, nil
	})
	env.ExecuteWorkflow(CleanupWorkflow, CleanupRequest{JobID: "C1", Locations: []string{"local", "cloud"},
		BackupIDs: []string{"b1"}, DryRun: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out CleanupOutcome
	env.GetWorkflowResult(&out)
	if forgot || len(windows) != 2 || !windows[0].DryRun || windows[0].SafetyWindow != repository.DefaultSafetyWindow ||
		out.GC["cloud"].BytesFreed != 123 {
		t.Fatalf("dry run: forgot=%v gc=%+v out=%+v", forgot, windows, out)
	}
}

// Named components are restored one activity each, so progress names the
// component and counts the finished ones.
func TestRestoreWorkflowRestoresComponentByComponent(t *testing.T) {
	env := newEnv(t)
	var seen []string
	env.OnActivity(a.CheckRestoreTarget, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(a.Restore, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RestoreInput) (activities.RestoreResult, error) {
		seen = append(seen, strings.Join(in.Components, ","))
		return activities.RestoreResult{Files: 2, Bytes: 10, Components: in.Components}, nil
	})
	env.ExecuteWorkflow(RestoreWorkflow, RestoreRequest{RestoreInput: activities.RestoreInput{BackupID: "b", Location: "local", Target: "/t", Components: []string{"configurations", "data"}}, JobID: "R3"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out RestoreOutcome
	env.GetWorkflowResult(&out)
	if strings.Join(seen, "|") != "configurations|data" || out.Result.Files != 4 ||
		strings.Join(out.Progress.ComponentsCompleted, ",") != "configurations,data" {
		t.Fatalf("restores %v, outcome %+v", seen, out)
	}
}

// Whether a restore may write into its target is decided once, before the
// first write: a non-empty target is refused with nothing written, and a
// step that fails in planning and is retried must not then overwrite it
// (the retry once forced overwrite on from its second attempt).
func TestRestoreWorkflowDecidesTargetEmptinessOnce(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.CheckRestoreTarget, mock.Anything, mock.Anything).Return(
		temporal.NewNonRetryableApplicationError("/t/data: target directory is not empty", string(codes.RestoreConflict), nil))
	restored := false
	env.OnActivity(a.Restore, mock.Anything, mock.Anything).Return(func(context.Context, activities.RestoreInput) (activities.RestoreResult, error) {
		restored = true
		return activities.RestoreResult{}, nil
	})
	env.ExecuteWorkflow(RestoreWorkflow, RestoreRequest{RestoreInput: activities.RestoreInput{BackupID: "b", Location: "local", Target: "/t"}, JobID: "R4"})
	var ae *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &ae) || ae.Type() != string(codes.RestoreConflict) {
		t.Fatalf("want BACKUP_008, got %v", err)
	}
	if restored {
		t.Fatal("restored into a target that was not empty")
	}

	// an empty target: every attempt of the step carries the decision
	env = newEnv(t)
	env.OnActivity(a.CheckRestoreTarget, mock.Anything, mock.Anything).Return(nil)
	var checked []bool
	env.OnActivity(a.Restore, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RestoreInput) (activities.RestoreResult, error) {
		checked = append(checked, in.TargetChecked)
		if len(checked) == 1 {
			return activities.RestoreResult{}, errors.New("storage hiccup while planning")
		}
		return activities.RestoreResult{Files: 1}, nil
	})
	env.ExecuteWorkflow(RestoreWorkflow, RestoreRequest{RestoreInput: activities.RestoreInput{BackupID: "b", Location: "local", Target: "/t"}, JobID: "R5"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(checked) != 2 || !checked[0] || !checked[1] {
		t.Fatalf("attempts saw TargetChecked %v", checked)
	}
}

// An enrolled host's backups are forgotten in its own repository, which
// is collected (untrusted) after the location's own; a host repository
// named for collection is collected though none of its backups goes.
func TestCleanupWorkflowCleansHostsRepositories(t *testing.T) {
	env := newEnv(t)
	var forgets []activities.ForgetInput
	env.OnActivity(a.Forget, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ForgetInput) error {
		forgets = append(forgets, in)
		return nil
	})
	var gcs []activities.GCInput
	env.OnActivity(a.GC, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.GCInput) (*repository.GCResult, error) {
		gcs = append(gcs, in)
		if in.Dir == "hosts/hbad" {
			return nil, temporal.NewNonRetryableApplicationError("index file 1234: corrupt", string(codes.CorruptionDetected), nil)
		}
		return &repository.GCResult{Packs: 3, Deleted: 1, BytesFreed: 100, PackBytes: int64(1000 + len(gcs)), RepositoryBytes: int64(2000 + len(gcs))}, nil
	})
	env.ExecuteWorkflow(CleanupWorkflow, CleanupRequest{JobID: "C2", Locations: []string{"local"},
		BackupIDs: []string{"own-1", "gw-1", "gw-2"}, HostDirs: map[string]string{"gw-1": "hosts/h1", "gw-2": "hosts/h1"},
		CollectDirs: map[string][]string{"local": {"hosts/h0", "hosts/h1", "hosts/hbad"}}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out CleanupOutcome
	env.GetWorkflowResult(&out)
	if len(forgets) != 2 || forgets[0].Dir != "" || strings.Join(forgets[0].BackupIDs, ",") != "own-1" ||
		forgets[1].Dir != "hosts/h1" || strings.Join(forgets[1].BackupIDs, ",") != "gw-1,gw-2" {
		t.Fatalf("forgets %+v", forgets)
	}
	if len(gcs) != 4 || gcs[0].Dir != "" || gcs[1].Dir != "hosts/h0" || gcs[2].Dir != "hosts/h1" || gcs[3].Dir != "hosts/hbad" {
		t.Fatalf("collections %+v", gcs)
	}
	// one host's broken repository is reported; the others were cleaned
	if e := out.Hosts["hosts/hbad"]["local"].Error; !strings.Contains(e, "corrupt") {
		t.Fatalf("the failing host repository: %+v", out.Hosts["hosts/hbad"])
	}
	v, _ := env.QueryWorkflow(QueryProgress)
	var p Progress
	v.Get(&p)
	if p.Status != StatusPartial || p.Errors != 1 {
		t.Fatalf("status %s, %d errors", p.Status, p.Errors)
	}
	if strings.Join(out.Removed["local"], ",") != "own-1,gw-1,gw-2" || out.Hosts["hosts/h1"]["local"].BytesFreed != 100 ||
		out.Hosts["hosts/h0"]["local"].PackBytes != 1002 || len(out.GC) != 1 {
		t.Fatalf("outcome %+v", out)
	}
	if st := hostStored(&out); st["hosts/h1"]["local"] != 2003 || st["hosts/h0"]["local"] != 2002 || st["hosts/hbad"] != nil {
		t.Fatalf("stored %v", st)
	}
}
