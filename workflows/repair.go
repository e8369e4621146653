package workflows

import (
	"go.temporal.io/sdk/workflow"

	"backupd/activities"
	"backupd/api"
)

// RepairRequest re-copies backups to the locations the 3-2-1 policy says
// they are missing from.
type RepairRequest struct {
	JobID        string       `json:"job_id"`
	RepairID     string       `json:"repair_id"`
	Items        []RepairItem `json:"items"`
	CatalogQueue string       `json:"catalog_queue,omitempty"`
}

// RepairItem is one backup: where it is (healthy copies first) and where
// it is missing. The API answers it as it is (the plan, the report).
type RepairItem = api.RepairItem

// RepairOutcome says what was copied where, and what could not be.
type RepairOutcome = api.RepairOutcome

// RepairWorkflow copies each backup to each location it is missing from,
// from the first source that reads back whole (a copy verifies every blob
// it reads, so a damaged source fails and the next is tried).
func RepairWorkflow(ctx workflow.Context, req RepairRequest) (*RepairOutcome, error) {
	p := &Progress{Status: StatusInProgress, JobID: req.JobID, JobType: api.JobRepair, CurrentOperation: "replicating",
		ComponentsCompleted: []string{}, ComponentsRemaining: []string{}, StorageStatus: map[string]string{},
		Started: workflow.Now(ctx)}
	if err := serveProgress(ctx, p); err != nil {
		return nil, err
	}
	start := recordJob(ctx, req.CatalogQueue, otherRecord(ctx, api.JobRepair, req.JobID, req.RepairID, "", p))
	out := &RepairOutcome{Copied: map[string][]string{}, Failed: map[string]string{}}
	for i, it := range req.Items {
		p.CurrentComponent = it.BackupID
		for _, to := range it.Missing {
			var lastErr error
			for _, from := range it.Sources {
				lastErr = workflow.ExecuteActivity(longActivity(ctx), a.Replicate,
					activities.ReplicateInput{BackupID: it.BackupID, From: from, To: to, Dir: it.Repository}).Get(ctx, nil)
				if lastErr == nil || ctx.Err() != nil {
					break
				}
			}
			if ctx.Err() != nil {
				break
			}
			if lastErr != nil {
				out.Failed[it.BackupID+" -> "+to] = errText(lastErr)
				p.fail("%s to %s: %s", it.BackupID, to, errText(lastErr))
				continue
			}
			out.Copied[it.BackupID] = append(out.Copied[it.BackupID], to)
		}
		p.Percentage = 100 * float64(i+1) / float64(len(req.Items))
	}
	status := StatusCompleted
	switch {
	case ctx.Err() != nil:
		status = StatusCancelled
	case len(out.Failed) > 0 && len(out.Copied) > 0:
		status = StatusPartial
	case len(out.Failed) > 0:
		status = StatusFailed
	}
	_ = finish(ctx, p, status, nil)
	rec := otherRecord(ctx, api.JobRepair, req.JobID, req.RepairID, "", p)
	rec.Added = out.Copied
	rec.Report = rawJSON(map[string]any{"repair_id": req.RepairID, "items": req.Items, "outcome": out, "status": JobStatus(status)})
	awaitRecords(ctx, req.CatalogQueue, start, rec)
	return out, nil
}
