package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"backupd/activities"
	"backupd/api"
	"backupd/backup"

	"backupd/config"
	"backupd/models"
	"backupd/models/modelstest"
)

// testServer is an API server over a real catalog with no Temporal: the
// requests here are all refused before a job would start.
func testServer(t *testing.T, driver string) (*Server, map[string]string) {
	t.Helper()
	store := modelstest.Open(t, driver)
	dir := t.TempDir()
	cfg := &config.Config{Host: "h", Primary: "local",
		Components: map[string]config.Component{"data": {Paths: []string{dir}}, "logs": {Paths: []string{dir}}},
		Storage:    map[string]config.Location{"local": {URL: filepath.Join(dir, "repo")}, "cloud": {URL: "s3://b/p?endpoint=http://127.0.0.1:1"}},
	}
	stores := activities.NewStores(cfg)
	t.Cleanup(stores.Close)
	s := New(&Server{Cfg: cfg, Store: store, Stores: stores, Temporal: unreachableTemporal{}})
	// the route tests send hundreds of bad tokens from one address; the
	// limit has its own test
	s.limiter = authLimiter{burst: 1e6, rate: 1e6}
	toks := map[string]string{}
	for _, role := range models.Roles {
		p, _, err := store.CreateToken(context.Background(), role+"-user", role, "test", 0)
		if err != nil {
			t.Fatal(err)
		}
		toks[role] = p
	}
	return s, toks
}

// unreachableTemporal is a Temporal client whose server cannot be
// reached: the calls status and health make fail; any other call panics,
// which the server turns into a logged 500.
type unreachableTemporal struct{ client.Client }

var errNoTemporal = errors.New("temporal: connection refused (test)")

func (unreachableTemporal) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	return nil, errNoTemporal
}

func (unreachableTemporal) DescribeTaskQueue(context.Context, string, enumspb.TaskQueueType) (*workflowservice.DescribeTaskQueueResponse, error) {
	return nil, errNoTemporal
}

func call(t *testing.T, s *Server, method, path, token string, body io.Reader) (*http.Response, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	res := rec.Result()
	checkAnswer(t, s, req, res)
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	if m["error"] == true {
		if a, _ := m["suggested_actions"].([]any); len(a) == 0 {
			t.Errorf("%s %s: %d error without suggested_actions: %v", method, path, res.StatusCode, m)
		}
	}
	return res, m
}

func concrete(path string) string {
	return strings.NewReplacer("{backup_id}", "backup-x", "{schedule_id}", "s1", "{verification_id}", "VERIFY-1",
		"{cleanup_id}", "CLEANUP-1", "{token_id}", "tok-1", "{repair_id}", "REPAIR-1").Replace(path)
}

func forDrivers(t *testing.T, fn func(t *testing.T, driver string)) {
	for _, d := range modelstest.Drivers(t) {
		t.Run(d, func(t *testing.T) { fn(t, d) })
	}
}

func TestEveryRouteNeedsAToken(t *testing.T) {
	forDrivers(t, func(t *testing.T, d string) {
		s, toks := testServer(t, d)
		for _, p := range Prefixes {
			for _, rt := range s.routes {
				if rt.Role == rolePublic {
					continue // TestPublicRoutesNeedNoToken
				}
				for _, tok := range []string{"", "bkd_notatoken", "garbage"} {
					res, body := call(t, s, rt.Method, concrete(rt.servedAt(p)), tok, strings.NewReader("{}"))
					if res.StatusCode != http.StatusUnauthorized || body["code"] != "UNAUTHORIZED" || body["request_id"] == "" {
						t.Errorf("%s %s with token %q: %d %v", rt.Method, p+rt.Path, tok, res.StatusCode, body)
					}
				}
			}
		}
		// a revoked token is refused too
		list, _ := s.Store.ListTokens(context.Background())
		s.Store.RevokeToken(context.Background(), list[0].ID)
		res, _ := call(t, s, "GET", "/cloud-integration/backup/list", toks[list[0].Role], nil)
		if res.StatusCode != 401 {
			t.Errorf("revoked token: %d", res.StatusCode)
		}
	})
}

