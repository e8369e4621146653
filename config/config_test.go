package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultsAndValidation(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Components["configurations"].Paths[0] != "/etc" || len(c.Components["logs"].Exclude) == 0 {
		t.Fatalf("default components: %+v", c.Components)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`components:
  databases:
    databases:
      - {kind: oracle, database: x}
      - {kind: postgresql}
  empty: {}
storage:
  local: {url: /tmp/x}
`), 0o600)
	_, err = Load(bad)
	for _, want := range []string{`components.databases.databases[0]: kind "oracle"`, "components.databases.databases[1]: database: empty",
		"components.empty: no paths and no databases"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("colour: blue\n"), 0o600)
	if _, err := Load(unknown); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown field: %v", err)
	}
}
