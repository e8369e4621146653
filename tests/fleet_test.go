package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"gopkg.in/yaml.v3"

	"backupd/config"
	"backupd/tlspin"
)

// fleetHost is one enrolled host's worker process: its own var
// directory, configuration and data.
type fleetHost struct {
	t    *testing.T
	name string
	dir  string
	cfg  string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	code int
}

func newFleetHost(t *testing.T, s *apiStack, name string) *fleetHost {
	return newFleetHostWith(t, s, name, nil)
}

// newFleetHostWith is newFleetHost with mod applied to the host's
// configuration.
func newFleetHostWith(t *testing.T, s *apiStack, name string, mod func(*config.Config)) *fleetHost {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	os.WriteFile(filepath.Join(data, "hello.txt"), []byte("host "+name+"\n"), 0o644)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("host-"+name+"-password\n"), 0o600)
	cfg := config.Config{Host: name, VarDir: filepath.Join(dir, "var"), PasswordFile: pw, Primary: "local",
		Temporal:   config.Temporal{Address: "127.0.0.1:1", Namespace: "default"}, // unused: an enrolled host reaches Temporal through the server
		Components: map[string]config.Component{"data": {Paths: []string{data}}},
		Storage:    map[string]config.Location{"local": {URL: filepath.Join(dir, "backups")}}}
	if mod != nil {
		mod(&cfg)
	}
	b, _ := yaml.Marshal(&cfg)
	p := filepath.Join(dir, "host.yaml")
	os.WriteFile(p, b, 0o600)
	return &fleetHost{t: t, name: name, dir: dir, cfg: p}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// start runs `backupd worker` for the host with extra arguments and
// environment; wait reports how it ended.
func (h *fleetHost) start(bin string, env []string, args ...string) {
	h.out.Reset()
	h.cmd = exec.Command(bin, append([]string{"worker", "--config", h.cfg}, args...)...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "BACKUPD_") {
			h.cmd.Env = append(h.cmd.Env, e)
		}
	}
	h.cmd.Env = append(h.cmd.Env, append(env, "BACKUPD_TEST_KDF=1", "BACKUPD_ANNOUNCE_EVERY=300ms")...)
	w := lockedWriter{&h.mu, &h.out}
	h.cmd.Stdout, h.cmd.Stderr = w, w
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.done = make(chan struct{})
	cmd := h.cmd
	go func() {
		cmd.Wait()
		h.code = cmd.ProcessState.ExitCode()
		close(h.done)
	}()
	h.t.Cleanup(h.stop)
}

func (h *fleetHost) output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.String()
}

// exited waits up to d for the worker to end and returns its exit code
// and output; -1 if it is still running.
func (h *fleetHost) exited(d time.Duration) (int, string) {
	select {
	case <-h.done:
		return h.code, h.output()
	case <-time.After(d):
		return -1, h.output()
	}
}

func (h *fleetHost) stop() {
	if h.cmd == nil || h.done == nil {
		return
	}
	select {
	case <-h.done:
		return
	default:
	}
	h.cmd.Process.Signal(os.Interrupt)
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		h.cmd.Process.Kill()
		<-h.done
	}
}

