// Package sftp stores objects as files on an SFTP server, under a directory.
//
// Puts upload to a temporary file under <Path>/.backupd-tmp and then rename
// it into place with the posix-rename@openssh.com extension (an atomic
// rename(2) that replaces the target). Against a server without that
// extension it falls back to remove + rename, which leaves a short window in
// which a replaced object is missing. Uploads are fsynced when the server
// offers fsync@openssh.com.
//
// One SSH connection is shared by all calls. When it breaks, the call that
// notices re-dials once and repeats itself; storage/retry handles the rest.
package sftp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	mrand "math/rand/v2"
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pkgsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"backupd/storage"
)

// TempDir is the directory, inside Path, that holds uploads in progress.
// It is never listed, and names inside it are refused.
const TempDir = ".backupd-tmp"

// Config says where the store is and how to log in.
type Config struct {
	User string
	Host string
	Port string // default "22"
	// Path is the store's directory on the server, created if missing;
	// relative paths start at the login directory.
	Path string
	// Authentication: any of a private key file (OpenSSH or PEM, without a
	// passphrase), a password, and the keys of the running ssh-agent
	// ($SSH_AUTH_SOCK).
	KeyFile  string
	Password string
	UseAgent bool
	// Host key check: HostKey if set, else KnownHostsFile (default
	// ~/.ssh/known_hosts). InsecureIgnoreHostKey skips the check (tests only).
	KnownHostsFile        string
	InsecureIgnoreHostKey bool
	HostKey               ssh.PublicKey
	// DialTimeout bounds connecting and the SSH handshake (default 30s).
	DialTimeout time.Duration
	// NoReplace: Put replaces an object only by removing it first, then
	// a plain SFTP rename (which refuses an existing target), never by
	// posix-rename: a server that forbids this account to remove an
	// object (append-only) thereby forbids replacing it. Replaceable,
	// when set, names the objects still replaced at once by posix-rename
	// (markers, which must never be missing, even briefly).
	NoReplace   bool
	Replaceable func(name string) bool
}

// Backend is a storage.Backend on an SFTP server.
type Backend struct {
	cfg      Config
	addr     string
	sshCfg   *ssh.ClientConfig
	location string

	mu     sync.Mutex
	conn   *conn // nil when not connected
	dir    string
	closed bool
}

var _ storage.Backend = (*Backend)(nil)

// conn is one SSH connection with its SFTP session.
type conn struct {
	ssh         *ssh.Client
	sftp        *pkgsftp.Client
	posixRename atomic.Bool // cleared if the server refuses it after all
	statVFS     atomic.Bool
	fsync       bool
	stop        chan struct{}
}

func (c *conn) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.sftp.Close()
	c.ssh.Close()
}

// New connects and makes sure the store's directory exists.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Host == "" {
		return nil, storage.Permanent(errors.New("sftp: no host given"))
	}
	if cfg.Port == "" {
		cfg.Port = "22"
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	sshCfg, err := clientConfig(cfg)
	if err != nil {
		return nil, storage.Permanent(err)
	}
	b := &Backend{
		cfg:    cfg,
		addr:   net.JoinHostPort(cfg.Host, cfg.Port),
		sshCfg: sshCfg,
	}
	b.location = "sftp://" + cfg.User + "@" + b.addr + "/" + strings.TrimPrefix(cfg.Path, "/")
	if strings.HasPrefix(cfg.Path, "/") {
		b.location = "sftp://" + cfg.User + "@" + b.addr + cfg.Path
	}
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	dir := cfg.Path
	if dir == "" {
		dir = "."
	}
	if !path.IsAbs(dir) {
		wd, err := c.sftp.Getwd()
		if err != nil {
			c.close()
			return nil, fmt.Errorf("sftp: find login directory: %w", err)
		}
		dir = path.Join(wd, dir)
	}
	b.dir = path.Clean(dir)
	if err := c.sftp.MkdirAll(path.Join(b.dir, TempDir)); err != nil {
		c.close()
		return nil, storage.Permanent(fmt.Errorf("sftp: create %s: %w", b.dir, err))
	}
	b.removeStaleTemps(c)
	b.mu.Lock()
	b.conn = c
	b.mu.Unlock()
	return b, nil
}

