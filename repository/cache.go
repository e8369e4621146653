package repository

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Cache is a client's local copy of repository objects that do not change
// once written: index files and tree packs (named by the SHA-256 of their
// content, which is checked on every use) and manifests (authenticated and
// bound to their id when decoded; a cached one is used only when the
// listing shows an object of the same size under its name). With it, a
// command on S3 lists once and downloads only what it has not seen: a
// backup of a repository with thousands of backups reads its index, its
// parent's trees and its parent manifest from local disk.
//
// Everything in it can be deleted at any time. It lives under
// <root>/<repository id>/, in directories only its owner can read.
// Objects a listing no longer shows are removed from it as they are seen to
// go.
type Cache struct {
	dir          string
	hits, misses atomic.Int64
	fds          fdTable // files readAt keeps open
}

// fdTable keeps a few cached files open for readAt: a backup reads each
// of its parent's trees alone from the same cached tree pack, and opening
// the pack again for each of thousands of directories was most of the
// system calls of an unchanged re-backup. Cached objects never change
// under their name (they are named by content or by a write-once object),
// so an open file is as good as the named one (and what is read from it
// is authenticated anyway); one removed or replaced through the cache is
// closed once its last read ends. A file deleted from outside stays open
// until four others have pushed it out.
type fdTable struct {
	mu    sync.Mutex
	files map[string]*openFile
	// forgets counts forget calls: a file opened while one ran may be
	// the object forgotten, and is not put in the table
	forgets uint64
}

type openFile struct {
	f    *os.File
	size int64
	refs int
	gone bool // no longer in the table: closed when refs reaches 0
}

const fdTableSize = 4

// acquire opens path, or takes it from the table.
func (t *fdTable) acquire(path string) (*openFile, error) {
	t.mu.Lock()
	if of, ok := t.files[path]; ok {
		of.refs++
		t.mu.Unlock()
		return of, nil
	}
	gen := t.forgets
	t.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	of := &openFile{f: f, size: fi.Size(), refs: 1, gone: true}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.files[path]; ok { // opened meanwhile
		cur.refs++
		f.Close()
		return cur, nil
	}
	if t.files == nil {
		t.files = map[string]*openFile{}
	}
	if len(t.files) >= fdTableSize {
		for p, o := range t.files { // make room: drop one no read holds
			if o.refs == 0 {
				delete(t.files, p)
				o.f.Close()
				break
			}
		}
	}
	if len(t.files) < fdTableSize && t.forgets == gen {
		of.gone = false
		t.files[path] = of
	}
	return of, nil
}

func (t *fdTable) release(of *openFile) {
	t.mu.Lock()
	defer t.mu.Unlock()
	of.refs--
	if of.refs == 0 && of.gone {
		of.f.Close()
	}
}

// forget drops path from the table (removed or replaced).
func (t *fdTable) forget(path string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgets++
	if of, ok := t.files[path]; ok {
		delete(t.files, path)
		of.gone = true
		if of.refs == 0 {
			of.f.Close()
		}
	}
}

// Cache kinds: the subdirectory each kind of object is kept in.
const (
	cacheIndex     = "index"
	cacheManifests = "manifests"
	cacheTrees     = "trees"
	// manifest sets (named by their SHA-256, checked on use) and
	// tombstones (authenticated when used)
	cacheManifestSets = "manifest-sets"
	cacheTombstones   = "tombstones"
	// condemned lists (gc/), by name: the packs a name lists never
	// change (a collection that condemns more writes a new list), so a
	// writer reads each once; their times can be an earlier write's
	// (saveCondemned writes a slow list again), so a collection reads
	// them from storage
	cacheCondemned = "gc"
)

// OpenCache opens (creating it) the cache of repository id under root.
func OpenCache(root, id string) (*Cache, error) {
	if root == "" || !validCacheName(id) {
		return nil, fmt.Errorf("cache: bad root %q or repository id %q", root, id)
	}
	// Only the directories made here get modes; a root given by the user
	// (even /tmp) is never changed. The repository's own directory must be
	// a real directory of this user's, only it can enter: not a link
	// somebody put there.
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	dir := filepath.Join(root, id)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("cache: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("cache: %s is not a directory that only this user (uid %d) can use (mode %v); remove it or pick another --cache-dir",
			dir, os.Geteuid(), fi.Mode())
	}
	for _, k := range []string{cacheIndex, cacheManifests, cacheTrees, cacheManifestSets, cacheTombstones, cacheIndexSnap, cacheCondemned} {
		if err := os.Mkdir(filepath.Join(dir, k), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	return &Cache{dir: dir}, nil
}

// Dir is where the cache keeps this repository's objects.
func (c *Cache) Dir() string { return c.dir }

// Stats reports how many reads the cache served and how many it did not.
func (c *Cache) Stats() (hits, misses int64) { return c.hits.Load(), c.misses.Load() }

func validCacheName(n string) bool {
	if n == "" || len(n) > 200 || strings.ContainsAny(n, `/\`) || n == "." || n == ".." {
		return false
	}
	return true
}

func (c *Cache) path(kind, name string) string { return filepath.Join(c.dir, kind, name) }

// get returns a cached object when valid accepts it; an invalid one is
// removed.
func (c *Cache) get(kind, name string, valid func([]byte) bool) ([]byte, bool) {
	if c == nil || !validCacheName(name) {
		return nil, false
	}
	b, err := os.ReadFile(c.path(kind, name))
	if err != nil {
		c.misses.Add(1)
		return nil, false
	}
	if !valid(b) {
		c.remove(kind, name)
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return b, true
}

// readAt reads n bytes at off of a cached object without reading the rest
// of it: false when it is not cached or is too short.
func (c *Cache) readAt(kind, name string, off int64, n int) ([]byte, bool) {
	if c == nil || !validCacheName(name) {
		return nil, false
	}
	of, err := c.fds.acquire(c.path(kind, name))
	if err != nil {
		c.misses.Add(1)
		return nil, false
	}
	defer c.fds.release(of)
	// a length from the index is not allocated before the file is seen to
	// hold it
	if off < 0 || n < 0 || off+int64(n) > of.size {
		c.misses.Add(1)
		return nil, false
	}
	b := make([]byte, n)
	if _, err := of.f.ReadAt(b, off); err != nil {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return b, true
}

// getByHash returns a cached object whose SHA-256 is its name.
func (c *Cache) getByHash(kind string, id ID) ([]byte, bool) {
	return c.get(kind, id.String(), func(b []byte) bool { return sha256.Sum256(b) == id })
}

// put stores an object (written aside, then renamed: a reader never sees
// half of one). Failures are ignored: the cache only saves requests.
func (c *Cache) put(kind, name string, b []byte) {
	_ = c.putStream(kind, name, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// remove drops one object.
func (c *Cache) remove(kind, name string) {
	if c != nil && validCacheName(name) {
		os.Remove(c.path(kind, name))
		c.fds.forget(c.path(kind, name))
	}
}

// keep removes the cached objects of kind that live does not name.
func (c *Cache) keep(kind string, live func(name string) bool) {
	if c == nil {
		return
	}
	ents, err := os.ReadDir(filepath.Join(c.dir, kind))
	if err != nil {
		return
	}
	for _, e := range ents {
		if !live(e.Name()) {
			os.Remove(filepath.Join(c.dir, kind, e.Name()))
			c.fds.forget(filepath.Join(c.dir, kind, e.Name()))
		}
	}
}
