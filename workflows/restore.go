package workflows

import (
	"slices"
	"sort"
	"strings"
	"time"

	"encoding/json"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"backupd/activities"
	"backupd/api"
	"backupd/codes"
)

// RestoreRequest starts a restore job: what to restore where (the
// RestoreInput its restore activities get), and how.
type RestoreRequest struct {
	activities.RestoreInput
	JobID        string `json:"job_id"`
	VerifyBefore bool   `json:"verify_before"`
	VerifyAfter  bool   `json:"verify_after"`
	RestoreID    string `json:"restore_id,omitempty"`
	Subtype      string `json:"subtype,omitempty"` // full | partial
	CatalogQueue string `json:"catalog_queue,omitempty"`
	// Databases are loaded from their dumps after the files; NoFiles
	// restores only them (SkipDumps keeps @dumps out of the files).
	Databases []activities.DatabaseRestoreInput `json:"databases,omitempty"`
	NoFiles   bool                              `json:"no_files,omitempty"`
	// PreRestoreSnapshot first takes a snapshot backup (to
	// SnapshotLocation) of the components the restore overwrites, so a
	// failed or unwanted restore can be rolled back by restoring it.
	PreRestoreSnapshot bool     `json:"pre_restore_snapshot,omitempty"`
	SnapshotLocation   string   `json:"snapshot_location,omitempty"`
	SnapshotComponents []string `json:"snapshot_components,omitempty"`
	// HostDir: on an enrolled host, its own repository (hosts/<id>), where
	// its pre-restore snapshot goes.
	HostDir string `json:"host_dir,omitempty"`
	// HostQueue and Host: an enrolled host restores (as BackupRequest's);
	// RestoreInput.Grant is then the grant it reads the repository under,
	// ended through the catalog when the restore is over.
	HostQueue string `json:"host_queue,omitempty"`
	Host      string `json:"host,omitempty"`
}

// SnapshotID is the id of a restore's pre-restore snapshot.
func SnapshotID(restoreID string) string {
	return "snap-pre-restore-" + strings.ToLower(strings.TrimPrefix(restoreID, "RESTORE-"))
}

// RestoreOutcome is the restore workflow's result.
type RestoreOutcome struct {
	Result   activities.RestoreResult `json:"result"`
	Progress Progress                 `json:"progress"`
}

// RestoreWorkflow: verify the backup's structure before → restore (every
// file is verified against the manifest as it is written) → optionally
// verify the restored files again.
func RestoreWorkflow(ctx workflow.Context, req RestoreRequest) (*RestoreOutcome, error) {
	ctx = onHost(ctx, req.HostQueue)
	if req.Grant != "" && req.CatalogQueue != "" {
		// a cancelled restore's host reads no more at once, not when its
		// activity (which it runs) agrees to stop
		workflow.Go(ctx, func(gctx workflow.Context) {
			gctx.Done().Receive(gctx, nil)
			endGrant(gctx, req)
		})
	}
	var p *Progress
	var start workflow.Future
	out, err := runRestore(ctx, req, &p, &start)
	if req.CatalogQueue != "" && p != nil {
		if p.Finished == nil {
			now := workflow.Now(ctx)
			p.Finished, p.Status = &now, StatusFailed
		}
		rec := restoreRecord(ctx, req, p)
		rec.Error, rec.ErrorCode = errorOf(err)
		if out != nil {
			rec.Result = rawJSON(out)
		} else {
			rec.Result = rawJSON(map[string]any{"progress": p.snapshot(workflow.Now(ctx))})
		}
		awaitRecords(ctx, req.CatalogQueue, start, rec)
	}
	if req.Grant != "" && req.CatalogQueue != "" {
		// over, whatever the outcome: the host reads the repository no more
		endGrant(ctx, req)
	}
	return out, err
}

// endGrant ends a restore's grant through the catalog (on a disconnected
// context: a cancelled restore ends it too).
func endGrant(ctx workflow.Context, req RestoreRequest) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	gctx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{TaskQueue: req.CatalogQueue,
		StartToCloseTimeout: time.Minute, ScheduleToCloseTimeout: time.Hour})
	if gerr := workflow.ExecuteActivity(gctx, cat.EndGrant, req.Grant).Get(dctx, nil); gerr != nil {
		workflow.GetLogger(ctx).Error("the restore grant could not be ended; the server ends it at its expiry", "grant", req.Grant, "error", gerr)
	}
}

