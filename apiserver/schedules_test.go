package apiserver

import (
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
