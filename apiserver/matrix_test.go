package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"backupd/models"
)

// routePolicy is the declared access policy, one line per route: the role
// a route needs ("public": no token) and whether it is audited. It is
// written here, apart from the route table, on purpose: a route added
// without a line here, or a route whose role or audit changes without this
// policy changing too, fails TestRoutePolicyIsDeclared.
var routePolicy = map[string]struct {
	role    string
	audited bool
}{
	"GET /backup/status":                             {"viewer", false},
	"GET /backup/list":                               {"viewer", false},
	"GET /backup/details/{backup_id}":                {"viewer", false},
	"POST /backup/create":                            {"operator", true},
	"DELETE /backup/{backup_id}":                     {"admin", true},
	"POST /backup/{backup_id}/protect":               {"admin", true},
	"GET /backup/download/{backup_id}":               {"admin", true},
	"GET /backup/progress":                           {"viewer", false},
	"GET /backup/tree/{backup_id}":                   {"operator", false},
	"GET /backup/search/{backup_id}":                 {"operator", false},
	"GET /backup/whoami":                             {"viewer", false},
	"GET /backup/components":                         {"viewer", false},
	"GET /backup/schedules":                          {"viewer", false},
	"POST /backup/schedules":                         {"operator", true},
	"DELETE /backup/schedules/{schedule_id}":         {"operator", true},
	"POST /backup/schedules/{schedule_id}/trigger":   {"operator", true},
	"GET /backup/reports/compliance":                 {"admin", false},
	"GET /backup/approvals":                          {"operator", false},
	"GET /backup/approvals/{approval_id}":            {"operator", false},
	"POST /backup/approvals/{approval_id}/approve":   {"admin", true},
	"POST /backup/approvals/{approval_id}/reject":    {"admin", true},
	"POST /backup/tokens/self/totp":                  {"operator", true},
	"GET /backup/drills":                             {"operator", false},
	"POST /backup/drills":                            {"admin", true},
	"GET /backup/drills/{drill_id}":                  {"operator", false},
	"DELETE /backup/drills/{drill_id}":               {"admin", true},
	"POST /backup/drills/{drill_id}/trigger":         {"operator", true},
	"POST /backup/restore":                           {"admin", true},
	"POST /backup/restore/rollback":                  {"admin", true},
	"GET /backup/restore/progress":                   {"viewer", false},
	"POST /backup/verify":                            {"operator", true},
	"GET /backup/verify/report/{verification_id}":    {"viewer", false},
	"GET /backup/storage":                            {"viewer", false},
	"POST /backup/storage/update":                    {"admin", true},
	"GET /backup/retention":                          {"viewer", false},
	"POST /backup/retention":                         {"admin", true},
	"POST /backup/cleanup":                           {"admin", true},
	"GET /backup/cleanup/report/{cleanup_id}":        {"viewer", false},
	"GET /backup/health":                             {"viewer", false},
	"GET /backup/statistics":                         {"viewer", false},
	"GET /backup/jobs":                               {"viewer", false},
	"POST /backup/jobs/cancel":                       {"operator", true},
	"POST /backup/jobs/pause":                        {"operator", true},
	"POST /backup/jobs/resume":                       {"operator", true},
	"POST /backup/repair":                            {"operator", true},
	"GET /backup/repair/report/{repair_id}":          {"viewer", false},
	"GET /backup/audit":                              {"admin", false},
	"GET /backup/tokens":                             {"admin", false},
	"POST /backup/tokens":                            {"admin", true},
	"DELETE /backup/tokens/{token_id}":               {"admin", true},
	"GET /backup/debug-bundle":                       {"admin", true},
	"GET /backup/openapi.json":                       {"public", false},
	"GET /ws/backup":                                 {"viewer", false},
	"GET /metrics":                                   {"viewer", false},
	"GET /backup/hosts":                              {"viewer", false},
	"GET /backup/hosts/{host_id}":                    {"viewer", false},
	"PUT /backup/hosts/{host_id}/quota":              {"admin", true},
	"PUT /backup/hosts/{host_id}/components":         {"admin", true},
	"DELETE /backup/hosts/{host_id}":                 {"admin", true},
	"POST /backup/hosts/enrolments":                  {"admin", true},
	"GET /backup/hosts/enrolments":                   {"admin", false},
	"DELETE /backup/hosts/enrolments/{enrolment_id}": {"admin", true},
	"POST /backup/hosts/enrol":                       {"public", true},
	"POST /backup/hosts/self/announce":               {"host", false},
	"POST /backup/hosts/self/credential":             {"host", true},
	// a host's storage: the data plane of its backups (one call per
	// pack), kept out of the audit log
	"GET /backup/hosts/self/storage/{location}/list":      {"host", false},
	"GET /backup/hosts/self/storage/{location}/stat":      {"host", false},
	"GET /backup/hosts/self/storage/{location}/object":    {"host", false},
	"PUT /backup/hosts/self/storage/{location}/object":    {"host", false},
	"DELETE /backup/hosts/self/storage/{location}/object": {"host", false},
}

