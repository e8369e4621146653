package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"backupd/api"
	"backupd/apiclient"
)

// captured runs the command line with stdout and stderr captured.
func captured(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	pipe := func() (*os.File, chan string) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan string)
		go func() {
			var b strings.Builder
			buf := make([]byte, 32<<10)
			for {
				n, err := r.Read(buf)
				b.Write(buf[:n])
				if err != nil {
					break
				}
			}
			done <- b.String()
		}()
		return w, done
	}
	ow, odone := pipe()
	ew, edone := pipe()
	stdout0, stderr0 := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = ow, ew
	code = run(t.Context(), args)
	os.Stdout, os.Stderr = stdout0, stderr0
	ow.Close()
	ew.Close()
	return code, <-odone, <-edone
}

func apiErr(status int, code, msg string, actions ...string) error {
	return &apiclient.Error{StatusCode: status, Body: apiclient.ErrorBody{Code: code, Message: msg, SuggestedActions: actions}}
}

func TestClientErrorsNameTheFix(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
		want []string
	}{
		{apiErr(404, "BACKUP_007", `no backup "x"`, "List the backups (GET /cloud-integration/backup/list)"), exitFail,
			[]string{`BACKUP_007: no backup "x"`, "suggested actions:\n  - List the backups", "backupd backup list shows the backups"}},
		{apiErr(403, "FORBIDDEN", "POST /backup/restore needs the admin role; this token has operator", "Use a token with the required role"), exitFail,
			[]string{"this needs the admin role; your token is operator", "backupd token create --role admin"}},
		{apiErr(403, "FORBIDDEN", "cancelling a restore job needs the admin role"), exitFail,
			[]string{"this needs the admin role: use a token with it", "backupd token create --role admin"}},
		{apiErr(401, "UNAUTHORIZED", "the token is invalid, expired or revoked"), exitFail,
			[]string{"does not accept this token", "BACKUPD_TOKEN", "backupd token create --role operator"}},
		{apiErr(400, "BACKUP_003", `components: no component "nope"`), exitUsage, []string{`BACKUP_003: components: no component "nope"`}},
		{&apiclient.UnreachableError{Base: "http://127.0.0.1:1", Err: errors.New("connection refused")}, exitFail,
			[]string{"no server answers at http://127.0.0.1:1 (connection refused)", "make run or backupd all", "--server or BACKUPD_SERVER"}},
	} {
		err := clientError(c.err)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != c.code {
			t.Errorf("%v: %#v, want exit %d", c.err, err, c.code)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q lacks %q", err, w)
			}
		}
	}
}

func TestParseArgsTakesFlagsAroundArguments(t *testing.T) {
	fs := flag.NewFlagSet("backupd backup show", flag.ContinueOnError)
	j := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, []string{"backup-1", "--json"}, "backup id")
	if err != nil || len(pos) != 1 || pos[0] != "backup-1" || !*j {
		t.Fatalf("%v %v %v", pos, *j, err)
	}
	fs = flag.NewFlagSet("backupd backup show", flag.ContinueOnError)
	if _, err := parseArgs(fs, nil, "backup id"); err == nil || !strings.Contains(err.Error(), "name the backup id") {
		t.Errorf("missing: %v", err)
	}
	if _, err := parseArgs(fs, []string{"a", "b"}, "backup id"); err == nil || !strings.Contains(err.Error(), `unexpected argument "b"`) {
		t.Errorf("extra: %v", err)
	}
}

