// Package retry is a storage.Backend decorator that retries transient
// failures with exponential backoff and jitter.
//
// It never retries what retrying cannot cure: storage.IsPermanent errors
// (ErrNotFound, ErrInvalidName, ErrInvalidRange, ErrSizeMismatch, context
// errors and anything marked with storage.Permanent), nor errors returned by
// a List callback. Waiting between attempts stops as soon as ctx is done.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"backupd/storage"
)

// Options tune the retrying. Zero fields take the defaults noted.
type Options struct {
	// MaxAttempts counts every attempt, the first included (default 5).
	MaxAttempts int
	// MaxElapsed bounds the time from the first attempt after which no
	// further attempt starts (default 2 minutes).
	MaxElapsed time.Duration
	// InitialDelay is the wait before the first retry (default 250ms); each
	// later wait doubles, up to MaxDelay (default 20s). Each wait is drawn
	// at random from [d/2, d) so that many clients do not retry in step.
	InitialDelay time.Duration
	MaxDelay     time.Duration
	// Retryable decides whether err is worth another attempt (default:
	// !storage.IsPermanent(err)). Errors from ctx are never retried.
	Retryable func(err error) bool
	// OnRetry, if set, is told about each failure that will be retried
	// (for logging and metrics).
	OnRetry func(op, name string, attempt int, err error, wait time.Duration)
}

func (o *Options) setDefaults() {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.MaxElapsed <= 0 {
		o.MaxElapsed = 2 * time.Minute
	}
	if o.InitialDelay <= 0 {
		o.InitialDelay = 250 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 20 * time.Second
	}
	if o.MaxDelay < o.InitialDelay {
		o.MaxDelay = o.InitialDelay
	}
	if o.Retryable == nil {
		o.Retryable = func(err error) bool { return !storage.IsPermanent(err) }
	}
}

// Backend retries the calls of the backend it wraps.
type Backend struct {
	b    storage.Backend
	opts Options
}

var _ storage.Backend = (*Backend)(nil)

// New wraps b.
func New(b storage.Backend, opts Options) *Backend {
	opts.setDefaults()
	return &Backend{b: b, opts: opts}
}

// Unwrap returns the wrapped backend.
func (b *Backend) Unwrap() storage.Backend { return b.b }

// errCallback marks an error that came from the caller's List callback.
type errCallback struct{ err error }

func (e errCallback) Error() string { return e.err.Error() }
func (e errCallback) Unwrap() error { return e.err }

func (b *Backend) retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var cb errCallback
	if errors.As(err, &cb) {
		return false
	}
	return b.opts.Retryable(err)
}

// wait returns the pause before retry number attempt (1 = first retry).
func (b *Backend) wait(attempt int) time.Duration {
	d := b.opts.InitialDelay
	for i := 1; i < attempt && d < b.opts.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, b.opts.MaxDelay)
	return d/2 + rand.N(d/2+1)
}

// do runs fn until it succeeds, fails for good, or the attempts or time
// run out. fn receives the attempt number, starting at 1.
func (b *Backend) do(ctx context.Context, op, name string, fn func(attempt int) error) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := fn(attempt)
		if err == nil || !b.retryable(ctx, err) {
			return err
		}
		if attempt >= b.opts.MaxAttempts {
			return fmt.Errorf("retry: %s %q: giving up after %d attempts: %w", op, name, attempt, err)
		}
		w := b.wait(attempt)
		if time.Since(start)+w > b.opts.MaxElapsed {
			return fmt.Errorf("retry: %s %q: giving up after %d attempts in %v: %w", op, name, attempt, time.Since(start).Round(time.Millisecond), err)
		}
		if b.opts.OnRetry != nil {
			b.opts.OnRetry(op, name, attempt, err, w)
		}
		t := time.NewTimer(w)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("retry: %s %q: %w (while waiting to retry after: %v)", op, name, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Put rewinds r to where it stood at the call before every retry.
func (b *Backend) Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error {
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return b.b.Put(ctx, name, r, size) // cannot rewind, so cannot retry
	}
	return b.do(ctx, "put", name, func(attempt int) error {
		if attempt > 1 {
			if _, err := r.Seek(start, io.SeekStart); err != nil {
				return storage.Permanent(fmt.Errorf("retry: rewind reader for %q: %w", name, err))
			}
		}
		return b.b.Put(ctx, name, r, size)
	})
}

// Get retries opening the object and, when reading the returned body fails
// transiently, reopens it at the first byte not yet delivered (objects are
// immutable, so the pieces fit).
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	rc, err := b.get(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	return &resumingReader{ctx: ctx, b: b, name: name, offset: offset, length: length, rc: rc}, nil
}

func (b *Backend) get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := b.do(ctx, "get", name, func(int) error {
		var err error
		rc, err = b.b.Get(ctx, name, offset, length)
		return err
	})
	return rc, err
}

