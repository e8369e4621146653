package location

import (
	"strings"
	"testing"
)

func TestRedactNeverShowsAPassword(t *testing.T) {
	for _, raw := range []string{
		"sftp://user:hunter2@host:22/backups",
		"sftp://user:hunter2@host:port-is-not-a-number/x", // does not parse
		"sftp://user:hunter2@[::1/x",                      // does not parse
		"%zz://user:hunter2@host/x",
	} {
		if got := Redact(raw); strings.Contains(got, "hunter2") {
			t.Errorf("Redact(%q) = %q", raw, got)
		}
	}
	if got := Redact("/var/backups"); got != "/var/backups" {
		t.Errorf("a plain path changed: %q", got)
	}
}
