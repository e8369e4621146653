package tests

// End-to-end tests of the REST and WebSocket API: the real backupd binary
// (`backupd all`: API server, catalog and worker in one process) against
// a real Temporal dev server, real local, S3 (versitygw) and SFTP storage,
// and the SQLite and PostgreSQL catalogs. Every endpoint of the spec is
// driven over HTTP and its answers checked field by field.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"gopkg.in/yaml.v3"

	"backupd/config"
	"backupd/models/modelstest"
	"backupd/storage/s3/s3test"
	"backupd/storage/sftp/sftptest"
)

func backupdBinary(t *testing.T) string {
	for _, p := range []string{os.Getenv("BACKUPD_BIN"), "../bin/backupd"} {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			if _, err := os.Stat(abs); err == nil {
				return abs
			}
		}
	}
	t.Skip("no backupd binary (make build, or set BACKUPD_BIN)")
	return ""
}

// apiStack is a running `backupd all` with its tokens.
type apiStack struct {
	t       *testing.T
	base    string // http://127.0.0.1:PORT
	cfgPath string
	src     string // the data component's directory
	tokens  map[string]string
	bin     string
	cmds    []*exec.Cmd
	logPath string
	// split runs `backupd server` and `backupd worker` as two processes;
	// with tlsCert the server speaks HTTPS/WSS
	split           bool
	tlsCert, tlsKey string
	client          *http.Client
	oas             validator.Validator // the server's openapi.json, once fetched
	oasMessage      *base.Schema        // its WebSocketMessage
	temporal        string              // the dev server's address
	secrets         []string
	s3              *s3test.Server
	// apiOnly: start waits for the API only, not for a polling worker
	apiOnly bool
}

func startAPIStack(t *testing.T, catalogDriver string) *apiStack {
	return startAPIStackWith(t, catalogDriver, func(*apiStack) {})
}

func startAPIStackWith(t *testing.T, catalogDriver string, opt func(*apiStack), cfgMods ...func(*config.Config)) *apiStack {
	bin := backupdBinary(t)
	_, taddr := devServer(t)
	s3 := s3test.StartTB(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sftp-root"), 0o700)
	sftpEnv, err := sftptest.StartEnv(filepath.Join(dir, "sftp-root"), filepath.Join(dir, "sftp-keys"), sftptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sftpEnv.Close() })
	src := filepath.Join(dir, "src")
	if out, err := exec.Command("cp", "-a", filepath.Join(goRoot, "src", "net"), src).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	conf := filepath.Join(dir, "conf")
	os.MkdirAll(conf, 0o755)
	os.WriteFile(filepath.Join(conf, "app.conf"), []byte("setting = 1\n"), 0o644)
	// small stand-ins for the spec's other components
	sys, dbs := filepath.Join(dir, "system"), filepath.Join(dir, "databases")
	os.MkdirAll(sys, 0o755)
	os.MkdirAll(dbs, 0o755)
	os.WriteFile(filepath.Join(sys, "os-release"), []byte("NAME=test\n"), 0o644)
	os.WriteFile(filepath.Join(dbs, "app.sql"), []byte("create table t (x int);\n"), 0o644)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("api-test-password\n"), 0o600)
	port := freePort(t)
	cat := config.Catalog{Driver: "sqlite", DSN: filepath.Join(dir, "catalog.db")}
	if catalogDriver == "postgres" {
		cat = config.Catalog{Driver: "postgres", DSN: modelstest.DSN(t, "postgres")}
	}
	cfg := config.Config{
		Host: "apitest", VarDir: dir, PasswordFile: pw, Primary: "local", Catalog: cat,
		API:      config.API{Listen: "127.0.0.1:" + strconv.Itoa(port)},
		Temporal: config.Temporal{Address: taddr, Namespace: "default", TaskQueue: "backup@apitest-" + strconv.Itoa(port), UIURL: "http://127.0.0.1:8233"},
		Components: map[string]config.Component{
			"data":           {Paths: []string{src}},
			"configurations": {Paths: []string{conf}},
			"system":         {Paths: []string{sys}},
			"databases":      {Paths: []string{dbs}},
		},
		Storage: map[string]config.Location{
			"local": {URL: filepath.Join(dir, "backups")},
			"cloud": {URL: "s3://apitest/cloud?endpoint=" + s3.Endpoint + "&path_style=true&region=us-east-1",
				AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Offsite: true},
			"remote": {URL: "sftp://" + sftpEnv.User + "@" + sftpEnv.Host + ":" + sftpEnv.Port + "/backups",
				SSHKey: sftpEnv.KeyFile, KnownHosts: sftpEnv.KnownHostsFile, Offsite: true},
		},
	}
	for _, mod := range cfgMods {
		mod(&cfg)
	}
	b, _ := yaml.Marshal(&cfg)
	cfgPath := filepath.Join(dir, "backupd.yaml")
	os.WriteFile(cfgPath, b, 0o600)
	s := &apiStack{t: t, base: "http://127.0.0.1:" + strconv.Itoa(port), cfgPath: cfgPath, src: src, bin: bin,
		tokens: map[string]string{}, logPath: filepath.Join(dir, "backupd.log"), client: http.DefaultClient, temporal: taddr,
		secrets: []string{s3.SecretKey, s3.AccessKey, "api-test-password"}, s3: s3}
	opt(s)
	for _, role := range []string{"viewer", "operator", "admin"} {
		out, err := exec.Command(bin, "token", "create", "--role", role, "--name", role+"-e2e", "--config", cfgPath).Output()
		if err != nil {
			t.Fatalf("token create: %v", err)
		}
		s.tokens[role] = strings.TrimSpace(string(out))
	}
	s.start()
	return s
}

