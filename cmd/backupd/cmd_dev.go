//go:build !lean

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"gopkg.in/yaml.v3"

	"backupd/apiserver"
	"backupd/config"
	"backupd/models"
	"backupd/storage/s3/s3test"
	"backupd/storage/sftp/sftptest"
	temporalconfig "backupd/temporal-config"
)

// cmdDev runs the whole embedded stack for development and demos: a
// Temporal dev server (SQLite under var/), an S3 server (versitygw, data
// under var/s3) and an SFTP server (data under var/sftp) on loopback, and
// backupd's worker, with a starter configuration whose three locations
// (local, cloud, remote) all work. Ctrl-C stops everything.
func cmdDev(ctx context.Context, args []string) (err error) {
	fs := flag.NewFlagSet("backupd dev", flag.ContinueOnError)
	varDir := fs.String("var", envOr("BACKUPD_VAR_DIR", "var"), "state directory (env BACKUPD_VAR_DIR)")
	ip := fs.String("ip", "127.0.0.1", "address every server binds to")
	tport := fs.Int("temporal-port", envInt("BACKUPD_TEMPORAL_PORT", 7233), "Temporal frontend port (env BACKUPD_TEMPORAL_PORT)")
	uiport := fs.Int("ui-port", envInt("BACKUPD_UI_PORT", 8233), "Temporal Web UI port (env BACKUPD_UI_PORT)")
	sftpPort := fs.Int("sftp-port", envInt("BACKUPD_SFTP_PORT", 2222), "SFTP server port (env BACKUPD_SFTP_PORT)")
	apiListen := fs.String("listen", envOr("BACKUPD_API_LISTEN", "127.0.0.1:8080"), "API address (env BACKUPD_API_LISTEN)")
	lf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := lf.check(); err != nil {
		return err
	}
	dir, err := filepath.Abs(*varDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	self, _ := os.Executable()
	binDir := filepath.Dir(self)

	// Temporal
	taddr := net.JoinHostPort(*ip, strconv.Itoa(*tport))
	tcmd := exec.Command(filepath.Join(binDir, "temporal"), temporalconfig.DevServerArgs(
		filepath.Join(dir, "temporal.db"), *ip, *tport, *uiport, "default")...)
	tlog, _ := os.Create(filepath.Join(dir, "temporal.log"))
	tcmd.Stdout, tcmd.Stderr = tlog, tlog
	tcmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := tcmd.Start(); err != nil {
		return fmt.Errorf("starting the Temporal dev server (%s; build it with 'make bin/temporal'): %w", tcmd.Path, err)
	}
	// Temporal exiting is noticed at once (a port in use, a damaged
	// database), with the end of its log, rather than after a long dial.
	texit := make(chan error, 1)
	go func() { texit <- tcmd.Wait() }()
	defer stopChild(tcmd, texit, 15*time.Second)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-texit:
			texit <- err // for stopChild
			temporalGone := fmt.Errorf("the Temporal dev server exited (%v); the end of %s:\n%s", err, tlog.Name(), tail(tlog.Name(), 15))
			cancel(temporalGone)
		case <-ctx.Done():
		}
	}()

	// S3
	s3srv, err := s3test.StartServer(filepath.Join(binDir, "versitygw"), filepath.Join(dir, "s3"))
	if err != nil {
		return fmt.Errorf("starting the S3 server: %w", err)
	}
	defer s3srv.Stop()

	// SFTP
	if err := os.MkdirAll(filepath.Join(dir, "sftp", "data"), 0o700); err != nil {
		return err
	}
	sftp, err := sftptest.StartEnv(filepath.Join(dir, "sftp", "data"), filepath.Join(dir, "sftp", "keys"),
		sftptest.Options{Addr: net.JoinHostPort(*ip, strconv.Itoa(*sftpPort))})
	if err != nil {
		return fmt.Errorf("starting the SFTP server: %w", err)
	}
	defer sftp.Close()

	cfgPath, err := writeDevConfig(dir, taddr, *ip, *uiport, s3srv, sftp)
	if err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	if err := lf.apply(cfg); err != nil {
		return err
	}
	metrics := apiserver.NewMetrics()
	c, err := dialWithRetry(ctx, cfg, 60*time.Second, metrics.TemporalHandler())
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		return fmt.Errorf("%w (see %s)", err, tlog.Name())
	}
	defer c.Close()
	cfg.API.Listen = *apiListen
	defer func() {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause // Temporal's exit is why everything stopped
		}
	}()
	return runServer(ctx, cfg, c, metrics, true, func(apiURL string, store *models.Store) {
		// a fresh admin token at each start (older ones stay valid until
		// revoked), also kept in var/admin-token for scripts
		tok, _, err := store.CreateToken(ctx, "dev-admin", "admin", "backupd dev", 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "backupd dev: creating the admin token:", err)
			return
		}
		os.WriteFile(filepath.Join(dir, "admin-token"), []byte(tok+"\n"), 0o600)
		fmt.Printf(`
backupd development stack is up.
  Web console:         %s/   (sign in with the admin token below)
  API:                 %s/v1/cloud-integration   (also %s/cloud-integration)
  Admin token:         %s
                       (also in %s; more: bin/backupd token create --role operator --config %s)
  Temporal Web UI:     %s
  Temporal frontend:   %s
  S3 (versitygw):      %s  (bucket backupd, data in %s)
  SFTP:                %s  (data in %s)
  Configuration:       %s

Try:  curl -s -H "Authorization: Bearer $(cat %s)" %s/v1/cloud-integration/backup/status
Ctrl-C stops everything.
`, apiURL, apiURL, apiURL, tok, filepath.Join(dir, "admin-token"), cfgPath, cfg.Temporal.UIURL, taddr, s3srv.Endpoint, s3srv.Dir,
			sftp.Addr, filepath.Join(dir, "sftp", "data"), cfgPath, filepath.Join(dir, "admin-token"), apiURL)
	})
}

