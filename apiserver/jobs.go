package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"backupd/api"
	"backupd/codes"
	"backupd/jobs"
	"backupd/models"
	"backupd/workflows"
)

// liveProgress is a job's progress: from Temporal while it runs (the
// workflow's query plus the running activity's heartbeat counters), from
// the catalog's final record after.
func (s *Server) liveProgress(ctx context.Context, j *models.Job) *workflows.Progress {
	if j.Finished == nil && s.Temporal != nil {
		// a query needs a worker: without one it would only time out
		why := ""
		if j.Host != "" {
			why = s.waitingForHost(ctx, j.Host)
		} else {
			why = s.waitingForWorker(ctx)
		}
		if why != "" {
			return &workflows.Progress{Status: workflows.StatusPending, JobID: j.ID, JobType: j.Type, BackupID: j.BackupID,
				Percentage: j.Progress, Started: j.Started, ComponentsCompleted: []string{}, ComponentsRemaining: []string{},
				StorageStatus: map[string]string{}, CurrentOperation: "waiting_for_worker", Waiting: why}
		}
	}
	if j.WorkflowID != "" && j.Finished == nil {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		t0 := time.Now()
		p, err := s.Jobs.Progress(qctx, &jobs.Job{WorkflowID: j.WorkflowID, RunID: j.RunID})
		cancel()
		if time.Since(t0) > time.Second {
			s.Log.Warn("slow progress query", "job", j.ID, "took", time.Since(t0), "err", err)
		}
		if err == nil {
			if p.Finished != nil {
				// the workflow is done but its catalog record is not written
				// yet: until it is, the job is not over for API clients, so
				// whoever sees "completed" finds the backup in the catalog
				p.Finished = nil
				p.Status = workflows.StatusInProgress
				p.CurrentOperation = "cataloging"
				p.Percentage = min(p.Percentage, 99)
			}
			return p
		}
	}
	if j.Finished == nil {
		// not yet here: nothing to say but that it runs
		return &workflows.Progress{Status: workflows.StatusInProgress, JobID: j.ID, JobType: j.Type, BackupID: j.BackupID,
			Percentage: j.Progress, Started: j.Started, ComponentsCompleted: []string{}, ComponentsRemaining: []string{},
			StorageStatus: map[string]string{}, CurrentOperation: "starting"}
	}
	var res struct {
		Progress *workflows.Progress `json:"progress"`
	}
	if len(j.Result) > 0 && json.Unmarshal(j.Result, &res) == nil && res.Progress != nil {
		return res.Progress
	}
	st := workflows.WorkflowStatus(j.Status)
	return &workflows.Progress{Status: st, JobID: j.ID, JobType: j.Type, BackupID: j.BackupID, Percentage: j.Progress,
		Started: j.Started, Finished: j.Finished, ComponentsCompleted: []string{}, ComponentsRemaining: []string{},
		StorageStatus: map[string]string{}, ErrorMessages: errList(j.Error)}
}

func errList(e string) []string {
	if e == "" {
		return nil
	}
	return []string{e}
}

// apiStatus is the job's state as the progress endpoints show it: the
// spec's clients loop until "completed" or "failed", so those are the
// only terminal values; outcome says more (partial, cancelled).
func apiStatus(wfStatus string) (status, outcome string) {
	switch wfStatus {
	case workflows.StatusCompleted:
		return "completed", "completed"
	case workflows.StatusPartial:
		return "completed", "partial"
	case workflows.StatusFailed:
		return "failed", "failed"
	case workflows.StatusCancelled:
		return "failed", "cancelled"
	case workflows.StatusMissed:
		return "failed", "missed"
	case workflows.StatusPaused:
		return "paused", "paused"
	case workflows.StatusPending:
		return "queued", "queued"
	}
	return "in_progress", "in_progress"
}