func restoreRecord(ctx workflow.Context, req RestoreRequest, p *Progress) activities.JobRecord {
	info := workflow.GetInfo(ctx).WorkflowExecution
	return activities.JobRecord{JobID: req.JobID, Type: api.JobRestore, Subtype: req.Subtype, Status: JobStatus(p.Status),
		RefID: req.RestoreID, BackupID: req.BackupID, Host: req.Host, Started: p.Started, Finished: p.Finished,
		Percentage: p.Percentage, SizeBytes: p.BytesProcessed, WorkflowID: info.ID, RunID: info.RunID}
}

func runRestore(ctx workflow.Context, req RestoreRequest, pp **Progress, start *workflow.Future) (*RestoreOutcome, error) {
	p := &Progress{Status: StatusInProgress, JobID: req.JobID, JobType: api.JobRestore, BackupID: req.BackupID,
		ComponentsCompleted: []string{}, ComponentsRemaining: append([]string{}, req.Components...),
		StorageStatus: map[string]string{req.Location: "reading"}, Started: workflow.Now(ctx),
		Verification: map[string]string{"pre_restore": "skipped", "post_restore": "skipped"}}
	*pp = p
	if req.VerifyBefore {
		p.Verification["pre_restore"] = "pending"
	}
	if req.VerifyAfter {
		p.Verification["post_restore"] = "pending"
	}
	if err := serveProgress(ctx, p); err != nil {
		return nil, err
	}
	p.Status = StatusInProgress
	*start = recordJob(ctx, req.CatalogQueue, restoreRecord(ctx, req, p))
	if req.VerifyBefore {
		p.CurrentOperation = "verifying_backup"
		p.show(ctx)
		var rep activities.VerifyReport
		err := workflow.ExecuteActivity(longActivity(ctx), a.Verify, activities.VerifyInput{
			BackupID: req.BackupID, Location: req.Location, Grant: req.Grant}).Get(ctx, &rep)
		if err != nil {
			p.Verification["pre_restore"] = "failed"
			return nil, finish(ctx, p, StatusFailed, err)
		}
		if !rep.Passed {
			p.Verification["pre_restore"] = "failed"
			return nil, finish(ctx, p, StatusFailed, temporal.NewNonRetryableApplicationError(
				"the backup failed verification before the restore; nothing was written", string(codes.VerificationFailed), nil, rep))
		}
		p.Verification["pre_restore"] = "passed"
		p.Percentage = 10
	}
	// Whether the targets may be written into is decided once, before the
	// snapshot and the first write, and kept in the workflow: a retried
	// restore step must never mistake a user's files for its own.
	if v := workflow.GetVersion(ctx, "restore-target-check", workflow.DefaultVersion, 1); v >= 1 && !req.NoFiles {
		if !req.Overwrite && !req.Original {
			p.CurrentOperation = "checking_target"
			p.show(ctx)
			if err := workflow.ExecuteActivity(shortActivity(ctx), a.CheckRestoreTarget, req.RestoreInput).Get(ctx, nil); err != nil {
				return nil, finish(ctx, p, StatusFailed, err)
			}
		}
		req.TargetChecked = true
	}
	if req.PreRestoreSnapshot && len(req.SnapshotComponents) > 0 {
		p.CurrentOperation = "creating_pre_restore_snapshot"
		p.show(ctx)
		snap := SnapshotID(req.RestoreID)
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: "snapshot:" + snap})
		var so BackupOutcome
		err := workflow.ExecuteChildWorkflow(cctx, BackupWorkflow, BackupRequest{
			JobID: "SNAPSHOT-JOB-" + strings.TrimPrefix(req.RestoreID, "RESTORE-"), BackupID: snap,
			Name: "pre-restore snapshot for " + req.RestoreID, Type: "snapshot", Components: req.SnapshotComponents,
			Locations: []string{req.SnapshotLocation}, Compression: "lz4", CreatedBy: "restore " + req.RestoreID,
			Description: "what restore " + req.RestoreID + " of " + req.BackupID + " overwrites", CatalogQueue: req.CatalogQueue,
			// on an enrolled host, the host backs up its own files
			HostQueue: req.HostQueue, Host: req.Host, HostDir: req.HostDir,
		}).Get(ctx, &so)
		if err != nil {
			// without its snapshot the restore would not be undoable: stop
			return nil, finish(ctx, p, StatusFailed, temporal.NewNonRetryableApplicationError(
				"the pre-restore snapshot failed; nothing was restored: "+errText(err), string(codes.RestoreConflict), nil))
		}
		p.SnapshotID = snap
		p.Percentage = 15
	}
	p.CurrentOperation = "restoring_data"
	p.show(ctx)
	// one activity per named component (each has its own target and
	// progress); a whole-backup or path restore is one activity
	units := [][]string{req.Components}
	if req.NoFiles {
		units = nil
	} else if len(req.Components) > 1 && len(req.Paths) == 0 {
		units = nil
		for _, c := range req.Components {
			units = append(units, []string{c})
		}
	}
	var total activities.RestoreResult
	base := p.Percentage
	for i, unit := range units {
		if len(unit) == 1 {
			p.CurrentComponent = unit[0]
			p.show(ctx)
		}
		var res activities.RestoreResult
		in := req.RestoreInput
		in.Components = unit
		err := workflow.ExecuteActivity(longActivity(ctx), a.Restore, in).Get(ctx, &res)
		if ctx.Err() != nil || err != nil {
			return nil, restoreStepFailed(ctx, p, err)
		}
		total.Files += res.Files
		total.Dirs += res.Dirs
		total.Bytes += res.Bytes
		total.Verified += res.Verified
		total.Warnings = append(total.Warnings, res.Warnings...)
		done := res.Components
		if len(done) == 0 {
			done = unit
		}
		total.Components = append(total.Components, done...)
		p.Files, p.BytesProcessed, p.FilesTotal = total.Files, total.Bytes, total.Files
		p.Warnings = int64(len(total.Warnings))
		p.ComponentsCompleted = append(p.ComponentsCompleted, done...)
		if len(units) > 1 {
			p.ComponentsRemaining = req.Components[i+1:]
		} else {
			p.ComponentsRemaining = []string{}
		}
		p.Percentage = base + (90-base)*float64(i+1)/float64(len(units))
	}
	for _, db := range req.Databases {
		db.BackupID, db.Location = req.BackupID, req.Location
		p.CurrentOperation, p.CurrentComponent = "restoring_database", db.Component
		p.show(ctx)
		var dr activities.DatabaseRestoreResult
		err := workflow.ExecuteActivity(longActivity(ctx), a.RestoreDatabase, db).Get(ctx, &dr)
		if ctx.Err() != nil || err != nil {
			return nil, restoreStepFailed(ctx, p, err)
		}
		total.Databases = append(total.Databases, dr)
		p.BytesProcessed += dr.Bytes
		if !containsString(p.ComponentsCompleted, db.Component) {
			p.ComponentsCompleted = append(p.ComponentsCompleted, db.Component)
		}
	}
	res := total
	p.ComponentsRemaining = []string{}
	p.CurrentComponent = ""
	p.show(ctx)
	if req.VerifyAfter && !req.NoFiles {
		// every file was verified as it was written; this reads the
		// whole restored tree again against the manifest
		p.CurrentOperation = "verifying_restore"
		p.show(ctx)
		p.Percentage = 95
		var vr activities.RestoreResult
		err := workflow.ExecuteActivity(longActivity(ctx), a.VerifyRestore, req.RestoreInput).Get(ctx, &vr)
		if err != nil {
			p.Verification["post_restore"] = "failed"
			return nil, finish(ctx, p, StatusFailed, err)
		}
		p.Verification["post_restore"] = "passed"
	}
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
	VerificationID  string  `json:"verification_id,omitempty"`
	CatalogQueue    string  `json:"catalog_queue,omitempty"`
	// Dir: an enrolled host's repository in the location (hosts/<id>);
	// its backups are verified by the server, which holds its keys.
	Dir string `json:"dir,omitempty"`
}

