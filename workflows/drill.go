package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"backupd/activities"
	"backupd/api"
)

// DrillRequest is one run of a restore drill (a drill's Temporal
// schedule starts it with JobID and RunID empty: they are drawn then).
type DrillRequest struct {
	DrillID      string                    `json:"drill_id"`
	JobID        string                    `json:"job_id,omitempty"`
	RunID        string                    `json:"run_id,omitempty"`
	Plan         activities.DrillPlanInput `json:"plan"`
	Checks       []api.DrillCheck          `json:"checks,omitempty"`
	CatalogQueue string                    `json:"catalog_queue,omitempty"`
	Subtype      string                    `json:"subtype,omitempty"` // scheduled | manual
	// Notify: a failed run is a failure, a passed one that found an
	// objective missed a warning.
	Notify *NotifyPrefs `json:"notify,omitempty"`
}

// DrillWorkflow: the catalog chooses the backups and measures each
// component's recovery point → each backup is restored into a scratch
// directory on the worker, component by component, every file compared
// with the manifest, timed, its checks run, and removed → the report
// (pass or fail, RTO and RPO against the objectives) is recorded. A run
// that finds damage passes the workflow and fails the drill: the report
// is the result.
func DrillWorkflow(ctx workflow.Context, req DrillRequest) (*api.DrillReport, error) {
	if req.JobID == "" || req.RunID == "" {
		short := scheduledIDs(ctx).job
		req.JobID, req.RunID = "DRILL-JOB-"+short, "DRILL-"+short
		_ = workflow.UpsertTypedSearchAttributes(ctx, AttrJobID.ValueSet(req.JobID))
	}
	if req.Subtype == "" {
		req.Subtype = "scheduled"
	}
	p := &Progress{Status: StatusInProgress, JobID: req.JobID, JobType: api.JobDrill, CurrentOperation: "planning",
		ComponentsCompleted: []string{}, ComponentsRemaining: []string{}, StorageStatus: map[string]string{},
		Started: workflow.Now(ctx)}
	if err := serveProgress(ctx, p); err != nil {
		return nil, err
	}
	start := recordJob(ctx, req.CatalogQueue, drillRecord(ctx, req, p))
	rep := &api.DrillReport{RunID: req.RunID, DrillID: req.DrillID, JobID: req.JobID, Started: p.Started.UTC().Format(time.RFC3339Nano),
		Backups: []api.DrillBackup{}, RPO: []api.ComponentRPO{}, Breaches: []api.ObjectiveBreach{}}
	err := runDrill(ctx, req, p, rep)
	rep.Finished = workflow.Now(ctx).UTC().Format(time.RFC3339Nano)
	status := StatusCompleted
	if err != nil {
		status = StatusFailed
		rep.Passed = false
		if rep.Error == "" {
			rep.Error, _ = errorOf(err)
		}
	} else if !rep.Passed {
		status = StatusFailed
		p.fail("drill failed")
	}
	_ = finish(ctx, p, status, nil)
	if req.CatalogQueue != "" {
		rec := drillRecord(ctx, req, p)
		rec.Error, rec.ErrorCode = errorOf(err)
		if err == nil && !rep.Passed {
			rec.Error = drillFailure(rep)
		}
		rec.Report = rawJSON(rep)
		awaitRecords(ctx, req.CatalogQueue, start, rec)
		notifyDrill(ctx, req, rep, rec)
	}
	return rep, err
}

// notifyDrill delivers a run's outcome when the drill asks for it.
func notifyDrill(ctx workflow.Context, req DrillRequest, rep *api.DrillReport, rec activities.JobRecord) {
	n := req.Notify
	if n == nil {
		return
	}
	event, want, msg := "success", n.OnSuccess, "Restore drill "+req.DrillID+" passed"
	switch {
	case !rep.Passed:
		event, want, msg = "failure", n.OnFailure, "Restore drill "+req.DrillID+" failed"
	case len(rep.Breaches) > 0:
		event, want, msg = "warning", n.OnWarning, "Restore drill "+req.DrillID+" passed; a recovery objective was missed"
	}
	if !want {
		return
	}
	details := map[string]any{"drill_id": req.DrillID, "run_id": rep.RunID, "passed": rep.Passed, "breaches": rep.Breaches}
	if rec.Error != "" {
		details["error"] = clip(rec.Error, 2000)
	}
	payload := rawJSON(map[string]any{"event": "drill." + event, "job_id": req.JobID, "name": req.DrillID,
		"status": rec.Status, "operation": api.JobDrill, "message": msg, "details": details,
		"timestamp": workflow.Now(ctx).UTC().Format(time.RFC3339)})
	sendNotification(ctx, req.CatalogQueue, req.JobID, event, payload)
}

