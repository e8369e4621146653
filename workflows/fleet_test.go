package workflows

import (
	"context"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"backupd/activities"
	"backupd/backup"
)

// A run over hosts: each host that can gets its own backup workflow (its
// activities on its queue, filed under its name); one that cannot gets a
// skipped job that says why.
func TestFleetBackupStartsOneRunPerHost(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(FleetBackupWorkflow)
	env.RegisterActivity(&activities.Catalog{})
	env.OnActivity(cat.ResolveHosts, mock.Anything, mock.Anything).Return([]activities.HostTarget{
		{Name: "gw-a", Queue: "backup@gw-a"}, {Name: "gw-b", Queue: "backup@gw-b"},
		{Name: "gw-c", Queue: "backup@gw-c", Problem: "host gw-c reports no component data"}}, nil)
	var mu sync.Mutex
	queues := map[string]bool{}
	records := map[string]activities.JobRecord{}
	env.OnActivity(cat.RecordJob, mock.Anything, mock.Anything).Return(func(_ context.Context, r activities.JobRecord) error {
		mu.Lock()
		defer mu.Unlock()
		if r.Backup != nil {
			r.Host = r.Backup.Host
		}
		records[r.Host+":"+r.Status] = r
		return nil
	})
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.PrepareInput) (*backup.Plan, error) {
		q := activity.GetInfo(ctx).TaskQueue
		mu.Lock()
		queues[q] = true
		mu.Unlock()
		p := plan()
		p.ID, p.Host = in.BackupID, strings.TrimPrefix(q, "backup@")
		return p, nil
	})
	env.OnActivity(a.BackupComponent, mock.Anything, mock.Anything).Return(okComponent)
	env.OnActivity(a.CommitBackup, mock.Anything, mock.Anything).Return(activities.BackupSummary{BackupID: "backup-1", Status: "completed"}, nil)
	env.ExecuteWorkflow(FleetBackupWorkflow, FleetBackupRequest{Selector: "site=berlin", CatchUp: time.Hour,
		Backup: BackupRequest{Type: "full", Components: []string{"data"}, Locations: []string{"local"}, ScheduleID: "nightly", CatalogQueue: "cat"}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var runs []FleetRun
	env.GetWorkflowResult(&runs)
	if len(runs) != 3 || runs[0].WorkflowID != "backup:gw-a:data" || runs[1].WorkflowID != "backup:gw-b:data" || !strings.Contains(runs[2].Skipped, "no component data") {
		t.Fatalf("runs: %+v", runs)
	}
	if !queues["backup@gw-a"] || !queues["backup@gw-b"] || len(queues) != 2 {
		t.Fatalf("the hosts' activities ran on %v", queues)
	}
	var keys []string
	for k := range records {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if r := records["gw-c:skipped"]; r.ScheduleID != "nightly" || !strings.Contains(r.Error, "no component data") || r.Finished == nil {
		t.Fatalf("gw-c's skipped run: %+v (records %v)", r, keys)
	}
	if r := records["gw-a:completed"]; r.Backup == nil || r.Backup.Host != "gw-a" {
		t.Fatalf("gw-a's run: %+v (records %v)", r, keys)
	}
}

// A host that does not take its run within the catch-up window: the run
// is missed, and says so.
func TestScheduledHostRunIsMissedPastTheCatchUpWindow(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PrepareBackup, mock.Anything, mock.Anything).Return(nil,
		temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil))
	r := req
	r.Locations, r.Verify, r.HostQueue, r.Host, r.HostWait = []string{"local"}, false, "backup@gw-a", "gw-a", time.Hour
	env.ExecuteWorkflow(BackupWorkflow, r)
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "missed: host gw-a") {
		t.Fatalf("got %v", err)
	}
	var p Progress
	if v, qerr := env.QueryWorkflow(QueryProgress); qerr == nil {
		v.Get(&p)
	}
	if p.Status != StatusMissed {
		t.Fatalf("status %q", p.Status)
	}
}