func (s *apiStack) start() {
	t := s.t
	run := func(args ...string) {
		cmd := exec.Command(s.bin, args...)
		cmd.Env = append(os.Environ(), "BACKUPD_TEST_KDF=1")
		logf, _ := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s.cmds = append(s.cmds, cmd)
	}
	t.Cleanup(s.stop)
	switch {
	case s.split:
		args := []string{"server", "--config", s.cfgPath}
		if s.tlsCert != "" {
			args = append(args, "--tls-cert", s.tlsCert, "--tls-key", s.tlsKey)
		}
		run(args...)
		run("worker", "--config", s.cfgPath)
	default:
		run("all", "--config", s.cfgPath)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		// up means: the API answers and a worker polls the task queue
		req, _ := http.NewRequest("GET", s.base+"/cloud-integration/backup/status", nil)
		req.Header.Set("Authorization", "Bearer "+s.tokens["viewer"])
		res, err := s.client.Do(req)
		if err == nil {
			var st obj
			json.NewDecoder(res.Body).Decode(&st)
			res.Body.Close()
			// ... and every location has its repository (the worker creates them)
			if s.apiOnly && res.StatusCode == 200 {
				return
			}
			if get(st, "backup_system.components.workers") == 1.0 && st["status"] == "active" {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(s.logPath)
			t.Fatalf("backupd not up: %v\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *apiStack) stop() {
	for _, cmd := range s.cmds {
		cmd.Process.Signal(os.Interrupt)
	}
	for _, cmd := range s.cmds {
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	s.cmds = nil
}

// obj is a decoded JSON object with checked accessors.
type obj map[string]any

func (s *apiStack) do(method, path, role string, body any) (int, obj) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			j, _ := json.Marshal(b)
			rd = bytes.NewReader(j)
		}
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+s.tokens[role])
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	var m obj
	raw, _ := io.ReadAll(res.Body)
	if len(raw) > 0 && json.Unmarshal(raw, &m) != nil {
		s.t.Fatalf("%s %s: not JSON: %.300s", method, path, raw)
	}
	s.checkAnswer(req, res.StatusCode, res.Header, raw)
	return res.StatusCode, m
}

// must calls and requires the status.
func (s *apiStack) must(status int, method, path, role string, body any) obj {
	s.t.Helper()
	got, m := s.do(method, path, role, body)
	if got != status {
		b, _ := os.ReadFile(s.logPath)
		s.t.Fatalf("%s %s: status %d, want %d: %v\nserver log tail:\n%s", method, path, got, status, m, tail(string(b), 3000))
	}
	return m
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// fields checks that m has every key (a.b.c paths).
func fields(t *testing.T, what string, m obj, keys ...string) {
	t.Helper()
	for _, k := range keys {
		var cur any = map[string]any(m)
		for _, part := range strings.Split(k, ".") {
			mm, ok := cur.(map[string]any)
			if !ok {
				if o, ok2 := cur.(obj); ok2 {
					mm = o
				} else {
					t.Errorf("%s: %s: %q is not an object", what, k, part)
					cur = nil
					break
				}
			}
			v, ok := mm[part]
			if !ok {
				t.Errorf("%s: missing field %s", what, k)
				cur = nil
				break
			}
			cur = v
		}
	}
}

func get(m any, path string) any {
	cur := m
	for _, part := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case obj:
			cur = c[part]
		case map[string]any:
			cur = c[part]
		case []any:
			i, _ := strconv.Atoi(part)
			if i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

// wsClient collects WebSocket messages.
type wsCollector struct {
	mu   sync.Mutex
	msgs []obj
	conn *websocket.Conn
}

func (s *apiStack) websocket(t *testing.T, query string, header http.Header) *wsCollector {
	url := "ws" + strings.TrimPrefix(s.base, "http") + "/cloud-integration/ws/backup" + query
	d := *websocket.DefaultDialer
	if tr, ok := s.client.Transport.(*http.Transport); ok {
		d.TLSClientConfig = tr.TLSClientConfig
	}
	conn, res, err := d.Dial(url, header)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("websocket %s: %v (HTTP %d)", query, err, status)
	}
	c := &wsCollector{conn: conn}
	var raw [][]byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var m obj
			if err := json.Unmarshal(b, &m); err != nil {
				t.Errorf("WebSocket message is not JSON: %.300s", b)
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			raw = append(raw, b)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
		s.checkMessages(t, raw) // every message received matches the document
	})
	return c
}

// waitFor waits until a message matches.
func (c *wsCollector) waitFor(t *testing.T, what string, d time.Duration, match func(obj) bool) obj {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, m := range c.msgs {
			if match(m) {
				c.mu.Unlock()
				return m
			}
		}
		c.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var types []string
	for _, m := range c.msgs {
		types = append(types, fmt.Sprint(m["type"], "/", m["job_id"], "/", m["status"]))
	}
	t.Fatalf("no WebSocket message %s within %s; got %v", what, d, types)
	return nil
}

// waitJob polls a progress URL until the job is done.
func (s *apiStack) waitJob(t *testing.T, path string) obj {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		m := s.must(200, "GET", path, "viewer", nil)
		if st := m["status"]; st == "completed" || st == "failed" {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done: %v", path, m)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestAPIEndToEnd(t *testing.T) {
	for _, d := range modelstest.Drivers(t) {
		t.Run(d, func(t *testing.T) { apiEndToEnd(t, d) })
	}
}

func apiEndToEnd(t *testing.T, driver string) {
	s := startAPIStack(t, driver)
	const v1 = "/v1/cloud-integration/backup"

	// probes, without a token: the stack is alive, and ready once its worker polls
	if code, m := s.do("GET", "/healthz", "", nil); code != 200 || m["status"] != "ok" {
		t.Fatalf("/healthz: %d %v", code, m)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, m := s.do("GET", "/readyz", "", nil)
		if code == 200 && m["status"] == "ok" {
			break
		}
		if time.Now().After(deadline) || (code != 503 && code != 200) {
			t.Fatalf("/readyz: %d %v", code, m)
		}
	}

	// status
	st := s.must(200, "GET", v1+"/status", "viewer", nil)
	fields(t, "status", st, "status", "backup_system.id", "backup_system.version", "backup_system.last_health_check",
		"backup_system.components.scheduler", "backup_system.components.compression", "backup_system.components.encryption",
		"backup_system.components.integrity_check", "storage.local.available", "storage.local.used", "storage.local.total",
		"storage.local.health", "storage.cloud.provider", "storage.cloud.health", "storage.remote.location", "storage.remote.health",
		"backup_statistics.total_backups", "backup_statistics.successful", "backup_statistics.failed",
		"backup_statistics.last_success", "backup_statistics.last_failure", "backup_statistics.success_rate")
	if st["status"] != "active" || get(st, "backup_system.components.scheduler") != "running" {
		t.Fatalf("status: %v", st)
	}

	// an empty list
	l := s.must(200, "GET", v1+"/list", "viewer", nil)
	if len(l["backups"].([]any)) != 0 || get(l, "pagination.total") != 0.0 {
		t.Fatalf("list: %v", l)
	}

	ws := s.websocket(t, "", http.Header{"Authorization": {"Bearer " + s.tokens["viewer"]}})
	// the browser way: the token as a subprotocol, and as a query parameter
	wsProto := s.websocket(t, "", http.Header{"Sec-WebSocket-Protocol": {"bearer, " + s.tokens["viewer"]}})
	if wsProto.conn.Subprotocol() != "bearer" {
		t.Fatalf("subprotocol %q", wsProto.conn.Subprotocol())
	}
	s.websocket(t, "?access_token="+s.tokens["viewer"]+"&types=job_complete", nil)
	if _, res, err := websocket.DefaultDialer.Dial(strings.Replace(s.base, "http", "ws", 1)+"/cloud-integration/ws/backup", nil); err == nil || res.StatusCode != 401 {
		t.Fatalf("websocket without a token: %v", err)
	}

	// create: the spec's request, as written
	create := map[string]any{"name": "pre-maintenance-backup", "type": "full",
		"components":        map[string]bool{"data": true, "configurations": true},
		"storage_locations": []string{"local", "cloud"}, "encryption": true, "compression": "gzip",
		"description": "Manual backup before system maintenance", "priority": "high",
		"verify_after_completion": true, "notify_on_completion": true}
	cr := s.must(200, "POST", v1+"/create", "operator", create)
	fields(t, "create", cr, "status", "backup_id", "name", "job_id", "estimated_size", "estimated_duration", "components",
		"storage_locations", "encryption", "compression", "progress_url", "cancelable", "pausable")
	if cr["status"] != "started" || cr["encryption"] != "AES-256" || cr["compression"] != "gzip" || cr["cancelable"] != true ||
		!strings.HasPrefix(cr["job_id"].(string), "BACKUP-JOB-") || fmt.Sprint(cr["components"]) != "[configurations data]" {
		t.Fatalf("create: %v", cr)
	}
	jobID, backupID := cr["job_id"].(string), cr["backup_id"].(string)
	// the same components again while it runs: BACKUP_002, nothing started
	code, dup := s.do("POST", v1+"/create", "operator", create)
	if code != 409 || dup["code"] != "BACKUP_002" {
		t.Fatalf("second backup: %d %v", code, dup)
	}
	// viewers may not start backups
	if code, _ := s.do("POST", v1+"/create", "viewer", create); code != 403 {
		t.Fatalf("viewer create: %d", code)
	}
	// pause, see it paused, resume
	s.must(200, "POST", v1+"/jobs/pause", "operator", map[string]string{"job_id": jobID})
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := s.must(200, "GET", v1+"/progress?job_id="+jobID, "viewer", nil)
		if p["status"] == "paused" || p["status"] == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not paused: %v", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ws.waitFor(t, "backup_progress", 10*time.Second, func(m obj) bool { return m["type"] == "backup_progress" && m["job_id"] == jobID })
	s.must(200, "POST", v1+"/jobs/resume", "operator", map[string]string{"job_id": jobID})
	pr := s.waitJob(t, v1+"/progress?job_id="+jobID)
	fields(t, "progress", pr, "status", "backup_id", "job_id", "progress.percentage", "progress.current_operation",
		"progress.current_component", "progress.components_completed", "progress.components_remaining", "progress.speed",
		"progress.processed", "progress.estimated_total", "progress.eta", "progress.elapsed", "details.bytes_processed",
		"details.bytes_total", "details.components", "details.components_done", "details.errors", "details.warnings",
		"storage_status")
	if pr["status"] != "completed" || get(pr, "progress.percentage") != 100.0 || get(pr, "details.components_done") != 2.0 ||
		get(pr, "storage_status.local") != "done" || get(pr, "storage_status.cloud") != "done" ||
		get(pr, "details.bytes_added").(float64) > get(pr, "details.bytes_processed").(float64) || get(pr, "details.bytes_added") == 0.0 {
		t.Fatalf("progress: %v", pr)
	}
	bp := ws.waitFor(t, "backup_progress", time.Second, func(m obj) bool { return m["type"] == "backup_progress" && m["job_id"] == jobID })
	fields(t, "ws backup_progress", bp, "type", "job_id", "backup_id", "progress", "current_operation", "current_component",
		"eta", "details.bytes_processed", "details.bytes_total", "details.speed")
	jc := ws.waitFor(t, "job_complete", 10*time.Second, func(m obj) bool { return m["type"] == "job_complete" && m["job_id"] == jobID })
	fields(t, "ws job_complete", jc, "type", "job_id", "status", "operation", "message", "details.backup_id", "details.size",
		"details.compressed_size", "details.duration", "details.storage_locations")
	if jc["status"] != "success" || jc["operation"] != "backup" || get(jc, "details.backup_id") != backupID {
		t.Fatalf("job_complete: %v", jc)
	}
	// the last progress message, before job_complete, is the end: 100%, every location's final state
	var last obj
	ws.mu.Lock()
	for _, m := range ws.msgs {
		if m["job_id"] != jobID {
			continue
		}
		if m["type"] == "job_complete" {
			break
		}
		if m["type"] == "backup_progress" {
			last = m
		}
	}
	ws.mu.Unlock()
	if last["progress"] != 100.0 || last["status"] != "completed" || get(last, "locations.local.state") != "done" ||
		get(last, "locations.cloud.state") != "done" || get(last, "locations.cloud.bytes_done") != get(last, "locations.cloud.bytes_total") {
		t.Fatalf("final backup_progress: %v", last)
	}
	temporalShowsJob(t, s, jobID, backupID)

	// list and details
	l = s.must(200, "GET", v1+"/list?limit=5&type=full&status=completed", "viewer", nil)
	b0 := get(l, "backups.0").(map[string]any)
	fields(t, "list entry", obj(b0), "id", "name", "timestamp", "type", "status", "size", "compressed_size", "duration",
		"components.data", "components.configurations", "storage_locations", "encryption", "integrity_check")
	if b0["id"] != backupID || b0["integrity_check"] != "passed" || fmt.Sprint(b0["storage_locations"]) != "[local cloud]" ||
		b0["size_bytes"].(float64) < 1e6 || get(l, "summary.full_backups") != 1.0 || get(l, "pagination.total") != 1.0 {
		t.Fatalf("list: %v", l)
	}
	dt := s.must(200, "GET", v1+"/details/"+backupID, "viewer", nil)
	fields(t, "details", dt, "id", "name", "timestamp", "type", "status", "size_details.raw_size", "size_details.compressed_size",
		"size_details.compression_ratio", "size_details.components_size.data", "duration.start", "duration.end",
		"duration.total_seconds", "storage.locations", "encryption.algorithm", "encryption.key_id", "encryption.key_version",
		"encryption.encrypted", "integrity.checksum", "integrity.verified", "integrity.verification_timestamp",
		"integrity.signature", "integrity.signature_timestamp", "metadata.system_version", "metadata.kernel_version",
		"metadata.hardware_id", "metadata.created_by", "metadata.schedule_id", "dependencies.parent_backup",
		"dependencies.child_backups", "dependencies.required_for_restore")
	if !strings.HasPrefix(get(dt, "integrity.checksum").(string), "sha256:") || get(dt, "integrity.signature") != "verified" ||
		get(dt, "metadata.kernel_version") == "" || get(dt, "metadata.created_by") != "operator-e2e" ||
		len(get(dt, "storage.locations").([]any)) != 2 || get(dt, "storage.locations.1.bucket") != "apitest" {
		t.Fatalf("details: %v", dt)
	}
	if code, m := s.do("GET", v1+"/details/backup-nope", "viewer", nil); code != 404 || m["code"] != "BACKUP_007" {
		t.Fatalf("missing details: %d %v", code, m)
	}
	sizesAgree(t, s, backupID, b0, dt, jc)

	// verify from the cloud copy, with an extract test
	vr := s.must(200, "POST", v1+"/verify", "operator", map[string]any{"backup_id": backupID, "storage_location": "cloud",
		"verify_checksum": true, "verify_signature": true, "verify_structure": true, "extract_test": true, "detailed_report": true})
	fields(t, "verify", vr, "status", "verification_id", "backup_id", "storage_location", "estimated_duration", "checks", "report_url")
	rep := s.waitJob(t, vr["report_url"].(string))
	if rep["passed"] != true || get(rep, "extract_test.passed") != true {
		t.Fatalf("verify report: %v", rep)
	}

	// restore partially into a new directory, verified before and after
	target := filepath.Join(t.TempDir(), "restore")
	rr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": backupID, "restore_type": "partial",
		"components": map[string]bool{"data": true, "configurations": false}, "target_location": target,
		"verify_before_restore": true, "verify_after_restore": true, "create_pre_restore_snapshot": false,
		"description": "Restoring data after corruption issue"})
	fields(t, "restore", rr, "status", "restore_id", "backup_id", "job_id", "components", "estimated_size",
		"estimated_duration", "warning", "pre_restore_snapshot_created", "snapshot_id", "progress_url")
	if rr["status"] != "restore_started" || fmt.Sprint(rr["components"]) != "[data]" {
		t.Fatalf("restore: %v", rr)
	}
	rp := s.waitJob(t, v1+"/restore/progress?restore_id="+rr["restore_id"].(string))
	fields(t, "restore progress", rp, "status", "restore_id", "job_id", "backup_id", "progress.percentage",
		"progress.current_operation", "progress.components_completed", "progress.components_remaining", "progress.speed",
		"progress.processed", "progress.estimated_total", "progress.eta", "progress.elapsed", "details.bytes_processed",
		"details.bytes_total", "details.components", "details.components_done", "details.files_restored",
		"details.files_total", "details.errors", "details.warnings", "verification.pre_restore", "verification.post_restore")
	if rp["status"] != "completed" || get(rp, "verification.pre_restore") != "passed" || get(rp, "verification.post_restore") != "passed" ||
		get(rp, "details.files_restored").(float64) < 100 {
		t.Fatalf("restore progress: %v", rp)
	}
	if out, err := exec.Command("diff", "-r", "--no-dereference", s.src, restored(target, "data", s.src)).CombinedOutput(); err != nil {
		t.Fatalf("restored tree differs: %s", clip(string(out)))
	}
	rjob := rr["job_id"].(string)
	ws.waitFor(t, "restore_progress", 5*time.Second, func(m obj) bool { return m["type"] == "restore_progress" && m["job_id"] == rjob })
	rc := ws.waitFor(t, "restore job_complete", 10*time.Second, func(m obj) bool { return m["type"] == "job_complete" && m["job_id"] == rjob })
	if rc["status"] != "success" || rc["operation"] != "restore" {
		t.Fatalf("restore job_complete: %v", rc)
	}
	rpm := ws.waitFor(t, "restore_progress", time.Second, func(m obj) bool { return m["type"] == "restore_progress" && m["job_id"] == rjob })
	fields(t, "ws restore_progress", rpm, "type", "job_id", "restore_id", "progress", "current_operation", "current_component",
		"eta", "details.files_restored", "details.files_total", "details.speed")
	// a restore target that climbs out, or a symlink out: 400, nothing written
	for _, bad := range []string{target + "/../../etc", "relative"} {
		code, m := s.do("POST", v1+"/restore", "admin", map[string]any{"backup_id": backupID, "target_location": bad})
		if code != 400 || get(m, "details.field") != "target_location" {
			t.Fatalf("restore to %q: %d %v", bad, code, m)
		}
	}
	if code, _ := s.do("POST", v1+"/restore", "operator", map[string]any{"backup_id": backupID, "target_location": target}); code != 403 {
		t.Fatalf("operator restore: %d", code)
	}

	// jobs
	js := s.must(200, "GET", v1+"/jobs?limit=100", "viewer", nil)
	fields(t, "jobs", js, "jobs", "summary.running", "summary.queued", "summary.completed_today", "summary.failed_today")
	var sawBackup, sawRestore bool
	for _, j := range js["jobs"].([]any) {
		j := obj(j.(map[string]any))
		switch j["id"] {
		case jobID:
			sawBackup = true
			fields(t, "backup job", j, "id", "type", "subtype", "status", "progress", "started", "backup_id", "name", "user", "temporal_ui_url")
			if u := j["temporal_ui_url"].(string); !strings.Contains(u, "/workflows/") {
				t.Fatalf("backup job's workflow link: %q", u)
			}
			if j["status"] != "completed" || j["subtype"] != "manual_full" || j["user"] != "operator-e2e" || j["progress"] != 100.0 {
				t.Fatalf("backup job: %v", j)
			}
		case rjob:
			sawRestore = true
			fields(t, "restore job", j, "id", "type", "subtype", "status", "progress", "started", "completed", "restore_id",
				"backup_id", "size", "duration", "user")
		}
	}
	if !sawBackup || !sawRestore {
		t.Fatalf("jobs list misses the backup or restore job: %v", js)
	}

	// download the backup as tar.gz: it holds the files
	req, _ := http.NewRequest("GET", s.base+v1+"/download/"+backupID+"?format=tar.gz&component=configurations", nil)
	req.Header.Set("Authorization", "Bearer "+s.tokens["admin"])
	res, err := s.client.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("download: %v %v", err, res)
	}
	gz, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("download archive: %v", err)
		}
		if strings.HasSuffix(h.Name, "app.conf") {
			b, _ := io.ReadAll(tr)
			found = string(b) == "setting = 1\n"
		}
	}
	res.Body.Close()
	if !found {
		t.Fatal("the downloaded archive lacks app.conf")
	}

	apiSchedulesStorageRetention(t, s, ws, backupID)
	apiCancelAndDelete(t, s, ws)

	// the audit log has every mutating call, with who and the request id
	au := s.must(200, "GET", v1+"/audit?limit=1000", "admin", nil)
	actions := map[string]int{}
	for _, e := range au["entries"].([]any) {
		e := e.(map[string]any)
		actions[fmt.Sprint(e["action"], ":", e["outcome"])]++
		if e["request_id"] == "" || e["actor"] == "" {
			t.Fatalf("audit entry: %v", e)
		}
	}
	for _, want := range []string{"backup.create:success", "backup.create:failure", "backup.create:denied", "restore.start:success",
		"restore.start:failure", "verify.start:success", "job.pause:success", "job.cancel:success", "schedule.put:success",
		"storage.update:success", "cleanup.start:success", "backup.delete:success"} {
		if actions[want] == 0 {
			t.Errorf("audit log has no %s (has %v)", want, actions)
		}
	}
	if code, _ := s.do("GET", v1+"/audit", "operator", nil); code != 403 {
		t.Fatalf("operator reads the audit log: %d", code)
	}

	// tokens: create, use, revoke
	tk := s.must(201, "POST", v1+"/tokens", "admin", map[string]any{"name": "ci", "role": "viewer", "expires_in_hours": 1})
	s.tokens["ci"] = tk["token"].(string)
	s.must(200, "GET", v1+"/status", "ci", nil)
	tl := s.must(200, "GET", v1+"/tokens", "admin", nil)
	if strings.Contains(fmt.Sprint(tl), s.tokens["ci"]) {
		t.Fatal("the token list shows a secret")
	}
	s.must(200, "DELETE", v1+"/tokens/"+tk["id"].(string), "admin", nil)
	if code, _ := s.do("GET", v1+"/status", "ci", nil); code != 401 {
		t.Fatalf("revoked token: %d", code)
	}
}

