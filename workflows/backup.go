// Package workflows holds backupd's durable jobs as Temporal workflows:
// backup, restore, verify and cleanup. They only orchestrate — every piece
// of I/O is an activity (package activities) — so they are deterministic
// and replay safely after a worker or server restart.
package workflows

import (
	"errors"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"backupd/activities"
	"backupd/api"
	"backupd/backup"
	"backupd/codes"
	"backupd/repository"
)

// Names of queries and signals.
const (
	QueryProgress = "progress"
	SignalPause   = "pause"
	SignalResume  = "resume"
)

// a is used only for its method values: the workflows name activities by
// the methods' names, and the worker registers a real *Activities.
var a *activities.Activities

// nonRetryable are the codes that retrying cannot fix, from the codes'
// table (the same facts decide the NonRetryable flag of an activity's
// error).
var nonRetryable = codes.NonRetryable()

// longActivity: heartbeats every second, so a dead worker is noticed in
// 30 s and its work retried (from the checkpoint) on another; StartToClose
// is a backstop for a hung but heartbeating activity. The task queue ctx
// names (onHost) is kept.
func longActivity(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           workflow.GetActivityOptions(ctx).TaskQueue,
		StartToCloseTimeout: 24 * time.Hour,
		HeartbeatTimeout:    30 * time.Second,
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2,
			MaximumInterval: time.Minute, MaximumAttempts: 20, NonRetryableErrorTypes: nonRetryable},
	})
}

func shortActivity(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           workflow.GetActivityOptions(ctx).TaskQueue,
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: 30 * time.Second, MaximumAttempts: 10, NonRetryableErrorTypes: nonRetryable},
	})
}

// parentCandidates asks the catalog (when there is one) for the newest
// backups that could be this one's parent, so the worker reads their
// manifests instead of listing the repository's. A catalog that does not
// answer within a minute is passed over: the worker then searches.
func parentCandidates(ctx workflow.Context, req BackupRequest, location string) []string {
	if req.CatalogQueue == "" || req.Type == backup.Full {
		return nil
	}
	if workflow.GetVersion(ctx, "parent-from-catalog", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: req.CatalogQueue, StartToCloseTimeout: 20 * time.Second, ScheduleToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3}})
	var ids []string
	if err := workflow.ExecuteActivity(actx, cat.ParentCandidates, activities.ParentQuery{Type: req.Type,
		Components: req.Components, Location: location, Host: req.Host}).Get(ctx, &ids); err != nil {
		workflow.GetLogger(ctx).Warn("catalog gave no parent candidates; the worker searches the repository", "error", err)
		return nil
	}
	return ids
}

// onHost sends the activities of ctx (but the catalog's, which name their
// own queue) to an enrolled host's task queue; "" leaves them on the
// workflow's.
func onHost(ctx workflow.Context, queue string) workflow.Context {
	if queue == "" {
		return ctx
	}
	return workflow.WithTaskQueue(ctx, queue)
}

// BackupRequest starts a backup job.
type BackupRequest struct {
	JobID       string            `json:"job_id"`
	BackupID    string            `json:"backup_id"`
	Name        string            `json:"name,omitempty"`
	Type        string            `json:"type"`
	Components  []string          `json:"components"`
	Locations   []string          `json:"locations"` // first: written; the rest: copies
	Compression string            `json:"compression"`
	Verify      bool              `json:"verify"`
	Tags        map[string]string `json:"tags,omitempty"`
	ScheduleID  string            `json:"schedule_id,omitempty"`
	// What the catalog keeps about the backup.
	Description   string `json:"description,omitempty"`
	CreatedBy     string `json:"created_by,omitempty"`
	RetentionDays int    `json:"retention_days,omitempty"`
	// CatalogQueue is the task queue of the catalog activities (the API
	// server's); empty: no catalog (jobs started from the CLI).
	CatalogQueue string `json:"catalog_queue,omitempty"`
	// HostQueue, for an enrolled host's job, is its worker's task queue:
	// the activities that read its files and write its repository run
	// there, while the workflow runs on the server (hosts run no workflow
	// code). Empty: everything runs on the workflow's own queue.
	HostQueue string `json:"host_queue,omitempty"`
	// Host names that host (with HostQueue): the catalog records the
	// backup as its, whatever the host's own plan says.
	Host string `json:"host,omitempty"`
	// HostWait, for a scheduled run on an enrolled host, is how long the
	// run waits for the host's worker to take it (the schedule's catch-up
	// window); past it the run is recorded as missed. 0: it waits.
	HostWait time.Duration `json:"host_wait,omitempty"`
	// HostDir is the host's repository in each location (hosts/<id>),
	// where the server verifies its backup after completion.
	HostDir string `json:"host_dir,omitempty"`
	// Notify says which outcomes go to the configured webhooks and email
	// (the WebSocket's job_complete is always sent); nil: none.
	Notify *NotifyPrefs `json:"notify,omitempty"`
	// Failover, when set, changes how fast a component's work moves to
	// another worker after its worker died; nil keeps longActivity's.
	Failover *Failover `json:"failover,omitempty"`
}

