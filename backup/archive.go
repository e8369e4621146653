package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"backupd/repository"
	"backupd/sources"
)

// A component's tree mirrors the absolute source paths from "/": the
// component root holds "usr", which holds "local", which holds "go". Parents
// of source paths carry their real metadata but only the entries on the way
// to a source path.
type virt struct {
	children map[string]*virt
	full     bool // take the whole directory
}

func buildVirt(paths []string) *virt {
	root := &virt{children: map[string]*virt{}}
	for _, p := range paths {
		p = filepath.Clean(p)
		if p == "/" {
			return &virt{full: true}
		}
		v := root
		for _, el := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			if v.full {
				break
			}
			c := v.children[el]
			if c == nil {
				c = &virt{children: map[string]*virt{}}
				v.children[el] = c
			}
			v = c
		}
		v.full, v.children = true, nil
	}
	return root
}

// dirState collects one directory's nodes until every child is done, then
// saves the tree blob and reports its id upwards. Walking never waits for
// file content: the last finisher (walker or file worker) saves the tree.
type dirState struct {
	nodes   []*repository.Node
	skip    map[int]bool // nodes dropped after a read failure
	mu      sync.Mutex
	pending atomic.Int64
	onDone  func(repository.ID, error)
	cc      *componentRun
	tree    *repository.Tree // the saved tree (kept for the root: streams are added to it)
	// the parent backup's tree of this directory and its id: the walk
	// compares entries with it, and when every node is the same that
	// tree is reused, not encoded again
	old   *repository.Tree
	oldID repository.ID
}

func (d *dirState) release() {
	if d.pending.Add(-1) != 0 {
		return
	}
	d.mu.Lock()
	t := &repository.Tree{Nodes: make([]*repository.Node, 0, len(d.nodes))}
	for i, n := range d.nodes {
		if !d.skip[i] {
			t.Nodes = append(t.Nodes, n)
		}
	}
	d.tree = t
	d.mu.Unlock()
	var id repository.ID
	var err error
	if d.old != nil && repository.SameNodes(t.Nodes, d.old.Nodes) && d.cc.a.repo.ReuseTree(d.oldID) {
		id = d.oldID
		if treeReusedHook != nil {
			treeReusedHook()
		}
	} else {
		id, err = d.cc.a.repo.SaveTree(d.cc.ctx, t)
	}
	d.cc.a.dirsDone.Add(1)
	d.onDone(id, err)
}

type fileJob struct {
	abs  string
	node *repository.Node
	dir  *dirState
	idx  int
	// opened by the walker, relative to its directory's descriptor, with
	// read-ahead requested; or why it could not be (the readers cannot
	// open it again by path: that would follow a symlink swapped in for a
	// directory above it)
	f   *srcFile
	err error
}

// componentRun is the state of backing up one component.
type componentRun struct {
	a       *archiver
	ctx     context.Context
	cancel  context.CancelCauseFunc
	matcher *sources.Matcher
	jobs    chan fileJob

	mu       sync.Mutex
	warnings []string
	stats    repository.Stats

	// Subdirectories are walked by up to cap(walkers) more goroutines
	// when one is free (each walk is sequential, so one disk read at a
	// time; on a warm cache the listing and stat calls alone fill a core).
	walkers chan struct{}
	walks   sync.WaitGroup
}

func (cc *componentRun) warn(format string, args ...any) {
	cc.a.warnings.Add(1)
	cc.mu.Lock()
	cc.stats.Warnings++
	if len(cc.warnings) < 1000 {
		cc.warnings = append(cc.warnings, fmt.Sprintf(format, args...))
	} else if len(cc.warnings) == 1000 {
		cc.warnings = append(cc.warnings, "further warnings omitted; see the count in stats")
	}
	cc.mu.Unlock()
}

func (cc *componentRun) fail(err error) { cc.cancel(&fatalError{err}) }

