package apiserver

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The console uses only the public API: every API path its scripts name
// is a route of the table the OpenAPI document is generated from.
func TestConsoleUsesOnlyDocumentedRoutes(t *testing.T) {
	s, _ := testServer(t, "sqlite")
	// '/backup/…', "/backup/…" or `/backup/…${x}…`, up to the query
	lit := regexp.MustCompile("['\"`](/(?:backup|ws)/[^'\"`?]*)")
	param := regexp.MustCompile(`\$\{[^}]*\}`)
	used := 0
	err := filepath.WalkDir("../console/static/js", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			path := param.ReplaceAllString(m[1], "{x}")
			if strings.HasSuffix(path, "/") {
				path += "{x}" // a prefix a value is appended to
			}
			used++
			if !s.routeMatches(path) {
				t.Errorf("%s uses %s, which is no route of the API", p, m[1])
			}
		}
		return nil
	})
	if err != nil || used < 20 {
		t.Fatalf("read the console's scripts: %v (%d paths found)", err, used)
	}
}

// routeMatches: path (with {x} for any segment) is a route's path.
func (s *Server) routeMatches(path string) bool {
	seg := strings.Split(path, "/")
	for _, rt := range s.routes {
		rs := strings.Split(rt.Path, "/")
		if len(rs) != len(seg) {
			continue
		}
		ok := true
		for i := range rs {
			if rs[i] != seg[i] && !(strings.HasPrefix(rs[i], "{") && (seg[i] == "{x}" || !strings.Contains(seg[i], "{"))) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// The console is served at / with its CSP; unknown files are 404 and
// the API's paths keep their JSON errors.
func TestConsoleIsServedWithItsPolicy(t *testing.T) {
	s, _ := testServer(t, "sqlite")
	get := func(path string, hdr ...string) *http.Response {
		req := httptest.NewRequest("GET", path, nil)
		if len(hdr) == 2 {
			req.Header.Set(hdr[0], hdr[1])
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Result()
	}
	res := get("/")
	csp := res.Header.Get("Content-Security-Policy")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") ||
		res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("/: %d %v", res.StatusCode, res.Header)
	}
	if res := get("/assets/js/app.js"); res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Type"), "javascript") {
		t.Fatalf("app.js: %d %v", res.StatusCode, res.Header)
	}
	etag := get("/assets/app.css").Header.Get("ETag")
	if res := get("/assets/app.css", "If-None-Match", etag); etag == "" || res.StatusCode != 304 {
		t.Fatalf("app.css revalidation: %q %d", etag, res.StatusCode)
	}
	for _, p := range []string{"/assets/nope.js", "/assets/index.html", "/index.html", "/assets/../console.go", "/console.go"} {
		if res := get(p); res.StatusCode != 404 && res.StatusCode != 301 {
			t.Errorf("%s: %d", p, res.StatusCode)
		}
	}
	if res := get("/cloud-integration/nope"); res.StatusCode != 404 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Errorf("an unknown API path: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
}
