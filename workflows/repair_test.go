package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"backupd/activities"
	"backupd/codes"
	"backupd/repository"
)

// A damaged source is passed over for the next healthy copy; a location
// no source reaches is reported, and the job is partial.
func TestRepairTriesTheNextSource(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(RepairWorkflow)
	var tried []string
	env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ReplicateInput) (repository.CopyStats, error) {
		tried = append(tried, in.Dir+in.From+">"+in.To)
		if in.From == "local" || in.To == "broken" {
			return repository.CopyStats{}, temporal.NewNonRetryableApplicationError("blob damaged", string(codes.CorruptionDetected), nil)
		}
		return repository.CopyStats{BlobsCopied: 1}, nil
	})
	env.ExecuteWorkflow(RepairWorkflow, RepairRequest{JobID: "J", RepairID: "R", Items: []RepairItem{
		{BackupID: "b1", Sources: []string{"local", "cloud"}, Missing: []string{"remote", "broken"}}}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out RepairOutcome
	env.GetWorkflowResult(&out)
	if len(out.Copied["b1"]) != 1 || out.Copied["b1"][0] != "remote" || out.Failed["b1 -> broken"] == "" {
		t.Fatalf("outcome %+v (tried %v)", out, tried)
	}
	if len(tried) != 4 || tried[0] != "local>remote" || tried[1] != "cloud>remote" {
		t.Fatalf("tried %v", tried)
	}
}

// An enrolled host's backup is copied between the host's repositories.
func TestRepairCopiesAHostsBackupInItsRepository(t *testing.T) {
	env := newEnv(t)
	env.RegisterWorkflow(RepairWorkflow)
	var dirs []string
	env.OnActivity(a.Replicate, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ReplicateInput) (repository.CopyStats, error) {
		dirs = append(dirs, in.Dir)
		return repository.CopyStats{}, nil
	})
	env.ExecuteWorkflow(RepairWorkflow, RepairRequest{JobID: "J", RepairID: "R", Items: []RepairItem{
		{BackupID: "b1", Sources: []string{"local"}, Missing: []string{"cloud"}, Repository: "hosts/host-0123456789ab"}}})
	if err := env.GetWorkflowError(); err != nil || len(dirs) != 1 || dirs[0] != "hosts/host-0123456789ab" {
		t.Fatalf("%v %v", err, dirs)
	}
}
