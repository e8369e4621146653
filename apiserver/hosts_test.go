package apiserver

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"backupd/models"
)

var (
	hostKeyOnce sync.Once
	hostKeyPEM  string
)

// testHostKey is a 3072-bit RSA public key in PEM (made once: it takes
// a moment).
func testHostKey(t *testing.T) string {
	hostKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 3072)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		hostKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	})
	return hostKeyPEM
}

func jsonBody(v any) *strings.Reader {
	b, _ := json.Marshal(v)
	return strings.NewReader(string(b))
}

func TestHostEnrolmentAnnounceRotateRevoke(t *testing.T) {
	forDrivers(t, func(t *testing.T, d string) {
		s, toks := testServer(t, d)
		const base = "/cloud-integration/backup/hosts"

		// only an admin makes enrolment tokens
		res, body := call(t, s, "POST", base+"/enrolments", toks["operator"], jsonBody(map[string]any{}))
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("operator made an enrolment token: %d %v", res.StatusCode, body)
		}
		res, body = call(t, s, "POST", base+"/enrolments", toks["admin"], jsonBody(map[string]any{"labels": map[string]string{"site": "berlin"}, "valid_hours": 2}))
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("enrolment: %d %v", res.StatusCode, body)
		}
		enrolToken := body["token"].(string)
		if !strings.HasPrefix(enrolToken, models.EnrolmentPrefix) || !strings.Contains(body["command"].(string), "backupd worker --enrol http://") {
			t.Fatalf("enrolment answer %v", body)
		}
		for _, bad := range []map[string]any{
			{"name": "enrolments"}, {"name": "-x"}, {"name": strings.Repeat("a", 64)}, {"valid_hours": 0}, {"valid_hours": 10000},
			{"labels": map[string]string{"bad key": "x"}},
		} {
			if res, body := call(t, s, "POST", base+"/enrolments", toks["admin"], jsonBody(bad)); res.StatusCode != http.StatusBadRequest {
				t.Errorf("enrolment %v: %d %v", bad, res.StatusCode, body)
			}
		}

		req := map[string]any{"token": enrolToken, "name": "gw-berlin-01", "hardware_id": "hw-1", "os": "linux", "version": "1.0",
			"components": []map[string]any{{"name": "data", "kind": "files", "paths": []string{"/srv"}}}, "public_key": testHostKey(t)}
		// a weak key and a wrong token are refused, and do not spend the token
		weak, _ := rsa.GenerateKey(rand.Reader, 1024)
		der, _ := x509.MarshalPKIXPublicKey(&weak.PublicKey)
		req["public_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		if res, body := call(t, s, "POST", base+"/enrol", "", jsonBody(req)); res.StatusCode != http.StatusBadRequest || !strings.Contains(body["message"].(string), "3072") {
			t.Fatalf("weak host key: %d %v", res.StatusCode, body)
		}
		req["public_key"] = testHostKey(t)
		req["token"] = models.EnrolmentPrefix + strings.Repeat("A", 43)
		if res, body := call(t, s, "POST", base+"/enrol", "", jsonBody(req)); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong enrolment token: %d %v", res.StatusCode, body)
		}
		req["token"] = enrolToken
		res, body = call(t, s, "POST", base+"/enrol", "", jsonBody(req))
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("enrol: %d %v", res.StatusCode, body)
		}
		cred, hostID := body["credential"].(string), body["host_id"].(string)
		if body["task_queue"] != "backup@gw-berlin-01" {
			t.Fatalf("enrolled %v", body)
		}
		// the token is spent
		if res, _ := call(t, s, "POST", base+"/enrol", "", jsonBody(req)); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("enrolment token used twice: %d", res.StatusCode)
		}

		// the host's credential opens its own routes, and no other
		for _, p := range []string{"/cloud-integration/backup/list", "/cloud-integration/backup/hosts", "/cloud-integration/backup/status"} {
			if res, _ := call(t, s, "GET", p, cred, nil); res.StatusCode != http.StatusForbidden {
				t.Errorf("host credential on %s: %d", p, res.StatusCode)
			}
		}
		res, body = call(t, s, "POST", base+"/self/announce", cred, jsonBody(map[string]any{"version": "1.1",
			"components": []map[string]any{{"name": "data", "kind": "files"}, {"name": "logs", "kind": "files"}}}))
		if res.StatusCode != http.StatusOK || body["host_id"] != hostID {
			t.Fatalf("announce: %d %v", res.StatusCode, body)
		}

		// listed, online, with its labels and what it announced
		res, body = call(t, s, "GET", base+"?labels=site=berlin", toks["viewer"], nil)
		if res.StatusCode != http.StatusOK || body["total"] != float64(1) {
			t.Fatalf("hosts by label: %d %v", res.StatusCode, body)
		}
		h := body["hosts"].([]any)[0].(map[string]any)
		if h["name"] != "gw-berlin-01" || h["state"] != "online" || h["version"] != "1.1" || len(h["components"].([]any)) != 2 {
			t.Fatalf("host %v", h)
		}
		res, body = call(t, s, "GET", base, toks["viewer"], nil)
		if res.StatusCode != http.StatusOK || body["total"] != float64(2) {
			t.Fatalf("hosts: %d %v (want the server's own and the enrolled one)", res.StatusCode, body)
		}
		if res, body := call(t, s, "GET", base+"?state=bogus", toks["viewer"], nil); res.StatusCode != http.StatusBadRequest {
			t.Fatalf("state=bogus: %d %v", res.StatusCode, body)
		}

		// a host's backups show under it
		now := time.Now().UTC()
		if err := s.Store.PutBackup(context.Background(), &models.Backup{ID: "backup-gw-1", Type: "full", Status: "completed",
			Timestamp: now, Host: "gw-berlin-01", Components: models.Strings{"data"}, AddedBytes: 1234}); err != nil {
			t.Fatal(err)
		}
		s.htot.val = nil
		res, body = call(t, s, "GET", base+"/gw-berlin-01", toks["viewer"], nil)
		if res.StatusCode != http.StatusOK || body["storage_bytes"] != float64(1234) || body["last_backups"].(map[string]any)["data"] == nil {
			t.Fatalf("host by name: %d %v", res.StatusCode, body)
		}

		// rotation: the old credential stops
		res, body = call(t, s, "POST", base+"/self/credential", cred, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("rotate: %d %v", res.StatusCode, body)
		}
		cred2 := body["credential"].(string)
		if res, _ := call(t, s, "POST", base+"/self/announce", cred, jsonBody(map[string]any{})); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("old credential after rotation: %d", res.StatusCode)
		}

		// revocation by an admin only; the server's own host cannot be
		if res, _ := call(t, s, "DELETE", base+"/"+hostID, toks["operator"], nil); res.StatusCode != http.StatusForbidden {
			t.Fatalf("operator revoked a host: %d", res.StatusCode)
		}
		if res, body := call(t, s, "DELETE", base+"/h", toks["admin"], nil); res.StatusCode != http.StatusConflict {
			t.Fatalf("revoking the server's own host: %d %v", res.StatusCode, body)
		}
		res, body = call(t, s, "DELETE", base+"/"+hostID, toks["admin"], nil)
		if res.StatusCode != http.StatusOK || body["status"] != "revoked" {
			t.Fatalf("revoke: %d %v", res.StatusCode, body)
		}
		res, body = call(t, s, "POST", base+"/self/announce", cred2, jsonBody(map[string]any{}))
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(body["message"].(string), "enrol") {
			t.Fatalf("revoked host announced: %d %v", res.StatusCode, body)
		}
		res, body = call(t, s, "GET", base+"/"+hostID, toks["viewer"], nil)
		if body["state"] != "revoked" || body["revoked"] == nil {
			t.Fatalf("revoked host shows %v", body)
		}
		_, enr2, _ := s.Store.CreateEnrolment(context.Background(), "", nil, "test", time.Hour)
		res, body = call(t, s, "GET", base+"/enrolments", toks["admin"], nil)
		if res.StatusCode != http.StatusOK || len(body["enrolments"].([]any)) != 2 {
			t.Fatalf("enrolments: %d %v", res.StatusCode, body)
		}
		if res, body := call(t, s, "DELETE", base+"/enrolments/"+enr2.ID, toks["admin"], nil); res.StatusCode != http.StatusOK {
			t.Fatalf("cancel enrolment: %d %v", res.StatusCode, body)
		}
	})
}

