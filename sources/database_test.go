package sources

import (
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