type resumingReader struct {
	ctx    context.Context
	b      *Backend
	name   string
	offset int64 // of the next byte to deliver
	length int64 // still to deliver; < 0: to the end
	rc     io.ReadCloser
	fails  int // consecutive read failures with no progress
}

func (r *resumingReader) Read(p []byte) (int, error) {
	for {
		if r.rc == nil {
			return 0, errors.New("retry: read after close")
		}
		if r.length >= 0 && int64(len(p)) > r.length {
			p = p[:r.length]
		}
		n, err := r.rc.Read(p)
		r.offset += int64(n)
		if r.length >= 0 {
			r.length -= int64(n)
		}
		if n > 0 {
			r.fails = 0
		}
		if err == nil || err == io.EOF {
			if err == io.EOF && r.length > 0 {
				err = fmt.Errorf("retry: get %q: body ended %d bytes early: %w", r.name, r.length, io.ErrUnexpectedEOF)
			} else {
				return n, err
			}
		}
		if n > 0 || r.length == 0 {
			// Deliver what we have; the error, if it persists, comes back
			// on the next call.
			if r.length == 0 {
				return n, io.EOF
			}
			return n, nil
		}
		r.fails++
		if !r.b.retryable(r.ctx, err) || r.fails >= r.b.opts.MaxAttempts {
			return 0, err
		}
		if r.b.opts.OnRetry != nil {
			r.b.opts.OnRetry("read", r.name, r.fails, err, 0)
		}
		r.rc.Close()
		r.rc = nil
		rc, gerr := r.b.get(r.ctx, r.name, r.offset, r.length)
		if gerr != nil {
			return 0, fmt.Errorf("retry: reopen %q at %d after %v: %w", r.name, r.offset, err, gerr)
		}
		r.rc = rc
	}
}

func (r *resumingReader) Close() error {
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	r.rc = nil
	return err
}

func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	var info storage.ObjectInfo
	err := b.do(ctx, "stat", name, func(int) error {
		var err error
		info, err = b.b.Stat(ctx, name)
		return err
	})
	return info, err
}

// List retries a listing that failed midway without calling fn twice for
// the same object: names already delivered are skipped on the next attempt.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	seen := make(map[string]bool)
	err := b.do(ctx, "list", prefix, func(int) error {
		return b.b.List(ctx, prefix, func(oi storage.ObjectInfo) error {
			if seen[oi.Name] {
				return nil
			}
			if err := fn(oi); err != nil {
				return errCallback{err}
			}
			seen[oi.Name] = true
			return nil
		})
	})
	var cb errCallback
	if errors.As(err, &cb) {
		return cb.err
	}
	return err
}

// ListFirst retries a failed listing whole: fn sees the objects of the
// attempt that succeeded, once.

var _ storage.FirstLister = (*Backend)(nil)

func (b *Backend) ListFirst(ctx context.Context, prefix string, max int, fn func(storage.ObjectInfo) error) (bool, error) {
	var got []storage.ObjectInfo
	var more bool
	err := b.do(ctx, "list", prefix, func(int) error {
		got = got[:0]
		var err error
		more, err = storage.ListFirst(ctx, b.b, prefix, max, func(oi storage.ObjectInfo) error {
			got = append(got, oi)
			return nil
		})
		return err
	})
	if err != nil {
		return false, err
	}
	for _, oi := range got {
		if err := fn(oi); err != nil {
			return false, err
		}
	}
	return more, nil
}

// Delete treats ErrNotFound after a failed attempt as success: the failed
// attempt may well have deleted the object before its answer was lost.
func (b *Backend) Delete(ctx context.Context, name string) error {
	return b.do(ctx, "delete", name, func(attempt int) error {
		err := b.b.Delete(ctx, name)
		if attempt > 1 && errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		return err
	})
}

func (b *Backend) Capacity(ctx context.Context) (storage.Capacity, error) {
	var c storage.Capacity
	err := b.do(ctx, "capacity", "", func(int) error {
		var err error
		c, err = b.b.Capacity(ctx)
		return err
	})
	return c, err
}

func (b *Backend) Location() string { return b.b.Location() }
func (b *Backend) Close() error     { return b.b.Close() }

// LockPeriod is the wrapped backend's (storage.Locker).
func (b *Backend) LockPeriod() time.Duration { return storage.LockPeriodOf(b.b) }

// Unlocked is the wrapped backend's answer.
func (b *Backend) Unlocked(name string) bool { return storage.UnlockedIn(b.b, name) }

// ExtendLock extends a lock, retrying like every call.
func (b *Backend) ExtendLock(ctx context.Context, name string, until time.Time) error {
	if _, ok := b.b.(storage.Locker); !ok {
		return storage.ErrNoLocks
	}
	return b.do(ctx, "extend lock", name, func(int) error { return storage.ExtendLockIn(ctx, b.b, name, until) })
}
