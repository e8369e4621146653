package restore

import (
	"container/list"
	"fmt"
	"path"
	"sync"

	"golang.org/x/sys/unix"
)

// dirCache holds open directory descriptors (O_PATH), each opened below
// the component's target without following a symlink in any element (see
// beneath). Files are then created and changed with *at system calls
// relative to them, resolving only the final name (always with O_NOFOLLOW
// or AT_SYMLINK_NOFOLLOW): one system call per operation instead of a walk
// of the whole path. A descriptor keeps pointing at the directory it was
// opened on, whatever is renamed or swapped in under its name later.
type dirCache struct {
	mu  sync.Mutex
	m   map[dirKey]*dirFD
	lru *list.List // unreferenced entries, oldest first
	max int
	// ids: the restore's directory entries, whose inode (recorded when
	// they were made or checked) a newly opened descriptor must match
	ids map[dirKey]*entry
}

type dirKey struct {
	ct  *compTarget
	dir string
}

type dirFD struct {
	key  dirKey
	fd   int
	refs int
	elem *list.Element
}

func newDirCache(max int, dirs []*entry) *dirCache {
	c := &dirCache{m: map[dirKey]*dirFD{}, lru: list.New(), max: max, ids: map[dirKey]*entry{}}
	for _, d := range dirs {
		c.ids[dirKey{d.ct, d.rel}] = d
	}
	return c
}

// at returns a descriptor of e's parent directory and e's base name; call
// done when finished with the descriptor.
func (c *dirCache) at(e *entry) (fd int, name string, done func(), err error) {
	dir, name := path.Split(e.rel)
	dir = path.Clean(dir)
	if dir == "" {
		dir = "."
	}
	d, err := c.acquire(dirKey{e.ct, dir})
	if err != nil {
		return -1, "", nil, err
	}
	return d.fd, name, func() { c.release(d) }, nil
}

// open opens a fresh descriptor of the directory k with flags; when the
// restore recorded the directory's inode, the descriptor must be of it (a
// directory renamed in its place is not the restore's to write into).
func (c *dirCache) open(k dirKey, flags int) (int, error) {
	fd, err := k.ct.root.openDir(k.dir, flags)
	if err != nil {
		return -1, err
	}
	if d := c.ids[k]; d != nil && d.id.known() {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		if idOf(&st) != d.id {
			unix.Close(fd)
			return -1, fmt.Errorf("%s: %w", k.dir, errReplaced)
		}
	}
	return fd, nil
}

func (c *dirCache) acquire(k dirKey) (*dirFD, error) {
	c.mu.Lock()
	if d, ok := c.m[k]; ok {
		if d.elem != nil {
			c.lru.Remove(d.elem)
			d.elem = nil
		}
		d.refs++
		c.mu.Unlock()
		return d, nil
	}
	c.mu.Unlock()
	fd, err := c.open(k, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.m[k]; ok { // opened meanwhile by another goroutine
		unix.Close(fd)
		if d.elem != nil {
			c.lru.Remove(d.elem)
			d.elem = nil
		}
		d.refs++
		return d, nil
	}
	d := &dirFD{key: k, fd: fd, refs: 1}
	c.m[k] = d
	return d, nil
}

func (c *dirCache) release(d *dirFD) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d.refs--
	if d.refs > 0 {
		return
	}
	d.elem = c.lru.PushBack(d)
	for len(c.m) > c.max && c.lru.Len() > 0 {
		old := c.lru.Remove(c.lru.Front()).(*dirFD)
		unix.Close(old.fd)
		delete(c.m, old.key)
	}
}

func (c *dirCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, d := range c.m {
		unix.Close(d.fd)
		delete(c.m, k)
	}
	c.lru.Init()
}