// staleTemp is how old a leftover upload (from a crash or a lost
// connection) must be before New removes it; younger ones may belong to a
// Put still running in another process.
const staleTemp = 24 * time.Hour

func (b *Backend) removeStaleTemps(c *conn) {
	tmp := path.Join(b.dir, TempDir)
	entries, err := c.sftp.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		if time.Since(e.ModTime()) > staleTemp {
			_ = c.sftp.Remove(path.Join(tmp, e.Name()))
		}
	}
}

func clientConfig(cfg Config) (*ssh.ClientConfig, error) {
	var auths []ssh.AuthMethod
	if cfg.KeyFile != "" {
		pemBytes, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("sftp: read key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(pemBytes)
		if err != nil {
			return nil, fmt.Errorf("sftp: parse key %s: %w", cfg.KeyFile, err)
		}
		auths = append(auths, ssh.PublicKeys(signer))
	}
	if cfg.UseAgent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, errors.New("sftp: UseAgent set but SSH_AUTH_SOCK is empty")
		}
		auths = append(auths, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			c, err := net.Dial("unix", sock)
			if err != nil {
				return nil, err
			}
			// The connection must stay open while the signers are used;
			// it is dropped with the process.
			return agent.NewClient(c).Signers()
		}))
	}
	if cfg.Password != "" {
		auths = append(auths, ssh.Password(cfg.Password))
	}
	if len(auths) == 0 {
		return nil, errors.New("sftp: no key file, password or agent to log in with")
	}
	var hostKey ssh.HostKeyCallback
	switch {
	case cfg.HostKey != nil:
		hostKey = ssh.FixedHostKey(cfg.HostKey)
	case cfg.InsecureIgnoreHostKey:
		hostKey = ssh.InsecureIgnoreHostKey()
	default:
		file := cfg.KnownHostsFile
		if file == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return nil, fmt.Errorf("sftp: no known_hosts file: %w", err)
			}
			file = path.Join(home, ".ssh", "known_hosts")
		}
		cb, err := knownhosts.New(file)
		if err != nil {
			return nil, fmt.Errorf("sftp: known hosts: %w", err)
		}
		hostKey = cb
	}
	return &ssh.ClientConfig{
		User:            cfg.User,
		Auth:            auths,
		HostKeyCallback: hostKey,
		Timeout:         cfg.DialTimeout,
	}, nil
}

// connect dials a new connection.
func (b *Backend) connect(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", b.addr)
	if err != nil {
		return nil, fmt.Errorf("sftp: dial %s: %w", b.addr, err)
	}
	// The handshake knows no context; a deadline bounds it, and closing the
	// connection on cancellation cuts it short.
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, b.addr, b.sshCfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, fmt.Errorf("sftp: connect %s: %w", b.addr, ctx.Err())
	}
	if err != nil {
		nc.Close()
		if strings.Contains(err.Error(), "unable to authenticate") || strings.Contains(err.Error(), "host key") ||
			errors.As(err, new(*knownhosts.KeyError)) {
			return nil, storage.Permanent(fmt.Errorf("sftp: connect %s: %w", b.addr, err))
		}
		return nil, fmt.Errorf("sftp: connect %s: %w", b.addr, err)
	}
	nc.SetDeadline(time.Time{})
	client := ssh.NewClient(sc, chans, reqs)
	sc2, err := pkgsftp.NewClient(client, pkgsftp.UseConcurrentWrites(true), pkgsftp.UseConcurrentReads(true))
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("sftp: start SFTP on %s: %w", b.addr, err)
	}
	c := &conn{ssh: client, sftp: sc2, stop: make(chan struct{})}
	_, ok := sc2.HasExtension("posix-rename@openssh.com")
	c.posixRename.Store(ok)
	_, ok = sc2.HasExtension("statvfs@openssh.com")
	c.statVFS.Store(ok)
	_, c.fsync = sc2.HasExtension("fsync@openssh.com")
	go c.keepalive()
	return c, nil
}

