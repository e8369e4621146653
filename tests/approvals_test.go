package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"backupd/config"
)

// TestFourEyesDelete: with approvals on, an operator's delete of a backup
// waits; a second admin approves it with a valid TOTP code, and the
// backup is deleted from storage; the compliance report names the
// approver.
func TestFourEyesDelete(t *testing.T) {
	s := startAPIStackWith(t, "sqlite", func(*apiStack) {}, func(c *config.Config) {
		c.Approvals = config.Approvals{Enabled: true, TOTP: true, Expiry: "30m"}
	})
	const v1 = "/v1/cloud-integration/backup"
	b := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"configurations": true}, "storage_locations": []string{"local"}})
	if p := s.waitJob(t, v1+"/progress?job_id="+b["job_id"].(string)); p["status"] != "completed" {
		t.Fatalf("backup: %v", p)
	}
	id := b["backup_id"].(string)
	held := s.must(202, "DELETE", v1+"/"+id+"?force=true", "operator", nil)
	if held["status"] != "pending" || held["action"] != "backup.delete" {
		t.Fatalf("held: %v", held)
	}
	time.Sleep(500 * time.Millisecond)
	if st, _ := s.do("GET", v1+"/details/"+id, "viewer", nil); st != 200 {
		t.Fatalf("a held delete deleted: %d", st)
	}
	enrol := s.must(201, "POST", v1+"/tokens/self/totp", "admin", nil)
	code, _ := totp.GenerateCode(enrol["secret"].(string), time.Now())
	path := v1 + "/approvals/" + held["approval_id"].(string) + "/approve"
	if st, e := s.do("POST", path, "admin", map[string]string{"totp_code": "000000"}); st != 403 {
		t.Errorf("a wrong code: %d %v", st, e)
	}
	done := s.must(200, "POST", path, "admin", map[string]string{"totp_code": code})
	if done["status"] != "executed" || done["result_status"] != 202.0 || done["requested_by"] != "operator-e2e" {
		t.Fatalf("approved: %v", done)
	}
	waitFor(t, 60*time.Second, "the approved delete", func() bool {
		st, _ := s.do("GET", v1+"/details/"+id, "viewer", nil)
		return st == 404
	})
	rep := s.must(200, "GET", v1+"/reports/compliance?period=24h", "admin", nil)
	found := false
	for _, a := range rep["destructive_actions"].([]any) {
		a := a.(map[string]any)
		if a["action"] == "backup.delete" && strings.Contains(fmtAny(a["approved_by"]), "admin-e2e") && strings.Contains(fmtAny(a["actors"]), "operator-e2e") {
			found = true
		}
	}
	if !found {
		t.Errorf("the compliance report does not show the approved delete: %v", rep["destructive_actions"])
	}
}

func fmtAny(v any) string { return strings.TrimSpace(strings.ReplaceAll(fmt.Sprint(v), "\n", " ")) }
