// Package fault is a storage.Backend decorator that injects failures, for
// tests: failed calls, uploads that break midway, truncated or corrupted
// downloads, slow calls. It also counts calls.
//
//	fb := fault.New(backend)
//	fb.Add(fault.Rule{Op: fault.Put, Nth: 2, Err: fault.ErrInjected}) // the 2nd Put fails
//	fb.Add(fault.Rule{Op: fault.Put, Action: fault.FailAfter, Bytes: 1 << 20, Times: 1})
//	fb.Add(fault.Rule{Op: fault.Get, Prefix: "data/", Action: fault.Corrupt, Bytes: 10})
//
// Each call is matched against the rules in the order they were added; the
// first rule that matches and fires decides what happens to the call.
package fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"sync"
	"time"

	"backupd/storage"
)

// ErrInjected is the default error of a rule: a transient failure, which
// storage/retry retries. Wrap it with storage.Permanent for a permanent one.
var ErrInjected = errors.New("fault: injected failure")

// Op names a Backend method.
type Op string

const (
	Any      Op = ""
	Put      Op = "Put"
	Get      Op = "Get"
	Stat     Op = "Stat"
	List     Op = "List"
	Delete   Op = "Delete"
	Capacity Op = "Capacity"
)

// Action is what a rule does to a call it fires on.
type Action int

const (
	// Fail returns Err without calling the wrapped backend.
	Fail Action = iota
	// FailAfter lets the call start, then breaks its data stream after
	// Bytes bytes with Err: for Put the wrapped backend's reader fails (a
	// crash mid-upload: the backend must store nothing); for Get the
	// returned reader fails.
	FailAfter
	// Truncate (Get only) ends the returned data silently after Bytes bytes.
	Truncate
	// Corrupt (Get only) flips the bits of the returned byte at position
	// Bytes (counted from the start of the returned range).
	Corrupt
	// Delay waits Delay (or until ctx is done) and then calls the backend.
	Delay
)

// Rule says which calls to disturb and how.
type Rule struct {
	Op     Op     // the method; Any matches all
	Prefix string // only names starting with Prefix (List: its prefix argument)
	// Nth, if > 0, fires only on the Nth call that matches Op and Prefix
	// (counting from 1, from when the rule was added).
	Nth int
	// Times, if > 0, limits how often the rule fires; 0 is unlimited.
	Times  int
	Action Action
	Err    error         // for Fail and FailAfter; ErrInjected when nil
	Bytes  int64         // for FailAfter, Truncate, Corrupt
	Delay  time.Duration // for Delay
	// Chance, if > 0, fires the rule on that share of the calls it would
	// otherwise fire on, drawn from the backend's seeded generator (Seed):
	// random faults that a seed replays.
	Chance float64

	matched, fired int
}

// Backend wraps a storage.Backend and disturbs calls as its rules say.
type Backend struct {
	b storage.Backend

	mu    sync.Mutex
	rules []*Rule
	calls map[Op]int
	rng   *rand.Rand
}

var _ storage.Backend = (*Backend)(nil)

// New wraps b with no rules: every call passes through.
func New(b storage.Backend) *Backend {
	return &Backend{b: b, calls: make(map[Op]int), rng: rand.New(rand.NewSource(1))}
}

// Seed sets the generator that Chance draws from.
func (f *Backend) Seed(seed int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rng = rand.New(rand.NewSource(seed))
}

// Unwrap returns the wrapped backend.
func (f *Backend) Unwrap() storage.Backend { return f.b }

// Add appends a rule.
func (f *Backend) Add(r Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Err == nil {
		r.Err = ErrInjected
	}
	f.rules = append(f.rules, &r)
}

// Reset removes all rules and zeroes the call counts.
func (f *Backend) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
	f.calls = make(map[Op]int)
}

// Calls returns how many calls of op were made (Any: of all methods),
// including the ones a rule disturbed.
func (f *Backend) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op == Any {
		n := 0
		for _, c := range f.calls {
			n += c
		}
		return n
	}
	return f.calls[op]
}

// Fired returns how many times rules have fired in all.
func (f *Backend) Fired() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.rules {
		n += r.fired
	}
	return n
}

// match counts the call and returns a copy of the rule that fires on it, if any.
func (f *Backend) match(op Op, name string) *Rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	var hit *Rule
	for _, r := range f.rules {
		if (r.Op != Any && r.Op != op) || !strings.HasPrefix(name, r.Prefix) {
			continue
		}
		r.matched++
		if hit != nil || (r.Nth > 0 && r.matched != r.Nth) || (r.Times > 0 && r.fired >= r.Times) {
			continue
		}
		if r.Chance > 0 && f.rng.Float64() >= r.Chance {
			continue
		}
		r.fired++
		c := *r
		hit = &c
	}
	return hit
}

