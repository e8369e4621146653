package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestParseReadsTheVCSSettings(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "backupd", Version: "v0.0.0-20261202004130-1a41f68abcde+dirty"},
		Settings: []debug.BuildSetting{{Key: "-compiler", Value: "gc"}, {Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "1a41f68abcdef0123456789abcdef0123456789a"}, {Key: "vcs.time", Value: "2026-12-02T00:41:30Z"},
			{Key: "vcs.modified", Value: "true"}}}
	in := Parse(bi, "2026-12-02T01:00:00Z")
	want := Info{Version: "v0.0.0-20261202004130-1a41f68abcde+dirty", Commit: "1a41f68abcdef0123456789abcdef0123456789a",
		CommitTime: "2026-12-02T00:41:30Z", Modified: true, BuildTime: "2026-12-02T01:00:00Z", GoVersion: "go1.26.8"}
	if in != want {
		t.Fatalf("got %+v\nwant %+v", in, want)
	}
	s := in.String()
	for _, line := range []string{"backupd v0.0.0-20261202004130-1a41f68abcde+dirty\n",
		"commit:      1a41f68abcdef0123456789abcdef0123456789a (modified: the tree had uncommitted changes)\n",
		"commit time: 2026-12-02T00:41:30Z\n", "built:       2026-12-02T01:00:00Z\n", "go:          go1.26.8\n"} {
		if !strings.Contains(s, line) {
			t.Errorf("version text lacks %q:\n%s", line, s)
		}
	}
}

func TestParseWithoutVCS(t *testing.T) {
	in := Parse(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "backupd", Version: "(devel)"}}, "")
	if in.Version != "(devel)" || in.Commit != "" || in.Modified {
		t.Fatalf("%+v", in)
	}
	s := in.String()
	if !strings.Contains(s, "commit:      unknown (built without VCS information)") || !strings.Contains(s, "built:       not recorded") {
		t.Fatalf("%s", s)
	}
}
