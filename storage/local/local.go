// Package local stores objects as files under a directory.
//
// An object "data/ab/ab12" is the file <dir>/data/ab/ab12. Puts are written
// to a temporary file under <dir>/.backupd-tmp, fsynced and renamed into place
// (then the directory is fsynced), so a reader, a crash or a failed Put never
// leaves a partial object. All file access goes through os.Root, so neither a
// name nor a symlink planted in the store reaches outside dir.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"backupd/storage"
)

// TempDir is the directory, at the root of the store, that holds uploads in
// progress. It is never listed, and names inside it are refused.
const TempDir = ".backupd-tmp"

// staleTemp is how old a leftover temporary file (from a crashed process)
// must be before New removes it.
const staleTemp = 24 * time.Hour

// Backend is a storage.Backend on a local directory.
type Backend struct {
	dir  string
	root *os.Root
}

var _ storage.Backend = (*Backend)(nil)

// New opens (creating it if needed) the store rooted at dir.
func New(dir string) (*Backend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(abs, TempDir), 0o700); err != nil {
		return nil, storage.Permanent(fmt.Errorf("local: create store: %w", err))
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, storage.Permanent(fmt.Errorf("local: open store: %w", err))
	}
	b := &Backend{dir: abs, root: root}
	b.removeStaleTemps()
	return b, nil
}

// removeStaleTemps deletes temporary files left by a process that died in
// the middle of a Put long ago. Young ones may belong to a running Put.
func (b *Backend) removeStaleTemps() {
	entries, err := fs.ReadDir(b.root.FS(), TempDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTemp {
			_ = b.root.Remove(path.Join(TempDir, e.Name()))
		}
	}
}

func (b *Backend) checkName(name string) error {
	if err := storage.ValidName(name); err != nil {
		return fmt.Errorf("local: %q: %w", name, err)
	}
	if name == TempDir || strings.HasPrefix(name, TempDir+"/") {
		return fmt.Errorf("local: %q is reserved: %w", name, storage.ErrInvalidName)
	}
	return nil
}

// wrap turns OS errors of reads and deletes into the contract's errors.
func (b *Backend) wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("local: %s %q: %w (%w)", op, name, storage.ErrNotFound, err)
	}
	return b.wrapWrite(op, name, err)
}

// wrapWrite is wrap for Put, where a missing file is no ErrNotFound.
func (b *Backend) wrapWrite(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the temporary file's name means nothing to the caller
	}
	err = fmt.Errorf("local: %s %q: %w", op, name, err)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.ENOSPC) ||
		errors.Is(err, syscall.EDQUOT) {
		return storage.Permanent(err)
	}
	return err
}