func TestRolesAreEnforcedAndAudited(t *testing.T) {
	forDrivers(t, func(t *testing.T, d string) {
		s, toks := testServer(t, d)
		denied := 0
		for _, rt := range s.routes {
			for _, role := range models.Roles {
				if models.RoleRank(role) >= models.RoleRank(rt.Role) {
					continue
				}
				res, body := call(t, s, rt.Method, concrete(rt.servedAt("/v1/cloud-integration")), toks[role], strings.NewReader("{}"))
				if res.StatusCode != http.StatusForbidden || body["code"] != "FORBIDDEN" {
					t.Errorf("%s %s as %s: %d %v", rt.Method, rt.Path, role, res.StatusCode, body)
				}
				if rt.Action != "" {
					denied++
				}
			}
		}
		// every mutating route is a viewer's 403: each is in the audit log
		es, total, err := s.Store.ListAudit(context.Background(), models.AuditFilter{Outcome: "denied", Limit: 1000})
		if err != nil || int(total) != denied || denied == 0 {
			t.Fatalf("audit has %d denied entries, want %d (%v)", total, denied, err)
		}
		if es[0].Actor == "" || es[0].RequestID == "" || es[0].Status != 403 || es[0].Action == "" {
			t.Fatalf("audit entry: %+v", es[0])
		}
	})
}

