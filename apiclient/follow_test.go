package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"backupd/api"
)

// fakeServer speaks the API's WebSocket (a real upgrader) and progress
// and report endpoints, with the spec's bodies; each test scripts what
// the server says.
type fakeServer struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	// progress is what the progress endpoints answer; report the verify
	// report's (an api.VerifyReport or api.ReportPending)
	progress api.JobProgress
	report   any
	polls    int
	// session runs each accepted socket (the server's side); it returns
	// to close it
	session func(n int, conn *websocket.Conn)
	conns   int
	queries []string
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{t: t}
	up := websocket.Upgrader{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			writeError(w, 401, "UNAUTHORIZED", "the token is invalid, expired or revoked", nil, "Send Authorization: Bearer <token>")
			return
		}
		f.mu.Lock()
		switch {
		case r.URL.Path == "/cloud-integration/ws/backup":
			f.conns++
			n := f.conns
			f.queries = append(f.queries, r.URL.RawQuery)
			session := f.session
			f.mu.Unlock()
			conn, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			if session != nil {
				session(n, conn)
			}
			conn.Close()
			return
		case r.URL.Path == "/cloud-integration/backup/progress" || r.URL.Path == "/cloud-integration/backup/restore/progress":
			f.polls++
			p := f.progress
			f.mu.Unlock()
			if p.JobID != r.URL.Query().Get("job_id") {
				writeError(w, 404, "BACKUP_015", "no backup job "+r.URL.Query().Get("job_id"), nil, "List the jobs")
				return
			}
			json.NewEncoder(w).Encode(p)
			return
		case strings.HasPrefix(r.URL.Path, "/cloud-integration/backup/verify/report/"):
			f.polls++
			rep := f.report
			f.mu.Unlock()
			json.NewEncoder(w).Encode(rep)
			return
		}
		f.mu.Unlock()
		writeError(w, 404, "NOT_FOUND", "no such endpoint", nil, "x")
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *fakeServer) client(t *testing.T, token string) *Client {
	c, err := New(f.srv.URL, token, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func send(t *testing.T, conn *websocket.Conn, msg any) {
	b, _ := json.Marshal(msg)
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Logf("write: %v", err)
	}
}

func backupProgress(job string, pct float64) api.BackupProgressMessage {
	return api.BackupProgressMessage{Type: "backup_progress", BackupID: "backup-1",
		ProgressFields: api.ProgressFields{JobID: job, Progress: pct, CurrentComponent: "data", CurrentOperation: "uploading"}}
}

func complete(job, status string) api.JobCompleteMessage {
	return api.JobCompleteMessage{Type: "job_complete", JobID: job, Status: status, Operation: api.JobBackup,
		Message: "Backup completed successfully", Details: api.JobCompleteDetails{Duration: "3s", BackupID: "backup-1"}}
}

func running(job string, pct float64) api.JobProgress {
	return api.JobProgress{Status: "in_progress", Outcome: "in_progress", JobID: job, BackupID: "backup-1",
		Progress: api.ProgressFigures{Percentage: pct, CurrentComponent: "data"}}
}

func finished(job string) api.JobProgress {
	return api.JobProgress{Status: "completed", Outcome: "completed", JobID: job, BackupID: "backup-1",
		Progress: api.ProgressFigures{Percentage: 100}}
}

// waitClosed holds the server's side of a socket until the client
// closes it.
func waitClosed(conn *websocket.Conn) {
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			return
		}
	}
}

func follow(t *testing.T, c *Client, w Watch, opt FollowOptions) (Event, []Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var evs []Event
	end, err := c.Follow(ctx, w, opt, func(e Event) { evs = append(evs, e) })
	return end, evs, err
}

// The job ended before the socket opened: no message will come, and the
// endpoint asked once after subscribing says so at once.
func TestFollowAJobThatFinishedBeforeSubscribing(t *testing.T) {
	f := newFakeServer(t)
	f.progress = finished("J1")
	f.session = func(n int, conn *websocket.Conn) { waitClosed(conn) } // never says a word
	start := time.Now()
	end, evs, err := follow(t, f.client(t, "good"), Watch{Kind: api.JobBackup, JobID: "J1"}, FollowOptions{PollEvery: time.Hour})
	if err != nil || end.Polled == nil || end.Polled.Status != "completed" || !end.Ended() {
		t.Fatalf("%+v %v", end, err)
	}
	if len(evs) != 1 || time.Since(start) > 2*time.Second {
		t.Fatalf("%d events in %v", len(evs), time.Since(start))
	}
	if f.queries[0] != "job_id=J1&types=backup_progress%2Crestore_progress%2Cjob_complete" {
		t.Fatalf("subscribed with %q", f.queries[0])
	}
	if !strings.Contains(string(end.Raw), `"status":"completed"`) {
		t.Fatalf("raw %s", end.Raw)
	}
}

// The socket drops mid-job: the follower reconnects (asking the endpoint
// again) and sees the job through to its job_complete.
func TestFollowThroughADroppedSocket(t *testing.T) {
	f := newFakeServer(t)
	f.progress = running("J1", 5)
	f.session = func(n int, conn *websocket.Conn) {
		if n == 1 {
			send(t, conn, backupProgress("J1", 40))
			send(t, conn, backupProgress("OTHER", 99)) // another job's: ignored
			return                                     // dropped
		}
		send(t, conn, backupProgress("J1", 80))
		send(t, conn, complete("J1", "success"))
		waitClosed(conn)
	}
	end, evs, err := follow(t, f.client(t, "good"), Watch{Kind: api.JobBackup, JobID: "J1"}, FollowOptions{PollEvery: time.Hour, MinBackoff: 10 * time.Millisecond})
	if err != nil || end.Complete == nil || end.Complete.Status != "success" {
		t.Fatalf("%+v %v", end, err)
	}
	var seen []string
	for _, e := range evs {
		switch {
		case e.Polled != nil:
			seen = append(seen, "poll")
		case e.Backup != nil:
			seen = append(seen, e.Backup.JobID)
		case e.Complete != nil:
			seen = append(seen, "complete")
		}
	}
	if strings.Join(seen, " ") != "poll J1 poll J1 complete" || f.conns != 2 {
		t.Fatalf("events %v over %d sockets", seen, f.conns)
	}
}