// Failover tunes the detection of a dead worker (HeartbeatTimeout) and
// the retries after it (first delay, longest delay). Zero fields keep the
// defaults.
type Failover struct {
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout"`
	RetryInitial     time.Duration `json:"retry_initial"`
	RetryMax         time.Duration `json:"retry_max"`
}

// withFailover applies f to ctx's activity options.
func withFailover(ctx workflow.Context, f *Failover) workflow.Context {
	if f == nil {
		return ctx
	}
	o := workflow.GetActivityOptions(ctx)
	rp := *o.RetryPolicy
	if f.HeartbeatTimeout > 0 {
		o.HeartbeatTimeout = f.HeartbeatTimeout
	}
	if f.RetryInitial > 0 {
		rp.InitialInterval = f.RetryInitial
	}
	if f.RetryMax > 0 {
		rp.MaximumInterval = f.RetryMax
	}
	o.RetryPolicy = &rp
	return workflow.WithActivityOptions(ctx, o)
}

// NotifyPrefs are the spec's notifications flags.
type NotifyPrefs struct {
	OnSuccess bool `json:"on_success"`
	OnFailure bool `json:"on_failure"`
	OnWarning bool `json:"on_warning"`
}

// BackupOutcome is the workflow's result.
type BackupOutcome struct {
	Summary  activities.BackupSummary       `json:"summary"`
	Status   string                         `json:"status"`
	Copies   map[string]string              `json:"copies"` // location -> done | failed: reason
	Verify   *activities.VerifyReport       `json:"verify,omitempty"`
	Progress Progress                       `json:"progress"`
	Failed   []repository.ComponentManifest `json:"failed_components,omitempty"`
}

// BackupWorkflow: validate → each component (scan, chunk, compress,
// encrypt, upload) → manifest → copies to the other locations in parallel
// → optional verify. Pause cancels the running component activity (it
// checkpoints) and holds no activity until resume; the component then runs
// again and skips everything already committed. Cancel stops the activity
// within seconds and removes what the job wrote, on a disconnected context.
func BackupWorkflow(ctx workflow.Context, req BackupRequest) (*BackupOutcome, error) {
	// Scheduled runs come without ids: drawn once and kept in the
	// history, so that replays (and resets) see the same ones.
	if req.JobID == "" || req.BackupID == "" {
		ids := scheduledIDs(ctx)
		if req.JobID == "" {
			req.JobID = "BACKUP-JOB-" + ids.job
			_ = workflow.UpsertTypedSearchAttributes(ctx, AttrJobID.ValueSet(req.JobID))
		}
		if req.BackupID == "" {
			req.BackupID = repository.BackupIDWith(workflow.Now(ctx), ids.backup)
			_ = workflow.UpsertTypedSearchAttributes(ctx, AttrBackupID.ValueSet(req.BackupID))
		}
	}
	ctx = onHost(ctx, req.HostQueue)
	r := &backupRun{req: req}
	out, err := r.run(ctx)
	r.record(ctx, out, err)
	r.notify(ctx, out, err)
	return out, err
}

// backupRun is one backup job's state, shared by its steps and its
// catalog record.
type backupRun struct {
	req      BackupRequest
	p        *Progress
	plan     *backup.Plan
	comps    []repository.ComponentManifest
	sum      *activities.BackupSummary
	startRec workflow.Future
}

