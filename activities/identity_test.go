package activities

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"backupd/codes"
	"backupd/config"
	"backupd/repository"
	"backupd/storage/local"
)

// Two backups under one id (two hosts writing to one repository in the
// same second) are never taken for each other: a copy finding another
// backup's manifest at the destination fails and says so (it used to
// count as "already copied", leaving the 3-2-1 copy missing), and the
// cleanup of a cancelled backup removes only its own manifest.
func TestJobsNeverTakeAnotherBackupUnderTheSameID(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("pw\n"), 0o600)
	t.Setenv("BACKUPD_PASSWORD", "")
	cfg := &config.Config{PasswordFile: pw, Storage: map[string]config.Location{}}
	repos := map[string]*repository.Repository{}
	kdf := repository.TestKDF()
	for _, name := range []string{"local", "remote"} {
		cfg.Storage[name] = config.Location{URL: filepath.Join(dir, name)}
		be, err := local.New(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		r, err := repository.Init(ctx, be, repository.InitOptions{Wrapping: repository.Wrapping{Password: []byte("pw"), KDF: &kdf}})
		if err != nil {
			t.Fatal(err)
		}
		repos[name] = r
	}
	a := &Activities{Stores: NewStores(cfg)}
	const id = "backup-20261202-020000-abcd"
	at := time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC)
	mine := &repository.Manifest{ID: id, Type: "full", Host: "gw-1", Started: at, Status: "completed"}
	theirs := &repository.Manifest{ID: id, Type: "full", Host: "gw-2", Started: at.Add(time.Millisecond), Status: "completed"}
	if err := repos["local"].SaveManifest(ctx, mine); err != nil {
		t.Fatal(err)
	}
	if err := repos["remote"].SaveManifest(ctx, theirs); err != nil {
		t.Fatal(err)
	}

	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.Replicate, ReplicateInput{BackupID: id, From: "local", To: "remote"})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != string(codes.AlreadyInProgress) || !strings.Contains(err.Error(), `"gw-2"`) {
		t.Fatalf("a copy onto another backup's id: %v", err)
	}

	// the cancelled job's cleanup leaves the other host's backup alone...
	if err := a.DiscardBackup(ctx, DiscardInput{BackupID: id, Locations: []string{"remote"}, Host: mine.Host, Started: mine.Started}); err != nil {
		t.Fatal(err)
	}
	if got, err := repos["remote"].LoadManifest(ctx, id); err != nil || got.Host != "gw-2" {
		t.Fatalf("another backup's manifest removed: %+v %v", got, err)
	}
	// ...and one that does not say which backup it cleans removes none
	if err := a.DiscardBackup(ctx, DiscardInput{BackupID: id, Locations: []string{"local"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := repos["local"].LoadManifest(ctx, id); err != nil {
		t.Fatalf("removed without knowing whose: %v", err)
	}
	// its own manifest it removes
	if err := a.DiscardBackup(ctx, DiscardInput{BackupID: id, Locations: []string{"local"}, Host: mine.Host, Started: mine.Started}); err != nil {
		t.Fatal(err)
	}
	if _, err := repos["local"].LoadManifest(ctx, id); !errors.Is(err, repository.ErrBackupNotFound) {
		t.Fatalf("its own manifest kept: %v", err)
	}
}