// keepalive closes a connection whose server stops answering, so calls
// waiting on it fail (and reconnect) instead of hanging.
func (c *conn) keepalive() {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		answered := make(chan struct{})
		go func() {
			_, _, _ = c.ssh.SendRequest("keepalive@openssh.com", true, nil)
			close(answered)
		}()
		select {
		case <-answered:
		case <-c.stop:
			return
		case <-time.After(15 * time.Second):
			c.close()
			return
		}
	}
}

// client returns the current connection, dialing one if there is none.
func (b *Backend) client(ctx context.Context) (*conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, storage.Permanent(errors.New("sftp: backend closed"))
	}
	if b.conn != nil {
		return b.conn, nil
	}
	c, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	b.conn = c
	return c, nil
}

// drop forgets c (if it is still the current connection) and closes it.
func (b *Backend) drop(c *conn) {
	b.mu.Lock()
	if b.conn == c {
		b.conn = nil
	}
	b.mu.Unlock()
	c.close()
}

// unsupported reports whether the server answered "operation unsupported".
func unsupported(err error) bool {
	var se *pkgsftp.StatusError
	if errors.As(err, &se) {
		return se.FxCode() == pkgsftp.ErrSSHFxOpUnsupported
	}
	return errors.Is(err, pkgsftp.ErrSSHFxOpUnsupported)
}

// connLost reports whether err means the connection is gone.
func connLost(err error) bool {
	return errors.Is(err, pkgsftp.ErrSSHFxConnectionLost) || errors.Is(err, pkgsftp.ErrSSHFxNoConnection) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// do runs fn on the connection; if the connection turns out to be lost, it
// re-dials once and runs fn again. It returns when ctx is done even if the
// server does not answer (fn then finishes in the background).
func (b *Backend) do(ctx context.Context, fn func(*conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := b.client(ctx)
	if err != nil {
		return err
	}
	err = withContext(ctx, func() error { return fn(c) })
	if err == nil || ctx.Err() != nil || !connLost(err) {
		return err
	}
	b.drop(c)
	c, err2 := b.client(ctx)
	if err2 != nil {
		return fmt.Errorf("%w (reconnect after %v)", err2, err)
	}
	return withContext(ctx, func() error { return fn(c) })
}

func withContext(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Backend) checkName(name string) error {
	if err := storage.ValidName(name); err != nil {
		return fmt.Errorf("sftp: %q: %w", name, err)
	}
	if name == TempDir || strings.HasPrefix(name, TempDir+"/") {
		return fmt.Errorf("sftp: %q is reserved: %w", name, storage.ErrInvalidName)
	}
	return nil
}

func (b *Backend) path(name string) string { return b.dir + "/" + name }

// mapErr turns SFTP errors into the contract's errors.
func mapErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sftp: %s %q: %w", op, name, storage.ErrNotFound)
	}
	err = fmt.Errorf("sftp: %s %q: %w", op, name, err)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrExist) {
		return storage.Permanent(err)
	}
	return err
}

func (b *Backend) Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error {
	if err := b.checkName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	start, seekErr := r.Seek(0, io.SeekCurrent)
	c, err := b.client(ctx)
	if err != nil {
		return err
	}
	// Put runs in the caller's goroutine: it must not read r after returning.
	// The reader stops at cancellation; a dead server is cut off by the
	// keepalive.
	err = b.put(ctx, c, name, r, size)
	if err != nil && ctx.Err() == nil && connLost(err) && seekErr == nil {
		b.drop(c)
		if _, serr := r.Seek(start, io.SeekStart); serr == nil {
			if c, err2 := b.client(ctx); err2 == nil {
				err = b.put(ctx, c, name, r, size)
			}
		}
	}
	if ctx.Err() != nil && err != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return mapErr("put", name, err)
}

