package enrolment

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"backupd/api"
	"backupd/apiclient"
)

func TestEnrolRefusesPlainHTTPToAnotherMachine(t *testing.T) {
	_, err := Enrol(context.Background(), t.TempDir(), "http://backup.example.com:8080", "bke_x", Options{Name: "gw"})
	if err == nil || !strings.Contains(err.Error(), "--insecure-http") {
		t.Fatalf("plain HTTP enrolment: %v", err)
	}
}

func TestLoadRefusesACredentialOthersCanRead(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	st := &State{Server: "https://s:1", HostID: "host-1", Name: "gw", Credential: "bkd_x"}
	if err := st.Save(dir); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(dir); err != nil || got.Name != "gw" {
		t.Fatalf("load: %v %v", got, err)
	}
	p := filepath.Join(dir, StateFile)
	os.Chmod(p, 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable state: %v", err)
	}
	os.Chmod(p, 0o600)
	// a directory others can write to, or a link in place of the file
	os.Chmod(dir, 0o770)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("group-writable directory: %v", err)
	}
	os.Chmod(dir, 0o700)
	os.Rename(p, p+".real")
	os.Symlink(p+".real", p)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("state file as a link: %v", err)
	}
	os.Remove(p)
	os.Rename(p+".real", p)
	// enrolling again over an enrolment is refused, naming the way out
	if _, err := Enrol(context.Background(), dir, "https://s:1", "bke_x", Options{}); !errors.Is(err, ErrAlreadyEnrolled) {
		t.Fatalf("second enrolment: %v", err)
	}
	os.WriteFile(p, []byte("{}"), 0o600)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a backupd enrolment") {
		t.Fatalf("empty state: %v", err)
	}
}

// A host that pinned one certificate refuses a server presenting
// another, before it sends its credential.
func TestAnnounceRefusesAnotherCertificate(t *testing.T) {
	got := false
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = true }))
	defer srv.Close()
	right := apiclient.CertFingerprint(srv.Certificate().Raw)
	if fp, err := apiclient.ServerFingerprint(context.Background(), srv.URL); err != nil || fp != right {
		t.Fatalf("fingerprint %q %v, want %q", fp, err, right)
	}
	st := &State{Server: srv.URL, Fingerprint: "sha256:" + strings.Repeat("ab", 32), Name: "gw", Credential: "bkd_x"}
	_, err := st.Announce(context.Background(), apiAnnounce(), "")
	if !errors.Is(err, apiclient.ErrPinMismatch) || !strings.Contains(err.Error(), right) || got {
		t.Fatalf("announce to another certificate: %v (request reached the server: %v)", err, got)
	}
}

func apiAnnounce() api.AnnounceRequest { return api.AnnounceRequest{Version: "test"} }
