package workflows_test

// Replay of recorded histories: the workflow code of today must make the
// same commands, in the same order, as the code that ran the jobs in
// testdata/histories (real runs, recorded by tests/replay_record_test.go).
// A change that fails here would break jobs already running when it is
// deployed: gate it with workflow.GetVersion (see "restore-target-check"
// in restore.go) instead of re-recording.

import (
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"backupd/worker"
)

// registry hands what worker.Register registers to a replayer (workflows,
// under the worker's names) and to a list of names.
type registry struct {
	replayer sdkworker.WorkflowReplayer
	names    *[]string
}

func (r registry) RegisterWorkflowWithOptions(wf any, o workflow.RegisterOptions) {
	if r.replayer != nil {
		r.replayer.RegisterWorkflowWithOptions(wf, o)
	}
	if r.names != nil {
		*r.names = append(*r.names, o.Name)
	}
}

func (registry) RegisterActivity(any) {} // activities do not replay

func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no histories in testdata/histories: record them (make record-histories)")
	}
	var names []string
	worker.Register(registry{names: &names}, nil)
	covered := map[string]bool{}
	quiet := log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			h, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
			r.Close()
			if err != nil {
				t.Fatalf("not a history: %v", err)
			}
			if len(h.Events) == 0 {
				t.Fatal("an empty history")
			}
			covered[h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()] = true
			rp := sdkworker.NewWorkflowReplayer()
			worker.Register(registry{replayer: rp}, nil)
			if err := rp.ReplayWorkflowHistory(quiet, h); err != nil {
				t.Fatalf("replay: %v", err)
			}
		})
	}
	sort.Strings(names)
	for _, n := range names {
		if !covered[n] {
			t.Errorf("no recorded history of %s (the worker registers it): record one (make record-histories)", n)
		}
	}
}