func (r *backupRun) run(ctx workflow.Context) (*BackupOutcome, error) {
	req := r.req
	if len(req.Locations) == 0 {
		return nil, temporal.NewNonRetryableApplicationError("no storage locations", string(codes.InvalidConfiguration), nil)
	}
	p := &Progress{Status: StatusInProgress, JobID: req.JobID, JobType: api.JobBackup, BackupID: req.BackupID,
		CurrentOperation: "validating", ComponentsRemaining: append([]string{}, req.Components...),
		ComponentsCompleted: []string{}, StorageStatus: map[string]string{}, Started: workflow.Now(ctx)}
	for i, l := range req.Locations {
		if i == 0 {
			p.StorageStatus[l] = "waiting"
		} else {
			p.StorageStatus[l] = "idle"
			if p.Copies == nil {
				p.Copies = map[string]CopyProgress{}
			}
			p.Copies[l] = CopyProgress{}
		}
	}
	// the step-based percentage: reading the source is one share of the
	// work, each copy another (Progress.Figures refines it with bytes)
	shares := float64(len(req.Locations))
	if err := serveProgress(ctx, p); err != nil {
		return nil, err
	}
	r.p = p
	r.startRec = recordJob(ctx, req.CatalogQueue, r.jobRecord(ctx, nil, nil))

	// pause/resume
	paused := false
	// pausedRun is set when a pause cancels the running component: its
	// cancellation error then means "run it again", even if a resume
	// arrived before the activity acknowledged the cancellation.
	pausedRun := false
	var cancelCurrent workflow.CancelFunc
	pauseCh := workflow.GetSignalChannel(ctx, SignalPause)
	resumeCh := workflow.GetSignalChannel(ctx, SignalResume)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			sel := workflow.NewSelector(gctx)
			sel.AddReceive(pauseCh, func(c workflow.ReceiveChannel, _ bool) {
				c.Receive(gctx, nil)
				if !paused {
					paused = true
					p.Paused, p.Status = true, StatusPaused
					setStatus(ctx, StatusPaused)
					if cancelCurrent != nil {
						pausedRun = true
						cancelCurrent()
					}
				}
			})
			sel.AddReceive(resumeCh, func(c workflow.ReceiveChannel, _ bool) {
				c.Receive(gctx, nil)
				if paused {
					paused = false
					p.Paused, p.Status = false, StatusInProgress
					setStatus(ctx, StatusInProgress)
				}
			})
			sel.Select(gctx)
		}
	})

	primary := req.Locations[0]
	// what the catalog shows goes into the (signed) manifest too, so a
	// catalog rebuilt from storage shows the same
	tags := map[string]string{}
	for k, v := range req.Tags {
		tags[k] = v
	}
	for k, v := range map[string]string{"name": req.Name, "description": req.Description, "schedule_id": req.ScheduleID,
		"created_by": req.CreatedBy} {
		if v != "" {
			tags[k] = v
		}
	}
	if req.RetentionDays > 0 {
		tags["retention_days"] = strconv.Itoa(req.RetentionDays)
	}
	candidates := parentCandidates(ctx, req, primary)
	var plan *backup.Plan
	pctx := shortActivity(ctx)
	if req.HostWait > 0 {
		o := workflow.GetActivityOptions(pctx)
		o.ScheduleToStartTimeout = req.HostWait
		pctx = workflow.WithActivityOptions(pctx, o)
	}
	err := workflow.ExecuteActivity(pctx, a.PrepareBackup, activities.PrepareInput{
		BackupID: req.BackupID, Type: req.Type, Components: req.Components, Location: primary,
		Compression: req.Compression, Tags: tags, ParentCandidates: candidates}).Get(ctx, &plan)
	if ctx.Err() != nil {
		return nil, cancelled(ctx, p, activities.DiscardInput{BackupID: req.BackupID, Locations: req.Locations})
	}
	var te *temporal.TimeoutError
	if err != nil && req.HostWait > 0 && errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START {
		p.StorageStatus[primary] = "idle"
		return nil, finish(ctx, p, StatusMissed, temporal.NewNonRetryableApplicationError(
			"missed: host "+req.Host+"'s worker did not take the run within the schedule's catch-up window ("+req.HostWait.String()+"); it was offline",
			string(codes.ScheduleError), nil))
	}
	if err != nil {
		return nil, finish(ctx, p, StatusFailed, err)
	}
	if req.HostQueue != "" && (plan.ID != req.BackupID || plan.Host != req.Host) {
		// what an enrolled host prepares must be the backup it was asked for
		return nil, finish(ctx, p, StatusFailed, temporal.NewNonRetryableApplicationError(
			"host "+req.Host+" prepared backup "+plan.ID+" of host "+plan.Host+", not "+req.BackupID+" of "+req.Host, string(codes.InvalidConfiguration), nil))
	}
	p.BackupID = plan.ID
	r.plan = plan
	p.StorageStatus[primary] = "writing"

	var comps []repository.ComponentManifest
	var failedComps []repository.ComponentManifest
	for i, name := range req.Components {
		p.CurrentComponent = name
		p.show(ctx)
		var cm repository.ComponentManifest
		for {
			if paused {
				p.CurrentOperation = "paused"
				p.show(ctx)
				if err := workflow.Await(ctx, func() bool { return !paused }); err != nil {
					return nil, cancelled(ctx, p, discardOf(plan, req))
				}
			}
			p.CurrentOperation = "backing_up"
			p.show(ctx)
			actx, cancel := workflow.WithCancel(withFailover(longActivity(ctx), req.Failover))
			cancelCurrent, pausedRun = cancel, false
			err := workflow.ExecuteActivity(actx, a.BackupComponent, activities.ComponentInput{
				Plan: *plan, Component: name, Location: primary}).Get(actx, &cm)
			cancelCurrent = nil
			if ctx.Err() != nil {
				return nil, cancelled(ctx, p, discardOf(plan, req))
			}
			var ce *temporal.CanceledError
			if err != nil && pausedRun && errors.As(err, &ce) {
				continue // paused: wait (if still paused), then run the component again
			}
			if err != nil {
				p.StorageStatus[primary] = "failed"
				return nil, finish(ctx, p, StatusFailed, err)
			}
			break
		}
		p.ComponentsRemaining = req.Components[i+1:]
		if cm.Error != "" {
			p.ComponentsFailed = append(p.ComponentsFailed, name)
			p.fail("component %s: %s", name, cm.Error)
			failedComps = append(failedComps, cm)
		} else {
			p.ComponentsCompleted = append(p.ComponentsCompleted, name)
		}
		p.BytesProcessed += cm.Stats.Bytes
		p.BytesAdded += cm.Stats.DataAdded // new content, never more than read (trees apart)
		p.Files += cm.Stats.Files
		p.Warnings += cm.Stats.Warnings
		p.Percentage = 99 * float64(i+1) / float64(len(req.Components)) / shares
		comps = append(comps, cm)
		r.comps = comps
	}
	p.CurrentComponent = ""
	p.show(ctx)
	// a pause also holds the steps after the components
	waitIfPaused := func() error {
		if !paused {
			return nil
		}
		op := p.CurrentOperation
		p.CurrentOperation = "paused"
		p.show(ctx)
		err := workflow.Await(ctx, func() bool { return !paused })
		p.CurrentOperation = op
		return err
	}
	if err := waitIfPaused(); err != nil {
		return nil, cancelled(ctx, p, discardOf(plan, req))
	}
	p.CurrentOperation = "finalizing"
	p.show(ctx)
	var sum activities.BackupSummary
	err = workflow.ExecuteActivity(shortActivity(ctx), a.CommitBackup, activities.CommitInput{
		Plan: *plan, Components: comps, Location: primary}).Get(ctx, &sum)
	if ctx.Err() != nil {
		return nil, cancelled(ctx, p, discardOf(plan, req))
	}
	if err != nil {
		p.StorageStatus[primary] = "failed"
		return nil, finish(ctx, p, StatusFailed, err)
	}
	p.StorageStatus[primary] = "done"
	r.sum = &sum
	out := &BackupOutcome{Summary: sum, Copies: map[string]string{}, Failed: failedComps}

	// copies, in parallel
	if err := waitIfPaused(); err != nil {
		return nil, cancelled(ctx, p, discardOf(plan, req))
	}
	if len(req.Locations) > 1 {
		p.CurrentOperation = "replicating"
		p.show(ctx)
		futures := map[string]workflow.Future{}
		for _, loc := range req.Locations[1:] {
			p.StorageStatus[loc] = "writing"
			rctx, in := longActivity(ctx), activities.ReplicateInput{BackupID: plan.ID, From: primary, To: loc}
			if req.HostQueue != "" {
				// the host cannot read its backup: the server copies it,
				// between the host's repositories
				rctx, in.Dir = workflow.WithTaskQueue(rctx, workflow.GetInfo(ctx).TaskQueueName), req.HostDir
			}
			futures[loc] = workflow.ExecuteActivity(rctx, a.Replicate, in)
		}
		// in the order they finish, so each copy's end shows at once
		sel := workflow.NewSelector(ctx)
		var cancelledErr error
		for _, loc := range req.Locations[1:] {
			sel.AddFuture(futures[loc], func(f workflow.Future) {
				var cs repository.CopyStats
				err := f.Get(ctx, &cs)
				// over, either way: its share of the work is done
				n := max(cs.BytesTotal, p.BytesProcessed)
				p.Copies[loc] = CopyProgress{BytesDone: n, BytesTotal: n}
				p.Percentage += 99 / shares
				switch {
				case err != nil && ctx.Err() != nil:
					cancelledErr = err
				case err != nil:
					p.StorageStatus[loc] = "failed"
					p.fail("copy to %s: %s", loc, errText(err))
					out.Copies[loc] = "failed: " + errText(err)
				default:
					p.StorageStatus[loc] = "done"
					out.Copies[loc] = "done"
				}
				p.show(ctx)
			})
		}
		for range req.Locations[1:] {
			sel.Select(ctx)
			if cancelledErr != nil {
				return nil, cancelled(ctx, p, discardOf(plan, req))
			}
		}
	}
	p.Percentage = 99
	if err := waitIfPaused(); err != nil {
		return nil, cancelled(ctx, p, discardOf(plan, req))
	}
	if req.Verify {
		p.CurrentOperation = "verifying"
		p.show(ctx)
		var rep activities.VerifyReport
		vctx, vin := longActivity(ctx), activities.VerifyInput{BackupID: plan.ID, Location: primary, ExtractTest: true}
		if req.HostQueue != "" {
			// the host cannot read its backup: the server verifies it, in
			// the host's repository
			vctx, vin.Dir = workflow.WithTaskQueue(vctx, workflow.GetInfo(ctx).TaskQueueName), req.HostDir
		}
		err := workflow.ExecuteActivity(vctx, a.Verify, vin).Get(ctx, &rep)
		if ctx.Err() != nil {
			return nil, cancelled(ctx, p, discardOf(plan, req))
		}
		if err != nil {
			p.fail("verify: %s", errText(err))
		} else {
			out.Verify = &rep
			if !rep.Passed {
				p.fail("verification failed")
			}
		}
	}
	status := StatusCompleted
	if sum.Status == "partial" || p.Errors > 0 {
		status = StatusPartial
	}
	out.Status = status
	_ = finish(ctx, p, status, nil)
	out.Progress = p.snapshot(workflow.Now(ctx))
	return out, nil
}