func TestBadInputIsA400NamingTheField(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	admin := toks["admin"]
	cases := []struct {
		method, path, body string
		status             int
		field, contains    string
	}{
		{"POST", "/backup/create", `{"type": "full",`, 400, "", "malformed JSON"},
		{"POST", "/backup/create", `{"type": "weekly", "components": {"data": true}}`, 400, "type", "weekly"},
		{"POST", "/backup/create", `{"type": "full", "components": {"data": true}, "colour": 1}`, 400, "colour", "allowed here: name, type, components, storage_locations"},
		{"POST", "/backup/retention", `{"retention_policies": {"full_backups": {"daily": 1, "hourly": 1}}}`, 400, "retention_policies.full_backups.hourly", "allowed here: daily, weekly, monthly, yearly"},
		{"POST", "/backup/storage/update", `{"policies": {"encryption": {"key_rotation": 3}}}`, 400, "policies.encryption.key_rotation", "allowed here: key_rotation_days"},
		{"POST", "/backup/storage/update", `{"local": {"quotas": "1TB"}}`, 400, "local.quotas", "allowed here: enabled, quota, retention_policy"},
		{"POST", "/backup/create", `{"type": 5, "components": {"data": true}}`, 400, "type", "expected a string"},
		{"POST", "/backup/create", `{"components": {"nope": true}}`, 400, "components.nope", "unknown component"},
		{"POST", "/backup/create", `{"components": {"data": false}}`, 400, "components", "at least one"},
		{"POST", "/backup/create", `{"components": {"data": true}, "storage_locations": ["moon"]}`, 400, "storage_locations[0]", "moon"},
		{"POST", "/backup/create", `{"components": {"data": true}, "compression": "rar"}`, 400, "compression", "rar"},
		{"POST", "/backup/create", `{"components": {"data": true}, "priority": "urgent"}`, 400, "priority", "urgent"},
		{"POST", "/backup/create", `{"components": "data"}`, 400, "components", "expected an object"},
		{"POST", "/backup/create", `[]`, 400, "(body)", "an object"},
		{"POST", "/backup/create", `{} {}`, 400, "", "extra data"},
		{"POST", "/backup/create", ``, 400, "", "empty"},
		{"GET", "/backup/list?limit=1001", "", 400, "limit", "1..1000"},
		{"GET", "/backup/list?limit=x", "", 400, "limit", "not an integer"},
		{"GET", "/backup/list?since=yesterday", "", 400, "since", "RFC 3339"},
		{"GET", "/backup/list?type=weekly", "", 400, "type", "weekly"},
		{"GET", "/backup/list?sort=size", "", 400, "sort", "unknown query parameter"},
		{"GET", "/backup/jobs?limit=1001", "", 400, "limit", "1..1000"},
		{"GET", "/backup/audit?page_size=1001", "", 400, "page_size", "1..1000"},
		{"GET", "/backup/list?page_size=5&limit=6", "", 400, "page_size", "different values"},
		{"GET", "/backup/statistics?period=2w", "", 400, "period", "2w"},
		{"POST", "/backup/schedules", `{"id": "s1", "frequency": "weekly", "time": "03:00", "components": {"data": true}}`, 400, "day", "weekday"},
		{"POST", "/backup/schedules", `{"id": "s1", "frequency": "daily", "time": "25:00", "components": {"data": true}}`, 400, "time", "HH:MM"},
		{"POST", "/backup/schedules", `{"id": "s1", "frequency": "daily", "time": "01:00", "timezone": "Mars/Olympus", "components": {"data": true}}`, 400, "timezone", "IANA"},
		{"POST", "/backup/schedules", `{"id": "../x", "frequency": "daily"}`, 400, "id", "letters"},
		{"POST", "/backup/schedules", `{"id": "s1", "frequency": "daily", "time": "01:00", "components": {"nope": true}}`, 400, "components.nope", "unknown component"},
		{"POST", "/backup/schedules", `{"id": "s1", "frequency": "daily", "time": "01:00", "components": {"data": true}, "storage_locations": ["moon"]}`, 400, "storage_locations[0]", "moon"},
		{"POST", "/backup/schedules", `{"id": "s1", "frequency": "monthly", "time": "01:00", "day": "32", "components": {"data": true}}`, 400, "day", "1..31"},
		{"POST", "/backup/schedules", `{"id": "s1", "frequency": "fortnightly", "components": {"data": true}}`, 400, "frequency", "fortnightly"},
		{"POST", "/backup/restore", `{"backup_id": "nope"}`, 404, "", "no backup"},
		{"POST", "/backup/jobs/cancel", `{"job_id": "BACKUP-JOB-NOPE"}`, 404, "", "no job"},
		{"POST", "/backup/storage/update", `{"local": {"quota": "lots"}}`, 400, "local.quota", "not a size"},
		{"POST", "/backup/storage/update", `{"moon": {"quota": "1TB"}}`, 400, "moon", "unknown storage location"},
		{"POST", "/backup/storage/update", `{"local": {"bucket": "x"}}`, 400, "local.bucket", "no bucket"},
		{"POST", "/backup/cleanup", `{"cleanup_strategy": "random"}`, 400, "cleanup_strategy", "random"},
		{"POST", "/backup/tokens", `{"name": "x", "role": "root"}`, 400, "role", "root"},
	}
	for _, c := range cases {
		var body io.Reader
		if c.method == "POST" {
			body = strings.NewReader(c.body)
		}
		res, m := call(t, s, c.method, "/cloud-integration"+c.path, admin, body)
		details, _ := m["details"].(map[string]any)
		msg, _ := m["message"].(string)
		if res.StatusCode != c.status || (c.field != "" && details["field"] != c.field) || !strings.Contains(msg, c.contains) ||
			m["error"] != true || m["request_id"] == "" || m["timestamp"] == "" {
			t.Errorf("%s %s %s: %d %v", c.method, c.path, c.body, res.StatusCode, m)
		}
	}
	for _, body := range []string{`{"id": "s1", "frequency": "weekly", "time": "03:00", "components": {"data": true}}`,
		`{"id": "s1", "frequency": "daily", "time": "01:00", "components": {"nope": true}}`} {
		if _, m := call(t, s, "POST", "/cloud-integration/backup/schedules", admin, strings.NewReader(body)); m["code"] != "BACKUP_011" {
			t.Errorf("schedule error code: %v", m)
		}
	}
	// nothing was started or written by any of them
	if jobs, _ := s.Store.ListJobs(context.Background(), models.JobFilter{Limit: 100}); len(jobs) != 0 {
		t.Fatalf("bad requests left jobs: %+v", jobs)
	}
}

func TestHugeBodyIs413(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	big := bytes.Repeat([]byte(" "), 10<<20)
	copy(big, `{"name": "`)
	big[len(big)-2], big[len(big)-1] = '"', '}'
	res, m := call(t, s, "POST", "/cloud-integration/backup/create", toks["operator"], bytes.NewReader(big))
	if res.StatusCode != http.StatusRequestEntityTooLarge || m["code"] != "REQUEST_TOO_LARGE" {
		t.Fatalf("10 MB body: %d %v", res.StatusCode, m)
	}
}

