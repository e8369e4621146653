// Package config is backupd's configuration: one YAML file plus BACKUPD_*
// environment overrides. It names the host's components (what to back up),
// the storage locations (where), and how to reach Temporal, the catalog
// and the API.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"backupd/api"
	"backupd/repository"
	"backupd/sources"
)

// Config is the whole file.
type Config struct {
	Host   string `yaml:"host"`
	VarDir string `yaml:"var_dir"`
	// HostKeyFile: an enrolled host's RSA private key, the credential of
	// its write-only key entries (set from the enrolment, not a file)
	HostKeyFile  string               `yaml:"-"`
	PasswordFile string               `yaml:"password_file"` // repository password (all locations share the key set)
	Temporal     Temporal             `yaml:"temporal"`
	API          API                  `yaml:"api"`
	Catalog      Catalog              `yaml:"catalog"`
	Worker       Worker               `yaml:"worker"`
	Components   map[string]Component `yaml:"components"`
	Storage      map[string]Location  `yaml:"storage"`
	// Primary is the location every backup is written to first; the others
	// receive copies (3-2-1). Default: "local".
	Primary       string        `yaml:"primary"`
	Notifications Notifications `yaml:"notifications"`
	// GCSafetyWindow is how long garbage collection leaves unreferenced
	// packs before deleting them (a running backup may still add a
	// reference). Default 6h; "0s" only where no backup can run during a
	// cleanup.
	GCSafetyWindow string `yaml:"gc_safety_window"`
	// Repack tunes how cleanups rewrite partly used packs.
	Repack Repack `yaml:"repack"`
	Log    Log    `yaml:"log"`
	// Approvals: four-eyes for destructive calls (only the host's
	// configuration turns it off: an API call could not be trusted to).
	Approvals Approvals `yaml:"approvals"`
}

// Approvals: when Enabled, a destructive call (deleting a backup, a real
// cleanup, changing retention, lifting protection, changing storage,
// restoring over the original paths) is held as a pending request until
// a second admin, not its requester, approves it within Expiry; with
// TOTP the approver also gives a current code of the authenticator the
// approving token enrolled.
type Approvals struct {
	Enabled bool   `yaml:"enabled"`
	TOTP    bool   `yaml:"totp"`
	Expiry  string `yaml:"expiry"` // a Go duration; default 1h
}

// ExpiryDuration is Expiry, 1h when unset.
func (a Approvals) ExpiryDuration() time.Duration {
	if d, err := time.ParseDuration(a.Expiry); err == nil && d > 0 {
		return d
	}
	return time.Hour
}

// Repack: every cleanup's garbage collection also copies the live data of
// packs with too much unused space (and of packs too small to keep) into
// new packs, so storage is reclaimed from packs a kept backup still uses.
type Repack struct {
	// Disabled: cleanups only delete packs no backup uses.
	Disabled bool `yaml:"disabled"`
	// UnusedPercent: a pack with more unused space than this share of it
	// is rewritten (1 to 99; default 10).
	UnusedPercent float64 `yaml:"unused_percent"`
	// MaxUnusedPercent: while the unused space in all packs is more than
	// this share of them, the packs with the most are rewritten too (0 to
	// 99; default 2; 0 turns this bound off).
	MaxUnusedPercent *float64 `yaml:"max_unused_percent"`
	// Budget bounds what one cleanup rewrites per location, in live bytes
	// copied ("2GiB" by default): the rest waits for the next cleanup.
	Budget string `yaml:"budget"`
}

// RepackOptions are the repack settings for a garbage collection; nil when
// repacking is disabled. (Validate has checked the values.)
func (c *Config) RepackOptions() *repository.RepackOptions {
	if c.Repack.Disabled {
		return nil
	}
	o := &repository.RepackOptions{Unused: c.Repack.UnusedPercent / 100}
	if p := c.Repack.MaxUnusedPercent; p != nil {
		o.MaxUnused = *p / 100
		if *p == 0 {
			o.MaxUnused = -1 // off
		}
	}
	if c.Repack.Budget != "" {
		o.Budget, _ = api.ParseSize(c.Repack.Budget)
	}
	return o
}

// Log is how the processes log: level debug|info|warn|error (default
// info), format text|json (default text), to standard error.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// LogLevels and LogFormats are the accepted values.
var (
	LogLevels  = []string{"debug", "info", "warn", "error"}
	LogFormats = []string{"text", "json"}
)

