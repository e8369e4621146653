package apiserver

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// An operator may manage schedules, never backupd's own: the retention
// cleanup (admin only) was reachable as schedule id "cleanup".
func TestReservedScheduleIDsAreRefused(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	for _, id := range []string{"cleanup", "Cleanup", "backupd-cleanup", "backupd", "scheduled-cleanup"} {
		body := `{"id":"` + id + `","name":"x","frequency":"daily","time":"02:00","components":["data"],"storage_locations":["local"]}`
		res, m := call(t, s, "POST", "/cloud-integration/backup/schedules", toks["operator"], strings.NewReader(body))
		det, _ := m["details"].(map[string]any)
		if res.StatusCode != http.StatusBadRequest || det["field"] != "id" || !strings.Contains(m["message"].(string), "reserved") {
			t.Errorf("create %q: %d %v", id, res.StatusCode, m)
		}
	}
	for _, rt := range []struct{ method, path string }{
		{"DELETE", "/cloud-integration/backup/schedules/cleanup"},
		{"POST", "/cloud-integration/backup/schedules/cleanup/trigger"},
	} {
		res, m := call(t, s, rt.method, rt.path, toks["operator"], nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s as operator: %d %v", rt.method, rt.path, res.StatusCode, m)
		}
	}
	if got := temporalScheduleID("cleanup"); got == cleanupScheduleID {
		t.Fatalf("a user schedule maps onto the cleanup schedule: %s", got)
	}
}

// A schedule (or backup) to locations that break the replication policy
// is accepted with a warning naming how it falls short and what meets it.
func TestPolicyWarningNamesTheShortfall(t *testing.T) {
	s, _ := testServer(t, "sqlite")
	pol, err := s.policies(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w := s.policyWarning([]string{"local"}, pol)
	if !strings.Contains(w, "1 of 3 copies") || !strings.Contains(w, "add [cloud]") {
		t.Fatalf("warning: %q", w)
	}
	pol.Replication.Copies, pol.Replication.Offsite = 2, 0
	if w := s.policyWarning([]string{"local", "cloud"}, pol); w != "" {
		t.Fatalf("a policy met gets a warning: %q", w)
	}
}
