package apiserver

import (
	"slices"
	"testing"

	"backupd/api"
	"backupd/workflows"
)

// Every workflow status has one word in each vocabulary the API
// publishes: the jobs list's (api.JobStatuses), the progress endpoints'
// status and outcome, and job_complete's (api.JobOutcomes) for an ended
// job; and the catalog's word maps back to the same workflow status.
func TestJobStatusVocabulariesMapOneToOne(t *testing.T) {
	all := []string{workflows.StatusPending, workflows.StatusInProgress, workflows.StatusPaused, workflows.StatusCompleted,
		workflows.StatusPartial, workflows.StatusFailed, workflows.StatusCancelled, workflows.StatusMissed}
	for _, wf := range all {
		js := jobStatus(wf)
		if !slices.Contains(api.JobStatuses, js) {
			t.Errorf("%s: jobs list status %q is not in api.JobStatuses", wf, js)
		}
		if back := workflows.WorkflowStatus(js); back != wf {
			t.Errorf("%s: catalog %q maps back to %q", wf, js, back)
		}
		st, outcome := apiStatus(wf)
		if !slices.Contains(api.ProgressStatuses, st) || !slices.Contains(api.ProgressOutcomes, outcome) {
			t.Errorf("%s: progress status %q outcome %q not in the published enums", wf, st, outcome)
		}
		switch wf {
		case workflows.StatusCompleted, workflows.StatusPartial, workflows.StatusFailed, workflows.StatusCancelled, workflows.StatusMissed:
			if c := completionStatus(js); !slices.Contains(api.JobOutcomes, c) {
				t.Errorf("%s: job_complete status %q is not in api.JobOutcomes", wf, c)
			}
		}
	}
	if completionStatus(workflows.StatusCompleted) != "success" {
		t.Error("a completed job is not the spec's success")
	}
}
