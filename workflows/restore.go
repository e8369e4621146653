package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"backupd/activities"
	"backupd/codes"
)

// RestoreRequest starts a restore job.
type RestoreRequest struct {
	JobID        string   `json:"job_id"`
	BackupID     string   `json:"backup_id"`
	Location     string   `json:"location"`
	Target       string   `json:"target"`
	Components   []string `json:"components,omitempty"`
	Paths        []string `json:"paths,omitempty"`
	Overwrite    bool     `json:"overwrite"`
	VerifyBefore bool     `json:"verify_before"`
}

// RestoreOutcome is the restore workflow's result.
type RestoreOutcome struct {
	Result   activities.RestoreResult `json:"result"`
	Progress Progress                 `json:"progress"`
}

// RestoreWorkflow: verify the backup's structure before → restore (every
// file is verified against the manifest as it is written).
func RestoreWorkflow(ctx workflow.Context, req RestoreRequest) (*RestoreOutcome, error) {
	p := &Progress{Status: StatusInProgress, JobID: req.JobID, JobType: "restore", BackupID: req.BackupID,
		ComponentsCompleted: []string{}, ComponentsRemaining: append([]string{}, req.Components...),
		StorageStatus: map[string]string{req.Location: "reading"}, Started: workflow.Now(ctx)}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) {
		return p.snapshot(workflow.Now(ctx)), nil
	}); err != nil {
		return nil, err
	}
	setStatus(ctx, StatusInProgress)
	if req.VerifyBefore {
		p.CurrentOperation = "verifying_backup"
		var rep activities.VerifyReport
		err := workflow.ExecuteActivity(longActivity(ctx), a.Verify, activities.VerifyInput{
			BackupID: req.BackupID, Location: req.Location}).Get(ctx, &rep)
		if err != nil {
			return nil, finish(ctx, p, StatusFailed, err)
		}
		if !rep.Passed {
			return nil, finish(ctx, p, StatusFailed, temporal.NewNonRetryableApplicationError(
				"the backup failed verification before the restore; nothing was written", string(codes.VerificationFailed), nil, rep))
		}
		p.Percentage = 10
	}
	p.CurrentOperation = "restoring"
	var res activities.RestoreResult
	err := workflow.ExecuteActivity(longActivity(ctx), a.Restore, activities.RestoreInput{
		BackupID: req.BackupID, Location: req.Location, Target: req.Target, Components: req.Components,
		Paths: req.Paths, Overwrite: req.Overwrite}).Get(ctx, &res)
	if ctx.Err() != nil {
		now := workflow.Now(ctx)
		p.Status, p.Finished = StatusCancelled, &now
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		setStatus(dctx, StatusCancelled)
		return nil, temporal.NewCanceledError("restore cancelled")
	}
	if err != nil {
		return nil, finish(ctx, p, StatusFailed, err)
	}
	p.Files, p.BytesProcessed = res.Files, res.Bytes
	p.Warnings = int64(len(res.Warnings))
	p.ComponentsCompleted, p.ComponentsRemaining = p.ComponentsRemaining, []string{}
	_ = finish(ctx, p, StatusCompleted, nil)
	return &RestoreOutcome{Result: res, Progress: p.snapshot(workflow.Now(ctx))}, nil
}

// VerifyRequest starts a verification job.
type VerifyRequest struct {
	JobID           string  `json:"job_id"`
	BackupID        string  `json:"backup_id"`
	Location        string  `json:"location"`
	ReadDataPercent float64 `json:"read_data_percent"`
	ExtractTest     bool    `json:"extract_test"`
}