func apiSchedulesStorageRetention(t *testing.T, s *apiStack, ws *wsCollector, backupID string) {
	const v1 = "/v1/cloud-integration/backup"
	// schedules: the spec's create request, then a partial update as in
	// its Python example, then a run now
	sc := s.must(200, "POST", v1+"/schedules", "operator", map[string]any{"id": "schedule-custom-daily", "name": "Custom Daily Backup",
		"enabled": true, "type": "full", "frequency": "daily", "time": "01:00", "timezone": "UTC",
		"components": map[string]bool{"data": false, "configurations": true}, "storage_locations": []string{"local", "cloud"},
		"retention_days": 60, "encryption": true, "compression": "gzip",
		"notifications": map[string]bool{"on_success": true, "on_failure": true, "on_warning": false},
		"description":   "Daily backup with all components"})
	fields(t, "schedule create", sc, "status", "schedule_id", "name", "message", "next_execution", "validation.components_valid",
		"validation.storage_valid", "validation.schedule_valid", "validation.retention_valid")
	next, err := time.Parse(time.RFC3339, fmt.Sprint(sc["next_execution"]))
	if sc["status"] != "created" || err != nil || next.Hour() != 1 || next.Minute() != 0 || time.Until(next) > 25*time.Hour {
		t.Fatalf("schedule: %v", sc)
	}
	// two locations break the 3-2-1 policy: accepted, with a warning that names the missing one
	if ws := sc["warnings"].([]any); len(ws) != 1 || !strings.Contains(ws[0].(string), "remote") || get(sc, "validation.replication_policy_met") != false {
		t.Fatalf("schedule short of 3-2-1 without a warning: %v", sc)
	}
	up := s.must(200, "POST", v1+"/schedules", "operator", map[string]any{"id": "schedule-custom-daily", "retention_days": 90,
		"storage_locations": []string{"local", "cloud", "remote"}, "notifications": map[string]bool{"on_warning": true}})
	if up["status"] != "updated" || up["message"] == "" || len(up["warnings"].([]any)) != 0 || get(up, "validation.replication_policy_met") != true {
		t.Fatalf("schedule update: %v", up)
	}
	ws.waitFor(t, "schedule_event", 5*time.Second, func(m obj) bool {
		return m["type"] == "schedule_event" && m["schedule_id"] == "schedule-custom-daily"
	})
	s.must(200, "POST", v1+"/schedules/schedule-custom-daily/trigger", "operator", nil)
	deadline := time.Now().Add(2 * time.Minute)
	var sb map[string]any
	for sb == nil {
		l := s.must(200, "GET", v1+"/list?schedule_id=schedule-custom-daily&status=completed", "viewer", nil)
		if bs := l["backups"].([]any); len(bs) > 0 {
			sb = bs[0].(map[string]any)
		}
		if time.Now().After(deadline) {
			t.Fatal("the triggered schedule made no backup")
		}
		time.Sleep(300 * time.Millisecond)
	}
	if fmt.Sprint(sb["storage_locations"]) != "[local cloud remote]" || sb["retention_days"] != 90.0 || sb["compression"] != "gzip" {
		t.Fatalf("scheduled backup: %v", sb)
	}
	gs := s.must(200, "GET", v1+"/schedules", "viewer", nil)
	fields(t, "schedules", gs, "schedules", "summary.total_schedules", "summary.enabled", "summary.disabled", "summary.by_frequency.daily")
	s0 := obj(get(gs, "schedules.0").(map[string]any))
	fields(t, "schedule", s0, "id", "name", "enabled", "type", "frequency", "time", "timezone", "components.configurations",
		"storage_locations", "retention_days", "encryption", "compression", "last_execution.timestamp", "last_execution.status",
		"last_execution.backup_id", "last_execution.size", "last_execution.duration", "next_execution", "notifications.on_success")
	if get(s0, "last_execution.status") != "success" || s0["retention_days"] != 90.0 || get(s0, "notifications.on_warning") != true {
		t.Fatalf("schedule listing: %v", s0)
	}
	// the next runs as Temporal computes them, a day apart at 01:00 in
	// the schedule's zone, and the run the trigger started
	nexts, _ := s0["next_executions"].([]any)
	for i, n := range nexts {
		tn, err := time.Parse(time.RFC3339, n.(string))
		if err != nil || tn.Hour() != 1 || tn.Minute() != 0 || i > 0 && tn.Sub(mustTime(t, nexts[i-1].(string))) != 24*time.Hour {
			t.Fatalf("next_executions: %v", nexts)
		}
	}
	if len(nexts) != 5 || nexts[0] != s0["next_execution"] {
		t.Fatalf("next_executions: %v (next_execution %v)", nexts, s0["next_execution"])
	}
	if r := get(s0, "recent_executions.0.workflow_id"); r == nil || r == "" || get(s0, "recent_executions.0.temporal_ui_url") == nil {
		t.Fatalf("recent_executions: %v", s0["recent_executions"])
	}
	d := s.must(200, "GET", v1+"/details/"+sb["id"].(string), "viewer", nil)
	if get(d, "metadata.schedule_id") != "schedule-custom-daily" || get(d, "metadata.created_by") != "scheduler" {
		t.Fatalf("scheduled backup details: %v", d["metadata"])
	}
	// disable it: no next execution
	s.must(200, "POST", v1+"/schedules", "operator", map[string]any{"id": "schedule-custom-daily", "enabled": false})
	gs = s.must(200, "GET", v1+"/schedules", "viewer", nil)
	if get(gs, "schedules.0.next_execution") != nil || get(gs, "summary.disabled") != 1.0 {
		t.Fatalf("disabled schedule: %v", gs)
	}
	s.must(200, "DELETE", v1+"/schedules/schedule-custom-daily", "operator", nil)

	// storage
	sg := s.must(200, "GET", v1+"/storage", "viewer", nil)
	fields(t, "storage", sg, "storage_config.local.enabled", "storage_config.local.path", "storage_config.local.quota",
		"storage_config.local.current_usage", "storage_config.local.retention_policy", "storage_config.local.compression",
		"storage_config.local.encryption", "storage_config.cloud.provider", "storage_config.cloud.bucket", "storage_config.cloud.region",
		"storage_config.cloud.access_method", "storage_config.cloud.quota", "storage_config.cloud.current_usage",
		"storage_config.cloud.transfer_acceleration", "storage_config.remote.type", "storage_config.remote.host",
		"storage_config.remote.path", "policies.replication.strategy", "policies.replication.copies",
		"policies.encryption.default_algorithm", "policies.encryption.key_rotation_days", "policies.compression.default_algorithm",
		"monitoring.threshold_warning", "monitoring.threshold_critical")
	// no endpoint ever shows a credential
	for _, path := range []string{"/storage", "/status", "/health", "/details/" + backupID, "/list", "/jobs", "/schedules", "/retention"} {
		body := fmt.Sprint(s.must(200, "GET", v1+path, "admin", nil))
		for _, sec := range append(s.secrets, s.tokens["admin"]) {
			if strings.Contains(body, sec) {
				t.Fatalf("GET %s shows a credential", path)
			}
		}
	}
	su := s.must(200, "POST", v1+"/storage/update", "admin", map[string]any{
		"local": map[string]any{"quota": "2TB", "retention_policy": "60 days", "compression_level": 9},
		"policies": map[string]any{"encryption": map[string]any{"key_rotation_days": 30},
			"monitoring": map[string]any{"threshold_warning": 75, "threshold_critical": 90}}})
	if su["status"] != "updated" || su["restart_required"] != false {
		t.Fatalf("storage update: %v", su)
	}
	ch := su["changes"].(map[string]any)
	if q := ch["local.quota"].(map[string]any); q["new"] != "2.0 TB" || ch["policies.encryption.key_rotation_days"].(map[string]any)["new"] != 30.0 {
		t.Fatalf("changes: %v", ch)
	}
	// a quota the repository already exceeds: a storage_alert at once
	// (automatic cleanup off: an emergency cleanup would remove backups this test still uses)
	s.must(200, "POST", v1+"/storage/update", "admin", map[string]any{"local": map[string]any{"quota": "10KB"},
		"policies": map[string]any{"monitoring": map[string]any{"auto_cleanup": false}}})
	al := ws.waitFor(t, "storage_alert", 10*time.Second, func(m obj) bool { return m["type"] == "storage_alert" && m["storage"] == "local" })
	fields(t, "storage_alert", al, "type", "level", "storage", "message", "details.available", "details.used", "details.total",
		"details.utilization", "suggested_action")
	if al["level"] != "critical" || get(al, "details.total") != "10.0 KB" {
		t.Fatalf("storage_alert: %v", al)
	}
	hl := s.must(200, "GET", v1+"/health", "viewer", nil)
	if hl["overall_health"] != "critical" || get(hl, "components.storage_local.status") != "critical" || len(hl["alerts"].([]any)) == 0 {
		t.Fatalf("health over quota: %v", hl)
	}
	s.must(200, "POST", v1+"/storage/update", "admin", map[string]any{"local": map[string]any{"quota": "2TB"}})
	su = s.must(200, "POST", v1+"/storage/update", "admin", map[string]any{"cloud": map[string]any{"bucket": "company-backups-new", "region": "us-west-2"}})
	if su["restart_required"] != true {
		t.Fatalf("address change: %v", su)
	}
	sg = s.must(200, "GET", v1+"/storage", "viewer", nil)
	if get(sg, "storage_config.local.quota") != "2.0 TB" || get(sg, "monitoring.threshold_warning") != 75.0 {
		t.Fatalf("storage after update: %v", sg)
	}

	// retention, cleanup dry run and its report
	rt := s.must(200, "GET", v1+"/retention", "viewer", nil)
	fields(t, "retention", rt, "retention_policies.full_backups.daily", "retention_policies.incremental_backups.keep_all_for_days",
		"retention_policies.differential_backups.keep_weekly_for_months", "retention_policies.snapshots.keep_daily_for_weeks",
		"cleanup_rules.auto_cleanup", "cleanup_rules.cleanup_schedule", "cleanup_rules.cleanup_time", "cleanup_rules.minimum_free_space",
		"cleanup_rules.emergency_cleanup_threshold", "cleanup_rules.cleanup_strategy", "protected_backups", "next_cleanup", "last_cleanup")
	s.must(200, "POST", v1+"/"+backupID+"/protect", "admin", map[string]bool{"protected": true})
	cl := s.must(200, "POST", v1+"/cleanup", "admin", map[string]any{"dry_run": true, "force_cleanup": false,
		"target_storage": []string{"local", "cloud"}, "ignore_protected": false, "cleanup_strategy": "oldest_first",
		"max_backups_to_remove": 50, "reason": "Manual cleanup before storage maintenance"})
	fields(t, "cleanup", cl, "status", "cleanup_id", "dry_run", "estimated_duration", "backups_analyzed",
		"backups_candidate_for_removal", "estimated_space_to_free", "protected_backups_excluded", "report_url")
	if cl["dry_run"] != true || cl["protected_backups_excluded"] != 1.0 || cl["backups_analyzed"].(float64) < 2 {
		t.Fatalf("cleanup: %v", cl)
	}
	crep := s.waitJob(t, "/cloud-integration/backup/cleanup/report/"+cl["cleanup_id"].(string))
	if crep["status"] != "completed" || crep["dry_run"] != true || crep["decisions"] == nil {
		t.Fatalf("cleanup report: %v", crep)
	}
	for _, d := range crep["decisions"].([]any) {
		d := d.(map[string]any)
		if d["backup_id"] == backupID && (d["decision"] != "keep" || d["reason"] != "protected") {
			t.Fatalf("protected backup's decision: %v", d)
		}
	}
	rt = s.must(200, "GET", v1+"/retention", "viewer", nil)
	if fmt.Sprint(rt["protected_backups"]) != "["+backupID+"]" || get(rt, "last_cleanup.cleanup_id") != cl["cleanup_id"] {
		t.Fatalf("retention after cleanup: %v", rt)
	}
	// ignore_protected (admin only, audited) lets protected backups be candidates
	ig := s.must(200, "POST", v1+"/cleanup", "admin", map[string]any{"dry_run": true, "ignore_protected": true})
	if ig["ignore_protected"] != true || ig["protected_backups_excluded"] != 0.0 {
		t.Fatalf("cleanup with ignore_protected: %v", ig)
	}
	s.waitJob(t, "/cloud-integration/backup/cleanup/report/"+ig["cleanup_id"].(string))
	if au := s.must(200, "GET", v1+"/audit?action=cleanup.start", "admin", nil); !strings.Contains(fmt.Sprint(au["entries"]), "ignore_protected") {
		t.Fatalf("the audit log does not show ignore_protected: %v", au["entries"])
	}
	// a protected backup cannot be deleted
	if code, m := s.do("DELETE", v1+"/"+backupID+"?force=true", "admin", nil); code != 409 || m["code"] != "BACKUP_012" {
		t.Fatalf("delete protected: %d %v", code, m)
	}
	s.must(200, "POST", v1+"/"+backupID+"/protect", "admin", map[string]bool{"protected": false})

	// health and statistics
	h := s.must(200, "GET", v1+"/health", "viewer", nil)
	fields(t, "health", h, "overall_health", "components.scheduler.status", "components.scheduler.last_run",
		"components.scheduler.next_run", "components.scheduler.errors", "components.storage_local.status",
		"components.storage_local.available_space", "components.storage_local.utilization", "components.storage_local.last_check",
		"components.storage_cloud.connectivity", "components.encryption.status", "components.encryption.algorithm",
		"components.encryption.key_status", "components.encryption.last_key_rotation", "components.compression.status",
		"components.compression.algorithm", "components.compression.average_ratio", "backup_health.success_rate_24h",
		"backup_health.success_rate_7d", "backup_health.success_rate_30d", "backup_health.last_failure",
		"backup_health.failure_reason", "alerts", "recommendations")
	if get(h, "components.scheduler.status") != "running" || get(h, "backup_health.success_rate_24h") != "100%" {
		t.Fatalf("health: %v", h)
	}
	stt := s.must(200, "GET", v1+"/statistics?period=7d", "viewer", nil)
	fields(t, "statistics", stt, "period", "time_range.from", "time_range.to", "summary.total_backups", "summary.successful",
		"summary.failed", "summary.success_rate", "summary.total_size", "summary.compressed_size",
		"summary.average_compression_ratio", "summary.total_duration", "summary.average_duration", "by_type.full.count",
		"by_type.full.success_rate", "by_type.full.average_size", "by_type.full.average_duration",
		"by_component.data.backups_included", "by_component.data.average_size", "by_schedule.schedule-custom-daily.executions",
		"by_schedule.schedule-custom-daily.success_rate", "by_schedule.schedule-custom-daily.average_size",
		"trends.success_rate", "trends.backup_size", "trends.duration", "trends.storage_usage")
	if get(stt, "summary.total_backups").(float64) < 2 || get(stt, "summary.success_rate") != "100%" {
		t.Fatalf("statistics: %v", stt)
	}
	g := s.must(200, "GET", v1+"/statistics?period=24h&group_by=component", "viewer", nil)
	if g["by_type"] != nil || g["by_component"] == nil {
		t.Fatalf("group_by=component: %v", g)
	}
}

