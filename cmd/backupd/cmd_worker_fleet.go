//go:build !lean

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"backupd/activities"
	"backupd/api"
	"backupd/apiclient"
	"backupd/buildinfo"
	"backupd/config"
	"backupd/enrolment"
	"backupd/hostinfo"
	"backupd/tlspin"
)

// cmdWorker runs a worker: the server's own host's (its configuration's
// task queue), or an enrolled host's (DIR/host/enrolment.json: its own
// name, task queue and Temporal, announced to the server every minute).
// --enrol URL [TOKEN] enrols this host first.
func cmdWorker(ctx context.Context, args []string) error {
	flags := flag.NewFlagSet("backupd worker", flag.ContinueOnError)
	lf := addLogFlags(flags)
	enrolURL, enrolToken, args, err := cutEnrol(args)
	if err != nil {
		return err
	}
	var name, fingerprint string
	var insecureHTTP bool
	flags.StringVar(&name, "name", "", "with --enrol: this host's name (default: the configuration's host, else the hostname)")
	flags.StringVar(&fingerprint, "server-fingerprint", "", "with --enrol: the server's certificate fingerprint (sha256:...), as the enrolment answer gives it")
	flags.BoolVar(&insecureHTTP, "insecure-http", false, "with --enrol: allow a plain-HTTP server that is not on this machine")
	flags.Var(enrolFlagDoc{}, "enrol", "URL [TOKEN]: enrol this host with the server at URL, then run as its worker (the token may come from BACKUPD_ENROL_TOKEN instead)")
	cfg, err := loadConfig(flags, args)
	if err != nil {
		return err
	}
	if err := lf.apply(cfg); err != nil {
		return err
	}
	dir := filepath.Join(cfg.VarDir, "host")
	if enrolURL != "" {
		if enrolToken == "" {
			enrolToken = os.Getenv("BACKUPD_ENROL_TOKEN")
		} else {
			fmt.Fprintln(os.Stderr, "backupd worker: warning: a token on the command line is visible to other local users (ps); BACKUPD_ENROL_TOKEN is not")
		}
		if enrolToken == "" {
			return &exitError{exitUsage, fmt.Errorf("--enrol %s: give the enrolment token after the URL or in BACKUPD_ENROL_TOKEN (an admin makes one: backupd host enrol-token)", enrolURL)}
		}
		if name == "" {
			name = cfg.Host // the configuration's, or the hostname
		}
		hi := hostinfo.Get()
		st, err := enrolment.Enrol(ctx, dir, enrolURL, enrolToken, enrolment.Options{Name: name, Fingerprint: fingerprint,
			InsecureHTTP: insecureHTTP, Components: cfg.HostComponents(), HardwareID: hi.HardwareID, OS: hi.SystemVersion,
			Version: buildinfo.Version(), Notice: func(m string) { fmt.Fprintln(os.Stderr, "backupd worker: "+m) }})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "backupd worker: enrolled as host %s (%s) with %s; the credential is in %s\n", st.Name, st.HostID, st.Server, dir)
	} else if name != "" || fingerprint != "" || insecureHTTP {
		return &exitError{exitUsage, fmt.Errorf("--name, --server-fingerprint and --insecure-http go with --enrol URL")}
	}
	st, err := enrolment.Load(dir)
	switch {
	case err == nil:
		// an enrolled host: its own name and task queue, Temporal through
		// the server's host gateway
		cfg.Host, cfg.Temporal.TaskQueue, cfg.Temporal.Namespace = st.Name, st.TaskQueue, st.Namespace
	case errors.Is(err, fs.ErrNotExist):
		st = nil
	default:
		return err
	}
	central := &activities.Central{}
	announce := func() api.AnnounceRequest {
		hi := hostinfo.Get()
		return api.AnnounceRequest{HardwareID: hi.HardwareID, OS: hi.SystemVersion, Version: buildinfo.Version(),
			Components: reportComponents(cfg, central), CentralVersion: central.Version()}
	}
	if st != nil {
		// a revoked host stops here, before it takes any job
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ans, err := st.Announce(actx, announce(), dir)
		if err == nil && applyCentral(central, ans) {
			// at once, so the server sees what this worker runs with
			_, err = st.Announce(actx, announce(), dir)
		}
		cancel()
		if errors.Is(err, enrolment.ErrRevoked) || errors.Is(err, apiclient.ErrPinMismatch) {
			return err
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "backupd worker: warning: cannot reach the server to announce this host (%v); starting anyway, retrying every %v\n", err, announceEvery)
		}
		useHostStorage(cfg, st, dir)
	}
	if st == nil {
		c, err := dialTemporal(cfg, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(os.Stderr, "backupd worker: task queue %s on %s\n", cfg.Temporal.TaskQueue, cfg.Temporal.Address)
		return runWorker(ctx, cfg, c, nil, nil, nil)
	}
	c, err := dialHostGateway(cfg, st)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(os.Stderr, "backupd worker: task queue %s through the host gateway of %s\n", cfg.Temporal.TaskQueue, st.Server)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	revoked := make(chan error, 1)
	go func() {
		if err := st.Keep(wctx, announceEvery, announce, func(ans *api.Announced) bool { return applyCentral(central, ans) }, slog.Default()); err != nil {
			revoked <- err
			stop()
		}
	}()
	err = runWorker(wctx, cfg, c, central, nil, nil)
	select {
	case rerr := <-revoked:
		return fmt.Errorf("stopping: %w", rerr)
	default:
	}
	// said at once, so the server shows the host offline now rather than
	// after two missed announcements
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	req := announce()
	req.Stopping = true
	if _, aerr := st.Announce(sctx, req, ""); aerr != nil {
		slog.Warn("could not tell the server this worker is stopping", "err", aerr)
	}
	cancel()
	return err
}

