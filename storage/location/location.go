// Package location opens a storage.Backend from a repository URL:
//
//	/path or file:///path                      local directory
//	s3://bucket/prefix?endpoint=URL&path_style=true&region=R
//	sftp://user@host:port/path
//	backupd+https://server:port/location       an enrolled host's repository there, through the server
//
// S3 credentials come from the usual AWS environment variables (or the
// Options); SFTP authenticates with a key file or the SSH agent. Network
// backends are wrapped in the retrying decorator.
package location

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"backupd/storage"
	"backupd/storage/appendonly"
	"backupd/storage/hostproxy"
	"backupd/storage/local"
	"backupd/storage/retry"
	"backupd/storage/s3"
)

// Options complete what a URL cannot carry.
type Options struct {
	SSHKeyFile            string // sftp: private key; empty uses the SSH agent
	KnownHostsFile        string // sftp: default ~/.ssh/known_hosts
	InsecureIgnoreHostKey bool   // sftp: tests and first contact only
	S3AccessKey           string // default: AWS_ACCESS_KEY_ID
	S3SecretKey           string // default: AWS_SECRET_ACCESS_KEY
	S3CreateBucket        bool
	HostToken             string   // backupd+https: the enrolled host's credential
	HostPin               string   // backupd+https: the server's certificate (sha256:...)
	HostGrant             string   // backupd+https: read the repository a restore grant opened
	S3Lock                *s3.Lock // s3: lock objects with S3 Object Lock (its Unlocked defaults to Unlocked below)
	// AppendOnly: never delete nor replace an object but those Unlocked
	// names (storage/appendonly); over SFTP without posix-rename for them,
	// so a server that forbids this account to remove forbids replacing.
	AppendOnly bool
	// Unlocked names the objects a repository rewrites or removes as a
	// matter of course: left unlocked by S3Lock, removable when AppendOnly.
	Unlocked func(name string) bool
}

// Open parses raw and opens the backend it names.
func Open(ctx context.Context, raw string, opts Options) (storage.Backend, error) {
	if opts.S3Lock != nil && opts.S3Lock.Unlocked == nil {
		l := *opts.S3Lock
		l.Unlocked = opts.Unlocked
		opts.S3Lock = &l
	}
	be, err := open(ctx, raw, opts)
	if err != nil || !opts.AppendOnly {
		return be, err
	}
	return appendonly.New(be, opts.Unlocked), nil
}

func open(ctx context.Context, raw string, opts Options) (storage.Backend, error) {
	if raw == "" {
		return nil, fmt.Errorf("no repository given (--repo URL)")
	}
	if !strings.Contains(raw, "://") {
		return openLocal(raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("repository URL %q: %w", Redact(raw), err)
	}
	switch u.Scheme {
	case "file":
		return openLocal(u.Path)
	case "s3":
		return openS3(ctx, u, opts)
	case "sftp":
		return openSFTP(ctx, u, opts)
	case "backupd+https", "backupd+http":
		be, err := hostproxy.New(u, hostproxy.Options{Token: opts.HostToken, Pin: opts.HostPin, Grant: opts.HostGrant})
		if err != nil {
			return nil, err
		}
		return retry.New(be, retry.Options{}), nil
	}
	return nil, fmt.Errorf("repository URL %q: unknown scheme %q (want a path, file://, s3:// or sftp://)", Redact(raw), u.Scheme)
}

func openLocal(p string) (storage.Backend, error) {
	if p == "" {
		return nil, fmt.Errorf("empty repository path")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, err
	}
	return local.New(abs)
}

func openS3(ctx context.Context, u *url.URL, opts Options) (storage.Backend, error) {
	q := u.Query()
	cfg := s3.Config{
		Bucket:       u.Host,
		Prefix:       strings.Trim(u.Path, "/"),
		Endpoint:     q.Get("endpoint"),
		Region:       q.Get("region"),
		AccessKey:    opts.S3AccessKey,
		SecretKey:    opts.S3SecretKey,
		CreateBucket: opts.S3CreateBucket,
		Lock:         opts.S3Lock,
	}
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("s3 URL %q names no bucket", Redact(u.String()))
	}
	if v := q.Get("path_style"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("s3 URL: path_style=%q is not a boolean", v)
		}
		cfg.PathStyle = b
	}
	for k := range q {
		switch k {
		case "endpoint", "region", "path_style":
		default:
			return nil, fmt.Errorf("s3 URL: unknown parameter %q (known: endpoint, region, path_style)", k)
		}
	}
	b, err := s3.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return retry.New(b, retry.Options{}), nil
}

// Redact removes a password from a URL for messages.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// an address that does not parse may still hold a password: show
		// none of it
		return "(unparsable storage URL)"
	}
	if u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func homeFile(p string) string {
	h, _ := os.UserHomeDir()
	return filepath.Join(h, p)
}
