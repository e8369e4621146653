package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"backupd/config"
)

// cmdDebugBundle fetches the debug bundle from the running server's API.
// The bundle's parts live in the server (its recent log records, its
// Temporal client for the workflow histories, its view of health), so it
// is always the server that builds it; the configuration only says where
// the server listens and which certificate it serves.
func cmdDebugBundle(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd debug-bundle", flag.ContinueOnError)
	server := fs.String("server", os.Getenv("BACKUPD_SERVER"), "API base URL, e.g. http://127.0.0.1:8080 (env BACKUPD_SERVER; default: api.listen of --config)")
	tokenFile := fs.String("token-file", "", "file holding an admin API token (default: env BACKUPD_TOKEN)")
	output := fs.String("output", "", "file to write (default: the server's name for it, in this directory; - for stdout)")
	failed := fs.Int("failed-jobs", 10, "how many of the last failed jobs to include, with their workflow histories (0..50)")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	base, client, err := apiClient(cfg, *server)
	if err != nil {
		return err
	}
	token, err := adminToken(*tokenFile)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/cloud-integration/backup/debug-bundle?failed_jobs=%d", base, *failed), nil)
	if err != nil {
		return fmt.Errorf("--server %q: %w", base, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("the server at %s does not answer (%v): start it (backupd server or all), or name it with --server", base, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		var e struct{ Code, Message string }
		b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		hint := ""
		switch res.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = " (the bundle needs an admin token: backupd token create --role admin)"
		}
		return fmt.Errorf("the server refused the debug bundle: %d %s: %s%s", res.StatusCode, e.Code, e.Message, hint)
	}
	name := *output
	if name == "" {
		name = "backupd-debug.tar.gz"
		if _, p, err := mime.ParseMediaType(res.Header.Get("Content-Disposition")); err == nil && p["filename"] != "" {
			name = filepath.Base(p["filename"])
		}
	}
	var w io.Writer = os.Stdout
	if name != "-" {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("--output: %w", err)
		}
		defer f.Close()
		w = f
	}
	n, err := io.Copy(w, res.Body)
	if err != nil {
		return fmt.Errorf("debug bundle cut short after %d bytes: %w", n, err)
	}
	if f, ok := w.(*os.File); ok && f != os.Stdout {
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s (%d bytes); it holds no secrets, but read it before you send it\n", name, n)
	}
	return nil
}

// apiClient is the API's base URL and a client for it: --server, or the
// configuration's listener (with its own certificate trusted, so a
// self-signed one works on the host).
func apiClient(cfg *config.Config, server string) (string, *http.Client, error) {
	client := &http.Client{Timeout: 5 * time.Minute}
	if server == "" {
		host, port, err := net.SplitHostPort(cfg.API.Listen)
		if err != nil {
			return "", nil, fmt.Errorf("api.listen %q: %w; name the server with --server", cfg.API.Listen, err)
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		scheme := "http"
		if cfg.API.TLSCert != "" {
			scheme = "https"
		}
		server = scheme + "://" + net.JoinHostPort(host, port)
	}
	server = strings.TrimRight(server, "/")
	if !strings.HasPrefix(server, "http://") && !strings.HasPrefix(server, "https://") {
		return "", nil, fmt.Errorf("--server %q: want http://HOST:PORT or https://HOST:PORT", server)
	}
	if strings.HasPrefix(server, "https://") && cfg.API.TLSCert != "" {
		pem, err := os.ReadFile(cfg.API.TLSCert)
		if err != nil {
			return "", nil, fmt.Errorf("the API's certificate (api.tls_cert): %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(pem)
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return server, client, nil
}

// adminToken reads the token from a file or BACKUPD_TOKEN (never a flag's
// value: that would show in ps).
func adminToken(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("--token-file %s is empty", file)
	}
	if t := strings.TrimSpace(os.Getenv("BACKUPD_TOKEN")); t != "" {
		return t, nil
	}
	return "", errors.New("no API token: set BACKUPD_TOKEN or --token-file to an admin token (backupd token create --role admin)")
}