func (a *archiver) component1(ctx context.Context, c Component, parentTree *repository.ID) (repository.ComponentManifest, error) {
	cm := repository.ComponentManifest{Name: c.Name, Paths: c.Paths, Include: c.Include, Exclude: c.Exclude}
	matcher, err := sources.NewMatcher(c.Include, c.Exclude)
	if err != nil {
		return cm, fmt.Errorf("component %s: %w", c.Name, err)
	}
	for _, p := range c.Paths {
		if _, err := os.Lstat(p); err != nil {
			return cm, fmt.Errorf("component %s: source %s: %w", c.Name, p, unwrapPathError(err))
		}
	}
	// The walk starts from a descriptor of "/" and opens every element
	// below it, the configured source paths' own elements included, from
	// its parent's descriptor with O_NOFOLLOW: a source path that is (or
	// lies below) a symlink is recorded as that symlink, not followed (as
	// the lstat-based walk always did), and a directory swapped for a
	// symlink while the walk runs is never entered.
	rootFD, err := openat(unix.AT_FDCWD, "/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return cm, fmt.Errorf("component %s: opening /: %w", c.Name, err)
	}
	defer unix.Close(rootFD)
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cc := &componentRun{a: a, ctx: cctx, cancel: cancel, matcher: matcher, jobs: make(chan fileJob, 64),
		walkers: make(chan struct{}, extraWalkers)}
	var wg sync.WaitGroup
	for i := 0; i < a.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			small := make([]byte, repository.MinChunkSize+1)
			for j := range cc.jobs {
				cc.saveFile(small, j)
			}
		}()
	}
	var rootID repository.ID
	var rootErr error
	rootDone := make(chan struct{})
	root := &dirState{cc: cc, onDone: func(id repository.ID, err error) {
		rootID, rootErr = id, err
		close(rootDone)
	}}
	root.pending.Store(1)
	pctx, stopPrefetch := context.WithCancel(cctx)
	go prefetchMetadata(pctx, c.Paths, matcher, prefetchWorkers)
	if parentTree != nil {
		cc.loadParentTree(root, *parentTree)
	}
	if len(c.Paths) > 0 {
		cc.walk("/", rootFD, buildVirt(c.Paths), root, make([]byte, dirBufSize))
	}
	cc.walks.Wait()
	stopPrefetch()
	root.release()
	close(cc.jobs)
	wg.Wait()
	select {
	case <-rootDone:
	case <-cctx.Done():
	}
	if cause := context.Cause(cctx); cause != nil && cctx.Err() != nil {
		var fe *fatalError
		if errors.As(cause, &fe) {
			return cm, fe
		}
		return cm, cause
	}
	if rootErr != nil {
		return cm, &fatalError{rootErr}
	}
	if len(c.Streams) > 0 {
		id, err := cc.addStreams(rootID, root.tree, c.Streams)
		var fe *fatalError
		if errors.As(err, &fe) {
			return cm, fe
		}
		if err != nil { // a dump that failed: this component fails, the others go on
			return cm, fmt.Errorf("component %s: %w", c.Name, err)
		}
		rootID = id
	}
	cm.Tree = rootID
	cm.Stats = cc.stats
	cm.Warnings = cc.warnings
	return cm, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loadParentTree gives d the parent backup's tree of its directory, id.
func (cc *componentRun) loadParentTree(d *dirState, id repository.ID) {
	t, err := cc.a.repo.LoadTree(cc.ctx, id)
	if err != nil {
		// The parent is an optimisation: without it, files are read again.
		cc.warn("parent tree %s unreadable, reading files again: %v", id.Short(), err)
		return
	}
	d.old, d.oldID = t, id
}

func findNode(t *repository.Tree, name string) *repository.Node {
	if t == nil {
		return nil
	}
	i := sort.Search(len(t.Nodes), func(i int) bool { return t.Nodes[i].Name >= name })
	if i < len(t.Nodes) && t.Nodes[i].Name == name {
		return t.Nodes[i]
	}
	return nil
}