// jobRefs puts a job's own id (RefID) under its type's name: in the jobs
// list when it has one, in job_complete even when empty (always).
func jobRefs(typ api.JobType, id string, always bool) api.JobRefs {
	var r api.JobRefs
	if id == "" && !always {
		return r
	}
	switch typ {
	case api.JobRestore:
		r.RestoreID = &id
	case api.JobVerify:
		r.VerificationID = &id
	case api.JobCleanup:
		r.CleanupID = &id
	case api.JobRepair:
		r.RepairID = &id
	case api.JobDrill:
		r.DrillRunID = &id
	}
	return r
}

// jobStatus maps a workflow status to the jobs list's vocabulary.
func jobStatus(wfStatus string) string { return workflows.JobStatus(wfStatus) }

// completionStatus is job_complete's status for a finished job's catalog
// status: the spec's success for completed.
func completionStatus(catalogStatus string) string {
	if catalogStatus == workflows.StatusCompleted {
		return "success"
	}
	return catalogStatus
}

// locationsOf is each storage location's state in a job, with a copy's
// bytes while it runs and after.
func locationsOf(p *workflows.Progress) map[string]api.LocationProgress {
	out := map[string]api.LocationProgress{}
	for loc, st := range p.StorageStatus {
		v := api.LocationProgress{State: st}
		if c, ok := p.Copies[loc]; ok {
			done, total := c.BytesDone, c.BytesTotal
			v.BytesDone, v.BytesTotal = &done, &total
		}
		out[loc] = v
	}
	return out
}

// figures is the job's measured progress (workflows.Progress.Figures).
func figures(j *models.Job, p *workflows.Progress) workflows.Figures {
	return p.Figures(j.EstimatedBytes, time.Now())
}

func (s *Server) progressBody(j *models.Job, p *workflows.Progress) *api.JobProgress {
	f := figures(j, p)
	status, outcome := apiStatus(p.Status)
	comps := len(p.ComponentsCompleted) + len(p.ComponentsRemaining) + len(p.ComponentsFailed)
	storage := p.StorageStatus
	if storage == nil {
		storage = map[string]string{}
	}
	body := &api.JobProgress{
		Status: status, Outcome: outcome, JobID: j.ID, BackupID: j.BackupID,
		Progress: api.ProgressFigures{
			Percentage: f.Percent, CurrentOperation: p.CurrentOperation, CurrentComponent: p.CurrentComponent,
			ComponentsCompleted: nonNil(p.ComponentsCompleted), ComponentsRemaining: nonNil(p.ComponentsRemaining),
			ComponentsFailed: nonNil(p.ComponentsFailed),
			Speed:            humanSize(int64(f.BytesPerSecond)) + "/s", SpeedBytesPerSecond: math.Round(f.BytesPerSecond),
			Processed: humanSize(f.Processed), EstimatedTotal: humanSize(f.Total),
			ETA: hms(f.ETA), ETASeconds: math.Round(f.ETA.Seconds()),
			Elapsed: hms(f.Elapsed), ElapsedSeconds: math.Round(f.Elapsed.Seconds()),
		},
		Details: api.ProgressDetails{
			BytesProcessed: f.Processed, BytesTotal: f.Total, BytesAdded: p.BytesAdded,
			Components: comps, ComponentsDone: len(p.ComponentsCompleted) + len(p.ComponentsFailed),
			FilesProcessed: p.Files, Errors: p.Errors, Warnings: p.Warnings,
		},
		StorageStatus: storage,
		Locations:     locationsOf(p),
		Paused:        p.Paused,
		Started:       rfc3339(p.Started),
		Finished:      rfc3339ptr(p.Finished),
		Waiting:       p.Waiting,
		ErrorMessages: p.ErrorMessages,
	}
	if j.Error != "" && p.Status != workflows.StatusCancelled {
		body.Error = jobError(j.ErrorCode, j.Error, nil)
	} else if p.Status == workflows.StatusFailed && len(p.ErrorMessages) > 0 {
		body.Error = jobError(j.ErrorCode, p.ErrorMessages[len(p.ErrorMessages)-1], nil)
	}
	if j.WorkflowID != "" {
		body.TemporalUIURL = s.workflowURL(j.WorkflowID, j.RunID)
	}
	if ds, err := s.Store.Deliveries(context.Background(), j.ID); err == nil && len(ds) > 0 {
		for _, d := range ds {
			var derr *string
			if d.Error != "" {
				derr = &d.Error
			}
			body.Notifications = append(body.Notifications, api.Delivery{Target: d.Target, Event: d.Event, Status: d.Status,
				Attempts: d.Attempts, Error: derr, At: rfc3339(d.UpdatedAt)})
		}
	}
	return body
}