// announceEvery: how often an enrolled host's worker announces itself
// (the server calls a host silent for two of these offline);
// BACKUPD_ANNOUNCE_EVERY overrides it (tests).
var announceEvery = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("BACKUPD_ANNOUNCE_EVERY")); err == nil && d >= 100*time.Millisecond {
		return d
	}
	return time.Minute
}()

// enrolFlagDoc only documents --enrol in the usage; cutEnrol takes its
// values out of the arguments before the flags are parsed.
type enrolFlagDoc struct{}

func (enrolFlagDoc) String() string   { return "" }
func (enrolFlagDoc) Set(string) error { return nil }

// cutEnrol takes "--enrol URL [TOKEN]" (or --enrol=URL [TOKEN]) out of
// args: a TOKEN is the next argument when it is not a flag.
func cutEnrol(args []string) (url, token string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "enrol" {
			rest = append(rest, a)
			continue
		}
		if url != "" {
			return "", "", nil, &exitError{exitUsage, fmt.Errorf("--enrol given twice")}
		}
		if !hasVal {
			if i+1 >= len(args) || strings.HasPrefix(args[i+1], "-") {
				return "", "", nil, &exitError{exitUsage, fmt.Errorf("--enrol needs the server's URL: --enrol https://HOST:PORT TOKEN")}
			}
			i++
			val = args[i]
		}
		url = val
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
			token = args[i]
		}
	}
	return url, token, rest, nil
}

// useHostStorage points an enrolled host's jobs at its repositories in
// the server's locations (through the server, with its write-only key);
// its own configuration's storage is not used.
func useHostStorage(cfg *config.Config, st *enrolment.State, dir string) {
	cfg.HostKeyFile = filepath.Join(dir, enrolment.KeyFile)
	cfg.Storage = map[string]config.Location{}
	for _, l := range st.Locations {
		cfg.Storage[l] = config.Location{URL: "backupd+" + st.Server + "/" + l, HostToken: st.Credential, HostPin: st.Fingerprint}
	}
	cfg.Primary = ""
	if len(st.Locations) > 0 {
		cfg.Primary = st.Locations[0]
	}
}

// dialHostGateway connects an enrolled host's worker to Temporal through
// the server's host gateway: the server's API address, its pinned
// certificate, the host's credential. The host needs no route to Temporal
// and gets no access to it beyond its own activity tasks.
func dialHostGateway(cfg *config.Config, st *enrolment.State) (client.Client, error) {
	u, err := url.Parse(st.Server)
	if err != nil {
		return nil, fmt.Errorf("the enrolment's server address %q: %w", st.Server, err)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"https": "443", "http": "80"}[u.Scheme])
	}
	co := client.ConnectionOptions{TLSDisabled: u.Scheme == "http"}
	if u.Scheme == "https" {
		co.TLS = tlspin.Config(st.Fingerprint)
	}
	c, err := client.Dial(client.Options{HostPort: addr, Namespace: st.Namespace, Identity: st.Name,
		Credentials: client.NewAPIKeyStaticCredentials(st.Credential), ConnectionOptions: co, Logger: sdkLogger(cfg)})
	if err != nil {
		return nil, fmt.Errorf("the host gateway of %s: %w", st.Server, err)
	}
	return c, nil
}

// applyCentral takes the server's central components when their version
// changed; true when it did.
func applyCentral(c *activities.Central, ans *api.Announced) bool {
	if ans == nil || ans.CentralVersion == c.Version() {
		return false
	}
	comps := make(map[string]config.Component, len(ans.Central))
	var names []string
	for n, x := range ans.Central {
		comps[n] = config.Component{Description: x.Description, Paths: x.Paths, Include: x.Include, Exclude: x.Exclude}
		names = append(names, n)
	}
	sort.Strings(names)
	c.Set(ans.CentralVersion, comps)
	slog.Info("applied the server's central components", "version", ans.CentralVersion, "components", strings.Join(names, ","))
	return true
}

// reportComponents is what this host says it has: its configuration's
// components and the server's central ones (which replace a local one of
// the same name), each with what is wrong with it here.
func reportComponents(cfg *config.Config, central *activities.Central) []api.HostComponent {
	var out []api.HostComponent
	for _, hc := range cfg.HostComponents() {
		if _, ok := central.Get(hc.Name); ok {
			continue
		}
		hc.Source, hc.Problems = "local", pathProblems(hc.Paths)
		out = append(out, hc)
	}
	for _, n := range central.Names() {
		c, _ := central.Get(n)
		out = append(out, api.HostComponent{Name: n, Kind: c.Kind(), Paths: c.Paths, Source: "central", Problems: pathProblems(c.Paths)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// pathProblems says which of a component's paths this host cannot read.
func pathProblems(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			out = append(out, p+": does not exist on this host")
		} else if err != nil {
			out = append(out, p+": "+err.Error())
		}
		if len(out) == 100 {
			break
		}
	}
	return out
}
