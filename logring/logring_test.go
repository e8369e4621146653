package logring

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestRingKeepsTheLastRecordsAndPassesThemOn(t *testing.T) {
	var out bytes.Buffer
	r := New(3, slog.LevelInfo)
	log := slog.New(r.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log = log.With("component", "api").WithGroup("req")
	for i := range 5 {
		log.Info(fmt.Sprintf("record %d", i), "n", i, slog.Group("job", "id", "j1"))
	}
	log.Debug("below the ring's level")
	log.Warn("a warning", "err", strings.Repeat("x", maxValue+10))
	got := r.Entries()
	if len(got) != 3 || got[0].Message != "record 3" || got[1].Message != "record 4" || got[2].Message != "a warning" {
		t.Fatalf("entries %+v", got)
	}
	e := got[0]
	if e.Level != "INFO" || e.Attrs["component"] != "api" || e.Attrs["req.n"] != "3" || e.Attrs["req.job.id"] != "j1" {
		t.Errorf("attrs %+v", e)
	}
	if v := got[2].Attrs["req.err"]; len(v) > maxValue+10 || !strings.HasSuffix(v, "(cut)") {
		t.Errorf("a long value is kept whole: %d bytes", len(v))
	}
	// the wrapped handler still decides what it writes: only the warning
	if s := out.String(); strings.Contains(s, "record") || !strings.Contains(s, "a warning") || !strings.Contains(s, "component=api") {
		t.Errorf("written log:\n%s", s)
	}
}

func TestRingBoundsAttributes(t *testing.T) {
	r := New(1, slog.LevelInfo)
	log := slog.New(r.Handler(slog.DiscardHandler))
	var args []any
	for i := range 200 {
		args = append(args, fmt.Sprint("k", i), i)
	}
	log.Info("many", args...)
	if n := len(r.Entries()[0].Attrs); n != maxAttrs {
		t.Fatalf("%d attributes kept", n)
	}
}

func TestHandlerAtKeepsOnlyItsLevel(t *testing.T) {
	r := New(10, slog.LevelInfo)
	sdk := slog.New(r.HandlerAt(slog.DiscardHandler, slog.LevelWarn))
	server := slog.New(r.Handler(slog.DiscardHandler))
	sdk.Info("routine")
	sdk.Warn("sdk warning")
	server.Info("server info")
	var msgs []string
	for _, e := range r.Entries() {
		msgs = append(msgs, e.Message)
	}
	if strings.Join(msgs, ",") != "sdk warning,server info" {
		t.Fatalf("%v", msgs)
	}
}