// SafetyWindow is GCSafetyWindow parsed; ok is false when unset.
func (c *Config) SafetyWindow() (d time.Duration, ok bool) {
	if c.GCSafetyWindow == "" {
		return 0, false
	}
	d, err := time.ParseDuration(c.GCSafetyWindow)
	return d, err == nil
}

// Notifications are where job outcomes are delivered besides the
// WebSocket's job_complete (which is always sent).
type Notifications struct {
	Webhooks []Webhook `yaml:"webhooks"`
	SMTP     *SMTP     `yaml:"smtp"`
}

// Webhook receives an HTTP POST of a JSON outcome, signed with
// HMAC-SHA-256 over the body (X-Backupd-Signature: sha256=<hex>).
type Webhook struct {
	Name       string   `yaml:"name"`
	URL        string   `yaml:"url"`
	Secret     string   `yaml:"secret"`
	SecretFile string   `yaml:"secret_file"`
	Events     []string `yaml:"events"` // success | failure | warning; empty: all
}

// SMTP sends outcomes by email.
type SMTP struct {
	Host         string   `yaml:"host"`
	Port         int      `yaml:"port"`
	From         string   `yaml:"from"`
	To           []string `yaml:"to"`
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
	Events       []string `yaml:"events"`
}

// Temporal says how to reach the Temporal frontend.
type Temporal struct {
	Address   string `yaml:"address"`
	Namespace string `yaml:"namespace"`
	TaskQueue string `yaml:"task_queue"` // default backup@<host>
	UIURL     string `yaml:"ui_url"`
	TLSCert   string `yaml:"tls_cert"`
	TLSKey    string `yaml:"tls_key" redact:"path"`
	TLSCA     string `yaml:"tls_ca"`
}

// API is the HTTP server's listener.
type API struct {
	Listen  string `yaml:"listen"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key" redact:"path"`
	// MetricsListen, when set, serves GET /metrics there without a token
	// (for a Prometheus that holds none); /metrics on Listen needs a
	// viewer's token either way.
	MetricsListen string `yaml:"metrics_listen"`
}

// Catalog is the SQL catalog.
type Catalog struct {
	Driver string `yaml:"driver"` // sqlite | postgres
	DSN    string `yaml:"dsn"`
}

// Worker tunes the Temporal worker.
type Worker struct {
	MaxConcurrentActivities int `yaml:"max_concurrent_activities"`
}

// Component is a named set of sources.
type Component struct {
	Description string     `yaml:"description"`
	Paths       []string   `yaml:"paths"`
	Include     []string   `yaml:"include"`
	Exclude     []string   `yaml:"exclude"`
	Databases   []Database `yaml:"databases"`
	// RTOSeconds and RPOSeconds are the component's recovery objectives
	// (0: none): the longest a restore may take, as restore drills
	// measure it, and the oldest its newest good backup may be.
	RTOSeconds int `yaml:"rto_seconds"`
	RPOSeconds int `yaml:"rpo_seconds"`
}

// Database is a database a component dumps (consistently, streamed into
// the backup) and restores.
type Database struct {
	Name     string `yaml:"name"` // label in the backup (default <kind>-<database>)
	Kind     string `yaml:"kind"` // postgresql | mariadb
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"`
	User     string `yaml:"user"`
	Database string `yaml:"database"`
	// PassFile: for PostgreSQL a pgpass file, for MariaDB an option file
	// with a [client] password. Password in the configuration works too
	// but is discouraged; neither is ever logged, stored or shown.
	PassFile string `yaml:"passfile"`
	Password string `yaml:"password"`
	// Globals (PostgreSQL): also dump roles and tablespaces
	// (pg_dumpall --globals-only; needs a superuser). Default true.
	Globals *bool `yaml:"globals"`
}

// Source is the engine's view of the connection.
func (d Database) Source() sources.Database {
	return sources.Database{Kind: d.Kind, Name: d.Name, Host: d.Host, Port: d.Port, User: d.User, DBName: d.Database,
		PassFile: d.PassFile, Password: d.Password, Globals: d.Kind == "postgresql" && (d.Globals == nil || *d.Globals)}
}

