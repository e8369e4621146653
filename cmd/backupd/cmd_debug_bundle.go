package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"backupd/apiclient"
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
	token, err := adminToken(*tokenFile)
	if err != nil {
		return err
	}
	base, ca, err := serverOf(cfg, *server, os.Getenv("BACKUPD_CA_FILE"))
	if err != nil {
		return err
	}
	c, err := apiclient.New(base, token, apiclient.Options{CAFile: ca, Timeout: 5 * time.Minute})
	if err != nil {
		return err
	}
	res, err := c.Download(ctx, apiclient.EpDebugBundle.Path, url.Values{"failed_jobs": {strconv.Itoa(*failed)}})
	if err != nil {
		var ae *apiclient.Error
		if errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden) {
			return fmt.Errorf("the server refused the debug bundle: %d %v (the bundle needs an admin token: backupd token create --role admin)", ae.StatusCode, err)
		}
		return clientError(err)
	}
	defer res.Body.Close()
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

// adminToken reads the token from a file or BACKUPD_TOKEN (never a flag's
// value: that would show in ps).
func adminToken(file string) (string, error) {
	t, err := readToken("", file)
	if err != nil && file == "" {
		return "", errors.New("no API token: set BACKUPD_TOKEN or --token-file to an admin token (backupd token create --role admin)")
	}
	return t, err
}