func apiCancelAndDelete(t *testing.T, s *apiStack, ws *wsCollector) {
	const v1 = "/v1/cloud-integration/backup"
	// a backup paused at once, then cancelled: its partial data goes
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full", "components": map[string]bool{"data": true},
		"storage_locations": []string{"local"}})
	jobID := cr["job_id"].(string)
	s.must(200, "POST", v1+"/jobs/pause", "operator", map[string]string{"job_id": jobID})
	cx := s.must(200, "POST", v1+"/jobs/cancel", "operator", map[string]any{"job_id": jobID,
		"reason": "User requested cancellation due to system maintenance", "cleanup": true})
	fields(t, "cancel", cx, "status", "job_id", "message", "cleanup_performed", "partial_data_removed", "can_restart",
		"restart_info.possible", "restart_info.recommendation")
	if cx["status"] != "cancelled" || cx["cleanup_performed"] != true {
		t.Fatalf("cancel: %v", cx)
	}
	jc := ws.waitFor(t, "job_complete (cancelled)", 10*time.Second, func(m obj) bool { return m["type"] == "job_complete" && m["job_id"] == jobID })
	if jc["status"] != "cancelled" {
		t.Fatalf("cancelled job_complete: %v", jc)
	}
	p := s.must(200, "GET", v1+"/progress?job_id="+jobID, "viewer", nil)
	if p["status"] != "failed" || p["outcome"] != "cancelled" {
		t.Fatalf("cancelled progress: %v", p)
	}
	if code, m := s.do("POST", v1+"/jobs/cancel", "operator", map[string]any{"job_id": jobID}); code != 409 || m["code"] != "BACKUP_015" {
		t.Fatalf("cancel twice: %d %v", code, m)
	}
	if b := s.must(200, "GET", v1+"/details/"+cr["backup_id"].(string), "viewer", nil); b["status"] != "cancelled" {
		t.Fatalf("cancelled backup row: %v", b["status"])
	}

	// delete a completed backup from its locations (retention needs force)
	l := s.must(200, "GET", v1+"/list?status=completed&limit=1000", "viewer", nil)
	var victim string
	var ids []string
	for _, b := range l["backups"].([]any) {
		ids = append(ids, b.(map[string]any)["id"].(string))
	}
	sort.Strings(ids)
	victim = ids[len(ids)-1]
	dl := s.must(202, "DELETE", v1+"/"+victim+"?force=true", "admin", nil)
	rep := s.waitJob(t, "/cloud-integration/backup/cleanup/report/"+dl["cleanup_id"].(string))
	if rep["status"] != "completed" {
		t.Fatalf("delete report: %v", rep)
	}
	if code, _ := s.do("GET", v1+"/details/"+victim, "viewer", nil); code != 404 {
		t.Fatalf("deleted backup still listed: %d", code)
	}
}