// walk lists dir (absolute; open for reading at dfd) into d. v limits the
// entries taken (nil or full: all). d.old is the parent backup's tree for
// the same directory, if any. buf is the walking goroutine's listing buffer.
//
// Every child is looked at and opened relative to dfd, never by path, and
// a subdirectory is entered only through openat(O_NOFOLLOW|O_DIRECTORY)
// on dfd that yields the inode the fstatat reported: a directory swapped
// for a symlink (-> /root) after the listing puts nothing of the link's
// target into the backup. The walk is sequential and depth-first, so it
// holds one descriptor per level of the tree, each closed when its
// subtree is done.
func (cc *componentRun) walk(dir string, dfd int, v *virt, d *dirState, buf []byte) {
	var names []string
	if v != nil && !v.full {
		for n := range v.children {
			names = append(names, n)
		}
		sort.Strings(names)
	} else {
		var err error
		names, err = sources.ReadNames(dfd, buf)
		if err != nil {
			cc.warn("%s: cannot list directory: %v", dir, err)
			return
		}
		sort.Strings(names)
	}
	for _, name := range names {
		if cc.ctx.Err() != nil {
			return
		}
		abs := filepath.Join(dir, name)
		var child *virt
		if v != nil && !v.full {
			child = v.children[name]
		}
		fi, err := sources.LstatAt(dfd, name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && child == nil {
				continue // vanished since the listing
			}
			cc.warn("%s: %v", abs, unwrapPathError(err))
			continue
		}
		partial := child != nil && !child.full
		if !partial && cc.matcher.Excluded(abs) {
			continue
		}
		if !fi.IsDir() && !partial && !cc.matcher.Included(abs) {
			continue
		}
		node, err := sources.NodeAt(dfd, name, fi)
		if err != nil {
			cc.warn("%s: %v", abs, unwrapPathError(err))
			continue
		}
		subFD := -1
		if testHook != nil {
			testHook(string(node.Type), abs)
		}
		if node.Type == repository.NodeDir {
			// opened before the node is recorded: a directory that is not
			// the one just stat'ed is left out whole
			subFD, err = openDirAt(dfd, name, fi)
			switch {
			case err == nil:
			case errors.Is(err, errSwapped):
				cc.warn("%s: %v; not backed up", abs, err)
				continue
			case errors.Is(err, fs.ErrNotExist) && child == nil:
				continue // vanished since the listing
			default:
				// as before: an empty directory, and a warning
				cc.warn("%s: cannot list directory: %v", abs, err)
			}
		}
		old := findNode(d.old, name)
		d.mu.Lock()
		idx := len(d.nodes)
		d.nodes = append(d.nodes, node)
		d.mu.Unlock()
		switch node.Type {
		case repository.NodeDir:
			sub := &dirState{cc: cc}
			sub.pending.Store(1)
			d.pending.Add(1)
			sub.onDone = func(id repository.ID, err error) {
				if err != nil {
					cc.fail(err)
				}
				node.Subtree = &id
				cc.mu.Lock()
				cc.stats.Dirs++
				cc.mu.Unlock()
				d.release()
			}
			walkSub := func(buf []byte) {
				if subFD >= 0 {
					if old != nil && old.Type == repository.NodeDir && old.Subtree != nil {
						cc.loadParentTree(sub, *old.Subtree)
					}
					cc.walk(abs, subFD, child, sub, buf)
					unix.Close(subFD)
				}
				sub.release()
			}
			select {
			case cc.walkers <- struct{}{}:
				cc.walks.Add(1)
				go func() {
					defer cc.walks.Done()
					walkSub(make([]byte, dirBufSize))
					<-cc.walkers
				}()
			default:
				walkSub(buf)
			}
		case repository.NodeFile:
			cc.mu.Lock()
			cc.stats.Files++
			cc.stats.Bytes += int64(node.Size)
			cc.mu.Unlock()
			// reused unread only while every chunk is still stored and not
			// condemned (Reuse records their packs for the commit's check)
			if unchanged(old, node) && cc.a.repo.Reuse(old.Content) {
				node.Content = old.Content
				cc.a.filesDone.Add(1)
				cc.a.bytesDone.Add(int64(node.Size))
				cc.mu.Lock()
				cc.stats.FilesUnread++
				cc.mu.Unlock()
				continue
			}
			d.pending.Add(1)
			job := fileJob{abs: abs, node: node, dir: d, idx: idx}
			job.f, job.err = openAhead(dfd, name, node)
			select {
			case cc.jobs <- job:
			case <-cc.ctx.Done():
				if job.f != nil {
					job.f.Close()
				}
				d.pending.Add(-1)
				return
			}
		}
	}
}

// extraWalkers: goroutines that may walk subdirectories beside the first.
const extraWalkers = 3

const dirBufSize = 32 << 10

// treeReusedHook, when set by a test, runs for each directory whose
// parent tree is reused.
var treeReusedHook func()

// testHook, when set by a test, runs between an entry's fstatat and its
// open (to race the walk at exactly that point).
var testHook func(nodeType, abs string)

var errReplacedFile = errors.New("replaced by another file since it was listed")

// errSwapped: what is at a name is no longer what the listing saw there.
var errSwapped = errors.New("replaced since it was listed")

// openDirAt opens the directory name of the directory open at dfd, which
// fi (from LstatAt) described: O_NOFOLLOW|O_DIRECTORY refuse a symlink or
// file swapped in, and the inode check another directory renamed there.
func openDirAt(dfd int, name string, fi fs.FileInfo) (int, error) {
	fd, err := openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err == unix.ELOOP || err == unix.ENOTDIR {
		return -1, errSwapped
	}
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if want, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Ino != want.Ino || uint64(st.Dev) != uint64(want.Dev)) {
		unix.Close(fd)
		return -1, errSwapped
	}
	return fd, nil
}

