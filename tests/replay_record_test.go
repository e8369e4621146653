package tests

// The recorder of the workflow histories that workflows/replay_test.go
// replays: every workflow type backupd registers, run for real (`backupd
// all` against a Temporal dev server, local, S3 and SFTP storage) through
// the REST API, its history fetched from the server and written as JSON to
// workflows/testdata/histories. Only on demand (make record-histories):
// re-recording is for new workflow shapes, never to make a failing replay
// pass.

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"backupd/config"
	"backupd/worker"
)

const historiesDir = "../workflows/testdata/histories"

func TestRecordHistories(t *testing.T) {
	if os.Getenv("BACKUPD_RECORD_HISTORIES") != "1" {
		t.Skip("records workflow histories into workflows/testdata/histories: BACKUPD_RECORD_HISTORIES=1 (make record-histories)")
	}
	// small sources: a history holds inputs and results, not file data,
	// but fewer files make smaller manifests and faster runs
	dir := t.TempDir()
	data, bulk := filepath.Join(dir, "data"), filepath.Join(dir, "bulk")
	os.MkdirAll(filepath.Join(data, "sub"), 0o755)
	os.WriteFile(filepath.Join(data, "a.txt"), []byte("alpha\n"), 0o644)
	os.WriteFile(filepath.Join(data, "b.txt"), []byte(strings.Repeat("beta ", 1000)), 0o644)
	os.WriteFile(filepath.Join(data, "sub", "c.txt"), []byte("gamma\n"), 0o644)
	// bulk is big and slow to compress (bzip2) so a pause or a cancel
	// lands while its component activity runs
	os.MkdirAll(bulk, 0o755)
	big := make([]byte, 24<<20)
	slowText(big)
	os.WriteFile(filepath.Join(bulk, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(bulk, "small.txt"), []byte("small\n"), 0o644)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer hook.Close()

	s := startAPIStackWith(t, "sqlite", func(*apiStack) {}, func(c *config.Config) {
		c.Components["data"] = config.Component{Paths: []string{data}}
		c.Components["bulk"] = config.Component{Paths: []string{bulk}}
		c.Notifications = config.Notifications{Webhooks: []config.Webhook{{Name: "ops", URL: hook.URL, Secret: "s"}}}
	})
	quiet := log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	c, err := client.Dial(client.Options{HostPort: s.temporal, Namespace: "default", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := os.MkdirAll(historiesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{t: t, c: c, log: quiet, written: map[string]bool{}}
	const v1 = "/v1/cloud-integration/backup"

	// 1. a backup to three locations (copies), verified after completion,
	// with a notification (a NotifyWorkflow child)
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components":        map[string]bool{"data": true, "configurations": true},
		"storage_locations": []string{"local", "cloud", "remote"}, "compression": "zstd",
		"verify_after_completion": true, "notify_on_completion": true})
	if p := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string)); p["status"] != "completed" {
		t.Fatalf("backup with copies: %v", p)
	}
	backupID := cr["backup_id"].(string)
	rec.job("backup-copies-verify", cr["job_id"].(string))

	// 2. repair: a backup to local alone is short of the 3-2-1 policy; the
	// repair copies it to cloud and remote
	sr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"system": true}, "storage_locations": []string{"local"}})
	s.waitJob(t, v1+"/progress?job_id="+sr["job_id"].(string))
	rp := s.must(200, "POST", v1+"/repair", "operator", map[string]any{})
	if p := s.waitJob(t, rp["report_url"].(string)); p["status"] != "completed" {
		t.Fatalf("repair: %v", p)
	}
	rec.job("repair", rp["job_id"].(string))

	// 3. verify the cloud copy, with an extract test
	vr := s.must(200, "POST", v1+"/verify", "operator", map[string]any{"backup_id": backupID, "storage_location": "cloud",
		"extract_test": true})
	if p := s.waitJob(t, vr["report_url"].(string)); p["passed"] != true {
		t.Fatalf("verify: %v", p)
	}
	rec.job("verify", vr["job_id"].(string))

	// 4. restore over the original paths, verified before and after, with
	// a pre-restore snapshot (a child BackupWorkflow of type snapshot)
	os.WriteFile(filepath.Join(data, "a.txt"), []byte("changed after the backup\n"), 0o644)
	rr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": backupID, "restore_type": "partial",
		"components": map[string]bool{"data": true}, "target_location": "original", "create_pre_restore_snapshot": true,
		"verify_before_restore": true, "verify_after_restore": true})
	if rr["pre_restore_snapshot_created"] != true {
		t.Fatalf("restore: %v", rr)
	}
	if p := s.waitJob(t, v1+"/restore/progress?job_id="+rr["job_id"].(string)); p["status"] != "completed" {
		t.Fatalf("restore: %v", p)
	}
	rec.job("restore-pre-snapshot", rr["job_id"].(string))

	// 4b. restore into a new directory: the target is checked first (the
	// CheckRestoreTarget step behind the "restore-target-check" version)
	nr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": backupID, "restore_type": "partial",
		"components": map[string]bool{"configurations": true}, "target_location": filepath.Join(dir, "restored")})
	if p := s.waitJob(t, v1+"/restore/progress?job_id="+nr["job_id"].(string)); p["status"] != "completed" {
		t.Fatalf("restore to a new directory: %v", p)
	}
	rec.job("restore-new-target", nr["job_id"].(string))

	// 5. a backup paused while its component runs, then resumed
	pr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"bulk": true}, "storage_locations": []string{"local"}, "compression": "bzip2"})
	pj := pr["job_id"].(string)
	s.waitRunning(t, pj)
	s.must(200, "POST", v1+"/jobs/pause", "operator", map[string]string{"job_id": pj})
	rec.waitNoActivities(pj)
	if p := s.must(200, "GET", v1+"/progress?job_id="+pj, "viewer", nil); p["status"] != "paused" {
		t.Fatalf("not paused: %v", p)
	}
	s.must(200, "POST", v1+"/jobs/resume", "operator", map[string]string{"job_id": pj})
	if p := s.waitJob(t, v1+"/progress?job_id="+pj); p["status"] != "completed" {
		t.Fatalf("resumed backup: %v", p)
	}
	rec.job("backup-pause-resume", pj)

	// 6. a backup cancelled while its component runs (new data: nothing
	// to deduplicate)
	slowText(big)
	os.WriteFile(filepath.Join(bulk, "big.bin"), big, 0o644)
	xr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"bulk": true}, "storage_locations": []string{"local"}, "compression": "bzip2"})
	xj := xr["job_id"].(string)
	s.waitRunning(t, xj)
	s.must(200, "POST", v1+"/jobs/cancel", "operator", map[string]any{"job_id": xj, "cleanup": true})
	if p := s.waitJob(t, v1+"/progress?job_id="+xj); p["outcome"] != "cancelled" {
		t.Fatalf("cancelled backup: %v", p)
	}
	rec.job("backup-cancelled", xj)

	// 7. a real cleanup: the retention policy keeps one full backup a
	// day, the others are forgotten on local and its garbage collected
	s.must(200, "POST", v1+"/retention", "admin", map[string]any{"retention_policies": map[string]any{
		"full_backups": map[string]int{"daily": 1}, "incremental_backups": map[string]int{"keep_all_for_days": 7},
		"differential_backups": map[string]int{}, "snapshots": map[string]int{"keep_all_for_days": 7}}})
	cl := s.must(200, "POST", v1+"/cleanup", "admin", map[string]any{"dry_run": false, "target_storage": []string{"local"}})
	cp := s.waitJob(t, "/cloud-integration/backup/cleanup/report/"+cl["cleanup_id"].(string))
	if cp["status"] != "completed" || len(fmt.Sprint(get(cp, "backup_ids"))) <= 2 {
		t.Fatalf("cleanup removed nothing: %v", cp)
	}
	rec.job("cleanup", cl["job_id"].(string))

	// 8. an enrolled host: a schedule of hosts (a FleetBackupWorkflow and
	// its child, the host's backup, whose activities run on the host),
	// then that backup restored on the host under a grant
	en := s.must(201, "POST", v1+"/hosts/enrolments", "admin", map[string]any{"name": "gw-rec"})
	gw := newFleetHost(t, s, "gw-rec")
	gw.start(s.bin, []string{"BACKUPD_ENROL_TOKEN=" + en["token"].(string)}, "--enrol", s.base)
	defer gw.stop()
	waitFor(t, 60*time.Second, "gw-rec online", func() bool {
		_, h := s.do("GET", v1+"/hosts/gw-rec", "viewer", nil)
		return h["state"] == "online"
	})
	s.must(200, "POST", v1+"/schedules", "operator", map[string]any{"id": "hosts-nightly", "frequency": "daily", "time": "03:00",
		"components": map[string]bool{"data": true}, "storage_locations": []string{"local"}, "hosts": []string{"gw-rec"}})
	s.must(200, "POST", v1+"/schedules/hosts-nightly/trigger", "operator", nil)
	var hostBackup string
	waitFor(t, 90*time.Second, "gw-rec's scheduled backup", func() bool {
		l := s.must(200, "GET", v1+"/list?host=gw-rec", "viewer", nil)
		for _, b := range l["backups"].([]any) {
			if m := b.(map[string]any); m["status"] == "completed" {
				hostBackup = m["id"].(string)
			}
		}
		return hostBackup != ""
	})
	fl, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: "WorkflowType = 'FleetBackupWorkflow'"})
	if err != nil || len(fl.Executions) != 1 {
		t.Fatalf("the fleet run: %v %v", fl, err)
	}
	rec.execution("fleet-backup", fl.Executions[0].Execution.WorkflowId, fl.Executions[0].Execution.RunId)
	hr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": hostBackup, "target_location": filepath.Join(gw.dir, "restored"),
		"verify_after_restore": true})
	if p := s.waitJob(t, v1+"/restore/progress?job_id="+hr["job_id"].(string)); p["status"] != "completed" {
		t.Fatalf("host restore: %v\n%s", p, gw.output())
	}
	rec.job("host-restore-grant", hr["job_id"].(string))

	// 9. a restore drill, fired by its schedule
	s.must(200, "POST", v1+"/drills", "admin", map[string]any{"id": "rec-drill", "frequency": "daily", "time": "05:00",
		"components": []string{"data"}, "checks": []map[string]any{{"type": "command", "command": []string{"/usr/bin/test", "-s", "." + data + "/a.txt"}}}})
	run := s.triggerDrill(t, "rec-drill", "")
	if run["passed"] != true {
		t.Fatalf("drill: %v", run)
	}
	rec.job("drill", run["job_id"].(string))

	// every registered workflow type has a history
	types := map[string]bool{}
	for _, name := range registeredWorkflows() {
		types[name] = false
	}
	for _, typ := range rec.types {
		types[typ] = true
	}
	for name, ok := range types {
		if !ok {
			t.Errorf("no history recorded of %s", name)
		}
	}
	// files of earlier recordings that this one did not write are stale
	old, _ := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	for _, f := range old {
		if !rec.written[filepath.Base(f)] && os.Getenv("BACKUPD_RECORD_ONLY") == "" {
			t.Logf("%s was not recorded this time (remove it if its shape is gone)", f)
		}
	}
}

