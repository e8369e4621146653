package tests

// Disaster recovery: the catalog and Temporal's state are lost; the
// storage and the key are not. `backupd catalog rebuild` brings the
// backups back into a new catalog, the API lists and restores them as
// before, and `backupd repo restore` restores from storage with no server.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"backupd/config"
)

func TestDisasterRecoveryFromStorageAlone(t *testing.T) {
	s := startAPIStack(t, "sqlite")
	const v1 = "/v1/cloud-integration/backup"
	var ids []string
	for _, typ := range []string{"full", "incremental"} {
		cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"name": "dr-" + typ, "type": typ,
			"description": "before the disaster", "retention_days": 30,
			"components": map[string]bool{"data": true, "configurations": true}, "storage_locations": []string{"local", "cloud"}})
		s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string))
		ids = append(ids, cr["backup_id"].(string))
	}
	fieldsOf := func(l obj) string {
		var out []string
		for _, b := range l["backups"].([]any) {
			b := b.(map[string]any)
			out = append(out, fmt.Sprint(b["id"], b["name"], b["type"], b["status"], b["timestamp"], b["size_bytes"],
				b["compressed_size_bytes"], b["duration"], b["components"], b["storage_locations"], b["parent_backup"],
				b["retention_days"], b["encryption"], b["compression"]))
		}
		return strings.Join(out, "\n")
	}
	before := fieldsOf(s.must(200, "GET", v1+"/list", "viewer", nil))
	detailsBefore := s.must(200, "GET", v1+"/details/"+ids[0], "viewer", nil)

	// the disaster: the server, its catalog and Temporal's state are gone
	s.stop()
	var cfg config.Config
	raw, _ := os.ReadFile(s.cfgPath)
	yaml.Unmarshal(raw, &cfg)
	if err := os.Remove(cfg.Catalog.DSN); err != nil {
		t.Fatal(err)
	}
	_, taddr := devServer(t) // a new, empty Temporal
	cfg.Temporal.Address = taddr
	raw, _ = yaml.Marshal(&cfg)
	os.WriteFile(s.cfgPath, raw, 0o600)

	// the storage alone restores, with no server at all
	target := filepath.Join(t.TempDir(), "offline")
	cmd := exec.Command(s.bin, "repo", "restore", "--repo", cfg.Storage["cloud"].URL, "--backup", ids[1], "--target", target)
	cmd.Env = append(os.Environ(), "BACKUPD_PASSWORD=api-test-password", "AWS_ACCESS_KEY_ID="+cfg.Storage["cloud"].AccessKey,
		"AWS_SECRET_ACCESS_KEY="+cfg.Storage["cloud"].SecretKey)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("repo restore from S3: %v\n%s", err, out)
	}
	if out, err := exec.Command("diff", "-r", "--no-dereference", s.src, restored(target, "data", s.src)).CombinedOutput(); err != nil {
		t.Fatalf("offline restore differs: %s", clip(string(out)))
	}

	// rebuild the catalog, then the API again
	out, err := exec.Command(s.bin, "catalog", "rebuild", "--config", s.cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2 backups (2 added") {
		t.Fatalf("catalog rebuild: %v\n%s", err, out)
	}
	for role := range s.tokens { // tokens lived in the lost catalog
		o, err := exec.Command(s.bin, "token", "create", "--role", role, "--config", s.cfgPath).Output()
		if err != nil {
			t.Fatal(err)
		}
		s.tokens[role] = strings.TrimSpace(string(o))
	}
	s.start()
	after := fieldsOf(s.must(200, "GET", v1+"/list", "viewer", nil))
	if after != before {
		t.Fatalf("the rebuilt catalog lists differently:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	detailsAfter := s.must(200, "GET", v1+"/details/"+ids[0], "viewer", nil)
	for _, k := range []string{"integrity.checksum", "encryption.key_id", "metadata.kernel_version", "metadata.created_by",
		"size_details.components_size_bytes.data", "duration.total_seconds", "description"} {
		if fmt.Sprint(get(detailsBefore, k)) != fmt.Sprint(get(detailsAfter, k)) {
			t.Errorf("details %s: before %v, after %v", k, get(detailsBefore, k), get(detailsAfter, k))
		}
	}
	rr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": ids[1], "restore_type": "partial",
		"components": map[string]bool{"data": true}, "target_location": filepath.Join(t.TempDir(), "again")})
	p := s.waitJob(t, v1+"/restore/progress?job_id="+rr["job_id"].(string))
	if p["status"] != "completed" {
		t.Fatalf("restore after the rebuild: %v", p)
	}
}

// A restore over modified data takes a pre-restore snapshot; one call
// rolls it back, and the data is byte-identical to before the restore
// (files the restore brought back are removed again).
func TestRestoreRollback(t *testing.T) {
	s := startAPIStack(t, "sqlite")
	const v1 = "/v1/cloud-integration/backup"
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"data": true}, "storage_locations": []string{"local"}})
	s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string))
	// the data changes after the backup
	os.WriteFile(filepath.Join(s.src, "ip.go"), []byte("changed after the backup\n"), 0o644)
	os.Remove(filepath.Join(s.src, "net.go"))
	os.MkdirAll(filepath.Join(s.src, "newdir"), 0o755)
	os.WriteFile(filepath.Join(s.src, "newdir", "new.txt"), []byte("new\n"), 0o644)
	before := filepath.Join(t.TempDir(), "before")
	if out, err := exec.Command("cp", "-a", s.src, before).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	rr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": cr["backup_id"], "restore_type": "partial",
		"components": map[string]bool{"data": true}, "target_location": "original", "create_pre_restore_snapshot": true})
	if rr["pre_restore_snapshot_created"] != true {
		t.Fatalf("restore: %v", rr)
	}
	p := s.waitJob(t, v1+"/restore/progress?job_id="+rr["job_id"].(string))
	if p["status"] != "completed" || p["snapshot_id"] != rr["snapshot_id"] {
		t.Fatalf("restore: %v", p)
	}
	if b, _ := os.ReadFile(filepath.Join(s.src, "ip.go")); string(b) == "changed after the backup\n" {
		t.Fatal("the restore did not write the backup's ip.go")
	}
	if _, err := os.Stat(filepath.Join(s.src, "net.go")); err != nil {
		t.Fatal("the restore did not bring net.go back")
	}
	rb := s.must(200, "POST", v1+"/restore/rollback", "admin", map[string]any{"restore_id": rr["restore_id"]})
	if p := s.waitJob(t, v1+"/restore/progress?job_id="+rb["job_id"].(string)); p["status"] != "completed" {
		t.Fatalf("rollback: %v", p)
	}
	if out, err := exec.Command("diff", "-r", "--no-dereference", before, s.src).CombinedOutput(); err != nil {
		t.Fatalf("after the rollback the data differs from before the restore:\n%s", clip(string(out)))
	}
	// a restore without a snapshot cannot be rolled back
	r2 := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": cr["backup_id"],
		"target_location": filepath.Join(t.TempDir(), "x")})
	s.waitJob(t, v1+"/restore/progress?job_id="+r2["job_id"].(string))
	if code, m := s.do("POST", v1+"/restore/rollback", "admin", map[string]any{"restore_id": r2["restore_id"]}); code != 404 || m["code"] != "BACKUP_007" {
		t.Fatalf("rollback without a snapshot: %d %v", code, m)
	}
}