// TestFleetEnrolmentOverTLS: an admin makes enrolment tokens; hosts
// enrol over HTTPS with the server's certificate pinned, run their
// workers on their own task queues and show online; a token works once;
// a wrong pin is refused before the token is sent; a host whose pin no
// longer matches the server refuses it; a revoked host's worker stops and
// cannot start again.
func TestFleetEnrolmentOverTLS(t *testing.T) {
	s, certFile := startTLSStack(t)

	// an operator cannot make enrolment tokens; an admin can
	if r := s.cli(t, "operator", "host", "enrol-token", "--ca-file", certFile); r.code != 1 || !strings.Contains(r.stderr, "admin") {
		t.Fatalf("operator enrol-token: %v", r)
	}
	r := s.cliOK(t, "admin", "host", "enrol-token", "--label", "site=berlin", "--ca-file", certFile)
	tokenA := strings.TrimSpace(r.stdout)
	fp := regexp.MustCompile(`--server-fingerprint (sha256:[0-9a-f]{64})`).FindStringSubmatch(r.stderr)
	if !strings.HasPrefix(tokenA, "bke_") || fp == nil || !strings.Contains(r.stderr, "BACKUPD_ENROL_TOKEN="+tokenA+" backupd worker --enrol "+s.base) {
		t.Fatalf("enrol-token: %v", r)
	}
	pin := fp[1]

	// a wrong pin: refused before the token leaves the host
	a := newFleetHost(t, s, "gw-a")
	wrong := "sha256:" + strings.Repeat("0", 64)
	a.start(s.bin, []string{"BACKUPD_ENROL_TOKEN=" + tokenA}, "--enrol", s.base, "--server-fingerprint", wrong, "--name", "gw-a")
	if code, out := a.exited(30 * time.Second); code != 1 || !strings.Contains(out, "not the pinned one") || !strings.Contains(out, pin) {
		t.Fatalf("enrolment with a wrong pin: exit %d\n%s", code, out)
	}
	// the right pin: enrolled, then running as gw-a's worker
	a.start(s.bin, []string{"BACKUPD_ENROL_TOKEN=" + tokenA}, "--enrol", s.base, "--server-fingerprint", pin, "--name", "gw-a")
	var host obj
	waitFor(t, 60*time.Second, "gw-a online", func() bool {
		_, host = s.do("GET", "/cloud-integration/backup/hosts/gw-a", "viewer", nil)
		return host["state"] == "online"
	})
	if !strings.Contains(a.output(), "task queue backup@gw-a") || get(host, "labels.site") != "berlin" ||
		len(host["components"].([]any)) != 1 {
		t.Fatalf("gw-a: %v\n%s", host, a.output())
	}
	st, err := os.Stat(filepath.Join(a.dir, "var", "host", "enrolment.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("enrolment state: %v %v", st, err)
	}
	// a backup on gw-a: its worker runs it, through the server, into
	// gw-a's own repository; then an incremental one
	const v1 = "/cloud-integration/backup"
	if st, body := s.do("POST", v1+"/create", "operator", map[string]any{"host": "gw-a", "components": map[string]bool{"nope": true}}); st != 400 ||
		!strings.Contains(jsonText(body), "it reports: data") {
		t.Fatalf("a component gw-a does not have: %d %v", st, body)
	}
	if st, body := s.do("POST", v1+"/create", "operator", map[string]any{"host": "gw-zz", "components": map[string]bool{"data": true}}); st != 400 {
		t.Fatalf("an unknown host: %d %v", st, body)
	}
	var firstID string
	for _, typ := range []string{"full", "incremental"} {
		cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"host": "gw-a", "type": typ,
			"components": map[string]bool{"data": true}, "storage_locations": []string{"local"}})
		pr := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string))
		if pr["status"] != "completed" {
			b, _ := os.ReadFile(s.logPath)
			t.Fatalf("%s backup on gw-a: %v\nworker:\n%s\nserver:\n%s", typ, pr, a.output(), tail(string(b), 3000))
		}
		id := cr["backup_id"].(string)
		if firstID == "" {
			firstID = id
		}
		// the details read the manifest from gw-a's repository
		d := s.must(200, "GET", v1+"/details/"+id, "viewer", nil)
		loc := get(d, "storage.locations").([]any)[0].(map[string]any)
		if get(d, "metadata.host") != "gw-a" || loc["manifest_error"] != nil || loc["checksum"] == "" || get(d, "integrity.signature") != "verified" {
			t.Fatalf("details of gw-a's backup: %v", d)
		}
		// its file tree can be browsed
		tree := s.must(200, "GET", v1+"/tree/"+id+"?component=data&path="+url.QueryEscape(filepath.Join(a.dir, "data")), "operator", nil)
		if !strings.Contains(jsonText(tree), "hello.txt") {
			t.Fatalf("tree of gw-a's backup: %v", tree)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(s.cfgPath), "backups", "hosts", host["id"].(string), "manifests", id)); err != nil {
			t.Fatalf("gw-a's backup %s is not in its own repository: %v", id, err)
		}
	}
	// the command-line client backs a host up too
	r = s.cliOK(t, "operator", "backup", "create", "--host", "gw-a", "--components", "data", "--locations", "local", "--wait", "--ca-file", certFile)
	mustContain(t, r, "stdout", " completed in ")
	waitFor(t, 10*time.Second, "gw-a's three backups in the host list", func() bool {
		_, host = s.do("GET", v1+"/hosts/gw-a", "viewer", nil)
		return get(host, "last_backups.data.backup_id") != nil && get(host, "backups") == 3.0 && get(host, "storage_bytes").(float64) > 0
	})
	// gw-a's worker reaches Temporal only through the server's host
	// gateway; with gw-a's credential there, a compromised gw-a can start,
	// list or signal nothing, nor poll another queue
	if !strings.Contains(a.output(), "through the host gateway of "+s.base) {
		t.Fatalf("gw-a's worker does not use the host gateway:\n%s", a.output())
	}
	var est struct {
		Credential string `json:"credential"`
		Namespace  string `json:"temporal_namespace"`
	}
	if b, err := os.ReadFile(filepath.Join(a.dir, "var", "host", "enrolment.json")); err != nil || json.Unmarshal(b, &est) != nil {
		t.Fatalf("enrolment state: %v", err)
	}
	u, _ := url.Parse(s.base)
	hc, err := client.Dial(client.Options{HostPort: u.Host, Namespace: est.Namespace, Credentials: client.NewAPIKeyStaticCredentials(est.Credential),
		ConnectionOptions: client.ConnectionOptions{TLS: tlspin.Config(pin)}})
	if err != nil {
		t.Fatalf("a Temporal client with gw-a's credential at the gateway: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	var denied *serviceerror.PermissionDenied
	_, err = hc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "not-gw-a", TaskQueue: "backupd-host-jobs"}, "CleanupWorkflow", map[string]any{})
	if !errors.As(err, &denied) {
		t.Errorf("gw-a started a workflow through the gateway: %v", err)
	}
	if _, err = hc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: est.Namespace}); !errors.As(err, &denied) {
		t.Errorf("gw-a listed workflows through the gateway: %v", err)
	}
	if err = hc.SignalWorkflow(ctx, "backup:gw-a:data", "", "pause", nil); !errors.As(err, &denied) {
		t.Errorf("gw-a signalled a workflow through the gateway: %v", err)
	}
	cancel()
	hc.Close()
	// without a host's credential the gateway answers nothing
	if bad, err := client.Dial(client.Options{HostPort: u.Host, Namespace: est.Namespace, Credentials: client.NewAPIKeyStaticCredentials("bkd_not-a-host"),
		ConnectionOptions: client.ConnectionOptions{TLS: tlspin.Config(pin)}}); err == nil {
		bad.Close()
		t.Error("a Temporal client without a host credential connected through the gateway")
	}

	// the server verifies a host's backup in the host's repository (the
	// host cannot read it), on request and after a backup that asks
	vr := s.must(200, "POST", v1+"/verify", "operator", map[string]any{"backup_id": firstID, "extract_test": true})
	if rep := s.waitJob(t, vr["report_url"].(string)); rep["passed"] != true {
		b, _ := os.ReadFile(s.logPath)
		t.Fatalf("verification of gw-a's backup: %v\nserver:\n%s", rep, tail(string(b), 3000))
	}
	cv := s.must(200, "POST", v1+"/create", "operator", map[string]any{"host": "gw-a", "components": map[string]bool{"data": true},
		"storage_locations": []string{"local"}, "verify_after_completion": true})
	if pr := s.waitJob(t, v1+"/progress?job_id="+cv["job_id"].(string)); pr["status"] != "completed" || pr["outcome"] != "completed" {
		t.Fatalf("gw-a's backup verified after completion: %v\n%s", pr, a.output())
	}
	waitFor(t, 10*time.Second, "gw-a's verified backup in the list", func() bool {
		l := s.must(200, "GET", v1+"/list?host=gw-a&limit=100", "viewer", nil)
		for _, b := range l["backups"].([]any) {
			if m := b.(map[string]any); m["id"] == cv["backup_id"] {
				return m["integrity_check"] == "passed"
			}
		}
		return false
	})

	// a hard quota gw-a's backups are past refuses its next backup; a
	// soft one warns
	if st, body := s.do("PUT", v1+"/hosts/gw-a/quota", "operator", map[string]any{"soft_bytes": 1, "hard_bytes": 2}); st != 403 {
		t.Fatalf("an operator set a quota: %d %v", st, body)
	}
	q := s.must(200, "PUT", v1+"/hosts/gw-a/quota", "admin", map[string]any{"soft_bytes": 1, "hard_bytes": 2})
	if get(q, "quota.state") != "exceeded" {
		t.Fatalf("quota: %v", q)
	}
	if st, body := s.do("POST", v1+"/create", "operator", map[string]any{"host": "gw-a", "components": map[string]bool{"data": true}, "storage_locations": []string{"local"}}); st != 507 ||
		!strings.Contains(jsonText(body), "over its hard quota") || body["code"] != "BACKUP_001" {
		t.Fatalf("a backup past the hard quota: %d %v", st, body)
	}
	s.must(200, "PUT", v1+"/hosts/gw-a/quota", "admin", map[string]any{"soft_bytes": 1, "hard_bytes": 0})
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"host": "gw-a", "components": map[string]bool{"data": true}, "storage_locations": []string{"local"}})
	if !strings.Contains(jsonText(cr["warnings"]), "past its soft quota") {
		t.Fatalf("a backup past the soft quota: %v", cr)
	}
	if pr := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string)); pr["status"] != "completed" {
		t.Fatalf("gw-a's backup past the soft quota: %v", pr)
	}
	// more than one location: written by the host to the first, copied
	// by the server to the others
	cr = s.must(200, "POST", v1+"/create", "operator", map[string]any{"host": "gw-a", "components": map[string]bool{"data": true}, "storage_locations": []string{"local", "cloud"}})
	if jsonText(cr["storage_locations"]) != `["local","cloud"]` {
		t.Fatalf("a host's backup to two locations: %v", cr)
	}
	if pr := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string)); pr["status"] != "completed" {
		t.Fatalf("gw-a's backup asked for two locations: %v", pr)
	}
	r = s.cliOK(t, "admin", "host", "quota", "gw-a", "--soft", "0", "--hard", "0", "--ca-file", certFile)
	mustContain(t, r, "stdout", "host gw-a: soft quota 0 B, hard quota 0 B (ok now)")
	r = s.cliOK(t, "viewer", "backup", "list", "--host", "gw-a", "--ca-file", certFile)
	if n := strings.Count(r.stdout, "backup-"); n != 6 {
		t.Fatalf("backup list --host gw-a: %d backups\n%s", n, r.stdout)
	}

	// lists by host
	if l := s.must(200, "GET", v1+"/list?host=gw-a", "viewer", nil); get(l, "pagination.total") != 6.0 {
		t.Fatalf("gw-a's backups: %v", l)
	}
	if l := s.must(200, "GET", v1+"/list?host=apitest", "viewer", nil); get(l, "pagination.total") != 0.0 {
		t.Fatalf("the server's own host's backups: %v", l)
	}
	if js := s.must(200, "GET", v1+"/jobs?host="+host["id"].(string), "viewer", nil); len(js["jobs"].([]any)) != 7 { // six backups and a verification
		t.Fatalf("gw-a's jobs: %v", js)
	}
	if st, _ := s.do("GET", v1+"/list?host=gw-zz", "viewer", nil); st != 400 {
		t.Fatalf("list of an unknown host: %d", st)
	}

	// the server's own repository holds none of gw-a's backups
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.cfgPath), "backups", "manifests", firstID)); err == nil {
		t.Fatal("gw-a's backup landed in the server's own repository")
	}

	// the token is spent: a second host cannot use it
	b := newFleetHost(t, s, "gw-b")
	b.start(s.bin, []string{"BACKUPD_ENROL_TOKEN=" + tokenA}, "--enrol", s.base, "--server-fingerprint", pin, "--name", "gw-b")
	if code, out := b.exited(30 * time.Second); code != 1 || !strings.Contains(out, "already used") {
		t.Fatalf("a spent token: exit %d\n%s", code, out)
	}

	// gw-b with a token of its own, pinned on first use (no fingerprint given)
	tokenB := strings.TrimSpace(s.cliOK(t, "admin", "host", "enrol-token", "--name", "gw-b", "--ca-file", certFile).stdout)
	b.start(s.bin, []string{"BACKUPD_ENROL_TOKEN=" + tokenB}, "--enrol", s.base)
	waitFor(t, 60*time.Second, "gw-b online", func() bool {
		_, h := s.do("GET", "/cloud-integration/backup/hosts/gw-b", "viewer", nil)
		return h["state"] == "online"
	})
	if out := b.output(); !strings.Contains(out, "pinning the certificate") || !strings.Contains(out, pin) {
		t.Fatalf("trust on first use is not said:\n%s", out)
	}
	var list struct {
		Hosts []struct{ Name, State string } `json:"hosts"`
		Total int                            `json:"total"`
	}
	s.cliJSON(t, &list, "/cloud-integration/backup/hosts", "viewer", "host", "list", "--ca-file", certFile)
	if list.Total != 3 {
		t.Fatalf("hosts: %+v (want the server's own, gw-a and gw-b)", list)
	}

	// a backup of gw-b while its worker is down waits, and runs when the
	// worker returns
	b.stop()
	if _, h := s.do("GET", v1+"/hosts/gw-b", "viewer", nil); h["state"] != "offline" {
		t.Fatalf("gw-b right after its worker stopped: %v", h)
	}
	cr = s.must(200, "POST", v1+"/create", "operator", map[string]any{"host": "gw-b", "components": map[string]bool{"data": true}, "storage_locations": []string{"local"}})
	time.Sleep(2 * time.Second)
	if pr := s.must(200, "GET", v1+"/progress?job_id="+cr["job_id"].(string), "viewer", nil); pr["status"] != "queued" ||
		!strings.Contains(jsonText(pr), "host gw-b is offline") {
		t.Fatalf("a backup of an offline host: %v", pr)
	}
	b.start(s.bin, nil)
	if pr := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string)); pr["status"] != "completed" {
		t.Fatalf("gw-b's backup after its worker returned: %v\n%s", pr, b.output())
	}

	// gw-a's backup restored on gw-a, then on gw-b (the replacement of a
	// lost gateway): byte for byte, each under a grant that ends with its
	// restore (the grants' key entries are gone afterwards)
	keysDir := filepath.Join(filepath.Dir(s.cfgPath), "backups", "hosts", host["id"].(string), "keys")
	keysBefore, _ := os.ReadDir(keysDir)
	want, _ := os.ReadFile(filepath.Join(a.dir, "data", "hello.txt"))
	for _, on := range []*fleetHost{a, b} {
		target := filepath.Join(on.dir, "restored")
		if st, body := s.do("POST", v1+"/restore", "operator", map[string]any{"backup_id": firstID, "host": on.name, "target_location": target}); st != 403 {
			t.Fatalf("an operator restored a host's backup: %d %v", st, body)
		}
		rr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": firstID, "host": on.name, "target_location": target})
		if rr["host"] != on.name || (on == b) != strings.Contains(jsonText(rr["warnings"]), "under a grant") {
			t.Fatalf("restore of gw-a's backup on %s: %v", on.name, rr)
		}
		if pr := s.waitJob(t, v1+"/restore/progress?job_id="+rr["job_id"].(string)); pr["status"] != "completed" {
			b, _ := os.ReadFile(s.logPath)
			t.Fatalf("restore of gw-a's backup on %s: %v\nworker:\n%s\nserver:\n%s", on.name, pr, on.output(), tail(string(b), 3000))
		}
		got, err := os.ReadFile(filepath.Join(target, "data", a.dir, "data", "hello.txt"))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("gw-a's file restored on %s: %q %v, want %q", on.name, got, err, want)
		}
		waitFor(t, 20*time.Second, "the restore grant's key entry removed", func() bool {
			k, _ := os.ReadDir(keysDir)
			return len(k) == len(keysBefore)
		})
	}
	if st, body := s.do("POST", v1+"/restore", "admin", map[string]any{"backup_id": firstID, "host": "gw-zz", "target_location": "/tmp/x"}); st != 400 {
		t.Fatalf("a restore on an unknown host: %d %v", st, body)
	}

	// gw-b's pinned certificate no longer matches: it refuses the server
	b.stop()
	sp := filepath.Join(b.dir, "var", "host", "enrolment.json")
	raw, _ := os.ReadFile(sp)
	var state map[string]any
	json.Unmarshal(raw, &state)
	state["server_fingerprint"] = wrong
	raw, _ = json.Marshal(state)
	os.WriteFile(sp, raw, 0o600)
	b.start(s.bin, nil)
	if code, out := b.exited(30 * time.Second); code != 1 || !strings.Contains(out, "identity changed") {
		t.Fatalf("a changed server: exit %d\n%s", code, out)
	}

	// revoked: the running worker stops, and cannot start again
	r = s.cliOK(t, "admin", "host", "revoke", "gw-a", "--ca-file", certFile)
	mustContain(t, r, "stdout", "revoked")
	if code, out := a.exited(30 * time.Second); code != 1 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoked host's worker: exit %d\n%s", code, out)
	}
	a.start(s.bin, nil)
	if code, out := a.exited(30 * time.Second); code != 1 || !strings.Contains(out, "enrol the host again") {
		t.Fatalf("revoked host's worker restarted: exit %d\n%s", code, out)
	}
	_, host = s.do("GET", "/cloud-integration/backup/hosts/gw-a", "viewer", nil)
	if host["state"] != "revoked" {
		t.Fatalf("gw-a after revocation: %v", host)
	}
	// the audit log names who enrolled and revoked
	_, audit := s.do("GET", "/cloud-integration/backup/audit?action=host.revoke", "admin", nil)
	if get(audit, "pagination.total") != 1.0 {
		t.Fatalf("audit: %v", audit)
	}
}

// jsonText is v as JSON, for looking for words in an answer.
func jsonText(v any) string { b, _ := json.Marshal(v); return string(b) }
