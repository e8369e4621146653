package restore

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"backupd/repository"
)

// verifyTree re-reads a restored tree and checks every file's chunks, and
// the presence and type of every directory and symlink, against the
// manifest. It writes nothing, and like the restore it never follows a
// symlink in any element of a path: a verify of an original-location
// restore must not read what a swapped-in symlink points at.
func (r *restorer) verifyTree(ctx context.Context) (*Result, error) {
	p := r.plan
	stop := r.reportProgress()
	defer stop()
	var mu sync.Mutex
	var failed []string
	fail := func(e *entry, err error) {
		mu.Lock()
		failed = append(failed, fmt.Sprintf("%s/%s (%v)", e.ct.name, e.rel, err))
		mu.Unlock()
	}
	for _, d := range p.dirs {
		if d.rel == "." || d.rel == "" {
			continue
		}
		var st unix.Stat_t
		err := r.atParent(d, func(fd int, name string) error {
			return unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		})
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			err = fmt.Errorf("not a directory")
		}
		if err != nil {
			fail(d, err)
		}
	}
	verifySymlink := func(e *entry) {
		var target string
		err := r.atParent(e, func(fd int, name string) error {
			buf := make([]byte, 4096)
			n, err := unix.Readlinkat(fd, name, buf)
			target = string(buf[:max(n, 0)])
			return err
		})
		if err == nil && target != e.node.LinkTarget {
			err = fmt.Errorf("symlink points to %q, not %q", target, e.node.LinkTarget)
		}
		if err != nil {
			fail(e, err)
		}
	}
	work := make(chan *entry)
	var wg sync.WaitGroup
	for i := 0; i < r.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for e := range work {
				need := 0
				for _, l := range e.locs {
					need = max(need, int(l.RawLength))
				}
				if cap(buf) < need {
					buf = make([]byte, need)
				}
				fd, err := r.openOwn(e, unix.O_RDONLY)
				if err == nil {
					err = r.verifyFile(e, fd, buf[:cap(buf)], verifyBlobs{})
					unix.Close(fd)
				}
				if err != nil {
					fail(e, err)
					continue
				}
				atomic.AddInt64(&r.res.Verified, 1)
				r.bytesDone.Add(int64(e.node.Size))
				r.filesDone.Add(1)
			}
		}()
	}
	err := r.again(func(e *entry) error {
		switch {
		case e.linkSrc != nil:
		case e.node.Type == repository.NodeFile:
			work <- e
		case e.node.Type == repository.NodeSymlink:
			verifySymlink(e)
		}
		return ctx.Err()
	})
	close(work)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	r.res.Files, r.res.Dirs = p.files, int64(len(p.dirs))
	r.res.Bytes = r.bytesDone.Load()
	if len(failed) > 0 {
		sort.Strings(failed)
		return r.res, &FileError{Files: failed, Err: repository.ErrCorrupt}
	}
	return r.res, nil
}
