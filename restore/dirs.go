package restore

import (
	"container/list"
	"os"
	"path"
	"sync"
)

// dirCache holds open directory descriptors, each obtained through the
// component's os.Root (so it cannot lie outside the target). Files are then
// created and changed with *at system calls relative to them, resolving
// only the final name (always with O_NOFOLLOW or AT_SYMLINK_NOFOLLOW): one
// system call per operation instead of a walk of the whole path.
type dirCache struct {
	mu  sync.Mutex
	m   map[dirKey]*dirFD
	lru *list.List // unreferenced entries, oldest first
	max int
}

type dirKey struct {
	ct  *compTarget
	dir string
}

type dirFD struct {
	key  dirKey
	f    *os.File
	refs int
	elem *list.Element
}

func newDirCache(max int) *dirCache {
	return &dirCache{m: map[dirKey]*dirFD{}, lru: list.New(), max: max}
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
	return int(d.f.Fd()), name, func() { c.release(d) }, nil
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
	f, err := k.ct.root.Open(k.dir)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.m[k]; ok { // opened meanwhile by another goroutine
		f.Close()
		if d.elem != nil {
			c.lru.Remove(d.elem)
			d.elem = nil
		}
		d.refs++
		return d, nil
	}
	d := &dirFD{key: k, f: f, refs: 1}
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
		old.f.Close()
		delete(c.m, old.key)
	}
}

func (c *dirCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, d := range c.m {
		d.f.Close()
		delete(c.m, k)
	}
	c.lru.Init()
}
