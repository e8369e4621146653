package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/term"

	"backupd/config"
	"backupd/repository"
	"backupd/storage"
	"backupd/storage/location"
	"backupd/storage/s3"
)

const repoUsage = `Usage: backupd repo <command> --repo URL [flags]

Commands:
  init      create a repository
  backup    back up components: --type full|incremental|differential|snapshot --component NAME=PATH[,PATH...]
  list      list backups
  restore   restore a backup (or parts) into a directory
  check     verify the repository: --read-data | --read-data-percent N
  export    write a backup as tar.gz, tar.bz2 or tar.zst to stdout
  copy      copy a backup to another repository (only missing blobs move)
  forget    remove a backup's manifest (its data goes at the next gc)
  gc        delete unreferenced data (--dry-run to see what would go)
  repair-index  index the packs no index file lists (after an index file was lost)
  upgrade   move the repository to the newest format (older backupd versions then refuse it)
  key       add | rotate | list | remove keys

URL: a path, file:///path, s3://bucket/prefix?endpoint=http://127.0.0.1:9000&path_style=true,
     or sftp://user@host:port/path (--ssh-key FILE or the SSH agent).
Credentials: BACKUPD_PASSWORD or --password-file; --rsa-private-key FILE;
     --pgp-private-key FILE (BACKUPD_PGP_PASSPHRASE unlocks it).
Run 'backupd repo <command> -h' for its flags.
`

func runRepo(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, repoUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	fn, ok := repoCommands()[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "backupd repo: unknown command %q\n\n%s", args[0], repoUsage)
		return errUsage
	}
	return fn(ctx, args[1:])
}

func repoCommands() map[string]func(context.Context, []string) error {
	return map[string]func(context.Context, []string) error{
		"init": cmdInit, "backup": cmdBackup, "list": cmdList, "restore": cmdRestore,
		"check": cmdCheck, "export": cmdExport, "gc": cmdGC, "key": cmdKey, "copy": cmdCopy,
		"forget": cmdForget, "repair-index": cmdRepairIndex, "upgrade": cmdUpgrade,
	}
}

// repoCommandPaths are the repo commands for completion ("key add": key
// has its own commands).
func repoCommandPaths() []string {
	var paths []string
	for name := range repoCommands() {
		if name == "key" {
			for _, k := range keyCommands {
				paths = append(paths, "key "+k)
			}
			continue
		}
		paths = append(paths, name)
	}
	sort.Strings(paths)
	return paths
}

// repoFlags are shared by every repo command.
type repoFlags struct {
	repo          string
	passwordFile  string
	rsaPrivateKey string
	pgpPrivateKey string
	sshKey        string
	knownHosts    string
	insecureHost  bool
	jsonOut       bool
	cacheDir      string
	noCache       bool
	objectLock    string
	lockPeriod    string
	appendOnly    bool
	createBucket  bool // repo init: create a missing S3 bucket
}

func (f *repoFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.repo, "repo", os.Getenv("BACKUPD_REPO"), "repository URL (env BACKUPD_REPO)")
	fs.StringVar(&f.passwordFile, "password-file", "", "read the password from this file (default: env BACKUPD_PASSWORD)")
	fs.StringVar(&f.rsaPrivateKey, "rsa-private-key", "", "open with an RSA private key (PEM) instead of a password")
	fs.StringVar(&f.pgpPrivateKey, "pgp-private-key", "", "open with an OpenPGP private key instead of a password")
	fs.StringVar(&f.sshKey, "ssh-key", "", "sftp: private key file (default: SSH agent)")
	fs.StringVar(&f.knownHosts, "known-hosts", "", "sftp: known_hosts file (default ~/.ssh/known_hosts)")
	fs.BoolVar(&f.insecureHost, "insecure-ignore-host-key", false, "sftp: do not check the server's host key")
	fs.BoolVar(&f.jsonOut, "json", false, "print machine-readable JSON")
	fs.StringVar(&f.cacheDir, "cache-dir", defaultCacheDir(), "keep index files, tree packs and manifests here, per repository, so commands download only what is new (env BACKUPD_CACHE_DIR; safe to delete)")
	fs.BoolVar(&f.noCache, "no-cache", false, "read everything from the repository, keep no local cache")
	fs.StringVar(&f.objectLock, "object-lock", "", "s3: the bucket locks objects (S3 Object Lock): governance or compliance, as the location's object_lock.mode; what is stored is locked for --lock-period, and gc extends locks")
	fs.BoolVar(&f.appendOnly, "append-only", false, "add to the repository only: never delete nor replace what backups need (as a location's append_only); gc then leaves what no backup uses for a run without this flag")
	fs.StringVar(&f.lockPeriod, "lock-period", "30d", "with --object-lock: how long objects are locked (like 30d or 720h)")
}

