// Package mem is an in-memory storage.Backend, for tests that need speed
// more than a disk. It passes the same conformance suite as the real ones.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"backupd/storage"
)

type object struct {
	data    []byte
	modTime time.Time
}

// Backend keeps objects in a map.
type Backend struct {
	mu   sync.RWMutex
	objs map[string]object
}

// New returns an empty store.
func New() *Backend { return &Backend{objs: map[string]object{}} }

func (b *Backend) Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error {
	if err := storage.ValidName(name); err != nil {
		return fmt.Errorf("%w: %q", err, name)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := io.ReadAll(storage.ExactReader(storage.ContextReader(ctx, r), size))
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	b.mu.Lock()
	b.objs[name] = object{data: data, modTime: time.Now()}
	b.mu.Unlock()
	return nil
}

func (b *Backend) get(name string) (object, error) {
	if err := storage.ValidName(name); err != nil {
		return object{}, fmt.Errorf("%w: %q", err, name)
	}
	b.mu.RLock()
	o, ok := b.objs[name]
	b.mu.RUnlock()
	if !ok {
		return o, fmt.Errorf("%s: %w", name, storage.ErrNotFound)
	}
	return o, nil
}

func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o, err := b.get(name)
	if err != nil {
		return nil, err
	}
	n, err := storage.CheckRange(int64(len(o.data)), offset, length)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	return io.NopCloser(storage.ContextReader(ctx, bytes.NewReader(o.data[offset:offset+n]))), nil
}

func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, err
	}
	o, err := b.get(name)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	return storage.ObjectInfo{Name: name, Size: int64(len(o.data)), ModTime: o.modTime}, nil
}

func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	b.mu.RLock()
	var infos []storage.ObjectInfo
	for n, o := range b.objs {
		if strings.HasPrefix(n, prefix) {
			infos = append(infos, storage.ObjectInfo{Name: n, Size: int64(len(o.data)), ModTime: o.modTime})
		}
	}
	b.mu.RUnlock()
	for _, oi := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(oi); err != nil {
			return err
		}
	}
	return nil
}

func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := b.get(name); err != nil {
		return err
	}
	b.mu.Lock()
	delete(b.objs, name)
	b.mu.Unlock()
	return nil
}

func (b *Backend) Capacity(ctx context.Context) (storage.Capacity, error) {
	if err := ctx.Err(); err != nil {
		return storage.Capacity{}, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	var used int64
	for _, o := range b.objs {
		used += int64(len(o.data))
	}
	return storage.Capacity{TotalBytes: -1, FreeBytes: -1, UsedBytes: used}, nil
}

func (b *Backend) Location() string { return "mem:" }
func (b *Backend) Close() error     { return nil }

// Corrupt flips one bit of a stored object's byte at offset, for tests.
func (b *Backend) Corrupt(name string, offset int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o := b.objs[name]
	d := append([]byte(nil), o.data...)
	d[offset] ^= 0x01
	b.objs[name] = object{data: d, modTime: o.modTime}
}

// SetModTime changes an object's modification time, for tests of safety windows.
func (b *Backend) SetModTime(name string, t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o := b.objs[name]
	o.modTime = t
	b.objs[name] = o
}

// Clone returns a copy of the store (objects share no state with it), for
// tests that replay one starting point many times.
func (b *Backend) Clone() *Backend {
	b.mu.RLock()
	defer b.mu.RUnlock()
	c := New()
	for k, o := range b.objs {
		c.objs[k] = object{data: append([]byte(nil), o.data...), modTime: o.modTime}
	}
	return c
}
