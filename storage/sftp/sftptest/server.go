// Package sftptest is a small SFTP server (pkg/sftp's request server over
// x/crypto/ssh) on a loopback port, for tests and the development stack.
//
// It serves one directory as "/" and keeps clients inside it: paths are
// cleaned against "/" and every file access goes through os.Root, so neither
// ".." nor a symlink reaches outside. It supports the posix-rename and
// statvfs OpenSSH extensions. Symlink creation is refused.
package sftptest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"sync"
	"syscall"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// Options configure a Server. At least one of AuthorizedKeys and Password
// must be set.
type Options struct {
	// Addr to listen on; default "127.0.0.1:0" (a free loopback port).
	Addr string
	// User is the only login accepted; default "backupd".
	User string
	// AuthorizedKeys may log in as User.
	AuthorizedKeys []ssh.PublicKey
	// Password, if not empty, may log in as User.
	Password string
	// HostKey; a fresh Ed25519 key when nil.
	HostKey ssh.Signer
	// NoPosixRename and NoStatVFS make the server act like one without
	// those extensions (to test clients' fallbacks).
	NoPosixRename bool
	NoStatVFS     bool
	// AppendOnly: the account may add files but not remove, replace,
	// truncate, rename away or change a file that exists, except those
	// Removable names (paths relative to the root, like
	// "backups/writers/x"); directories are never removed. This is the
	// rule an SFTP server must enforce for backupd's append_only
	// locations (SFTPGo's per-directory permissions can; OpenSSH's
	// sftp-server alone cannot say "except").
	AppendOnly bool
	Removable  func(path string) bool
}

// Server is a running SFTP server.
type Server struct {
	Addr    string        // "127.0.0.1:PORT"
	User    string        // the login it accepts
	HostKey ssh.PublicKey // for the client's host key check
	Root    string        // the directory served as "/"

	opts     Options
	config   *ssh.ServerConfig
	listener net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// NewServer serves root (which must exist) until Close.
func NewServer(root string, opts Options) (*Server, error) {
	if len(opts.AuthorizedKeys) == 0 && opts.Password == "" {
		return nil, errors.New("sftptest: no authorized key and no password")
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("sftptest: root %q is not a directory: %v", root, err)
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.User == "" {
		opts.User = "backupd"
	}
	if opts.HostKey == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if opts.HostKey, err = ssh.NewSignerFromKey(priv); err != nil {
			return nil, err
		}
	}
	cfg := &ssh.ServerConfig{}
	if len(opts.AuthorizedKeys) > 0 {
		cfg.PublicKeyCallback = func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() == opts.User {
				for _, k := range opts.AuthorizedKeys {
					if subtle.ConstantTimeCompare(k.Marshal(), key.Marshal()) == 1 {
						return nil, nil
					}
				}
			}
			return nil, errors.New("key not authorized")
		}
	}
	if opts.Password != "" {
		cfg.PasswordCallback = func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if c.User() == opts.User && subtle.ConstantTimeCompare(pw, []byte(opts.Password)) == 1 {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		}
	}
	cfg.AddHostKey(opts.HostKey)

	l, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Addr:     l.Addr().String(),
		User:     opts.User,
		HostKey:  opts.HostKey.PublicKey(),
		Root:     root,
		opts:     opts,
		config:   cfg,
		listener: l,
		conns:    make(map[net.Conn]bool),
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.listener.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serveConn(c)
		}()
	}
}

func (s *Server) serveConn(c net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.Close()
			for req := range creqs {
				ok := req.Type == "subsystem" && len(req.Payload) >= 4 && string(req.Payload[4:]) == "sftp"
				if req.WantReply {
					req.Reply(ok, nil)
				}
				if ok {
					s.serveSFTP(ch)
					return
				}
			}
		}()
	}
}

