//go:build !lean

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"backupd/activities"
	"backupd/apiserver"
	"backupd/config"
	"backupd/logring"
	"backupd/models"
	backupdworker "backupd/worker"
)

// serverFlags are the API server's flags (each also a BACKUPD_* variable).
type serverFlags struct {
	config, listen, tlsCert, tlsKey, metricsListen string
	log                                            *logFlags
}

func addServerFlags(fs *flag.FlagSet) *serverFlags {
	f := &serverFlags{}
	fs.StringVar(&f.config, "config", os.Getenv("BACKUPD_CONFIG"), "configuration file (env BACKUPD_CONFIG)")
	fs.StringVar(&f.listen, "listen", "", "API address (env BACKUPD_API_LISTEN; default 127.0.0.1:8080)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS/WSS with this certificate (env BACKUPD_TLS_CERT)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "and this key (env BACKUPD_TLS_KEY)")
	f.log = addLogFlags(fs)
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "also serve GET /metrics here, without a token (env BACKUPD_METRICS_LISTEN; default: only on the API listener, with a viewer token)")
	return f
}

func (f *serverFlags) load() (*config.Config, error) {
	cfg, err := config.Load(f.config)
	if err != nil {
		return nil, err
	}
	if f.listen != "" {
		cfg.API.Listen = f.listen
	}
	if f.tlsCert != "" {
		cfg.API.TLSCert = f.tlsCert
	}
	if f.tlsKey != "" {
		cfg.API.TLSKey = f.tlsKey
	}
	if f.metricsListen != "" {
		cfg.API.MetricsListen = f.metricsListen
	}
	if (cfg.API.TLSCert == "") != (cfg.API.TLSKey == "") {
		return nil, errors.New("TLS needs both a certificate and a key (--tls-cert and --tls-key)")
	}
	if err := f.log.apply(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func cmdServer(ctx context.Context, args []string) error {
	return serve(ctx, "backupd server", args, false)
}

// cmdAll runs the API server and a worker in one process: the embedded default.
func cmdAll(ctx context.Context, args []string) error {
	return serve(ctx, "backupd all", args, true)
}

func serve(ctx context.Context, name string, args []string, worker bool) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := addServerFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	metrics := apiserver.NewMetrics()
	c, err := dialWithRetry(ctx, cfg, 30*time.Second, metrics.TemporalHandler())
	if err != nil {
		return err
	}
	defer c.Close()
	return runServer(ctx, cfg, c, metrics, worker, nil)
}

// recentLogs keeps this process's last log records (the server's at INFO
// and above, the Temporal SDK's that its log writes, see sdkLogger) for the
// debug bundle: a few MB at most, logring caps each record.
var recentLogs = logring.New(2000, slog.LevelInfo)

// runServer serves the API (and with worker, runs the jobs too) until ctx
// ends. ready, when set, hears the listening address and the catalog.
// metrics is the registry c reports the Temporal SDK's metrics to.
func runServer(ctx context.Context, cfg *config.Config, c client.Client, metrics *apiserver.Metrics, worker bool, ready func(addr string, store *models.Store)) error {
	store, err := models.Open(cfg.Catalog.Driver, cfg.Catalog.DSN)
	if err != nil {
		return err
	}
	defer store.Close()
	stores := activities.NewStores(cfg)
	stores.LockHorizon = activities.LockHorizon(store)
	defer stores.Close()
	log := newLogger(cfg, os.Stderr)
	var sup *workerSupervisor
	if worker {
		sup = &workerSupervisor{log: log}
	}
	srv := apiserver.New(&apiserver.Server{Cfg: cfg, Store: store, Jobs: jobClient(cfg, c), Temporal: c, Stores: stores, Log: log,
		LocalWorker: worker, LogRing: recentLogs, Metrics: metrics})
	if sup != nil {
		srv.LocalWorkerState = sup.State
	}
	if _, err := srv.EnsureCleanupSchedule(ctx); err != nil {
		log.Warn("the retention cleanup schedule could not be set up", "err", err)
	}
	if err := srv.MigrateScheduleIDs(ctx); err != nil {
		log.Error("schedules could not be moved to their own namespace", "err", err)
	}
	if h, _, err := net.SplitHostPort(cfg.Temporal.Address); err == nil && cfg.Temporal.TLSCert == "" {
		if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			// the host gateway bounds what enrolled hosts may do only if they
			// cannot reach Temporal itself
			log.Warn("Temporal is reached over the network without mutual TLS: anything that reaches it (an enrolled host too) can start, signal or end any job; firewall it from the hosts or set temporal.tls_cert/tls_key/tls_ca",
				"temporal", cfg.Temporal.Address)
		}
	}
	// the catalog activities run here: this process owns the catalog
	cw := sdkworker.New(c, activities.CatalogTaskQueue, sdkworker.Options{})
	cw.RegisterActivity(&activities.Catalog{Store: store, OnRecord: srv.OnJobRecord, Notifications: cfg.Notifications, RevokeGrant: srv.RevokeGrant, Config: cfg})
	if err := cw.Start(); err != nil {
		return fmt.Errorf("catalog worker: %w", err)
	}
	defer cw.Stop()
	// and the workflows of enrolled hosts' jobs: hosts run only their
	// activities, through the host gateway
	hw := sdkworker.New(c, activities.HostJobsTaskQueue, sdkworker.Options{})
	backupdworker.RegisterWorkflows(hw)
	// and the server's own work on hosts' repositories (verification),
	// with the keys only it holds
	hw.RegisterActivity(&activities.Activities{Config: cfg, Stores: stores})
	if err := hw.Start(); err != nil {
		return fmt.Errorf("host jobs worker: %w", err)
	}
	defer hw.Stop()
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("API listener: %w", err)
	}
	merr := make(chan error, 1)
	if cfg.API.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.API.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics listener (--metrics-listen %s): %w", cfg.API.MetricsListen, err)
		}
		log.Info("backupd metrics listening, without a token", "url", "http://"+mln.Addr().String()+"/metrics")
		go func() { merr <- srv.ServeMetrics(ctx, mln) }()
	} else {
		merr <- nil
	}
	werr := make(chan error, 1)
	if worker {
		go func() {
			werr <- sup.run(ctx, func(ctx context.Context, started func()) error {
				return runWorker(ctx, cfg, c, nil, activities.LockHorizon(store), started)
			})
		}()
	}
	scheme := "http"
	if cfg.API.TLSCert != "" {
		scheme = "https"
	}
	log.Info("backupd API listening", "url", scheme+"://"+ln.Addr().String()+"/cloud-integration", "worker", worker)
	if ready != nil {
		ready(scheme+"://"+ln.Addr().String(), store)
	}
	err = srv.Serve(ctx, ln, cfg.API.TLSCert, cfg.API.TLSKey)
	if e := <-merr; err == nil && e != nil && !errors.Is(e, http.ErrServerClosed) {
		err = fmt.Errorf("metrics listener: %w", e)
	}
	if worker {
		if e := <-werr; err == nil {
			err = e
		}
	}
	return err
}

