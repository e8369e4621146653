package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"backupd/storage"
)

// timed is a storage decorator that adds up the time spent in each kind of
// request, by the object's top-level prefix ("List index/"), and keeps a
// trace of the requests while tracing: where a backup's time goes on the
// S3 side as the history grows.
type timed struct {
	storage.Backend
	mu      sync.Mutex
	spent   map[string]time.Duration
	tracing bool
	trace   []string
	since   time.Time // the last reset: a traced request says when it began
}

func newTimed(b storage.Backend) *timed { return &timed{Backend: b, spent: map[string]time.Duration{}} }

// reset forgets the times and the trace, and starts a trace when trace.
func (t *timed) reset(trace bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.spent = map[string]time.Duration{}
	t.tracing, t.trace, t.since = trace, nil, time.Now()
}

// total is the time spent in requests since the last reset (requests
// made at once add up).
func (t *timed) total() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var d time.Duration
	for _, v := range t.spent {
		d += v
	}
	return d
}

// report is the times by kind, the largest first, and the trace.
func (t *timed) report() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	type kv struct {
		k string
		v time.Duration
	}
	var s []kv
	for k, v := range t.spent {
		s = append(s, kv{k, v})
	}
	sort.Slice(s, func(i, j int) bool { return s[i].v > s[j].v })
	var b strings.Builder
	for _, e := range s {
		fmt.Fprintf(&b, "    %-28s %8.2f ms\n", e.k, float64(e.v.Microseconds())/1000)
	}
	for _, l := range t.trace {
		fmt.Fprintf(&b, "      %s\n", l)
	}
	return b.String()
}

func (t *timed) note(op, name string, began time.Time, detail string) {
	d := time.Since(began)
	key := op + " " + name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		key = op + " " + name[:i+1]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.spent[key] += d
	if t.tracing {
		t.trace = append(t.trace, fmt.Sprintf("at %6.2f %7.2f ms %-6s %s%s", float64(began.Sub(t.since).Microseconds())/1000,
			float64(d.Microseconds())/1000, op, name, detail))
	}
}

func (t *timed) Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error {
	began := time.Now()
	err := t.Backend.Put(ctx, name, r, size)
	t.note("Put", name, began, fmt.Sprintf(" (%d bytes)", size))
	return err
}

func (t *timed) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	began := time.Now()
	rc, err := t.Backend.Get(ctx, name, offset, length)
	t.note("Get", name, began, "")
	return rc, err
}

func (t *timed) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	began := time.Now()
	oi, err := t.Backend.Stat(ctx, name)
	t.note("Stat", name, began, "")
	return oi, err
}

// List's time includes fn's, which is the caller's work on each object.
func (t *timed) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	began := time.Now()
	n := 0
	err := t.Backend.List(ctx, prefix, func(oi storage.ObjectInfo) error { n++; return fn(oi) })
	t.note("List", prefix, began, fmt.Sprintf(" (%d objects)", n))
	return err
}

func (t *timed) ListFirst(ctx context.Context, prefix string, max int, fn func(storage.ObjectInfo) error) (bool, error) {
	began := time.Now()
	n := 0
	more, err := storage.ListFirst(ctx, t.Backend, prefix, max, func(oi storage.ObjectInfo) error { n++; return fn(oi) })
	t.note("List", prefix, began, fmt.Sprintf(" (first %d: %d objects)", max, n))
	return more, err
}

func (t *timed) Delete(ctx context.Context, name string) error {
	began := time.Now()
	err := t.Backend.Delete(ctx, name)
	t.note("Delete", name, began, "")
	return err
}
