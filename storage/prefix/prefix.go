// Package prefix keeps a backend's objects below one name prefix: the
// repository of each enrolled host lives in its own part of a storage
// location (hosts/<id>/), and the decorator makes that part look like a
// whole backend to the repository code.
package prefix

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"backupd/storage"
)

// Backend stores every object of its own under dir + "/" in the
// backend below.
type Backend struct {
	be  storage.Backend
	dir string // "hosts/host-1/" (ends in /)
}

// New is be seen from dir (a valid name; the objects go below dir/).
// Closing it closes be.
func New(be storage.Backend, dir string) (*Backend, error) {
	dir = strings.TrimSuffix(dir, "/")
	if err := storage.ValidName(dir); err != nil {
		return nil, fmt.Errorf("prefix %q: %w", dir, err)
	}
	return &Backend{be: be, dir: dir + "/"}, nil
}

func (b *Backend) name(n string) (string, error) {
	if err := storage.ValidName(n); err != nil {
		return "", err
	}
	return b.dir + n, nil
}

// Put stores name below the prefix.
func (b *Backend) Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error {
	n, err := b.name(name)
	if err != nil {
		return err
	}
	return b.be.Put(ctx, n, r, size)
}

// Get reads name below the prefix.
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	n, err := b.name(name)
	if err != nil {
		return nil, err
	}
	return b.be.Get(ctx, n, offset, length)
}

// Stat describes name below the prefix, by its own name.
func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	n, err := b.name(name)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	oi, err := b.be.Stat(ctx, n)
	oi.Name = strings.TrimPrefix(oi.Name, b.dir)
	return oi, err
}

// List lists the objects below the prefix by their own names.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	return b.be.List(ctx, b.dir+prefix, func(oi storage.ObjectInfo) error {
		oi.Name = strings.TrimPrefix(oi.Name, b.dir)
		return fn(oi)
	})
}

// ListFirst lists the first objects below the prefix by their own names
// (the order of names below one prefix is theirs).

var _ storage.FirstLister = (*Backend)(nil)

func (b *Backend) ListFirst(ctx context.Context, prefix string, max int, fn func(storage.ObjectInfo) error) (bool, error) {
	return storage.ListFirst(ctx, b.be, b.dir+prefix, max, func(oi storage.ObjectInfo) error {
		oi.Name = strings.TrimPrefix(oi.Name, b.dir)
		return fn(oi)
	})
}

// Delete removes name below the prefix.
func (b *Backend) Delete(ctx context.Context, name string) error {
	n, err := b.name(name)
	if err != nil {
		return err
	}
	return b.be.Delete(ctx, n)
}

// Capacity is the backend's (a prefix has no space of its own).
func (b *Backend) Capacity(ctx context.Context) (storage.Capacity, error) { return b.be.Capacity(ctx) }

// Location names the backend and the prefix.
func (b *Backend) Location() string {
	return strings.TrimRight(b.be.Location(), "/") + "/" + strings.TrimSuffix(b.dir, "/")
}

// Close closes the backend below.
func (b *Backend) Close() error { return b.be.Close() }

// LockPeriod is the backend's (storage.Locker).
func (b *Backend) LockPeriod() time.Duration { return storage.LockPeriodOf(b.be) }

// Unlocked asks the backend about name below the prefix.
func (b *Backend) Unlocked(name string) bool { return storage.UnlockedIn(b.be, b.dir+name) }

// ExtendLock extends the lock of name below the prefix.
func (b *Backend) ExtendLock(ctx context.Context, name string, until time.Time) error {
	n, err := b.name(name)
	if err != nil {
		return err
	}
	return storage.ExtendLockIn(ctx, b.be, n, until)
}
