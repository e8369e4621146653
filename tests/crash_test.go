package tests

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
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
	crashCase(t, c, addr, func(w1 *exec.Cmd, countPacks func() int) {
		w1.Process.Signal(syscall.SIGKILL)
		w1.Wait()
		t.Logf("killed worker 1 with %d packs stored", countPacks())
	}, nil)
}

// TestWorkerStoppedGracefullyResumes: SIGTERM makes the worker stop its
// running activity at once (it returns instead of being cut off), so the
// new worker takes over without waiting for a heartbeat timeout.
func TestWorkerStoppedGracefullyResumes(t *testing.T) {
	c, addr := devServer(t)
	var restarted time.Time
	crashCase(t, c, addr, func(w1 *exec.Cmd, countPacks func() int) {
		w1.Process.Signal(syscall.SIGTERM)
		start := time.Now()
		w1.Wait()
		t.Logf("worker 1 stopped %s after SIGTERM, %d packs stored", time.Since(start).Round(time.Millisecond), countPacks())
		restarted = time.Now()
	}, func() {
		if d := time.Since(restarted); d > 25*time.Second {
			t.Errorf("the backup took %s after the restart: the stopped worker's activity was not released", d)
		}
	})
}

// TestTemporalServerRestartMidBackup: the Temporal server dies mid-backup
// and comes back on the same SQLite file; the worker reconnects and the
// backup completes.
func TestTemporalServerRestartMidBackup(t *testing.T) {
	c, srv := devServerHandle(t)
	crashCase(t, c, srv.addr(), func(w1 *exec.Cmd, countPacks func() int) {
		srv.stop(true)
		t.Logf("Temporal server killed with %d packs stored", countPacks())
		time.Sleep(2 * time.Second)
		srv.start()
	}, nil)
}

// crashCase runs a backup of the Go tree on a worker process, calls
// disrupt once three packs are stored, makes sure a worker is running
// afterwards, and checks the same run completes with a bit-identical
// restore and no pack uploaded for nothing.
func crashCase(t *testing.T, c client.Client, addr string, disrupt func(w1 *exec.Cmd, countPacks func() int), after func()) {
	src := sourceTree(t)
	dir, cfg, cfgPath, countPacks := crashStack(t, addr, "crashhost", src)

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
	for countPacks() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("backup never stored three packs")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d, err := c.DescribeWorkflowExecution(context.Background(), job.WorkflowID, job.RunID); err != nil ||
		d.WorkflowExecutionInfo.Status.String() != "Running" {
		t.Fatalf("the backup was not running any more when disrupted (%v); the test proves nothing", err)
	}
	disrupt(w1, countPacks)
	if w1.ProcessState != nil { // the worker is gone: start another
		startWorkerProcess(t, cfgPath, "worker2.log")
	}
	out := sameRunCompletes(t, c, job, 3*time.Minute)
	if after != nil {
		after()
	}

	checkAfterCrashes(t, dir, src, out.Summary.BackupID, 4)
}

// crashStack writes the configuration of a one-location worker backing
// up src, and a counter of the packs stored.
func crashStack(t *testing.T, addr, host, src string) (dir string, cfg config.Config, cfgPath string, countPacks func() int) {
	dir = t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte(crashPassword+"\n"), 0o600)
	cfg = config.Config{Host: host, VarDir: dir, PasswordFile: pw, Primary: "local",
		Catalog:    config.Catalog{Driver: "sqlite"},
		Temporal:   config.Temporal{Address: addr, Namespace: "default", TaskQueue: "backup@" + host + "-" + strconv.Itoa(freePort(t))},
		Components: map[string]config.Component{"data": {Paths: []string{src}}},
		Storage:    map[string]config.Location{"local": {URL: filepath.Join(dir, "repo")}},
	}
	b, _ := yaml.Marshal(&cfg)
	cfgPath = filepath.Join(dir, "backupd.yaml")
	os.WriteFile(cfgPath, b, 0o600)
	countPacks = func() int {
		n := 0
		filepath.Walk(filepath.Join(dir, "repo", "data"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				n++
			}
			return nil
		})
		return n
	}
	return dir, cfg, cfgPath, countPacks
}

const crashPassword = "crash-test"

