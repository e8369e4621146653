package tests

// End-to-end tests of the durable jobs against a real Temporal dev server
// (the pinned CLI binary, SQLite in a temp dir), a worker in this process,
// and real storage (local directory and versitygw S3).

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"backupd/activities"
	"backupd/codes"
	"backupd/config"
	"backupd/jobs"
	"backupd/storage/s3/s3test"
	temporalconfig "backupd/temporal-config"
	"backupd/worker"
	"backupd/workflows"
)

func temporalBinary(t *testing.T) string {
	for _, p := range []string{os.Getenv("BACKUPD_TEMPORAL"), "../bin/temporal"} {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			if _, err := os.Stat(abs); err == nil {
				return abs
			}
		}
	}
	if os.Getenv("BACKUPD_REQUIRE_SERVERS") == "1" {
		t.Fatal("no Temporal CLI binary (make bin/temporal, or set BACKUPD_TEMPORAL)")
	}
	t.Skip("no Temporal CLI binary (make bin/temporal)")
	return ""
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tserver is a Temporal dev server process with its SQLite file, so it
// can be stopped (or killed) and started again on the same state.
type tserver struct {
	t        *testing.T
	bin, db  string
	port, ui int
	logPath  string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has ended
}

func (s *tserver) start() {
	s.cmd = exec.Command(s.bin, temporalconfig.DevServerArgs(s.db, "127.0.0.1", s.port, s.ui, "default")...)
	logf, _ := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	exited, cmd := make(chan struct{}), s.cmd
	s.exited = exited
	go func() { cmd.Wait(); close(exited) }()
}

