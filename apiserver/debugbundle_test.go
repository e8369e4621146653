package apiserver

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"backupd/config"
	"backupd/logring"
	"backupd/models"
)

const canary = "CANARY-s3cr3t-7f3a"

// plantSecrets puts the canary in every secret-bearing string field of
// the configuration, found the way a reader of Config would: by the
// field's name (config.IsSecretName), not by a list.
func plantSecrets(v reflect.Value, name string, tag reflect.StructTag) int {
	n := 0
	switch v.Kind() {
	case reflect.String:
		if config.IsSecretName(name) && tag.Get("redact") != "path" {
			v.SetString(canary)
			return 1
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			n += plantSecrets(v.Field(i), strings.Split(f.Tag.Get("yaml"), ",")[0], f.Tag)
		}
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		n += plantSecrets(v.Elem(), name, tag)
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			n += plantSecrets(v.Index(i), name, tag)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			n += plantSecrets(e, name, tag)
			v.SetMapIndex(k, e)
		}
	}
	return n
}

func readBundle(t *testing.T, b []byte) map[string]string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		_, name, _ := strings.Cut(h.Name, "/")
		files[name] = string(body)
	}
	return files
}

func TestDebugBundleHoldsEverythingButSecrets(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	ctx := context.Background()
	cfg := s.Cfg
	// every kind of place a secret can sit: each secret-named field, a
	// URL's password, a URL's secret query parameter, a DSN's password
	cfg.Components["db"] = config.Component{Databases: []config.Database{{Kind: "postgresql", Host: "127.0.0.1", User: "app", Database: "app"}}}
	cfg.Notifications.Webhooks = []config.Webhook{{Name: "ops", URL: "https://hooks.example/x?token=" + canary}}
	cfg.Storage["remote"] = config.Location{URL: "sftp://backupd:" + canary + "@127.0.0.1:1/backups"}
	loc := cfg.Storage["cloud"]
	loc.URL += "&secret_key=" + canary
	cfg.Storage["cloud"] = loc
	cfg.Catalog = config.Catalog{Driver: "postgres", DSN: "host=127.0.0.1 user=backupd password=" + canary + " dbname=backupd"}
	cfg.Temporal.Address = "127.0.0.1:1"
	planted := plantSecrets(reflect.ValueOf(cfg).Elem(), "", "")
	if planted < 6 {
		t.Fatalf("only %d secret fields found in the configuration", planted)
	}
	raw, _ := yaml.Marshal(cfg)
	if got := strings.Count(string(raw), canary); got < planted+4 {
		t.Fatalf("the canary is in %d places of the configuration, want %d", got, planted+4)
	}

	ring := logring.New(100, slog.LevelInfo)
	s.LogRing = ring
	s.Log = slog.New(ring.Handler(slog.DiscardHandler))
	s.Log.Info("a record the bundle keeps", "job_id", "job-1")
	s.Log.Warn("connecting", "password", canary, "err", "dial sftp://backupd:"+canary+"@127.0.0.1:1: refused")

	now := time.Now().UTC()
	req, _ := json.Marshal(map[string]any{"components": []string{"db"}, "db_password": canary})
	for i, id := range []string{"job-old", "job-1"} {
		j := &models.Job{ID: id, Type: "backup", Status: "failed", Started: now.Add(time.Duration(i) * time.Minute),
			Request: req, Error: "open s3://b/p?secret_key=" + canary + ": refused", ErrorCode: "BACKUP_003"}
		if err := s.Store.PutJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	s.Store.PutJob(ctx, &models.Job{ID: "job-ok", Type: "backup", Status: "completed", Started: now})

	r := httptest.NewRequest("GET", "/cloud-integration/backup/debug-bundle?failed_jobs=1", nil)
	r.Header.Set("Authorization", "Bearer "+toks["admin"])
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/gzip" ||
		!strings.Contains(rec.Header().Get("Content-Disposition"), "backupd-debug-h-") {
		t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body.String())
	}
	files := readBundle(t, rec.Body.Bytes())
	for name, body := range files {
		if strings.Contains(body, canary) || strings.Contains(body, "s3cr3t") {
			t.Errorf("%s holds the secret:\n%s", name, body)
		}
	}
	for _, name := range []string{"README.txt", "version.json", "config.yaml", "logs.jsonl", "health.json", "storage.json",
		"failed-jobs.json", "histories/job-1.error.txt"} {
		if _, ok := files[name]; !ok {
			t.Errorf("no %s in the bundle (has %v)", name, keys(files))
		}
	}
	if len(files) != 8 {
		t.Errorf("files %v: failed_jobs=1 should bring one job", keys(files))
	}
	// the redacted configuration is still the configuration
	var back config.Config
	if err := yaml.Unmarshal([]byte(files["config.yaml"]), &back); err != nil {
		t.Fatal(err)
	}
	if back.Host != "h" || back.Storage["local"].URL != cfg.Storage["local"].URL || back.Storage["cloud"].SecretKey != config.Redacted ||
		!strings.Contains(back.Catalog.DSN, "password="+config.Redacted) {
		t.Errorf("config.yaml:\n%s", files["config.yaml"])
	}
	if n := strings.Count(files["config.yaml"], config.Redacted); n < planted+4 {
		t.Errorf("%d secrets redacted in config.yaml, %d planted:\n%s", n, planted+4, files["config.yaml"])
	}
	if !strings.Contains(files["logs.jsonl"], `"msg":"a record the bundle keeps"`) || !strings.Contains(files["logs.jsonl"], `"password":"[REDACTED]"`) {
		t.Errorf("logs.jsonl:\n%s", files["logs.jsonl"])
	}
	var jobs []map[string]any
	if err := json.Unmarshal([]byte(files["failed-jobs.json"]), &jobs); err != nil || len(jobs) != 1 || jobs[0]["ID"] != "job-1" {
		t.Errorf("failed-jobs.json: %v\n%s", err, files["failed-jobs.json"])
	}
	if !strings.Contains(files["histories/job-1.error.txt"], "no workflow id") {
		t.Errorf("history error: %s", files["histories/job-1.error.txt"])
	}
	var health map[string]any
	if err := json.Unmarshal([]byte(files["health.json"]), &health); err != nil || health["overall_health"] == nil {
		t.Errorf("health.json: %v %s", err, files["health.json"])
	}
	var version map[string]any
	if json.Unmarshal([]byte(files["version.json"]), &version); version["version"] == nil || version["go_version"] == nil {
		t.Errorf("version.json: %s", files["version.json"])
	}
	// audited as a download
	entries, _, err := s.Store.ListAudit(ctx, models.AuditFilter{Action: "debug_bundle.download", Limit: 10, Page: 1})
	if err != nil || len(entries) != 1 || entries[0].Outcome != "success" || !strings.Contains(entries[0].Detail, "1 failed jobs") {
		t.Errorf("audit: %v %+v", err, entries)
	}

	// a viewer or operator gets none
	for _, role := range []string{"viewer", "operator"} {
		res, _ := call(t, s, "GET", "/cloud-integration/backup/debug-bundle", toks[role], nil)
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d", role, res.StatusCode)
		}
	}
	res, body := call(t, s, "GET", "/cloud-integration/backup/debug-bundle?failed_jobs=500", toks["admin"], nil)
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body["message"].(string), "failed_jobs") {
		t.Errorf("failed_jobs=500: %d %v", res.StatusCode, body)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestDecodePayloadsMakesHistoriesReadable(t *testing.T) {
	// a history event as protojson writes it: payload data in base64
	ev := `{"eventType":"EVENT_TYPE_ACTIVITY_TASK_SCHEDULED","activityTaskScheduledEventAttributes":{"input":{"payloads":[
		{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"eyJwYXNzd29yZCI6IkNBTkFSWSIsInBhdGgiOiIvc3J2In0="}]}}}`
	var v any
	if err := json.Unmarshal([]byte(ev), &v); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(redactJSON(decodePayloads(v)))
	if !strings.Contains(string(out), `"value":{"password":"[REDACTED]","path":"/srv"}`) {
		t.Fatalf("%s", out)
	}
}