// sizesAgree checks one backup's figures where each is shown — the
// list, the details, job_complete, statistics and the repository's own
// manifest — against each other and their definitions (README: "Sizes
// and ratios"): job_complete gave a "compressed size" of 861 B for a
// 1.5 MB backup, and statistics a ratio twice the details'.
func sizesAgree(t *testing.T, s *apiStack, backupID string, entry, details, jc obj) {
	t.Helper()
	size, comp, added := get(details, "size_details.raw_size_bytes"), get(details, "size_details.compressed_size_bytes"), get(details, "size_details.added_size_bytes")
	for what, pair := range map[string][2]any{
		"list size": {entry["size_bytes"], size}, "list compressed": {entry["compressed_size_bytes"], comp}, "list added": {entry["added_size_bytes"], added},
		"job_complete size": {get(jc, "details.size_bytes"), size}, "job_complete compressed": {get(jc, "details.compressed_size_bytes"), comp},
		"job_complete added": {get(jc, "details.added_size_bytes"), added},
	} {
		if pair[0] != pair[1] || pair[1] == nil {
			t.Errorf("%s: %v, details say %v", what, pair[0], pair[1])
		}
	}
	sz, cz, az := size.(float64), comp.(float64), added.(float64)
	// the first backup of its data: what it added is what it takes (bar
	// content repeated within it)
	if cz <= 0 || az > cz || az < cz*0.9 {
		t.Errorf("sizes do not add up: size %v, compressed %v, added %v", sz, cz, az)
	}
	if r := get(details, "size_details.compression_ratio"); r != strconv.FormatFloat(sz/cz, 'f', 2, 64) {
		t.Errorf("compression_ratio %v, size/compressed %.2f", r, sz/cz)
	}
	// the repository's manifest says the same
	cfg, err := config.Load(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "repo", "list", "--json", "--repo", cfg.Storage["local"].URL)
	cmd.Env = append(os.Environ(), "BACKUPD_PASSWORD=api-test-password", "BACKUPD_CACHE_DIR="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("repo list: %v", err)
	}
	var ms []struct {
		ID    string `json:"id"`
		Stats struct {
			Bytes       float64 `json:"bytes"`
			StoredBytes float64 `json:"stored_bytes"`
			StoredAdded float64 `json:"stored_added"`
		} `json:"stats"`
	}
	if err := json.Unmarshal(out, &ms); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range ms {
		if m.ID == backupID {
			found = true
			if m.Stats.Bytes != sz || m.Stats.StoredBytes != cz || m.Stats.StoredAdded != az {
				t.Errorf("manifest %+v, catalog size %v compressed %v added %v", m.Stats, sz, cz, az)
			}
		}
	}
	if !found {
		t.Errorf("backup %s not in the repository's list", backupID)
	}
	// statistics over the period: the sums of the list's figures, each ratio from its own pair
	st := s.must(200, "GET", "/v1/cloud-integration/backup/statistics?period=24h", "viewer", nil)
	l := s.must(200, "GET", "/v1/cloud-integration/backup/list?status=completed&limit=100", "viewer", nil)
	var ts, tc, ta float64
	for _, b := range l["backups"].([]any) {
		b := b.(map[string]any)
		ts, tc, ta = ts+b["size_bytes"].(float64), tc+b["compressed_size_bytes"].(float64), ta+b["added_size_bytes"].(float64)
	}
	if get(st, "summary.total_size_bytes") != ts || get(st, "summary.compressed_size_bytes") != tc || get(st, "summary.added_size_bytes") != ta ||
		get(st, "summary.average_compression_ratio") != strconv.FormatFloat(ts/tc, 'f', 2, 64) {
		t.Errorf("statistics %v against the list's sums %v %v %v", st["summary"], ts, tc, ta)
	}
}