func TestFlagValues(t *testing.T) {
	now := time.Date(2025, 3, 15, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{"7d": "2025-03-08T12:00:00Z", "36h": "2025-03-14T00:00:00Z", "2025-03-01": "2025-03-01T00:00:00Z",
		"2025-03-01T02:00:00+01:00": "2025-03-01T01:00:00Z", "": ""} {
		if got, err := timeFlag("since", in, now); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"yesterday", "-3d", "3x"} {
		if _, err := timeFlag("since", bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, c := range []struct{ limit, offset, page, want int }{{50, 0, 0, 0}, {50, 100, 0, 3}, {10, 0, 4, 4}} {
		if got, err := pageOf(c.limit, c.offset, c.page); err != nil || got != c.want {
			t.Errorf("%+v: %d %v", c, got, err)
		}
	}
	for _, c := range [][3]int{{50, 30, 0}, {50, 50, 2}, {0, 0, 0}, {5000, 0, 0}, {50, -50, 0}} {
		if _, err := pageOf(c[0], c[1], c[2]); err == nil {
			t.Errorf("%v accepted", c)
		}
	}
	if err := oneOfFlag("type", "weekly", api.BackupTypes); err == nil || !strings.Contains(err.Error(), "full, incremental") {
		t.Errorf("%v", err)
	}
	for n, want := range map[int64]string{12: "12 B", 1500: "1.5 KB", 42_500_000: "42.5 MB", 73_000_000: "73 MB", 250_400_000_000: "250 GB", -1: "unknown"} {
		if got := humanSize(n); got != want {
			t.Errorf("%d: %q, want %q", n, got, want)
		}
	}
}

// fakeAPI is enough of the server for the commands: the routes the
// tests script, a real WebSocket upgrader for --wait.
type fakeAPI struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	routes map[string]func(w http.ResponseWriter, r *http.Request) // "POST /backup/create"
	ws     func(conn *websocket.Conn)
	got    map[string][]byte // request bodies by route
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, routes: map[string]func(http.ResponseWriter, *http.Request){}, got: map[string][]byte{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			json.NewEncoder(w).Encode(api.Error{IsError: true, Code: "UNAUTHORIZED", Message: "the token is invalid, expired or revoked",
				SuggestedActions: []string{"Send Authorization: Bearer <token>"}})
			return
		}
		key := r.Method + " " + strings.TrimPrefix(r.URL.Path, "/cloud-integration")
		if key == "GET /ws/backup" {
			conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
			if err == nil && f.ws != nil {
				f.ws(conn)
				conn.Close()
			}
			return
		}
		f.mu.Lock()
		h := f.routes[key]
		if r.Body != nil {
			f.got[key], _ = io.ReadAll(r.Body)
		}
		f.mu.Unlock()
		if h == nil {
			w.WriteHeader(404)
			json.NewEncoder(w).Encode(api.Error{IsError: true, Code: "NOT_FOUND", Message: "no such endpoint: " + key})
			return
		}
		h(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func answer(v any) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(v) }
}

func (f *fakeAPI) run(t *testing.T, args ...string) (int, string, string) {
	return captured(t, append(args, "--server", f.srv.URL, "--token", "tok")...)
}

func TestBackupCreateWaitEndsWithTheJobsExitCode(t *testing.T) {
	for status, want := range map[string]int{"success": exitOK, "partial": exitPartial, "failed": exitFail} {
		f := newFakeAPI(t)
		f.routes["POST /backup/create"] = answer(api.BackupStarted{Status: "started", BackupID: "backup-1", JobID: "BACKUP-JOB-1", Type: "full",
			Components: []string{"data"}, EstimatedDuration: "1 minute"})
		f.routes["GET /backup/progress"] = answer(api.JobProgress{Status: "in_progress", JobID: "BACKUP-JOB-1", BackupID: "backup-1",
			Progress: api.ProgressFigures{Percentage: 0, CurrentComponent: "data"}})
		f.ws = func(conn *websocket.Conn) {
			for _, pct := range []float64{20, 60} {
				conn.WriteJSON(api.BackupProgressMessage{Type: "backup_progress", BackupID: "backup-1",
					ProgressFields: api.ProgressFields{JobID: "BACKUP-JOB-1", Progress: pct, CurrentComponent: "data"},
					Details:        api.BackupProgressDetails{TransferFigures: api.TransferFigures{BytesProcessedBytes: int64(pct) * 1e6, BytesTotalBytes: 100e6}}})
			}
			jc := api.JobCompleteMessage{Type: "job_complete", JobID: "BACKUP-JOB-1", Status: status, Operation: api.JobBackup,
				Details: api.JobCompleteDetails{DurationSeconds: 4, BackupID: "backup-1",
					BackupOutcome: &api.BackupOutcome{SizeBytes: 100e6, CompressedSizeBytes: 40e6, AddedSizeBytes: 40e6, StorageLocations: []string{"local"}}}}
			if status == "failed" {
				jc.Error = &api.JobError{Code: "BACKUP_014", Message: "component data failed", SuggestedActions: []string{"Fix permissions"}}
			}
			conn.WriteJSON(jc)
			conn.ReadMessage()
		}
		code, out, errOut := f.run(t, "backup", "create", "--components", "data", "--wait")
		if code != want {
			t.Errorf("%s: exit %d, want %d\n%s%s", status, code, want, out, errOut)
		}
		if !strings.Contains(errOut, " 20%  data  20 MB/100 MB\n 60%  data  60 MB/100 MB\n") {
			t.Errorf("%s: progress lines:\n%s", status, errOut)
		}
		if !strings.Contains(out, "backup backup-1 started: job BACKUP-JOB-1") || !strings.Contains(out, "size 100 MB, stored 40 MB compressed, 40 MB new") {
			t.Errorf("%s: out:\n%s", status, out)
		}
		if status == "failed" && !strings.Contains(errOut, "BACKUP_014: component data failed\nsuggested actions:\n  - Fix permissions") {
			t.Errorf("failure: %s", errOut)
		}
		var req api.CreateBackupRequest
		json.Unmarshal(f.got["POST /backup/create"], &req)
		if !req.Components["data"] || len(req.Components) != 1 {
			t.Errorf("request %s", f.got["POST /backup/create"])
		}
	}
}

// --json: the create answer, then each message, one per line.
func TestBackupCreateWaitJSON(t *testing.T) {
	f := newFakeAPI(t)
	f.routes["POST /backup/create"] = answer(api.BackupStarted{Status: "started", BackupID: "backup-1", JobID: "J"})
	f.routes["GET /backup/progress"] = answer(api.JobProgress{Status: "completed", Outcome: "completed", JobID: "J", BackupID: "backup-1"})
	f.routes["GET /backup/details/backup-1"] = answer(api.BackupDetails{ID: "backup-1"})
	f.ws = func(conn *websocket.Conn) { conn.ReadMessage() }
	code, out, _ := f.run(t, "backup", "create", "--components", "data", "--wait", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 2 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("not JSON: %s", l)
		}
	}
	if !strings.Contains(lines[0], `"status":"started"`) || !strings.Contains(lines[1], `"status":"completed"`) {
		t.Errorf("%s", out)
	}
}

func TestMistakesExitWithUsage(t *testing.T) {
	t.Setenv("BACKUPD_TOKEN", "")
	t.Setenv("BACKUPD_SERVER", "")
	t.Setenv("BACKUPD_CONFIG", "")
	f := newFakeAPI(t)
	defer func(was func() bool) { stdinIsTerminal = was }(stdinIsTerminal)
	stdinIsTerminal = func() bool { return false }
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"backup", "list", "--server", f.srv.URL}, exitUsage, "no API token: give --token or set BACKUPD_TOKEN"},
		{[]string{"backup", "list", "--server", "127.0.0.1:8080", "--token", "tok"}, exitUsage, "want http://HOST:PORT"},
		{[]string{"backup", "list", "--type", "weekly", "--server", f.srv.URL, "--token", "tok"}, exitUsage, `--type "weekly": want one of full`},
		{[]string{"backup", "create", "--server", f.srv.URL, "--token", "tok"}, exitUsage, "--components: name at least one"},
		{[]string{"backup", "show", "--server", f.srv.URL, "--token", "tok"}, exitUsage, "name the backup id"},
		{[]string{"backup", "delete", "backup-1", "--server", f.srv.URL, "--token", "tok"}, exitUsage, "stdin is not a terminal, so give --yes"},
		{[]string{"restore", "start", "--backup", "b", "--server", f.srv.URL, "--token", "tok"}, exitUsage, "--target DIR, or --original"},
		{[]string{"restore", "start", "--backup", "b", "--original", "--target", "/x", "--server", f.srv.URL, "--token", "tok"}, exitUsage, "give one"},
		{[]string{"schedule", "create", "--frequency", "daily", "--server", f.srv.URL, "--token", "tok"}, exitUsage, "--id: name the schedule"},
		{[]string{"jobs", "--status", "sleeping", "--server", f.srv.URL, "--token", "tok"}, exitUsage, `--status "sleeping"`},
		{[]string{"backup", "frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"jobs", "--server", f.srv.URL, "--token", "wrong"}, exitFail, "UNAUTHORIZED"},
	} {
		code, _, errOut := captured(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}
}

func TestNoServerThere(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	code, _, errOut := captured(t, "status", "--server", "http://"+addr, "--token", "tok")
	if code != exitFail || !strings.Contains(errOut, "no server answers at http://"+addr) || !strings.Contains(errOut, "make run or backupd all") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestServerFromTheConfiguration(t *testing.T) {
	f := newFakeAPI(t)
	f.routes["GET /backup/health"] = answer(api.Health{OverallHealth: "degraded"})
	host := strings.TrimPrefix(f.srv.URL, "http://")
	cfg := filepath.Join(t.TempDir(), "backupd.yaml")
	os.WriteFile(cfg, []byte("api:\n  listen: "+host+"\n"), 0o600)
	t.Setenv("BACKUPD_SERVER", "")
	t.Setenv("BACKUPD_TOKEN", "tok")
	code, out, _ := captured(t, "health", "--config", cfg)
	if code != exitPartial || !strings.Contains(out, "overall: degraded") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestListsAreTablesOrStableText(t *testing.T) {
	f := newFakeAPI(t)
	f.routes["GET /backup/list"] = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "limit=10&page=3&status=completed" {
			t.Errorf("query %q", r.URL.RawQuery)
		}
		json.NewEncoder(w).Encode(api.BackupList{Backups: []api.BackupSummary{{ID: "backup-1", Timestamp: "2025-03-15 02:00:00",
			TimestampRFC3339: "2025-03-15T02:00:00Z", Type: "full", Status: "completed", SizeBytes: 45_200_000, CompressedSizeBytes: 22_100_000,
			Components: map[string]bool{"data": true, "logs": false}, StorageLocations: []string{"local", "cloud"}}}})
	}
	code, out, _ := f.run(t, "backup", "list", "--status", "completed", "--limit", "10", "--offset", "20")
	want := "ID\tTIME\tTYPE\tSTATUS\tSIZE\tSTORED\tCOMPONENTS\tLOCATIONS\nbackup-1\t2025-03-15T02:00:00Z\tfull\tcompleted\t45200000\t22100000\tdata\tlocal,cloud\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d:\n%q\nwant\n%q", code, out, want)
	}
	// on a terminal: aligned, human sizes
	s := &clientSession{tty: true}
	var b strings.Builder
	s.out = &b
	s.table([]string{"ID", "SIZE"}, [][]string{{"backup-1", s.size(45_200_000)}, {"b2", s.size(5)}})
	if b.String() != "ID        SIZE\nbackup-1  45.2 MB\nb2        5 B\n" {
		t.Errorf("%q", b.String())
	}
}

