package workflows

import (
	"errors"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"backupd/activities"
	"backupd/api"
	"backupd/codes"
)

// BackupWorkflowID serialises backups of the same components on a host:
// a second one is refused while the first runs (the id policy, not a lock
// table, decides).
func BackupWorkflowID(host string, components []string) string {
	c := append([]string(nil), components...)
	sort.Strings(c)
	return "backup:" + host + ":" + strings.Join(c, ",")
}

// FleetBackupRequest is one run of a schedule that targets enrolled
// hosts: a list of them or a label selector, resolved when the run fires.
type FleetBackupRequest struct {
	// Backup is every host's request (components, locations, ...);
	// each host's run gets its own ids.
	Backup   BackupRequest `json:"backup"`
	Hosts    []string      `json:"hosts,omitempty"`
	Selector string        `json:"selector,omitempty"`
	// CatchUp is how long a host's run waits for an offline host.
	CatchUp time.Duration `json:"catch_up"`
}

// FleetRun is what became of one host's run.
type FleetRun struct {
	Host       string `json:"host"`
	WorkflowID string `json:"workflow_id,omitempty"`
	Skipped    string `json:"skipped,omitempty"`
}

// FleetBackupWorkflow resolves the hosts of a scheduled run and starts
// each host's backup as a workflow of its own (it outlives this one): a
// host that is offline gets its run when it returns within the catch-up
// window, or the run is recorded as missed for it. A host that cannot
// run it (revoked, unknown, lacking a component) gets a skipped job
// saying why.
func FleetBackupWorkflow(ctx workflow.Context, req FleetBackupRequest) ([]FleetRun, error) {
	cq := req.Backup.CatalogQueue
	if cq == "" {
		return nil, temporal.NewNonRetryableApplicationError("a schedule for enrolled hosts needs the catalog", string(codes.InvalidConfiguration), nil)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: cq, StartToCloseTimeout: time.Minute,
		ScheduleToCloseTimeout: time.Hour, RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute}})
	var targets []activities.HostTarget
	if err := workflow.ExecuteActivity(actx, cat.ResolveHosts, activities.HostQuery{Hosts: req.Hosts, Selector: req.Selector,
		Components: req.Backup.Components}).Get(ctx, &targets); err != nil {
		return nil, err
	}
	var runs []FleetRun
	for _, t := range targets {
		ids := scheduledIDs(ctx)
		br := req.Backup
		br.JobID = "BACKUP-JOB-" + ids.job
		br.Host, br.HostQueue, br.HostWait, br.HostDir = t.Name, t.Queue, req.CatchUp, t.Dir
		if t.Problem != "" {
			skip(ctx, cq, br, t.Problem)
			runs = append(runs, FleetRun{Host: t.Name, Skipped: t.Problem})
			continue
		}
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            BackupWorkflowID(t.Name, br.Components),
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			TypedSearchAttributes: temporal.NewSearchAttributes(AttrJobType.ValueSet(string(api.JobBackup)),
				AttrJobID.ValueSet(br.JobID), AttrScheduleID.ValueSet(br.ScheduleID), AttrStatus.ValueSet(StatusPending),
				AttrComponents.ValueSet(br.Components)),
			StaticSummary: "scheduled backup of host " + t.Name + " · " + br.JobID + " · schedule " + br.ScheduleID,
		})
		var we workflow.Execution
		err := workflow.ExecuteChildWorkflow(cctx, BackupWorkflow, br).GetChildWorkflowExecution().Get(ctx, &we)
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		switch {
		case errors.As(err, &already) || temporal.IsWorkflowExecutionAlreadyStartedError(err):
			why := "host " + t.Name + "'s previous backup of " + strings.Join(br.Components, ", ") + " is still running or waiting for the host"
			skip(ctx, cq, br, why)
			runs = append(runs, FleetRun{Host: t.Name, Skipped: why})
		case err != nil:
			return runs, err
		default:
			runs = append(runs, FleetRun{Host: t.Name, WorkflowID: we.ID})
		}
	}
	return runs, nil
}

// skip records a host's run that does not happen, and why.
func skip(ctx workflow.Context, queue string, br BackupRequest, why string) {
	now := workflow.Now(ctx)
	_ = recordJob(ctx, queue, activities.JobRecord{JobID: br.JobID, Type: api.JobBackup, Subtype: subtype(br), Status: "skipped",
		Name: br.Name, ScheduleID: br.ScheduleID, Host: br.Host, Started: now, Finished: &now, Error: why,
		ErrorCode: string(codes.ScheduleError)}).Get(ctx, nil)
}
