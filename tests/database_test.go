package tests

// Databases for real: pgbench data in the machine's PostgreSQL is backed
// up through the API as a consistent dump, the database dropped, restored
// through the API, and compared table by table; the same while pgbench
// writes during the backup (the restored database keeps TPC-B's
// invariant: the dump is one snapshot).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"backupd/config"
)

func psql(t *testing.T, db, q string) string {
	t.Helper()
	out, err := exec.Command("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atc", q).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %s: %v\n%s", q, err, out)
	}
	return strings.TrimSpace(string(out))
}

func havePostgres(t *testing.T) {
	if err := exec.Command("pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q").Run(); err != nil {
		if os.Getenv("BACKUPD_REQUIRE_SERVERS") == "1" {
			t.Fatal("PostgreSQL on 127.0.0.1:5432 is needed for the database tests")
		}
		t.Skip("no PostgreSQL on 127.0.0.1:5432")
	}
}

// tableSums is each pgbench table's row count and an aggregate checksum.
func tableSums(t *testing.T, db string) string {
	var out []string
	for _, tb := range []string{"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"} {
		out = append(out, tb+"="+psql(t, db, "SELECT count(*) || ':' || coalesce(sum(hashtext(x::text)::bigint), 0) FROM "+tb+" x"))
	}
	return strings.Join(out, " ")
}

func TestPostgresBackupRestoreThroughTheAPI(t *testing.T) {
	havePostgres(t)
	b := make([]byte, 4)
	rand.Read(b)
	db := "bkd_e2e_" + hex.EncodeToString(b)
	secret := "never-shown-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		for _, d := range []string{db, db + "_copy"} {
			exec.Command("dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", d).Run()
		}
	})
	if out, err := exec.Command("createdb", "-h", "127.0.0.1", "-U", "postgres", db).CombinedOutput(); err != nil {
		t.Fatalf("createdb: %v %s", err, out)
	}
	if out, err := exec.Command("pgbench", "-h", "127.0.0.1", "-U", "postgres", "-i", "-s", "10", "-q", db).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v %s", err, out)
	}
	// some history rows too
	if out, err := exec.Command("pgbench", "-h", "127.0.0.1", "-U", "postgres", "-t", "200", "-c", "2", db).CombinedOutput(); err != nil {
		t.Fatalf("pgbench: %v %s", err, out)
	}
	s := startAPIStackWith(t, "sqlite", func(*apiStack) {}, func(c *config.Config) {
		// trust auth ignores the password; it is here to prove it is never shown
		c.Components["databases"] = config.Component{Databases: []config.Database{{Name: "app", Kind: "postgresql",
			Host: "127.0.0.1", Port: 5432, User: "postgres", Database: db, Password: secret}}}
	})
	const v1 = "/v1/cloud-integration/backup"
	before := tableSums(t, db)

	backupDB := func() string {
		cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
			"components": map[string]bool{"databases": true}, "storage_locations": []string{"local", "cloud"}})
		if p := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string)); p["status"] != "completed" || p["outcome"] != "completed" {
			t.Fatalf("database backup: %v", p)
		}
		return cr["backup_id"].(string)
	}
	restoreDB := func(id, target string, overwrite bool) obj {
		rr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": id, "restore_type": "partial",
			"components": map[string]bool{"databases": true}, "target_location": target, "overwrite": overwrite,
			"verify_before_restore": true})
		return s.waitJob(t, v1+"/restore/progress?job_id="+rr["job_id"].(string))
	}
	id := backupDB()
	d := s.must(200, "GET", v1+"/details/"+id, "viewer", nil)
	if get(d, "size_details.components_size_bytes.databases").(float64) < 1e6 {
		t.Fatalf("the dump is too small: %v", get(d, "size_details"))
	}

	// drop the database, restore it through the API: the same tables
	if out, err := exec.Command("dropdb", "-h", "127.0.0.1", "-U", "postgres", "--force", db).CombinedOutput(); err != nil {
		t.Fatalf("dropdb: %v %s", err, out)
	}
	if p := restoreDB(id, "original", false); p["status"] != "completed" {
		t.Fatalf("restore: %v", p)
	}
	if after := tableSums(t, db); after != before {
		t.Fatalf("restored tables differ:\nbefore %s\nafter  %s", before, after)
	}
	// a database with tables is not overwritten unless the request says so
	p := restoreDB(id, "original", false)
	if p["status"] != "failed" || get(p, "error.code") != "BACKUP_008" {
		t.Fatalf("restore over a live database: %v", p)
	}
	psql(t, db, "DELETE FROM pgbench_history")
	if p := restoreDB(id, "original", true); p["status"] != "completed" {
		t.Fatalf("restore with overwrite: %v", p)
	}
	if after := tableSums(t, db); after != before {
		t.Fatalf("overwritten tables differ:\nbefore %s\nafter  %s", before, after)
	}
	// into another database
	if p := restoreDB(id, "database:"+db+"_copy", false); p["status"] != "completed" {
		t.Fatalf("restore into another database: %v", p)
	}
	if cp := tableSums(t, db+"_copy"); cp != before {
		t.Fatalf("the copy differs:\nbefore %s\ncopy   %s", before, cp)
	}

	// a backup while pgbench writes: the restore is one consistent instant
	ctx, cancel := context.WithCancel(context.Background())
	// -n: pgbench would otherwise empty pgbench_history before it starts
	bench := exec.CommandContext(ctx, "pgbench", "-h", "127.0.0.1", "-U", "postgres", "-n", "-T", "60", "-c", "2", db)
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	id2 := backupDB()
	cancel()
	bench.Wait()
	exec.Command("dropdb", "-h", "127.0.0.1", "-U", "postgres", "--force", db).Run()
	if p := restoreDB(id2, "original", false); p["status"] != "completed" {
		t.Fatalf("restore of the busy backup: %v", p)
	}
	inv := psql(t, db, "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || (SELECT sum(bbalance) FROM pgbench_branches) || ' ' || "+
		"(SELECT sum(tbalance) FROM pgbench_tellers) || ' ' || (SELECT coalesce(sum(delta), 0) FROM pgbench_history)")
	f := strings.Fields(inv)
	if len(f) != 4 || f[0] != f[1] || f[1] != f[2] || f[2] != f[3] {
		t.Fatalf("the restored database is not one instant (accounts, branches, tellers, history sums): %s", inv)
	}
	if n := psql(t, db, "SELECT count(*) FROM pgbench_history"); n == "0" {
		t.Fatal("pgbench wrote nothing during the backup")
	}

	// the password appears nowhere: not in answers, not in the log
	for _, path := range []string{"/details/" + id, "/list", "/jobs", "/status"} {
		if body := fmt.Sprint(s.must(200, "GET", v1+path, "admin", nil)); strings.Contains(body, secret) {
			t.Fatalf("GET %s shows the database password", path)
		}
	}
	if lb, _ := os.ReadFile(s.logPath); strings.Contains(string(lb), secret) {
		t.Fatal("the log shows the database password")
	}
}