// Ctrl-C while waiting stops the wait, not the job, and says how to
// follow it again.
func TestInterruptedWaitSaysHowToFollow(t *testing.T) {
	f := newFakeAPI(t)
	f.routes["POST /backup/restore"] = answer(api.RestoreStarted{Status: "restore_started", RestoreID: "RESTORE-1", BackupID: "b", JobID: "RESTORE-JOB-1"})
	f.routes["GET /backup/restore/progress"] = answer(api.JobProgress{Status: "in_progress", JobID: "RESTORE-JOB-1"})
	f.ws = func(conn *websocket.Conn) { conn.ReadMessage() }
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	err := dispatch(ctx, []string{"restore", "start", "--backup", "b", "--target", t.TempDir(), "--wait", "--server", f.srv.URL, "--token", "tok"})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitFail || !strings.Contains(err.Error(), "job RESTORE-JOB-1 keeps running on the server") ||
		!strings.Contains(err.Error(), "backupd restore progress --wait --job RESTORE-JOB-1") {
		t.Fatalf("%v", err)
	}
}

// A job that ended before the socket opened still shows its last
// progress line and its result.
func TestWaitForAJobThatAlreadyEnded(t *testing.T) {
	f := newFakeAPI(t)
	f.routes["POST /backup/create"] = answer(api.BackupStarted{Status: "started", BackupID: "backup-1", JobID: "J"})
	f.routes["GET /backup/progress"] = answer(api.JobProgress{Status: "completed", Outcome: "partial", JobID: "J", BackupID: "backup-1",
		Progress: api.ProgressFigures{Percentage: 100, CurrentComponent: "data", ElapsedSeconds: 3},
		Details:  api.ProgressDetails{BytesProcessed: 5000, BytesTotal: 5000, Warnings: 2}})
	f.routes["GET /backup/details/backup-1"] = answer(api.BackupDetails{ID: "backup-1", SizeDetails: api.BackupSizeDetails{RawSizeBytes: 5000, CompressedSizeBytes: 2000}})
	f.ws = func(conn *websocket.Conn) { conn.ReadMessage() }
	code, out, errOut := f.run(t, "backup", "create", "--components", "data", "--wait")
	if code != exitPartial || !strings.Contains(errOut, "100%  data  5 KB/5 KB\n") ||
		!strings.Contains(out, "backup backup-1 completed partially in 3s (job J)\n  size 5 KB, stored 2 KB compressed, 0 B new\n  warnings: 2\n") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestJobControl(t *testing.T) {
	f := newFakeAPI(t)
	f.routes["POST /backup/jobs/cancel"] = answer(api.CancelResponse{Status: "cancelled", JobID: "J", Message: "Job cancelled; partial data removed"})
	f.routes["POST /backup/jobs/pause"] = answer(api.JobControlResponse{Status: "paused", JobID: "J", Message: "Backup paused"})
	f.routes["POST /backup/jobs/resume"] = func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(409)
		json.NewEncoder(w).Encode(api.Error{IsError: true, Code: "BACKUP_015", Message: "job J is not running (status completed)",
			SuggestedActions: []string{"List the jobs (GET /cloud-integration/backup/jobs)"}})
	}
	if code, out, _ := f.run(t, "jobs", "cancel", "J", "--reason", "maintenance"); code != 0 || out != "job J: cancelled: Job cancelled; partial data removed\n" {
		t.Errorf("cancel: %d %q", code, out)
	}
	var req api.CancelRequest
	json.Unmarshal(f.got["POST /backup/jobs/cancel"], &req)
	if req.JobID != "J" || req.Reason != "maintenance" {
		t.Errorf("cancel sent %s", f.got["POST /backup/jobs/cancel"])
	}
	if code, out, _ := f.run(t, "jobs", "pause", "J"); code != 0 || out != "job J: paused: Backup paused\n" {
		t.Errorf("pause: %d %q", code, out)
	}
	if code, _, errOut := f.run(t, "jobs", "resume", "J"); code != 1 || !strings.Contains(errOut, "BACKUP_015: job J is not running") ||
		!strings.Contains(errOut, "backupd jobs shows the jobs") {
		t.Errorf("resume: %d %q", code, errOut)
	}
	// jobs alone lists, as jobs list does
	f.routes["GET /backup/jobs"] = answer(api.JobList{Jobs: []api.JobView{{ID: "J", Type: api.JobBackup, Subtype: "manual_full", Status: "completed", Progress: 100}}})
	for _, args := range [][]string{{"jobs"}, {"jobs", "list"}, {"jobs", "--type", "backup"}} {
		if code, out, _ := f.run(t, args...); code != 0 || !strings.HasPrefix(out, "JOB\tTYPE") || !strings.Contains(out, "J\tbackup\tmanual_full\tcompleted\t100%") {
			t.Errorf("%v: %d %q", args, code, out)
		}
	}
}