// temporalShowsJob checks the Temporal Web UI's view of a job: its
// summary in the list names the job, the backup and the caller, its
// details the components, its memo the API request, its page the state.
func temporalShowsJob(t *testing.T, s *apiStack, jobID, backupID string) {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: s.temporal, Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	l, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("BackupJobId = '%s'", jobID)})
	if err != nil || len(l.Executions) != 1 {
		t.Fatalf("workflow of %s: %v %v", jobID, l, err)
	}
	e := l.Executions[0].Execution
	d, err := c.DescribeWorkflowExecution(ctx, e.WorkflowId, e.RunId)
	if err != nil {
		t.Fatal(err)
	}
	dc := converter.GetDefaultDataConverter()
	var summary, details, reqID string
	md := d.ExecutionConfig.GetUserMetadata()
	_ = dc.FromPayload(md.GetSummary(), &summary)
	_ = dc.FromPayload(md.GetDetails(), &details)
	_ = dc.FromPayload(d.WorkflowExecutionInfo.GetMemo().GetFields()["request_id"], &reqID)
	if !strings.Contains(summary, jobID) || !strings.Contains(summary, backupID) || !strings.Contains(summary, "by operator") ||
		!strings.Contains(details, "**Components** ") || !strings.HasPrefix(reqID, "req_") {
		t.Fatalf("Temporal UI view: summary %q details %q request %q", summary, details, reqID)
	}
	v, err := c.QueryWorkflow(ctx, e.WorkflowId, e.RunId, "__temporal_workflow_metadata")
	if err != nil {
		t.Fatal(err)
	}
	var meta sdkpb.WorkflowMetadata
	if err := v.Get(&meta); err != nil || !strings.Contains(meta.GetCurrentDetails(), "completed") {
		t.Fatalf("current details: %q %v", meta.GetCurrentDetails(), err)
	}
}

