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

func TestRepackSettings(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if o := c.RepackOptions(); o == nil || o.Unused != 0 || o.Budget != 0 {
		t.Fatalf("default: %+v (zero fields take the engine's defaults)", o)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("repack: {unused_percent: 25, max_unused_percent: 0, budget: 512MiB}\n"), 0o600)
	if c, err = Load(good); err != nil {
		t.Fatal(err)
	}
	if o := c.RepackOptions(); o.Unused != 0.25 || o.Budget != 512<<20 || o.MaxUnused != -1 {
		t.Fatalf("set: %+v", o)
	}
	off := filepath.Join(dir, "off.yaml")
	os.WriteFile(off, []byte("repack: {disabled: true}\n"), 0o600)
	if c, err = Load(off); err != nil || c.RepackOptions() != nil {
		t.Fatalf("disabled: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("repack: {unused_percent: 150, max_unused_percent: -3, budget: 1KB}\n"), 0o600)
	_, err = Load(bad)
	for _, want := range []string{"repack.unused_percent: 150 is outside 1 to 99", "repack.max_unused_percent: -3 is outside 0 to 99", `repack.budget: "1KB" is not a size of at least 16MiB`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