// findJob resolves the job the progress endpoints are asked about.
func (s *Server) findJob(ctx context.Context, kind api.JobType, jobID, refID string) (*models.Job, error) {
	var j *models.Job
	var err error
	switch {
	case jobID != "":
		j, err = s.Store.GetJob(ctx, jobID)
		if err == nil && j.Type != kind {
			return nil, notFound(codes.JobNotFound, "job %s is a %s job, not a %s job", jobID, j.Type, kind)
		}
	case refID != "":
		j, err = s.Store.GetJobByRef(ctx, kind, refID)
	default:
		var list []models.Job
		list, err = s.Store.ListJobs(ctx, models.JobFilter{Type: kind, Statuses: []string{"running", "paused", "queued"}, Limit: 1})
		if err == nil && len(list) == 0 {
			list, err = s.Store.ListJobs(ctx, models.JobFilter{Type: kind, Limit: 1})
		}
		if err == nil && len(list) == 0 {
			return nil, notFound(codes.JobNotFound, "there are no %s jobs", kind)
		}
		if err == nil {
			j = &list[0]
		}
	}
	if errors.Is(err, models.ErrNotFound) {
		id := jobID
		if id == "" {
			id = refID
		}
		return nil, notFound(codes.JobNotFound, "no %s job %q", kind, id)
	}
	return j, err
}

func (s *Server) backupProgress(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "job_id", "backup_id"); err != nil {
		return err
	}
	j, err := s.findJob(r.Context(), api.JobBackup, q.Get("job_id"), q.Get("backup_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.progressBody(j, s.liveProgress(r.Context(), j)))
	return nil
}

func (s *Server) restoreProgress(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "job_id", "restore_id"); err != nil {
		return err
	}
	j, err := s.findJob(r.Context(), api.JobRestore, q.Get("job_id"), q.Get("restore_id"))
	if err != nil {
		return err
	}
	p := s.liveProgress(r.Context(), j)
	body := s.progressBody(j, p)
	body.RestoreID = j.RefID
	restored, total := p.Files, max(p.FilesTotal, p.Files)
	body.Details.FilesRestored, body.Details.FilesTotal = &restored, &total
	ver := p.Verification
	if ver == nil {
		ver = map[string]string{"pre_restore": "unknown", "post_restore": "unknown"}
	}
	body.Verification = ver
	if p.SnapshotID != "" {
		body.SnapshotID = p.SnapshotID
		if body.Status == "failed" {
			// what was overwritten is in the snapshot: one call undoes it
			body.Rollback = &api.Rollback{BackupID: p.SnapshotID, TargetLocation: "original",
				How: "POST /cloud-integration/backup/restore with this backup_id and target_location original"}
		}
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// ---- list

// jobTypes and jobStatuses filter /backup/jobs.
var (
	jobTypes    = api.JobTypes
	jobStatuses = api.JobStatuses
)

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "status", "type", "limit", "page_size", "page", "host"); err != nil {
		return err
	}
	f := models.JobFilter{Type: api.JobType(q.Get("type"))}
	if hq := q.Get("host"); hq != "" {
		local, name, err := s.hostFilter(r.Context(), hq)
		if err != nil {
			return err
		}
		f.HostSet = true
		if !local {
			f.Host = name // the server's own host's jobs carry no host
		}
	}
	if f.Type != "" {
		if err := oneOf("type", string(f.Type), jobTypes...); err != nil {
			return err
		}
	}
	if st := q.Get("status"); st != "" {
		if err := oneOf("status", st, jobStatuses...); err != nil {
			return err
		}
		f.Statuses = []string{st}
		if st == "completed" {
			f.Statuses = append(f.Statuses, "partial")
		}
	}
	var err error
	if f.Limit, f.Page, err = paging(q, 20); err != nil {
		return err
	}
	list, err := s.Store.ListJobs(r.Context(), f)
	if err != nil {
		return err
	}
	total, err := s.Store.CountJobs(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]api.JobView, 0, len(list))
	for i := range list {
		out = append(out, s.jobView(r.Context(), &list[i]))
	}
	all, err := s.Store.JobCounts(r.Context(), nil)
	if err != nil {
		return err
	}
	midnight := time.Now().UTC().Truncate(24 * time.Hour)
	today, err := s.Store.JobCounts(r.Context(), &midnight)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.JobList{Jobs: out, Pagination: api.NewPagination(total, f.Page, f.Limit), Summary: api.JobSummary{
		Running: all["running"], Paused: all["paused"], Queued: all["queued"],
		CompletedToday: today["completed"] + today["partial"], FailedToday: today["failed"],
		CancelledToday: today["cancelled"],
	}})
	return nil
}