func randomName() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (b *Backend) put(ctx context.Context, c *conn, name string, r io.Reader, size int64) (err error) {
	tmp := path.Join(b.dir, TempDir, randomName())
	f, err := c.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			_ = c.sftp.Remove(tmp)
		}
	}()
	if _, err := f.ReadFromWithConcurrency(storage.ExactReader(storage.ContextReader(ctx, r), size), 0); err != nil {
		return err
	}
	if c.fsync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	final := b.path(name)
	posix := !b.cfg.NoReplace || (b.cfg.Replaceable != nil && b.cfg.Replaceable(name))
	err = b.rename(c, tmp, final, posix)
	// The object's directory may be missing (never made, or removed by a
	// Delete of its last object since: see Delete): make it and try again.
	// A server without POSIX rename may say so only as a failure.
	for try := 0; try < 4 && (errors.Is(err, fs.ErrNotExist) || (try == 0 && err != nil && !(posix && c.posixRename.Load()))); try++ {
		if merr := c.sftp.MkdirAll(path.Dir(final)); merr != nil {
			continue // removed again as it was made: try again
		}
		err = b.rename(c, tmp, final, posix)
	}
	if err != nil {
		return err
	}
	renamed = true
	return nil
}

func (b *Backend) rename(c *conn, from, to string, posix bool) error {
	if posix && c.posixRename.Load() {
		err := c.sftp.PosixRename(from, to)
		if !unsupported(err) {
			return err
		}
		c.posixRename.Store(false) // advertised but refused: use the fallback from now on
	}
	// Plain SFTP rename refuses to replace an existing file. Another Put of
	// the same name may slip in between remove and rename, so try again,
	// backing off with jitter so that contending writers spread out (seen
	// failing five quick tries under load in CI).
	var err error
	for attempt := range 50 {
		if err = c.sftp.Remove(to); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err = c.sftp.Rename(from, to); err == nil || errors.Is(err, fs.ErrNotExist) {
			return err
		}
		time.Sleep(time.Duration(1+mrand.IntN(1+attempt)) * time.Millisecond)
	}
	return err
}

func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := b.checkName(name); err != nil {
		return nil, err
	}
	var rc io.ReadCloser
	err := b.do(ctx, func(c *conn) error {
		f, err := c.sftp.Open(b.path(name))
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		if !fi.Mode().IsRegular() {
			f.Close()
			return fmt.Errorf("not a regular file: %w", fs.ErrNotExist)
		}
		n, err := storage.CheckRange(fi.Size(), offset, length)
		if err != nil {
			f.Close()
			return err
		}
		// The size from Stat is a hint only: some servers (pkg/sftp's
		// request server) answer a handle's fstat with a stat of the path,
		// which a concurrent Put may already have replaced. So read to the
		// real end, and check that a bounded range really was that long.
		var body io.Reader
		if length < 0 {
			body = io.NewSectionReader(f, offset, math.MaxInt64-offset)
		} else {
			body = &fullRange{r: io.NewSectionReader(f, offset, n), left: n}
		}
		rc = struct {
			io.Reader
			io.Closer
		}{body, f}
		return nil
	})
	if err != nil {
		if rc != nil {
			rc.Close()
		}
		return nil, mapErr("get", name, err)
	}
	return storage.ContextReadCloser(ctx, rc), nil
}

// fullRange fails with io.ErrUnexpectedEOF if r ends before left bytes.
type fullRange struct {
	r    io.Reader
	left int64
}

func (f *fullRange) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	f.left -= int64(n)
	if err == io.EOF && f.left > 0 {
		err = fmt.Errorf("object shorter than its size: %w", io.ErrUnexpectedEOF)
	}
	return n, err
}

