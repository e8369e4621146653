package apiserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"

	"backupd/api"
)

// docValidator is a validator of s's OpenAPI document, built once a server.
func docValidator(t testing.TB, s *Server) (validator.Validator, libopenapi.Document) {
	t.Helper()
	validators.Lock()
	defer validators.Unlock()
	if v, ok := validators.m[s]; ok {
		return v.v, v.d
	}
	b, err := json.Marshal(s.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("openapi.json: %v", errs)
	}
	validators.m[s] = struct {
		v validator.Validator
		d libopenapi.Document
	}{v, doc}
	return v, doc
}

var validators = struct {
	sync.Mutex
	m map[*Server]struct {
		v validator.Validator
		d libopenapi.Document
	}
}{m: map[*Server]struct {
	v validator.Validator
	d libopenapi.Document
}{}}

func validationText[E any](errs []E) string {
	var b strings.Builder
	for _, e := range errs {
		j, _ := json.Marshal(e)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// The document is valid OpenAPI 3.1 (the validator checks it against the
// specification's own schema), and every body is described, not a bare
// object.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	s, _ := testServer(t, "sqlite")
	v, _ := docValidator(t, s)
	if ok, errs := v.ValidateDocument(); !ok {
		t.Fatalf("openapi.json is not valid OpenAPI 3.1:\n%s", validationText(errs))
	}
	doc := s.OpenAPI()
	defs := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for _, rt := range s.routes {
		if rt.Body == nil {
			continue
		}
		d, ok := defs[api.Name(rt.Body)].(map[string]any)
		if !ok || len(d["properties"].(map[string]any)) == 0 {
			t.Errorf("%s %s: body %s has no described fields: %v", rt.Method, rt.Path, api.Name(rt.Body), d)
		}
	}
	for _, name := range []string{"Error", "WebSocketMessage", "BackupProgressMessage", "RestoreProgressMessage", "JobCompleteMessage",
		"StorageAlertMessage", "ScheduleEventMessage"} {
		if defs[name] == nil {
			t.Errorf("no component %s", name)
		}
	}
	if doc["components"].(map[string]any)["securitySchemes"].(map[string]any)["bearer"] == nil {
		t.Error("no bearer security scheme")
	}
}

func specText(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"../../shared/spec/backup-recovery-api.rst", "../shared/spec/backup-recovery-api.rst"} {
		if b, err := os.ReadFile(p); err == nil {
			return string(b)
		}
	}
	// the spec is not part of the repository (the document and
	// docs/api.md are what users read); where a checkout has it beside,
	// its examples are checked too, as tests/specPath does
	t.Skip("the spec (../shared/spec) is not beside the project")
	return ""
}

// specBlock is one indented code block of the spec, with the route of the
// http:get/post directive it sits under.
type specBlock struct{ kind, text, method, path string }

// specBlocks extracts the spec's sourcecode:: http and code-block:: json
// blocks, unindented.
func specBlocks(spec string) []specBlock {
	var out []specBlock
	start := regexp.MustCompile(`^(\s*)\.\. (?:sourcecode|code-block):: (http|json)\s*$`)
	directive := regexp.MustCompile(`^\.\. http:([a-z]+):: (\S+)`)
	var method, path string
	lines := strings.Split(spec, "\n")
	for i := 0; i < len(lines); i++ {
		if d := directive.FindStringSubmatch(lines[i]); d != nil {
			method, path = strings.ToUpper(d[1]), d[2]
		}
		m := start.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		var body []string
		indent := -1
		for j := i + 1; j < len(lines); j++ {
			l := lines[j]
			if strings.TrimSpace(l) == "" {
				body = append(body, "")
				continue
			}
			n := len(l) - len(strings.TrimLeft(l, " "))
			if indent < 0 {
				indent = n
			}
			if n < indent {
				break
			}
			body = append(body, l[indent:])
			i = j
		}
		out = append(out, specBlock{m[2], strings.TrimSpace(strings.Join(body, "\n")), method, path})
	}
	return out
}