// slowText fills b with random letters of a 16-letter alphabet: it
// compresses (so it is not stored as incompressible at disk speed) and
// bzip2 takes seconds over it, long enough for a pause or cancel to land.
func slowText(b []byte) {
	rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%16
	}
}

// waitRunning waits until a backup's component activity has processed bytes.
func (s *apiStack) waitRunning(t *testing.T, jobID string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		p := s.must(200, "GET", "/v1/cloud-integration/backup/progress?job_id="+jobID, "viewer", nil)
		if n, _ := get(p, "details.bytes_processed").(float64); n > 0 && p["status"] == "in_progress" && get(p, "progress.current_operation") == "backing_up" {
			return
		}
		if p["status"] == "completed" || p["status"] == "failed" || time.Now().After(deadline) {
			t.Fatalf("%s never ran its component: %v", jobID, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type recorder struct {
	t       *testing.T
	c       client.Client
	log     log.Logger
	written map[string]bool
	types   []string
}

// find resolves a job id to its (closed) workflow execution.
func (r *recorder) find(jobID string) (string, string) {
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := r.c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("BackupJobId = '%s'", jobID)})
		if err != nil {
			r.t.Fatal(err)
		}
		if len(resp.Executions) > 1 {
			r.t.Fatalf("job %s has %d executions", jobID, len(resp.Executions))
		}
		if len(resp.Executions) == 1 {
			e := resp.Executions[0]
			return e.Execution.WorkflowId, e.Execution.RunId
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no workflow execution of job %s", jobID)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (r *recorder) waitNoActivities(jobID string) {
	wid, rid := r.find(jobID)
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := r.c.DescribeWorkflowExecution(context.Background(), wid, rid)
		if err != nil {
			r.t.Fatal(err)
		}
		if len(d.PendingActivities) == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("paused job %s still holds %d activities", jobID, len(d.PendingActivities))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// job records the workflow of a job and its children.
func (r *recorder) job(name, jobID string) {
	wid, rid := r.find(jobID)
	r.execution(name, wid, rid)
}

func (r *recorder) execution(name, wid, rid string) {
	t := r.t
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// the history is final once the workflow is closed (a job's API
	// status can be final a moment before)
	_ = r.c.GetWorkflow(ctx, wid, rid).Get(ctx, nil)
	h := &historypb.History{}
	it := r.c.GetWorkflowHistory(ctx, wid, rid, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", wid, err)
		}
		h.Events = append(h.Events, ev)
	}
	typ := h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
	r.types = append(r.types, typ)
	// BACKUPD_RECORD_ONLY=name-prefix records only those (a new
	// workflow's history, without rewriting the others')
	only := os.Getenv("BACKUPD_RECORD_ONLY")
	if only == "" || strings.HasPrefix(name, only) {
		r.write(name, typ, h)
	}
	// children run separately: each has its own history
	var children []string
	kids := map[string]string{}
	for _, ev := range h.Events {
		if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
			cname := name + "-child-" + strings.ToLower(strings.TrimSuffix(a.WorkflowType.GetName(), "Workflow"))
			children = append(children, cname)
			kids[cname] = a.WorkflowExecution.GetWorkflowId() + "\x00" + a.WorkflowExecution.GetRunId()
		}
	}
	sort.Strings(children)
	for _, cname := range children {
		id := strings.SplitN(kids[cname], "\x00", 2)
		r.execution(cname, id[0], id[1])
	}
}

// write keeps one history and checks that it replays on the code that
// made it.
func (r *recorder) write(name, typ string, h *historypb.History) {
	t := r.t
	// the format the replayer reads (client.HistoryFromJSON)
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	file := name + ".json"
	path := filepath.Join(historiesDir, file)
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	r.written[file] = true
	// it round-trips and replays on the code that made it
	rp := sdkworker.NewWorkflowReplayer()
	worker.Register(replayRegistry{rp}, nil)
	if err := rp.ReplayWorkflowHistoryFromJSONFile(r.log, path); err != nil {
		t.Fatalf("%s (%s) does not replay: %v", file, typ, err)
	}
	t.Logf("%s: %s, %d events, %d bytes", file, typ, len(h.Events), len(b))
}

// replayRegistry lets worker.Register register the workflows on a
// replayer under the names the worker uses (activities do not replay).
type replayRegistry struct{ sdkworker.WorkflowReplayer }

func (replayRegistry) RegisterActivity(any) {}

// registeredWorkflows are the names worker.Register gives workflows.
func registeredWorkflows() []string {
	var names []string
	worker.Register(nameRegistry{&names}, nil)
	return names
}

type nameRegistry struct{ names *[]string }

func (n nameRegistry) RegisterWorkflowWithOptions(_ any, o workflow.RegisterOptions) {
	*n.names = append(*n.names, o.Name)
}
func (nameRegistry) RegisterActivity(any) {}
