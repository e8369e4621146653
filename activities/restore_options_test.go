package activities

import (
	"reflect"
	"strings"
	"testing"

	"backupd/config"
	"backupd/repository"
)

// A restore to the original location is confined to the worker's
// configured source paths of each restored component, and refused for a
// component the worker does not configure.
func TestOriginalRestoreIsConfinedToConfiguredPaths(t *testing.T) {
	m := &repository.Manifest{ID: "b1", Components: []repository.ComponentManifest{
		{Name: "app", Paths: []string{"/etc/app", "/srv/app"}},
		{Name: "other", Paths: []string{"/opt/other"}},
		{Name: "broken", Error: "source missing"},
	}}
	cfg := &config.Config{Components: map[string]config.Component{
		"app":   {Paths: []string{"/etc/app"}}, // the backup's /srv/app is no longer configured
		"other": {Paths: []string{"/opt/other"}},
	}}
	o, err := RestoreInput{Original: true, SkipDumps: true}.options(m, (&Activities{Config: cfg}).component)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"app": {"/etc/app"}, "other": {"/opt/other"}}
	if !reflect.DeepEqual(o.Confine, want) || o.ComponentTargets["app"] != "/" || !o.Overwrite {
		t.Fatalf("options: confine %v targets %v overwrite %v", o.Confine, o.ComponentTargets, o.Overwrite)
	}

	delete(cfg.Components, "other")
	if _, err := (RestoreInput{Original: true}).options(m, (&Activities{Config: cfg}).component); err == nil || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("restoring an unconfigured component to original: %v", err)
	}
	// only the selected components need configuring
	if _, err := (RestoreInput{Original: true, Components: []string{"app"}}).options(m, (&Activities{Config: cfg}).component); err != nil {
		t.Fatal(err)
	}
	// a restore to a directory is not confined
	o, err = RestoreInput{Target: "/var/tmp/r"}.options(m, (&Activities{Config: cfg}).component)
	if err != nil || o.Confine != nil || o.ComponentTargets != nil {
		t.Fatalf("directory restore: %+v %v", o, err)
	}
}
