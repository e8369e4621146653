package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"backupd/activities"
	"backupd/models"
	"backupd/workflows"
)

// A client that stops reading is dropped once its buffer is full; the
// others get every message, without waiting for it.
func TestSlowWebSocketClientIsDroppedWithoutSlowingOthers(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/cloud-integration/ws/backup"
	h := http.Header{"Authorization": {"Bearer " + toks["viewer"]}}
	slow, _, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close() // never reads
	fast, _, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	filtered, _, err := websocket.DefaultDialer.Dial(url+"?job_id=JOB-2", h)
	if err != nil {
		t.Fatal(err)
	}
	defer filtered.Close()
	for s.Hub.Clients() < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	var got, gotFiltered atomic.Int64
	go func() {
		for {
			if _, _, err := fast.ReadMessage(); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	go func() {
		for {
			if _, _, err := filtered.ReadMessage(); err != nil {
				return
			}
			gotFiltered.Add(1)
		}
	}()
	const n = 2000
	pad := strings.Repeat("x", 16<<10)
	// A hub that waited for the slow client would hold one Broadcast for
	// its write deadline (wsWriteWait) or longer. The whole loop's time is
	// no measure: on a loaded machine under -race its sleeps alone took 8 s.
	var longest time.Duration
	for i := 0; i < n; i++ {
		job := "JOB-1"
		if i%100 == 0 {
			job = "JOB-2"
		}
		start := time.Now()
		s.Hub.Broadcast(map[string]any{"type": "backup_progress", "job_id": job, "progress": i, "pad": pad})
		longest = max(longest, time.Since(start))
		// a steady stream (16 MB/s), not one burst: a reading client keeps up
		time.Sleep(time.Millisecond)
	}
	if longest > wsWriteWait/2 {
		t.Fatalf("one broadcast took %s: a slow client held the others up", longest)
	}
	deadline := time.Now().Add(10 * time.Second)
	for (got.Load() < n || gotFiltered.Load() < n/100) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got.Load() != n || gotFiltered.Load() != n/100 {
		t.Fatalf("the reading client got %d of %d, the filtered one %d of %d", got.Load(), n, gotFiltered.Load(), n/100)
	}
	if s.Hub.Dropped != 1 || s.Hub.Clients() != 2 {
		t.Fatalf("dropped %d, clients %d", s.Hub.Dropped, s.Hub.Clients())
	}
}

// Revoking a token disconnects the WebSocket clients that use it.
func TestRevokedTokenLosesItsWebSocket(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	c := connectViewer(t, s, toks["viewer"])
	tok, _ := s.Store.Authenticate(context.Background(), toks["viewer"])
	req := httptest.NewRequest("DELETE", "/cloud-integration/backup/tokens/"+tok.ID, nil)
	req.Header.Set("Authorization", "Bearer "+toks["admin"])
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil || s.Hub.Clients() != 0 {
		t.Fatalf("the client of a revoked token is still connected (%v, %d clients)", err, s.Hub.Clients())
	}
}

// A session outlived its token when the revocation came from elsewhere
// (another server, the CLI, or between authorisation and registration)
// or when the token expired: open sessions are checked again.
func TestWebSocketSessionsEndWithTheirToken(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	old := wsRecheck
	wsRecheck = 200 * time.Millisecond
	defer func() { wsRecheck = old }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Poll(ctx)
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/cloud-integration/ws/backup"
	short, _, err := s.Store.CreateToken(ctx, "short-lived", "viewer", "test", 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(tok string) *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + tok}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	expiring, revoked, kept := dial(short), dial(toks["operator"]), dial(toks["viewer"])
	defer expiring.Close()
	defer revoked.Close()
	defer kept.Close()
	tok, _ := s.Store.Authenticate(ctx, toks["operator"])
	if err := s.Store.RevokeToken(ctx, tok.ID); err != nil { // not through this server's API
		t.Fatal(err)
	}
	for name, c := range map[string]*websocket.Conn{"revoked": revoked, "expired": expiring} {
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(6 * time.Second))
		if _, _, err := c.ReadMessage(); err == nil {
			t.Fatalf("the %s token's session is still open", name)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("the %s token's session ended after %v", name, d)
		}
	}
	if s.Hub.Clients() != 1 {
		t.Fatalf("%d clients left, want the valid one", s.Hub.Clients())
	}
}

// While tokens cannot be checked (the catalog is down), sessions stay open
// only briefly: a revocation would go unseen.
func TestWebSocketSessionsCloseWhenTokensCannotBeChecked(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	oldR, oldG := wsRecheck, wsCheckGrace
	wsRecheck, wsCheckGrace = 100*time.Millisecond, 300*time.Millisecond
	defer func() { wsRecheck, wsCheckGrace = oldR, oldG }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Poll(ctx)
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/cloud-integration/ws/backup",
		http.Header{"Authorization": {"Bearer " + toks["viewer"]}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.Store.DB.Exec("DROP TABLE tokens").Error; err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil {
		t.Fatal("the session stayed open while its token could not be checked")
	}
}

// The request id is the server's; a client's X-Request-ID is echoed apart.
func TestRequestIDsAreTheServers(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	req := httptest.NewRequest("GET", "/cloud-integration/backup/list", nil)
	req.Header.Set("Authorization", "Bearer "+toks["viewer"])
	req.Header.Set("X-Request-ID", "req_somebody-elses")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if id := rec.Header().Get("X-Request-ID"); id == "req_somebody-elses" || !strings.HasPrefix(id, "req_") ||
		rec.Header().Get("X-Client-Request-ID") != "req_somebody-elses" {
		t.Fatalf("request id %q, client's %q", id, rec.Header().Get("X-Client-Request-ID"))
	}
}

// Every backup and restore sends its first and its final progress message
// before job_complete, however short it is: a job that ended within one
// poll sent only job_complete, so a client's progress bar never appeared.
// A failure comes as the spec's error object, a location's state final.
func TestEveryJobSendsFirstAndFinalProgress(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	c := connectViewer(t, s, toks["viewer"])
	read := func() map[string]any {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var m map[string]any
		if err := c.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	started := time.Now().Add(-time.Second).UTC()
	for _, tc := range []struct{ status, code string }{{"completed", ""}, {"failed", "BACKUP_004"}} {
		id := "BACKUP-JOB-" + tc.status
		s.OnJobRecord(activities.JobRecord{JobID: id, Type: "backup", BackupID: "backup-x", Status: "running", Started: started})
		// the start record again (a retried activity) sends nothing new
		s.OnJobRecord(activities.JobRecord{JobID: id, Type: "backup", BackupID: "backup-x", Status: "running", Started: started})
		done := time.Now().UTC()
		final := workflows.Progress{Status: tc.status, JobID: id, JobType: "backup", Percentage: 40, BytesProcessed: 1500,
			StorageStatus: map[string]string{"local": "done", "cloud": tc.status}, Started: started, Finished: &done,
			Copies: map[string]workflows.CopyProgress{"cloud": {BytesDone: 1500, BytesTotal: 1500}}}
		res, _ := json.Marshal(map[string]any{"progress": final})
		rec := activities.JobRecord{JobID: id, Type: "backup", BackupID: "backup-x", Status: tc.status, Started: started,
			Finished: &done, Result: res}
		if tc.code != "" {
			rec.Error, rec.ErrorCode = "the bucket is unreachable", tc.code
		}
		s.OnJobRecord(rec)
		first, last, complete := read(), read(), read()
		if first["type"] != "backup_progress" || first["progress"] != 0.0 || first["job_id"] != id {
			t.Fatalf("%s: first message %v", tc.status, first)
		}
		wantPct := 100.0
		if tc.status == "failed" {
			wantPct = 40
		}
		if last["type"] != "backup_progress" || last["progress"] != wantPct || get(last, "locations.cloud.state") != tc.status ||
			get(last, "locations.cloud.bytes_done") != 1500.0 {
			t.Fatalf("%s: final progress %v", tc.status, last)
		}
		if complete["type"] != "job_complete" {
			t.Fatalf("%s: third message %v", tc.status, complete)
		}
		if tc.code != "" && (get(complete, "error.code") != tc.code || get(complete, "error.message") != "the bucket is unreachable" ||
			len(get(complete, "error.suggested_actions").([]any)) == 0) {
			t.Fatalf("failed job_complete without the error object: %v", complete)
		}
	}
}

// get walks a decoded JSON value by a dotted path.
func get(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		if l, ok := v.([]any); ok {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(l) {
				return nil
			}
			v = l[i]
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// connectViewer connects a WebSocket client with tok to s and waits until
// the hub has it; it closes with the test.
func connectViewer(t *testing.T, s *Server, tok string) *websocket.Conn {
	t.Helper()
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/cloud-integration/ws/backup"
	c, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for s.Hub.Clients() < 1 {
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

// ?host= hears that host's jobs only: an enrolled host's by name, the
// server's own as the messages without a host; an unknown host is a 400.
func TestWebSocketFiltersByHost(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	if err := s.Store.DB.Create(&models.Host{ID: "host-aaaaaaaaaaaa", Name: "gw-a", Status: models.HostActive}).Error; err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/cloud-integration/ws/backup"
	h := http.Header{"Authorization": {"Bearer " + toks["viewer"]}}
	if _, res, err := websocket.DefaultDialer.Dial(url+"?host=gw-zz", h); err == nil || res.StatusCode != 400 {
		t.Fatalf("an unknown host: %v %v", res, err)
	}
	dial := func(q string) *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial(url+q, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	byName, byID, local := dial("?host=gw-a"), dial("?host=host-aaaaaaaaaaaa"), dial("?host="+s.Cfg.Host)
	for s.Hub.Clients() < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	s.Hub.Broadcast(map[string]any{"type": "storage_alert", "location": "local"})
	s.Hub.Broadcast(map[string]any{"type": "backup_progress", "job_id": "JOB-SERVER"})
	s.Hub.Broadcast(map[string]any{"type": "backup_progress", "job_id": "JOB-B", "host": "gw-b"})
	s.Hub.Broadcast(map[string]any{"type": "job_complete", "job_id": "JOB-A", "host": "gw-a"})
	next := func(c *websocket.Conn) string {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var m map[string]any
		if err := c.ReadJSON(&m); err != nil {
			return err.Error()
		}
		return m["job_id"].(string)
	}
	for name, c := range map[string]*websocket.Conn{"by name": byName, "by id": byID} {
		if got := next(c); got != "JOB-A" {
			t.Errorf("gw-a's client %s got %s first", name, got)
		}
	}
	if got := next(local); got != "JOB-SERVER" {
		t.Errorf("the server's own host's client got %s", got)
	}
}
