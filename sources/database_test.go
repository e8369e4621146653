package sources

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Database tools once inherited backupd's whole environment, the
// repository password and cloud keys included.
func TestDatabaseToolsGetAMinimalEnvironment(t *testing.T) {
	t.Setenv("BACKUPD_PASSWORD", "repo-secret")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "cloud-secret")
	t.Setenv("PGSSLMODE", "require")
	t.Setenv("MYSQL_HOST", "db.local")
	t.Setenv("LC_ALL", "C.UTF-8")
	for _, kind := range []string{"postgresql", "mariadb"} {
		d := Database{Kind: kind, Password: "db-pass"}
		env := strings.Join(d.env(), "\n")
		for _, leak := range []string{"repo-secret", "cloud-secret", "BACKUPD_", "AWS_"} {
			if strings.Contains(env, leak) {
				t.Errorf("%s tools see %q:\n%s", kind, leak, env)
			}
		}
		for _, need := range []string{"PATH=", "LC_ALL=C.UTF-8"} {
			if !strings.Contains(env, need) {
				t.Errorf("%s tools miss %s", kind, need)
			}
		}
		own, other := "PGSSLMODE=require", "MYSQL_HOST=db.local"
		if kind == "mariadb" {
			own, other = other, own
		}
		if !strings.Contains(env, own) || strings.Contains(env, other) {
			t.Errorf("%s tools: want %s and not %s:\n%s", kind, own, other, env)
		}
	}
}

// A dump is data: a poisoned one (a client command such as "\! cmd" in it)
// must not run anything when it is restored.
func TestMariaDBRestoreRunsNoClientCommands(t *testing.T) {
	if _, err := exec.LookPath("mariadb"); err != nil {
		t.Skip("no mariadb client")
	}
	d := Database{Kind: "mariadb", Name: "poison", Host: "127.0.0.1", Port: 3306, User: "root", DBName: "poison_src"}
	ctx := context.Background()
	if err := run(ctx, "mariadb", append(d.conn(), "-e", "SELECT 1"), d.env(), nil); err != nil {
		if os.Getenv("BACKUPD_REQUIRE_SERVERS") == "1" {
			t.Fatalf("MariaDB at 127.0.0.1:3306 is not reachable: %v", err)
		}
		t.Skipf("MariaDB not reachable: %v", err)
	}
	marker := filepath.Join(t.TempDir(), "pwned")
	dump := "CREATE TABLE t (x int);\n\\! touch " + marker + "\nINSERT INTO t VALUES (1);\n"
	target := "backupd_poison_test"
	defer run(ctx, "mariadb", append(d.conn(), "-e", "DROP DATABASE IF EXISTS "+target), d.env(), nil)
	err := d.Restore(ctx, strings.NewReader(dump), target, true)
	if _, serr := os.Stat(marker); serr == nil {
		t.Fatalf("the dump ran a shell command during the restore (restore error: %v)", err)
	}
	if err == nil {
		t.Fatal("a dump with a client command restored without error")
	}
}