// TestSpecPythonExamples runs the spec's three Python examples unchanged
// but for the base URL, the token and the backup id they name.
func TestSpecPythonExamples(t *testing.T) {
	if _, err := exec.Command("python3", "-c", "import requests").CombinedOutput(); err != nil {
		if os.Getenv("BACKUPD_REQUIRE_SERVERS") == "1" {
			t.Fatal("python3 with requests is needed for the spec's examples")
		}
		t.Skip("no python3 requests")
	}
	s := startAPIStack(t, "sqlite")
	spec, err := os.ReadFile(specPath(t))
	if err != nil {
		t.Fatal(err)
	}
	examples := pythonExamples(string(spec))
	if len(examples) != 3 {
		t.Fatalf("found %d Python examples in the spec, want 3", len(examples))
	}
	run := func(name, code string) string {
		code = strings.ReplaceAll(code, "https://api.example.com", s.base)
		code = strings.ReplaceAll(code, "your_token", s.tokens["admin"])
		code = strings.ReplaceAll(code, "time.sleep(10)", "time.sleep(0.5)")
		code = strings.ReplaceAll(code, "time.sleep(5)", "time.sleep(0.5)")
		cmd := exec.Command("python3", "-c", code)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b, _ := os.ReadFile(s.logPath)
			t.Fatalf("%s: %v\n%s\nserver log:\n%s", name, err, out, tail(string(b), 3000))
		}
		return string(out)
	}
	out := run("Complete Backup Flow", examples[0])
	if !strings.Contains(out, "Backup completed successfully: backup-") {
		t.Fatalf("Complete Backup Flow:\n%s", out)
	}
	backupID := out[strings.Index(out, "Backup completed successfully: ")+len("Backup completed successfully: "):]
	backupID = strings.TrimSpace(strings.SplitN(backupID, "\n", 2)[0])
	// the backup exists in storage (its signed manifest reads back)
	if m := s.must(200, "GET", "/cloud-integration/backup/details/"+backupID, "viewer", nil); get(m, "integrity.signature") != "verified" ||
		get(m, "storage.locations.0.type") != "cloud" {
		t.Fatalf("backup %s not in storage: %v", backupID, m)
	}
	// "Restore from Backup" restores configurations and databases to their
	// original paths, with a pre-restore snapshot: from a backup that has them
	cr := s.must(200, "POST", "/cloud-integration/backup/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"configurations": true, "databases": true}, "storage_locations": []string{"local"}})
	s.waitJob(t, "/cloud-integration/backup/progress?job_id="+cr["job_id"].(string))
	confFile := filepath.Join(filepath.Dir(s.src), "conf", "app.conf")
	os.WriteFile(confFile, []byte("damaged\n"), 0o644)
	out = run("Restore from Backup", strings.Replace(examples[1], "backup-20250315-0200", cr["backup_id"].(string), 1))
	if !strings.Contains(out, "Restore completed successfully") {
		t.Fatalf("Restore from Backup:\n%s", out)
	}
	if b, _ := os.ReadFile(confFile); string(b) != "setting = 1\n" {
		t.Fatalf("the restore did not write the file back: %q", b)
	}
	// its pre-restore snapshot holds the damaged file: restoring it rolls back
	jobs := s.must(200, "GET", "/cloud-integration/backup/list?type=snapshot", "viewer", nil)
	if len(jobs["backups"].([]any)) != 1 {
		t.Fatalf("pre-restore snapshot: %v", jobs)
	}
	snap := get(jobs, "backups.0.id").(string)
	rb := s.must(200, "POST", "/cloud-integration/backup/restore", "admin", map[string]any{"backup_id": snap, "target_location": "original"})
	s.waitJob(t, "/cloud-integration/backup/restore/progress?job_id="+rb["job_id"].(string))
	if b, _ := os.ReadFile(confFile); string(b) != "damaged\n" {
		t.Fatalf("rollback to the snapshot: %q", b)
	}
	// "Backup Management" updates the nightly schedule an operator made
	s.must(200, "POST", "/cloud-integration/backup/schedules", "operator", map[string]any{"id": "schedule-nightly-full",
		"name": "Nightly Full Backup", "frequency": "daily", "time": "02:00", "timezone": "UTC",
		"components": map[string]bool{"data": true}})
	out = run("Backup Management", examples[2])
	if !strings.Contains(out, "Schedule updated: Schedule updated successfully") || !strings.Contains(out, "Cleanup started: CLEANUP-") {
		t.Fatalf("Backup Management:\n%s", out)
	}
	sc := s.must(200, "GET", "/cloud-integration/backup/schedules", "viewer", nil)
	if get(sc, "schedules.0.retention_days") != 60.0 || fmt.Sprint(get(sc, "schedules.0.storage_locations")) != "[local cloud remote]" {
		t.Fatalf("the example's schedule update: %v", sc)
	}
}

