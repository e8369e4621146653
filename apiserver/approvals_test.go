package apiserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"backupd/models"
)

// Four-eyes: an operator's (or an admin's) destructive call is held; the
// requester cannot approve it; a second admin approves only with a valid
// TOTP code, and the call runs then, as the requester's; an expired
// request does not run; what is not destructive stays the admin's alone.
func TestApprovalsHoldDestructiveCalls(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	s.Cfg.Approvals.Enabled, s.Cfg.Approvals.TOTP = true, true
	ctx := context.Background()
	admin2, _, err := s.Store.CreateToken(ctx, "second-admin", "admin", "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"b1", "b2"} {
		if err := s.Store.PutBackup(ctx, &models.Backup{ID: id, Type: "full", Status: "completed", Timestamp: time.Now(), Protected: true}); err != nil {
			t.Fatal(err)
		}
	}
	protected := func(id string) bool {
		b, err := s.Store.GetBackup(ctx, id)
		return err == nil && b.Protected
	}
	const unprotect = `{"protected": false}`

	// the operator asks to lift a protection: held, nothing changed
	res, held := call(t, s, "POST", "/cloud-integration/backup/b1/protect", toks["operator"], strings.NewReader(unprotect))
	if res.StatusCode != http.StatusAccepted || held["status"] != "pending" || held["action"] != "backup.protect" {
		t.Fatalf("held: %d %v", res.StatusCode, held)
	}
	id := held["approval_id"].(string)
	if !protected("b1") {
		t.Fatal("a held call lifted the protection")
	}
	// not without a code, not with a wrong one, not by one without an
	// authenticator
	approve := func(tok, code string) (*http.Response, map[string]any) {
		return call(t, s, "POST", "/cloud-integration/backup/approvals/"+id+"/approve", tok, strings.NewReader(`{"totp_code":"`+code+`"}`))
	}
	if res, body := approve(toks["admin"], "123456"); res.StatusCode != 403 || !strings.Contains(body["message"].(string), "no authenticator") {
		t.Errorf("an admin without an authenticator: %d %v", res.StatusCode, body)
	}
	res, enrol := call(t, s, "POST", "/cloud-integration/backup/tokens/self/totp", toks["admin"], nil)
	if res.StatusCode != 201 || enrol["secret"] == nil || !strings.HasPrefix(enrol["otpauth_url"].(string), "otpauth://totp/") {
		t.Fatalf("enrol: %d %v", res.StatusCode, enrol)
	}
	if res, _ := call(t, s, "POST", "/cloud-integration/backup/tokens/self/totp", toks["admin"], nil); res.StatusCode != 409 {
		t.Errorf("a second enrolment: %d", res.StatusCode)
	}
	secret := enrol["secret"].(string)
	if res, _ := approve(toks["admin"], ""); res.StatusCode != 403 {
		t.Errorf("no code: %d", res.StatusCode)
	}
	wrong, _ := totp.GenerateCode(secret, time.Now().Add(-10*time.Minute))
	if res, _ := approve(toks["admin"], wrong); res.StatusCode != 403 {
		t.Errorf("a stale code: %d", res.StatusCode)
	}
	if !protected("b1") {
		t.Fatal("refused approvals lifted the protection")
	}
	code, _ := totp.GenerateCode(secret, time.Now())
	res, done := approve(toks["admin"], code)
	if res.StatusCode != 200 || done["status"] != "executed" || done["result_status"] != 200.0 || done["decided_by"] != "admin-user" {
		t.Fatalf("approved: %d %v", res.StatusCode, done)
	}
	if protected("b1") {
		t.Fatal("the approved call did not run")
	}
	if res, _ := approve(toks["admin"], code); res.StatusCode != 409 {
		t.Errorf("approved twice: %d", res.StatusCode)
	}

	// an admin's own request: the requester cannot approve it
	res, held = call(t, s, "POST", "/cloud-integration/backup/b2/protect", toks["admin"], strings.NewReader(unprotect))
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("an admin's call is held too: %d %v", res.StatusCode, held)
	}
	id = held["approval_id"].(string)
	code, _ = totp.GenerateCode(secret, time.Now())
	if res, body := approve(toks["admin"], code); res.StatusCode != 403 || !strings.Contains(body["message"].(string), "second admin") {
		t.Errorf("the requester approved: %d %v", res.StatusCode, body)
	}
	// expired: it does not run
	a, _ := s.Store.GetApproval(ctx, id)
	a.ExpiresAt = time.Now().Add(-time.Minute)
	s.Store.PutApproval(ctx, a)
	s.Cfg.Approvals.TOTP = false // (admin2 has no authenticator)
	if res, body := approve(admin2, ""); res.StatusCode != 409 || !strings.Contains(body["message"].(string), "expired") {
		t.Errorf("an expired request: %d %v", res.StatusCode, body)
	}
	if a, _ := s.Store.GetApproval(ctx, id); a.Status != "expired" || !protected("b2") {
		t.Errorf("status %s", a.Status)
	}
	// protecting is not destructive: an admin's runs at once, an
	// operator's is refused
	if res, _ := call(t, s, "POST", "/cloud-integration/backup/b1/protect", toks["admin"], strings.NewReader(`{"protected": true}`)); res.StatusCode != 200 || !protected("b1") {
		t.Errorf("an admin's protect: %d", res.StatusCode)
	}
	if res, _ := call(t, s, "POST", "/cloud-integration/backup/b1/protect", toks["operator"], strings.NewReader(`{"protected": true}`)); res.StatusCode != 403 {
		t.Errorf("an operator's protect: %d", res.StatusCode)
	}

	// what is not destructive is not held, and stays the admin's: an
	// operator's dry-run cleanup is refused, an admin's runs at once
	if res, body := call(t, s, "POST", "/cloud-integration/backup/cleanup", toks["operator"], strings.NewReader(`{"dry_run": true}`)); res.StatusCode != 403 {
		t.Errorf("an operator's dry run: %d %v", res.StatusCode, body)
	}
	// (the dry run itself needs Temporal, which this server cannot reach:
	// what matters is that it was not held)
	if res, body := call(t, s, "POST", "/cloud-integration/backup/cleanup", toks["admin"], strings.NewReader(`{"dry_run": true}`)); res.StatusCode == http.StatusAccepted && body["approval_id"] != nil {
		t.Errorf("an admin's dry run was held: %v", body)
	}
	if _, body := call(t, s, "GET", "/cloud-integration/backup/approvals?status=pending", toks["operator"], nil); len(body["approvals"].([]any)) != 0 {
		t.Errorf("pending approvals after non-destructive calls: %v", body)
	}
	// the list, and the audit log names the approver
	_, list := call(t, s, "GET", "/cloud-integration/backup/approvals", toks["operator"], nil)
	if n := len(list["approvals"].([]any)); n != 2 {
		t.Errorf("approvals listed: %d", n)
	}
	entries, _, _ := s.Store.ListAudit(ctx, models.AuditFilter{Action: "approval.approve"})
	ok := false
	for _, e := range entries {
		ok = ok || (e.Outcome == "success" && strings.HasPrefix(e.Actor, "admin-user"))
	}
	if !ok {
		t.Errorf("no successful approval.approve in the audit log: %+v", entries)
	}
	rep, err := s.compliance(ctx, "30d", time.Now().Add(-24*time.Hour), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range rep.Audit {
		if a.Action == "backup.protect" && strings.Join(a.ApprovedBy, ",") == "admin-user" {
			found = true
		}
	}
	if !found {
		t.Errorf("the compliance report does not name the approver: %+v", rep.Audit)
	}
}

