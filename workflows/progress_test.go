package workflows

import (
	"testing"
	"time"
)

// Copies are work in bytes like reading the source: the percentage and
// the ETA keep moving while they run (a 1 GiB backup to three locations
// sat at 90%, eta 00:00:00, for 16 of its 23 seconds), and reach 100 only
// when the job is over.
func TestFiguresCountCopiesInBytes(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	p := Progress{Status: StatusInProgress, Started: start, BytesProcessed: 2000, Percentage: 33,
		StorageStatus: map[string]string{"local": "done", "cloud": "writing", "remote": "writing"},
		Copies:        map[string]CopyProgress{"cloud": {BytesDone: 1000, BytesTotal: 2000}, "remote": {}}}
	f := p.Figures(2000, start.Add(30*time.Second))
	if f.Percent != 50 || f.BytesPerSecond != 100 || f.ETA != 30*time.Second {
		t.Fatalf("mid-copy: %+v", f)
	}
	p.Copies = map[string]CopyProgress{"cloud": {BytesDone: 2000, BytesTotal: 2000}, "remote": {BytesDone: 2000, BytesTotal: 2000}}
	if f := p.Figures(2000, start.Add(60*time.Second)); f.Percent != 99 || f.ETA != 0 {
		t.Fatalf("copies done, job not over: %+v", f)
	}
	end := start.Add(61 * time.Second)
	p.Status, p.Finished = StatusCompleted, &end
	if f := p.Figures(2000, start.Add(90*time.Second)); f.Percent != 100 || f.Elapsed != 61*time.Second || f.ETA != 0 {
		t.Fatalf("done: %+v", f)
	}
	// nothing measured in bytes yet: the workflow's step-based figure
	q := Progress{Status: StatusInProgress, Started: start, Percentage: 16.5}
	if f := q.Figures(0, start.Add(time.Second)); f.Percent != 16.5 {
		t.Fatalf("no bytes: %+v", f)
	}
}

// A job's end gives every location a final state: a restore said
// {"local":"reading"} after it ended.
func TestSettleGivesLocationsFinalStates(t *testing.T) {
	p := Progress{StorageStatus: map[string]string{"local": "reading", "cloud": "idle", "remote": "failed"}}
	p.settle(StatusCompleted)
	if p.StorageStatus["local"] != "done" || p.StorageStatus["cloud"] != "not_started" || p.StorageStatus["remote"] != "failed" {
		t.Fatalf("after completion: %v", p.StorageStatus)
	}
	q := Progress{StorageStatus: map[string]string{"local": "writing"}}
	q.settle(StatusCancelled)
	if q.StorageStatus["local"] != StatusCancelled {
		t.Fatalf("after cancel: %v", q.StorageStatus)
	}
}
