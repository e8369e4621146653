// Package appendonly is a decorator for a location written with a
// credential that may add objects but never delete or replace them: an
// SFTP account the server forbids removing and overwriting (the
// server's rules are what stop a stolen credential), or a local
// directory a backupd should only ever add to.
//
// Through it, deleting or overwriting an object fails with
// storage.ErrLocked before the backend is asked, except for the names the
// caller says are removable (markers and other objects a repository
// removes as a matter of course). It is a storage.Locker whose locks never
// end: garbage collection through it deletes nothing it would need to
// keep, and says what waits for a maintenance run with a credential that
// may delete.
package appendonly

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"backupd/storage"
)

// Backend adds to be, never deleting or replacing what removable does
// not name.
type Backend struct {
	be        storage.Backend
	removable func(name string) bool
}

var (
	_ storage.Backend = (*Backend)(nil)
	_ storage.Locker  = (*Backend)(nil)
)

// New wraps be; removable names the objects that may still be deleted
// and replaced (nil: none).
func New(be storage.Backend, removable func(name string) bool) *Backend {
	if removable == nil {
		removable = func(string) bool { return false }
	}
	return &Backend{be: be, removable: removable}
}

// Unwrap returns the wrapped backend.
func (b *Backend) Unwrap() storage.Backend { return b.be }

func locked(name string) error {
	return storage.Permanent(&storage.LockError{Name: name, AppendOnly: true})
}

// Put stores a new object. An object that exists is replaced only if
// removable; otherwise Put succeeds when it already holds the same bytes
// (a retried Put, a content-addressed name stored twice) and fails with
// ErrLocked when it does not.
func (b *Backend) Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error {
	if b.removable(name) {
		return b.be.Put(ctx, name, r, size)
	}
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if oi, err := b.be.Stat(ctx, name); err == nil {
		return b.same(ctx, name, oi, r, start, size)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	err = b.be.Put(ctx, name, r, size)
	if err != nil && !storage.IsPermanent(err) || err == nil {
		return err
	}
	// the server may have refused because it was stored meanwhile
	if oi, serr := b.be.Stat(ctx, name); serr == nil {
		if b.same(ctx, name, oi, r, start, size) == nil {
			return nil
		}
	}
	return err
}

// same reports (nil) whether the stored object holds what r holds.
func (b *Backend) same(ctx context.Context, name string, oi storage.ObjectInfo, r io.ReadSeeker, start, size int64) error {
	if oi.Size != size {
		return locked(name)
	}
	stored, err := storage.ReadAllSized(ctx, b.be, name, size)
	if err != nil {
		return err
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return err
	}
	want := make([]byte, size)
	if _, err := io.ReadFull(r, want); err != nil {
		return err
	}
	if !bytes.Equal(stored, want) {
		return locked(name)
	}
	return nil
}

func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	return b.be.Get(ctx, name, offset, length)
}

func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	return b.be.Stat(ctx, name)
}

func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	return b.be.List(ctx, prefix, fn)
}

var _ storage.FirstLister = (*Backend)(nil)

func (b *Backend) ListFirst(ctx context.Context, prefix string, max int, fn func(storage.ObjectInfo) error) (bool, error) {
	return storage.ListFirst(ctx, b.be, prefix, max, fn)
}

// Delete removes only removable objects; the others are ErrLocked.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if !b.removable(name) {
		if _, err := b.be.Stat(ctx, name); err != nil {
			return err // missing is ErrNotFound, as the contract says
		}
		return locked(name)
	}
	return b.be.Delete(ctx, name)
}

func (b *Backend) Capacity(ctx context.Context) (storage.Capacity, error) { return b.be.Capacity(ctx) }

// Location names the backend, marked append-only.
func (b *Backend) Location() string { return b.be.Location() + " (append-only)" }

func (b *Backend) Close() error { return b.be.Close() }

// LockPeriod is storage.LockForever: nothing this location keeps is ever unlocked by
// time.
func (b *Backend) LockPeriod() time.Duration { return storage.LockForever }

// Unlocked reports the removable names.
func (b *Backend) Unlocked(name string) bool { return b.removable(name) }

// ExtendLock has nothing to do: locks here never end.
func (b *Backend) ExtendLock(context.Context, string, time.Time) error { return nil }