func (s *Server) serveSFTP(ch ssh.Channel) {
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		return
	}
	defer root.Close()
	h := &handlers{root: root, path: s.Root, noStatVFS: s.opts.NoStatVFS}
	if s.opts.AppendOnly {
		h.appendOnly = true
		h.removable = s.opts.Removable
		if h.removable == nil {
			h.removable = func(string) bool { return false }
		}
	}
	var hs sftp.Handlers
	if s.opts.NoPosixRename {
		hs = sftp.Handlers{FileGet: h, FilePut: h, FileCmd: plainCmder{h}, FileList: h}
	} else {
		hs = sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h}
	}
	rs := sftp.NewRequestServer(ch, hs)
	_ = rs.Serve()
	rs.Close()
}

// DropConnections cuts every open connection, as a network failure would.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Close stops listening, cuts all connections and waits for them to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.listener.Close()
	s.DropConnections()
	s.wg.Wait()
	return err
}

// handlers serve requests from an os.Root. Request paths are already
// cleaned and absolute ("/a/b"); rel turns them into names inside the root.
type handlers struct {
	root       *os.Root
	path       string
	noStatVFS  bool
	appendOnly bool
	removable  func(string) bool
}

// kept reports whether the append-only rule protects p: it exists, is
// not a directory, and is not removable.
func (h *handlers) kept(p string) bool {
	if !h.appendOnly || h.removable(p) {
		return false
	}
	fi, err := h.root.Lstat(p)
	return err == nil && !fi.IsDir()
}

func rel(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// fsErr makes errors look like OpenSSH's: a path through a file is "no
// such file" there too.
func fsErr(err error) error {
	if errors.Is(err, syscall.ENOTDIR) {
		return os.ErrNotExist
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err // do not tell clients the server's real paths
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

func (h *handlers) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	f, err := h.root.Open(rel(r.Filepath))
	if err != nil {
		return nil, fsErr(err)
	}
	return f, nil
}

func (h *handlers) openFlags(r *sftp.Request) int {
	pf := r.Pflags()
	flags := os.O_WRONLY
	if pf.Read {
		flags = os.O_RDWR
	}
	if pf.Creat {
		flags |= os.O_CREATE
	}
	if pf.Trunc {
		flags |= os.O_TRUNC
	}
	if pf.Excl {
		flags |= os.O_EXCL
	}
	return flags // O_APPEND is left out on purpose: writes come as WriteAt
}

func (h *handlers) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	if h.kept(rel(r.Filepath)) {
		return nil, sftp.ErrSSHFxPermissionDenied
	}
	f, err := h.root.OpenFile(rel(r.Filepath), h.openFlags(r), 0o644)
	if err != nil {
		return nil, fsErr(err)
	}
	return f, nil
}

func (h *handlers) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	if h.kept(rel(r.Filepath)) {
		return nil, sftp.ErrSSHFxPermissionDenied
	}
	f, err := h.root.OpenFile(rel(r.Filepath), h.openFlags(r), 0o644)
	if err != nil {
		return nil, fsErr(err)
	}
	return f, nil
}

func (h *handlers) Filecmd(r *sftp.Request) error {
	p := rel(r.Filepath)
	if h.appendOnly {
		switch r.Method {
		case "Setstat", "Remove", "Rename", "PosixRename":
			if h.kept(p) {
				return sftp.ErrSSHFxPermissionDenied
			}
		case "Rmdir":
			return sftp.ErrSSHFxPermissionDenied
		}
		if r.Method == "PosixRename" && h.kept(rel(r.Target)) {
			return sftp.ErrSSHFxPermissionDenied
		}
	}
	switch r.Method {
	case "Setstat":
		attrs, flags := r.Attributes(), r.AttrFlags()
		if flags.Size {
			f, err := h.root.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return fsErr(err)
			}
			err = f.Truncate(int64(attrs.Size))
			f.Close()
			if err != nil {
				return fsErr(err)
			}
		}
		if flags.Permissions {
			if err := h.root.Chmod(p, attrs.FileMode().Perm()); err != nil {
				return fsErr(err)
			}
		}
		if flags.Acmodtime {
			if err := h.root.Chtimes(p, attrs.AccessTime(), attrs.ModTime()); err != nil {
				return fsErr(err)
			}
		}
		return nil
	case "Rename":
		// Plain SFTP rename refuses to replace, like OpenSSH's.
		if _, err := h.root.Lstat(rel(r.Target)); err == nil {
			return os.ErrExist
		}
		return fsErr(h.root.Rename(p, rel(r.Target)))
	case "PosixRename":
		return h.PosixRename(r)
	case "Rmdir":
		fi, err := h.root.Lstat(p)
		if err != nil {
			return fsErr(err)
		}
		if !fi.IsDir() {
			return syscall.ENOTDIR
		}
		return fsErr(h.root.Remove(p))
	case "Remove":
		fi, err := h.root.Lstat(p)
		if err != nil {
			return fsErr(err)
		}
		if fi.IsDir() {
			return syscall.EISDIR
		}
		return fsErr(h.root.Remove(p))
	case "Mkdir":
		return fsErr(h.root.Mkdir(p, 0o755))
	case "Link":
		return fsErr(h.root.Link(p, rel(r.Target)))
	case "Symlink":
		// A symlink's target is free text; refusing them keeps the tree simple.
		return sftp.ErrSSHFxOpUnsupported
	}
	return sftp.ErrSSHFxOpUnsupported
}

