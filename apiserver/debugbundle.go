package apiserver

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"

	"backupd/buildinfo"
	"backupd/config"
	"backupd/models"
)

// The debug bundle: what an operator sends when asking for help, in one
// tar.gz, with no secret in it. Everything in it passes through the
// configuration's redaction (config.Redact for the configuration,
// config.IsSecretName and config.RedactString for every other value: log
// attributes, job requests, workflow payloads).

// Bounds of a bundle.
const (
	bundleFailedJobsDefault = 10
	bundleFailedJobsMax     = 50
	bundleHistoryEvents     = 5000
	bundleHistoryTimeout    = 15 * time.Second
)

const bundleReadme = `backupd debug bundle
====================

version.json        the binary's build: module version, commit, build time
config.yaml         the server's configuration, every secret replaced by [REDACTED]
logs.jsonl          the server's most recent log records (oldest first), one JSON object a line
health.json         GET /backup/health as it answered when the bundle was made
storage.json        GET /backup/storage: each location's health, usage and capacity
failed-jobs.json    the most recent failed jobs from the catalog (newest first)
histories/JOB.json  each of those jobs' Temporal workflow history (payloads decoded from JSON);
                    JOB.error.txt when it could not be read

Secrets (passwords, keys, tokens, a DSN's or URL's password) are replaced by
[REDACTED] wherever they would appear.
`

func (s *Server) debugBundle(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "failed_jobs"); err != nil {
		return err
	}
	n, err := intParam(q.Get("failed_jobs"), "failed_jobs", bundleFailedJobsDefault, 0, bundleFailedJobsMax)
	if err != nil {
		return err
	}
	ctx := r.Context()
	now := time.Now().UTC()
	dir := fmt.Sprintf("backupd-debug-%s-%s", s.Cfg.Host, now.Format("20060102T150405Z"))
	var files []bundleFile
	add := func(name string, body []byte) { files = append(files, bundleFile{dir + "/" + name, body}) }

	add("README.txt", []byte(bundleReadme))
	add("version.json", mustJSON(buildinfo.Get()))
	cfgYAML, err := yaml.Marshal(config.Redact(s.Cfg))
	if err != nil {
		return err
	}
	add("config.yaml", cfgYAML)

	var logs bytes.Buffer
	records := 0
	if s.LogRing != nil {
		for _, e := range s.LogRing.Entries() {
			e.Message = config.RedactString(e.Message)
			for k, v := range e.Attrs {
				e.Attrs[k] = redactField(k, v)
			}
			line, _ := json.Marshal(e)
			logs.Write(line)
			logs.WriteByte('\n')
			records++
		}
	} else {
		logs.WriteString(`{"msg":"this server keeps no log records in memory"}` + "\n")
	}
	add("logs.jsonl", logs.Bytes())

	add("health.json", s.capture(r, s.getHealth))
	add("storage.json", s.capture(r, s.getStorage))

	var failed []models.Job
	if n > 0 {
		if failed, err = s.Store.ListJobs(ctx, models.JobFilter{Statuses: []string{"failed"}, Limit: n, Page: 1}); err != nil {
			return err
		}
	}
	jobsOut := make([]any, 0, len(failed))
	for _, j := range failed {
		jobsOut = append(jobsOut, redactJSON(toJSONValue(j)))
		name := "histories/" + safeFileName(j.ID)
		if hist, err := s.workflowHistory(ctx, j.WorkflowID, j.RunID); err != nil {
			add(name+".error.txt", []byte(config.RedactString(err.Error())+"\n"))
		} else {
			add(name+".json", hist)
		}
	}
	add("failed-jobs.json", mustJSON(jobsOut))

	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.body)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if st := stateOf(r); st != nil {
		st.outcomeDetail = fmt.Sprintf("debug bundle: %d log records, %d failed jobs", records, len(failed))
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", dir+".tar.gz"))
	w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(buf.Bytes())
	if err != nil {
		s.Log.Warn("debug bundle download cut short", "err", err)
	}
	return nil
}

type bundleFile struct {
	name string
	body []byte
}

// capture runs a GET handler of this API for the bundle and returns what
// it answered (an error as the API's error object).
func (s *Server) capture(r *http.Request, h func(http.ResponseWriter, *http.Request) error) []byte {
	req := r.Clone(r.Context())
	req.URL.RawQuery = ""
	cw := &captureWriter{header: http.Header{}}
	if err := h(cw, req); err != nil && cw.status == 0 {
		s.writeError(cw, req, err)
	}
	var v any
	if json.Unmarshal(cw.body.Bytes(), &v) != nil {
		return cw.body.Bytes()
	}
	return mustJSON(redactJSON(v))
}

type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(st int) {
	if c.status == 0 {
		c.status = st
	}
}
func (c *captureWriter) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return c.body.Write(b)
}

// workflowHistory is a workflow run's history as a JSON array of events,
// its JSON payloads decoded (so inputs, results and failures read as
// JSON) and redacted.
func (s *Server) workflowHistory(ctx context.Context, workflowID, runID string) ([]byte, error) {
	if workflowID == "" {
		return nil, fmt.Errorf("the catalog has no workflow id for this job")
	}
	ctx, cancel := context.WithTimeout(ctx, bundleHistoryTimeout)
	defer cancel()
	it := s.Temporal.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	events := []any{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("workflow %s run %s: %w", workflowID, runID, err)
		}
		if len(events) == bundleHistoryEvents {
			events = append(events, map[string]any{"truncated": fmt.Sprintf("only the first %d events are included", bundleHistoryEvents)})
			break
		}
		raw, err := protojson.Marshal(ev)
		if err != nil {
			return nil, err
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		events = append(events, redactJSON(decodePayloads(v)))
	}
	return mustJSON(map[string]any{"workflow_id": workflowID, "run_id": runID, "events": events}), nil
}

// decodePayloads replaces each Temporal payload's base64 data by the JSON
// it holds (encoding json/plain), so the history is readable and its
// values can be redacted.
func decodePayloads(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if md, ok := x["metadata"].(map[string]any); ok {
			if data, ok := x["data"].(string); ok {
				if enc, ok := md["encoding"].(string); ok && decode64(enc) == "json/plain" {
					var val any
					if err := json.Unmarshal([]byte(decode64(data)), &val); err == nil {
						return map[string]any{"encoding": "json/plain", "value": val}
					}
				}
			}
		}
		for k, e := range x {
			x[k] = decodePayloads(e)
		}
	case []any:
		for i, e := range x {
			x[i] = decodePayloads(e)
		}
	}
	return v
}

func decode64(s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return ""
	}
	return string(b)
}

// redactJSON hides secrets in a decoded JSON value: the value of every
// key named like a secret, and the secrets inside any string.
func redactJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if config.IsSecretName(k) {
				if isEmptyJSON(e) {
					continue
				}
				x[k] = config.Redacted
				continue
			}
			x[k] = redactJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = redactJSON(e)
		}
	case string:
		return config.RedactString(x)
	}
	return v
}

func isEmptyJSON(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case float64:
		return x == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

func redactField(key, value string) string {
	if config.IsSecretName(key) && value != "" {
		return config.Redacted
	}
	return config.RedactString(value)
}

func toJSONValue(v any) any {
	var out any
	json.Unmarshal(mustJSON(v), &out)
	return out
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return b
}

func safeFileName(s string) string {
	return strings.Map(func(c rune) rune {
		if c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			return c
		}
		return '_'
	}, s)
}