// delete asks on a terminal (no: nothing is deleted), and --yes skips
// the question.
func TestBackupDeleteConfirms(t *testing.T) {
	f := newFakeAPI(t)
	deletes := 0
	f.routes["DELETE /backup/backup-1"] = func(w http.ResponseWriter, r *http.Request) {
		deletes++
		if r.URL.RawQuery != "force=true&locations=cloud" {
			t.Errorf("query %q", r.URL.RawQuery)
		}
		w.WriteHeader(202)
		json.NewEncoder(w).Encode(api.BackupDeletion{Status: "deletion_started", BackupID: "backup-1", Locations: []string{"cloud"},
			JobID: "CLEANUP-JOB-1", CleanupID: "CLEANUP-1"})
	}
	defer func(was func() bool, in *os.File) { stdinIsTerminal, os.Stdin = was, in }(stdinIsTerminal, os.Stdin)
	stdinIsTerminal = func() bool { return true }
	answer := func(s string) {
		r, w, _ := os.Pipe()
		w.WriteString(s)
		w.Close()
		os.Stdin = r
	}
	answer("n\n")
	code, _, errOut := f.run(t, "backup", "delete", "backup-1", "--force", "--locations", "cloud")
	if code != exitFail || deletes != 0 || !strings.Contains(errOut, "delete backup backup-1 from cloud? [y/N]") || !strings.Contains(errOut, "not deleted") {
		t.Fatalf("no: exit %d, %d deletes, %q", code, deletes, errOut)
	}
	answer("y\n")
	code, out, _ := f.run(t, "backup", "delete", "backup-1", "--force", "--locations", "cloud")
	if code != 0 || deletes != 1 || out != "backup backup-1: deletion from cloud started: cleanup CLEANUP-1 (job CLEANUP-JOB-1)\n" {
		t.Fatalf("yes: exit %d, %d deletes, %q", code, deletes, out)
	}
	answer("")
	if code, _, _ := f.run(t, "backup", "delete", "backup-1", "--force", "--locations", "cloud", "--yes"); code != 0 || deletes != 2 {
		t.Fatalf("--yes: exit %d, %d deletes", code, deletes)
	}
}

