package tests

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"backupd/config"
)

// An enrolled host's database is restored on the host: its dump loaded
// into the original database (after a pre-restore snapshot of what the
// restore overwrites, taken on the host into its own repository) and into
// another database, through the connection the host's own configuration
// has (the server only knows its name).
func TestFleetHostDatabaseRestore(t *testing.T) {
	havePostgres(t)
	b := make([]byte, 4)
	rand.Read(b)
	db := "bkd_host_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		for _, d := range []string{db, db + "_copy"} {
			exec.Command("dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", d).Run()
		}
	})
	if out, err := exec.Command("createdb", "-h", "127.0.0.1", "-U", "postgres", db).CombinedOutput(); err != nil {
		t.Fatalf("createdb: %v %s", err, out)
	}
	psql(t, db, "CREATE TABLE readings (id int PRIMARY KEY, v text); INSERT INTO readings SELECT g, md5(g::text) FROM generate_series(1, 500) g")
	sum := func(d string) string {
		return psql(t, d, "SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) FROM readings")
	}
	before := sum(db)

	s, certFile := startTLSStack(t)
	const v1 = "/cloud-integration/backup"
	// no name on the token nor on the worker: the host's configuration names it
	r := s.cliOK(t, "admin", "host", "enrol-token", "--ca-file", certFile)
	pin := regexp.MustCompile(`--server-fingerprint (sha256:[0-9a-f]{64})`).FindStringSubmatch(r.stderr)
	if pin == nil {
		t.Fatalf("no fingerprint in %s", r.stderr)
	}
	h := newFleetHostWith(t, s, "gw-db", func(c *config.Config) {
		c.Components["app"] = config.Component{Databases: []config.Database{{Name: "appdb", Kind: "postgresql",
			Host: "127.0.0.1", Port: 5432, User: "postgres", Database: db}}}
	})
	h.start(s.bin, []string{"BACKUPD_ENROL_TOKEN=" + strings.TrimSpace(r.stdout)}, "--enrol", s.base, "--server-fingerprint", pin[1])
	waitFor(t, 60*time.Second, "gw-db online and reporting its database", func() bool {
		st, hv := s.do("GET", v1+"/hosts/gw-db", "viewer", nil)
		return st == 200 && strings.Contains(jsonText(hv), `"label":"appdb"`) && strings.Contains(jsonText(hv), `"state":"online"`)
	})
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"host": "gw-db", "components": map[string]bool{"app": true, "data": true},
		"storage_locations": []string{"local"}})
	if pr := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string)); pr["status"] != "completed" {
		t.Fatalf("gw-db's backup: %v\n%s", pr, h.output())
	}
	id := cr["backup_id"].(string)

	// the table emptied and a file changed: restored to the original, with
	// a snapshot of what was there first
	psql(t, db, "DELETE FROM readings WHERE id > 10")
	hello := filepath.Join(h.dir, "data", "hello.txt")
	os.WriteFile(hello, []byte("changed\n"), 0o644)
	rr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": id, "target_location": "original", "overwrite": true,
		"create_pre_restore_snapshot": true})
	pr := s.waitJob(t, v1+"/restore/progress?job_id="+rr["job_id"].(string))
	if pr["status"] != "completed" {
		t.Fatalf("gw-db's restore to the original: %v\n%s", pr, h.output())
	}
	if got := sum(db); got != before {
		t.Fatalf("the restored table: %s, want %s", got, before)
	}
	if got, _ := os.ReadFile(hello); string(got) != "host gw-db\n" {
		t.Fatalf("hello.txt after the restore: %q", got)
	}
	snap, _ := pr["snapshot_id"].(string)
	if snap == "" {
		t.Fatalf("no pre-restore snapshot: %v", pr)
	}
	sd := s.must(200, "GET", v1+"/details/"+snap, "viewer", nil)
	hid := s.must(200, "GET", v1+"/hosts/gw-db", "viewer", nil)["id"].(string)
	if get(sd, "metadata.host") != "gw-db" || sd["type"] != "snapshot" || !strings.Contains(jsonText(get(sd, "storage.locations")), "/hosts/"+hid+"/manifests/"+snap) {
		t.Fatalf("the snapshot: %v", sd)
	}
	// the snapshot holds what the restore overwrote: the changed file
	st := s.must(200, "GET", v1+"/tree/"+snap+"?component=data&path="+filepath.Join(h.dir, "data"), "operator", nil)
	if !strings.Contains(jsonText(st), "hello.txt") {
		t.Fatalf("the snapshot's tree: %v", st)
	}

	// into another database on the host
	rr = s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": id, "restore_type": "partial",
		"components": map[string]bool{"app": true}, "target_location": "database:" + db + "_copy"})
	if pr := s.waitJob(t, v1+"/restore/progress?job_id="+rr["job_id"].(string)); pr["status"] != "completed" {
		t.Fatalf("gw-db's restore into another database: %v\n%s", pr, h.output())
	}
	if got := sum(db + "_copy"); got != before {
		t.Fatalf("the copy: %s, want %s", got, before)
	}
	// the original database named as "another" is refused, naming the fix
	if st, body := s.do("POST", v1+"/restore", "admin", map[string]any{"backup_id": id, "restore_type": "partial",
		"components": map[string]bool{"app": true}, "target_location": "database:" + db}); st != 400 || !strings.Contains(jsonText(body), "is the original database on host gw-db") {
		t.Fatalf("the original as another database: %d %v", st, body)
	}
}
