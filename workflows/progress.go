package workflows

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"backupd/api"
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
	// StatusMissed: a scheduled run on an enrolled host that stayed
	// offline through the schedule's catch-up window.
	StatusMissed = "missed"
)

// JobStatus is a workflow status in the catalog's (and the jobs list's)
// words: a pending job is queued, one in progress is running; the others
// are the same word. WorkflowStatus is the way back. These two are the one
// mapping between the vocabularies.
func JobStatus(s string) string {
	switch s {
	case StatusPending:
		return "queued"
	case StatusInProgress:
		return "running"
	}
	return s
}

// WorkflowStatus is a catalog job status in the workflows' words.
func WorkflowStatus(s string) string {
	switch s {
	case "queued":
		return StatusPending
	case "running":
		return StatusInProgress
	}
	return s
}

// Progress is what the "progress" query returns: the spec's progress
// fields as the workflow knows them. Byte counts inside a running activity
// live in its heartbeat details (DescribeWorkflowExecution); the API adds
// those to the query's answer.
type Progress struct {
	Status           string      `json:"status"`
	JobID            string      `json:"job_id"`
	JobType          api.JobType `json:"job_type"`
	BackupID         string      `json:"backup_id,omitempty"`
	Percentage       float64     `json:"percentage"`
	CurrentOperation string      `json:"current_operation"`
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
	// Copies: per location a backup is copied to, how far the copy is
	// (the running copy's from its heartbeat).
	Copies map[string]CopyProgress `json:"copies,omitempty"`
}

// CopyProgress is one copy's progress in the backup's content bytes.
type CopyProgress struct {
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
}

// Figures are a job's measured progress: the one place its percentage,
// speed and ETA are computed, for every answer and message.
type Figures struct {
	Percent        float64       // 0–100, one decimal; 100 only when done
	Processed      int64         // source bytes read (backup) or written (restore)
	Total          int64         // what Processed is expected to reach
	BytesPerSecond float64       // all work (reading and copies) per second of the job
	ETA            time.Duration // 0 when done or not yet known
	Elapsed        time.Duration
}

// Figures measures p at now. estimate is the expected source size when
// the job has not measured it (the catalog's estimate at creation). Work
// is counted in bytes: the source read once, then once per copy, so the
// percentage and the ETA keep moving while copies are made. Without any
// byte figure, the workflow's step-based percentage stands.
func (p Progress) Figures(estimate int64, now time.Time) Figures {
	f := Figures{Processed: p.BytesProcessed, Total: p.BytesTotal, Percent: p.Percentage}
	end := now
	if p.Finished != nil {
		end = *p.Finished
	}
	if !p.Started.IsZero() && end.After(p.Started) {
		f.Elapsed = end.Sub(p.Started)
	}
	if f.Total == 0 {
		f.Total = estimate
	}
	if p.Finished != nil {
		f.Total = f.Processed
		if p.Status == StatusCompleted || p.Status == StatusPartial {
			f.Percent = 100
		}
		if f.Elapsed > 0 {
			f.BytesPerSecond = float64(f.Processed) / f.Elapsed.Seconds()
		}
		f.Percent = math.Round(f.Percent*10) / 10
		return f
	}
	f.Total = max(f.Total, f.Processed)
	done, total := f.Processed, f.Total
	for _, c := range p.Copies {
		t := c.BytesTotal
		if t == 0 { // not started: it will go through what was read
			t = f.Total
		}
		done += min(c.BytesDone, t)
		total += t
	}
	if total > 0 {
		// never 100 before the job is over: the last steps (commit,
		// verify, catalog) are not counted in bytes
		f.Percent = math.Max(f.Percent, math.Min(99, 100*float64(done)/float64(total)))
	}
	if f.Elapsed > 0 {
		f.BytesPerSecond = float64(done) / f.Elapsed.Seconds()
	}
	if f.BytesPerSecond > 0 && total > done {
		f.ETA = time.Duration(float64(total-done) / f.BytesPerSecond * float64(time.Second))
	}
	f.Percent = math.Round(f.Percent*10) / 10
	return f
}

func (p *Progress) fail(format string, args ...any) {
	p.Errors++
	if len(p.ErrorMessages) < 50 {
		p.ErrorMessages = append(p.ErrorMessages, fmt.Sprintf(format, args...))
	}
}

// show puts the job's state where the Temporal Web UI shows it (the
// workflow page's current details), so an operator needs no query. It
// writes no history event.
func (p *Progress) show(ctx workflow.Context) {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** %s", p.JobType, strings.ReplaceAll(p.CurrentOperation, "_", " "))
	if p.CurrentComponent != "" {
		fmt.Fprintf(&b, " · component %s", p.CurrentComponent)
	}
	if n := len(p.ComponentsCompleted) + len(p.ComponentsFailed) + len(p.ComponentsRemaining); n > 0 {
		fmt.Fprintf(&b, " · %d of %d components done", len(p.ComponentsCompleted)+len(p.ComponentsFailed), n)
	}
	fmt.Fprintf(&b, " · %.0f%%", p.Percentage)
	if len(p.StorageStatus) > 0 {
		locs := make([]string, 0, len(p.StorageStatus))
		for l, st := range p.StorageStatus {
			locs = append(locs, l+": "+st)
		}
		sort.Strings(locs)
		fmt.Fprintf(&b, "\n\nlocations: %s", strings.Join(locs, ", "))
	}
	if len(p.ErrorMessages) > 0 {
		fmt.Fprintf(&b, "\n\nlast error: %s", p.ErrorMessages[len(p.ErrorMessages)-1])
	}
	b.WriteString("\n\nlive byte counts: the progress query, or GET /backup/progress")
	workflow.SetCurrentDetails(ctx, b.String())
}

// settle gives every location its final state when the job ends with
// status: work under way ends with the job (done, or failed/cancelled
// with it), work never begun says so.
func (p *Progress) settle(status string) {
	ok := status == StatusCompleted || status == StatusPartial
	for loc, st := range p.StorageStatus {
		switch st {
		case "writing", "reading", "cleaning", "verifying":
			if ok {
				p.StorageStatus[loc] = "done"
			} else {
				p.StorageStatus[loc] = status
			}
		case "idle", "waiting":
			p.StorageStatus[loc] = "not_started"
		}
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
	if p.Copies != nil {
		cs := map[string]CopyProgress{}
		for k, v := range p.Copies {
			cs[k] = v
		}
		p.Copies = cs
	}
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
