// Package jobs starts and controls backupd's durable jobs through a
// Temporal client: the one place that knows workflow ids, id policies,
// search attributes and how a job id maps to a workflow. The CLI and the
// API server both use it.
package jobs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"backupd/activities"
	"backupd/api"
	"backupd/codes"
	"backupd/workflows"
)

// Client controls jobs on one task queue.
type Client struct {
	C         client.Client
	TaskQueue string
	Host      string
	// HostQueue, for an enrolled host, is its worker's queue: its jobs'
	// activities run there, their workflows on TaskQueue (the server's).
	HostQueue string
}

// Job identifies a started job.
type Job struct {
	JobID      string      `json:"job_id"`
	Type       api.JobType `json:"type"`
	WorkflowID string      `json:"workflow_id"`
	RunID      string      `json:"run_id"`
	BackupID   string      `json:"backup_id,omitempty"`
}

// Requester is who asked for a job: the API request's id and caller.
// It goes into the workflow's memo and its summary in the Temporal Web
// UI, so an operator there can find the request in the API's log.
type Requester struct {
	RequestID string
	Actor     string
}

type requesterKey struct{}

// WithRequester carries rq to the jobs started with ctx.
func WithRequester(ctx context.Context, rq Requester) context.Context {
	return context.WithValue(ctx, requesterKey{}, rq)
}

func requesterOf(ctx context.Context) Requester {
	rq, _ := ctx.Value(requesterKey{}).(Requester)
	if rq.Actor == "" {
		rq.Actor = "cli"
	}
	return rq
}

// display is what the Temporal Web UI shows of a job: a one-line summary
// in the list, details on its page, and the memo.
type display struct {
	jobType         api.JobType
	jobID, backupID string
	lines           []string // extra "**Label** value" lines
}

func (d display) apply(ctx context.Context, o *client.StartWorkflowOptions) {
	rq := requesterOf(ctx)
	sum := string(d.jobType) + " " + d.jobID
	if d.backupID != "" {
		sum += " · " + d.backupID
	}
	sum += " · by " + rq.Actor
	o.StaticSummary = sum
	det := []string{"**Job** " + d.jobID, "**Type** " + string(d.jobType)}
	if d.backupID != "" {
		det = append(det, "**Backup** "+d.backupID)
	}
	det = append(det, d.lines...)
	det = append(det, "**Requested by** "+rq.Actor)
	if rq.RequestID != "" {
		det = append(det, "**API request** "+rq.RequestID)
	}
	o.StaticDetails = strings.Join(det, "\n\n")
	if o.Memo == nil {
		o.Memo = map[string]any{}
	}
	o.Memo["job_id"], o.Memo["requested_by"] = d.jobID, rq.Actor
	if rq.RequestID != "" {
		o.Memo["request_id"] = rq.RequestID
	}
}

func newJobID(prefix string) string { return NewID(prefix + "-JOB-") }

// NewID is prefix and 12 random upper-case hex digits: the ids of jobs,
// restores, verifications, cleanups and repairs. 48 bits: a million ids
// collide with odds of 1 in 500 (24 bits collided within a few thousand
// jobs, and a job id that names two jobs resolves to the newer).
func NewID(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return fmt.Sprintf("%s%X", prefix, b)
}

// BackupWorkflowID serialises backups of the same components on a host:
// a second one is refused while the first runs (the id policy, not a lock
// table, decides).
func BackupWorkflowID(host string, components []string) string {
	return workflows.BackupWorkflowID(host, components)
}