func (b *Backend) Put(ctx context.Context, name string, r io.ReadSeeker, size int64) (err error) {
	if err := b.checkName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(TempDir, hex.EncodeToString(rnd[:]))
	f, err := b.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return b.wrapWrite("put", name, err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			_ = b.root.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, storage.ExactReader(storage.ContextReader(ctx, r), size)); err != nil {
		return b.wrapWrite("put", name, err)
	}
	if err := f.Sync(); err != nil {
		return b.wrapWrite("put", name, err)
	}
	if err := f.Close(); err != nil {
		return b.wrapWrite("put", name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := path.Dir(name)
	made := false // the directory, or one above it, by this Put
	for try := 0; ; try++ {
		var err error
		if dir != "." {
			if _, serr := b.root.Lstat(dir); serr != nil {
				made = true
			}
			err = b.root.MkdirAll(dir, 0o755)
		}
		if err == nil {
			if err = b.root.Rename(tmp, name); err == nil {
				break
			}
		}
		// A Delete of the directory's last object removes it (see
		// Delete): between the two calls (the rename finds no
		// directory), or inside MkdirAll (its mkdir found one, gone
		// when it looked again). Make it again.
		if !(errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist)) || dir == "." || try == 9 {
			return b.wrapWrite("put", name, err)
		}
	}
	committed = true
	// The rename is durable only once the directory holding the new entry
	// is, and a directory made for it only once those above it are.
	if err := b.syncDir(dir); err != nil || !made {
		return b.wrapWrite("put", name, err)
	}
	for d := dir; d != "."; {
		d = path.Dir(d)
		if err := b.syncDir(d); err != nil {
			return b.wrapWrite("put", name, err)
		}
	}
	return nil
}

func (b *Backend) syncDir(dir string) error {
	d, err := b.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// openObject opens name for reading; directories and other non-regular
// files are not objects.
func (b *Backend) openObject(op, name string) (*os.File, fs.FileInfo, error) {
	f, err := b.root.Open(name)
	if err != nil {
		return nil, nil, b.wrap(op, name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, b.wrap(op, name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("local: %s %q: not a regular file: %w", op, name, storage.ErrNotFound)
	}
	return f, fi, nil
}

func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := b.checkName(name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, fi, err := b.openObject("get", name)
	if err != nil {
		return nil, err
	}
	n, err := storage.CheckRange(fi.Size(), offset, length)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("local: get %q: %w", name, err)
	}
	return storage.ContextReadCloser(ctx, struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, offset, n), f}), nil
}

func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if err := b.checkName(name); err != nil {
		return storage.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, err
	}
	fi, err := b.root.Stat(name)
	if err != nil {
		return storage.ObjectInfo{}, b.wrap("stat", name, err)
	}
	if !fi.Mode().IsRegular() {
		return storage.ObjectInfo{}, fmt.Errorf("local: stat %q: not a regular file: %w", name, storage.ErrNotFound)
	}
	return storage.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Walk only the deepest directory the prefix is sure to be inside.
	start, ok := storage.PrefixDir(prefix)
	if !ok {
		return nil // no object can have this prefix
	}
	if start == "" {
		start = "."
	}
	err := fs.WalkDir(b.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil // prefix's directory missing, or deleted while listing
			}
			return b.wrap("list", p, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p == TempDir {
				return fs.SkipDir
			}
			// Skip directories that cannot hold a match.
			if p != "." && !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing
			}
			return b.wrap("list", p, err)
		}
		return fn(storage.ObjectInfo{Name: p, Size: info.Size(), ModTime: info.ModTime()})
	})
	return err
}

func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := b.checkName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := b.root.Lstat(name)
	if err != nil {
		return b.wrap("delete", name, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("local: delete %q: is a directory: %w", name, storage.ErrNotFound)
	}
	if err := b.root.Remove(name); err != nil {
		return b.wrap("delete", name, err)
	}
	b.removeEmptyDir(name)
	return nil
}

// removeEmptyDir removes the directory holding name when it is a nested
// one (data/ab, not a top-level prefix) and now empty: a repository's
// fan-out directories would otherwise stay after their packs are deleted,
// each taking a block (4 KiB on ext4). The removal fails, harmlessly, while
// the directory holds anything; a Put racing it makes it again.
func (b *Backend) removeEmptyDir(name string) {
	dir := path.Dir(name)
	if !strings.Contains(dir, "/") {
		return
	}
	// a symbolic link there would be removed, not what it points to
	if fi, err := b.root.Lstat(dir); err == nil && fi.IsDir() {
		_ = b.root.Remove(dir)
	}
}

// Capacity reports the filesystem holding the store: UsedBytes is what the
// whole filesystem uses, since summing every object would be too slow.
func (b *Backend) Capacity(ctx context.Context) (storage.Capacity, error) {
	if err := ctx.Err(); err != nil {
		return storage.Capacity{}, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(b.dir, &st); err != nil {
		return storage.Capacity{}, fmt.Errorf("local: statfs %s: %w", b.dir, err)
	}
	bs := st.Frsize // the unit of the block counts; older kernels leave it 0
	if bs == 0 {
		bs = st.Bsize
	}
	return storage.Capacity{
		TotalBytes: int64(st.Blocks) * bs,
		FreeBytes:  int64(st.Bavail) * bs, // what an unprivileged writer can still use
		UsedBytes:  int64(st.Blocks-st.Bfree) * bs,
	}, nil
}

// Location is the store's absolute directory.
func (b *Backend) Location() string { return b.dir }

// Dir is the store's absolute directory.
func (b *Backend) Dir() string { return b.dir }

func (b *Backend) Close() error { return b.root.Close() }
