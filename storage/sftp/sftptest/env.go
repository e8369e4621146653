package sftptest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	pkgsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"backupd/storage/sftp"
)

// Env is a running Server plus the files a client needs to reach it.
type Env struct {
	*Server
	Host           string // "127.0.0.1"
	Port           string
	KeyFile        string // the client's private key (OpenSSH PEM, no passphrase)
	KnownHostsFile string // a known_hosts line for the server's host key
	Password       string // the accepted password, if one was set
}

// StartEnv generates a client key, writes it and a known_hosts file into
// keyDir, and starts a server for root that accepts that key (and
// opts.Password, if set). This is what a development stack runs.
func StartEnv(root, keyDir string, opts Options) (*Env, error) {
	signer, pemKey, err := GenerateClientKey()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return nil, err
	}
	keyFile := filepath.Join(keyDir, "id_ed25519")
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		return nil, err
	}
	opts.AuthorizedKeys = append(opts.AuthorizedKeys, signer.PublicKey())
	s, err := NewServer(root, opts)
	if err != nil {
		return nil, err
	}
	khFile := filepath.Join(keyDir, "known_hosts")
	if err := os.WriteFile(khFile, []byte(knownhosts.Line([]string{s.Addr}, s.HostKey)+"\n"), 0o600); err != nil {
		s.Close()
		return nil, err
	}
	host, port, _ := net.SplitHostPort(s.Addr)
	return &Env{Server: s, Host: host, Port: port, KeyFile: keyFile, KnownHostsFile: khFile, Password: opts.Password}, nil
}

// Config returns a client configuration for the store at path on the
// server ("/" is the served root), authenticating with the key and checking
// the host key through the known_hosts file.
func (e *Env) Config(path string) sftp.Config {
	return sftp.Config{
		User:           e.User,
		Host:           e.Host,
		Port:           e.Port,
		Path:           path,
		KeyFile:        e.KeyFile,
		KnownHostsFile: e.KnownHostsFile,
	}
}

// Start runs a server on a fresh temporary directory for the test (see
// StartOpts); it is closed when the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartOpts(t, Options{})
}

// StartOpts is Start with options; root is a fresh temporary directory.
func StartOpts(t testing.TB, opts Options) *Env {
	t.Helper()
	e, err := StartEnv(t.TempDir(), t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// HostKeyLine is the server's host key in authorized_keys form.
func (e *Env) HostKeyLine() string { return string(ssh.MarshalAuthorizedKey(e.HostKey)) }

// Dial logs in with the client key, as any SFTP client with the same
// credential could (tests use it to try what backupd never does); the
// client is closed by close.
func (e *Env) Dial() (c *pkgsftp.Client, close func(), err error) {
	pem, err := os.ReadFile(e.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, nil, err
	}
	sc, err := ssh.Dial("tcp", e.Addr, &ssh.ClientConfig{
		User: e.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.FixedHostKey(e.HostKey),
	})
	if err != nil {
		return nil, nil, err
	}
	if c, err = pkgsftp.NewClient(sc); err != nil {
		sc.Close()
		return nil, nil, err
	}
	return c, func() { c.Close(); sc.Close() }, nil
}