// cmdToken manages API tokens directly in the catalog (bootstrap: the
// first admin token cannot come from the API).
func cmdToken(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(os.Stderr, "usage: backupd token create --role viewer|operator|admin [--name NAME] [--expires 720h] [--config FILE]")
		return errUsage
	}
	fs := flag.NewFlagSet("backupd token create", flag.ContinueOnError)
	role := fs.String("role", "", "viewer, operator or admin")
	name := fs.String("name", "", "who uses the token (default: <role>-cli)")
	expires := fs.Duration("expires", 0, "lifetime (e.g. 720h); 0: no expiry")
	cfg, err := loadConfig(fs, args[1:])
	if err != nil {
		return err
	}
	if *role == "" {
		return &exitError{exitUsage, errors.New("--role is required (viewer, operator or admin)")}
	}
	if *name == "" {
		*name = *role + "-cli"
	}
	store, err := models.Open(cfg.Catalog.Driver, cfg.Catalog.DSN)
	if err != nil {
		return err
	}
	defer store.Close()
	plain, _, err := store.CreateToken(ctx, *name, *role, "backupd token create", *expires)
	if err != nil {
		return err
	}
	fmt.Println(plain)
	return nil
}

// temporalTLS builds the client TLS config when the configuration asks.
func temporalTLS(t config.Temporal) (*tls.Config, error) {
	if t.TLSCert == "" && t.TLSCA == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if host, _, err := net.SplitHostPort(t.Address); err == nil {
		tc.ServerName = strings.Trim(host, "[]")
	}
	if t.TLSCert != "" {
		kp, err := tls.LoadX509KeyPair(t.TLSCert, t.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("temporal TLS client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	if t.TLSCA != "" {
		pem, err := os.ReadFile(t.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("temporal TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("temporal TLS CA %s: no certificates", t.TLSCA)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// workerSupervisor runs the in-process worker and, when it cannot start
// (a location unreachable, a password that opens no key entry), says why
// at ERROR and tries again, backing off to a minute; the API reports its
// state (status, health, and the progress of jobs that wait for it).
type workerSupervisor struct {
	log *slog.Logger
	mu  sync.Mutex
	st  apiserver.WorkerState
}

func (w *workerSupervisor) State() apiserver.WorkerState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st
}

func (w *workerSupervisor) set(running bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.st.Running, w.st.Since, w.st.Error = running, time.Now().UTC(), ""
	if err != nil {
		w.st.Error = err.Error()
	}
	w.st.Attempts++
}

// run calls start until ctx ends; start blocks while the worker runs and
// calls started once it polls.
func (w *workerSupervisor) run(ctx context.Context, start func(ctx context.Context, started func()) error) error {
	backoff := 2 * time.Second
	for {
		err := start(ctx, func() {
			w.set(true, nil)
			w.log.Info("the worker polls its task queue")
		})
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("the worker stopped")
		}
		w.set(false, err)
		w.log.Error("the worker cannot start; jobs for this host wait until it does (retrying)", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}
