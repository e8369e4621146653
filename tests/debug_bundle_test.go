package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"backupd/config"
)

// untarGz reads a bundle into name → contents (the top directory cut).
func untarGz(t *testing.T, b []byte) map[string]string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		body, _ := io.ReadAll(tr)
		dir, name, _ := strings.Cut(h.Name, "/")
		if !strings.HasPrefix(dir, "backupd-debug-apitest-") {
			t.Errorf("entry %s outside the bundle's directory", h.Name)
		}
		files[name] = string(body)
	}
}

// The debug bundle of a real `backupd all` after a job failed: from the
// API and from `backupd debug-bundle`, with every part in it, the failed
// job's workflow history among them, and no secret of the configuration,
// the environment or the tokens anywhere in it.
func TestDebugBundleEndToEnd(t *testing.T) {
	const (
		dbPassword = "db-pw-CANARY-5521"
		hookSecret = "hook-hmac-CANARY-5522"
		hookToken  = "hook-url-token-CANARY-5523"
	)
	dbPort := freePort(t) // nothing listens: the database's dump fails
	s := startAPIStackWith(t, "sqlite", func(*apiStack) {}, func(c *config.Config) {
		c.Components["appdb"] = config.Component{Databases: []config.Database{{Name: "app", Kind: "postgresql",
			Host: "127.0.0.1", Port: dbPort, User: "app", Database: "app", Password: dbPassword}}}
		c.Notifications.Webhooks = []config.Webhook{{Name: "ops", URL: "http://127.0.0.1:1/hook?token=" + hookToken, Secret: hookSecret}}
	})
	secrets := append([]string{dbPassword, hookSecret, hookToken, s.tokens["admin"], s.tokens["operator"], s.tokens["viewer"]}, s.secrets...)
	const v1 = "/v1/cloud-integration/backup"

	ok := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"configurations": true}, "storage_locations": []string{"local"}})
	s.waitJob(t, v1+"/progress?job_id="+ok["job_id"].(string))
	bad := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"appdb": true}, "storage_locations": []string{"local"}})
	badJob := bad["job_id"].(string)
	if p := s.waitJob(t, v1+"/progress?job_id="+badJob); p["status"] != "failed" {
		t.Fatalf("the backup of an unreachable database: %v", p)
	}

	// from the API
	req, _ := http.NewRequest("GET", s.base+v1+"/debug-bundle", nil)
	req.Header.Set("Authorization", "Bearer "+s.tokens["admin"])
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/gzip" {
		t.Fatalf("debug bundle: %d %s", res.StatusCode, raw)
	}
	files := untarGz(t, raw)
	checkBundle(t, files, badJob, secrets)

	// one version everywhere: the binary's, the bundle's, the status answer's
	vout, err := exec.Command(s.bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(vout), "\n")
	var bv struct{ Version string }
	json.Unmarshal([]byte(files["version.json"]), &bv)
	st := s.must(200, "GET", v1+"/status", "viewer", nil)
	if first != "backupd "+bv.Version || get(st, "backup_system.version") != bv.Version {
		t.Errorf("versions: %q, bundle %q, status %v", first, bv.Version, get(st, "backup_system.version"))
	}

	// the audit log names it
	audit := s.must(200, "GET", v1+"/audit?action=debug_bundle.download", "admin", nil)
	if b, _ := json.Marshal(audit); !strings.Contains(string(b), "debug bundle:") {
		t.Errorf("audit: %s", b)
	}

	// from the command line, as an operator on the host would: the
	// configuration says where the server is, the token comes from the
	// environment
	dir := t.TempDir()
	out := filepath.Join(dir, "bundle.tar.gz")
	cmd := exec.Command(s.bin, "debug-bundle", "--config", s.cfgPath, "--output", out, "--failed-jobs", "1")
	cmd.Env = append(os.Environ(), "BACKUPD_TOKEN="+s.tokens["admin"])
	if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), "wrote "+out) {
		t.Fatalf("backupd debug-bundle: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	checkBundle(t, untarGz(t, b), badJob, secrets)

	// a viewer's token is refused, and says what is needed
	cmd = exec.Command(s.bin, "debug-bundle", "--config", s.cfgPath, "--output", filepath.Join(dir, "viewer.tar.gz"))
	cmd.Env = append(os.Environ(), "BACKUPD_TOKEN="+s.tokens["viewer"])
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "403") || !strings.Contains(string(b), "admin token") {
		t.Errorf("viewer: %v\n%s", err, b)
	}
	if _, err := os.Stat(filepath.Join(dir, "viewer.tar.gz")); err == nil {
		t.Error("a refused bundle left a file")
	}
}

