package apiserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupd/activities"
	"backupd/api"
	"backupd/apiclient"
	"backupd/backup"
	"backupd/codes"
	"backupd/config"
	"backupd/models"
	"backupd/models/modelstest"
	"backupd/repository"
	"backupd/restore"
	"backupd/storage"
	"backupd/storage/hostproxy"
	"backupd/storage/local"
	"backupd/storage/prefix"
)

// An enrolled host writes a backup through the server into a repository
// of its own that it cannot read back, delete or overwrite; the server
// reads it with its own key; another host's key opens nothing there.
func TestHostWritesItsOwnRepositoryThroughTheServer(t *testing.T) {
	t.Setenv("BACKUPD_TEST_KDF", "1")
	ctx := context.Background()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("server password\n"), 0o600)
	root := filepath.Join(dir, "backups")
	cfg := &config.Config{Host: "srv", Primary: "local", PasswordFile: pw,
		Storage: map[string]config.Location{"local": {URL: root}}}
	stores := activities.NewStores(cfg)
	t.Cleanup(stores.Close)
	if err := stores.EnsureInitialized(ctx); err != nil {
		t.Fatal(err)
	}
	s := New(&Server{Cfg: cfg, Store: modelstest.Open(t, "sqlite"), Stores: stores, Temporal: unreachableTemporal{}})
	srv := httptest.NewTLSServer(s.Handler())
	t.Cleanup(srv.Close)
	pin := apiclient.CertFingerprint(srv.Certificate().Raw)

	enrol := func(name string) (*rsa.PrivateKey, api.Enrolled) {
		key, err := rsa.GenerateKey(rand.Reader, 3072)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		tok, _, err := s.Store.CreateEnrolment(ctx, "", nil, "test", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c, err := apiclient.New(srv.URL, "", apiclient.Options{Pin: pin})
		if err != nil {
			t.Fatal(err)
		}
		ans, err := c.Enrol(ctx, api.EnrolRequest{Token: tok, Name: name,
			PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(ans.Locations, ",") != "local" {
			t.Fatalf("%s enrolled with locations %v", name, ans.Locations)
		}
		return key, ans
	}
	keyA, a := enrol("gw-a")
	keyB, b := enrol("gw-b")
	u, _ := url.Parse("backupd+" + srv.URL + "/local")
	beA, err := hostproxy.New(u, hostproxy.Options{Token: a.Credential, Pin: pin})
	if err != nil {
		t.Fatal(err)
	}

	// what a host may and may not do with objects
	if err := beA.Put(ctx, "data/zz/new", bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	if err := beA.Put(ctx, "data/zz/new", bytes.NewReader([]byte("y")), 1); err == nil || !storage.IsPermanent(err) || !errors.Is(err, storage.ErrRefused) {
		t.Fatalf("a host replaced a pack: %v", err)
	}
	if err := beA.Delete(ctx, "data/zz/new"); err == nil || !strings.Contains(err.Error(), "cannot delete") {
		t.Fatalf("a host deleted a pack: %v", err)
	}
	for _, n := range []string{"config", "keys/x", "tombstones/backup-1", "manifest-sets/s", "gc/x"} {
		if err := beA.Put(ctx, n, bytes.NewReader([]byte("x")), 1); err == nil {
			t.Errorf("a host wrote %s", n)
		}
	}
	if err := beA.Put(ctx, "writers/w1", bytes.NewReader([]byte("1")), 1); err != nil {
		t.Fatal(err)
	}
	if err := beA.Put(ctx, "writers/w1", bytes.NewReader([]byte("2")), 1); err != nil {
		t.Fatalf("a host could not refresh its registration: %v", err)
	}
	if err := beA.Delete(ctx, "writers/w1"); err != nil {
		t.Fatal(err)
	}
	// the server counts what the host stored: the one-byte pack, not the
	// refused writes nor its registrations
	if h, err := s.Store.GetHost(ctx, "gw-a"); err != nil || h.WrittenBytes != 1 {
		t.Fatalf("gw-a's written bytes: %+v %v", h, err)
	}
	if _, err := beA.Stat(ctx, "data/zz/missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("stat of a missing object: %v", err)
	}
	var keys []string
	beA.List(ctx, "keys/", func(oi storage.ObjectInfo) error { keys = append(keys, oi.Name); return nil })
	if len(keys) != 1 {
		t.Fatalf("a host sees key entries %v: only its own may be there for it", keys)
	}
	if err := beA.Put(ctx, "../gw-b/data/x", bytes.NewReader([]byte("x")), 1); !errors.Is(err, storage.ErrInvalidName) {
		t.Fatalf("a name leaving the host's repository: %v", err)
	}

	// a backup through the server, with the host's write-only key
	data := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(data, "etc"), 0o755)
	content := bytes.Repeat([]byte("gateway config\n"), 5000)
	os.WriteFile(filepath.Join(data, "etc", "app.conf"), content, 0o644)
	repoA, err := repository.Open(ctx, beA, repository.Credentials{RSAPrivateKey: keyA})
	if err != nil {
		t.Fatal(err)
	}
	if repoA.Keys().CanRead() {
		t.Fatal("the host's key reads its repository")
	}
	m, err := backup.Run(ctx, repoA, backup.Options{Type: "full", Host: "gw-a", Components: []backup.Component{{Name: "data", Paths: []string{data}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repoA.LoadManifest(ctx, m.ID); err == nil {
		t.Fatal("the host read back its own manifest")
	}
	if _, err := beA.Stat(ctx, "manifests/"+m.ID); err != nil {
		t.Fatal(err)
	}
	// nor fetch it (or its packs) to decrypt with a key it held once
	if rc, err := beA.Get(ctx, "manifests/"+m.ID, 0, -1); err == nil || !strings.Contains(err.Error(), "only under a restore grant") {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("a host fetched its past manifest: %v", err)
	}
	if err := beA.Put(ctx, "manifests/"+m.ID, bytes.NewReader([]byte("{}")), 2); err == nil {
		t.Fatal("a host overwrote its past backup's manifest")
	}
	if err := beA.Delete(ctx, "manifests/"+m.ID); err == nil {
		t.Fatal("a host deleted its past backup's manifest")
	}

	// the server reads it with its own key and restores it byte for byte
	rootBE, _ := local.New(root)
	pA, _ := prefix.New(rootBE, "hosts/"+a.HostID)
	pwb, _ := cfg.Password()
	server, err := repository.Open(ctx, pA, repository.Credentials{Password: pwb})
	if err != nil {
		t.Fatal(err)
	}
	sm, err := server.LoadManifest(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if _, err := restore.Run(ctx, server, sm, restore.Options{Target: out}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, "data", data, "etc", "app.conf"))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("restored %d bytes (%v), want %d", len(got), err, len(content))
	}

	// host B's key opens nothing in A's repository, and B's credential
	// reaches only B's
	if _, err := repository.Open(ctx, pA, repository.Credentials{RSAPrivateKey: keyB}); !errors.Is(err, repository.ErrNoMatchingKey) {
		t.Fatalf("host B's key on A's repository: %v", err)
	}
	beB, _ := hostproxy.New(u, hostproxy.Options{Token: b.Credential, Pin: pin})
	if _, err := beB.Stat(ctx, "manifests/"+m.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("host B sees A's manifest: %v", err)
	}

	// under a restore grant, B reads A's repository, read-only, with a
	// key entry wrapped to B's key, and restores A's backup byte for
	// byte; A cannot use B's grant; once ended, B is refused and the key
	// entry is gone
	hA, _ := s.Store.GetHost(ctx, "gw-a")
	hB, _ := s.Store.GetHost(ctx, "gw-b")
	g, err := s.grantRestore(ctx, hB, hA, "local", m.ID, "RESTORE-T", "test")
	if err != nil {
		t.Fatal(err)
	}
	gB, _ := hostproxy.New(u, hostproxy.Options{Token: b.Credential, Pin: pin, Grant: g.ID})
	viaGrant, err := repository.Open(ctx, gB, repository.Credentials{RSAPrivateKey: keyB})
	if err != nil {
		t.Fatalf("B under the grant: %v", err)
	}
	gm, err := viaGrant.LoadManifest(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(dir, "out-on-b")
	if _, err := restore.Run(ctx, viaGrant, gm, restore.Options{Target: out2}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(out2, "data", data, "etc", "app.conf")); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("B restored %d bytes of A's backup (%v), want %d", len(got), err, len(content))
	}
	if err := gB.Put(ctx, "data/zz/by-b", bytes.NewReader([]byte("x")), 1); err == nil || !strings.Contains(err.Error(), "reads; nothing is written") {
		t.Fatalf("B wrote under the grant: %v", err)
	}
	if err := gB.Delete(ctx, "writers/w1"); err == nil {
		t.Fatal("B deleted under the grant")
	}
	var seen []string
	gB.List(ctx, "keys/", func(oi storage.ObjectInfo) error { seen = append(seen, oi.Name); return nil })
	if len(seen) != 1 || seen[0] != "keys/"+g.KeyEntry {
		t.Fatalf("B sees key entries %v under the grant, want only its own", seen)
	}
	gA, _ := hostproxy.New(u, hostproxy.Options{Token: a.Credential, Pin: pin, Grant: g.ID})
	if _, err := gA.Stat(ctx, "manifests/"+m.ID); err == nil || !strings.Contains(err.Error(), "does not let host gw-a") {
		t.Fatalf("A used B's grant: %v", err)
	}
	if err := s.RevokeGrant(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := gB.Stat(ctx, "manifests/"+m.ID); err == nil || !storage.IsPermanent(err) {
		t.Fatalf("B under an ended grant: %v", err)
	}
	if _, err := repository.Open(ctx, pA, repository.Credentials{RSAPrivateKey: keyB}); !errors.Is(err, repository.ErrNoMatchingKey) {
		t.Fatalf("the grant's key entry outlived it: %v", err)
	}
	if err := s.RevokeGrant(ctx, g.ID); err != nil {
		t.Fatalf("ending an ended grant: %v", err)
	}
	// a grant past its expiry is ended by the sweep, and one of a host
	// that is revoked with it
	for _, end := range []string{"sweep", "revoke"} {
		g, err := s.grantRestore(ctx, hB, hA, "local", m.ID, "RESTORE-"+end, "test")
		if err != nil {
			t.Fatal(err)
		}
		if end == "sweep" {
			s.Store.DB.Model(&models.HostGrant{}).Where("id = ?", g.ID).Update("expires_at", time.Now().Add(-time.Minute))
			s.SweepGrants(ctx)
		} else {
			s.EndHostGrants(ctx, hB.ID)
		}
		if got, _ := s.Store.GetGrant(ctx, g.ID); got.EndedAt == nil || !got.KeyRemoved {
			t.Fatalf("%s: grant %+v", end, got)
		}
		if _, err := repository.Open(ctx, pA, repository.Credentials{RSAPrivateKey: keyB}); !errors.Is(err, repository.ErrNoMatchingKey) {
			t.Fatalf("%s: the grant's key entry outlived it: %v", end, err)
		}
	}

	// past its hard quota, a host's uploads of data stop, for good
	if err := s.Store.PutBackup(ctx, &models.Backup{ID: "backup-quota-1", Type: "full", Status: "completed", Timestamp: time.Now(),
		Host: "gw-a", AddedBytes: 5000}); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.SetHostQuota(ctx, a.HostID, 1000, 4000); err != nil {
		t.Fatal(err)
	}
	s.htot.val = nil
	err = beA.Put(ctx, "data/zz/over", bytes.NewReader([]byte("x")), 1)
	if err == nil || !storage.IsPermanent(err) || !strings.Contains(err.Error(), "hard quota") || codes.Classify(err).Code != codes.InsufficientStorage {
		t.Fatalf("an upload past the hard quota: %v", err)
	}
	if err := beA.Put(ctx, "writers/w2", bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatalf("a registration past the quota (a backup must be able to end): %v", err)
	}
	if err := beA.Put(ctx, "index/over", bytes.NewReader([]byte("x")), 1); err == nil || !strings.Contains(err.Error(), "hard quota") {
		t.Fatalf("an index file past the hard quota: %v", err)
	}
	big := bytes.Repeat([]byte("w"), 65<<10)
	if err := beA.Put(ctx, "writers/w3", bytes.NewReader(big), int64(len(big))); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("a registration that carries data: %v", err)
	}
	// registrations are bounded in number (the server reads them all when
	// it collects); replacing one is not a new one
	for i := 0; ; i++ {
		err := beA.Put(ctx, fmt.Sprintf("pending/p%03d", i), bytes.NewReader([]byte("x")), 1)
		if err != nil {
			if i != maxHostRenewable || !strings.Contains(err.Error(), "the most it may") {
				t.Fatalf("pending marker %d: %v", i, err)
			}
			break
		}
	}
	if err := beA.Put(ctx, "pending/p000", bytes.NewReader([]byte("y")), 1); err != nil {
		t.Fatalf("replacing a marker at the bound: %v", err)
	}

	// a revoked host's storage is refused at once
	if _, err := s.Store.RevokeHost(ctx, a.HostID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := beA.Stat(ctx, "manifests/"+m.ID); err == nil || !storage.IsPermanent(err) {
		t.Fatalf("revoked host's storage: %v", err)
	}
}
