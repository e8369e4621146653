package main

import (
	"encoding/json"
	"strings"
	"testing"

	"backupd/api"
	"backupd/apiclient"
)

var midBackup = progressState{Percent: 58, Component: "data", Operation: "uploading", Done: 42_500_000, Total: 73_000_000,
	Speed: 25_000_000, ETA: 12}

func TestProgressBarForTerminalWidths(t *testing.T) {
	for width, want := range map[int]string{
		120: "[#######################----------------]  58%  data  42.5 MB/73 MB  25 MB/s  ETA 00:00:12", // a third: 39
		80:  "[###############-----------]  58%  data  42.5 MB/73 MB  25 MB/s  ETA 00:00:12",
		64:  "[#######-----]  58%  data  42.5 MB/73 MB  25 MB/s  ETA 00:00:12", // narrowed to fit
		55:  "[#######-----]  58%  data  42.5 MB/73 MB  ETA 00:00:12",          // no room for the speed
		40:  "[#######-----]  58%  data  ETA 00:00:12",                         // nor the sizes
		30:  "[######----]  58%  data",                                         // nor the ETA
		15:  "[####---]  58%",
		8:   " 58%",
		5:   " 58%",
		3:   "",
		200: "[#######################-----------------]  58%  data  42.5 MB/73 MB  25 MB/s  ETA 00:00:12", // at most 40
	} {
		if got := renderBar(midBackup, width); got != want {
			t.Errorf("width %d:\n got %q\nwant %q", width, got, want)
		}
	}
	// never wider than the terminal less one column, whatever it holds
	states := []progressState{midBackup, {}, {Percent: 100, Component: "a-very-long-component-name-indeed", Done: 1 << 40, Total: 1 << 40, Speed: 1e12},
		{Percent: 3, Operation: "waiting_for_worker", Waiting: "no worker polls backup@host"}, {Percent: 250}, {Percent: -3}}
	for _, p := range states {
		for w := 1; w <= 200; w++ {
			if l := renderBar(p, w); len(l) > w-1 && l != "" {
				t.Fatalf("width %d: %d columns: %q", w, len(l), l)
			}
		}
	}
	if got := renderBar(progressState{Percent: 100, Component: "data", Done: 5000, Total: 5000, ETA: 3}, 40); got != "[#############] 100%  data  5 KB/5 KB" {
		t.Errorf("done: %q (no ETA at 100%%)", got)
	}
	if got := renderBar(progressState{Percent: 3, Operation: "waiting_for_worker", Component: "data", Waiting: "no worker"}, 60); !strings.Contains(got, "  3%  waiting_for_worker") {
		t.Errorf("a waiting job shows what it waits for: %q", got)
	}
}

