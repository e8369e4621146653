// Package enrolment is a host's side of the fleet: enrolling with a
// control plane (a one-time token, a key made on the host, the server's
// certificate pinned), the state that enrolment leaves in the host's var
// directory, and the worker's announcements, which stop the worker when
// the server says the host was revoked. It speaks only the public API
// (package apiclient).
package enrolment

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"backupd/api"
	"backupd/apiclient"
)

// KeyBits is the size of the RSA key a host makes at enrolment (its
// repository key entries are wrapped to it).
const KeyBits = 3072

// State is what enrolment leaves on the host (DIR/enrolment.json, 0600).
type State struct {
	Server      string `json:"server"`
	Fingerprint string `json:"server_fingerprint,omitempty"` // "" only for plain HTTP
	HostID      string `json:"host_id"`
	Name        string `json:"name"`
	Credential  string `json:"credential"`
	TaskQueue   string `json:"task_queue"`
	Namespace   string `json:"temporal_namespace"`
	Enrolled    string `json:"enrolled"`
	// Locations: the server's storage locations where this host has a
	// repository (the server's primary first), as the last answer said
	Locations []string `json:"storage_locations"`
}

// Files in the enrolment directory.
const (
	StateFile = "enrolment.json"
	KeyFile   = "host-key.pem"
)

// Options of an enrolment.
type Options struct {
	Name string // the host's name (default: its hostname)
	// Fingerprint: the server's certificate, as the admin's enrolment
	// answer gave it ("sha256:..."). Without it the certificate seen now
	// is pinned (trust on first use), and said so.
	Fingerprint string
	// InsecureHTTP allows enrolling over plain HTTP with a server that is
	// not on this machine (the credential then crosses the network in
	// the clear).
	InsecureHTTP bool
	Components   []api.HostComponent
	HardwareID   string
	OS           string
	Version      string
	// Notice receives what the user should know (the pinned fingerprint).
	Notice func(string)
}

// ErrAlreadyEnrolled: the directory holds an enrolment.
var ErrAlreadyEnrolled = errors.New("this host is already enrolled")

// Enrol enrols this host with server using a one-time token and writes
// the state and the host's key into dir.
func Enrol(ctx context.Context, dir, server, token string, o Options) (*State, error) {
	if st, err := Load(dir); err == nil {
		return nil, fmt.Errorf("%w as %s with %s (%s); to enrol it again, remove that directory first", ErrAlreadyEnrolled, st.Name, st.Server, dir)
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want https://HOST:PORT", server)
	}
	if u.Scheme == "http" && !o.InsecureHTTP && !loopback(u.Hostname()) {
		return nil, fmt.Errorf("server %s is plain HTTP: the host's credential would cross the network in the clear; serve the API over TLS (api.tls_cert) or, on a network you trust, pass --insecure-http", server)
	}
	if o.Name == "" {
		o.Name, _ = os.Hostname()
	}
	pin := o.Fingerprint
	if u.Scheme == "https" && pin == "" {
		pin, err = apiclient.ServerFingerprint(ctx, server)
		if err != nil {
			return nil, err
		}
		if o.Notice != nil {
			o.Notice(fmt.Sprintf("no --server-fingerprint given: pinning the certificate %s presents now, %s (compare it with the enrolment answer's server_fingerprint)", server, pin))
		}
	}
	if u.Scheme == "http" && pin != "" {
		return nil, fmt.Errorf("--server-fingerprint is for an https server; %s is http", server)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := checkPrivate(dir, true); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	c, err := apiclient.New(server, "", apiclient.Options{Pin: pin, Timeout: time.Minute})
	if err != nil {
		return nil, err
	}
	ans, err := c.Enrol(ctx, api.EnrolRequest{Token: token, Name: o.Name, HardwareID: o.HardwareID, OS: o.OS,
		Version: o.Version, Components: o.Components,
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))})
	if err != nil {
		return nil, fmt.Errorf("enrolment refused: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustPKCS8(key)})
	if err := writeFile(filepath.Join(dir, KeyFile), keyPEM); err != nil {
		return nil, err
	}
	st := &State{Server: server, Fingerprint: pin, HostID: ans.HostID, Name: ans.Name, Credential: ans.Credential,
		TaskQueue: ans.TaskQueue, Namespace: ans.Namespace,
		Enrolled: time.Now().UTC().Format(time.RFC3339), Locations: ans.Locations}
	if err := st.Save(dir); err != nil {
		return nil, err
	}
	return st, nil
}

func mustPKCS8(k *rsa.PrivateKey) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return b
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Load reads the enrolment in dir. The file holds the host's credential:
// one that others can read is refused.
func Load(dir string) (*State, error) {
	p := filepath.Join(dir, StateFile)
	if _, err := os.Lstat(p); err != nil {
		return nil, err
	}
	if err := checkPrivate(dir, true); err != nil {
		return nil, err
	}
	if err := checkPrivate(p, false); err != nil {
		return nil, err
	}
	if err := checkPrivate(filepath.Join(dir, KeyFile), false); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil || st.Server == "" || st.Credential == "" || st.Name == "" {
		return nil, fmt.Errorf("%s is not a backupd enrolment (%v): remove the directory and enrol again", p, err)
	}
	return &st, nil
}

// Save writes the state atomically (a crash leaves the old or the new
// file, never a torn one).
func (st *State) Save(dir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, StateFile), append(b, '\n'))
}

