package tests

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/schema_validation"
)

// checkAnswer fails the test when an answer does not match the running
// server's own OpenAPI document (fetched once, without a token) for its
// route and status: the document cannot drift from what the server says.
func (s *apiStack) checkAnswer(req *http.Request, status int, header http.Header, raw []byte) {
	s.t.Helper()
	if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
		var e struct{ Code string }
		json.Unmarshal(raw, &e)
		if e.Code == "NOT_FOUND" || e.Code == "METHOD_NOT_ALLOWED" {
			return // no route: nothing in the document to check against
		}
	}
	s.loadOpenAPI()
	res := &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(bytes.NewReader(raw)), Request: req}
	if ok, errs := s.oas.ValidateHttpResponse(req, res); !ok {
		var b strings.Builder
		for _, e := range errs {
			j, _ := json.Marshal(e)
			b.Write(j)
			b.WriteByte('\n')
		}
		s.t.Errorf("%s %s: the %d answer does not match openapi.json:\n%.2000s\n%s", req.Method, req.URL.Path, status, raw, b.String())
	}
}

// loadOpenAPI fetches the running server's openapi.json once, without a token.
func (s *apiStack) loadOpenAPI() {
	s.t.Helper()
	if s.oas != nil {
		return
	}
	res, err := s.client.Get(s.base + "/cloud-integration/backup/openapi.json")
	if err != nil {
		s.t.Fatalf("openapi.json: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		s.t.Fatalf("openapi.json without a token: %d %s", res.StatusCode, b)
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		s.t.Fatalf("openapi.json: %v", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		s.t.Fatalf("openapi.json: %v", errs)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		s.t.Fatalf("openapi.json: %v", err)
	}
	s.oas, s.oasMessage = v, model.Model.Components.Schemas.GetOrZero("WebSocketMessage").Schema()
}

// checkMessages fails the test for every WebSocket message that does not
// match the document's WebSocketMessage schema.
func (s *apiStack) checkMessages(t *testing.T, raw [][]byte) {
	t.Helper()
	s.loadOpenAPI()
	sv := schema_validation.NewSchemaValidator()
	for _, m := range raw {
		if ok, errs := sv.ValidateSchemaString(s.oasMessage, string(m)); !ok {
			var b strings.Builder
			for _, e := range errs {
				j, _ := json.Marshal(e)
				b.Write(j)
				b.WriteByte('\n')
			}
			t.Errorf("WebSocket message does not match openapi.json's WebSocketMessage:\n%.2000s\n%s", m, b.String())
		}
	}
}