// PosixRename replaces the target atomically (rename(2)).
func (h *handlers) PosixRename(r *sftp.Request) error {
	if h.kept(rel(r.Filepath)) || h.kept(rel(r.Target)) {
		return sftp.ErrSSHFxPermissionDenied
	}
	return fsErr(h.root.Rename(rel(r.Filepath), rel(r.Target)))
}

// StatVFS reports the filesystem holding the path.
func (h *handlers) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	if h.noStatVFS {
		return nil, sftp.ErrSSHFxOpUnsupported
	}
	f, err := h.root.Open(rel(r.Filepath))
	if err != nil {
		return nil, fsErr(err)
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	frsize := uint64(st.Frsize)
	if frsize == 0 {
		frsize = uint64(st.Bsize)
	}
	return &sftp.StatVFS{
		Bsize:   uint64(st.Bsize),
		Frsize:  frsize,
		Blocks:  st.Blocks,
		Bfree:   st.Bfree,
		Bavail:  st.Bavail,
		Files:   st.Files,
		Ffree:   st.Ffree,
		Favail:  st.Ffree,
		Namemax: uint64(st.Namelen),
		Flag:    uint64(st.Flags),
	}, nil
}

func (h *handlers) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	p := rel(r.Filepath)
	switch r.Method {
	case "List":
		f, err := h.root.Open(p)
		if err != nil {
			return nil, fsErr(err)
		}
		defer f.Close()
		fis, err := f.Readdir(-1)
		if err != nil {
			return nil, fsErr(err)
		}
		return listerAt(fis), nil
	case "Stat":
		fi, err := h.root.Stat(p)
		if err != nil {
			return nil, fsErr(err)
		}
		return listerAt{fi}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

func (h *handlers) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	fi, err := h.root.Lstat(rel(r.Filepath))
	if err != nil {
		return nil, fsErr(err)
	}
	return listerAt{fi}, nil
}

func (h *handlers) Readlink(p string) (string, error) {
	target, err := h.root.Readlink(rel(p))
	return target, fsErr(err)
}

type listerAt []os.FileInfo

func (l listerAt) ListAt(dst []os.FileInfo, offset int64) (int, error) {
	if offset >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[offset:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}

// plainCmder answers posix-rename as unsupported, like a server without
// the extension. (pkg/sftp advertises its extensions process-wide, so the
// server cannot simply stop offering it.)
type plainCmder struct{ h *handlers }

func (p plainCmder) Filecmd(r *sftp.Request) error {
	if r.Method == "PosixRename" {
		return sftp.ErrSSHFxOpUnsupported
	}
	return p.h.Filecmd(r)
}

func (p plainCmder) PosixRename(*sftp.Request) error { return sftp.ErrSSHFxOpUnsupported }

func (p plainCmder) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) { return p.h.StatVFS(r) }

// GenerateClientKey makes an Ed25519 key pair: the signer for a client and
// its private key in OpenSSH PEM form (for a KeyFile).
func GenerateClientKey() (ssh.Signer, []byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, nil, err
	}
	return signer, pem.EncodeToMemory(block), nil
}
