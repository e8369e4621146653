package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"backupd/config"
	"backupd/jobs"
	"backupd/repository"
	"backupd/restore"
	"backupd/storage/local"
	"backupd/workflows"
)

// startWorkerProcess runs `backupd worker` with cfgPath.
func startWorkerProcess(t *testing.T, cfgPath, logName string) *exec.Cmd {
	cmd := exec.Command(binary, "worker", "--config", cfgPath)
	logf, _ := os.Create(filepath.Join(filepath.Dir(cfgPath), logName))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "BACKUPD_TEST_KDF=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// TestWorkerKilledMidUploadResumes: SIGKILL the worker during a backup of
// the Go tree; a new worker finishes the same workflow run; the restore is
// bit-identical, and what was uploaded twice is bounded by the packs in
// flight at the kill.
func TestWorkerKilledMidUploadResumes(t *testing.T) {
	c, addr := devServer(t)
	dir := t.TempDir()
	src := sourceTree(t)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("crash-test\n"), 0o600)
	cfg := config.Config{Host: "crashhost", VarDir: dir, PasswordFile: pw, Primary: "local",
		Catalog:    config.Catalog{Driver: "sqlite"},
		Temporal:   config.Temporal{Address: addr, Namespace: "default", TaskQueue: "backup@crash-" + strconv.Itoa(freePort(t))},
		Components: map[string]config.Component{"data": {Paths: []string{src}}},
		Storage:    map[string]config.Location{"local": {URL: filepath.Join(dir, "repo")}},
	}
	b, _ := yaml.Marshal(&cfg)
	cfgPath := filepath.Join(dir, "backupd.yaml")
	os.WriteFile(cfgPath, b, 0o600)

	w1 := startWorkerProcess(t, cfgPath, "worker1.log")
	jc := &jobs.Client{C: c, TaskQueue: cfg.Temporal.TaskQueue, Host: cfg.Host}
	job, err := jc.StartBackup(context.Background(), workflows.BackupRequest{Type: "full", Components: []string{"data"},
		Locations: []string{"local"}, Compression: "zstd"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Kill once a few packs are stored, mid-upload (watching the storage
	// itself: heartbeats are throttled to every 2 s, the backup takes ~3 s).
	deadline := time.Now().Add(2 * time.Minute)
	countPacks := func() int {
		n := 0
		filepath.Walk(filepath.Join(dir, "repo", "data"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				n++
			}
			return nil
		})
		return n
	}
	for countPacks() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("backup never stored three packs")
		}
		time.Sleep(10 * time.Millisecond)
	}
	w1.Process.Signal(syscall.SIGKILL)
	w1.Wait()
	atKill := countPacks()
	t.Logf("killed worker 1 with %d packs stored", atKill)
	if d, err := c.DescribeWorkflowExecution(context.Background(), job.WorkflowID, job.RunID); err == nil &&
		d.WorkflowExecutionInfo.Status.String() != "Running" {
		t.Fatalf("the backup was no longer running at the kill: %s", d.WorkflowExecutionInfo.Status)
	}

	startWorkerProcess(t, cfgPath, "worker2.log")
	var out workflows.BackupOutcome
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := c.GetWorkflow(ctx, job.WorkflowID, job.RunID)
	if err := run.Get(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if run.GetRunID() != job.RunID || out.Status != workflows.StatusCompleted {
		t.Fatalf("run %s (started %s) ended %s", run.GetRunID(), job.RunID, out.Status)
	}

	// restore: bit-identical
	be, err := local.New(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Open(context.Background(), be, repository.Credentials{Password: []byte("crash-test")})
	if err != nil {
		t.Fatal(err)
	}
	m, err := repo.LoadManifest(context.Background(), out.Summary.BackupID)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "restore")
	if _, err := restore.Run(context.Background(), repo, m, restore.Options{Target: target}); err != nil {
		t.Fatal(err)
	}
	if o, err := exec.Command("diff", "-r", "--no-dereference", src, restored(target, "data", src)).CombinedOutput(); err != nil {
		t.Fatalf("restore differs: %s", clip(string(o)))
	}
	// uploaded twice: packs stored but referenced by no backup
	gc, err := repository.GC(context.Background(), repo, repository.GCOptions{DryRun: true, SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the kill: %d unreferenced packs, %d bytes uploaded for nothing; %d packs in all",
		gc.Unreferenced, gc.BytesFreed, gc.Packs)
	if gc.Unreferenced > 4 {
		t.Fatalf("%d packs uploaded twice: more than the packs in flight at the kill", gc.Unreferenced)
	}
}