func checkBundle(t *testing.T, files map[string]string, badJob string, secrets []string) {
	t.Helper()
	for name, body := range files {
		for _, sec := range secrets {
			if sec != "" && strings.Contains(body, sec) {
				t.Errorf("%s holds the secret %q", name, sec)
			}
		}
	}
	hist := "histories/" + badJob + ".json"
	for _, name := range []string{"README.txt", "version.json", "config.yaml", "logs.jsonl", "health.json", "storage.json", "failed-jobs.json", hist} {
		if files[name] == "" {
			var have []string
			for k := range files {
				have = append(have, k)
			}
			t.Fatalf("no %s in the bundle (has %v)", name, have)
		}
	}
	var version struct {
		Version   string `json:"version"`
		GoVersion string `json:"go_version"`
	}
	if err := json.Unmarshal([]byte(files["version.json"]), &version); err != nil || version.Version == "" || version.GoVersion == "" {
		t.Errorf("version.json: %v %s", err, files["version.json"])
	}
	var cfg config.Config
	if err := yaml.Unmarshal([]byte(files["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "apitest" || cfg.Storage["cloud"].SecretKey != config.Redacted ||
		cfg.Components["appdb"].Databases[0].Password != config.Redacted || cfg.Notifications.Webhooks[0].Secret != config.Redacted {
		t.Errorf("config.yaml:\n%s", files["config.yaml"])
	}
	// the server's own lines and the Temporal SDK's (the failed activity)
	for _, want := range []string{"backupd API listening", `"msg":"job finished"`, `"job_id":"` + badJob + `"`, `"msg":"Activity error."`} {
		if !strings.Contains(files["logs.jsonl"], want) {
			t.Errorf("logs.jsonl lacks %s:\n%.3000s", want, files["logs.jsonl"])
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(files["logs.jsonl"]), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["msg"] == nil {
			t.Errorf("logs.jsonl line %q: %v", l, err)
		}
	}
	var health, storage map[string]any
	if err := json.Unmarshal([]byte(files["health.json"]), &health); err != nil || health["overall_health"] == nil {
		t.Errorf("health.json: %v %.500s", err, files["health.json"])
	}
	if err := json.Unmarshal([]byte(files["storage.json"]), &storage); err != nil || !strings.Contains(files["storage.json"], `"local"`) {
		t.Errorf("storage.json: %v %.500s", err, files["storage.json"])
	}
	var jobs []map[string]any
	if err := json.Unmarshal([]byte(files["failed-jobs.json"]), &jobs); err != nil || len(jobs) == 0 || jobs[0]["ID"] != badJob {
		t.Errorf("failed-jobs.json: %v %.1000s", err, files["failed-jobs.json"])
	}
	var h struct {
		WorkflowID string           `json:"workflow_id"`
		Events     []map[string]any `json:"events"`
	}
	if err := json.Unmarshal([]byte(files[hist]), &h); err != nil || h.WorkflowID == "" || len(h.Events) < 3 {
		t.Fatalf("%s: %v %.1000s", hist, err, files[hist])
	}
	if h.Events[0]["eventType"] != "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED" {
		t.Errorf("first event %v", h.Events[0]["eventType"])
	}
	// payloads are decoded JSON, and the failure is in there
	if !strings.Contains(files[hist], `"encoding": "json/plain"`) || !strings.Contains(files[hist], "FAILED") {
		t.Errorf("%s has no decoded payload or no failure:\n%.3000s", hist, files[hist])
	}
}
