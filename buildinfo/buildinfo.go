// Package buildinfo is what this binary knows about its own build: the
// module version, the VCS commit it was built from (and whether the tree
// had uncommitted changes), the commit's time, the Go version and, when
// the build stamped it, the build time. `backupd version`, the API's
// status answer and the OpenAPI document all take the version from here.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
)

// built is stamped by `make build` (-ldflags -X backupd/buildinfo.built=...):
// the Go toolchain records the commit and its time in the binary, but not
// when the binary was built.
var built string

// Info describes one build.
type Info struct {
	// Version is the main module's version: a tag (v1.2.3), a
	// pseudo-version derived from the commit (v0.0.0-20261202004130-1a41f68abcde,
	// "+dirty" when the tree was modified), or "(devel)" when the go
	// command had no VCS information (go run, a build outside a checkout).
	Version    string `json:"version"`
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	// Modified: the working tree had uncommitted changes at build time.
	Modified  bool   `json:"modified"`
	BuildTime string `json:"build_time,omitempty"`
	GoVersion string `json:"go_version"`
}

var (
	once sync.Once
	info Info
)

// Get is this binary's build information.
func Get() Info {
	once.Do(func() {
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			info = Info{Version: "(unknown)", BuildTime: built}
			return
		}
		info = Parse(bi, built)
	})
	return info
}

// Version is the module version (the short form the API reports).
func Version() string { return Get().Version }

// Parse reads what the go command recorded in a binary (the vcs.*
// settings are present when it was built in a git checkout with
// -buildvcs, the default).
func Parse(bi *debug.BuildInfo, buildTime string) Info {
	in := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion, BuildTime: buildTime}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Commit = s.Value
		case "vcs.time":
			in.CommitTime = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is the multi-line text of `backupd version`.
func (in Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "backupd %s\n", in.Version)
	commit := in.Commit
	if commit == "" {
		commit = "unknown (built without VCS information)"
	} else if in.Modified {
		commit += " (modified: the tree had uncommitted changes)"
	}
	fmt.Fprintf(&b, "commit:      %s\n", commit)
	if in.CommitTime != "" {
		fmt.Fprintf(&b, "commit time: %s\n", in.CommitTime)
	}
	bt := in.BuildTime
	if bt == "" {
		bt = "not recorded (make build records it)"
	}
	fmt.Fprintf(&b, "built:       %s\n", bt)
	fmt.Fprintf(&b, "go:          %s\n", in.GoVersion)
	return b.String()
}