// The open enrolment route: the server's own name is refused, and a
// source that keeps failing is slowed down before each attempt costs an
// audit entry.
func TestEnrolmentRouteIsBounded(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	const base = "/cloud-integration/backup/hosts"
	_, body := call(t, s, "POST", base+"/enrolments", toks["admin"], jsonBody(map[string]any{}))
	tok := body["token"].(string)
	res, body := call(t, s, "POST", base+"/enrol", "", jsonBody(map[string]any{"token": tok, "name": "h", "public_key": testHostKey(t)}))
	if res.StatusCode != http.StatusConflict || !strings.Contains(body["message"].(string), "server's own host") {
		t.Fatalf("enrolling as the server's own host: %d %v", res.StatusCode, body)
	}
	// a token whose enrolment names the host: the name the host gives
	// (its hostname, which may be the server's) does not matter
	_, body = call(t, s, "POST", base+"/enrolments", toks["admin"], jsonBody(map[string]any{"name": "gw-named"}))
	res, body = call(t, s, "POST", base+"/enrol", "", jsonBody(map[string]any{"token": body["token"], "name": "h", "public_key": testHostKey(t)}))
	if res.StatusCode != http.StatusCreated || body["name"] != "gw-named" {
		t.Fatalf("a named enrolment from a host that calls itself like the server: %d %v", res.StatusCode, body)
	}
	s.limiter = authLimiter{burst: 3, rate: 0.001}
	limited := 0
	for i := 0; i < 20; i++ {
		res, _ := call(t, s, "POST", base+"/enrol", "", jsonBody(map[string]any{"token": "bke_x", "name": "gw", "public_key": "x"}))
		if res.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 15 {
		t.Fatalf("only %d of 20 failing enrolments were slowed down", limited)
	}
	list, n, err := s.Store.ListAudit(context.Background(), models.AuditFilter{Action: "host.enrol"})
	if err != nil {
		t.Fatal(err)
	}
	if n > 6 {
		t.Fatalf("%d audit entries for 21 enrolment attempts (%v)", n, len(list))
	}
}

// Lists filter by host, and the list's totals are per filter (a cache
// keyed without the host once answered one host's totals for another).
func TestListsFilterByHost(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	ctx := context.Background()
	enr, _, _ := s.Store.CreateEnrolment(ctx, "", nil, "test", time.Hour)
	if _, err := s.Store.Enrol(ctx, enr, &models.Host{ID: models.NewHostID(), Name: "gw-x"}); err != nil {
		t.Fatal(err)
	}
	for i, host := range []string{"h", "h", "", "gw-x"} {
		s.Store.PutBackup(ctx, &models.Backup{ID: fmt.Sprintf("backup-%d", i), Type: "full", Status: "completed",
			Timestamp: time.Now().Add(-time.Duration(i+1) * time.Minute), Host: host})
	}
	s.Store.PutJob(ctx, &models.Job{ID: "J1", Type: "backup", Status: "completed", Started: time.Now(), Host: "gw-x"})
	s.Store.PutJob(ctx, &models.Job{ID: "J2", Type: "backup", Status: "completed", Started: time.Now()})
	for _, c := range []struct {
		q    string
		want float64
	}{{"", 4}, {"?host=h", 3}, {"?host=gw-x", 1}, {"?host=h", 3}} {
		q, want := c.q, c.want
		_, out := call(t, s, "GET", "/cloud-integration/backup/list"+q, toks["viewer"], nil)
		if got := out["pagination"].(map[string]any)["total"]; got != want {
			t.Errorf("list%s: total %v, want %v", q, got, want)
		}
	}
	for q, want := range map[string]int{"?host=gw-x": 1, "?host=h": 1, "": 2} {
		_, out := call(t, s, "GET", "/cloud-integration/backup/jobs"+q, toks["viewer"], nil)
		if got := len(out["jobs"].([]any)); got != want {
			t.Errorf("jobs%s: %d, want %d", q, got, want)
		}
	}
	if res, _ := call(t, s, "GET", "/cloud-integration/backup/list?host=nope", toks["viewer"], nil); res.StatusCode != 400 {
		t.Errorf("an unknown host: %d", res.StatusCode)
	}
	// statistics count each host's backups
	for q, want := range map[string]float64{"": 4, "?host=gw-x": 1, "?host=h": 3} {
		_, out := call(t, s, "GET", "/cloud-integration/backup/statistics"+q, toks["viewer"], nil)
		if got := out["summary"].(map[string]any)["total_backups"]; got != want {
			t.Errorf("statistics%s: %v backups, want %v", q, got, want)
		}
	}
	// the audit log names the host a call concerned
	if res, out := call(t, s, "PUT", "/cloud-integration/backup/hosts/gw-x/quota", toks["admin"], jsonBody(map[string]any{"soft_bytes": 10, "hard_bytes": 20})); res.StatusCode != 200 {
		t.Fatalf("quota: %d %v", res.StatusCode, out)
	}
	for q, want := range map[string]float64{"?host=gw-x&action=host.quota": 1, "?host=h&action=host.quota": 0} {
		_, out := call(t, s, "GET", "/cloud-integration/backup/audit"+q, toks["admin"], nil)
		if got := out["pagination"].(map[string]any)["total"]; got != want {
			t.Errorf("audit%s: %v entries, want %v (%v)", q, got, want, out)
		}
	}
}

// An admin configures an enrolled host's files components centrally:
// refused for bad names and paths and for the server's own host; each
// change bumps the version, pending until the host announces it.
func TestCentralComponents(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	ctx := context.Background()
	enr, _, _ := s.Store.CreateEnrolment(ctx, "", nil, "test", time.Hour)
	cred, err := s.Store.Enrol(ctx, enr, &models.Host{ID: models.NewHostID(), Name: "gw-x"})
	if err != nil {
		t.Fatal(err)
	}
	put := func(body any) (int, map[string]any) {
		res, out := call(t, s, "PUT", "/cloud-integration/backup/hosts/gw-x/components", toks["admin"], jsonBody(body))
		return res.StatusCode, out
	}
	for _, bad := range []map[string]any{
		{"../x": map[string]any{"paths": []string{"/etc"}}},
		{"etc": map[string]any{"paths": []string{"etc"}}},
		{"etc": map[string]any{"paths": []string{"/etc/../root"}}},
		{"etc": map[string]any{"paths": []string{}}},
		{"etc": map[string]any{"paths": []string{"/etc"}, "exclude": []string{"[bad"}}},
	} {
		if st, out := put(map[string]any{"components": bad}); st != 400 {
			t.Errorf("%v: %d %v", bad, st, out)
		}
	}
	st, out := put(map[string]any{"components": map[string]any{"etc": map[string]any{"paths": []string{"/etc/gw"}, "exclude": []string{"*.tmp"}}}})
	if st != 200 || out["central_components_state"] != "pending" || get(out, "central_components.etc.paths") == nil {
		t.Fatalf("set: %d %v", st, out)
	}
	if res, _ := call(t, s, "PUT", "/cloud-integration/backup/hosts/"+s.Cfg.Host+"/components", toks["admin"], jsonBody(map[string]any{"components": map[string]any{}})); res.StatusCode != 409 {
		t.Errorf("the server's own host: %d", res.StatusCode)
	}
	// the host's worker gets them with its announcement, and says it runs them
	res, ans := call(t, s, "POST", "/cloud-integration/backup/hosts/self/announce", cred, jsonBody(map[string]any{}))
	if res.StatusCode != 200 || ans["central_version"] != 1.0 || get(ans, "central_components.etc.exclude") == nil {
		t.Fatalf("announce: %d %v", res.StatusCode, ans)
	}
	if res, out := call(t, s, "POST", "/cloud-integration/backup/hosts/self/announce", cred, jsonBody(map[string]any{"central_version": 2})); res.StatusCode != 400 {
		t.Errorf("a version the server never gave: %d %v", res.StatusCode, out)
	}
	call(t, s, "POST", "/cloud-integration/backup/hosts/self/announce", cred, jsonBody(map[string]any{"central_version": 1,
		"components": []map[string]any{{"name": "etc", "kind": "files", "paths": []string{"/etc/gw"}, "source": "central", "problems": []string{"/etc/gw: does not exist on this host"}}}}))
	_, h := call(t, s, "GET", "/cloud-integration/backup/hosts/gw-x", toks["viewer"], nil)
	if h["central_components_state"] != "applied" || !strings.Contains(fmt.Sprint(h["components"]), "does not exist") {
		t.Fatalf("after the announcement: %v", h)
	}
}