func setStatus(ctx workflow.Context, s string) {
	// Upserts are history events: only on status changes, never per chunk.
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(s))
}

// finish records the final state; with err it returns the error the
// workflow fails with.
func finish(ctx workflow.Context, p *Progress, status string, err error) error {
	now := workflow.Now(ctx)
	p.Status, p.Finished, p.CurrentOperation = status, &now, status
	p.settle(status)
	p.show(ctx)
	if status == StatusCompleted || status == StatusPartial {
		p.Percentage = 100
	}
	if err != nil {
		p.fail("%s", errText(err))
	}
	setStatus(ctx, status)
	return err
}

// discardOf names what a cancelled backup may have written: the plan's
// manifest, identified by its host and start.
func discardOf(plan *backup.Plan, req BackupRequest) activities.DiscardInput {
	in := activities.DiscardInput{BackupID: plan.ID, Locations: req.Locations, Host: plan.Host, Started: plan.Started}
	if req.HostQueue != "" {
		in.Dir = req.HostDir
	}
	return in
}

// cancelled cleans up after a cancelled backup on a disconnected context
// (the job's own context is done) and ends the workflow as cancelled.
func cancelled(ctx workflow.Context, p *Progress, discard activities.DiscardInput) error {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	actx := shortActivity(dctx)
	if discard.Dir != "" {
		// an enrolled host's: the server removes it, in the host's repository
		actx = workflow.WithTaskQueue(actx, workflow.GetInfo(ctx).TaskQueueName)
	}
	_ = workflow.ExecuteActivity(actx, a.DiscardBackup, discard).Get(dctx, nil)
	now := workflow.Now(dctx)
	p.Status, p.Finished, p.CurrentOperation = StatusCancelled, &now, StatusCancelled
	p.settle(StatusCancelled)
	p.show(dctx)
	setStatus(dctx, StatusCancelled)
	return temporal.NewCanceledError("backup cancelled")
}