// before applies Fail and Delay; it returns the rule when its action is
// left to the caller (FailAfter, Truncate, Corrupt).
func (f *Backend) before(ctx context.Context, op Op, name string) (*Rule, error) {
	r := f.match(op, name)
	if r == nil {
		return nil, nil
	}
	switch r.Action {
	case Fail:
		return nil, fmt.Errorf("fault: %s %q: %w", op, name, r.Err)
	case Delay:
		t := time.NewTimer(r.Delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		return nil, nil
	}
	return r, nil
}

func (f *Backend) Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error {
	rule, err := f.before(ctx, Put, name)
	if err != nil {
		return err
	}
	if rule != nil && rule.Action == FailAfter {
		r = &breakingReader{ReadSeeker: r, left: rule.Bytes, err: rule.Err}
	}
	return f.b.Put(ctx, name, r, size)
}

// breakingReader fails with err once left bytes have been read; seeking does
// not heal it, as a crashed uploader does not come back.
type breakingReader struct {
	io.ReadSeeker
	left int64
	err  error
}

func (b *breakingReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, b.err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadSeeker.Read(p)
	b.left -= int64(n)
	return n, err
}

func (f *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	rule, err := f.before(ctx, Get, name)
	if err != nil {
		return nil, err
	}
	rc, err := f.b.Get(ctx, name, offset, length)
	if err != nil || rule == nil {
		return rc, err
	}
	return &disturbedReader{rc: rc, rule: *rule}, nil
}

type disturbedReader struct {
	rc   io.ReadCloser
	rule Rule
	pos  int64
}

func (d *disturbedReader) Read(p []byte) (int, error) {
	switch d.rule.Action {
	case FailAfter, Truncate:
		if d.pos >= d.rule.Bytes {
			if d.rule.Action == Truncate {
				return 0, io.EOF
			}
			return 0, d.rule.Err
		}
		if int64(len(p)) > d.rule.Bytes-d.pos {
			p = p[:d.rule.Bytes-d.pos]
		}
	}
	n, err := d.rc.Read(p)
	if d.rule.Action == Corrupt && d.rule.Bytes >= d.pos && d.rule.Bytes < d.pos+int64(n) {
		p[d.rule.Bytes-d.pos] ^= 0xff
	}
	d.pos += int64(n)
	return n, err
}

func (d *disturbedReader) Close() error { return d.rc.Close() }

func (f *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if _, err := f.before(ctx, Stat, name); err != nil {
		return storage.ObjectInfo{}, err
	}
	return f.b.Stat(ctx, name)
}

// ListFirst is a List for the rules and the counts.

var _ storage.FirstLister = (*Backend)(nil)

func (f *Backend) ListFirst(ctx context.Context, prefix string, max int, fn func(storage.ObjectInfo) error) (bool, error) {
	rule, err := f.before(ctx, List, prefix)
	if err != nil {
		return false, err
	}
	if rule == nil || rule.Action != FailAfter {
		return storage.ListFirst(ctx, f.b, prefix, max, fn)
	}
	var n int64
	return storage.ListFirst(ctx, f.b, prefix, max, func(oi storage.ObjectInfo) error {
		if n >= rule.Bytes {
			return fmt.Errorf("fault: list %q: %w", prefix, rule.Err)
		}
		n++
		return fn(oi)
	})
}

// List: a FailAfter rule lets Bytes objects through to fn, then fails the
// listing with Err (a listing broken midway).
func (f *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	rule, err := f.before(ctx, List, prefix)
	if err != nil {
		return err
	}
	if rule == nil || rule.Action != FailAfter {
		return f.b.List(ctx, prefix, fn)
	}
	var n int64
	return f.b.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if n >= rule.Bytes {
			return fmt.Errorf("fault: list %q: %w", prefix, rule.Err)
		}
		n++
		return fn(oi)
	})
}

func (f *Backend) Delete(ctx context.Context, name string) error {
	if _, err := f.before(ctx, Delete, name); err != nil {
		return err
	}
	return f.b.Delete(ctx, name)
}

func (f *Backend) Capacity(ctx context.Context) (storage.Capacity, error) {
	if _, err := f.before(ctx, Capacity, ""); err != nil {
		return storage.Capacity{}, err
	}
	return f.b.Capacity(ctx)
}

func (f *Backend) Location() string { return f.b.Location() }
func (f *Backend) Close() error     { return f.b.Close() }

// LockPeriod is the wrapped backend's (storage.Locker).
func (f *Backend) LockPeriod() time.Duration { return storage.LockPeriodOf(f.b) }

// Unlocked is the wrapped backend's answer.
func (f *Backend) Unlocked(name string) bool { return storage.UnlockedIn(f.b, name) }

// ExtendLock extends a lock in the wrapped backend.
func (f *Backend) ExtendLock(ctx context.Context, name string, until time.Time) error {
	return storage.ExtendLockIn(ctx, f.b, name, until)
}
