// Package console is backupd's web console: static files (HTML, CSS and
// JavaScript modules, no build step) embedded in the binary and served by
// the API server at / on the same origin, so it needs no CORS and rides the
// API's TLS. It talks to the server only through the public API and its
// WebSocket, with the token the user signs in with.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// CSP is the console's Content-Security-Policy: scripts and styles from
// this origin only (no inline script, no eval), API calls and the
// WebSocket to this origin only, never framed.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type file struct {
	data  []byte
	etag  string
	ctype string
}

// Handler serves the console: / is the page, /assets/... its files.
func Handler() http.Handler {
	files := map[string]file{}
	fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		files[strings.TrimPrefix(p, "static/")] = file{b, `"` + hex.EncodeToString(sum[:8]) + `"`, ct}
		return nil
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "" {
			name = "index.html"
		} else if !strings.HasPrefix(name, "assets/") {
			http.NotFound(w, r)
			return
		} else {
			name = strings.TrimPrefix(name, "assets/")
		}
		f, ok := files[name]
		if !ok || name == "index.html" && r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Content-Type", f.ctype)
		// revalidated on every load: a new binary's console is used at once
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		if r.Header.Get("If-None-Match") == f.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		w.Write(f.data)
	})
}
