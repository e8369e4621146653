package main

// --wait: follow a job over the WebSocket (apiclient.Follow), draw its
// progress, and end with its result and exit code.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"backupd/api"
	"backupd/apiclient"
)

// progressState is what the progress display shows of one event.
type progressState struct {
	Percent              float64
	Component, Operation string
	Waiting              string
	Done, Total          int64   // bytes
	Speed                float64 // bytes per second
	ETA                  float64 // seconds; 0: unknown
}

// stateOf reads an event's progress (ok false: the event has none).
func stateOf(ev apiclient.Event) (progressState, bool) {
	switch {
	case ev.Backup != nil:
		m := ev.Backup
		return progressState{Percent: m.Progress, Component: m.CurrentComponent, Operation: m.CurrentOperation, Waiting: m.Waiting,
			Done: m.Details.BytesProcessedBytes, Total: m.Details.BytesTotalBytes, Speed: m.Details.SpeedBytesPerSecond, ETA: m.ETASeconds}, true
	case ev.Restore != nil:
		m := ev.Restore
		return progressState{Percent: m.Progress, Component: m.CurrentComponent, Operation: m.CurrentOperation, Waiting: m.Waiting,
			Done: m.Details.BytesProcessedBytes, Total: m.Details.BytesTotalBytes, Speed: m.Details.SpeedBytesPerSecond, ETA: m.ETASeconds}, true
	case ev.Polled != nil: // an ended job's too: the bar reaches its end
		p := ev.Polled
		return progressState{Percent: p.Progress.Percentage, Component: p.Progress.CurrentComponent, Operation: p.Progress.CurrentOperation,
			Waiting: p.Waiting, Done: p.Details.BytesProcessed, Total: p.Details.BytesTotal, Speed: p.Progress.SpeedBytesPerSecond,
			ETA: p.Progress.ETASeconds}, true
	case ev.Pending != nil && !ev.Ended():
		return progressState{Percent: ev.Pending.Progress, Operation: "verifying"}, true
	}
	return progressState{}, false
}

// label is what the job works on: its component, else its operation.
func (p progressState) label() string {
	l := p.Component
	if l == "" || p.Waiting != "" {
		l = p.Operation
	}
	if len(l) > 24 {
		l = l[:23] + "~"
	}
	return l
}

// pieces are the figures after the percent, in display order.
func (p progressState) pieces() (label, sizes, speed, eta string) {
	label = p.label()
	if p.Total > 0 {
		sizes = humanSize(p.Done) + "/" + humanSize(p.Total)
	} else if p.Done > 0 {
		sizes = humanSize(p.Done)
	}
	if p.Speed > 0 {
		speed = humanSize(int64(p.Speed)) + "/s"
	}
	if p.ETA > 0 && p.Percent < 100 {
		eta = "ETA " + clock(p.ETA)
	}
	return
}

// plainLine is the progress as one line of text.
func plainLine(p progressState) string {
	l, sz, sp, eta := p.pieces()
	return joinNonEmpty(fmt.Sprintf("%3.0f%%", p.Percent), l, sz, sp, eta)
}

// joinNonEmpty joins the parts that are not empty with two spaces.
func joinNonEmpty(parts ...string) string { return strings.Join(nonEmpty(parts...), "  ") }

func nonEmpty(parts ...string) []string {
	var keep []string
	for _, s := range parts {
		if s != "" {
			keep = append(keep, s)
		}
	}
	return keep
}

// minBar is the narrowest bar drawn while there are figures to drop;
// maxBar the widest.
const (
	minBar = 10
	maxBar = 40
)

// renderBar is the progress as a bar line that fits width columns (one
// column is left free, so the terminal never wraps it):
// [#######-----]  58%  data  42.5 MB/73 MB  25 MB/s  ETA 00:00:12.
// The bar takes a third of the width (10 to 40 columns), so it keeps its
// size while the figures change; when the line does not fit, the bar
// narrows to 10, then the speed goes, then the sizes, the ETA, the label,
// and last the bar narrows further.
func renderBar(p progressState, width int) string {
	pct := fmt.Sprintf("%3.0f%%", math.Max(0, math.Min(100, p.Percent)))
	l, sz, sp, eta := p.pieces()
	tail := func() string { return " " + joinNonEmpty(pct, l, sz, sp, eta) }
	avail := width - 1
	for _, drop := range []*string{&sp, &sz, &eta, &l} {
		if avail-len(tail())-2 >= minBar {
			break
		}
		*drop = ""
	}
	t := tail()
	inner := min(max(avail/3, minBar), maxBar, avail-len(t)-2)
	if inner < 1 {
		if len(pct) > avail {
			return ""
		}
		return pct
	}
	filled := int(math.Round(float64(inner) * math.Max(0, math.Min(100, p.Percent)) / 100))
	return "[" + strings.Repeat("#", filled) + strings.Repeat("-", inner-filled) + "]" + t
}

