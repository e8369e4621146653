package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"backupd/repository"
)

// Job statuses.
const (
	StatusPending    = "pending"
	StatusInProgress = "in_progress"
	StatusPaused     = "paused"
	StatusCompleted  = "completed"
	StatusPartial    = "partial"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

// Progress is what the "progress" query returns: the spec's progress
// fields as the workflow knows them. Byte counts inside a running activity
// live in its heartbeat details (DescribeWorkflowExecution); the API adds
// those to the query's answer.
type Progress struct {
	Status           string  `json:"status"`
	JobID            string  `json:"job_id"`
	JobType          string  `json:"job_type"`
	BackupID         string  `json:"backup_id,omitempty"`
	Percentage       float64 `json:"percentage"`
	CurrentOperation string  `json:"current_operation"`
	// Waiting says why the job cannot move (no worker polls its host's
	// task queue); set by the API server, never by the workflow.
	Waiting             string            `json:"waiting,omitempty"`
	CurrentComponent    string            `json:"current_component,omitempty"`
	ComponentsCompleted []string          `json:"components_completed"`
	ComponentsRemaining []string          `json:"components_remaining"`
	ComponentsFailed    []string          `json:"components_failed,omitempty"`
	BytesProcessed      int64             `json:"bytes_processed"`
	BytesAdded          int64             `json:"bytes_added"`
	Files               int64             `json:"files"`
	Errors              int               `json:"errors"`
	Warnings            int64             `json:"warnings"`
	ErrorMessages       []string          `json:"error_messages,omitempty"`
	StorageStatus       map[string]string `json:"storage_status"`
	Started             time.Time         `json:"started"`
	Finished            *time.Time        `json:"finished,omitempty"`
	ElapsedSeconds      float64           `json:"elapsed_seconds"`
	Elapsed             string            `json:"elapsed"`
	Paused              bool              `json:"paused"`
	SnapshotID          string            `json:"snapshot_id,omitempty"`
	FilesTotal          int64             `json:"files_total,omitempty"`
	BytesTotal          int64             `json:"bytes_total,omitempty"`
	// Verification: restores' pre_restore/post_restore states.
	Verification map[string]string `json:"verification,omitempty"`
}

func (p *Progress) fail(format string, args ...any) {
	p.Errors++
	if len(p.ErrorMessages) < 50 {
		p.ErrorMessages = append(p.ErrorMessages, fmt.Sprintf(format, args...))
	}
}

// snapshot fills the time fields as of now.
func (p Progress) snapshot(now time.Time) Progress {
	end := now
	if p.Finished != nil {
		end = *p.Finished
	}
	d := end.Sub(p.Started)
	if d < 0 {
		d = 0
	}
	p.ElapsedSeconds = d.Seconds()
	p.Elapsed = HMS(d)
	p.ComponentsCompleted = append([]string{}, p.ComponentsCompleted...)
	p.ComponentsRemaining = append([]string{}, p.ComponentsRemaining...)
	ss := map[string]string{}
	for k, v := range p.StorageStatus {
		ss[k] = v
	}
	p.StorageStatus = ss
	return p
}

// HMS formats a duration as the spec's "00:17:45".
func HMS(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

func safetyWindow(req CleanupRequest) time.Duration {
	switch {
	case req.Immediate:
		return 0
	case req.SafetyWindowSeconds > 0:
		return time.Duration(req.SafetyWindowSeconds) * time.Second
	}
	return repository.DefaultSafetyWindow
}

// serveProgress answers the progress query from p and marks the job in
// progress (search attribute): every workflow starts with it.
func serveProgress(ctx workflow.Context, p *Progress) error {
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) {
		return p.snapshot(workflow.Now(ctx)), nil
	}); err != nil {
		return err
	}
	setStatus(ctx, StatusInProgress)
	return nil
}
