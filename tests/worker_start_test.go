package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// As a new user found it: var/ held repositories initialised with another
// password. The worker could not start, nobody said so, and a backup
// accepted with 200 sat at "starting", 0%, forever. Now the worker says
// why at ERROR and keeps trying; health and status name the host, its
// task queue and the cause; the job's progress says it waits for a
// worker; and once the password is right the same job completes.
func TestAWorkerThatCannotStartIsVisibleAndRecovers(t *testing.T) {
	var pwFile string
	s := startAPIStackWith(t, "sqlite", func(s *apiStack) {
		s.apiOnly = true
		dir := filepath.Dir(s.cfgPath)
		pwFile = filepath.Join(dir, "pw")
		other := filepath.Join(dir, "other-pw")
		os.WriteFile(other, []byte("not-the-configured-password\n"), 0o600)
		cmd := exec.Command(s.bin, "repo", "init", "--repo", filepath.Join(dir, "backups"), "--password-file", other)
		cmd.Env = append(os.Environ(), "BACKUPD_TEST_KDF=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("repo init: %v %s", err, out)
		}
	})
	// the cause reaches the log, at ERROR, naming location and password file
	waitFor(t, 30*time.Second, "an ERROR naming the cause in the log", func() bool {
		b, _ := os.ReadFile(s.logPath)
		return strings.Contains(string(b), "level=ERROR") && strings.Contains(string(b), "worker cannot start") &&
			strings.Contains(string(b), "storage location local") && strings.Contains(string(b), pwFile)
	})
	h := s.must(200, "GET", "/cloud-integration/backup/health", "viewer", nil)
	hosts, _ := get(h, "components.scheduler.worker_hosts").([]any)
	if len(hosts) != 1 {
		t.Fatalf("health lists no worker hosts: %v", h)
	}
	w := hosts[0].(map[string]any)
	if w["host"] != "apitest" || w["status"] != "no_worker" || !strings.HasPrefix(w["task_queue"].(string), "backup@apitest") ||
		!strings.Contains(get(w, "in_process.error").(string), "opens none of its key entries") {
		t.Fatalf("worker host in health: %v", w)
	}
	found := false
	for _, a := range h["alerts"].([]any) {
		if m := a.(map[string]any); m["component"] == "scheduler" && strings.Contains(m["message"].(string), "No worker polls task queue") &&
			strings.Contains(m["message"].(string), pwFile) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no health alert names the worker's problem: %v", h["alerts"])
	}
	st := s.must(200, "GET", "/cloud-integration/backup/status", "viewer", nil)
	if ws, _ := get(st, "backup_system.workers").([]any); len(ws) != 1 {
		t.Fatalf("status lists no workers: %v", st["backup_system"])
	}

	// a backup is accepted (Temporal keeps it) and says what it waits for
	c := s.must(200, "POST", "/cloud-integration/backup/create", "operator", map[string]any{
		"components": []string{"configurations"}, "type": "full", "storage_locations": []string{"local"}})
	jobID := c["job_id"].(string)
	p := s.must(200, "GET", "/cloud-integration/backup/progress?job_id="+jobID, "viewer", nil)
	if get(p, "progress.current_operation") != "waiting_for_worker" || !strings.Contains(p["waiting"].(string), "apitest") {
		t.Fatalf("progress of a job with no worker: %v", p)
	}

	// the user fixes the password; the worker's next try starts it, and
	// the waiting job runs
	os.WriteFile(pwFile, []byte("not-the-configured-password\n"), 0o600)
	waitFor(t, 90*time.Second, "the job to complete", func() bool {
		p := s.must(200, "GET", "/cloud-integration/backup/progress?job_id="+jobID, "viewer", nil)
		return p["status"] == "completed"
	})
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