// specRequests are the spec's example requests that carry a body.
func specRequests(t *testing.T, spec string) []*http.Request {
	var out []*http.Request
	for _, b := range specBlocks(spec) {
		if b.kind != "http" || !regexp.MustCompile(`^(POST|PUT|PATCH|DELETE) /`).MatchString(b.text) {
			continue
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(strings.Replace(b.text, "\n\n", "\r\n\r\n", 1) + "\n")))
		if err != nil {
			t.Fatalf("spec request %q: %v", b.text[:40], err)
		}
		_, body, _ := strings.Cut(b.text, "\n\n")
		req.ContentLength = int64(len(body))
		req.Body = nopBody(body)
		out = append(out, req)
	}
	return out
}

func nopBody(s string) *readCloser { return &readCloser{bytes.NewReader([]byte(s))} }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// Every example request body of the spec is valid against the
// document's request schema for its route; a body with a field the
// server refuses is not (the check can fail).
func TestSpecRequestExamplesMatchTheSchemas(t *testing.T) {
	spec := specText(t)
	s, _ := testServer(t, "sqlite")
	v, _ := docValidator(t, s)
	reqs := specRequests(t, spec)
	if len(reqs) < 7 {
		t.Fatalf("found %d example requests with a body in the spec, want the 7 it has", len(reqs))
	}
	for _, req := range reqs {
		body, _ := readAll(req)
		req.Body = nopBody(body)
		if ok, errs := v.ValidateHttpRequest(req); !ok {
			t.Errorf("spec example %s %s does not match its schema:\n%s\n%s", req.Method, req.URL.Path, body, validationText(errs))
		}
		// the same with a field no schema has is refused
		var m map[string]any
		json.Unmarshal([]byte(body), &m)
		m["no_such_field"] = 1
		bad, _ := json.Marshal(m)
		req.Body = nopBody(string(bad))
		req.ContentLength = int64(len(bad))
		if ok, _ := v.ValidateHttpRequest(req); ok {
			t.Errorf("%s %s: a body with an unknown field passes the schema", req.Method, req.URL.Path)
		}
	}
	t.Logf("%d example requests of the spec match the document", len(reqs))
}

func readAll(r *http.Request) (string, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r.Body)
	return b.String(), err
}

// The spec's WebSocket messages and its error answer are valid against
// the document's components.
func TestSpecMessageExamplesMatchTheSchemas(t *testing.T) {
	spec := specText(t)
	s, _ := testServer(t, "sqlite")
	_, doc := docValidator(t, s)
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	schema := func(name string) *base.Schema {
		p := model.Model.Components.Schemas.GetOrZero(name)
		if p == nil {
			t.Fatalf("no component %s", name)
		}
		return p.Schema()
	}
	sv := schema_validation.NewSchemaValidator()
	n := 0
	for _, b := range specBlocks(spec) {
		text := b.text
		name := ""
		if b.kind == "json" && strings.Contains(text, `"type":`) {
			name = "WebSocketMessage"
		} else if b.kind == "http" && strings.HasPrefix(text, "HTTP/1.1 4") {
			name = "Error"
			_, text, _ = strings.Cut(text, "\n\n")
		} else {
			continue
		}
		n++
		if ok, errs := sv.ValidateSchemaString(schema(name), text); !ok {
			t.Errorf("spec example does not match %s:\n%s\n%s", name, text, validationText(errs))
		}
	}
	if n != 6 {
		t.Fatalf("found %d WebSocket and error examples in the spec, want 6", n)
	}
	// a message of an unknown type matches none
	if ok, _ := sv.ValidateSchemaString(schema("WebSocketMessage"), `{"type": "backup_gossip", "job_id": "x"}`); ok {
		t.Error("an unknown message type passes")
	}
}