// checkAfterCrashes: the repository checks clean with every pack read,
// the backup restores bit-identical, and at most maxWasted packs were
// uploaded for nothing (stored, referenced by no backup).
func checkAfterCrashes(t *testing.T, dir, src, backupID string, maxWasted int) {
	be, err := local.New(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Open(context.Background(), be, repository.Credentials{Password: []byte(crashPassword)})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := repository.Check(context.Background(), repo, repository.CheckOptions{ReadDataPercent: 100})
	if err != nil || !cr.OK {
		t.Fatalf("check: %v %+v", err, cr)
	}
	m, err := repo.LoadManifest(context.Background(), backupID)
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
	gc, err := repository.GC(context.Background(), repo, repository.GCOptions{DryRun: true, SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the disruption: %d unreferenced packs, %d bytes uploaded for nothing; %d packs in all",
		gc.Unreferenced, gc.BytesFreed, gc.Packs)
	if gc.Unreferenced > maxWasted {
		t.Fatalf("%d packs uploaded twice: more than the %d in flight at the kills", gc.Unreferenced, maxWasted)
	}
}

// TestWorkerKilledTenTimesDuringOneBackup: SIGKILL the worker at random
// moments, ten times, during one backup: each time after it has stored
// at least one more pack, then after a random delay (mid-upload or
// between packs). The same workflow run completes, the restore is
// bit-identical, the repository checks clean with every pack read, and
// what was uploaded for nothing stays bounded by the packs in flight.
func TestWorkerKilledTenTimesDuringOneBackup(t *testing.T) {
	c, addr := devServer(t)
	src := filepath.Join(t.TempDir(), "src")
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	// ~770 MB that does not compress: ~48 packs. On an idle 2-core machine
	// a restarted worker stores 3 to 6 packs before the next kill, so 450 MB
	// ended the backup after 5 to 7 kills (it passed only under load)
	for i := 0; i < 48; i++ {
		b := make([]byte, 15<<20+rng.Intn(2<<20))
		rng.Read(b)
		sub := filepath.Join(src, fmt.Sprintf("d%d", i%4))
		os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%02d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir, cfg, cfgPath, countPacks := crashStack(t, addr, "killhost", src)
	w := startWorkerProcess(t, cfgPath, "worker-0.log")
	jc := &jobs.Client{C: c, TaskQueue: cfg.Temporal.TaskQueue, Host: cfg.Host}
	// a dead worker is noticed in 3 s and its work retried at once (the
	// production defaults, 30 s and backoff to a minute, would make ten
	// kills take many minutes)
	job, err := jc.StartBackup(context.Background(), workflows.BackupRequest{Type: "full", Components: []string{"data"},
		Locations: []string{"local"}, Compression: "zstd",
		Failover: &workflows.Failover{HeartbeatTimeout: 3 * time.Second, RetryInitial: 200 * time.Millisecond, RetryMax: time.Second}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	running := func() bool {
		d, err := c.DescribeWorkflowExecution(context.Background(), job.WorkflowID, job.RunID)
		return err == nil && d.WorkflowExecutionInfo.Status.String() == "Running"
	}
	var at []int
	logName := "worker-0.log"
	for kill := 1; kill <= 10; kill++ {
		base := countPacks()
		deadline := time.Now().Add(90 * time.Second)
		for countPacks() <= base {
			if time.Now().After(deadline) {
				d, _ := c.DescribeWorkflowExecution(context.Background(), job.WorkflowID, job.RunID)
				log, _ := os.ReadFile(filepath.Join(dir, logName))
				t.Fatalf("kill %d: no progress in 90 s after the restart (packs at the kills: %v); the workflow: %v\n%s:\n%s",
					kill, at, d, logName, tail(string(log), 40))
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.Intn(120)) * time.Millisecond)
		if !running() {
			t.Fatalf("the backup ended after %d kills (packs at the kills: %v): the test needs more data", kill-1, at)
		}
		w.Process.Signal(syscall.SIGKILL)
		w.Wait()
		at = append(at, countPacks())
		logName = fmt.Sprintf("worker-%d.log", kill)
		w = startWorkerProcess(t, cfgPath, logName)
	}
	t.Logf("killed 10 times, with %v packs stored", at)
	out := sameRunCompletes(t, c, job, 4*time.Minute)
	checkAfterCrashes(t, dir, src, out.Summary.BackupID, 10*4)
}

// sameRunCompletes waits for the backup's workflow run (the one started,
// not a new one) to complete.
func sameRunCompletes(t *testing.T, c client.Client, job *jobs.Job, d time.Duration) workflows.BackupOutcome {
	t.Helper()
	var out workflows.BackupOutcome
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	run := c.GetWorkflow(ctx, job.WorkflowID, job.RunID)
	if err := run.Get(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if run.GetRunID() != job.RunID || out.Status != workflows.StatusCompleted {
		t.Fatalf("run %s (started %s) ended %s", run.GetRunID(), job.RunID, out.Status)
	}
	return out
}
