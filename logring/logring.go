// Package logring keeps a process's most recent log records in memory, a
// bounded ring, so a debug bundle can include them without a log file:
// Ring.Handler wraps the slog.Handler that writes the log and copies every
// record it sees at or above the ring's level into the ring.
package logring

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limits that bound the ring's memory: at most Capacity records, each
// message and attribute value cut to maxValue bytes, at most maxAttrs
// attributes per record.
const (
	maxValue = 4 << 10
	maxAttrs = 64
)

// Entry is one kept record.
type Entry struct {
	Time    time.Time         `json:"time"`
	Level   string            `json:"level"`
	Message string            `json:"msg"`
	Attrs   map[string]string `json:"attrs,omitempty"` // group.key → value
}

// Ring holds the last Capacity records.
type Ring struct {
	level slog.Leveler
	mu    sync.Mutex
	buf   []Entry
	next  int
	full  bool
}

// New keeps the last capacity records at level or above (a log that
// writes only warnings still keeps the info records here).
func New(capacity int, level slog.Leveler) *Ring {
	if capacity < 1 {
		capacity = 1
	}
	return &Ring{level: level, buf: make([]Entry, capacity)}
}

// Entries returns the kept records, oldest first.
func (r *Ring) Entries() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Entry
	if r.full {
		out = append(out, r.buf[r.next:]...)
	}
	return append(out, r.buf[:r.next]...)
}

func (r *Ring) add(e Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = e
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// Handler wraps next: records go to next as before (when next is enabled
// for them) and, at the ring's level or above, into the ring.
func (r *Ring) Handler(next slog.Handler) slog.Handler {
	return &handler{ring: r, next: next, min: r.level}
}

// HandlerAt is Handler keeping only records at min or above (for a log
// whose routine lines are noise).
func (r *Ring) HandlerAt(next slog.Handler, min slog.Leveler) slog.Handler {
	return &handler{ring: r, next: next, min: min}
}

type handler struct {
	ring   *Ring
	min    slog.Leveler
	next   slog.Handler
	group  string // prefix for the attributes that follow ("a.b.")
	attrs  []slog.Attr
	prefix []string // the group of each of attrs
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min.Level() || h.next.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= h.min.Level() {
		e := Entry{Time: rec.Time, Level: rec.Level.String(), Message: cut(rec.Message), Attrs: map[string]string{}}
		for i, a := range h.attrs {
			addAttr(e.Attrs, h.prefix[i], a)
		}
		rec.Attrs(func(a slog.Attr) bool {
			addAttr(e.Attrs, h.group, a)
			return len(e.Attrs) < maxAttrs
		})
		h.ring.add(e)
	}
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	c.prefix = append([]string(nil), h.prefix...)
	for range as {
		c.prefix = append(c.prefix, h.group)
	}
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	c.group = h.group + name + "."
	return &c
}

func addAttr(m map[string]string, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			addAttr(m, p, g)
		}
		return
	}
	if a.Key == "" || len(m) >= maxAttrs {
		return
	}
	m[prefix+a.Key] = cut(v.String())
}

func cut(s string) string {
	if len(s) > maxValue {
		return s[:maxValue] + "…(cut)"
	}
	return s
}