// VerifyWorkflow checks a backup (manifest signature, trees, index, pack
// headers, a share or all of the data) and optionally restores it into a
// scratch directory; the report is the result.
func VerifyWorkflow(ctx workflow.Context, req VerifyRequest) (*activities.VerifyReport, error) {
	var p *Progress
	var start workflow.Future
	rep, err := runVerify(ctx, req, &p, &start)
	if req.CatalogQueue != "" && p != nil {
		rec := otherRecord(ctx, api.JobVerify, req.JobID, req.VerificationID, req.BackupID, p)
		rec.Error, rec.ErrorCode = errorOf(err)
		if rep != nil {
			rec.Report = rawJSON(rep)
		} else {
			rec.Report = rawJSON(map[string]any{"backup_id": req.BackupID, "location": req.Location, "passed": false,
				"error": rec.Error, "error_code": rec.ErrorCode})
		}
		awaitRecords(ctx, req.CatalogQueue, start, rec)
	}
	return rep, err
}

// otherRecord is the catalog record of a verify or cleanup job.
func otherRecord(ctx workflow.Context, typ api.JobType, jobID, refID, backupID string, p *Progress) activities.JobRecord {
	if p.Finished == nil && p.Status != StatusInProgress {
		now := workflow.Now(ctx)
		p.Finished, p.Status = &now, StatusFailed
	}
	info := workflow.GetInfo(ctx).WorkflowExecution
	return activities.JobRecord{JobID: jobID, Type: typ, Subtype: "manual", Status: JobStatus(p.Status), RefID: refID,
		BackupID: backupID, Started: p.Started, Finished: p.Finished, Percentage: p.Percentage,
		WorkflowID: info.ID, RunID: info.RunID}
}