func TestRestoreTargetCannotEscape(t *testing.T) {
	forDrivers(t, func(t *testing.T, d string) {
		s, toks := testServer(t, d)
		ctx := context.Background()
		s.Store.PutBackup(ctx, &models.Backup{ID: "backup-1", Type: "full", Status: "completed", Timestamp: time.Now(),
			Components: models.Strings{"data"}, Locations: models.Strings{"local"}})
		base := t.TempDir()
		outside := t.TempDir()
		os.Symlink(outside, filepath.Join(base, "link"))
		os.WriteFile(filepath.Join(base, "file"), nil, 0o600)
		for _, target := range []string{
			base + "/../etc", "../../etc", "relative/dir", filepath.Join(base, "link"), filepath.Join(base, "link", "sub"),
			filepath.Join(base, "file", "sub"), "/",
		} {
			body, _ := json.Marshal(map[string]any{"backup_id": "backup-1", "target_location": target})
			res, m := call(t, s, "POST", "/cloud-integration/backup/restore", toks["admin"], bytes.NewReader(body))
			det, _ := m["details"].(map[string]any)
			if res.StatusCode != 400 || det["field"] != "target_location" {
				t.Errorf("target %q: %d %v", target, res.StatusCode, m)
			}
		}
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Fatal("something was written through the symlink")
		}
		if jobs, _ := s.Store.ListJobs(ctx, models.JobFilter{Limit: 10}); len(jobs) != 0 {
			t.Fatalf("refused restores left jobs: %+v", jobs)
		}
	})
}

// The OpenAPI document holds no data: it is served without a token (and
// with any token).
func TestPublicRoutesNeedNoToken(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	for _, tok := range []string{"", "garbage", toks["viewer"]} {
		res, doc := call(t, s, "GET", "/v1/cloud-integration/backup/openapi.json", tok, nil)
		if res.StatusCode != 200 || doc["openapi"] == nil {
			t.Errorf("openapi.json with token %q: %d %v", tok, res.StatusCode, doc)
		}
	}
	public := 0
	for _, rt := range s.routes {
		if rt.Role == rolePublic {
			public++
			// the OpenAPI document holds no data; a host's enrolment
			// carries its own authority (the one-time token in its body)
			doc := rt.Method == "GET" && rt.Action == "" && rt.Path == "/backup/openapi.json"
			enrol := rt.Method == "POST" && rt.Action == "host.enrol" && rt.Path == "/backup/hosts/enrol"
			if !doc && !enrol {
				t.Errorf("%s %s is public: only the OpenAPI document and the enrolment may be", rt.Method, rt.Path)
			}
		}
	}
	if public != 2 {
		t.Errorf("%d public routes", public)
	}
}

// A known path with the wrong method is 405 with Allow; an unknown path
// is 404; both say what to do.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	for _, c := range []struct{ method, path, allow string }{
		{"GET", "/cloud-integration/backup/create", "POST, DELETE"}, // DELETE: a backup named "create"
		{"PUT", "/v1/cloud-integration/backup/schedules", "GET, POST, DELETE"},
		{"POST", "/cloud-integration/backup/details/backup-x", "GET"},
		{"GET", "/cloud-integration/backup/schedules/s1", "DELETE"},
	} {
		res, m := call(t, s, c.method, c.path, toks["admin"], nil)
		if res.StatusCode != 405 || res.Header.Get("Allow") != c.allow || m["code"] != "METHOD_NOT_ALLOWED" ||
			!strings.Contains(m["message"].(string), c.allow) {
			t.Errorf("%s %s: %d Allow %q %v", c.method, c.path, res.StatusCode, res.Header.Get("Allow"), m)
		}
	}
	res, m := call(t, s, "GET", "/cloud-integration/backup/nothing/here", toks["admin"], nil)
	if res.StatusCode != 404 || m["code"] != "NOT_FOUND" || len(m["suggested_actions"].([]any)) == 0 {
		t.Errorf("unknown path: %d %v", res.StatusCode, m)
	}
}

// Every list takes its page size as limit or page_size, answers it as
// page_size, with one maximum.
func TestListsShareOnePagingVocabulary(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	for _, list := range []string{"list", "jobs", "audit"} {
		for _, q := range []string{"limit=7", "page_size=7", "limit=7&page_size=7"} {
			res, m := call(t, s, "GET", "/cloud-integration/backup/"+list+"?"+q, toks["admin"], nil)
			pg, _ := m["pagination"].(map[string]any)
			if res.StatusCode != 200 || pg == nil || pg["page_size"] != 7.0 || pg["page"] != 1.0 {
				t.Errorf("%s?%s: %d %v", list, q, res.StatusCode, m)
			}
		}
		res, m := call(t, s, "GET", fmt.Sprintf("/cloud-integration/backup/%s?page_size=%d", list, api.MaxPageSize), toks["admin"], nil)
		if res.StatusCode != 200 {
			t.Errorf("%s at the maximum page size: %d %v", list, res.StatusCode, m)
		}
	}
}