// Location is one storage location.
type Location struct {
	URL        string `yaml:"url"`
	SSHKey     string `yaml:"ssh_key" redact:"path"`
	KnownHosts string `yaml:"known_hosts"`
	AccessKey  string `yaml:"access_key"` // S3; default from AWS_ACCESS_KEY_ID
	SecretKey  string `yaml:"secret_key"` // S3; default from AWS_SECRET_ACCESS_KEY
	Offsite    bool   `yaml:"offsite"`
	Media      string `yaml:"media"` // disk | object | remote-disk: for the 3-2-1 check
	QuotaBytes int64  `yaml:"quota_bytes"`
	// ObjectLock makes an s3:// location immutable: what backups need is
	// locked on the server with S3 Object Lock (ObjectLock).
	ObjectLock *ObjectLock `yaml:"object_lock"`
	// AppendOnly: a local or sftp:// location backupd only adds to: it
	// never deletes nor replaces what backups need there (markers and
	// the index excepted), and a collection leaves what no backup uses
	// for a maintenance run with a credential that may delete. On SFTP
	// the server should enforce the same for the account (README).
	AppendOnly bool `yaml:"append_only"`
	// An enrolled host's location (backupd+https://): its credential and
	// the server's certificate, from the enrolment, never from a file
	HostToken string `yaml:"-"`
	HostPin   string `yaml:"-"`
}

// ObjectLock: how an s3:// location locks what backups need. Each object
// is locked when stored, for Period; every cleanup extends the locks of
// what kept backups still need (half a period after the last extension),
// so a kept backup stays locked, and one that retention or a user
// removes goes only once its lock ends. Not even the credential that
// wrote an object can delete or overwrite it before then: the S3 server
// refuses.
type ObjectLock struct {
	// Mode: governance (default: an S3 user granted
	// s3:BypassGovernanceRetention can still remove objects, backupd never
	// does) or compliance (nobody can, not even the account's root).
	Mode string `yaml:"mode"`
	// Period: how long objects are locked, like 14d or 720h. Default:
	// the longest a backup is kept (the retention policy, or this
	// location's own retention_days if shorter), at least 7d, at most
	// MaxPeriod. Cleanups must run at least every half period.
	Period string `yaml:"period"`
	// MaxPeriod caps Period (default 30d): a retention policy changed to
	// keep backups for years cannot lock storage, and its cost, for years.
	MaxPeriod string `yaml:"max_period"`
}

// DefaultMaxLockPeriod is ObjectLock.MaxPeriod's default.
const DefaultMaxLockPeriod = 30 * 24 * time.Hour

// Compliance reports whether the lock is in compliance mode.
func (o *ObjectLock) Compliance() bool { return strings.EqualFold(o.Mode, "compliance") }

// LockPeriod is how long objects are locked, given horizon, the longest a
// backup is kept (0: unknown). Validate has checked the values.
func (o *ObjectLock) LockPeriod(horizon time.Duration) time.Duration {
	if d, err := ParseDays(o.Period); err == nil && d > 0 {
		return d
	}
	limit := DefaultMaxLockPeriod
	if d, err := ParseDays(o.MaxPeriod); err == nil && d > 0 {
		limit = d
	}
	if horizon <= 0 || horizon > limit {
		return limit
	}
	return min(max(horizon, MinDerivedLockPeriod), limit)
}

// MinDerivedLockPeriod floors a period derived from retention: locks are
// extended at cleanups, and the default daily cleanup keeps them from
// running out only with a period of four days or more.
const MinDerivedLockPeriod = 7 * 24 * time.Hour

