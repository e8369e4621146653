// Package modelstest opens catalogs for tests: a fresh SQLite file, and a
// fresh schema in the PostgreSQL named by BACKUPD_TEST_POSTGRES_DSN.
package modelstest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"backupd/models"
)

// Drivers are the catalogs every catalog test runs on: sqlite always,
// postgres when BACKUPD_TEST_POSTGRES_DSN is set (.ci/run and make test
// set it when the machine's PostgreSQL answers).
func Drivers(t testing.TB) []string {
	d := []string{"sqlite"}
	if os.Getenv("BACKUPD_TEST_POSTGRES_DSN") != "" {
		d = append(d, "postgres")
	} else if os.Getenv("BACKUPD_REQUIRE_SERVERS") == "1" {
		t.Log("BACKUPD_TEST_POSTGRES_DSN is not set: catalog tests run on SQLite only")
	}
	return d
}

// DSN returns a driver name and DSN for a fresh, empty catalog that is
// removed when the test ends.
func DSN(t testing.TB, driver string) string {
	t.Helper()
	switch driver {
	case "sqlite":
		return filepath.Join(t.TempDir(), "catalog.db")
	case "postgres":
		base := os.Getenv("BACKUPD_TEST_POSTGRES_DSN")
		b := make([]byte, 6)
		rand.Read(b)
		schema := "t_" + hex.EncodeToString(b)
		admin, err := gorm.Open(postgres.Open(base), &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
		if err != nil {
			t.Fatalf("postgres at %q: %v", base, err)
		}
		if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
			t.Fatalf("postgres: %v", err)
		}
		t.Cleanup(func() {
			admin.Exec("DROP SCHEMA " + schema + " CASCADE")
			if db, err := admin.DB(); err == nil {
				db.Close()
			}
		})
		return base + " search_path=" + schema
	}
	t.Fatalf("unknown driver %q", driver)
	return ""
}

// Open returns a fresh catalog on driver, closed when the test ends.
func Open(t testing.TB, driver string) *models.Store {
	t.Helper()
	s, err := models.Open(driver, DSN(t, driver))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
