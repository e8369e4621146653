package apiserver

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"backupd/activities"
)

// One access-log line per request (route template, never the ids in the
// path; status; duration; request id; actor) and a line when a job starts
// and when it ends: 15 jobs used to leave one log line.
func TestAccessLogAndJobLines(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	var buf bytes.Buffer
	s.Log = slog.New(slog.NewJSONHandler(&buf, nil))
	res, _ := call(t, s, "GET", "/cloud-integration/backup/details/backup-nope", toks["viewer"], nil)
	call(t, s, "GET", "/cloud-integration/backup/no-such-route", "", nil)
	start := time.Now().Add(-2 * time.Second).UTC()
	end := time.Now().UTC()
	s.OnJobRecord(activities.JobRecord{JobID: "VERIFY-JOB-1", Type: "verify", RefID: "VERIFY-1", Status: "running", Started: start})
	s.OnJobRecord(activities.JobRecord{JobID: "VERIFY-JOB-1", Type: "verify", RefID: "VERIFY-1", Status: "failed", Started: start,
		Finished: &end, Error: "no such backup", ErrorCode: "BACKUP_007"})
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		lines = append(lines, m)
	}
	find := func(msg, key, val string) map[string]any {
		for _, m := range lines {
			if m["msg"] == msg && (key == "" || m[key] == val) {
				return m
			}
		}
		t.Fatalf("no %q line with %s=%s in:\n%s", msg, key, val, buf.String())
		return nil
	}
	a := find("request", "route", "/backup/details/{backup_id}")
	if a["status"] != 404.0 || a["actor"] != "viewer-user" || a["request_id"] != res.Header.Get("X-Request-ID") || a["method"] != "GET" {
		t.Fatalf("access line: %v", a)
	}
	if strings.Contains(buf.String(), "backup-nope") {
		t.Fatal("an id from the path reached the access log")
	}
	find("request", "route", "(no route)")
	find("job started", "job_id", "VERIFY-JOB-1")
	if f := find("job finished", "job_id", "VERIFY-JOB-1"); f["level"] != "WARN" || f["outcome"] != "failed" || f["error_code"] != "BACKUP_007" || f["duration_s"] == nil {
		t.Fatalf("job end line: %v", f)
	}
}

// /healthz and /readyz answer without a token and say no more than ok or
// not ok; with Temporal unreachable the server is alive but not ready.
func TestProbes(t *testing.T) {
	s, _ := testServer(t, "sqlite")
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503} {
		res, m := call(t, s, "GET", path, "", nil)
		if res.StatusCode != want || len(m) != 1 || m["status"] == nil {
			t.Fatalf("%s: %d %v", path, res.StatusCode, m)
		}
	}
}
