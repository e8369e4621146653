package apiserver

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"backupd/models"
)

// A token may be named with 200 characters: every audit record (and job)
// naming its user must fit, on PostgreSQL too, where a longer actor than
// the column made every audited call fail to be recorded.
func TestAuditFitsTheLongestTokenName(t *testing.T) {
	forDrivers(t, func(t *testing.T, d string) {
		s, _ := testServer(t, d)
		ctx := context.Background()
		name := strings.Repeat("n", 200) // the longest name a token may have
		admin, _, err := s.Store.CreateToken(ctx, name, "admin", "test", 0)
		if err != nil {
			t.Fatal(err)
		}
		res, m := call(t, s, "POST", "/cloud-integration/backup/tokens", admin, strings.NewReader(`{"name":"`+name+`","role":"viewer"}`))
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("create token: %d %v", res.StatusCode, m)
		}
		es, _, err := s.Store.ListAudit(ctx, models.AuditFilter{Action: "token.create", Limit: 10})
		if err != nil || len(es) != 1 || !strings.HasPrefix(es[0].Actor, name) || es[0].Outcome != "success" || es[0].Status != 201 {
			t.Fatalf("audit: %v %+v", err, es)
		}
		// jobs and backups record the same user
		j := &models.Job{ID: "JOB-long", Type: "backup", Status: "queued", User: es[0].Actor}
		if err := s.Store.PutJob(ctx, j); err != nil {
			t.Fatalf("a job by that user: %v", err)
		}
		// every field is fitted to its column, never refused
		long := &models.AuditEntry{Actor: strings.Repeat("a", 5000), Path: "/" + strings.Repeat("p", 5000),
			Target: strings.Repeat("t", 5000), Detail: strings.Repeat("d", 5000), Remote: strings.Repeat("r", 500), Action: "x"}
		if err := s.Store.Audit(ctx, long); err != nil {
			t.Fatalf("an over-long audit record: %v", err)
		}
	})
}

// A mutating call whose audit record cannot be written is refused, and
// does not happen.
func TestAMutatingCallThatCannotBeAuditedFails(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	ctx := context.Background()
	before, _ := s.Store.ListTokens(ctx)
	if err := s.Store.DB.Exec("DROP TABLE audit_entries").Error; err != nil {
		t.Fatal(err)
	}
	res, m := call(t, s, "POST", "/cloud-integration/backup/tokens", toks["admin"], strings.NewReader(`{"name":"x","role":"viewer"}`))
	if res.StatusCode != http.StatusServiceUnavailable || m["code"] != "AUDIT_UNAVAILABLE" || !strings.Contains(m["message"].(string), "not carried out") {
		t.Fatalf("unaudited call: %d %v", res.StatusCode, m)
	}
	after, _ := s.Store.ListTokens(ctx)
	if len(after) != len(before) {
		t.Fatalf("the unaudited call happened: %d tokens, was %d", len(after), len(before))
	}
}

// Reading a backup's contents (a download is a full plaintext export) is
// audited like a change.
func TestDownloadsAreAudited(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	call(t, s, "GET", "/cloud-integration/backup/download/backup-x?format=tar.gz", toks["admin"], nil)
	es, _, err := s.Store.ListAudit(context.Background(), models.AuditFilter{Action: "backup.download", Limit: 10})
	if err != nil || len(es) != 1 || es[0].Target == "" && es[0].Path == "" || es[0].Outcome == "started" {
		t.Fatalf("download audit: %v %+v", err, es)
	}
}

// A flood of refused attempts is one entry per source and minute with a
// count, and a source without a valid token is slowed down (429), while
// a valid token from the same source still gets through.
func TestRefusedAttemptsAreAggregatedAndRateLimited(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	s.limiter = authLimiter{burst: authBurst, rate: authRate}
	codes := map[int]int{}
	for i := 0; i < 200; i++ {
		res, _ := call(t, s, "POST", "/cloud-integration/backup/create", "bkd_wrong", strings.NewReader("{}"))
		codes[res.StatusCode]++
	}
	if codes[401] < authBurst-1 || codes[401] > authBurst+2 || codes[429] < 150 {
		t.Fatalf("statuses %v: want about %d 401s, then 429s", codes, authBurst)
	}
	res, _ := call(t, s, "GET", "/cloud-integration/backup/list", toks["viewer"], nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("a valid token from a throttled source: %d", res.StatusCode)
	}
	s.flushRefusals(true)
	es, total, err := s.Store.ListAudit(context.Background(), models.AuditFilter{Outcome: "denied", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, e := range es {
		sum += e.Count
	}
	// two keys at most (401 and 429), three if the minute turned
	if total == 0 || total > 3 || sum != 200 {
		t.Fatalf("%d entries counting %d attempts (want <= 3 entries, 200 attempts): %+v", total, sum, es)
	}
}

// An error nobody wrote for clients (the database's, the system's) is not
// sent as is: the client gets its kind and the request id, the log the
// detail.
func TestInternalErrorsAreNotShownRaw(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	var logged strings.Builder
	s.Log = slog.New(slog.NewTextHandler(&logged, nil))
	if err := s.Store.DB.Exec("DROP TABLE jobs").Error; err != nil {
		t.Fatal(err)
	}
	res, m := call(t, s, "GET", "/cloud-integration/backup/jobs", toks["viewer"], nil)
	msg, _ := m["message"].(string)
	if res.StatusCode < 500 || strings.Contains(msg, "jobs") || strings.Contains(strings.ToLower(msg), "sql") ||
		!strings.Contains(msg, res.Header.Get("X-Request-ID")) {
		t.Fatalf("internal error sent as: %d %v", res.StatusCode, m)
	}
	if !strings.Contains(logged.String(), "no such table") || !strings.Contains(logged.String(), res.Header.Get("X-Request-ID")) {
		t.Fatalf("the log lacks the detail: %s", logged.String())
	}
}
