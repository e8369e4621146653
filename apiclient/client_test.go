package apiclient

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"backupd/api"
)

// writeError answers as the server does: the spec's error body.
func writeError(w http.ResponseWriter, status int, code, msg string, details map[string]any, actions ...string) {
	if details == nil {
		details = map[string]any{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Error{IsError: true, Code: code, Message: msg, Details: details,
		SuggestedActions: actions, RequestID: "req_1", Timestamp: "2025-03-15T02:00:00Z"})
}

func TestErrorsAreDecodedFromTheSpecsBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cloud-integration/backup/details/x":
			writeError(w, 404, "BACKUP_007", `no backup "x"`, nil, "List the backups (GET /cloud-integration/backup/list)")
		case "/cloud-integration/backup/list":
			writeError(w, 400, "BACKUP_003", `type: "weekly" is not one of full, incremental`, map[string]any{"field": "type"}, "Correct the named field")
		default: // a proxy's page, not the spec's error
			w.WriteHeader(502)
			w.Write([]byte("<html>Bad Gateway</html>"))
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL, "tok", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Backup(t.Context(), "x")
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != 404 || e.Body.Code != "BACKUP_007" || err.Error() != `BACKUP_007: no backup "x"` ||
		len(e.Body.SuggestedActions) != 1 || e.Body.RequestID != "req_1" {
		t.Fatalf("404: %#v", err)
	}
	_, _, err = c.Backups(t.Context(), BackupQuery{Type: "weekly"})
	if !errors.As(err, &e) || e.StatusCode != 400 || e.Field() != "type" {
		t.Fatalf("400: %#v", err)
	}
	_, _, err = c.Status(t.Context())
	if !errors.As(err, &e) || e.StatusCode != 502 || e.Body.Code != "" || !strings.Contains(err.Error(), "HTTP 502: <html>Bad Gateway</html>") {
		t.Fatalf("502: %v", err)
	}
}

func TestNoServerAnswering(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	c, _ := New("http://"+addr, "tok", Options{})
	_, _, err = c.Health(t.Context())
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Base != "http://"+addr || !strings.Contains(err.Error(), "no server answers at http://"+addr) {
		t.Fatalf("%v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := c.Health(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled call: %v", err)
	}
}

func TestServerAddresses(t *testing.T) {
	for _, bad := range []string{"127.0.0.1:8080", "ftp://x", "http://", "http://h:1/path", "http://h:1?x=1"} {
		if _, err := New(bad, "", Options{}); err == nil || !strings.Contains(err.Error(), "want http://HOST:PORT") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	c, err := New(" https://backupd.example:8443/ ", "", Options{})
	if err != nil || c.Base() != "https://backupd.example:8443" {
		t.Fatalf("%v %v", c, err)
	}
	if _, err := New("http://h:1", "", Options{CAFile: "/x.pem"}); err == nil || !strings.Contains(err.Error(), "is for an https server") {
		t.Errorf("a CA file for http: %v", err)
	}
	if _, err := New("https://h:1", "", Options{CAFile: filepath.Join(t.TempDir(), "missing.pem")}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a missing CA file: %v", err)
	}
}

// A self-signed server is trusted with its certificate as the CA file;
// without it the error says the certificate is not trusted.
func TestTLSWithACAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.Health{OverallHealth: "healthy"})
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	c, err := New(srv.URL, "tok", Options{CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if h, _, err := c.Health(t.Context()); err != nil || h.OverallHealth != "healthy" {
		t.Fatalf("%v %v", h, err)
	}
	c, _ = New(srv.URL, "tok", Options{})
	if _, _, err := c.Health(t.Context()); err == nil || !strings.Contains(err.Error(), "not trusted") {
		t.Fatalf("untrusted: %v", err)
	}
}

func TestRequestsCarryTheTokenAndTypedBodies(t *testing.T) {
	var got api.CreateBackupRequest
	var auth, query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		query = r.URL.RawQuery
		switch {
		case r.Method == "POST" && r.URL.Path == "/cloud-integration/backup/create":
			json.NewDecoder(r.Body).Decode(&got)
			json.NewEncoder(w).Encode(api.BackupStarted{Status: "started", BackupID: "backup-1", JobID: "BACKUP-JOB-1"})
		case r.Method == "DELETE" && r.URL.EscapedPath() == "/cloud-integration/backup/a%2Fb":
			json.NewEncoder(w).Encode(api.BackupDeletion{Status: "deleted", BackupID: "a/b"})
		default:
			writeError(w, 404, "NOT_FOUND", "no such endpoint: "+r.Method+" "+r.URL.EscapedPath(), nil, "x")
		}
	}))
	defer srv.Close()
	c, _ := New(srv.URL, "bkd_tok", Options{})
	st, raw, err := c.CreateBackup(t.Context(), api.CreateBackupRequest{Components: api.ComponentSet{"data": true}, Type: "full"})
	if err != nil || st.JobID != "BACKUP-JOB-1" || !strings.Contains(string(raw), `"backup_id":"backup-1"`) {
		t.Fatalf("%v %s %v", st, raw, err)
	}
	if auth != "Bearer bkd_tok" || !got.Components["data"] || got.Type != "full" {
		t.Fatalf("sent %q %+v", auth, got)
	}
	// a path parameter is escaped
	if d, _, err := c.DeleteBackup(t.Context(), "a/b", true, []string{"local", "cloud"}); err != nil || d.BackupID != "a/b" {
		t.Fatalf("%v %v", d, err)
	}
	if query != "force=true&locations=local%2Ccloud" {
		t.Fatalf("query %q", query)
	}
}

// A server that redirects never receives the token at the address it
// points to (Go follows a redirect to another port of the same host with
// the Authorization header and, for a 307, the body), and an answer too
// large to be a backupd server's is refused instead of read into memory.
func TestHostileServerGetsNoTokenAndNoMemory(t *testing.T) {
	stolen := make(chan string, 4)
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen <- r.Header.Get("Authorization")
		w.Write([]byte("{}"))
	}))
	defer thief.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cloud-integration/backup/list": // an endless answer
			w.Write([]byte(`{"backups":[`))
			chunk := []byte(strings.Repeat(`{"id":"x"},`, 1000))
			for i := 0; i < (MaxAnswer/len(chunk))+2; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		default:
			http.Redirect(w, r, thief.URL+r.URL.Path, http.StatusTemporaryRedirect)
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL, "bkd_secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Status(t.Context()); err == nil || !strings.Contains(err.Error(), "redirects to") || !strings.Contains(err.Error(), "--server") {
		t.Fatalf("redirect: %v", err)
	}
	if _, _, err := c.CreateBackup(t.Context(), api.CreateBackupRequest{Components: api.ComponentSet{"data": true}}); err == nil {
		t.Fatal("a redirected POST succeeded")
	}
	select {
	case tok := <-stolen:
		t.Fatalf("the redirect's target got a request (Authorization %q)", tok)
	default:
	}
	if _, _, err := c.Backups(t.Context(), BackupQuery{}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("an endless answer: %v", err)
	}
}