func runDrill(ctx workflow.Context, req DrillRequest, p *Progress, rep *api.DrillReport) error {
	var plan activities.DrillPlan
	if req.CatalogQueue != "" {
		if err := workflow.ExecuteActivity(catalogCtx(ctx, req.CatalogQueue), cat.PlanDrill, req.Plan).Get(ctx, &plan); err != nil {
			return err
		}
	}
	rep.RPO = append(rep.RPO, plan.RPO...)
	for _, r := range plan.RPO {
		if !r.Breached {
			continue
		}
		b := api.ObjectiveBreach{Component: r.Component, Objective: "rpo", ObjectiveSeconds: *r.ObjectiveSeconds, MeasuredSeconds: -1,
			Message: fmt.Sprintf("component %s has no completed backup (recovery point objective %s)", r.Component, secondsText(float64(*r.ObjectiveSeconds)))}
		if r.AgeSeconds != nil {
			b.MeasuredSeconds = *r.AgeSeconds
			b.Message = fmt.Sprintf("component %s: the newest completed backup is %s old, past its recovery point objective of %s",
				r.Component, secondsText(*r.AgeSeconds), secondsText(float64(*r.ObjectiveSeconds)))
		}
		rep.Breaches = append(rep.Breaches, b)
	}
	if plan.Problem != "" {
		rep.Error = plan.Problem
		return nil
	}
	rep.Passed = true
	for _, t := range plan.Targets {
		p.ComponentsRemaining = append(p.ComponentsRemaining, t.BackupID)
	}
	restored := map[string]bool{}
	for _, t := range plan.Targets {
		db := api.DrillBackup{BackupID: t.BackupID, Location: t.Location, Components: []api.DrillComponent{}, Checks: []api.DrillCheckRun{}}
		if !t.Taken.IsZero() {
			db.Taken = t.Taken.UTC().Format(time.RFC3339)
		}
		if t.Problem != "" {
			db.Error = t.Problem
		} else {
			p.CurrentOperation, p.CurrentComponent = "restoring", t.BackupID
			p.StorageStatus[t.Location] = "reading"
			p.show(ctx)
			err := workflow.ExecuteActivity(longActivity(ctx), a.DrillRestore, activities.DrillRestoreInput{RunID: req.RunID,
				BackupID: t.BackupID, Location: t.Location, Components: t.Components, Checks: req.Checks, RTO: plan.RTO}).Get(ctx, &db)
			if err != nil {
				return err
			}
		}
		rep.Backups = append(rep.Backups, db)
		rep.Passed = rep.Passed && db.Passed
		// what the run proved of the backup's integrity, recorded as a
		// verification job would: passed when every component of it was
		// restored and compared whole (the checks are the application's
		// word, not the data's), failed when any file was found damaged
		intact, damaged := true, false
		for _, c := range db.Components {
			intact = intact && c.Passed
			damaged = damaged || len(c.Damaged) > 0
		}
		if t.Problem == "" && req.CatalogQueue != "" && db.Error == "" && (damaged || (t.Whole && intact)) {
			vr := activities.VerifyResult{BackupID: t.BackupID, Location: t.Location, Passed: !damaged, At: workflow.Now(ctx)}
			if err := workflow.ExecuteActivity(catalogCtx(ctx, req.CatalogQueue), cat.RecordVerification, vr).Get(ctx, nil); err != nil {
				return err
			}
		}
		for _, c := range db.Components {
			if c.ObjectiveSeconds != nil && c.RTOSeconds > float64(*c.ObjectiveSeconds) {
				rep.Breaches = append(rep.Breaches, api.ObjectiveBreach{Component: c.Component, Objective: "rto",
					ObjectiveSeconds: *c.ObjectiveSeconds, MeasuredSeconds: c.RTOSeconds,
					Message: fmt.Sprintf("component %s took %s to restore from backup %s, past its recovery time objective of %s",
						c.Component, secondsText(c.RTOSeconds), t.BackupID, secondsText(float64(*c.ObjectiveSeconds)))})
			}
		}
		for _, c := range db.Components {
			restored[c.Component] = true
		}
		p.ComponentsRemaining = p.ComponentsRemaining[1:]
		p.ComponentsCompleted = append(p.ComponentsCompleted, t.BackupID)
		p.Percentage = 100 * float64(len(p.ComponentsCompleted)) / float64(len(plan.Targets))
	}
	// a check of a component no backup of this run restored never ran:
	// the drill does not pass without it
	for _, ch := range req.Checks {
		if ch.Component != "" && !restored[ch.Component] && len(rep.Backups) > 0 {
			b := &rep.Backups[len(rep.Backups)-1]
			b.Checks = append(b.Checks, api.DrillCheckRun{Type: ch.Type, Component: ch.Component,
				Error: "not run: no backup of component " + ch.Component + " was restored in this run"})
			rep.Passed = false
		}
	}
	return nil
}

func drillRecord(ctx workflow.Context, req DrillRequest, p *Progress) activities.JobRecord {
	rec := otherRecord(ctx, api.JobDrill, req.JobID, req.RunID, "", p)
	rec.Subtype = req.Subtype
	rec.Name = req.DrillID
	return rec
}

// drillFailure is a failed drill's one-line reason: the first problem of
// each backup, and how many files were damaged.
func drillFailure(rep *api.DrillReport) string {
	if rep.Error != "" {
		return rep.Error
	}
	var parts []string
	for _, b := range rep.Backups {
		if b.Passed {
			continue
		}
		if b.Error != "" {
			parts = append(parts, b.BackupID+": "+b.Error)
			continue
		}
		for _, c := range b.Components {
			if !c.Passed {
				what := c.Error
				if len(c.Damaged) > 0 {
					// (named in the report, which only operators read)
					what = fmt.Sprintf("%d damaged file(s)", len(c.Damaged))
				}
				parts = append(parts, fmt.Sprintf("%s component %s: %s", b.BackupID, c.Component, what))
			}
		}
		for _, ch := range b.Checks {
			if !ch.Passed {
				parts = append(parts, fmt.Sprintf("%s %s check of %s: %s", b.BackupID, ch.Type, ch.Component, ch.Error))
			}
		}
	}
	return "restore drill failed: " + strings.Join(parts, "; ")
}

// secondsText says a duration in seconds the way people read it.
func secondsText(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}
