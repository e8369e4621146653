package main

// What the server commands (backup, restore, schedule, jobs, status,
// health, debug-bundle) share: finding the server and the token, errors
// that name the fix, exit codes, tables and JSON output. They talk to a
// running server through its public API only (package apiclient).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"backupd/api"
	"backupd/apiclient"
	"backupd/config"
)

// The advice for the commonest mistakes, written once.
const (
	startServerHint = "start it with make run or backupd all, or name it with --server or BACKUPD_SERVER"
	noTokenHint     = "no API token: give --token or set BACKUPD_TOKEN (or --token-file FILE); create one with backupd token create --role operator"
)

// clientFlags are the flags every server command takes.
type clientFlags struct {
	config    string
	server    string
	token     string
	tokenFile string
	caFile    string
	json      bool
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", os.Getenv("BACKUPD_CONFIG"), "configuration file, for the server's address and certificate (env BACKUPD_CONFIG)")
	fs.StringVar(&f.server, "server", os.Getenv("BACKUPD_SERVER"), "API base URL, http://HOST:PORT or https://HOST:PORT (env BACKUPD_SERVER; default: api.listen of --config, else http://127.0.0.1:8080)")
	fs.StringVar(&f.token, "token", "", "API token (default: env BACKUPD_TOKEN; a flag's value shows in ps, the environment does not)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the API token")
	fs.StringVar(&f.caFile, "ca-file", os.Getenv("BACKUPD_CA_FILE"), "https: PEM certificate(s) to trust, e.g. a self-signed server's (env BACKUPD_CA_FILE; default: api.tls_cert of --config)")
	fs.BoolVar(&f.json, "json", false, "print the API's JSON answers as they come (with --wait: one line per message)")
}

// parseArgs parses flags and positional arguments in any order (backupd
// backup show ID --json): it returns exactly want positional arguments,
// or a usage error naming them.
func parseArgs(fs *flag.FlagSet, args []string, want ...string) ([]string, error) {
	if flagProbe != nil {
		flagProbe(fs)
		return nil, errProbed
	}
	fs.SetOutput(os.Stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &exitError{code: exitOK, err: errors.New("")}
			}
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) > len(want) {
		return nil, usageErr("unexpected argument %q", pos[len(want)])
	}
	if len(pos) < len(want) {
		return nil, usageErr("%s: name the %s", fs.Name(), strings.Join(want[len(pos):], " and "))
	}
	return pos, nil
}