func dialWithRetry(ctx context.Context, cfg *config.Config, max time.Duration, metrics client.MetricsHandler) (client.Client, error) {
	deadline := time.Now().Add(max)
	for {
		c, err := dialTemporal(cfg, metrics)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// writeDevConfig writes var/backupd.yaml for this run's servers, and a
// repository password on first use.
func writeDevConfig(dir, taddr, ip string, uiport int, s3srv *s3test.Server, sftp *sftptest.Env) (string, error) {
	pwFile := filepath.Join(dir, "repository-password")
	if _, err := os.Stat(pwFile); errors.Is(err, os.ErrNotExist) {
		b := make([]byte, 16)
		rand.Read(b)
		if err := os.WriteFile(pwFile, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
			return "", err
		}
	}
	dataDir := filepath.Join(dir, "data")
	os.MkdirAll(dataDir, 0o755)
	// database dumps land here until the databases component dumps
	// PostgreSQL itself (issue 6); the spec's examples name the component
	dbDir := filepath.Join(dir, "databases")
	os.MkdirAll(dbDir, 0o755)
	if _, err := os.Stat(filepath.Join(dbDir, "README.txt")); err != nil {
		os.WriteFile(filepath.Join(dbDir, "README.txt"), []byte("The 'databases' component of the development stack backs up this directory.\n"), 0o644)
	}
	readme := filepath.Join(dataDir, "README.txt")
	if _, err := os.Stat(readme); err != nil {
		os.WriteFile(readme, []byte("The 'data' component of the development stack backs up this directory.\n"), 0o644)
	}
	cfg := config.Config{
		VarDir: dir, PasswordFile: pwFile, Primary: "local",
		Temporal: config.Temporal{Address: taddr, Namespace: "default",
			UIURL: "http://" + net.JoinHostPort(ip, strconv.Itoa(uiport))},
		Catalog: config.Catalog{Driver: "sqlite", DSN: filepath.Join(dir, "catalog.db")},
		Components: map[string]config.Component{
			"data":      {Description: "application data", Paths: []string{dataDir}},
			"databases": {Description: "database dumps", Paths: []string{dbDir}},
		},
		Storage: map[string]config.Location{
			"local": {URL: filepath.Join(dir, "backups", "local"), Media: "disk"},
			"cloud": {URL: "s3://backupd/cloud?endpoint=" + s3srv.Endpoint + "&path_style=true&region=us-east-1",
				AccessKey: s3srv.AccessKey, SecretKey: s3srv.SecretKey, Offsite: true, Media: "object"},
			"remote": {URL: "sftp://" + sftp.User + "@" + net.JoinHostPort(sftp.Host, sftp.Port) + "/backups",
				SSHKey: sftp.KeyFile, KnownHosts: sftp.KnownHostsFile, Offsite: true, Media: "remote-disk"},
		},
	}
	// the host's own components, exactly as a Linux host gets them by
	// default (one definition: config.DefaultComponents, in the README)
	for name, c := range config.DefaultComponents() {
		if name != "data" {
			cfg.Components[name] = c
		}
	}
	b, err := yaml.Marshal(&cfg)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "backupd.yaml")
	return p, os.WriteFile(p, append([]byte("# Written by 'backupd dev' at each start; edit a copy for a real host.\n"), b...), 0o600)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// stopChild interrupts a child (as Ctrl-C would) and kills it if it has
// not exited within grace; exited hears its Wait.
func stopChild(cmd *exec.Cmd, exited chan error, grace time.Duration) {
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-exited
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