func specPath(t *testing.T) string {
	for _, p := range []string{"../../shared/spec/backup-recovery-api.rst", "../shared/spec/backup-recovery-api.rst"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("the spec (../shared/spec) is not beside the project")
	return ""
}

// pythonExamples extracts the spec's "Python - ..." code blocks.
func pythonExamples(spec string) []string {
	var out []string
	parts := strings.Split(spec, ".. code-block:: python")
	for _, p := range parts[1:] {
		var lines []string
		for i, line := range strings.Split(p, "\n") {
			if i == 0 {
				continue
			}
			if line != "" && !strings.HasPrefix(line, "   ") {
				break
			}
			lines = append(lines, strings.TrimPrefix(line, "   "))
		}
		out = append(out, strings.Join(lines, "\n"))
	}
	return out
}

var _ = context.Background

// TestAPISplitProcessesOverTLS runs the API server and the worker as two
// processes, the API over HTTPS/WSS: a WebSocket client still gets the
// backup's progress (from Temporal) and its completion.
func TestAPISplitProcessesOverTLS(t *testing.T) {
	s, certFile := startTLSStack(t)
	// plain HTTP is not served
	if res, err := http.Get(strings.Replace(s.base, "https://", "http://", 1) + "/cloud-integration/backup/status"); err == nil {
		if res.StatusCode < 400 {
			t.Fatalf("plain HTTP answered %d", res.StatusCode)
		}
		res.Body.Close()
	}
	const v1 = "/v1/cloud-integration/backup"
	st := s.must(200, "GET", v1+"/status", "viewer", nil)
	if get(st, "backup_system.components.scheduler") != "running" || get(st, "backup_system.components.workers") != 1.0 {
		t.Fatalf("status with a separate worker: %v", st)
	}
	ws := s.websocket(t, "", http.Header{"Authorization": {"Bearer " + s.tokens["viewer"]}})
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"data": true}, "storage_locations": []string{"local", "remote"}})
	jobID := cr["job_id"].(string)
	s.must(200, "POST", v1+"/jobs/pause", "operator", map[string]string{"job_id": jobID})
	ws.waitFor(t, "backup_progress from the other process", 10*time.Second, func(m obj) bool {
		return m["type"] == "backup_progress" && m["job_id"] == jobID
	})
	s.must(200, "POST", v1+"/jobs/resume", "operator", map[string]string{"job_id": jobID})
	jc := ws.waitFor(t, "job_complete", 2*time.Minute, func(m obj) bool { return m["type"] == "job_complete" && m["job_id"] == jobID })
	if jc["status"] != "success" || fmt.Sprint(get(jc, "details.storage_locations")) != "[local remote]" {
		t.Fatalf("job_complete: %v", jc)
	}

	// the command-line client over HTTPS and WSS, trusting the server's
	// self-signed certificate with --ca-file; without it, it says the
	// certificate is not trusted
	r := s.cliOK(t, "operator", "backup", "create", "--components", "configurations", "--locations", "local", "--wait", "--ca-file", certFile)
	mustContain(t, r, "stdout", " completed in ", "locations: local")
	if r = s.cli(t, "viewer", "status"); r.code != 1 || !strings.Contains(r.stderr, "is not trusted") {
		t.Errorf("an untrusted certificate: %v", r)
	}
}

// startTLSStack runs the server and a worker as two processes, the API
// over HTTPS with a self-signed certificate (returned, for --ca-file).
func startTLSStack(t *testing.T) (*apiStack, string) {
	certFile, keyFile, pool := selfSignedCert(t, t.TempDir())
	s := startAPIStackWith(t, "sqlite", func(s *apiStack) {
		s.split, s.tlsCert, s.tlsKey = true, certFile, keyFile
		s.base = strings.Replace(s.base, "http://", "https://", 1)
		s.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	})
	return s, certFile
}

func selfSignedCert(t *testing.T, dir string) (string, string, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "backupd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
