package apiserver

import (
	"os"
	"strings"
	"testing"
)

// docs/api.md is the reference generated from the current route table and
// types: a change to either without `go generate ./apiserver` fails here.
func TestAPIReferenceIsUpToDate(t *testing.T) {
	want := Reference(Document())
	got, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatalf("docs/api.md: %v (run go generate ./apiserver)", err)
	}
	if string(got) != want {
		t.Fatal("docs/api.md is out of date: run go generate ./apiserver and commit it")
	}
	// it has a section for every route, and describes the bodies' fields
	s := &Server{}
	for _, rt := range s.routeTable() {
		if !strings.Contains(want, "### "+rt.Method+" "+rt.servedAt("/cloud-integration")+"\n") {
			t.Errorf("the reference has no section for %s %s", rt.Method, rt.Path)
		}
	}
	for _, f := range []string{"`verify_checksum`", "`create_pre_restore_snapshot`", "`max_backups_to_remove`", "`key_rotation_days`", "`expires_in_hours`"} {
		if !strings.Contains(want, f) {
			t.Errorf("the reference does not describe %s", f)
		}
	}
}