// A token that requires TOTP makes its destructive calls with a code.
func TestTokenRequiresTOTP(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	res, created := call(t, s, "POST", "/cloud-integration/backup/tokens", toks["admin"], strings.NewReader(`{"name":"mfa-admin","role":"admin","require_totp":true}`))
	if res.StatusCode != 201 || created["require_totp"] != true {
		t.Fatalf("%d %v", res.StatusCode, created)
	}
	tok := created["token"].(string)
	if err := s.Store.PutBackup(context.Background(), &models.Backup{ID: "b1", Type: "full", Status: "completed", Timestamp: time.Now(), Protected: true}); err != nil {
		t.Fatal(err)
	}
	change := `{"protected": false}`
	if res, body := call(t, s, "POST", "/cloud-integration/backup/b1/protect", tok, strings.NewReader(change)); res.StatusCode != 403 ||
		!strings.Contains(body["message"].(string), "no authenticator") {
		t.Errorf("without an authenticator: %d %v", res.StatusCode, body)
	}
	_, enrol := call(t, s, "POST", "/cloud-integration/backup/tokens/self/totp", tok, nil)
	code, _ := totp.GenerateCode(enrol["secret"].(string), time.Now())
	req := func(c string) int {
		r := newRequest("POST", "/cloud-integration/backup/b1/protect", tok, change)
		if c != "" {
			r.Header.Set("X-Backupd-TOTP", c)
		}
		return serve(s, r).StatusCode
	}
	if st := req(""); st != 403 {
		t.Errorf("no code: %d", st)
	}
	if st := req(code); st != 200 {
		t.Errorf("with a code: %d", st)
	}
}

func newRequest(method, path, token, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Content-Type", "application/json")
	return r
}

func serve(s *Server, r *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r)
	return rec.Result()
}