// StartBackup starts a BackupWorkflow; a backup of the same components
// already running is BACKUP_002.
func (j *Client) StartBackup(ctx context.Context, req workflows.BackupRequest, priority int) (*Job, error) {
	if req.JobID == "" {
		req.JobID = newJobID("BACKUP")
	}
	if j.HostQueue != "" {
		req.HostQueue, req.Host = j.HostQueue, j.Host
	}
	attrs := []temporal.SearchAttributeUpdate{
		workflows.AttrJobType.ValueSet(string(api.JobBackup)), workflows.AttrJobID.ValueSet(req.JobID),
		workflows.AttrStatus.ValueSet(workflows.StatusPending), workflows.AttrBackupID.ValueSet(req.BackupID),
		workflows.AttrComponents.ValueSet(req.Components),
	}
	if req.ScheduleID != "" {
		attrs = append(attrs, workflows.AttrScheduleID.ValueSet(req.ScheduleID))
	}
	opts := client.StartWorkflowOptions{
		ID:                       BackupWorkflowID(j.Host, req.Components),
		TaskQueue:                j.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// without this the SDK quietly hands back the running job's handle
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    temporal.NewSearchAttributes(attrs...),
		Memo:                                     map[string]any{"job_id": req.JobID, "name": req.Name},
	}
	lines := []string{"**Components** " + strings.Join(req.Components, ", "), "**Backup type** " + req.Type,
		"**Locations** " + strings.Join(req.Locations, ", ")}
	if req.ScheduleID != "" {
		lines = append(lines, "**Schedule** "+req.ScheduleID)
	}
	display{jobType: api.JobBackup, jobID: req.JobID, backupID: req.BackupID, lines: lines}.apply(ctx, &opts)
	if priority > 0 {
		opts.Priority = temporal.Priority{PriorityKey: priority}
	}
	run, err := j.C.ExecuteWorkflow(ctx, opts, "BackupWorkflow", req)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &already) {
		return nil, codes.New(codes.AlreadyInProgress, "a backup of components %s is already running on %s", strings.Join(req.Components, ", "), j.Host)
	}
	if err != nil {
		return nil, codes.Wrap(codes.StorageConnectivity, fmt.Errorf("starting backup: %w", err))
	}
	return &Job{JobID: req.JobID, Type: api.JobBackup, WorkflowID: run.GetID(), RunID: run.GetRunID(), BackupID: req.BackupID}, nil
}

// start runs a workflow whose id is its job id.
func (j *Client) start(ctx context.Context, jobType api.JobType, jobID, backupID, workflow string, arg any, lines ...string) (*Job, error) {
	opts := client.StartWorkflowOptions{
		ID: jobID, TaskQueue: j.TaskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrJobType.ValueSet(string(jobType)), workflows.AttrJobID.ValueSet(jobID),
			workflows.AttrStatus.ValueSet(workflows.StatusPending), workflows.AttrBackupID.ValueSet(backupID)),
	}
	display{jobType: jobType, jobID: jobID, backupID: backupID, lines: lines}.apply(ctx, &opts)
	run, err := j.C.ExecuteWorkflow(ctx, opts, workflow, arg)
	if err != nil {
		return nil, codes.Wrap(codes.StorageConnectivity, fmt.Errorf("starting %s: %w", jobType, err))
	}
	return &Job{JobID: jobID, Type: jobType, WorkflowID: run.GetID(), RunID: run.GetRunID(), BackupID: backupID}, nil
}

// StartRestore starts a RestoreWorkflow.
func (j *Client) StartRestore(ctx context.Context, req workflows.RestoreRequest) (*Job, error) {
	if req.JobID == "" {
		req.JobID = newJobID("RESTORE")
	}
	lines := []string{"**Restore** " + req.RestoreID, "**Target** " + req.Target, "**From location** " + req.Location}
	if j.HostQueue != "" {
		req.HostQueue, req.Host = j.HostQueue, j.Host
		lines = append(lines, "**On host** "+j.Host)
	}
	return j.start(ctx, api.JobRestore, req.JobID, req.BackupID, "RestoreWorkflow", req, lines...)
}

// StartVerify starts a VerifyWorkflow.
func (j *Client) StartVerify(ctx context.Context, req workflows.VerifyRequest) (*Job, error) {
	if req.JobID == "" {
		req.JobID = newJobID("VERIFY")
	}
	return j.start(ctx, api.JobVerify, req.JobID, req.BackupID, "VerifyWorkflow", req)
}

