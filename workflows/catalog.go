package workflows

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"backupd/activities"
	"backupd/api"
	"backupd/codes"
	"backupd/models"
)

var cat *activities.Catalog

// recordJob writes a job record through the catalog activities on queue
// (the API server's); nil when there is no catalog. It retries until the
// server is back: a catalog that is down delays the record, never the
// backup, and never loses it.
func recordJob(ctx workflow.Context, queue string, rec activities.JobRecord) workflow.Future {
	if queue == "" {
		return nil
	}
	return workflow.ExecuteActivity(catalogCtx(ctx, queue), cat.RecordJob, rec)
}

// catalogCtx runs an activity on the catalog's queue, retried until the
// API server is back (for up to a week).
func catalogCtx(ctx workflow.Context, queue string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              queue,
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 7 * 24 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: time.Minute},
	})
}

// awaitRecords waits for the records in flight and writes the final one,
// on a disconnected context so a cancelled job is recorded too.
func awaitRecords(ctx workflow.Context, queue string, start workflow.Future, final activities.JobRecord) {
	if queue == "" {
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if start != nil {
		_ = start.Get(dctx, nil)
	}
	_ = recordJob(dctx, queue, final).Get(dctx, nil)
}

// runIDs are the random parts of a scheduled run's ids.
type runIDs struct {
	job    string // 12 upper-case hex digits (8 from before "run-ids-drawn")
	backup string // 12 lower-case hex digits (4 before)
}

// scheduledIDs draws a scheduled run's ids once, in a side effect that
// the history keeps. They used to be taken from the run id; but Temporal's
// run ids are UUIDv7, whose first 48 bits are the start time in
// milliseconds: every scheduled job started within 65 s got the same job
// id, and backup ids carried no randomness (review). Runs recorded before
// the change replay with the old derivation.
func scheduledIDs(ctx workflow.Context) runIDs {
	if workflow.GetVersion(ctx, "run-ids-drawn", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		short := shortRunID(workflow.GetInfo(ctx).WorkflowExecution.RunID)
		return runIDs{job: short, backup: strings.ToLower(short[:4])}
	}
	var h string
	_ = workflow.SideEffect(ctx, func(workflow.Context) any {
		b := make([]byte, 12)
		rand.Read(b)
		return hex.EncodeToString(b)
	}).Get(&h)
	return runIDs{job: strings.ToUpper(h[:12]), backup: h[12:]}
}

func shortRunID(runID string) string {
	s := strings.ToUpper(strings.ReplaceAll(runID, "-", ""))
	for len(s) < 8 {
		s += "0"
	}
	return s[:8]
}

// errorOf splits a workflow error into message and code: what a user
// reads, never the SDK's wrapping (an activity error around an
// application error around its cause, each repeating the text below it).
func errorOf(err error) (string, string) {
	if err == nil {
		return "", ""
	}
	var ce *temporal.CanceledError
	if errors.As(err, &ce) {
		return "cancelled", ""
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return timeoutMessage(te), string(codes.ComponentFailure)
	}
	// the innermost application error holds the failure as it arose; the
	// code is the first one an application error carries
	var ae *temporal.ApplicationError
	var inner *temporal.ApplicationError
	code := ""
	for e := err; e != nil && errors.As(e, &ae); e = ae.Unwrap() {
		inner = ae
		if code == "" && strings.HasPrefix(ae.Type(), "BACKUP_") {
			code = ae.Type()
		}
	}
	if inner == nil {
		c := codes.Classify(err)
		return strings.TrimPrefix(c.Message, string(c.Code)+": "), string(c.Code)
	}
	msg := inner.Message()
	if code == "" {
		code = string(codes.Classify(err).Code)
	}
	if i := strings.Index(msg, ": "); i > 0 && strings.HasPrefix(msg, "BACKUP_") {
		msg = msg[i+2:]
	}
	return msg, code
}

// errText is errorOf's message with its code, for progress messages.
func errText(err error) string {
	msg, code := errorOf(err)
	if code == "" {
		return msg
	}
	return code + ": " + msg
}

// timeoutMessage says which wait ran out, and what usually causes it.
func timeoutMessage(te *temporal.TimeoutError) string {
	switch te.TimeoutType() {
	case enumspb.TIMEOUT_TYPE_HEARTBEAT:
		return "the worker running this step stopped reporting (heartbeat timeout): it died or lost its connection, and no worker took the step over in time; check the workers for this host (GET /backup/health)"
	case enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START:
		return "no worker picked this step up in time: is a worker for this host running? (GET /backup/health)"
	}
	return "this step did not finish in its time limit; see the worker's log"
}

func rawJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// jobRecord is the job as it stands; out/err are the result once done.
func (r *backupRun) jobRecord(ctx workflow.Context, out *BackupOutcome, err error) activities.JobRecord {
	req, p := r.req, r.p
	snap := p.snapshot(workflow.Now(ctx))
	rec := activities.JobRecord{JobID: req.JobID, Type: api.JobBackup, Subtype: subtype(req), Status: JobStatus(p.Status),
		BackupID: req.BackupID, Name: req.Name, ScheduleID: req.ScheduleID, Host: req.Host, Started: p.Started, Finished: p.Finished,
		Percentage: p.Percentage, SizeBytes: p.BytesProcessed,
		WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, RunID: workflow.GetInfo(ctx).WorkflowExecution.RunID}
	rec.Error, rec.ErrorCode = errorOf(err)
	if out != nil {
		rec.Result = rawJSON(out)
	} else if p.Finished != nil {
		rec.Result = rawJSON(map[string]any{"progress": snap})
	}
	comps := append([]string(nil), req.Components...)
	sort.Strings(comps)
	b := &models.Backup{ID: req.BackupID, Name: req.Name, Description: req.Description, Type: req.Type,
		Status: p.Status, Timestamp: p.Started, Finished: p.Finished, Components: comps,
		Requested: req.Locations, Encryption: "AES-256", Compression: req.Compression, IntegrityCheck: "pending",
		RetentionDays: req.RetentionDays, ScheduleID: req.ScheduleID, CreatedBy: req.CreatedBy, JobID: req.JobID,
		SizeBytes: p.BytesProcessed, Files: p.Files, Warnings: p.Warnings, ComponentSizes: map[string]int64{},
		Locations: []string{}}
	if b.Compression == "" {
		b.Compression = "zstd"
	}
	if b.CreatedBy == "" && req.ScheduleID != "" {
		b.CreatedBy = "scheduler"
	}
	switch p.Status {
	case StatusPending:
		b.Status = StatusInProgress
	case StatusMissed:
		b.Status = StatusFailed // no backup was made; the job says why
	}
	if r.plan != nil {
		b.ParentBackup, b.BaseBackup, b.Host = r.plan.Parent, r.plan.Base, r.plan.Host
		b.SystemVersion = r.plan.Tags["system_version"]
		b.KernelVersion = r.plan.Tags["kernel_version"]
		b.HardwareID = r.plan.Tags["hardware_id"]
		b.KeyID = r.plan.Tags["key_id"]
	}
	if req.HostQueue != "" {
		// an enrolled host's plan is its own word: it cannot file its
		// backup under another host
		b.Host = req.Host
	}
	for _, c := range r.comps {
		b.ComponentSizes[c.Name] = c.Stats.Bytes
	}
	if r.sum != nil {
		// the manifest's times and figures, as a catalog rebuilt from
		// storage will show them
		st := r.sum.Stats
		b.SizeBytes, b.CompressedBytes, b.AddedBytes, b.Files = st.Bytes, st.CompressedSize(), st.StoredAdded, st.Files
		if !r.sum.Started.IsZero() && req.HostQueue == "" {
			b.Timestamp = r.sum.Started.UTC()
		}
		b.Warnings = r.sum.Stats.Warnings
		b.Locations = append(b.Locations, req.Locations[0])
	}
	if p.Finished != nil {
		b.DurationSeconds = p.Finished.Sub(p.Started).Seconds()
		// an enrolled host's clock is its word: its backups are dated by
		// the workflow's (the server's) times
		if r.sum != nil && !r.sum.Started.IsZero() && req.HostQueue == "" {
			b.DurationSeconds = r.sum.Finished.Sub(r.sum.Started).Seconds()
			f := r.sum.Finished.UTC()
			b.Finished = &f
		}
		b.IntegrityCheck = "not_run"
		if p.Status == StatusFailed || p.Status == StatusCancelled || p.Status == StatusMissed {
			b.IntegrityCheck = "failed"
			if p.Status == StatusCancelled {
				b.IntegrityCheck = "not_run"
			}
		}
	}
	if out != nil {
		for _, l := range req.Locations[1:] {
			if out.Copies[l] == "done" {
				b.Locations = append(b.Locations, l)
			}
		}
		if out.Verify != nil {
			b.IntegrityCheck = "failed"
			if out.Verify.Passed {
				b.IntegrityCheck = "passed"
			}
			t := out.Verify.Finished
			b.VerifiedAt = &t
		}
		for _, f := range out.Failed {
			if b.Error != "" {
				b.Error += "; "
			}
			b.Error += f.Name + ": " + f.Error
			b.ErrorCode = string(codes.ComponentFailure)
		}
	}
	if rec.Error != "" && b.Error == "" {
		b.Error, b.ErrorCode = rec.Error, rec.ErrorCode
	}
	rec.Backup = b
	return rec
}

func subtype(req BackupRequest) string {
	if req.ScheduleID != "" {
		return "scheduled_" + req.Type
	}
	return "manual_" + req.Type
}

// record writes the finished backup to the catalog.
func (r *backupRun) record(ctx workflow.Context, out *BackupOutcome, err error) {
	if r.req.CatalogQueue == "" {
		return
	}
	if r.p == nil { // failed before it started
		now := workflow.Now(ctx)
		r.p = &Progress{Status: StatusFailed, Started: now, Finished: &now, StorageStatus: map[string]string{}}
	}
	if r.p.Finished == nil {
		now := workflow.Now(ctx)
		r.p.Finished = &now
		if err != nil {
			r.p.Status = StatusFailed
		}
	}
	awaitRecords(ctx, r.req.CatalogQueue, r.startRec, r.jobRecord(ctx, out, err))
}

// notify delivers the outcome to the configured webhooks and email when
// the request asks for this kind of outcome. Delivery is retried a few
// times by Temporal and recorded by the catalog; it never fails the job.
func (r *backupRun) notify(ctx workflow.Context, out *BackupOutcome, err error) {
	n := r.req.Notify
	if n == nil || r.req.CatalogQueue == "" || r.p == nil {
		return
	}
	var ce *temporal.CanceledError
	if errors.As(err, &ce) {
		return // cancelled by someone: they know
	}
	event, want := "success", n.OnSuccess
	switch {
	case err != nil:
		event, want = "failure", n.OnFailure
	case out != nil && (out.Status == StatusPartial || r.p.Warnings > 0):
		event, want = "warning", n.OnWarning
	}
	if !want {
		return
	}
	rec := r.jobRecord(ctx, out, err)
	b := rec.Backup
	details := map[string]any{"backup_id": rec.BackupID, "size_bytes": b.SizeBytes, "compressed_size_bytes": b.CompressedBytes,
		"added_size_bytes": b.AddedBytes,
		"duration_seconds": b.DurationSeconds, "storage_locations": b.Locations, "warnings": b.Warnings}
	if b.Error != "" {
		// an error's text may be an enrolled host's own words: bounded
		details["error"], details["error_code"] = clip(b.Error, 2000), b.ErrorCode
	}
	msg := map[string]string{"success": "Backup completed successfully", "warning": "Backup completed with warnings or failed components",
		"failure": "Backup failed"}[event]
	payload := rawJSON(map[string]any{"event": "backup." + event, "job_id": rec.JobID, "backup_id": rec.BackupID,
		"name": r.req.Name, "schedule_id": r.req.ScheduleID, "status": b.Status, "operation": api.JobBackup, "message": msg,
		"details": details, "timestamp": workflow.Now(ctx).UTC().Format(time.RFC3339)})
	sendNotification(ctx, r.req.CatalogQueue, rec.JobID, event, payload)
}

// sendNotification starts the delivery of a job's outcome as a child that
// outlives the job: retries of a receiver that is down must not keep the
// job (and its workflow id) open.
func sendNotification(ctx workflow.Context, queue, jobID, event string, payload json.RawMessage) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	cctx := workflow.WithChildOptions(dctx, workflow.ChildWorkflowOptions{WorkflowID: "notify:" + jobID + ":" + event,
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON})
	f := workflow.ExecuteChildWorkflow(cctx, NotifyWorkflow, NotifyRequest{CatalogQueue: queue,
		Input: activities.NotifyInput{JobID: jobID, Event: event, Payload: payload}})
	_ = f.GetChildWorkflowExecution().Get(dctx, nil)
}

// NotifyRequest is one outcome to deliver.
type NotifyRequest struct {
	CatalogQueue string                 `json:"catalog_queue"`
	Input        activities.NotifyInput `json:"input"`
}

// NotifyWorkflow delivers a job's outcome (on the API server, which has
// the receivers' settings), retrying for a while; every attempt is
// recorded, and giving up is not an error of anyone's job.
func NotifyWorkflow(ctx workflow.Context, req NotifyRequest) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: req.CatalogQueue,
		StartToCloseTimeout: time.Minute, ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2,
			MaximumInterval: time.Minute, MaximumAttempts: 5}})
	_ = workflow.ExecuteActivity(actx, cat.Notify, req.Input).Get(ctx, nil)
	return nil
}

// clip bounds s to n bytes (on a rune boundary), saying it was cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + " …(cut)"
}
