// Package storage holds the one interface every storage location implements
// (local directory, S3, SFTP) and the decorators that add behaviour to any of
// them (retrying, fault injection). It knows nothing about repositories: it
// stores named, immutable byte objects.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrNotFound is returned (possibly wrapped) by Get, Stat and Delete when the
// named object does not exist. Callers test it with errors.Is.
var ErrNotFound = errors.New("storage: object not found")

// ErrInvalidName is returned when a name is empty, absolute, contains a ".."
// element, a backslash or a NUL byte. Backends must refuse such names before
// touching the store.
var ErrInvalidName = errors.New("storage: invalid object name")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Name    string    // full name, as passed to Put ("data/ab/ab12...")
	Size    int64     // bytes
	ModTime time.Time // when it was written (used by garbage collection's safety window)
	// LockedUntil: the end of the object's lock (see Locker), where the
	// backend knows it (Stat on a locking backend); zero otherwise.
	LockedUntil time.Time
}

// Capacity describes the space of a storage location. Fields the backend
// cannot know are -1 (an S3 bucket has no total size, only what is stored).
type Capacity struct {
	TotalBytes int64
	FreeBytes  int64
	UsedBytes  int64 // bytes used by this location's objects, or by the filesystem when that is all that is known
}

// Backend is a flat store of immutable named objects. Names use "/" as the
// separator and never start with "/". The contract, which
// storage/storagetest checks for every implementation:
//
//   - Put stores exactly size bytes read from r under name, atomically: a
//     concurrent or later reader sees either no object or the whole object,
//     never a partial one, also when Put fails or the process dies midway.
//     Put on an existing name replaces it (atomically). r is read from its
//     current position; implementations that retry must Seek back to the
//     position they started from. Put returns an error (ErrSizeMismatch) if
//     r yields fewer or more than size bytes, and then stores nothing.
//   - Get returns a reader over length bytes starting at offset; length < 0
//     means "to the end". A range past the end of the object, or a negative
//     offset, is ErrInvalidRange; offset == size gives an empty reader. The
//     caller closes the reader. A missing object is ErrNotFound; so is a
//     name that is only a prefix of other objects ("data" for "data/ab").
//   - Stat returns the object's size and modification time, or ErrNotFound.
//   - List calls fn for every object whose name starts with prefix, in no
//     particular order, from one goroutine at a time; it stops and returns
//     fn's error if fn returns one. Objects being written by an unfinished
//     Put are never listed.
//   - Delete removes the object; deleting a missing object is ErrNotFound.
//   - Capacity reports space; see Capacity.
//   - Every method honours ctx: when ctx is cancelled the call returns
//     ctx.Err() (possibly wrapped) promptly.
//   - All methods are safe for concurrent use.
type Backend interface {
	Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error
	Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, name string) (ObjectInfo, error)
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	Delete(ctx context.Context, name string) error
	Capacity(ctx context.Context) (Capacity, error)
	// Location names the store for people and logs ("s3://bucket/prefix"),
	// without credentials.
	Location() string
	Close() error
}

// ValidName reports whether name is acceptable to every backend.
func ValidName(name string) error {
	if name == "" || name[0] == '/' {
		return ErrInvalidName
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '/' {
			el := name[start:i]
			if el == "" || el == "." || el == ".." {
				return ErrInvalidName
			}
			start = i + 1
			continue
		}
		if name[i] == 0 || name[i] == '\\' {
			return ErrInvalidName
		}
	}
	return nil
}

// PrefixDir returns the deepest directory that every name starting with
// prefix lies in ("" for the top), and false when no valid name can start
// with prefix. Backends with directories list only below it.
func PrefixDir(prefix string) (string, bool) {
	i := strings.LastIndexByte(prefix, '/')
	if i <= 0 {
		return "", true
	}
	d := prefix[:i]
	return d, ValidName(d) == nil
}

// ReadAll reads a whole object.
func ReadAll(ctx context.Context, b Backend, name string) ([]byte, error) {
	return ReadAllSized(ctx, b, name, 0)
}

// ReadAllSized is ReadAll for an object of about size bytes (0: unknown):
// its buffer is allocated once, where io.ReadAll's doubling would hold up
// to twice the object (a 16 MiB pack in a 32 MiB buffer).
func ReadAllSized(ctx context.Context, b Backend, name string, size int64) ([]byte, error) {
	rc, err := b.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size <= 0 || size > 1<<30 {
		return io.ReadAll(rc)
	}
	buf := make([]byte, 0, size+1) // one more: EOF is seen without growing
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // larger than said: grow as append does
		}
		n, err := rc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// ErrInvalidRange is returned (possibly wrapped) by Get when offset is
