// Package s3test runs a real S3 server, versitygw, on a loopback port for
// tests and for the development stack.
//
// The binary is found by FindBinary: $BACKUPD_VERSITYGW, else
// <module root>/bin/versitygw (`make tools` builds it there), else
// /work/main/bin/versitygw.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"backupd/storage/s3"
)

// Server is a running versitygw process serving a directory: each bucket is
// a subdirectory of Dir.
type Server struct {
	Endpoint  string // "http://127.0.0.1:PORT"
	Addr      string // "127.0.0.1:PORT"
	AccessKey string
	SecretKey string
	Dir       string

	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	output *syncBuffer
}

// FindBinary returns the versitygw binary to run, or an error naming the
// places it looked.
func FindBinary() (string, error) {
	var tried []string
	if p := os.Getenv("BACKUPD_VERSITYGW"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		tried = append(tried, p+" ($BACKUPD_VERSITYGW)")
	}
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, "bin", "versitygw")
		if isExecutable(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	p := "/work/main/bin/versitygw"
	if isExecutable(p) {
		return p, nil
	}
	tried = append(tried, p)
	return "", fmt.Errorf("versitygw not found (tried %s); build it with `make tools`", strings.Join(tried, ", "))
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// moduleRoot finds the directory holding go.mod, from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// StartServer starts versitygw from bin serving dir on a free loopback port
// with fresh random root credentials, and waits until it accepts connections.
func StartServer(bin, dir string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // the free port we picked may be taken before versitygw binds it
		s, err := startOnce(bin, dir)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func startOnce(bin, dir string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()

	s := &Server{
		Endpoint:  "http://" + addr,
		Addr:      addr,
		AccessKey: "backupd" + randomHex(4),
		SecretKey: randomHex(16),
		Dir:       dir,
		done:      make(chan struct{}),
		output:    &syncBuffer{},
	}
	// keep-alive is off by default in versitygw: every request would open
	// a connection (S3 keeps them), and a long benchmark leave thousands
	// in TIME-WAIT
	s.cmd = exec.Command(bin, "--port", addr, "--quiet", "--keep-alive", "posix", dir)
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	s.cmd.Stdout = s.output
	s.cmd.Stderr = s.output
	// Take the server down with us if this process dies without Stop.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("versitygw exited at start: %s", s.output.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("versitygw did not listen on %s within 15s: %s", addr, s.output.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Config returns a configuration for bucket (created on first use) with
// the given key prefix.
func (s *Server) Config(bucket, prefix string) s3.Config {
	return s3.Config{
		Bucket:       bucket,
		Prefix:       prefix,
		Endpoint:     s.Endpoint,
		Region:       "us-east-1",
		PathStyle:    true,
		AccessKey:    s.AccessKey,
		SecretKey:    s.SecretKey,
		CreateBucket: true,
	}
}

// Output returns what the server printed so far.
func (s *Server) Output() string { return s.output.String() }

// Stop terminates the server (SIGTERM, then SIGKILL after 5s) and waits for it.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	return nil
}

// StartTB starts a server for the test, stopped when the test ends. If the
// binary is missing the test is skipped, or fails when
// BACKUPD_REQUIRE_SERVERS=1.
func StartTB(t testing.TB) *Server {
	t.Helper()
	bin, err := FindBinary()
	if err != nil {
		if os.Getenv("BACKUPD_REQUIRE_SERVERS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	s, err := StartServer(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// Start starts a server for the test and returns the configuration of a
// fresh bucket on it (see StartTB).
func Start(t testing.TB) s3.Config {
	t.Helper()
	return StartTB(t).Config("backupd-test", "")
}

// NewBackend opens cfg for the test and closes it at the end.
func NewBackend(t testing.TB, cfg s3.Config) *s3.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := s3.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		return len(p), nil // enough to diagnose; do not grow without bound
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
