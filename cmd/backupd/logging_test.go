//go:build !lean

package main

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"

	"backupd/config"
)

// --log-level and --log-format choose the logger; a wrong value is refused
// with the accepted ones, naming the flag and the variable.
func TestLogFlags(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	lf := addLogFlags(fs)
	if err := fs.Parse([]string{"--log-level", "debug", "--log-format", "json"}); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	if err := lf.check(); err != nil {
		t.Fatal(err)
	}
	lf.apply(cfg)
	var buf bytes.Buffer
	newLogger(cfg, &buf).Debug("hello", "k", "v")
	if !strings.HasPrefix(buf.String(), "{") || !strings.Contains(buf.String(), `"level":"DEBUG"`) {
		t.Fatalf("debug json line: %q", buf.String())
	}
	bad := &logFlags{level: "verbose", format: "xml"}
	err := bad.check()
	if err == nil || !strings.Contains(err.Error(), "--log-level") || !strings.Contains(err.Error(), "debug, info, warn, error") ||
		!strings.Contains(err.Error(), "BACKUPD_LOG_FORMAT") {
		t.Fatalf("bad values: %v", err)
	}
}

// A job failing on a user's mistake is the SDK's "Activity error." at
// ERROR; it becomes a warning, while real failures stay errors.
func TestUserMistakesAreWarnings(t *testing.T) {
	var buf bytes.Buffer
	h := userMistakes{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})}
	for _, e := range []string{
		`BACKUP_008: target directory is not empty (type: BACKUP_008, retryable: false): …`,
		`BACKUP_004: connection refused (type: BACKUP_004, retryable: true)`,
	} {
		r := slog.NewRecord(time.Now(), slog.LevelError, "Activity error.", 0)
		r.AddAttrs(slog.String("ActivityType", "Restore"), slog.String("Error", e))
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "ActivityType=Restore") ||
		!strings.Contains(lines[1], "level=ERROR") {
		t.Fatalf("lines: %q", lines)
	}
}