// VerifyWorkflow checks a backup (manifest signature, trees, index, pack
// headers, a share or all of the data) and optionally restores it into a
// scratch directory; the report is the result.
func VerifyWorkflow(ctx workflow.Context, req VerifyRequest) (*activities.VerifyReport, error) {
	p := &Progress{Status: StatusInProgress, JobID: req.JobID, JobType: "verify", BackupID: req.BackupID,
		CurrentOperation: "verifying", ComponentsCompleted: []string{}, ComponentsRemaining: []string{},
		StorageStatus: map[string]string{req.Location: "reading"}, Started: workflow.Now(ctx)}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) {
		return p.snapshot(workflow.Now(ctx)), nil
	}); err != nil {
		return nil, err
	}
	setStatus(ctx, StatusInProgress)
	var rep activities.VerifyReport
	err := workflow.ExecuteActivity(longActivity(ctx), a.Verify, activities.VerifyInput{BackupID: req.BackupID,
		Location: req.Location, ReadDataPercent: req.ReadDataPercent, ExtractTest: req.ExtractTest}).Get(ctx, &rep)
	if err != nil {
		return nil, finish(ctx, p, StatusFailed, err)
	}
	status := StatusCompleted
	if !rep.Passed {
		status = StatusFailed
		p.fail("verification failed")
	}
	_ = finish(ctx, p, status, nil)
	return &rep, nil
}

// CleanupRequest removes chosen backups from locations and collects garbage.
type CleanupRequest struct {
	JobID               string   `json:"job_id"`
	Locations           []string `json:"locations"`
	BackupIDs           []string `json:"backup_ids"`
	DryRun              bool     `json:"dry_run"`
	SafetyWindowSeconds int64    `json:"safety_window_seconds"` // 0: the repository default
	// Immediate deletes unreferenced packs at once (no safety window):
	// only when no backup can be writing to these locations.
	Immediate bool `json:"immediate"`
}

// CleanupOutcome reports per location.
type CleanupOutcome struct {
	Removed map[string][]string          `json:"removed"`
	GC      map[string]GCLocationOutcome `json:"gc"`
}

// GCLocationOutcome is one location's garbage collection.
type GCLocationOutcome struct {
	Packs      int   `json:"packs"`
	Deleted    int   `json:"deleted"`
	BytesFreed int64 `json:"bytes_freed"`
	Condemned  int   `json:"condemned"`
}

// CleanupWorkflow: forget the given backups (unless dry run) → garbage
// collection per location (dry run: what would be freed, computed).
func CleanupWorkflow(ctx workflow.Context, req CleanupRequest) (*CleanupOutcome, error) {
	p := &Progress{Status: StatusInProgress, JobID: req.JobID, JobType: "cleanup", CurrentOperation: "cleaning",
		ComponentsCompleted: []string{}, ComponentsRemaining: []string{}, StorageStatus: map[string]string{},
		Started: workflow.Now(ctx)}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) {
		return p.snapshot(workflow.Now(ctx)), nil
	}); err != nil {
		return nil, err
	}
	setStatus(ctx, StatusInProgress)
	out := &CleanupOutcome{Removed: map[string][]string{}, GC: map[string]GCLocationOutcome{}}
	for _, loc := range req.Locations {
		p.StorageStatus[loc] = "cleaning"
		if !req.DryRun && len(req.BackupIDs) > 0 {
			if err := workflow.ExecuteActivity(shortActivity(ctx), a.Forget, activities.ForgetInput{
				Location: loc, BackupIDs: req.BackupIDs}).Get(ctx, nil); err != nil {
				return nil, finish(ctx, p, StatusFailed, err)
			}
			out.Removed[loc] = req.BackupIDs
		}
		var gc struct {
			Packs      int   `json:"packs"`
			Deleted    int   `json:"deleted"`
			BytesFreed int64 `json:"bytes_freed"`
			Condemned  int   `json:"condemned"`
		}
		err := workflow.ExecuteActivity(longActivity(ctx), a.GC, activities.GCInput{Location: loc, DryRun: req.DryRun,
			SafetyWindow: safetyWindow(req)}).Get(ctx, &gc)
		if err != nil {
			return nil, finish(ctx, p, StatusFailed, err)
		}
		out.GC[loc] = GCLocationOutcome(gc)
		p.StorageStatus[loc] = "done"
	}
	_ = finish(ctx, p, StatusCompleted, nil)
	return out, nil
}