// openat retries on EINTR (the runtime's preemption signals can interrupt
// an open on a slow file system).
func openat(dfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dfd, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// unchanged is the incremental rule: same type, size, mtime, ctime and
// inode as in the parent, whose content list is then reused unread.
func unchanged(old, n *repository.Node) bool {
	return old != nil && old.Type == repository.NodeFile && old.Size == n.Size &&
		old.ModTime == n.ModTime && old.ChangeTime == n.ChangeTime && old.Inode == n.Inode &&
		(len(old.Content) > 0 || old.Size == 0)
}

// chunkSource yields a file's chunks.
type chunkSource interface{ Next() ([]byte, error) }

// oneChunk is a whole small file: one chunk, no chunker needed.
type oneChunk struct {
	b    []byte
	done bool
}

func (o *oneChunk) Next() ([]byte, error) {
	if o.done || len(o.b) == 0 {
		return nil, io.EOF
	}
	o.done = true
	return o.b, nil
}

// saveFile reads, chunks and stores one file's content. Files up to the
// minimum chunk size (most files) are read whole into the worker's small
// buffer; only larger ones take one of the few chunkers, whose buffers are
// large. So many workers can wait on a cold disk at once without the
// memory of as many chunkers.
func (cc *componentRun) saveFile(small []byte, j fileJob) {
	defer j.dir.release()
	if cc.ctx.Err() != nil {
		if j.f != nil {
			j.f.Close()
		}
		return
	}
	drop := func(format string, args ...any) {
		cc.warn(format, args...)
		j.dir.mu.Lock()
		if j.dir.skip == nil {
			j.dir.skip = map[int]bool{}
		}
		j.dir.skip[j.idx] = true
		j.dir.mu.Unlock()
		cc.mu.Lock()
		cc.stats.Files--
		cc.stats.Bytes -= int64(j.node.Size)
		cc.stats.ErrorsSkipped++
		cc.mu.Unlock()
	}
	f, err := j.f, j.err
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			drop("%s: vanished before it was read", j.abs)
			return
		}
		drop("%s: not backed up: %v", j.abs, unwrapPathError(err))
		return
	}
	defer f.Close()
	// Read what the file holds now, not what is appended while it is
	// read: a log written faster than it is read would otherwise keep
	// the backup reading (and storing) without end.
	var at unix.Stat_t
	if err := unix.Fstat(f.fd, &at); err != nil {
		drop("%s: not backed up: %v", j.abs, err)
		return
	}
	r := io.LimitReader(f, at.Size)
	var src chunkSource
	if j.node.Size < repository.MinChunkSize {
		k, err := io.ReadFull(r, small)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			src = &oneChunk{b: small[:k]}
		case err != nil:
			drop("%s: not backed up: read failed: %v", j.abs, unwrapPathError(err))
			return
		default: // it grew past the small buffer since it was listed
			ch := cc.a.chunker()
			defer cc.a.putChunker(ch)
			ch.Reset(io.MultiReader(bytes.NewReader(small[:k]), r))
			src = ch
		}
	} else {
		ch := cc.a.chunker()
		defer cc.a.putChunker(ch)
		ch.Reset(r)
		src = ch
	}
	var content []repository.ID
	var n int64
	for {
		chunk, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			drop("%s: not backed up: read failed after %d bytes: %v", j.abs, n, unwrapPathError(err))
			return
		}
		id, _, err := cc.a.repo.SaveBlob(cc.ctx, repository.DataBlob, chunk)
		if err != nil {
			if cc.ctx.Err() == nil {
				cc.fail(err)
			}
			return
		}
		content = append(content, id)
		n += int64(len(chunk))
		cc.a.bytesDone.Add(int64(len(chunk)))
		cc.a.bytesRead.Add(int64(len(chunk)))
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err == nil && (st.Mtim.Nano() != j.node.ModTime || st.Size != n) {
		cc.warn("%s: changed while it was read; the backup holds the %d bytes read", j.abs, n)
	}
	cc.mu.Lock()
	cc.stats.BytesRead += n
	cc.stats.Bytes += n - int64(j.node.Size)
	cc.mu.Unlock()
	j.node.Content = content
	j.node.Size = uint64(n)
	cc.a.filesDone.Add(1)
}

// srcFile is a source file open for reading: a bare descriptor (an
// os.File would cost a poller registration attempt per file, and a
// finalizer).
type srcFile struct{ fd int }

func (f *srcFile) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(f.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &fs.PathError{Op: "read", Err: err}
		}
		if n == 0 && len(b) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *srcFile) Close() error { return unix.Close(f.fd) }