func (s *Server) jobView(ctx context.Context, j *models.Job) api.JobView {
	v := api.JobView{ID: j.ID, Type: j.Type, Subtype: j.Subtype, Status: j.Status,
		Progress: int(math.Round(j.Progress)), Started: specTime(j.Started), StartedRFC3339: rfc3339(j.Started),
		User: j.User, Name: j.Name, BackupID: j.BackupID, ScheduleID: j.ScheduleID, JobRefs: jobRefs(j.Type, j.RefID, false)}
	if j.WorkflowID != "" {
		v.TemporalUIURL = s.workflowURL(j.WorkflowID, j.RunID)
	}
	if j.Finished == nil {
		p := s.liveProgress(ctx, j)
		f := figures(j, p)
		v.Status = jobStatus(p.Status)
		v.Progress = int(math.Round(f.Percent))
		v.Cancelable = true
		pausable := j.Type == api.JobBackup
		v.Pausable = &pausable
		if f.ETA > 0 {
			v.EstimatedCompletion = specTime(time.Now().Add(f.ETA))
		}
		if j.EstimatedBytes > 0 {
			v.EstimatedSize, v.EstimatedSizeBytes = humanSize(j.EstimatedBytes), j.EstimatedBytes
		}
	} else {
		v.Completed = specTime(*j.Finished)
		v.CompletedRFC3339 = rfc3339(*j.Finished)
		d := j.Finished.Sub(j.Started)
		secs, size := math.Round(d.Seconds()), j.SizeBytes
		v.Duration, v.DurationSeconds = humanDuration(d), &secs
		v.Size, v.SizeBytes = humanSize(j.SizeBytes), &size
	}
	if j.Error != "" {
		v.Error = jobError(j.ErrorCode, j.Error, nil)
	}
	return v
}

// ---- control