func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if err := b.checkName(name); err != nil {
		return storage.ObjectInfo{}, err
	}
	var fi os.FileInfo
	err := b.do(ctx, func(c *conn) error {
		var err error
		fi, err = c.sftp.Stat(b.path(name))
		return err
	})
	if err != nil {
		return storage.ObjectInfo{}, mapErr("stat", name, err)
	}
	if !fi.Mode().IsRegular() {
		return storage.ObjectInfo{}, fmt.Errorf("sftp: stat %q: not a regular file: %w", name, storage.ErrNotFound)
	}
	return storage.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List walks the directories that can hold names with the prefix. The
// directory listings are fetched (and retried after a reconnect) one at a
// time; fn is called only from this goroutine.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start, ok := storage.PrefixDir(prefix)
	if !ok {
		return nil // no object can have this prefix
	}
	return b.walk(ctx, start, prefix, fn)
}

func (b *Backend) walk(ctx context.Context, dir, prefix string, fn func(storage.ObjectInfo) error) error {
	var entries []os.FileInfo
	err := b.do(ctx, func(c *conn) error {
		p := b.dir
		if dir != "" {
			p = b.path(dir)
		}
		var err error
		entries, err = c.sftp.ReadDirContext(ctx, p)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil // prefix's directory missing, or deleted while listing
	}
	if err != nil {
		return mapErr("list", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if dir != "" {
			name = dir + "/" + name
		} else if name == TempDir {
			continue
		}
		if e.IsDir() {
			if strings.HasPrefix(name+"/", prefix) || strings.HasPrefix(prefix, name+"/") {
				if err := b.walk(ctx, name, prefix, fn); err != nil {
					return err
				}
			}
			continue
		}
		if !e.Mode().IsRegular() || !strings.HasPrefix(name, prefix) || storage.ValidName(name) != nil {
			continue
		}
		if err := fn(storage.ObjectInfo{Name: name, Size: e.Size(), ModTime: e.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := b.checkName(name); err != nil {
		return err
	}
	err := b.do(ctx, func(c *conn) error {
		fi, err := c.sftp.Lstat(b.path(name))
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return fmt.Errorf("is a directory: %w", fs.ErrNotExist)
		}
		if err := c.sftp.Remove(b.path(name)); err != nil {
			return err
		}
		// a nested directory (data/ab) left empty goes too; while it
		// holds anything the server refuses, which is not this call's
		// failure
		if dir := path.Dir(name); strings.Contains(dir, "/") {
			_ = c.sftp.RemoveDirectory(b.path(dir))
		}
		return nil
	})
	return mapErr("delete", name, err)
}

// Capacity asks the server about its filesystem (statvfs@openssh.com);
// without that extension every field is -1.
func (b *Backend) Capacity(ctx context.Context) (storage.Capacity, error) {
	unknown := storage.Capacity{TotalBytes: -1, FreeBytes: -1, UsedBytes: -1}
	var st *pkgsftp.StatVFS
	err := b.do(ctx, func(c *conn) error {
		if !c.statVFS.Load() {
			return nil
		}
		var err error
		st, err = c.sftp.StatVFS(b.dir)
		if unsupported(err) {
			c.statVFS.Store(false)
			return nil
		}
		return err
	})
	if err != nil {
		return storage.Capacity{}, mapErr("capacity", "", err)
	}
	if st == nil {
		return unknown, nil
	}
	unit := st.Frsize
	if unit == 0 {
		unit = st.Bsize
	}
	return storage.Capacity{
		TotalBytes: int64(st.Blocks * unit),
		FreeBytes:  int64(st.Bavail * unit),
		UsedBytes:  int64((st.Blocks - st.Bfree) * unit),
	}, nil
}

// Location is "sftp://user@host:port/path".
func (b *Backend) Location() string { return b.location }

// Close ends the connection; later calls fail.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.conn != nil {
		b.conn.close()
		b.conn = nil
	}
	return nil
}