func runVerify(ctx workflow.Context, req VerifyRequest, pp **Progress, start *workflow.Future) (*activities.VerifyReport, error) {
	p := &Progress{Status: StatusInProgress, JobID: req.JobID, JobType: api.JobVerify, BackupID: req.BackupID,
		CurrentOperation: "verifying", ComponentsCompleted: []string{}, ComponentsRemaining: []string{},
		StorageStatus: map[string]string{req.Location: "reading"}, Started: workflow.Now(ctx)}
	*pp = p
	if err := serveProgress(ctx, p); err != nil {
		return nil, err
	}
	*start = recordJob(ctx, req.CatalogQueue, otherRecord(ctx, api.JobVerify, req.JobID, req.VerificationID, req.BackupID, p))
	var rep activities.VerifyReport
	err := workflow.ExecuteActivity(longActivity(ctx), a.Verify, activities.VerifyInput{BackupID: req.BackupID, Dir: req.Dir,
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
	// Immediate asks for no safety window: unreferenced packs go at once
	// unless a job is registered as writing (repository/writers.go).
	Immediate    bool            `json:"immediate"`
	CleanupID    string          `json:"cleanup_id,omitempty"`
	CatalogQueue string          `json:"catalog_queue,omitempty"`
	Decisions    json.RawMessage `json:"decisions,omitempty"` // the retention decisions, for the report
	// Plan, when set, has the catalog choose BackupIDs by the retention
	// policy when the job runs (scheduled and emergency cleanups).
	Plan    *activities.PlanInput `json:"plan,omitempty"`
	Subtype string                `json:"subtype,omitempty"` // manual | scheduled | emergency | delete
	// PerLocation, when set, names per location the backups to remove
	// there (instead of BackupIDs everywhere).
	PerLocation map[string][]string `json:"per_location,omitempty"`
	// HostDirs names the backups of enrolled hosts, each with its host's
	// repository in every location (hosts/<id>); the others are in the
	// locations' own. Those repositories are collected by the server, as
	// untrusted (their index files are the hosts' word).
	HostDirs map[string]string `json:"host_dirs,omitempty"`
	// CollectDirs: per location, enrolled hosts' repositories collected
	// even when none of their backups goes (what an earlier cleanup
	// condemned goes, and repack runs).
	CollectDirs map[string][]string `json:"collect_dirs,omitempty"`
}

// CleanupOutcome reports per location (the cleanup report's outcome).
type CleanupOutcome = api.CleanupOutcome

// GCLocationOutcome is one location's garbage collection.
type GCLocationOutcome = api.GCLocationOutcome

// CleanupWorkflow: forget the given backups (unless dry run) → garbage
// collection per location (dry run: what would be freed, computed).
func CleanupWorkflow(ctx workflow.Context, req CleanupRequest) (*CleanupOutcome, error) {
	if req.JobID == "" || req.CleanupID == "" { // scheduled: ids drawn once
		short := scheduledIDs(ctx).job
		req.JobID, req.CleanupID = "CLEANUP-JOB-"+short, "CLEANUP-"+short
		_ = workflow.UpsertTypedSearchAttributes(ctx, AttrJobID.ValueSet(req.JobID))
	}
	var p *Progress
	var start workflow.Future
	out, err := runCleanup(ctx, req, &p, &start, &req)
	if req.CatalogQueue != "" && p != nil {
		rec := otherRecord(ctx, api.JobCleanup, req.JobID, req.CleanupID, "", p)
		rec.Subtype = cleanupSubtype(req)
		rec.Error, rec.ErrorCode = errorOf(err)
		var freed, toFree int64
		if out != nil {
			out.Each(func(g GCLocationOutcome) {
				freed += g.Freed()
				toFree += g.ToFree()
			})
		}
		rec.Report = rawJSON(map[string]any{"cleanup_id": req.CleanupID, "dry_run": req.DryRun,
			"space_freed_bytes": freed, "unreferenced_bytes": toFree,
			"locations": req.Locations, "backup_ids": req.BackupIDs, "outcome": out, "decisions": req.Decisions,
			"status": rec.Status, "error": rec.Error})
		if out != nil {
			rec.Removed = out.Removed
			if !req.DryRun {
				rec.HostStored = hostStored(out)
			}
		}
		awaitRecords(ctx, req.CatalogQueue, start, rec)
	}
	return out, err
}

// hostStored: per host repository, the bytes it holds in each location
// where it was collected.
func hostStored(out *CleanupOutcome) map[string]map[string]int64 {
	var m map[string]map[string]int64
	for dir, locs := range out.Hosts {
		for loc, g := range locs {
			if g.Error != "" {
				continue
			}
			if m == nil {
				m = map[string]map[string]int64{}
			}
			if m[dir] == nil {
				m[dir] = map[string]int64{}
			}
			m[dir][loc] = g.RepositoryBytes
		}
	}
	return m
}

func cleanupSubtype(req CleanupRequest) string {
	if req.Subtype == "" {
		return "manual"
	}
	return req.Subtype
}

// runCleanup does the work; a plan it makes is written back to *reqOut
// for the report.
func runCleanup(ctx workflow.Context, req CleanupRequest, pp **Progress, start *workflow.Future, reqOut *CleanupRequest) (*CleanupOutcome, error) {
	p := &Progress{Status: StatusInProgress, JobID: req.JobID, JobType: api.JobCleanup, CurrentOperation: "cleaning",
		ComponentsCompleted: []string{}, ComponentsRemaining: []string{}, StorageStatus: map[string]string{},
		Started: workflow.Now(ctx)}
	*pp = p
	if err := serveProgress(ctx, p); err != nil {
		return nil, err
	}
	startRec := otherRecord(ctx, api.JobCleanup, req.JobID, req.CleanupID, "", p)
	startRec.Subtype = cleanupSubtype(req)
	*start = recordJob(ctx, req.CatalogQueue, startRec)
	if req.Plan != nil {
		if req.CatalogQueue == "" {
			return nil, finish(ctx, p, StatusFailed, temporal.NewNonRetryableApplicationError(
				"a planned cleanup needs the catalog", string(codes.InvalidConfiguration), nil))
		}
		p.CurrentOperation = "planning"
		p.show(ctx)
		var plan activities.PlanOutput
		if err := workflow.ExecuteActivity(catalogCtx(ctx, req.CatalogQueue), cat.PlanCleanup, *req.Plan).Get(ctx, &plan); err != nil {
			return nil, finish(ctx, p, StatusFailed, err)
		}
		req.BackupIDs, req.Decisions, req.PerLocation = plan.IDs, rawJSON(plan.Lines), plan.PerLocation
		req.HostDirs, req.CollectDirs = plan.HostDirs, plan.CollectDirs
		*reqOut = req
		p.CurrentOperation = "cleaning"
		p.show(ctx)
	}
	out := &CleanupOutcome{Removed: map[string][]string{}, GC: map[string]GCLocationOutcome{}}
	for _, loc := range req.Locations {
		p.StorageStatus[loc] = "cleaning"
		ids := req.BackupIDs
		if req.PerLocation != nil {
			ids = req.PerLocation[loc]
		}
		byDir := hostsBackups(ids, req.HostDirs)
		gc, forgot, err := cleanRepository(ctx, req, loc, "", byDir[""])
		if err != nil {
			return nil, finish(ctx, p, StatusFailed, err)
		}
		out.GC[loc] = gc
		if forgot {
			out.Removed[loc] = byDir[""]
		}
		for _, dir := range hostDirsToClean(byDir, req.CollectDirs[loc]) {
			// a host's repository that fails (it is the host's word, and
			// may be broken on purpose) is reported, and the others go on
			gc, forgot, err := cleanRepository(ctx, req, loc, dir, byDir[dir])
			if ctx.Err() != nil {
				return nil, finish(ctx, p, StatusFailed, err)
			}
			if out.Hosts == nil {
				out.Hosts = map[string]map[string]GCLocationOutcome{}
			}
			if out.Hosts[dir] == nil {
				out.Hosts[dir] = map[string]GCLocationOutcome{}
			}
			if err != nil {
				gc.Error = errText(err)
				p.fail("%s in %s: %s", dir, loc, gc.Error)
			}
			out.Hosts[dir][loc] = gc
			if forgot {
				out.Removed[loc] = append(out.Removed[loc], byDir[dir]...)
			}
		}
		p.StorageStatus[loc] = "done"
	}
	status := StatusCompleted
	if p.Errors > 0 {
		status = StatusPartial
	}
	_ = finish(ctx, p, status, nil)
	return out, nil
}

// cleanRepository forgets ids (unless dry run) in one repository of loc,
// then collects its garbage. forgot: the backups are gone from the
// repository (whether or not its collection then worked).
func cleanRepository(ctx workflow.Context, req CleanupRequest, loc, dir string, ids []string) (gc GCLocationOutcome, forgot bool, err error) {
	if !req.DryRun && len(ids) > 0 {
		if err := workflow.ExecuteActivity(shortActivity(ctx), a.Forget, activities.ForgetInput{
			Location: loc, BackupIDs: ids, Dir: dir}).Get(ctx, nil); err != nil {
			return gc, false, err
		}
		forgot = true
	}
	in := activities.GCInput{Location: loc, DryRun: req.DryRun, SafetyWindow: safetyWindow(req), Dir: dir}
	if req.DryRun {
		in.Exclude = ids
	}
	err = workflow.ExecuteActivity(longActivity(ctx), a.GC, in).Get(ctx, &gc)
	return gc, forgot, err
}

// hostsBackups groups backup ids by the repository they are in ("" the
// location's own).
func hostsBackups(ids []string, dirs map[string]string) map[string][]string {
	out := map[string][]string{}
	for _, id := range ids {
		out[dirs[id]] = append(out[dirs[id]], id)
	}
	return out
}

// hostDirsToClean: the hosts' repositories with backups to remove, and
// those to collect anyway, once each, in order.
func hostDirsToClean(byDir map[string][]string, collect []string) []string {
	var dirs []string
	for d := range byDir {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	for _, d := range collect {
		if _, ok := byDir[d]; !ok && d != "" {
			dirs = append(dirs, d)
		}
	}
	sort.Strings(dirs)
	return slices.Compact(dirs)
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// restoreStepFailed ends a restore whose step was cancelled or failed;
// after a pre-restore snapshot it says how to roll back.
func restoreStepFailed(ctx workflow.Context, p *Progress, err error) error {
	if ctx.Err() != nil {
		now := workflow.Now(ctx)
		p.Status, p.Finished = StatusCancelled, &now
		p.settle(StatusCancelled)
		p.show(ctx)
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		setStatus(dctx, StatusCancelled)
		return temporal.NewCanceledError("restore cancelled")
	}
	if p.SnapshotID != "" {
		p.fail("the pre-restore snapshot %s holds what was there before: restore it (target original) to roll back", p.SnapshotID)
	}
	return finish(ctx, p, StatusFailed, err)
}