// runningJob loads a job that must still be running.
func (s *Server) runningJob(ctx context.Context, id string) (*models.Job, error) {
	if id == "" {
		return nil, badRequest("job_id", "job_id is required")
	}
	j, err := s.Store.GetJob(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, notFound(codes.JobNotFound, "no job %q", id)
	}
	if err != nil {
		return nil, err
	}
	if j.Finished != nil || j.WorkflowID == "" {
		return nil, conflict(codes.JobNotFound, "job %s is not running (status %s)", id, j.Status)
	}
	return j, nil
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) error {
	var req api.CancelRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	setTarget(r, req.JobID)
	if err := validText("reason", req.Reason, 2000); err != nil {
		return err
	}
	if req.Cleanup != nil && !*req.Cleanup {
		return badRequest("cleanup", "cleanup: false is not supported: a cancelled job always removes its partial data (nothing half-written stays behind)")
	}
	j, err := s.runningJob(r.Context(), req.JobID)
	if err != nil {
		return err
	}
	st := stateOf(r)
	if (j.Type == api.JobRestore || j.Type == api.JobCleanup) && st.token.Role != "admin" {
		return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Message: "cancelling a " + string(j.Type) + " job needs the admin role"}
	}
	handle := &jobs.Job{WorkflowID: j.WorkflowID, RunID: j.RunID}
	if err := s.Jobs.Cancel(r.Context(), handle); err != nil {
		return err
	}
	// wait (briefly) for the job to stop and clean up, so the answer is true
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	closed := false
	status := "cancelling"
	for ctx.Err() == nil {
		d, err := s.Temporal.DescribeWorkflowExecution(ctx, j.WorkflowID, j.RunID)
		if err == nil && d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			closed = true
			if d.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED {
				status = "cancelled"
			} else {
				status = strings.ToLower(strings.TrimPrefix(d.WorkflowExecutionInfo.Status.String(), "WORKFLOW_EXECUTION_STATUS_"))
			}
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if closed && status == "cancelled" {
		s.Store.UpdateJob(context.WithoutCancel(r.Context()), j.ID, map[string]any{"error": "cancelled: " + req.Reason})
	}
	msg := "Job cancelled; its partial data was removed"
	if !closed {
		msg = "Cancellation requested; the job is still cleaning up (follow it at GET /backup/jobs)"
	} else if status != "cancelled" {
		msg = "The job finished (" + status + ") before the cancellation reached it"
	}
	writeJSON(w, http.StatusOK, api.CancelResponse{
		Status: status, JobID: j.ID, Message: msg, Reason: req.Reason,
		CleanupPerformed: closed && status == "cancelled", PartialDataRemoved: closed && status == "cancelled" && j.Type == api.JobBackup,
		CanRestart: true,
		RestartInfo: api.RestartInfo{Possible: true,
			Recommendation: "Start the job again when ready; a new backup reuses every chunk already stored"},
	})
	return nil
}

func (s *Server) pauseJob(w http.ResponseWriter, r *http.Request) error {
	return s.signalJob(w, r, true)
}

func (s *Server) resumeJob(w http.ResponseWriter, r *http.Request) error {
	return s.signalJob(w, r, false)
}

func (s *Server) signalJob(w http.ResponseWriter, r *http.Request, pause bool) error {
	var req api.JobRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	setTarget(r, req.JobID)
	j, err := s.runningJob(r.Context(), req.JobID)
	if err != nil {
		return err
	}
	if j.Type != api.JobBackup {
		return conflict(codes.JobNotFound, "only backup jobs can be paused; %s is a %s job", j.ID, j.Type)
	}
	handle := &jobs.Job{WorkflowID: j.WorkflowID, RunID: j.RunID}
	status := "resumed"
	if pause {
		status = "paused"
		err = s.Jobs.Pause(r.Context(), handle)
	} else {
		err = s.Jobs.Resume(r.Context(), handle)
	}
	if err != nil {
		return err
	}
	dbStatus := "running"
	if pause {
		dbStatus = "paused"
	}
	s.Store.UpdateJob(r.Context(), j.ID, map[string]any{"status": dbStatus})
	writeJSON(w, http.StatusOK, api.JobControlResponse{Status: status, JobID: j.ID, BackupID: j.BackupID,
		Message: "the running step checkpoints; the job holds no worker while paused and resumes from its checkpoint"})
	return nil
}