func usageErr(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

// serverOf is the API's base URL and the certificate to trust: --server,
// or the configuration's listener (on loopback when it listens
// everywhere; https with its own certificate trusted when it serves TLS,
// so a self-signed one works on the host).
func serverOf(cfg *config.Config, server, caFile string) (base, ca string, err error) {
	if server == "" {
		host, port, err := net.SplitHostPort(cfg.API.Listen)
		if err != nil {
			return "", "", fmt.Errorf("api.listen %q: %w; name the server with --server", cfg.API.Listen, err)
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
		return "", "", fmt.Errorf("--server %q: want http://HOST:PORT or https://HOST:PORT", server)
	}
	if caFile == "" && strings.HasPrefix(server, "https://") && cfg.API.TLSCert != "" {
		if _, err := os.Stat(cfg.API.TLSCert); err != nil {
			return "", "", fmt.Errorf("the API's certificate (api.tls_cert): %w", err)
		}
		caFile = cfg.API.TLSCert
	}
	return server, caFile, nil
}

// readToken is the token: --token, --token-file, or BACKUPD_TOKEN.
func readToken(flagValue, file string) (string, error) {
	if t := strings.TrimSpace(flagValue); t != "" {
		return t, nil
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageErr("--token-file: %v", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", usageErr("--token-file %s is empty", file)
	}
	if t := strings.TrimSpace(os.Getenv("BACKUPD_TOKEN")); t != "" {
		return t, nil
	}
	return "", usageErr("%s", noTokenHint)
}

// connect is the client the flags describe. The configuration is read
// only when it is named or needed (no --server).
func (f *clientFlags) connect() (*apiclient.Client, error) {
	token, err := readToken(f.token, f.tokenFile)
	if err != nil {
		return nil, err
	}
	cfg := &config.Config{}
	if f.config != "" || f.server == "" {
		if cfg, err = config.Load(f.config); err != nil {
			return nil, err
		}
	}
	base, ca, err := serverOf(cfg, f.server, f.caFile)
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	c, err := apiclient.New(base, token, apiclient.Options{CAFile: ca})
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	return c, nil
}

// clientSession is one server command's connection and output.
type clientSession struct {
	c      *apiclient.Client
	json   bool
	out    io.Writer // results
	errw   io.Writer // progress and notes
	tty    bool      // out is a terminal: tables and human sizes
	ttyErr bool      // errw is a terminal: a redrawn progress bar
	width  func() int
}

func newSession(c *apiclient.Client, jsonOut bool) *clientSession {
	// JSON keeps control characters escaped by itself; text for people
	// goes through termSafe
	var out, errw io.Writer = safeWriter{os.Stdout}, safeWriter{os.Stderr}
	if jsonOut {
		out = os.Stdout
	}
	return &clientSession{c: c, json: jsonOut, out: out, errw: errw,
		tty: term.IsTerminal(int(os.Stdout.Fd())), ttyErr: term.IsTerminal(int(os.Stderr.Fd())),
		width: func() int {
			if w, _, err := term.GetSize(int(os.Stderr.Fd())); err == nil && w > 0 {
				return w
			}
			return 80
		}}
}

// open parses the flags and the positional arguments and connects.
func (f *clientFlags) open(fs *flag.FlagSet, args []string, want ...string) (*clientSession, []string, error) {
	pos, err := parseArgs(fs, args, want...)
	if err != nil {
		return nil, nil, err
	}
	c, err := f.connect()
	if err != nil {
		return nil, nil, err
	}
	return newSession(c, f.json), pos, nil
}

// raw prints an answer as it came, on one line.
func (s *clientSession) raw(b json.RawMessage) {
	s.out.Write(append(compactJSON(b), '\n'))
}

func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// table prints rows under a header: aligned columns on a terminal, tab-
// separated lines otherwise (a stable form for scripts).
func (s *clientSession) table(header []string, rows [][]string) {
	for _, r := range rows {
		for i := range r {
			r[i] = cell(r[i])
		}
	}
	if !s.tty {
		fmt.Fprintln(s.out, strings.Join(header, "\t"))
		for _, r := range rows {
			fmt.Fprintln(s.out, strings.Join(r, "\t"))
		}
		return
	}
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// size is a byte count for a table: human on a terminal, exact otherwise.
func (s *clientSession) size(n int64) string {
	if s.tty {
		return humanSize(n)
	}
	return fmt.Sprint(n)
}

// humanSize is a byte count in the API's decimal units, the way people
// write it in a table ("73 MB", not "73.0 MB").
func humanSize(n int64) string { return strings.Replace(api.HumanSize(n), ".0 ", " ", 1) }

// clock is seconds as HH:MM:SS.
func clock(sec float64) string {
	s := int64(sec + 0.5)
	if s < 0 {
		s = 0
	}
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// forbidden reads the roles from the server's 403 message ("... needs the
// admin role; this token has operator").
var forbidden = regexp.MustCompile(`needs the (\w+) role(?:; this token has (\w+))?`)

// codeHints are what to run here for an error code, beside the server's
// suggested actions.
var codeHints = map[string]string{
	"BACKUP_007": "backupd backup list shows the backups",
	"BACKUP_015": "backupd jobs shows the jobs",
	"BACKUP_002": "backupd jobs --status running shows the running jobs",
}

// clientError is an API client's error as the CLI says it: the server's
// code and message, what to do about it, and the exit code (2 for a
// request the server found wrong, which is a flag's value; 1 otherwise).
func clientError(err error) error {
	if err == nil {
		return nil
	}
	var ue *apiclient.UnreachableError
	if errors.As(err, &ue) {
		return &exitError{exitFail, fmt.Errorf("%v: %s", err, startServerHint)}
	}
	var ae *apiclient.Error
	if !errors.As(err, &ae) {
		return err
	}
	var b strings.Builder
	b.WriteString(ae.Error())
	var actions []string
	switch ae.StatusCode {
	case 401:
		actions = append(actions, "the server does not accept this token (unknown, expired or revoked): check --token, --token-file or BACKUPD_TOKEN; create one with backupd token create --role operator")
	case 403:
		if m := forbidden.FindStringSubmatch(ae.Body.Message); m != nil {
			yours := ""
			if m[2] != "" {
				yours = "; your token is " + m[2]
			}
			actions = append(actions, fmt.Sprintf("this needs the %s role%s: use a token with it (backupd token create --role %s)", m[1], yours, m[1]))
		}
	}
	actions = append(actions, ae.Body.SuggestedActions...)
	if h, ok := codeHints[ae.Body.Code]; ok {
		actions = append(actions, h)
	}
	if len(actions) > 0 {
		b.WriteString("\nsuggested actions:")
		for _, a := range actions {
			b.WriteString("\n  - " + a)
		}
	}
	if ae.Body.RequestID != "" && ae.StatusCode >= 500 {
		b.WriteString("\nrequest id: " + ae.Body.RequestID)
	}
	code := exitFail
	if ae.StatusCode == 400 {
		code = exitUsage
	}
	return &exitError{code, errors.New(b.String())}
}

// splitList is a comma-separated list's words.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// oneOfFlag checks a flag's value against the API's list of words.
func oneOfFlag(name, v string, allowed []string) error {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return usageErr("--%s %q: want one of %s", name, v, strings.Join(allowed, ", "))
}

// timeFlag is a time for a list's since/until: RFC 3339, a date, or an
// age like 36h or 7d (that long ago).
func timeFlag(name, v string, now time.Time) (string, error) {
	if v == "" {
		return "", nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC().Format(time.RFC3339), nil
		}
	}
	age, err := time.ParseDuration(v)
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n int
		if _, e := fmt.Sscanf(days, "%d", &n); e == nil && fmt.Sprint(n) == days {
			age, err = time.Duration(n)*24*time.Hour, nil
		}
	}
	if err != nil || age < 0 {
		return "", usageErr("--%s %q: want a time (2025-03-15T02:00:00Z, 2025-03-15) or an age (36h, 7d)", name, v)
	}
	return now.Add(-age).UTC().Format(time.RFC3339), nil
}

// optBool is a boolean flag that is sent only when given.
type optBool struct{ v *bool }

func (o *optBool) String() string {
	if o == nil || o.v == nil {
		return ""
	}
	return fmt.Sprint(*o.v)
}

func (o *optBool) Set(s string) error {
	switch s {
	case "true", "1", "yes":
		o.v = ptrTo(true)
	case "false", "0", "no":
		o.v = ptrTo(false)
	default:
		return fmt.Errorf("want true or false")
	}
	return nil
}

func (o *optBool) IsBoolFlag() bool { return true }

func ptrTo[T any](v T) *T { return &v }

// interrupted says the wait stopped while the job goes on.
func interrupted(jobID, follow string) error {
	return &exitError{exitFail, fmt.Errorf("stopped waiting; job %s keeps running on the server: follow it with %s (or cancel it: backupd jobs cancel %s)", jobID, follow, jobID)}
}

// stdinIsTerminal: a confirmation can be asked.
var stdinIsTerminal = func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

// confirm asks a yes/no question on the terminal.
func confirm(ctx context.Context, in io.Reader, w io.Writer, question string) bool {
	fmt.Fprintf(w, "%s [y/N] ", question)
	answer := make(chan string, 1)
	go func() {
		var s string
		fmt.Fscanln(in, &s)
		answer <- strings.ToLower(strings.TrimSpace(s))
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(w)
		return false
	case a := <-answer:
		return a == "y" || a == "yes"
	}
}
