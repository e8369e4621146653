package tests

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
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
	if s.oas == nil {
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
		s.oas = v
	}
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