// defaultCacheDir is $BACKUPD_CACHE_DIR, else backupd under the user's
// cache directory ($XDG_CACHE_HOME or ~/.cache).
func defaultCacheDir() string {
	if d := os.Getenv("BACKUPD_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "backupd")
	}
	return ""
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if flagProbe != nil {
		flagProbe(fs)
		return errProbed
	}
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: exitOK, err: errors.New("")}
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return &exitError{code: exitUsage, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func (f *repoFlags) backend(ctx context.Context) (storage.Backend, error) {
	opts := location.Options{SSHKeyFile: f.sshKey, KnownHostsFile: f.knownHosts, InsecureIgnoreHostKey: f.insecureHost,
		S3CreateBucket: f.createBucket, AppendOnly: f.appendOnly, Unlocked: repository.Unlocked}
	if f.objectLock != "" {
		ol := &config.ObjectLock{Mode: f.objectLock, Period: f.lockPeriod}
		if m := strings.ToLower(f.objectLock); m != "governance" && m != "compliance" {
			return nil, &exitError{code: exitUsage, err: fmt.Errorf("--object-lock %q: give governance or compliance (the bucket's mode)", f.objectLock)}
		}
		if d, err := config.ParseDays(f.lockPeriod); err != nil || d < time.Second {
			return nil, &exitError{code: exitUsage, err: fmt.Errorf("--lock-period %q: give a duration like 30d or 720h", f.lockPeriod)}
		}
		opts.S3Lock = &s3.Lock{Compliance: ol.Compliance(), Period: ol.LockPeriod(0)}
	}
	return location.Open(ctx, f.repo, opts)
}

func (f *repoFlags) password(envName string) ([]byte, error) {
	if f.passwordFile != "" {
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("password file: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return nil, fmt.Errorf("password file %s is empty", f.passwordFile)
		}
		return []byte(p), nil
	}
	if p, ok := os.LookupEnv(envName); ok && p != "" {
		return []byte(p), nil
	}
	return nil, nil
}

func (f *repoFlags) credentials() (repository.Credentials, error) {
	var c repository.Credentials
	var err error
	if c.Password, err = f.password("BACKUPD_PASSWORD"); err != nil {
		return c, err
	}
	if f.rsaPrivateKey != "" {
		b, err := os.ReadFile(f.rsaPrivateKey)
		if err != nil {
			return c, err
		}
		if c.RSAPrivateKey, err = repository.ParseRSAPrivateKey(b); err != nil {
			return c, fmt.Errorf("%s: %w", f.rsaPrivateKey, err)
		}
	}
	if f.pgpPrivateKey != "" {
		b, err := os.ReadFile(f.pgpPrivateKey)
		if err != nil {
			return c, err
		}
		var pass []byte
		if p, ok := os.LookupEnv("BACKUPD_PGP_PASSPHRASE"); ok {
			pass = []byte(p)
		}
		if c.PGPKeys, err = repository.ReadPGPKeyRing(b, pass); err != nil {
			return c, fmt.Errorf("%s: %w", f.pgpPrivateKey, err)
		}
	}
	return c, nil
}

// open opens the repository named by the flags.
func (f *repoFlags) open(ctx context.Context) (*repository.Repository, error) {
	be, err := f.backend(ctx)
	if err != nil {
		return nil, err
	}
	creds, err := f.credentials()
	if err != nil {
		be.Close()
		return nil, err
	}
	r, err := repository.Open(ctx, be, creds)
	if err != nil {
		be.Close()
		return nil, fmt.Errorf("%s: %w", location.Redact(f.repo), err)
	}
	if !f.noCache && f.cacheDir != "" {
		// a cache that cannot be used costs requests, never a command
		if c, err := repository.OpenCache(f.cacheDir, r.Config().ID); err != nil {
			fmt.Fprintf(os.Stderr, "backupd: working without a local cache: %v (--cache-dir names another place; --no-cache silences this)\n", err)
		} else {
			r.SetCache(c)
		}
	}
	return r, nil
}

// kdf returns the passphrase stretching parameters; BACKUPD_TEST_KDF=1
// selects cheap ones so test suites do not spend seconds per key. Never
// set it for a real repository.
func kdf() *repository.KDFParams {
	p := repository.DefaultKDF()
	if os.Getenv("BACKUPD_TEST_KDF") == "1" {
		p = repository.TestKDF()
	}
	return &p
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// progressLine rewrites one status line on a terminal; elsewhere it is silent.
type progressLine struct {
	tty  bool
	last int
}

func newProgressLine(quiet bool) *progressLine {
	return &progressLine{tty: !quiet && term.IsTerminal(int(os.Stderr.Fd()))}
}

func (p *progressLine) show(format string, args ...any) {
	if !p.tty {
		return
	}
	s := fmt.Sprintf(format, args...)
	pad := ""
	if n := p.last - len(s); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(os.Stderr, "\r%s%s", s, pad)
	p.last = len(s)
}

func (p *progressLine) done() {
	if p.tty && p.last > 0 {
		fmt.Fprint(os.Stderr, "\r"+strings.Repeat(" ", p.last)+"\r")
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return humanBytes(int64(float64(n)/d.Seconds())) + "/s"
}