func mariadb(t *testing.T, q string) string {
	t.Helper()
	out, err := exec.Command("mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-B", "-e", q).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb %s: %v\n%s", q, err, out)
	}
	return strings.TrimSpace(string(out))
}

// MariaDB in the same shape: a consistent dump through the API, the
// database dropped, restored, compared; a restore over a live database is
// refused; a restore into another database works.
func TestMariaDBBackupRestoreThroughTheAPI(t *testing.T) {
	if err := exec.Command("mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e", "SELECT 1").Run(); err != nil {
		if os.Getenv("BACKUPD_REQUIRE_SERVERS") == "1" {
			t.Fatal("MariaDB on 127.0.0.1:3306 is needed for the database tests")
		}
		t.Skip("no MariaDB on 127.0.0.1:3306")
	}
	b := make([]byte, 4)
	rand.Read(b)
	db := "bkd_e2e_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		exec.Command("mariadb", "-h", "127.0.0.1", "-u", "root", "-e", "DROP DATABASE IF EXISTS "+db+"; DROP DATABASE IF EXISTS "+db+"_copy").Run()
	})
	mariadb(t, "CREATE DATABASE "+db+"; CREATE TABLE "+db+".items (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(64), blob_col BLOB)")
	digits := "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 " +
		"UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
	mariadb(t, "INSERT INTO "+db+".items (name, blob_col) SELECT CONCAT('item-', n), UNHEX(MD5(n)) FROM (SELECT a.d + 10*b.d + 100*c.d + 1000*e.d AS n FROM "+
		digits+" a, "+digits+" b, "+digits+" c, "+digits+" e) x")
	sums := func(d string) string {
		return mariadb(t, "SELECT COUNT(*), SUM(CRC32(CONCAT(id, name, HEX(blob_col)))) FROM "+d+".items")
	}
	before := sums(db)
	s := startAPIStackWith(t, "sqlite", func(*apiStack) {}, func(c *config.Config) {
		c.Components["databases"] = config.Component{Databases: []config.Database{{Name: "shop", Kind: "mariadb",
			Host: "127.0.0.1", Port: 3306, User: "root", Database: db}}}
	})
	const v1 = "/v1/cloud-integration/backup"
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"databases": true}, "storage_locations": []string{"local"}})
	if p := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string)); p["outcome"] != "completed" {
		t.Fatalf("backup: %v", p)
	}
	restoreDB := func(target string) obj {
		rr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": cr["backup_id"], "restore_type": "partial",
			"components": map[string]bool{"databases": true}, "target_location": target})
		return s.waitJob(t, v1+"/restore/progress?job_id="+rr["job_id"].(string))
	}
	if p := restoreDB("original"); p["status"] != "failed" || get(p, "error.code") != "BACKUP_008" {
		t.Fatalf("restore over the live database: %v", p)
	}
	mariadb(t, "DROP DATABASE "+db)
	if p := restoreDB("original"); p["status"] != "completed" {
		t.Fatalf("restore: %v", p)
	}
	if after := sums(db); after != before {
		t.Fatalf("restored table differs: before %s, after %s", before, after)
	}
	if p := restoreDB("database:" + db + "_copy"); p["status"] != "completed" {
		t.Fatalf("restore into another database: %v", p)
	}
	if cp := sums(db + "_copy"); cp != before {
		t.Fatalf("the copy differs: before %s, copy %s", before, cp)
	}
}