func TestPlainProgressLines(t *testing.T) {
	if got := plainLine(midBackup); got != " 58%  data  42.5 MB/73 MB  25 MB/s  ETA 00:00:12" {
		t.Errorf("%q", got)
	}
	var out strings.Builder
	v := &jobView{s: &clientSession{errw: &out}}
	for _, m := range []struct {
		pct  float64
		comp string
	}{{0, "data"}, {2, "data"}, {4.9, "data"}, {5, "data"}, {9, "data"}, {10, "data"}, {11, "logs"}, {12, "logs"}, {100, "logs"}} {
		msg := api.BackupProgressMessage{Type: "backup_progress", ProgressFields: api.ProgressFields{JobID: "J", Progress: m.pct, CurrentComponent: m.comp}}
		v.event(apiclient.Event{Backup: &msg})
	}
	v.done()
	want := "  0%  data\n  5%  data\n 10%  data\n 11%  logs\n100%  logs\n"
	if out.String() != want {
		t.Errorf("lines:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestBarIsRedrawnInPlace(t *testing.T) {
	var out strings.Builder
	width := 60
	v := &jobView{s: &clientSession{errw: &out, ttyErr: true, width: func() int { return width }}}
	long := api.BackupProgressMessage{ProgressFields: api.ProgressFields{JobID: "J", Progress: 10, CurrentComponent: "configurations", ETASeconds: 70}}
	short := api.BackupProgressMessage{ProgressFields: api.ProgressFields{JobID: "J", Progress: 100, CurrentComponent: "data"}}
	v.event(apiclient.Event{Backup: &long})
	width = 40 // the terminal narrowed
	v.event(apiclient.Event{Backup: &short})
	v.done()
	lines := strings.Split(out.String(), "\r")
	if len(lines) != 3 || len(lines[2]) != len(lines[1])+1 || !strings.HasPrefix(lines[2], "[#############] 100%  data ") || !strings.HasSuffix(lines[2], " \n") {
		t.Errorf("the shorter bar does not cover the longer: %q", out.String())
	}
}

func TestJSONLinesAreTheMessagesAsTheyCame(t *testing.T) {
	var out strings.Builder
	v := &jobView{s: &clientSession{out: &out, json: true}}
	msg := []byte(`{"type": "job_complete",
	  "job_id": "J", "extra": 1}`)
	v.event(apiclient.Event{Raw: msg, Complete: &api.JobCompleteMessage{}})
	if out.String() != `{"type":"job_complete","job_id":"J","extra":1}`+"\n" {
		t.Errorf("%q", out.String())
	}
}

func TestJobOutcomesAreExitCodes(t *testing.T) {
	no := false
	for _, c := range []struct {
		r    jobResult
		want int
	}{
		{jobResult{Status: "success"}, exitOK},
		{jobResult{Status: "success", Warnings: 2}, exitPartial},
		{jobResult{Status: "partial"}, exitPartial},
		{jobResult{Status: "failed"}, exitFail},
		{jobResult{Status: "cancelled"}, exitFail},
		{jobResult{Status: "whatever"}, exitFail},
	} {
		if got := c.r.exitCode(); got != c.want {
			t.Errorf("%+v: exit %d, want %d", c.r, got, c.want)
		}
	}
	for outcome, want := range map[string]string{"completed": "success", "partial": "partial", "failed": "failed", "cancelled": "cancelled"} {
		if got := outcomeStatus(outcome, "completed"); got != want {
			t.Errorf("outcome %s: %s", outcome, got)
		}
	}
	// a finished verification that did not pass failed
	s := &clientSession{}
	end := apiclient.Event{Report: &api.VerifyReport{ReportHead: api.ReportHead{Status: "completed"}, Passed: false,
		VerifyChecks: &api.VerifyChecks{Check: &api.CheckResult{Errors: []api.CheckProblem{{Kind: "pack"}}}}}}
	r := s.resultOf(t.Context(), apiclient.Watch{Kind: api.JobVerify, JobID: "J", VerificationID: "V"}, end)
	if r.exitCode() != exitFail || *r.Passed != no || r.Problems != 1 {
		t.Errorf("%+v", r)
	}
}

func TestResultSummaries(t *testing.T) {
	r := jobResult{Kind: api.JobBackup, JobID: "BACKUP-JOB-1", Status: "success", BackupID: "backup-1", Duration: 75, Timed: true, Warnings: 1,
		Sizes: &api.BackupOutcome{SizeBytes: 73_000_000, CompressedSizeBytes: 30_000_000, AddedSizeBytes: 12_000_000, StorageLocations: []string{"local", "cloud"}}}
	out, failure := r.summary()
	want := "backup backup-1 completed with warnings in 1m 15s (job BACKUP-JOB-1)\n  size 73 MB, stored 30 MB compressed, 12 MB new\n  locations: local, cloud\n  warnings: 1\n"
	if out != want || failure != "" {
		t.Errorf("%q %q", out, failure)
	}
	r = jobResult{Kind: api.JobRestore, JobID: "RESTORE-JOB-1", RefID: "RESTORE-1", BackupID: "backup-1", Status: "failed",
		Err: &api.JobError{Code: "BACKUP_008", Message: "target is not empty", SuggestedActions: []string{"Choose an empty target or set overwrite"}}}
	out, failure = r.summary()
	if out != "restore RESTORE-1 of backup backup-1 failed (job RESTORE-JOB-1)\n" ||
		failure != "BACKUP_008: target is not empty\nsuggested actions:\n  - Choose an empty target or set overwrite" {
		t.Errorf("%q\n%q", out, failure)
	}
}

func TestJSONOfEventsRoundTrips(t *testing.T) {
	// the view reads the api types' fields the server fills (a guard
	// against a renamed field)
	b, _ := json.Marshal(api.RestoreProgressMessage{Type: "restore_progress", ProgressFields: api.ProgressFields{JobID: "J", Progress: 40, CurrentComponent: "data", ETASeconds: 5},
		Details: api.RestoreProgressDetails{TransferFigures: api.TransferFigures{BytesProcessedBytes: 1000, BytesTotalBytes: 4000, SpeedBytesPerSecond: 500}}})
	var m api.RestoreProgressMessage
	json.Unmarshal(b, &m)
	p, ok := stateOf(apiclient.Event{Restore: &m})
	if !ok || plainLine(p) != " 40%  data  1 KB/4 KB  500 B/s  ETA 00:00:05" {
		t.Errorf("%v %q", ok, plainLine(p))
	}
}