// StartCleanup starts a CleanupWorkflow.
func (j *Client) StartCleanup(ctx context.Context, req workflows.CleanupRequest) (*Job, error) {
	if req.JobID == "" {
		req.JobID = newJobID("CLEANUP")
	}
	return j.start(ctx, api.JobCleanup, req.JobID, "", "CleanupWorkflow", req,
		"**Cleanup** "+req.CleanupID, "**Locations** "+strings.Join(req.Locations, ", "), fmt.Sprintf("**Dry run** %v", req.DryRun))
}

// StartRepair starts a RepairWorkflow.
func (j *Client) StartRepair(ctx context.Context, req workflows.RepairRequest) (*Job, error) {
	if req.JobID == "" {
		req.JobID = newJobID("REPAIR")
	}
	return j.start(ctx, api.JobRepair, req.JobID, "", "RepairWorkflow", req)
}

// Find resolves a job id to its newest workflow run.
func (j *Client) Find(ctx context.Context, jobID string) (*Job, error) {
	if strings.ContainsAny(jobID, "'\"\\") || jobID == "" {
		return nil, codes.New(codes.JobNotFound, "invalid job id %q", jobID)
	}
	resp, err := j.C.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("BackupJobId = '%s'", jobID), PageSize: 1})
	if err != nil {
		return nil, codes.Wrap(codes.StorageConnectivity, err)
	}
	if len(resp.Executions) == 0 {
		return nil, codes.New(codes.JobNotFound, "no job %s", jobID)
	}
	e := resp.Executions[0]
	return &Job{JobID: jobID, WorkflowID: e.Execution.WorkflowId, RunID: e.Execution.RunId}, nil
}

// Progress asks the job's workflow for its progress.
func (j *Client) Progress(ctx context.Context, job *Job) (*workflows.Progress, error) {
	v, err := j.C.QueryWorkflow(ctx, job.WorkflowID, job.RunID, workflows.QueryProgress)
	if err != nil {
		return nil, codes.Wrap(codes.JobNotFound, err)
	}
	var p workflows.Progress
	if err := v.Get(&p); err != nil {
		return nil, err
	}
	// The workflow knows finished steps; the running activity's counters
	// are in its last heartbeat, which Describe returns without a worker.
	if p.Finished == nil {
		if d, err := j.C.DescribeWorkflowExecution(ctx, job.WorkflowID, job.RunID); err == nil {
			for _, pa := range d.PendingActivities {
				if pa.HeartbeatDetails == nil {
					continue
				}
				var cp activities.Checkpoint
				if converter.GetDefaultDataConverter().FromPayloads(pa.HeartbeatDetails, &cp) != nil {
					continue
				}
				if cp.Location != "" { // a copy: its own progress
					if p.Copies == nil {
						p.Copies = map[string]workflows.CopyProgress{}
					}
					p.Copies[cp.Location] = workflows.CopyProgress{BytesDone: cp.BytesDone, BytesTotal: cp.BytesTotal}
					continue
				}
				p.BytesProcessed += cp.BytesDone
				p.BytesAdded += cp.BytesAdded
				p.Files += cp.FilesDone
				p.Warnings += cp.Warnings
				p.BytesTotal += cp.BytesTotal
				p.FilesTotal += cp.FilesTotal
				if cp.Component != "" && p.CurrentComponent == "" {
					p.CurrentComponent = cp.Component
				}
			}
		}
	}
	return &p, nil
}

// Cancel cancels a job; its cleanup runs in the workflow.
func (j *Client) Cancel(ctx context.Context, job *Job) error {
	return j.C.CancelWorkflow(ctx, job.WorkflowID, job.RunID)
}

// Pause asks a backup to pause (it checkpoints and holds no activity).
func (j *Client) Pause(ctx context.Context, job *Job) error {
	return j.C.SignalWorkflow(ctx, job.WorkflowID, job.RunID, workflows.SignalPause, nil)
}

// Resume continues a paused backup from its checkpoint.
func (j *Client) Resume(ctx context.Context, job *Job) error {
	return j.C.SignalWorkflow(ctx, job.WorkflowID, job.RunID, workflows.SignalResume, nil)
}