// The job ends while the socket is down: the reconnection's question
// finds the end.
func TestFollowAJobThatEndedWhileDisconnected(t *testing.T) {
	f := newFakeServer(t)
	f.progress = running("J1", 5)
	f.session = func(n int, conn *websocket.Conn) {
		if n == 1 {
			send(t, conn, backupProgress("J1", 40))
			f.set(func() { f.progress = finished("J1") }) // ends, unseen
			return
		}
		waitClosed(conn)
	}
	end, _, err := follow(t, f.client(t, "good"), Watch{Kind: api.JobBackup, JobID: "J1"}, FollowOptions{PollEvery: time.Hour, MinBackoff: 10 * time.Millisecond})
	if err != nil || end.Polled == nil || end.Polled.Status != "completed" {
		t.Fatalf("%+v %v", end, err)
	}
}

// A socket that stays open but never brings the end (a lost message):
// the periodic question finds it.
func TestFollowAQuietSocketAsksNowAndThen(t *testing.T) {
	f := newFakeServer(t)
	f.progress = running("J1", 5)
	f.session = func(n int, conn *websocket.Conn) {
		f.set(func() { f.progress = finished("J1") })
		waitClosed(conn)
	}
	end, _, err := follow(t, f.client(t, "good"), Watch{Kind: api.JobBackup, JobID: "J1"}, FollowOptions{PollEvery: 50 * time.Millisecond})
	if err != nil || end.Polled == nil || !end.Ended() {
		t.Fatalf("%+v %v", end, err)
	}
}

func TestFollowRefusedToken(t *testing.T) {
	f := newFakeServer(t)
	f.progress = running("J1", 5)
	_, _, err := follow(t, f.client(t, "bad"), Watch{Kind: api.JobBackup, JobID: "J1"}, FollowOptions{})
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != 401 || e.Body.Code != "UNAUTHORIZED" {
		t.Fatalf("%v", err)
	}
}

func TestFollowUnknownJob(t *testing.T) {
	f := newFakeServer(t)
	f.progress = running("J1", 5)
	f.session = func(n int, conn *websocket.Conn) { waitClosed(conn) }
	_, _, err := follow(t, f.client(t, "good"), Watch{Kind: api.JobRestore, JobID: "NOPE"}, FollowOptions{})
	var e *Error
	if !errors.As(err, &e) || e.Body.Code != "BACKUP_015" {
		t.Fatalf("%v", err)
	}
}

// The server goes away for good: the follower gives up, saying so.
func TestFollowGivesUpWhenNothingAnswers(t *testing.T) {
	f := newFakeServer(t)
	c := f.client(t, "good")
	f.srv.Close()
	_, _, err := follow(t, c, Watch{Kind: api.JobBackup, JobID: "J1"}, FollowOptions{MinBackoff: 10 * time.Millisecond, GiveUpAfter: 200 * time.Millisecond})
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "lost the job J1") {
		t.Fatalf("%v", err)
	}
}

// A verification has no progress messages: its report says where it is,
// its job_complete that it ended.
func TestFollowAVerification(t *testing.T) {
	f := newFakeServer(t)
	f.report = api.ReportPending{ID: "VERIFY-1", JobID: "J1", Status: "in_progress", Progress: 0, Message: "running"}
	f.session = func(n int, conn *websocket.Conn) {
		send(t, conn, api.JobCompleteMessage{Type: "job_complete", JobID: "J1", Status: "success", Operation: api.JobVerify})
		waitClosed(conn)
	}
	end, evs, err := follow(t, f.client(t, "good"), Watch{Kind: api.JobVerify, JobID: "J1", VerificationID: "VERIFY-1"}, FollowOptions{})
	if err != nil || end.Complete == nil || len(evs) != 2 || evs[0].Pending == nil || evs[0].Ended() {
		t.Fatalf("%+v %v %v", end, evs, err)
	}
	// ended before: the stored report is the end
	f.set(func() {
		f.report = api.VerifyReport{ReportHead: api.ReportHead{ID: "VERIFY-1", Status: "completed", JobID: "J1", Created: "2025-03-15T02:00:00Z"}, Passed: true}
		f.session = func(n int, conn *websocket.Conn) { waitClosed(conn) }
	})
	end, _, err = follow(t, f.client(t, "good"), Watch{Kind: api.JobVerify, JobID: "J1", VerificationID: "VERIFY-1"}, FollowOptions{})
	if err != nil || end.Report == nil || !end.Report.Passed {
		t.Fatalf("%+v %v", end, err)
	}
	if _, _, err := follow(t, f.client(t, "good"), Watch{Kind: api.JobVerify, JobID: "J1"}, FollowOptions{}); err == nil {
		t.Fatal("a verify job without its verification id was followed")
	}
}

func TestFollowStopsWithItsContext(t *testing.T) {
	f := newFakeServer(t)
	f.progress = running("J1", 5)
	f.session = func(n int, conn *websocket.Conn) { waitClosed(conn) }
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := f.client(t, "good").Follow(ctx, Watch{Kind: api.JobBackup, JobID: "J1"}, FollowOptions{}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v", err)
	}
}