// negative or the requested range reaches past the end of the object.
var ErrInvalidRange = errors.New("storage: range outside object")

// ErrQuotaExceeded: the storage refuses more data until someone frees
// some or raises a quota; retrying does not help.
var ErrQuotaExceeded = errors.New("storage: over quota")

// ErrRefused: the storage refused the request itself (not a failure to
// answer): retrying asks the same and gets the same.
var ErrRefused = errors.New("storage: request refused")

// ErrLocked: the object is locked (S3 Object Lock) and may be neither
// deleted nor overwritten until its lock ends; retrying before then asks
// the same and gets the same. Backends wrap it with the lock's end.
var ErrLocked = errors.New("storage: object is locked")

// LockError is ErrLocked with the lock's end, where the backend knows it.
type LockError struct {
	Name  string
	Until time.Time
	// AppendOnly: the location never deletes nor replaces it.
	AppendOnly bool
}

// LockForever is the LockPeriod of a location whose locks never end (an
// append-only one).
const LockForever = 100 * 365 * 24 * time.Hour

func (e *LockError) Error() string {
	if e.AppendOnly {
		return fmt.Sprintf("%q: %v: the location is append-only (it is removed only by maintenance with a credential that may delete)", e.Name, ErrLocked)
	}
	if e.Until.IsZero() {
		return fmt.Sprintf("%q: %v", e.Name, ErrLocked)
	}
	return fmt.Sprintf("%q: %v until %s", e.Name, ErrLocked, e.Until.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockError) Is(target error) bool { return target == ErrLocked }

// Locker is a backend that locks what it stores against deletion and
// overwriting, on the storage server itself (S3 Object Lock): not even the
// credential that wrote an object can remove it before its lock ends.
// Decorators implement it by asking the backend they wrap.
type Locker interface {
	// LockPeriod is how long Put locks a new object; 0 when this backend
	// does not lock.
	LockPeriod() time.Duration
	// Unlocked reports whether Put leaves name unlocked (objects that are
	// rewritten or removed as a matter of course: markers, the index).
	Unlocked(name string) bool
	// ExtendLock makes name's lock last until at least until; a lock is
	// never shortened.
	ExtendLock(ctx context.Context, name string, until time.Time) error
}

// LockPeriodOf is be's LockPeriod, 0 for a backend that does not lock.
func LockPeriodOf(be Backend) time.Duration {
	if l, ok := be.(Locker); ok {
		return l.LockPeriod()
	}
	return 0
}

// ErrNoLocks is ExtendLock's answer on a backend that does not lock.
var ErrNoLocks = errors.New("storage: this location does not lock objects")

// UnlockedIn is be's Unlocked; true for a backend that does not lock.
// Decorators answer with it for the backend they wrap.
func UnlockedIn(be Backend, name string) bool {
	l, ok := be.(Locker)
	return !ok || l.Unlocked(name)
}

// ExtendLockIn is be's ExtendLock; ErrNoLocks for a backend that does
// not lock.
func ExtendLockIn(ctx context.Context, be Backend, name string, until time.Time) error {
	l, ok := be.(Locker)
	if !ok {
		return ErrNoLocks
	}
	return l.ExtendLock(ctx, name, until)
}

// ErrSizeMismatch is returned (wrapped, and marked permanent) by Put when the
// reader yields fewer or more bytes than the size it was given.
var ErrSizeMismatch = errors.New("storage: data size differs from declared size")

// permanentError marks an error that retrying cannot cure.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying will not cure (bad credentials, a
// missing bucket, a full or read-only disk, caller's data of the wrong size),
// so decorators such as storage/retry give up at once. Permanent(nil) is nil.
// errors.Is and errors.As still see the wrapped error.
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return permanentError{err}
}

// IsPermanent reports whether retrying err is pointless: err was marked with
// Permanent, or it is one of the contract's own answers (ErrNotFound,
// ErrInvalidName, ErrInvalidRange, ErrSizeMismatch), or a context error.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var p permanentError
	if errors.As(err, &p) {
		return true
	}
	for _, target := range []error{ErrNotFound, ErrInvalidName, ErrInvalidRange, ErrSizeMismatch, ErrLocked, ErrNoLocks, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// CheckRange validates a Get range against an object of the given size and
// returns the number of bytes the range covers.
func CheckRange(size, offset, length int64) (int64, error) {
	if offset < 0 || offset > size {
		return 0, fmt.Errorf("%w: offset %d, object size %d", ErrInvalidRange, offset, size)
	}
	if length < 0 {
		return size - offset, nil
	}
	if length > size-offset {
		return 0, fmt.Errorf("%w: %d bytes at offset %d, object size %d", ErrInvalidRange, length, offset, size)
	}
	return length, nil
}
