// Package worker wires backupd's workflows and activities into a Temporal
// worker: one task queue per host (the host whose files it backs up),
// bounded concurrency, and a graceful stop that lets running activities
// checkpoint before the process exits.
package worker

import (
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"backupd/activities"
	"backupd/workflows"
)

// Options tune the worker.
type Options struct {
	TaskQueue               string
	MaxConcurrentActivities int
	// StopTimeout is how long a stopping worker waits for running
	// activities to checkpoint and return.
	StopTimeout time.Duration
	// ActivitiesOnly: an enrolled host's worker, reaching Temporal through
	// the server's host gateway (which refuses workflow tasks); the
	// workflows of its jobs run on the server.
	ActivitiesOnly bool
}

// New registers every workflow and the activities on a worker for opts.TaskQueue.
func New(c client.Client, acts *activities.Activities, opts Options) sdkworker.Worker {
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 30 * time.Second
	}
	so := sdkworker.Options{
		MaxConcurrentActivityExecutionSize: opts.MaxConcurrentActivities,
		WorkerStopTimeout:                  opts.StopTimeout,
		// Heartbeats reach the server every 0.5 s whatever the activity's
		// heartbeat timeout, so the API's progress (read from Describe) is
		// at most that old. They are RPCs, not history events.
		MaxHeartbeatThrottleInterval: 500 * time.Millisecond,
		DisableWorkflowWorker:        opts.ActivitiesOnly,
	}
	if opts.ActivitiesOnly {
		// one long poll per host: a fleet's hosts share the namespace's
		// limit of polls at once (the gateway allows each two)
		so.MaxConcurrentActivityTaskPollers = 1
	}
	w := sdkworker.New(c, opts.TaskQueue, so)
	if opts.ActivitiesOnly {
		w.RegisterActivity(acts)
	} else {
		Register(w, acts)
	}
	return w
}

// Register adds backupd's workflows and activities to any registry (a
// worker, or a test environment).
func Register(r interface {
	RegisterWorkflowWithOptions(any, workflow.RegisterOptions)
	RegisterActivity(any)
}, acts *activities.Activities) {
	RegisterWorkflows(r)
	r.RegisterActivity(acts)
}

// RegisterWorkflows adds backupd's workflows alone: the server's worker
// of enrolled hosts' jobs, whose activities run on the hosts.
func RegisterWorkflows(r interface {
	RegisterWorkflowWithOptions(any, workflow.RegisterOptions)
}) {
	for name, wf := range map[string]any{
		"BackupWorkflow":      workflows.BackupWorkflow,
		"RestoreWorkflow":     workflows.RestoreWorkflow,
		"VerifyWorkflow":      workflows.VerifyWorkflow,
		"CleanupWorkflow":     workflows.CleanupWorkflow,
		"RepairWorkflow":      workflows.RepairWorkflow,
		"NotifyWorkflow":      workflows.NotifyWorkflow,
		"FleetBackupWorkflow": workflows.FleetBackupWorkflow,
		"DrillWorkflow":       workflows.DrillWorkflow,
	} {
		r.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: name})
	}
}