// checkAnswer fails the test when an answer does not match the document's
// response schema for its route and status. Every call of these tests goes
// through it. res.Body is left readable.
func checkAnswer(t testing.TB, s *Server, req *http.Request, res *http.Response) {
	t.Helper()
	body, _ := io.ReadAll(res.Body)
	res.Body = io.NopCloser(bytes.NewReader(body))
	if res.StatusCode >= 300 && res.StatusCode < 400 {
		return // the router's redirect to a cleaned path (/a/../b): no route's answer
	}
	if res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusMethodNotAllowed {
		var e struct{ Code string }
		json.Unmarshal(body, &e)
		if e.Code == "NOT_FOUND" || e.Code == "METHOD_NOT_ALLOWED" {
			return // no route: nothing in the document to check against (TestWrongMethodIs405WithAllow)
		}
	}
	// the route is the one the router chose (OpenAPI's matching prefers
	// /backup/cleanup to /backup/{backup_id} even for DELETE)
	var match mux.RouteMatch
	if !s.router.Match(req, &match) || match.Route == nil {
		t.Errorf("%s %s: %d answer from no route", req.Method, req.URL.Path, res.StatusCode)
		return
	}
	tpl, _ := match.Route.GetPathTemplate()
	v, doc := docValidator(t, s)
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	item := model.Model.Paths.PathItems.GetOrZero(tpl)
	if item == nil {
		t.Errorf("%s: no path %s in openapi.json", req.URL.Path, tpl)
		return
	}
	if ok, errs := v.GetResponseBodyValidator().ValidateResponseBodyWithPathItem(req, res, item, tpl); !ok {
		t.Errorf("%s %s: the %d answer does not match openapi.json:\n%s\n%s", req.Method, req.URL.Path, res.StatusCode, body, validationText(errs))
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
}

// What the document calls required, the server requires: a body without
// one required field (the others filled) is a 400 naming that field.
func TestRequiredFieldsAreRequired(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	n := 0
	for _, rt := range s.routes {
		if rt.Body == nil || strings.Contains(rt.Path, "{") {
			continue
		}
		typ := reflect.TypeOf(rt.Body)
		var required []reflect.StructField
		for i := 0; i < typ.NumField(); i++ {
			if f := typ.Field(i); f.Tag.Get("required") == "true" {
				required = append(required, f)
			}
		}
		for _, missing := range required {
			body := map[string]any{}
			for _, f := range required {
				if f.Name == missing.Name {
					continue
				}
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				switch {
				case f.Tag.Get("enum") != "":
					body[name] = api.Enums[f.Tag.Get("enum")][0]
				default:
					body[name] = "x"
				}
			}
			b, _ := json.Marshal(body)
			field, _, _ := strings.Cut(missing.Tag.Get("json"), ",")
			res, m := call(t, s, rt.Method, "/cloud-integration"+rt.Path, toks["admin"], strings.NewReader(string(b)))
			n++
			d, _ := m["details"].(map[string]any)
			if res.StatusCode != 400 || d["field"] != field {
				t.Errorf("%s %s without %s (%s): %d %v", rt.Method, rt.Path, field, b, res.StatusCode, m)
			}
		}
	}
	if n < 8 {
		t.Fatalf("only %d required fields checked", n)
	}
}

// Every example answer of the spec matches the document's schema for its
// route: the typed answers keep each field of the spec's, with its type
// (together with the answer checks, the server's answers keep the spec's
// shapes).
// specFieldsNotSent are the fields of the spec's example answers backupd
// does not send, by route, and why.
var specFieldsNotSent = map[string][]string{
	// a queued job starts when a worker takes it: its time is "started";
	// a cleanup's expected savings are in its start answer and report
	"GET /cloud-integration/backup/jobs": {"scheduled", "estimated_space_to_free"},
}

func TestSpecResponseExamplesMatchTheSchemas(t *testing.T) {
	spec := specText(t)
	s, _ := testServer(t, "sqlite")
	v, _ := docValidator(t, s)
	n := 0
	for _, b := range specBlocks(spec) {
		if b.kind != "http" || !strings.HasPrefix(b.text, "HTTP/1.1 200") || b.path == "" {
			continue
		}
		req, _ := http.NewRequest(b.method, "http://localhost"+strings.NewReplacer("{", "", "}", "").Replace(b.path), nil)
		text := b.text
		for _, key := range specFieldsNotSent[b.method+" "+b.path] {
			// a field the spec shows that backupd does not send: said here
			text = regexp.MustCompile(`(?m)^\s*"`+key+`": [^\n]*\n`).ReplaceAllString(text, "")
		}
		res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(strings.Replace(text, "\n\n", "\r\n\r\n", 1))), req)
		if err != nil {
			t.Fatalf("spec answer to %s %s: %v", b.method, b.path, err)
		}
		n++
		if ok, errs := v.ValidateHttpResponse(req, res); !ok {
			t.Errorf("the spec's answer to %s %s does not match openapi.json:\n%s", b.method, b.path, validationText(errs))
		}
	}
	if n != 18 {
		t.Fatalf("found %d example answers in the spec, want its 18", n)
	}
}
