package workflows

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"

	"backupd/activities"
	"backupd/api"
)

// A run's report: a backup no location holds is a failed drill named in
// the job's error, a component restored slower than its RTO objective is
// a breach, and an RPO the plan found missed is one too.
func TestDrillReportsFailuresAndBreaches(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(DrillWorkflow)
	rpo := 60
	age := 120.0
	id := "b-new"
	env.OnActivity(cat.PlanDrill, mock.Anything, mock.Anything).Return(activities.DrillPlan{
		Targets: []activities.DrillTarget{{BackupID: "b-new", Location: "local", Components: []string{"data"}},
			{BackupID: "b-gone", Problem: "no storage location holds backup b-gone"}},
		RPO: []api.ComponentRPO{{Component: "data", NewestBackupID: &id, AgeSeconds: &age, ObjectiveSeconds: &rpo, Breached: true}},
		RTO: map[string]int{"data": 1}}, nil)
	var restored []string
	env.OnActivity(a.DrillRestore, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DrillRestoreInput) (api.DrillBackup, error) {
		restored = append(restored, in.BackupID)
		obj := in.RTO["data"]
		return api.DrillBackup{BackupID: in.BackupID, Location: in.Location, Passed: true,
			Components: []api.DrillComponent{{Component: "data", Passed: true, RTOSeconds: 2.5, ObjectiveSeconds: &obj}}}, nil
	})
	var final activities.JobRecord
	env.OnActivity(cat.RecordJob, mock.Anything, mock.Anything).Return(func(_ context.Context, rec activities.JobRecord) error {
		if rec.Finished != nil {
			final = rec
		}
		return nil
	})
	env.ExecuteWorkflow(DrillWorkflow, DrillRequest{DrillID: "d", CatalogQueue: "cat"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var rep api.DrillReport
	env.GetWorkflowResult(&rep)
	if rep.Passed || len(rep.Backups) != 2 || rep.Backups[1].Error == "" || len(restored) != 1 {
		t.Fatalf("report %+v (restored %v)", rep, restored)
	}
	if len(rep.Breaches) != 2 || rep.Breaches[0].Objective != "rpo" || rep.Breaches[1].Objective != "rto" || rep.Breaches[1].MeasuredSeconds != 2.5 {
		t.Fatalf("breaches %+v", rep.Breaches)
	}
	if !strings.HasPrefix(rep.JobID, "DRILL-JOB-") || final.Status != StatusFailed || !strings.Contains(final.Error, "b-gone") ||
		final.Type != api.JobDrill || final.RefID != rep.RunID {
		t.Fatalf("job record %+v", final)
	}
}