// ParseDays parses a duration that may be in days ("30d") or a Go
// duration ("720h").
func ParseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || fmt.Sprint(days) != n || days < 0 || days > 100*366 {
			return 0, fmt.Errorf("%q is not a number of days like 30d (at most a century)", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// Load reads path (if non-empty), applies defaults and BACKUPD_* overrides,
// and validates.
func Load(path string) (*Config, error) {
	c := &Config{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	c.applyEnv()
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, err
	}
	return c, nil
}

// Env names of the overrides, for documentation and tests.
var envOverrides = map[string]func(*Config) *string{
	"BACKUPD_HOST":               func(c *Config) *string { return &c.Host },
	"BACKUPD_VAR_DIR":            func(c *Config) *string { return &c.VarDir },
	"BACKUPD_PASSWORD_FILE":      func(c *Config) *string { return &c.PasswordFile },
	"BACKUPD_TEMPORAL_ADDRESS":   func(c *Config) *string { return &c.Temporal.Address },
	"BACKUPD_TEMPORAL_NAMESPACE": func(c *Config) *string { return &c.Temporal.Namespace },
	"BACKUPD_TASK_QUEUE":         func(c *Config) *string { return &c.Temporal.TaskQueue },
	"BACKUPD_TEMPORAL_UI_URL":    func(c *Config) *string { return &c.Temporal.UIURL },
	"BACKUPD_API_LISTEN":         func(c *Config) *string { return &c.API.Listen },
	"BACKUPD_TLS_CERT":           func(c *Config) *string { return &c.API.TLSCert },
	"BACKUPD_TLS_KEY":            func(c *Config) *string { return &c.API.TLSKey },
	"BACKUPD_METRICS_LISTEN":     func(c *Config) *string { return &c.API.MetricsListen },
	"BACKUPD_TEMPORAL_TLS_CERT":  func(c *Config) *string { return &c.Temporal.TLSCert },
	"BACKUPD_TEMPORAL_TLS_KEY":   func(c *Config) *string { return &c.Temporal.TLSKey },
	"BACKUPD_TEMPORAL_TLS_CA":    func(c *Config) *string { return &c.Temporal.TLSCA },
	"BACKUPD_CATALOG_DRIVER":     func(c *Config) *string { return &c.Catalog.Driver },
	"BACKUPD_CATALOG_DSN":        func(c *Config) *string { return &c.Catalog.DSN },
	"BACKUPD_GC_SAFETY_WINDOW":   func(c *Config) *string { return &c.GCSafetyWindow },
	"BACKUPD_LOG_LEVEL":          func(c *Config) *string { return &c.Log.Level },
	"BACKUPD_LOG_FORMAT":         func(c *Config) *string { return &c.Log.Format },
}

// EnvNames lists the BACKUPD_* variables Load reads.
func EnvNames() []string {
	var out []string
	for k := range envOverrides {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c *Config) applyEnv() {
	for name, field := range envOverrides {
		if v, ok := os.LookupEnv(name); ok && v != "" {
			*field(c) = v
		}
	}
}

// DefaultComponents are a Linux host's components when the configuration
// names none (paths that do not exist on the host are left out):
//
//	system          /etc/os-release, /etc/hostname, /etc/fstab, /boot
//	configurations  /etc
//	logs            /var/log, without rotated archives (*.gz, *.xz, *.bz2, *.[0-9], *.old)
//	data            /srv, /home, /var/www, /opt
//
// databases has no default: it needs connections (see Database). Live
// database files under /var/lib are not in data: a copy of them is not
// consistent; the databases component dumps them instead.
func DefaultComponents() map[string]Component {
	existing := func(paths ...string) []string {
		var out []string
		for _, p := range paths {
			if _, err := os.Lstat(p); err == nil {
				out = append(out, p)
			}
		}
		return out
	}
	all := map[string]Component{
		"system":         {Description: "operating system identity and boot", Paths: existing("/etc/os-release", "/etc/hostname", "/etc/fstab", "/boot")},
		"configurations": {Description: "system and service configuration", Paths: existing("/etc")},
		"logs": {Description: "logs, without rotated archives", Paths: existing("/var/log"),
			Exclude: []string{"*.gz", "*.xz", "*.bz2", "*.[0-9]", "*.old"}},
		"data": {Description: "application and user data", Paths: existing("/srv", "/home", "/var/www", "/opt")},
	}
	for n, c := range all {
		if len(c.Paths) == 0 {
			delete(all, n)
		}
	}
	return all
}

func (c *Config) applyDefaults() {
	if len(c.Components) == 0 {
		c.Components = DefaultComponents()
	}
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	if c.VarDir == "" {
		c.VarDir = "var"
	}
	if c.Temporal.Address == "" {
		c.Temporal.Address = "127.0.0.1:7233"
	}
	if c.Temporal.Namespace == "" {
		c.Temporal.Namespace = "default"
	}
	if c.Temporal.TaskQueue == "" {
		c.Temporal.TaskQueue = "backup@" + c.Host
	}
	if c.Temporal.UIURL == "" {
		c.Temporal.UIURL = "http://127.0.0.1:8233"
	}
	if c.API.Listen == "" {
		c.API.Listen = "127.0.0.1:8080"
	}
	if c.Catalog.Driver == "" {
		c.Catalog.Driver = "sqlite"
	}
	if c.Catalog.DSN == "" && c.Catalog.Driver == "sqlite" {
		c.Catalog.DSN = filepath.Join(c.VarDir, "catalog.db")
	}
	if c.Primary == "" {
		c.Primary = "local"
	}
	if c.Worker.MaxConcurrentActivities == 0 {
		c.Worker.MaxConcurrentActivities = 4
	}
}

// Validate checks names and references.
// ValidateLog checks the log settings alone.
func (c *Config) ValidateLog() error {
	var errs []error
	if c.Log.Level != "" && !slices.Contains(LogLevels, strings.ToLower(c.Log.Level)) {
		errs = append(errs, fmt.Errorf("log.level: %q is not one of %s (flag --log-level, env BACKUPD_LOG_LEVEL)", c.Log.Level, strings.Join(LogLevels, ", ")))
	}
	if c.Log.Format != "" && !slices.Contains(LogFormats, strings.ToLower(c.Log.Format)) {
		errs = append(errs, fmt.Errorf("log.format: %q is not one of %s (flag --log-format, env BACKUPD_LOG_FORMAT)", c.Log.Format, strings.Join(LogFormats, ", ")))
	}
	return errors.Join(errs...)
}

func (c *Config) Validate() error {
	var errs []error
	if err := c.ValidateLog(); err != nil {
		errs = append(errs, err)
	}
	if c.Approvals.Expiry != "" {
		if d, err := time.ParseDuration(c.Approvals.Expiry); err != nil || d < time.Minute || d > 30*24*time.Hour {
			errs = append(errs, fmt.Errorf("approvals.expiry: %q must be a duration from 1m to 720h, like 1h", c.Approvals.Expiry))
		}
	}
	for name, comp := range c.Components {
		if err := repository.ValidNodeName(name); err != nil {
			errs = append(errs, fmt.Errorf("components: %w", err))
		}
		if len(comp.Paths) == 0 && len(comp.Databases) == 0 {
			errs = append(errs, fmt.Errorf("components.%s: no paths and no databases", name))
		}
		if comp.RTOSeconds < 0 || comp.RPOSeconds < 0 {
			errs = append(errs, fmt.Errorf("components.%s: rto_seconds and rpo_seconds are seconds, 0 (no objective) or more", name))
		}
		labels := map[string]bool{}
		for i, db := range comp.Databases {
			src := db.Source()
			if err := src.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("components.%s.databases[%d]: %w", name, i, err))
			}
			if labels[src.Label()] {
				errs = append(errs, fmt.Errorf("components.%s.databases[%d]: name %q is used twice", name, i, src.Label()))
			}
			labels[src.Label()] = true
		}
		for _, p := range comp.Paths {
			if !filepath.IsAbs(p) {
				errs = append(errs, fmt.Errorf("components.%s.paths: %q is not absolute", name, p))
			}
		}
	}
	for name, loc := range c.Storage {
		if loc.URL == "" {
			errs = append(errs, fmt.Errorf("storage.%s.url: empty", name))
		}
		if loc.AppendOnly {
			switch {
			case loc.ObjectLock != nil:
				errs = append(errs, fmt.Errorf("storage.%s: append_only and object_lock together; an s3:// location is made immutable with object_lock alone", name))
			case strings.HasPrefix(loc.URL, "s3://"):
				errs = append(errs, fmt.Errorf("storage.%s.append_only: an s3:// location is made immutable by the server with object_lock (mode, period), not append_only", name))
			case strings.HasPrefix(loc.URL, "backupd+"):
				errs = append(errs, fmt.Errorf("storage.%s.append_only: an enrolled host's location is append-only already (its key cannot read or delete)", name))
			}
		}
		if ol := loc.ObjectLock; ol != nil {
			if !strings.HasPrefix(loc.URL, "s3://") {
				errs = append(errs, fmt.Errorf("storage.%s.object_lock: only an s3:// location can lock objects (S3 Object Lock); this one is %s", name, loc.URL))
			}
			if m := strings.ToLower(ol.Mode); m != "" && m != "governance" && m != "compliance" {
				errs = append(errs, fmt.Errorf("storage.%s.object_lock.mode: %q is neither governance nor compliance", name, ol.Mode))
			}
			for _, f := range [][2]string{{"period", ol.Period}, {"max_period", ol.MaxPeriod}} {
				if d, err := ParseDays(f[1]); f[1] != "" && (err != nil || d < time.Second || d > 100*365*24*time.Hour) {
					errs = append(errs, fmt.Errorf("storage.%s.object_lock.%s: %q is not a duration like 30d or 720h", name, f[0], f[1]))
				}
			}
		}
	}
	if len(c.Storage) > 0 {
		if _, ok := c.Storage[c.Primary]; !ok {
			errs = append(errs, fmt.Errorf("primary: no storage location named %q", c.Primary))
		}
	}
	for i, w := range c.Notifications.Webhooks {
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("notifications.webhooks[%d].url: %q is not an http(s) URL", i, w.URL))
		}
		if w.Secret == "" && w.SecretFile == "" {
			errs = append(errs, fmt.Errorf("notifications.webhooks[%d]: a secret (or secret_file) is required to sign deliveries", i))
		}
	}
	if m := c.Notifications.SMTP; m != nil && (m.Host == "" || m.From == "" || len(m.To) == 0) {
		errs = append(errs, errors.New("notifications.smtp: host, from and to are required"))
	}
	if c.GCSafetyWindow != "" {
		if d, err := time.ParseDuration(c.GCSafetyWindow); err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("gc_safety_window: %q is not a duration like 6h", c.GCSafetyWindow))
		}
	}
	if p := c.Repack.UnusedPercent; p != 0 && (p < 1 || p > 99) {
		errs = append(errs, fmt.Errorf("repack.unused_percent: %v is outside 1 to 99 (a pack with more unused space than this percentage is rewritten; default 10)", p))
	}
	if p := c.Repack.MaxUnusedPercent; p != nil && (*p < 0 || *p > 99) {
		errs = append(errs, fmt.Errorf("repack.max_unused_percent: %v is outside 0 to 99 (the share of all packs' space left unused before more packs are rewritten; default 2, 0: no such bound)", *p))
	}
	if b := c.Repack.Budget; b != "" {
		if n, err := api.ParseSize(b); err != nil || n < repository.TargetPackSize {
			errs = append(errs, fmt.Errorf("repack.budget: %q is not a size of at least 16MiB (like 2GiB)", b))
		}
	}
	switch c.Catalog.Driver {
	case "sqlite", "postgres":
	default:
		errs = append(errs, fmt.Errorf("catalog.driver: %q (want sqlite or postgres)", c.Catalog.Driver))
	}
	return errors.Join(errs...)
}

