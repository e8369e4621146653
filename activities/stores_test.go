package activities

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"backupd/config"
	"backupd/repository"
	"backupd/storage/local"
)

// listener accepts connections and either holds them silent (a blackholed
// SSH server: the client waits out its dial) or closes them at once.
func listener(t *testing.T, silent bool) (addr string, accepts *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepts = &atomic.Int64{}
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			if silent {
				held = append(held, c)
			} else {
				c.Close()
			}
		}
	}()
	return ln.Addr().String(), accepts
}

func storesForTest(t *testing.T) (*Stores, *atomic.Int64) {
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, nil, 0o600)
	slow, _ := listener(t, true)
	dead, deadAccepts := listener(t, false)
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("pw\n"), 0o600)
	t.Setenv("BACKUPD_PASSWORD", "")
	cfg := &config.Config{PasswordFile: pwFile, Storage: map[string]config.Location{
		"local": {URL: filepath.Join(dir, "repo")},
		"slow":  {URL: "sftp://u:p@" + slow + "/x", KnownHosts: kh},
		"dead":  {URL: "sftp://u:p@" + dead + "/x", KnownHosts: kh},
	}}
	be, err := local.New(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	kdf := repository.TestKDF()
	if _, err := repository.Init(context.Background(), be, repository.InitOptions{Wrapping: repository.Wrapping{Password: []byte("pw"), KDF: &kdf}}); err != nil {
		t.Fatal(err)
	}
	return NewStores(cfg), deadAccepts
}

// One location that hangs must not delay the others: a single lock held
// across the dial once made a blackholed SFTP host stall every job and
// the status endpoints for 30 s.
func TestAHangingLocationDoesNotStallTheOthers(t *testing.T) {
	s, _ := storesForTest(t)
	defer s.Close()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s.Open(ctx, "slow") // hangs in the SSH handshake
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if _, err := s.Open(context.Background(), "local"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("opening a healthy location took %v while another hung", d)
	}
	// a second caller of the hanging location waits only as long as its
	// own context allows
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := s.Open(ctx, "slow"); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("second caller of a hanging location: %v after %v", err, time.Since(start))
	}
}

// A location that fails is answered from memory for a few seconds, then
// asked again.
func TestAFailedLocationIsRememberedBriefly(t *testing.T) {
	s, accepts := storesForTest(t)
	defer s.Close()
	old := failureTTL
	failureTTL = 500 * time.Millisecond
	defer func() { failureTTL = old }()
	ctx := context.Background()
	_, err1 := s.Open(ctx, "dead")
	_, err2 := s.Open(ctx, "dead")
	if err1 == nil || err2 == nil || accepts.Load() != 1 {
		t.Fatalf("errors %v / %v after %d dials: want two failures from one dial", err1, err2, accepts.Load())
	}
	time.Sleep(600 * time.Millisecond)
	s.Open(ctx, "dead")
	if accepts.Load() != 2 {
		t.Fatalf("a remembered failure was not retried after its TTL: %d dials", accepts.Load())
	}
}

// A password that opens no key entry names the location and where the
// password came from, and what to do.
func TestWrongPasswordNamesLocationAndSource(t *testing.T) {
	s, _ := storesForTest(t)
	defer s.Close()
	os.WriteFile(s.cfg.PasswordFile, []byte("another\n"), 0o600)
	_, err := s.Open(context.Background(), "local")
	if !errors.Is(err, repository.ErrNoMatchingKey) || !strings.Contains(err.Error(), "storage location local") ||
		!strings.Contains(err.Error(), s.cfg.PasswordFile) {
		t.Fatalf("error: %v", err)
	}
}
