package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"backupd/config"
)

func TestDebugBundleFindsTheServer(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		"0.0.0.0:9000":   "http://127.0.0.1:9000", // listening everywhere: ask on loopback
		"[::]:9000":      "http://127.0.0.1:9000",
		":8080":          "http://127.0.0.1:8080",
		"10.0.0.5:8080":  "http://10.0.0.5:8080",
	} {
		got, _, err := serverOf(&config.Config{API: config.API{Listen: listen}}, "", "")
		if err != nil || got != want {
			t.Errorf("api.listen %s: %q %v, want %s", listen, got, err, want)
		}
	}
	if got, _, err := serverOf(&config.Config{}, "https://backupd.example:8443/", ""); err != nil || got != "https://backupd.example:8443" {
		t.Errorf("--server: %q %v", got, err)
	}
	if _, _, err := serverOf(&config.Config{}, "backupd.example:8443", ""); err == nil || !strings.Contains(err.Error(), "want http://HOST:PORT") {
		t.Errorf("a server without a scheme: %v", err)
	}
	cert := filepath.Join(t.TempDir(), "missing.pem")
	if _, _, err := serverOf(&config.Config{API: config.API{Listen: "127.0.0.1:8443", TLSCert: cert}}, "", ""); err == nil || !strings.Contains(err.Error(), "api.tls_cert") {
		t.Errorf("an unreadable certificate: %v", err)
	}
	// the configuration's certificate is trusted for its https server,
	// unless a CA file is named; never for http
	os.WriteFile(cert, []byte("pem"), 0o600)
	if base, ca, err := serverOf(&config.Config{API: config.API{Listen: "0.0.0.0:8443", TLSCert: cert}}, "", ""); err != nil || base != "https://127.0.0.1:8443" || ca != cert {
		t.Errorf("https from the configuration: %q %q %v", base, ca, err)
	}
	if _, ca, _ := serverOf(&config.Config{API: config.API{TLSCert: cert}}, "https://other:8443", "/my/ca.pem"); ca != "/my/ca.pem" {
		t.Errorf("--ca-file: %q", ca)
	}
	if _, ca, _ := serverOf(&config.Config{API: config.API{TLSCert: cert}}, "http://other:8080", ""); ca != "" {
		t.Errorf("http: %q", ca)
	}
}

func TestDebugBundleToken(t *testing.T) {
	t.Setenv("BACKUPD_TOKEN", "")
	if _, err := adminToken(""); err == nil || !strings.Contains(err.Error(), "BACKUPD_TOKEN") || !strings.Contains(err.Error(), "--role admin") {
		t.Errorf("no token: %v", err)
	}
	t.Setenv("BACKUPD_TOKEN", " bkd_env \n")
	if tok, err := adminToken(""); err != nil || tok != "bkd_env" {
		t.Errorf("env: %q %v", tok, err)
	}
	f := filepath.Join(t.TempDir(), "token")
	os.WriteFile(f, []byte("bkd_file\n"), 0o600)
	if tok, err := adminToken(f); err != nil || tok != "bkd_file" {
		t.Errorf("file: %q %v", tok, err)
	}
	os.WriteFile(f, []byte("\n"), 0o600)
	if _, err := adminToken(f); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
}

func TestDebugBundleWithoutAServer(t *testing.T) {
	t.Setenv("BACKUPD_TOKEN", "bkd_x")
	dir := t.TempDir()
	code := run(t.Context(), []string{"debug-bundle", "--server", "http://127.0.0.1:1", "--output", filepath.Join(dir, "b.tar.gz")})
	if code != exitFail {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.tar.gz")); err == nil {
		t.Error("a file was left")
	}
}
