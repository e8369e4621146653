package activities

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"backupd/config"
	"backupd/models"
	"backupd/models/modelstest"
	"backupd/repository"
	"backupd/storage/local"
)

// A catalog rebuilt from storage finds enrolled hosts' backups in their
// repositories (hosts/<id>): under the catalog's host when it has one,
// else under a host recorded again, revoked; a host's manifest that names
// the server's own host does not make it the server's.
func TestRebuildCatalogReadsHostsRepositories(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("pw\n"), 0o600)
	t.Setenv("BACKUPD_PASSWORD", "")
	cfg := &config.Config{Host: "server-1", PasswordFile: pwFile, Storage: map[string]config.Location{"local": {URL: filepath.Join(dir, "repo")}}}
	kdf := repository.TestKDF()
	write := func(sub, backupID, host string) {
		be, err := local.New(filepath.Join(dir, "repo", sub))
		if err != nil {
			t.Fatal(err)
		}
		r, err := repository.Open(ctx, be, repository.Credentials{Password: []byte("pw")})
		if err != nil {
			r, err = repository.Init(ctx, be, repository.InitOptions{Wrapping: repository.Wrapping{Password: []byte("pw"), KDF: &kdf}})
		}
		if err != nil {
			t.Fatal(err)
		}
		tree, err := r.SaveTree(ctx, &repository.Tree{})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		if err := r.SaveManifest(ctx, &repository.Manifest{ID: backupID, Type: "full", Host: host, Started: now, Finished: now,
			Components: []repository.ComponentManifest{{Name: "data", Tree: tree}}}); err != nil {
			t.Fatal(err)
		}
	}
	known, lost, liar := models.NewHostID(), models.NewHostID(), models.NewHostID()
	write("", "backup-own", "server-1")
	write("hosts/"+known, "backup-known", "gw-known")
	write("hosts/"+lost, "backup-lost", "gw-lost")
	write("hosts/"+liar, "backup-liar", "server-1")
	// ids that are another repository's: the server's, and one two hosts claim
	write("hosts/"+liar, "backup-own", "server-1")
	write("hosts/"+liar, "backup-twice", "x")
	write("hosts/"+lost, "backup-twice", "x")
	store := modelstest.Open(t, "sqlite")
	if err := store.DB.Create(&models.Host{ID: known, Name: "gw-known", Status: models.HostActive, Repos: map[string]string{"local": "k"}}).Error; err != nil {
		t.Fatal(err)
	}
	stores := NewStores(cfg)
	defer stores.Close()
	res, err := RebuildCatalog(ctx, store, stores, []string{"local"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Backups != 4 || len(res.Recovered) != 2 || res.Hosts["gw-known"] != 1 || res.Hosts["gw-lost"] != 2 || len(res.Unreadable) != 2 {
		t.Fatalf("rebuild: %+v", res)
	}
	hostOf := func(id string) string {
		b, err := store.GetBackup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return b.Host
	}
	if _, err := store.GetBackup(ctx, "backup-twice"); err == nil {
		t.Fatal("a backup id two hosts' repositories claim was filed")
	}
	if hostOf("backup-own") != "server-1" || hostOf("backup-known") != "gw-known" || hostOf("backup-lost") != "gw-lost" {
		t.Fatalf("hosts: %s %s %s", hostOf("backup-own"), hostOf("backup-known"), hostOf("backup-lost"))
	}
	if h := hostOf("backup-liar"); h != "recovered-"+liar[len("host-"):] {
		t.Fatalf("a host's backup claiming the server's name was filed under %q", h)
	}
	h, err := store.GetHost(ctx, lost)
	if err != nil || h.Status != models.HostRevoked || h.Name != "gw-lost" || h.Repos["local"] == "" {
		t.Fatalf("recovered host: %v %+v", err, h)
	}
	// a second rebuild finds the same, and records nothing again
	res, err = RebuildCatalog(ctx, store, stores, []string{"local"})
	if err != nil || res.Backups != 4 || len(res.Recovered) != 0 || res.Updated != 4 {
		t.Fatalf("second rebuild: %v %+v", err, res)
	}
}