// jobView shows a followed job's events: a redrawn bar when errors go to
// a terminal; otherwise a line whenever the percent moved by 5 or more
// or the component changed; with --json, each event as a JSON line.
type jobView struct {
	s        *clientSession
	shown    bool
	lastPct  float64
	lastComp string
	lastWait string
	drawn    int // the bar's length on screen
}

func (v *jobView) event(ev apiclient.Event) {
	if v.s.json {
		if len(ev.Raw) > 0 {
			v.s.raw(ev.Raw)
		}
		return
	}
	p, ok := stateOf(ev)
	if !ok {
		return
	}
	if v.s.ttyErr {
		line := renderBar(p, v.s.width())
		pad := ""
		if n := v.drawn - len(line); n > 0 {
			pad = strings.Repeat(" ", n)
		}
		fmt.Fprint(v.s.errw, "\r"+line+pad)
		v.drawn = len(line)
		return
	}
	if p.Waiting != "" && p.Waiting != v.lastWait {
		fmt.Fprintf(v.s.errw, "waiting: %s\n", p.Waiting)
	}
	v.lastWait = p.Waiting
	if !v.shown || math.Abs(p.Percent-v.lastPct) >= 5 || p.Component != v.lastComp {
		fmt.Fprintln(v.s.errw, plainLine(p))
		v.shown, v.lastPct, v.lastComp = true, p.Percent, p.Component
	}
}

// done ends the bar's line.
func (v *jobView) done() {
	if v.drawn > 0 {
		fmt.Fprintln(v.s.errw)
		v.drawn = 0
	}
}

// jobResult is how a followed job ended, from its last event (and, for
// what job_complete does not carry, one more question to the server).
type jobResult struct {
	Kind      api.JobType
	JobID     string
	Status    string // success, partial, failed, cancelled
	BackupID  string
	RefID     string  // a restore's or verification's id
	Duration  float64 // seconds
	Timed     bool    // Duration is known
	Sizes     *api.BackupOutcome
	Processed int64 // bytes (a restore's)
	Warnings  int64
	Err       *api.JobError
	Passed    *bool // a verification's verdict
	Problems  int   // a verification's errors found
}

// outcomeStatus is job_complete's status for a progress answer's outcome.
func outcomeStatus(outcome, status string) string {
	switch outcome {
	case "completed":
		return "success"
	case "partial", "failed", "cancelled":
		return outcome
	}
	if status == "completed" {
		return "success"
	}
	return "failed"
}

// resultOf reads the end event; ask fills in what the event lacks.
func (s *clientSession) resultOf(ctx context.Context, w apiclient.Watch, end apiclient.Event) jobResult {
	r := jobResult{Kind: w.Kind, JobID: w.JobID, RefID: w.VerificationID}
	fromProgress := func(p *api.JobProgress) {
		r.Warnings = p.Details.Warnings
		if r.BackupID == "" {
			r.BackupID = p.BackupID
		}
		if p.RestoreID != "" {
			r.RefID = p.RestoreID
		}
		r.Processed = p.Details.BytesProcessed
	}
	fromReport := func(a apiclient.VerifyReportAnswer) {
		if rep := a.Report; rep != nil {
			r.Passed = &rep.Passed
			r.BackupID = rep.BackupID
			if rep.VerifyChecks != nil && rep.Check != nil {
				r.Problems = len(rep.Check.Errors)
				r.Warnings = int64(len(rep.Check.Warnings))
			}
			if r.Err == nil && rep.ReportFailure != nil && rep.ReportFailure.Error != "" {
				r.Err = &api.JobError{Code: rep.ErrorCode, Message: rep.ReportFailure.Error}
			}
		}
		if p := a.Pending; p != nil && r.Err == nil {
			r.Err = p.Error
		}
	}
	switch {
	case end.Complete != nil:
		m := end.Complete
		r.Status, r.Err, r.Duration, r.Timed = m.Status, m.Error, m.Details.DurationSeconds, true
		r.BackupID, r.Sizes = m.Details.BackupID, m.Details.BackupOutcome
		// job_complete has no warnings count or verdict: ask once
		switch w.Kind {
		case api.JobBackup:
			if p, _, err := s.c.BackupProgress(ctx, w.JobID); err == nil {
				fromProgress(&p)
			}
		case api.JobRestore:
			if p, _, err := s.c.RestoreProgress(ctx, w.JobID); err == nil {
				fromProgress(&p)
			}
		case api.JobVerify:
			if a, _, err := s.c.VerifyReport(ctx, w.VerificationID); err == nil {
				fromReport(a)
			}
		}
	case end.Polled != nil:
		p := end.Polled
		r.Status, r.Err, r.Duration, r.Timed = outcomeStatus(p.Outcome, p.Status), p.Error, p.Progress.ElapsedSeconds, true
		fromProgress(p)
		if w.Kind == api.JobBackup {
			// the sizes a backup stored are its catalog entry's
			if d, _, err := s.c.Backup(ctx, p.BackupID); err == nil {
				r.Sizes = &api.BackupOutcome{SizeBytes: d.SizeDetails.RawSizeBytes, CompressedSizeBytes: d.SizeDetails.CompressedSizeBytes,
					AddedSizeBytes: d.SizeDetails.AddedSizeBytes}
				for _, l := range d.Storage.Locations {
					r.Sizes.StorageLocations = append(r.Sizes.StorageLocations, l.Type)
				}
			}
		}
	case end.Report != nil:
		r.Status = outcomeStatus(end.Report.Status, end.Report.Status)
		fromReport(apiclient.VerifyReportAnswer{Report: end.Report})
	case end.Pending != nil:
		r.Status = "failed"
		fromReport(apiclient.VerifyReportAnswer{Pending: end.Pending})
	}
	if r.Passed != nil && !*r.Passed && r.Status == "success" {
		r.Status = "failed"
	}
	return r
}