// A file name or message from a backed-up host or a hostile server reaches
// the terminal as visible escapes, never as sequences it obeys; a tab or
// newline in a value cannot make a column or a row of its own.
func TestServerTextCannotDriveTheTerminal(t *testing.T) {
	evil := "bkp-1\x1b]0;PWNED\a\x1b]52;c;Y3VybCBldmlsfHNo\a\x1b[2K\rbackup-OK\u202egnp.exe\x9b"
	got := termSafe(evil, "")
	if strings.ContainsAny(got, "\x1b\a\r\u202e\x9b") || !strings.Contains(got, `\x1b]0;PWNED`) || !strings.Contains(got, `\u202e`) {
		t.Fatalf("termSafe: %q", got)
	}
	var buf bytes.Buffer
	safeWriter{&buf}.Write([]byte("\r[###---]  50%\tdata\n" + evil + "\n"))
	if out := buf.String(); !strings.HasPrefix(out, "\r[###---]  50%\tdata\n") || strings.Count(out, "\x1b") != 0 || strings.Count(out, "\n") != 2 {
		t.Fatalf("safeWriter: %q", out)
	}
	s := &clientSession{out: &buf}
	buf.Reset()
	s.table([]string{"ID", "NAME"}, [][]string{{"rv-evil", "x\tenabled=true\nschedule-prod-nightly\tok"}})
	if lines := strings.Split(strings.TrimSpace(buf.String()), "\n"); len(lines) != 2 || strings.Count(lines[1], "\t") != 1 {
		t.Fatalf("table: %q", buf.String())
	}
	if termSafe("résumé ☃ 名前.txt", "") != "résumé ☃ 名前.txt" {
		t.Fatal("printable text changed")
	}
}