// ComponentNames returns the configured components, sorted.
func (c *Config) ComponentNames() []string {
	var out []string
	for n := range c.Components {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// LocationNames returns the primary first, then the others sorted.
func (c *Config) LocationNames() []string {
	out := []string{}
	if _, ok := c.Storage[c.Primary]; ok {
		out = append(out, c.Primary)
	}
	var rest []string
	for n := range c.Storage {
		if n != c.Primary {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// Password reads the repository password: BACKUPD_PASSWORD, else the file.
// PasswordSource names where the repository password comes from, for
// messages (never the password).
func (c *Config) PasswordSource() string {
	if os.Getenv("BACKUPD_PASSWORD") != "" {
		return "from BACKUPD_PASSWORD"
	}
	return "from password_file " + c.PasswordFile
}

func (c *Config) Password() ([]byte, error) {
	if p := os.Getenv("BACKUPD_PASSWORD"); p != "" {
		return []byte(p), nil
	}
	if c.PasswordFile == "" {
		return nil, errors.New("no repository password: set BACKUPD_PASSWORD or password_file")
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("password_file: %w", err)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return nil, fmt.Errorf("password_file %s is empty", c.PasswordFile)
	}
	return []byte(p), nil
}

// Kind says what a component holds: files, databases (their kinds,
// joined with +), or both.
func (c Component) Kind() string {
	var kinds []string
	if len(c.Paths) > 0 {
		kinds = append(kinds, "files")
	}
	seen := map[string]bool{}
	for _, d := range c.Databases {
		if !seen[d.Kind] {
			seen[d.Kind] = true
			kinds = append(kinds, d.Kind)
		}
	}
	return strings.Join(kinds, "+")
}

// HostComponents are the configured components as a worker reports them
// (and as the API lists the server's own host's), by name.
func (c *Config) HostComponents() []api.HostComponent {
	out := []api.HostComponent{}
	for _, name := range c.ComponentNames() {
		comp := c.Components[name]
		hc := api.HostComponent{Name: name, Kind: comp.Kind(), Paths: comp.Paths}
		for _, d := range comp.Databases {
			src := d.Source()
			hc.Databases = append(hc.Databases, api.HostDatabase{Label: src.Label(), Kind: src.Kind, Database: src.DBName})
		}
		out = append(out, hc)
	}
	return out
}