// exitCode is the job's outcome as backupd repo's exit codes say it: 0
// completed, 3 partial or completed with warnings, 1 failed or cancelled.
func (r jobResult) exitCode() int {
	switch r.Status {
	case "success":
		if r.Warnings > 0 {
			return exitPartial
		}
		return exitOK
	case "partial":
		return exitPartial
	}
	return exitFail
}

// summary is the result for people: what ended how, the figures, and
// for a failure the error (code, message, suggested actions).
func (r jobResult) summary() (out string, failure string) {
	var b strings.Builder
	what := string(r.Kind)
	id := r.BackupID
	switch r.Kind {
	case api.JobRestore:
		what, id = "restore", r.RefID
		if r.BackupID != "" {
			id += " of backup " + r.BackupID
		}
	case api.JobVerify:
		what, id = "verification", r.RefID
		if r.BackupID != "" {
			id += " of backup " + r.BackupID
		}
	}
	word := map[string]string{"success": "completed", "partial": "completed partially", "failed": "failed", "cancelled": "was cancelled"}[r.Status]
	if word == "" {
		word = r.Status
	}
	if r.Status == "success" && r.Warnings > 0 {
		word = "completed with warnings"
	}
	fmt.Fprintf(&b, "%s %s %s", what, strings.TrimSpace(id), word)
	if r.Timed {
		fmt.Fprintf(&b, " in %s", humanDuration(r.Duration))
	}
	fmt.Fprintf(&b, " (job %s)\n", r.JobID)
	if o := r.Sizes; o != nil && (o.SizeBytes > 0 || o.CompressedSizeBytes > 0) {
		fmt.Fprintf(&b, "  size %s, stored %s compressed, %s new\n", humanSize(o.SizeBytes), humanSize(o.CompressedSizeBytes), humanSize(o.AddedSizeBytes))
		if len(o.StorageLocations) > 0 {
			fmt.Fprintf(&b, "  locations: %s\n", strings.Join(o.StorageLocations, ", "))
		}
	} else if r.Kind == api.JobRestore && r.Processed > 0 {
		fmt.Fprintf(&b, "  restored %s\n", humanSize(r.Processed))
	}
	if r.Passed != nil {
		verdict := "passed"
		if !*r.Passed {
			verdict = fmt.Sprintf("did not pass (%d problems)", r.Problems)
		}
		fmt.Fprintf(&b, "  check: %s\n", verdict)
	}
	if r.Warnings > 0 {
		fmt.Fprintf(&b, "  warnings: %d\n", r.Warnings)
	}
	if r.Status != "success" && r.Err != nil {
		var f strings.Builder
		if r.Err.Code != "" {
			f.WriteString(r.Err.Code + ": ")
		}
		f.WriteString(r.Err.Message)
		if len(r.Err.SuggestedActions) > 0 {
			f.WriteString("\nsuggested actions:")
			for _, a := range r.Err.SuggestedActions {
				f.WriteString("\n  - " + a)
			}
		}
		failure = f.String()
	}
	return b.String(), failure
}

// humanDuration is seconds in the API's form ("25m 30s").
func humanDuration(sec float64) string {
	s := int64(math.Round(sec))
	h, m, x := s/3600, s/60%60, s%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh %dm %ds", h, m, x)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, x)
	}
	return fmt.Sprintf("%ds", x)
}

// wait follows the job to its end and returns its exit code as an error
// (nil: completed). follow is the command that follows the job again
// after an interrupted wait.
func (s *clientSession) wait(ctx context.Context, w apiclient.Watch, follow string) error {
	v := &jobView{s: s}
	if !s.json {
		fmt.Fprintf(s.errw, "waiting for job %s (Ctrl-C stops waiting, not the job)\n", w.JobID)
	}
	end, err := s.c.Follow(ctx, w, apiclient.FollowOptions{}, v.event)
	v.done()
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return interrupted(w.JobID, follow)
		}
		return clientError(err)
	}
	r := s.resultOf(ctx, w, end)
	out, failure := r.summary()
	if !s.json {
		fmt.Fprint(s.out, out)
	}
	code := r.exitCode()
	if code == exitOK {
		return nil
	}
	if failure == "" {
		return &exitError{code, errors.New("")}
	}
	return &exitError{code, errors.New(failure)}
}