// openFile opens the regular file name, listed in the directory open at
// dfd as node. It never follows a symlink or blocks on a FIFO put there
// since the listing (O_NOFOLLOW, O_NONBLOCK, which does not affect
// regular files), and refuses anything that is no longer the same regular
// file (type, inode and device as listed).
func openFile(dfd int, name string, node *repository.Node) (*srcFile, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	fd, err := openat(dfd, name, flags|unix.O_NOATIME)
	if err == unix.EPERM { // O_NOATIME needs ownership
		fd, err = openat(dfd, name, flags)
	}
	if err == unix.ELOOP { // O_NOFOLLOW met a symlink
		return nil, errReplacedFile
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || (node.Inode != 0 && (st.Ino != node.Inode || uint64(st.Dev) != node.DeviceID)) {
		unix.Close(fd)
		return nil, errReplacedFile
	}
	return &srcFile{fd: fd}, nil
}

// openAhead opens a file as the walker hands it to the readers and asks
// the kernel to start reading it: the job queue is a bounded window, so
// up to that many files are read ahead while the readers compress. On a
// cold cache this overlaps disk and CPU; on a warm one it costs a call.
func openAhead(dfd int, name string, node *repository.Node) (*srcFile, error) {
	f, err := openFile(dfd, name, node)
	if err != nil {
		return nil, err
	}
	if node.Size > 0 {
		unix.Fadvise(f.fd, 0, int64(node.Size), unix.FADV_WILLNEED)
	}
	return f, nil
}

// addStreams stores each stream (a database dump) as a file under the
// root's @dumps directory, chunked as it is read. A stream that fails
// fails the component, unless it is optional (a warning then).
func (cc *componentRun) addStreams(rootID repository.ID, root *repository.Tree, streams []sources.Stream) (repository.ID, error) {
	repo := cc.a.repo
	if root == nil {
		root = &repository.Tree{}
	}
	dumps := &repository.Tree{}
	for _, st := range streams {
		n, err := cc.saveStream(st)
		if err != nil {
			var fe *fatalError
			if st.Optional && cc.ctx.Err() == nil && !errors.As(err, &fe) {
				cc.warn("%s/%s: not backed up: %v", sources.DumpsDir, st.Name, err)
				continue
			}
			return rootID, fmt.Errorf("%s: %w", st.Name, err)
		}
		dumps.Nodes = append(dumps.Nodes, n)
	}
	sort.Slice(dumps.Nodes, func(i, j int) bool { return dumps.Nodes[i].Name < dumps.Nodes[j].Name })
	did, err := repo.SaveTree(cc.ctx, dumps)
	if err != nil {
		return rootID, &fatalError{err}
	}
	now := time.Now().UnixNano()
	kept := root.Nodes[:0:0]
	for _, n := range root.Nodes {
		if n.Name != sources.DumpsDir {
			kept = append(kept, n)
		}
	}
	kept = append(kept, &repository.Node{Name: sources.DumpsDir, Type: repository.NodeDir, Mode: fs.ModeDir | 0o700,
		ModTime: now, Subtree: &did})
	sort.Slice(kept, func(i, j int) bool { return kept[i].Name < kept[j].Name })
	root.Nodes = kept
	cc.mu.Lock()
	cc.stats.Dirs++
	cc.mu.Unlock()
	id, err := repo.SaveTree(cc.ctx, root)
	if err != nil {
		return rootID, &fatalError{err}
	}
	return id, nil
}

func (cc *componentRun) saveStream(st sources.Stream) (*repository.Node, error) {
	r, err := st.Open(cc.ctx)
	if err != nil {
		return nil, err
	}
	ch := cc.a.chunker()
	defer cc.a.putChunker(ch)
	ch.Reset(r)
	n := &repository.Node{Name: st.Name, Type: repository.NodeFile, Mode: 0o600, ModTime: time.Now().UnixNano()}
	var size int64
	for {
		chunk, err := ch.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			r.Close()
			return nil, err
		}
		id, _, err := cc.a.repo.SaveBlob(cc.ctx, repository.DataBlob, chunk)
		if err != nil {
			r.Close()
			return nil, &fatalError{err}
		}
		n.Content = append(n.Content, id)
		size += int64(len(chunk))
		cc.a.bytesDone.Add(int64(len(chunk)))
		cc.a.bytesRead.Add(int64(len(chunk)))
	}
	// the program's exit decides: a dump cut short is an error, not a file
	if err := r.Close(); err != nil {
		return nil, err
	}
	n.Size = uint64(size)
	cc.mu.Lock()
	cc.stats.Files++
	cc.stats.Bytes += size
	cc.stats.BytesRead += size
	cc.mu.Unlock()
	cc.a.filesDone.Add(1)
	return n, nil
}