// stop interrupts the server (kill: SIGKILL, as a crash) and waits for it.
func (s *tserver) stop(kill bool) {
	if s.cmd == nil {
		return
	}
	if kill {
		s.cmd.Process.Kill()
	} else {
		s.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

func (s *tserver) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// devServer starts `temporal server start-dev` with backupd's search
// attributes and returns a connected client.
func devServer(t *testing.T) (client.Client, string) {
	c, s := devServerHandle(t)
	return c, s.addr()
}

func devServerHandle(t *testing.T) (client.Client, *tserver) {
	dir := t.TempDir()
	s := &tserver{t: t, bin: temporalBinary(t), db: filepath.Join(dir, "temporal.db"), logPath: filepath.Join(dir, "temporal.log")}
	t.Cleanup(func() { s.stop(false) })
	quiet := log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	// A port picked free may be taken by another test's process before
	// the server binds it; a server that exits on that gets new ports.
	for try := 1; ; try++ {
		s.port, s.ui = freePort(t), freePort(t)
		s.start()
		deadline := time.Now().Add(60 * time.Second)
		for {
			c, err := client.Dial(client.Options{HostPort: s.addr(), Namespace: "default", Logger: quiet})
			if err == nil {
				if _, err = c.CheckHealth(context.Background(), &client.CheckHealthRequest{}); err == nil {
					t.Cleanup(c.Close)
					return c, s
				}
				c.Close()
			}
			exited := false
			select {
			case <-s.exited:
				exited = true
			default:
			}
			if exited || time.Now().After(deadline) {
				b, _ := os.ReadFile(s.logPath)
				if exited && try < 3 && strings.Contains(string(b), "address already in use") {
					s.cmd = nil
					break
				}
				t.Fatalf("temporal dev server not up: %v\n%s", err, b)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
}

// stack is a configured host: components over real files, a local and an
// S3 location, a worker on its task queue.
type stack struct {
	cfg  *config.Config
	jc   *jobs.Client
	c    client.Client
	src  string
	repo string // the local location's directory
}

func newStack(t *testing.T) *stack {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if out, err := exec.Command("cp", "-a", filepath.Join(goRoot, "src", "net"), src).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return newStackFor(t, src)
}

// newStackFor is newStack backing up src as the "data" component.
func newStackFor(t *testing.T, src string) *stack {
	c, addr := devServer(t)
	s3 := s3test.StartTB(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("job-test-password\n"), 0o600)
	t.Setenv("BACKUPD_TEST_KDF", "1")
	cfg := &config.Config{
		Host: "testhost", VarDir: dir, PasswordFile: pw, Primary: "local", Catalog: config.Catalog{Driver: "sqlite"},
		Temporal: config.Temporal{Address: addr, Namespace: "default", TaskQueue: "backup@testhost-" + strconv.Itoa(freePort(t))},
		Components: map[string]config.Component{
			"data":    {Paths: []string{src}},
			"missing": {Paths: []string{filepath.Join(dir, "no-such-dir")}},
			// a database that is not there: its dump fails mid-backup
			"baddb": {Databases: []config.Database{{Kind: "postgresql", Host: "127.0.0.1", Port: 5432, User: "postgres",
				Database: "backupd_no_such_database"}}},
		},
		Storage: map[string]config.Location{
			"local": {URL: filepath.Join(dir, "repo")},
			"cloud": {URL: "s3://jobs/cloud?endpoint=" + s3.Endpoint + "&path_style=true&region=us-east-1",
				AccessKey: s3.AccessKey, SecretKey: s3.SecretKey},
		},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	acts := activities.New(cfg)
	t.Cleanup(acts.Stores.Close)
	if err := acts.Stores.EnsureInitialized(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := worker.New(c, acts, worker.Options{TaskQueue: cfg.Temporal.TaskQueue, MaxConcurrentActivities: 4})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return &stack{cfg: cfg, c: c, src: src, repo: filepath.Join(dir, "repo"),
		jc: &jobs.Client{C: c, TaskQueue: cfg.Temporal.TaskQueue, Host: cfg.Host}}
}

func (s *stack) wait(t *testing.T, job *jobs.Job, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return s.c.GetWorkflow(ctx, job.WorkflowID, job.RunID).Get(ctx, out)
}

func TestJobsBackupRestoreVerifyOnRealTemporal(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()

	job, err := s.jc.StartBackup(ctx, workflows.BackupRequest{Type: "full", Components: []string{"data"},
		Locations: []string{"local", "cloud"}, Compression: "zstd", Verify: true}, 3)
	if err != nil {
		t.Fatal(err)
	}
	// A second backup of the same components while the first runs is
	// refused by the workflow id policy.
	_, err = s.jc.StartBackup(ctx, workflows.BackupRequest{Type: "full", Components: []string{"data"},
		Locations: []string{"local"}, Compression: "zstd"}, 0)
	var ce *codes.Error
	if !errors.As(err, &ce) || ce.Code != codes.AlreadyInProgress {
		t.Fatalf("concurrent backup: want BACKUP_002, got %v", err)
	}
	var out workflows.BackupOutcome
	if err := s.wait(t, job, &out); err != nil {
		t.Fatal(err)
	}
	if out.Status != workflows.StatusCompleted || out.Copies["cloud"] != "done" || out.Verify == nil || !out.Verify.Passed {
		t.Fatalf("backup outcome: %+v", out)
	}
	backupID := out.Summary.BackupID
	// listable by search attributes, as in the Web UI
	found, err := s.jc.Find(ctx, job.JobID)
	if err != nil || found.WorkflowID != job.WorkflowID {
		t.Fatalf("find by job id: %v %+v", err, found)
	}

	// restore from each location, bit-identical
	for _, loc := range []string{"local", "cloud"} {
		target := filepath.Join(t.TempDir(), "r")
		rj, err := s.jc.StartRestore(ctx, workflows.RestoreRequest{RestoreInput: activities.RestoreInput{BackupID: backupID, Location: loc, Target: target}, VerifyBefore: true})
		if err != nil {
			t.Fatal(err)
		}
		var ro workflows.RestoreOutcome
		if err := s.wait(t, rj, &ro); err != nil {
			t.Fatalf("restore from %s: %v", loc, err)
		}
		if out, err := exec.Command("diff", "-r", "--no-dereference", s.src, restored(target, "data", s.src)).CombinedOutput(); err != nil {
			t.Fatalf("restore from %s differs: %s", loc, clip(string(out)))
		}
	}

	// verify passes, then fails once a pack is damaged
	vj, _ := s.jc.StartVerify(ctx, workflows.VerifyRequest{BackupID: backupID, Location: "local", ReadDataPercent: 100})
	var rep activities.VerifyReport
	if err := s.wait(t, vj, &rep); err != nil || !rep.Passed {
		t.Fatalf("verify of a healthy backup: %v %+v", err, rep)
	}
	// the largest pack holds file content (tree packs hold small listings)
	var pack string
	var largest int64
	filepath.Walk(filepath.Join(s.repo, "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > largest {
			pack, largest = p, fi.Size()
		}
		return nil
	})
	if largest < 64<<10 {
		t.Fatalf("no data pack to damage (largest %d bytes)", largest)
	}
	flipByte(t, pack, 1000)
	vj, _ = s.jc.StartVerify(ctx, workflows.VerifyRequest{BackupID: backupID, Location: "local", ReadDataPercent: 100, ExtractTest: true})
	rep = activities.VerifyReport{}
	if err := s.wait(t, vj, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Passed || rep.Check == nil || len(rep.Check.DamagedPacks) != 1 || rep.ExtractTest == nil || rep.ExtractTest.Passed {
		t.Fatalf("verify of a damaged backup passed: %+v", rep)
	}
	p, err := s.jc.Progress(ctx, vj)
	if err != nil || p.Status != workflows.StatusFailed {
		t.Fatalf("verify job status: %v %+v", err, p)
	}
}

func TestJobsUnknownComponentFailsFast(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	job, err := s.jc.StartBackup(ctx, workflows.BackupRequest{Type: "full", Components: []string{"nope"},
		Locations: []string{"local"}, Compression: "zstd"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.wait(t, job, nil)
	if err == nil || !containsCode(err, codes.InvalidConfiguration) || time.Since(start) > 20*time.Second {
		t.Fatalf("want a fast BACKUP_003, got %v after %s", err, time.Since(start))
	}
	// a component whose source path is not there is a configuration
	// error naming it, found before anything is written
	job, err = s.jc.StartBackup(ctx, workflows.BackupRequest{Type: "full", Components: []string{"data", "missing"},
		Locations: []string{"local"}, Compression: "zstd"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.wait(t, job, nil); !containsCode(err, codes.InvalidConfiguration) || !strings.Contains(err.Error(), "component missing") {
		t.Fatalf("missing source: want BACKUP_003 naming the component, got %v", err)
	}
	// a component that fails while it is backed up fails alone: the
	// backup is partial and the other component is whole
	job, err = s.jc.StartBackup(ctx, workflows.BackupRequest{Type: "full", Components: []string{"baddb", "data"},
		Locations: []string{"local"}, Compression: "zstd"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out workflows.BackupOutcome
	if err := s.wait(t, job, &out); err != nil {
		t.Fatal(err)
	}
	if out.Status != workflows.StatusPartial || len(out.Failed) != 1 || out.Failed[0].Name != "baddb" ||
		!strings.Contains(out.Failed[0].Error, "backupd_no_such_database") {
		t.Fatalf("partial backup: %+v", out)
	}
	target := filepath.Join(t.TempDir(), "r")
	rj, err := s.jc.StartRestore(ctx, workflows.RestoreRequest{RestoreInput: activities.RestoreInput{BackupID: out.Summary.BackupID, Location: "local", Target: target, Components: []string{"data"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.wait(t, rj, nil); err != nil {
		t.Fatalf("restoring the good component of a partial backup: %v", err)
	}
	if o, err := exec.Command("diff", "-r", "--no-dereference", s.src, restored(target, "data", s.src)).CombinedOutput(); err != nil {
		t.Fatalf("restore differs: %s", clip(string(o)))
	}
}

func containsCode(err error, c codes.Code) bool {
	return err != nil && strings.Contains(err.Error(), string(c))
}