func writeFile(p string, b []byte) error {
	tmp := p + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// Client is an API client that speaks as this host.
func (st *State) Client() (*apiclient.Client, error) {
	return apiclient.New(st.Server, st.Credential, apiclient.Options{Pin: st.Fingerprint, Timeout: 30 * time.Second})
}

// ErrRevoked: the server refuses this host's credential.
var ErrRevoked = errors.New("the server refuses this host's credential")

// Announce tells the server this host's worker is up. An answer of 401
// is ErrRevoked (wrapped, with the server's words). The locations the
// server names are kept in st (and in dir, when it is given and they
// changed). The answer carries the server's central components.
func (st *State) Announce(ctx context.Context, req api.AnnounceRequest, dir string) (*api.Announced, error) {
	c, err := st.Client()
	if err != nil {
		return nil, err
	}
	ans, err := c.Announce(ctx, req)
	var ae *apiclient.Error
	if errors.As(err, &ae) && (ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden) {
		return nil, fmt.Errorf("%w (host %s, %s): %s", ErrRevoked, st.Name, st.Server, ae.Body.Message)
	}
	if err != nil {
		return nil, err
	}
	if strings.Join(ans.Locations, ",") != strings.Join(st.Locations, ",") {
		st.Locations = ans.Locations
		if dir != "" {
			return &ans, st.Save(dir)
		}
	}
	return &ans, nil
}

// Keep announces every interval until ctx ends, and returns ErrRevoked
// (wrapped) as soon as the server refuses the host. Other failures (the
// server is down, the network) are logged and retried: the worker keeps
// running its jobs through Temporal meanwhile. Each answer goes to
// onAnswer (when set); when it says something changed, the host
// announces itself again at once (so the server sees the change).
func (st *State) Keep(ctx context.Context, every time.Duration, req func() api.AnnounceRequest, onAnswer func(*api.Announced) bool, log *slog.Logger) error {
	st = &State{Server: st.Server, Fingerprint: st.Fingerprint, Name: st.Name, Credential: st.Credential} // its own copy
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ans, err := st.Announce(actx, req(), "")
		if err == nil && onAnswer != nil && onAnswer(ans) {
			_, err = st.Announce(actx, req(), "")
		}
		cancel()
		switch {
		case errors.Is(err, ErrRevoked):
			return err
		case errors.Is(err, apiclient.ErrPinMismatch):
			// not this host's server: said at every attempt, never talked to
			log.Error("refusing to talk to the server: its certificate is not the one pinned at enrolment", "server", st.Server, "err", err)
			failing = true
		case err != nil && ctx.Err() == nil:
			if !failing {
				log.Warn("cannot announce this host to the server; retrying every interval", "server", st.Server, "err", err, "every", every)
			}
			failing = true
		case err == nil && failing:
			log.Info("announcing to the server again", "server", st.Server)
			failing = false
		}
	}
}

// checkPrivate refuses what another local user could have planted or
// could change: the enrolment's directory and files must be this user's
// own (not links), the files unreadable and the directory unwritable by
// anyone else, and the directory's parent writable by no one else (or
// the directory could be swapped).
func checkPrivate(p string, dir bool) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	euid := os.Geteuid()
	owner := func(fi os.FileInfo) int {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			return int(st.Uid)
		}
		return -1
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link: the enrolment's files must be real files of this user", p)
	case dir != fi.IsDir():
		return fmt.Errorf("%s is not a %s", p, map[bool]string{true: "directory", false: "regular file"}[dir])
	case owner(fi) != euid:
		return fmt.Errorf("%s belongs to user %d, not to this one (%d): someone else may have made it; remove it and enrol again", p, owner(fi), euid)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s is open to other users (mode %v): chmod %s %s", p, fi.Mode().Perm(), map[bool]string{true: "700", false: "600"}[dir], p)
	}
	if dir {
		parent := filepath.Dir(p)
		pi, err := os.Stat(parent)
		if err != nil {
			return err
		}
		if o := owner(pi); (o != euid && o != 0) || pi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%s (which holds this host's enrolment) can be changed by other users (owner %d, mode %v): make it this user's and not group- or world-writable", parent, o, pi.Mode().Perm())
		}
	}
	return nil
}
