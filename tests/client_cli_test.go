package tests

// The command-line client (backupd backup|restore|schedule|jobs|status|
// health) against a real stack — Temporal dev server and `backupd all` —
// as a script would run it: stdout and stderr are pipes, not terminals.
// One stack for every case, to keep the suite quick.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"backupd/api"
	"backupd/apiclient"
)

// cliRun is one run of the client: its exit code and output.
type cliRun struct {
	code           int
	stdout, stderr string
	args           []string
}

func (r cliRun) String() string {
	return "backupd " + strings.Join(r.args, " ") + " (exit " + strconv.Itoa(r.code) + ")\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

// cli runs backupd with the server and a token of role in the
// environment (as BACKUPD_SERVER and BACKUPD_TOKEN), nothing else of
// backupd's.
func (s *apiStack) cli(t *testing.T, role string, args ...string) cliRun {
	t.Helper()
	return s.cliAt(t, s.base, role, args...)
}

func (s *apiStack) cliAt(t *testing.T, server, role string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(s.bin, args...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "BACKUPD_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "BACKUPD_SERVER="+server)
	if role != "" {
		cmd.Env = append(cmd.Env, "BACKUPD_TOKEN="+s.tokens[role])
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := cliRun{stdout: out.String(), stderr: errOut.String(), args: args}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("backupd %v: %v", args, err)
	}
	return r
}

// ok runs the client and requires exit 0.
func (s *apiStack) cliOK(t *testing.T, role string, args ...string) cliRun {
	t.Helper()
	r := s.cli(t, role, args...)
	if r.code != 0 {
		b, _ := os.ReadFile(s.logPath)
		t.Fatalf("%v\nserver log tail:\n%s", r, tail(string(b), 2000))
	}
	return r
}

// cliJSON runs the client with --json and decodes its one answer; the
// answer must be what the OpenAPI document says the route answers.
func (s *apiStack) cliJSON(t *testing.T, v any, route string, role string, args ...string) {
	t.Helper()
	r := s.cliOK(t, role, append(args, "--json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("%v\nnot JSON: %v", r, err)
	}
	s.checkAnswer(httptest.NewRequest("GET", s.base+route, nil), 200, http.Header{"Content-Type": {"application/json"}}, []byte(r.stdout))
}

func mustContain(t *testing.T, r cliRun, where string, want ...string) {
	t.Helper()
	text := r.stdout
	if where == "stderr" {
		text = r.stderr
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%v", where, w, r)
		}
	}
}

var progressLine = regexp.MustCompile(`(?m)^ {0,2}\d{1,3}%  \S`)

func TestCommandLineClient(t *testing.T) {
	s := startAPIStack(t, "sqlite")

	// the OpenAPI document describes every route the client calls
	s.loadOpenAPI()
	res, err := http.Get(s.base + "/cloud-integration/backup/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	json.NewDecoder(res.Body).Decode(&doc)
	res.Body.Close()
	for _, ep := range apiclient.Endpoints {
		if doc.Paths[apiclient.Prefix+ep.Path][strings.ToLower(ep.Method)] == nil {
			t.Errorf("the client calls %s %s, which the OpenAPI document does not describe", ep.Method, ep.Path)
		}
	}

	// status and health
	st := s.cliOK(t, "viewer", "status")
	mustContain(t, st, "stdout", "backupd@apitest: active", "LOCATION\tTYPE\tHEALTH", "local\tlocal\tgood", "cloud\tS3\tgood", "remote\tSFTP\tgood")
	var h api.Health
	hr := s.cli(t, "viewer", "health", "--json")
	if err := json.Unmarshal([]byte(hr.stdout), &h); err != nil {
		t.Fatalf("%v", hr)
	}
	if want := map[string]int{"healthy": 0, "degraded": 3, "critical": 1}[h.OverallHealth]; hr.code != want {
		t.Errorf("health %s: exit %d, want %d", h.OverallHealth, hr.code, want)
	}
	mustContain(t, s.cli(t, "viewer", "health"), "stdout", "overall: "+h.OverallHealth, "COMPONENT\tSTATUS\tDETAIL", "storage_local\t")

	// a backup, waited for on a pipe: progress lines, the result, exit 0
	cr := s.cliOK(t, "operator", "backup", "create", "--components", "data", "--locations", "local", "--wait")
	if !progressLine.MatchString(cr.stderr) {
		t.Errorf("no progress lines:\n%v", cr)
	}
	m := regexp.MustCompile(`(?m)^backup (\S+) completed in \S+ \(job (\S+)\)$`).FindStringSubmatch(cr.stdout)
	if m == nil {
		t.Fatalf("no result line:\n%v", cr)
	}
	backupID, jobID := m[1], m[2]
	mustContain(t, cr, "stdout", "backup "+backupID+" started: job "+jobID, "locations: local")

	// it is in the catalog (a CLI backup once never reached it)
	var list api.BackupList
	s.cliJSON(t, &list, "/cloud-integration/backup/list", "viewer", "backup", "list", "--status", "completed")
	if len(list.Backups) != 1 || list.Backups[0].ID != backupID || list.Backups[0].Status != "completed" || !list.Backups[0].Components["data"] {
		t.Fatalf("list: %+v", list.Backups)
	}
	lr := s.cliOK(t, "viewer", "backup", "list", "--since", "1h")
	if lines := strings.Split(strings.TrimSpace(lr.stdout), "\n"); len(lines) != 2 || lines[0] != "ID\tTIME\tTYPE\tSTATUS\tSIZE\tSTORED\tCOMPONENTS\tLOCATIONS" ||
		!strings.HasPrefix(lines[1], backupID+"\t") || !strings.HasSuffix(lines[1], "\tfull\tcompleted\t"+strconv.FormatInt(list.Backups[0].SizeBytes, 10)+
		"\t"+strconv.FormatInt(list.Backups[0].CompressedSizeBytes, 10)+"\tdata\tlocal") {
		t.Errorf("plain list:\n%v", lr)
	}
	mustContain(t, s.cliOK(t, "viewer", "backup", "show", backupID), "stdout", "backup      "+backupID, "status      completed", "location    local")
	mustContain(t, s.cliOK(t, "viewer", "backup", "progress", "--job", jobID), "stdout", "job "+jobID+": completed", "100%")

	// an unknown backup: the code, the message, what to do
	nf := s.cli(t, "viewer", "backup", "show", "backup-nope")
	if nf.code != 1 {
		t.Errorf("unknown backup: %v", nf)
	}
	mustContain(t, nf, "stderr", `BACKUP_007: `, "backup-nope", "suggested actions:", "backupd backup list shows the backups")

	// verify, waited for
	vr := s.cliOK(t, "operator", "backup", "verify", backupID, "--wait")
	mustContain(t, vr, "stdout", "of backup "+backupID+" completed", "check: passed")

	// restore into a directory, waited for: the same bytes
	target := filepath.Join(t.TempDir(), "restore")
	rr := s.cliOK(t, "admin", "restore", "start", "--backup", backupID, "--target", target, "--wait")
	if !progressLine.MatchString(rr.stderr) {
		t.Errorf("no restore progress lines:\n%v", rr)
	}
	mustContain(t, rr, "stdout", "of backup "+backupID+" completed")
	compareTrees(t, s.src, restored(target, "data", s.src))
	rj := regexp.MustCompile(`started: job (\S+) `).FindStringSubmatch(rr.stdout)
	if rj == nil {
		t.Fatalf("no restore job: %v", rr)
	}
	mustContain(t, s.cliOK(t, "viewer", "restore", "progress", "--job", rj[1], "--wait"), "stdout", "completed")

	// a viewer's token is refused a restore, and told what it needs
	vr = s.cli(t, "viewer", "restore", "start", "--backup", backupID, "--target", filepath.Join(t.TempDir(), "x"))
	if vr.code != 1 {
		t.Errorf("viewer restore: %v", vr)
	}
	mustContain(t, vr, "stderr", "FORBIDDEN", "this needs the admin role; your token is viewer", "backupd token create --role admin")

	// schedules: create, list, trigger, delete
	sc := s.cliOK(t, "operator", "schedule", "create", "--id", "cli-nightly", "--name", "CLI nightly", "--frequency", "daily", "--time", "02:00",
		"--components", "configurations", "--locations", "local")
	mustContain(t, sc, "stdout", "schedule cli-nightly created; next run ")
	var sl api.ScheduleList
	s.cliJSON(t, &sl, "/cloud-integration/backup/schedules", "viewer", "schedule", "list")
	found := false
	for _, v := range sl.Schedules {
		found = found || (v.ID == "cli-nightly" && v.Frequency == "daily" && v.Time == "02:00" && v.Components["configurations"] && !v.Components["data"])
	}
	if !found {
		t.Errorf("schedule list: %+v", sl.Schedules)
	}
	mustContain(t, s.cliOK(t, "viewer", "schedule", "list"), "stdout", "ID\tNAME\tENABLED", "cli-nightly\tCLI nightly\ttrue\tfull\tdaily 02:00 UTC\tconfigurations\tlocal\t")
	mustContain(t, s.cliOK(t, "operator", "schedule", "trigger", "cli-nightly"), "stdout", "schedule cli-nightly triggered")
	mustContain(t, s.cliOK(t, "operator", "schedule", "delete", "cli-nightly"), "stdout", "schedule cli-nightly deleted")
	if r := s.cli(t, "operator", "schedule", "delete", "cli-nightly"); r.code != 1 || !strings.Contains(r.stderr, "BACKUP_011") {
		t.Errorf("deleting it again: %v", r)
	}

	// jobs: the backup, verification and restore above
	var jl api.JobList
	s.cliJSON(t, &jl, "/cloud-integration/backup/jobs", "viewer", "jobs", "--limit", "50")
	types := map[api.JobType]bool{}
	for _, j := range jl.Jobs {
		types[j.Type] = true
	}
	if !types[api.JobBackup] || !types[api.JobVerify] || !types[api.JobRestore] {
		t.Errorf("jobs: %+v", jl.Jobs)
	}
	jr := s.cliOK(t, "viewer", "jobs", "--type", "verify")
	if lines := strings.Split(strings.TrimSpace(jr.stdout), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "\tverify\t") {
		t.Errorf("verify jobs:\n%v", jr)
	}

	// a job that ended cannot be cancelled, and the answer says so
	cj := s.cli(t, "operator", "jobs", "cancel", jobID)
	if cj.code != 1 {
		t.Errorf("cancelling an ended job: %v", cj)
	}
	mustContain(t, cj, "stderr", "job "+jobID+" is not running (status completed)", "backupd jobs shows the jobs")

	// a wrong server address, and no token: each says what to do
	wr := s.cliAt(t, "http://127.0.0.1:"+strconv.Itoa(freePort(t)), "viewer", "status")
	if wr.code != 1 {
		t.Errorf("wrong server: %v", wr)
	}
	mustContain(t, wr, "stderr", "no server answers at http://127.0.0.1:", "make run or backupd all", "--server or BACKUPD_SERVER")
	nt := s.cli(t, "", "jobs")
	if nt.code != 2 {
		t.Errorf("no token: %v", nt)
	}
	mustContain(t, nt, "stderr", "no API token", "BACKUPD_TOKEN", "backupd token create --role operator")
}