// notAudited are the state-changing routes left out of the audit log:
// a host's announcements and its storage's data plane.
var notAudited = map[string]bool{
	"/backup/hosts/self/announce":                  true,
	"/backup/hosts/self/storage/{location}/object": true,
}

func TestRoutePolicyIsDeclared(t *testing.T) {
	s, _ := testServer(t, "sqlite")
	seen := map[string]bool{}
	for _, rt := range s.routes {
		k := rt.Method + " " + rt.Path
		seen[k] = true
		p, ok := routePolicy[k]
		if !ok {
			t.Errorf("route %s has no declared policy: add it to routePolicy", k)
			continue
		}
		if p.role != rt.Role || p.audited != (rt.Action != "") {
			t.Errorf("route %s: table says role %s audited %v, policy says %s %v", k, rt.Role, rt.Action != "", p.role, p.audited)
		}
		if rt.Method != "GET" && rt.Action == "" && !notAudited[rt.Path] {
			t.Errorf("route %s changes state but is not audited", k)
		}
	}
	for k := range routePolicy {
		if !seen[k] {
			t.Errorf("policy line %s names no route", k)
		}
	}
}

// The matrix: every route × {no token, a wrong token, an expired, a
// revoked token, viewer, operator, admin} × both prefixes, each answer
// from the policy: 401 for the first four, 403 below the route's role,
// and neither for the rest (which may still refuse the empty request).
func TestRouteRoleMatrix(t *testing.T) {
	forDrivers(t, func(t *testing.T, d string) {
		s, toks := testServer(t, d)
		ctx := context.Background()
		expired, _, err := s.Store.CreateToken(ctx, "expired", "admin", "test", time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		revoked, rtok, _ := s.Store.CreateToken(ctx, "revoked", "admin", "test", 0)
		s.Store.RevokeToken(ctx, rtok.ID)
		enr, _, _ := s.Store.CreateEnrolment(ctx, "", nil, "test", time.Hour)
		hostCred, err := s.Store.Enrol(ctx, enr, &models.Host{ID: models.NewHostID(), Name: "gw-matrix"})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		creds := []struct{ name, token, role string }{
			{"none", "", ""}, {"wrong", "bkd_" + strings.Repeat("0", 43), ""}, {"expired", expired, ""}, {"revoked", revoked, ""},
			{"viewer", toks["viewer"], "viewer"}, {"operator", toks["operator"], "operator"}, {"admin", toks["admin"], "admin"},
			{"host", hostCred, models.RoleHost},
		}
		cells := 0
		for _, p := range Prefixes {
			for _, rt := range s.routes {
				pol := routePolicy[rt.Method+" "+rt.Path]
				for ci, c := range creds {
					res, body := call(t, s, rt.Method, concrete(rt.servedAt(p)), c.token, strings.NewReader("{}"))
					cells++
					if nc, ok := body["credential"].(string); ok && c.role == models.RoleHost && res.StatusCode == http.StatusOK {
						creds[ci].token = nc // the host rotated its credential
					}
					switch {
					case pol.role == rolePublic:
						if res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden || res.StatusCode >= 500 {
							t.Errorf("%s %s (public) with %s token: %d %v", rt.Method, p+rt.Path, c.name, res.StatusCode, body)
						}
					case c.role == "":
						if res.StatusCode != http.StatusUnauthorized {
							t.Errorf("%s %s with %s token: %d %v", rt.Method, p+rt.Path, c.name, res.StatusCode, body)
						}
					// a host's credential opens the host routes alone, and
					// only it opens them
					case (pol.role == models.RoleHost) != (c.role == models.RoleHost):
						if res.StatusCode != http.StatusForbidden {
							t.Errorf("%s %s as %s (needs %s): %d %v", rt.Method, p+rt.Path, c.name, pol.role, res.StatusCode, body)
						}
					case models.RoleRank(c.role) < models.RoleRank(pol.role):
						if res.StatusCode != http.StatusForbidden {
							t.Errorf("%s %s as %s (needs %s): %d %v", rt.Method, p+rt.Path, c.name, pol.role, res.StatusCode, body)
						}
					default:
						if res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden {
							t.Errorf("%s %s as %s: refused with %d %v", rt.Method, p+rt.Path, c.name, res.StatusCode, body)
						}
					}
				}
			}
		}
		t.Logf("%d cells (%d routes × %d credentials × %d prefixes)", cells, len(s.routes), len(creds), len(Prefixes))
	})
}

// Hostile ids, in the path and in bodies, as the admin (who gets past
// every role check): each is refused with a 4xx naming nothing internal,
// never a success and never a server error.
func TestHostileIDs(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	hostile := []string{"cleanup", "backupd-cleanup", "..", "../../etc/passwd", "%2e%2e", strings.Repeat("a", 5000),
		"x\x00y", "ü💥", "' OR 1=1 --", "$(id)", " ", "backup-x/../../tokens"}
	n := 0
	for _, rt := range s.routes {
		if !strings.Contains(rt.Path, "{") {
			continue
		}
		for _, h := range hostile {
			path := rt.Path
			for _, name := range []string{"{backup_id}", "{schedule_id}", "{verification_id}", "{cleanup_id}", "{token_id}", "{repair_id}"} {
				path = strings.ReplaceAll(path, name, url.PathEscape(h))
			}
			res, body := call(t, s, rt.Method, "/cloud-integration"+path, toks["admin"], strings.NewReader("{}"))
			n++
			if res.StatusCode < 300 || res.StatusCode >= 500 {
				t.Errorf("%s %s with id %.40q: %d %v", rt.Method, rt.Path, h, res.StatusCode, body)
			}
		}
	}
	// ids in bodies and queries
	for _, h := range hostile {
		for _, c := range []struct{ method, path, body string }{
			{"POST", "/backup/jobs/cancel", fmt.Sprintf(`{"job_id":%q}`, h)},
			{"POST", "/backup/jobs/pause", fmt.Sprintf(`{"job_id":%q}`, h)},
			{"POST", "/backup/verify", fmt.Sprintf(`{"backup_id":%q}`, h)},
			{"POST", "/backup/restore", fmt.Sprintf(`{"backup_id":%q,"target_location":"/tmp/x"}`, h)},
			{"POST", "/backup/restore/rollback", fmt.Sprintf(`{"restore_id":%q}`, h)},
			{"POST", "/backup/schedules", fmt.Sprintf(`{"id":%q,"frequency":"daily","time":"01:00","components":["data"]}`, h)},
			{"GET", "/backup/progress?job_id=" + url.QueryEscape(h), ""},
			{"GET", "/backup/restore/progress?restore_id=" + url.QueryEscape(h), ""},
		} {
			res, body := call(t, s, c.method, "/cloud-integration"+c.path, toks["admin"], strings.NewReader(c.body))
			n++
			if res.StatusCode < 300 || res.StatusCode >= 500 {
				t.Errorf("%s %s with %.40q: %d %v", c.method, c.path, h, res.StatusCode, body)
			}
		}
	}
	t.Logf("%d hostile requests refused", n)
}