func TestOpenAPIListsEveryServedRoute(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	res, doc := call(t, s, "GET", "/cloud-integration/backup/openapi.json", toks["viewer"], nil)
	if res.StatusCode != 200 || doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi: %d %v", res.StatusCode, doc)
	}
	paths := doc["paths"].(map[string]any)
	served := 0
	err := s.router.Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := r.GetPathTemplate()
		tpl = regexp.MustCompile(`\{(\w+):[^}]*\}`).ReplaceAllString(tpl, "{$1}") // {file:.+} is {file}
		methods, merr := r.GetMethods()
		if err != nil || merr != nil {
			return nil // the prefix subrouters themselves
		}
		for _, m := range methods {
			served++
			item, ok := paths[tpl].(map[string]any)
			if !ok || item[strings.ToLower(m)] == nil {
				t.Errorf("%s %s is served but not in openapi.json", m, tpl)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	documented := 0
	for _, item := range paths {
		documented += len(item.(map[string]any))
	}
	want := 2 + 4 // the probes and the console (GET and HEAD of / and /assets/{file}), outside the prefixes and the table
	for _, rt := range s.routes {
		if rt.Root {
			want++
		} else {
			want += len(Prefixes)
		}
	}
	if served != documented || served != want {
		t.Fatalf("served %d, documented %d, table %d", served, documented, len(s.routes))
	}
}

func TestListPagingAndSummaryFromTheDatabase(t *testing.T) {
	forDrivers(t, func(t *testing.T, d string) {
		s, toks := testServer(t, d)
		ctx := context.Background()
		base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
		for i := 0; i < 120; i++ {
			typ := []string{"full", "incremental", "differential"}[i%3]
			s.Store.PutBackup(ctx, &models.Backup{ID: "backup-" + string(rune('a'+i/26)) + string(rune('a'+i%26)), Type: typ,
				Status: "completed", Timestamp: base.Add(time.Duration(i) * time.Hour), SizeBytes: 1e9, CompressedBytes: 5e8,
				DurationSeconds: 90, Components: models.Strings{"data"}, Locations: models.Strings{"local"}, Encryption: "AES-256"})
		}
		res, m := call(t, s, "GET", "/v1/cloud-integration/backup/list?limit=50&page=3&type=full", toks["viewer"], nil)
		if res.StatusCode != 200 {
			t.Fatalf("%d %v", res.StatusCode, m)
		}
		pg := m["pagination"].(map[string]any)
		if pg["total"] != 40.0 || pg["total_pages"] != 1.0 || pg["page"] != 3.0 || len(m["backups"].([]any)) != 0 {
			t.Fatalf("pagination %v", pg)
		}
		_, m = call(t, s, "GET", "/v1/cloud-integration/backup/list?limit=5", toks["viewer"], nil)
		b0 := m["backups"].([]any)[0].(map[string]any)
		sum := m["summary"].(map[string]any)
		if b0["size"] != "1.0 GB" || b0["size_bytes"] != 1e9 || b0["duration"] != "1m 30s" || b0["timestamp"] != "2025-03-05 23:00:00" ||
			b0["components"].(map[string]any)["data"] != true || b0["components"].(map[string]any)["logs"] != false {
			t.Fatalf("backup entry %v", b0)
		}
		if sum["full_backups"] != 40.0 || sum["total_size"] != "120 GB" || sum["compressed_size_bytes"] != 6e10 {
			t.Fatalf("summary %v", sum)
		}
		_, m = call(t, s, "GET", "/v1/cloud-integration/backup/list?since=2025-03-05T00:00:00Z&until=2025-03-05T09:00:00Z", toks["viewer"], nil)
		if m["pagination"].(map[string]any)["total"] != 10.0 {
			t.Fatalf("since/until: %v", m["pagination"])
		}
	})
}

// With the worker in this process (backupd all), a component whose
// sources are missing is refused before anything starts.
func TestMissingSourcesAreRefusedWithALocalWorker(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	s.LocalWorker = true
	s.Cfg.Components["gone"] = config.Component{Paths: []string{"/nonexistent/backupd-test"}}
	res, m := call(t, s, "POST", "/cloud-integration/backup/create", toks["operator"], strings.NewReader(`{"components": {"gone": true}}`))
	if res.StatusCode != 400 || m["code"] != "BACKUP_003" || m["details"].(map[string]any)["field"] != "components.gone" ||
		!strings.Contains(m["message"].(string), "/nonexistent/backupd-test") {
		t.Fatalf("%d %v", res.StatusCode, m)
	}
}

// A database restore target is a plain name: nothing the client tools
// could read as a connection string or an option.
func TestDatabaseTargetNamesAreChecked(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	s.Cfg.Components["db"] = config.Component{Databases: []config.Database{{Name: "app", Kind: "postgresql", Database: "app"}}}
	s.Store.PutBackup(context.Background(), &models.Backup{ID: "backup-db", Type: "full", Status: "completed", Timestamp: time.Now(),
		Components: models.Strings{"db"}, Locations: models.Strings{"local"}})
	for _, target := range []string{"database:host=evil.example", "database:-eDROP\\tDATABASE\\tx", "database:a b", "database:", "database:app"} {
		body := `{"backup_id": "backup-db", "components": {"db": true}, "target_location": "` + target + `"}`
		res, m := call(t, s, "POST", "/cloud-integration/backup/restore", toks["admin"], strings.NewReader(body))
		if res.StatusCode != 400 || m["details"].(map[string]any)["field"] != "target_location" {
			t.Errorf("target %q: %d %v", target, res.StatusCode, m)
		}
	}
	// protecting needs an admin
	res, _ := call(t, s, "POST", "/cloud-integration/backup/create", toks["operator"], strings.NewReader(`{"components": {"data": true}, "protected": true}`))
	if res.StatusCode != 403 {
		t.Errorf("operator creating a protected backup: %d", res.StatusCode)
	}
}

// A restore into a non-empty directory without overwrite was answered
// 200 restore_started and failed later: with the worker in this process
// it is a 409 naming the overwrite field, and no job is started.
func TestRestoreIntoANonEmptyDirectoryIsRefusedBeforeAnyJob(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, toks, id := serverWithBackup(t, backup.Component{Name: "data", Paths: []string{src}})
	ctx := context.Background()
	target := t.TempDir()
	if err := os.MkdirAll(filepath.Join(target, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "data", "keep-me"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"backup_id": %q, "restore_type": "full", "target_location": %q}`, id, target)
	res, out := call(t, s, "POST", "/cloud-integration/backup/restore", toks["admin"], strings.NewReader(body))
	if res.StatusCode != 409 || out["code"] != "BACKUP_008" || get(out, "details.field") != "overwrite" ||
		!strings.Contains(out["message"].(string), `"overwrite": true`) || len(out["suggested_actions"].([]any)) == 0 ||
		!strings.HasPrefix(out["message"].(string), filepath.Join(target, "data")+",") || get(out, "details.directory") != filepath.Join(target, "data") {
		t.Fatalf("%d %v", res.StatusCode, out)
	}
	if js, err := s.Store.ListJobs(ctx, models.JobFilter{Limit: 10}); err != nil || len(js) != 0 {
		t.Fatalf("a refused restore left jobs: %v %v", js, err)
	}
}

// An unknown report id is a 404 that names what was looked for (the
// repair report's said `no  "REPAIR-1"`).
func TestUnknownReportsNameWhatWasAskedFor(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	for path, want := range map[string]string{
		"/cloud-integration/backup/verify/report/VERIFY-1":   `no verification "VERIFY-1"`,
		"/cloud-integration/backup/cleanup/report/CLEANUP-1": `no cleanup "CLEANUP-1"`,
		"/cloud-integration/backup/repair/report/REPAIR-1":   `no repair "REPAIR-1"`,
	} {
		res, m := call(t, s, "GET", path, toks["viewer"], nil)
		if res.StatusCode != 404 || m["message"] != want {
			t.Errorf("%s: %d %v", path, res.StatusCode, m["message"])
		}
	}
}
