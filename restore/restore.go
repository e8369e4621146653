// Package restore writes a backup (all of it, chosen components or chosen
// paths) into a target directory, never outside it, verifying every file
// against the manifest's chunk hashes; and exports a backup as a tar stream.
package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"backupd/repository"
)

// Options select what to restore and where.
type Options struct {
	// Target directory; each component goes to Target/<component>/ and
	// mirrors its absolute source paths below that.
	Target string
	// ComponentTargets overrides the directory of a component (e.g. "/" to
	// restore to the original location).
	ComponentTargets map[string]string
	Components       []string // empty: all
	// Paths restricts the restore to these absolute source paths (a
	// directory brings its whole subtree).
	Paths []string
	// Overwrite allows a restore into a non-empty directory, replacing
	// what is in the way.
	Overwrite bool
	// NoVerify skips re-reading restored files (blobs are always verified
	// before they are written).
	NoVerify bool
	// VerifyOnly writes nothing: it re-reads an earlier restore of the
	// same selection and checks it against the manifest.
	VerifyOnly bool
	// SkipTop leaves out these entries at the top of every component's
	// tree (the @dumps directory, when dumps are loaded into databases
	// instead of written as files).
	SkipTop []string
	// Mirror removes, inside the component's source paths, entries the
	// backup does not hold (a rollback returns exactly what was there).
	Mirror   bool
	Workers  int
	Progress func(Progress)
}

// Progress of a running restore.
type Progress struct {
	FilesTotal, FilesDone int64
	BytesTotal, BytesDone int64
	Elapsed               time.Duration
}

// Result summarises a finished restore.
type Result struct {
	Files, Dirs, Links, Bytes int64
	Verified                  int64
	Warnings                  []string
	Removed                   []string // Mirror: what was removed
}

// FileError lists files that could not be restored correctly; they have
// been removed rather than left with wrong content.
type FileError struct {
	Files []string
	Err   error
}

func (e *FileError) Error() string {
	list := e.Files
	more := ""
	if len(list) > 20 {
		list, more = list[:20], fmt.Sprintf(" and %d more", len(e.Files)-20)
	}
	return fmt.Sprintf("%d file(s) could not be restored (%v): %s%s", len(e.Files), e.Err, strings.Join(list, ", "), more)
}
func (e *FileError) Unwrap() error { return e.Err }

// ErrInvalidSelection: the request names a component, path or target that
// cannot be restored (a user error, never worth retrying).
var ErrInvalidSelection = errors.New("invalid restore selection")

// ErrTargetNotEmpty: restoring into a non-empty directory needs Overwrite.
var ErrTargetNotEmpty = errors.New("target directory is not empty (use overwrite to restore into it)")

type compTarget struct {
	name string
	dir  string
	root *os.Root
}

type entry struct {
	ct   *compTarget
	rel  string
	node *repository.Node
	// files
	locs   []repository.BlobLocation
	linkTo string // hard link to this rel (same component)
	failed atomic.Bool

	created   sync.Once // files are created by the first worker that writes one
	createErr error
	verifyErr error
}

type plan struct {
	dirs, files, others, links []*entry
	bytes                      int64
	skipTop                    map[string]bool
}

// Run restores m according to opts.
func Run(ctx context.Context, repo *repository.Repository, m *repository.Manifest, opts Options) (*Result, error) {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0) * 2
	}
	comps, err := selectComponents(m, opts.Components)
	if err != nil {
		return nil, err
	}
	if err := repo.LoadIndex(ctx); err != nil {
		return nil, err
	}
	// Plan everything (all trees read, every blob located) before the
	// first write, so a missing key, blob or path fails with nothing written.
	var targets []*compTarget
	for _, c := range comps {
		dir := filepath.Join(opts.Target, c.Name)
		if t, ok := opts.ComponentTargets[c.Name]; ok {
			dir = t
		}
		if dir == "" {
			return nil, fmt.Errorf("%w: no target directory given", ErrInvalidSelection)
		}
		targets = append(targets, &compTarget{name: c.Name, dir: dir})
	}
	p := &plan{skipTop: map[string]bool{}}
	for _, n := range opts.SkipTop {
		p.skipTop[n] = true
	}
	inodes := map[[2]uint64]*entry{}
	for i, c := range comps {
		if err := p.addComponent(ctx, repo, targets[i], c, opts.Paths, inodes); err != nil {
			return nil, err
		}
	}
	for _, t := range targets {
		if opts.VerifyOnly {
			root, err := os.OpenRoot(t.dir)
			if err != nil {
				return nil, fmt.Errorf("verify restored %s: %w", t.name, err)
			}
			t.root = root
		} else if err := prepareTarget(t, opts.Overwrite); err != nil {
			return nil, err
		}
		defer t.root.Close()
	}
	res := &Result{}
	r := &restorer{repo: repo, opts: opts, plan: p, res: res, start: time.Now()}
	if opts.VerifyOnly {
		return r.verifyTree(ctx)
	}
	res, err = r.run(ctx)
	if err == nil && opts.Mirror && len(opts.Paths) == 0 {
		removed, merr := r.mirror(comps, targets)
		res.Removed = removed
		if merr != nil {
			return res, merr
		}
	}
	return res, err
}

func selectComponents(m *repository.Manifest, names []string) ([]repository.ComponentManifest, error) {
	var out []repository.ComponentManifest
	if len(names) == 0 {
		for _, c := range m.Components {
			if c.Error == "" {
				out = append(out, c)
			}
		}
		return out, nil
	}
	for _, n := range names {
		c := m.Component(n)
		if c == nil {
			return nil, fmt.Errorf("%w: backup %s has no component %q (it has: %s)", ErrInvalidSelection, m.ID, n, strings.Join(m.ComponentNames(), ", "))
		}
		if c.Error != "" {
			return nil, fmt.Errorf("%w: component %q failed in backup %s and holds nothing: %s", ErrInvalidSelection, n, m.ID, c.Error)
		}
		out = append(out, *c)
	}
	return out, nil
}

// CheckTargets reports ErrTargetNotEmpty when a selected component's
// target directory holds anything and opts do not overwrite; a missing
// directory is empty. It writes nothing.
func CheckTargets(m *repository.Manifest, opts Options) error {
	if opts.Overwrite {
		return nil
	}
	comps, err := selectComponents(m, opts.Components)
	if err != nil {
		return err
	}
	for _, c := range comps {
		dir := filepath.Join(opts.Target, c.Name)
		if t, ok := opts.ComponentTargets[c.Name]; ok {
			dir = t
		}
		f, err := os.Open(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: target %s: %v", ErrInvalidSelection, dir, err)
		}
		names, _ := f.Readdirnames(1)
		f.Close()
		if len(names) > 0 {
			return fmt.Errorf("%s: %w", dir, ErrTargetNotEmpty)
		}
	}
	return nil
}

// prepareTarget creates the component's directory and opens it as a root;
// it refuses a non-empty one unless overwriting.
func prepareTarget(t *compTarget, overwrite bool) error {
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return fmt.Errorf("creating target %s: %w", t.dir, err)
	}
	// the component's directory itself must not be a symlink planted to
	// send the restore elsewhere (everything below it is opened through
	// the root, which refuses to leave it)
	if fi, err := os.Lstat(t.dir); err != nil {
		return err
	} else if fi.Mode()&os.ModeSymlink != 0 && filepath.Clean(t.dir) != "/" {
		return fmt.Errorf("%w: target %s is a symbolic link", ErrInvalidSelection, t.dir)
	}
	if !overwrite {
		f, err := os.Open(t.dir)
		if err != nil {
			return err
		}
		names, _ := f.Readdirnames(1)
		f.Close()
		if len(names) > 0 {
			return fmt.Errorf("%s: %w", t.dir, ErrTargetNotEmpty)
		}
	}
	root, err := os.OpenRoot(t.dir)
	if err != nil {
		return err
	}
	t.root = root
	return nil
}

// cleanSelectPath turns a user's path into tree elements, refusing
// anything that could climb out.
func cleanSelectPath(p string) ([]string, error) {
	if strings.ContainsRune(p, 0) {
		return nil, fmt.Errorf("%w: path %q contains a NUL byte", ErrInvalidSelection, p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return nil, fmt.Errorf("%w: path %q contains '..'", ErrInvalidSelection, p)
		}
	}
	c := path.Clean("/" + p)
	if c == "/" {
		return nil, nil
	}
	return strings.Split(c[1:], "/"), nil
}

func (p *plan) addComponent(ctx context.Context, repo *repository.Repository, t *compTarget, c repository.ComponentManifest, paths []string, inodes map[[2]uint64]*entry) error {
	root, err := repo.LoadTree(ctx, c.Tree)
	if err != nil {
		return fmt.Errorf("component %s: %w", c.Name, err)
	}
	if len(p.skipTop) > 0 {
		kept := &repository.Tree{}
		for _, n := range root.Nodes {
			if !p.skipTop[n.Name] {
				kept.Nodes = append(kept.Nodes, n)
			}
		}
		root = kept
	}
	if len(paths) == 0 {
		return p.addTree(ctx, repo, t, ".", root, inodes)
	}
	sels, err := selections(paths)
	if err != nil {
		return err
	}
	found := 0
	for _, els := range sels {
		if len(els) == 0 {
			return p.addTree(ctx, repo, t, ".", root, inodes)
		}
		tree, rel := root, "."
		for i, el := range els {
			var n *repository.Node
			for _, x := range tree.Nodes {
				if x.Name == el {
					n = x
				}
			}
			if n == nil {
				break
			}
			rel = path.Join(rel, el)
			if i == len(els)-1 {
				found++
				if err := p.addNode(ctx, repo, t, rel, n, inodes); err != nil {
					return err
				}
				break
			}
			if n.Type != repository.NodeDir {
				break
			}
			p.dirs = append(p.dirs, &entry{ct: t, rel: rel, node: n})
			if tree, err = repo.LoadTree(ctx, *n.Subtree); err != nil {
				return err
			}
		}
	}
	if found == 0 {
		return fmt.Errorf("%w: component %s holds none of the paths %s", ErrInvalidSelection, c.Name, strings.Join(paths, ", "))
	}
	p.dirs = dedupeDirs(p.dirs)
	return nil
}

// selections cleans the requested paths and drops every one that is the
// same as, or inside, another: each file must be planned once, or a second
// entry would fight the first over the same name.
func selections(paths []string) ([][]string, error) {
	cleaned := make([]string, 0, len(paths))
	for _, sel := range paths {
		els, err := cleanSelectPath(sel)
		if err != nil {
			return nil, err
		}
		cleaned = append(cleaned, "/"+strings.Join(els, "/"))
	}
	sort.Strings(cleaned)
	var out [][]string
	var kept []string
	for _, c := range cleaned {
		covered := false
		for _, k := range kept {
			if c == k || k == "/" || strings.HasPrefix(c, k+"/") {
				covered = true
				break
			}
		}
		if covered {
			continue
		}
		kept = append(kept, c)
		if c == "/" {
			out = append(out, nil)
		} else {
			out = append(out, strings.Split(c[1:], "/"))
		}
	}
	return out, nil
}

func dedupeDirs(ds []*entry) []*entry {
	seen := map[string]bool{}
	out := ds[:0]
	for _, d := range ds {
		k := d.ct.name + "\x00" + d.rel
		if !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	return out
}

func (p *plan) addTree(ctx context.Context, repo *repository.Repository, t *compTarget, rel string, tree *repository.Tree, inodes map[[2]uint64]*entry) error {
	for _, n := range tree.Nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.addNode(ctx, repo, t, path.Join(rel, n.Name), n, inodes); err != nil {
			return err
		}
	}
	return nil
}

func (p *plan) addNode(ctx context.Context, repo *repository.Repository, t *compTarget, rel string, n *repository.Node, inodes map[[2]uint64]*entry) error {
	e := &entry{ct: t, rel: rel, node: n}
	switch n.Type {
	case repository.NodeDir:
		p.dirs = append(p.dirs, e)
		sub, err := repo.LoadTree(ctx, *n.Subtree)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", t.name, rel, err)
		}
		return p.addTree(ctx, repo, t, rel, sub, inodes)
	case repository.NodeFile:
		if n.Links > 1 {
			k := [2]uint64{n.DeviceID, n.Inode}
			if first, ok := inodes[k]; ok && first.ct == t {
				e.linkTo = first.rel
				p.links = append(p.links, e)
				return nil
			}
			inodes[k] = e
		}
		var size int64
		for _, id := range n.Content {
			loc, ok := repo.Lookup(id)
			if !ok {
				return fmt.Errorf("%s/%s: data blob %s is missing from the repository (run 'backupd repo check')", t.name, rel, id.Short())
			}
			if loc.Type != repository.DataBlob || loc.RawLength > repository.MaxChunkSize {
				return fmt.Errorf("%s/%s: %w: blob %s is not a data chunk of at most %d bytes", t.name, rel, repository.ErrCorrupt, id.Short(), repository.MaxChunkSize)
			}
			e.locs = append(e.locs, loc)
			size += int64(loc.RawLength)
		}
		if size != int64(n.Size) {
			return fmt.Errorf("%s/%s: %w: chunks add up to %d bytes, manifest says %d", t.name, rel, repository.ErrCorrupt, size, n.Size)
		}
		p.bytes += size
		p.files = append(p.files, e)
	default:
		p.others = append(p.others, e)
	}
	return nil
}

type restorer struct {
	repo      *repository.Repository
	opts      Options
	plan      *plan
	res       *Result
	start     time.Time
	filesDone atomic.Int64
	bytesDone atomic.Int64
	mu        sync.Mutex
	firstErr  error
	isRoot    bool
	dirs      *dirCache
}

type target struct {
	e   *entry
	off int64
}

func (r *restorer) run(ctx context.Context) (*Result, error) {
	r.isRoot = os.Geteuid() == 0
	r.dirs = newDirCache(256)
	defer r.dirs.close()
	p := r.plan
	stop := r.reportProgress()
	defer stop()
	// 1. directories, parents first (the plan lists them in walk order)
	for _, d := range p.dirs {
		if err := r.mkdir(d); err != nil {
			return nil, err
		}
		r.res.Dirs++
	}
	// 2. file content, pack by pack
	if err := r.writeContent(ctx); err != nil {
		return nil, err
	}
	// 3. symlinks, devices, fifos; hard links
	for _, e := range p.others {
		if err := r.makeOther(e); err != nil {
			r.warn("%s/%s: %v", e.ct.name, e.rel, err)
		}
	}
	var failed []string
	for _, e := range p.links {
		err := r.replaceable(e)
		if err == nil {
			err = e.ct.root.Link(e.linkTo, e.rel)
		}
		if err != nil {
			// a missing link is a missing file, not a footnote
			failed = append(failed, fmt.Sprintf("%s/%s (hard link to %s: %v)", e.ct.name, e.rel, e.linkTo, err))
			continue
		}
		r.res.Links++
	}
	// 4. verify what was written
	// (files were verified and got their metadata as they were completed)
	for _, e := range p.files {
		if e.failed.Load() {
			name := e.ct.name + "/" + e.rel
			if e.verifyErr != nil {
				name += " (" + e.verifyErr.Error() + ")"
			}
			failed = append(failed, name)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// 5. metadata of the others, then directories deepest first
	for _, e := range p.others {
		r.setMeta(e)
	}
	for i := len(p.dirs) - 1; i >= 0; i-- {
		r.setMeta(p.dirs[i])
	}
	r.res.Files = int64(len(p.files)) - int64(len(failed))
	r.res.Bytes = r.bytesDone.Load()
	if len(failed) > 0 {
		sort.Strings(failed)
		err := r.firstErr
		if err == nil {
			err = repository.ErrCorrupt
		}
		return r.res, &FileError{Files: failed, Err: err}
	}
	return r.res, nil
}

func (r *restorer) reportProgress() func() {
	if r.opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	snap := func() Progress {
		return Progress{FilesTotal: int64(len(r.plan.files)), FilesDone: r.filesDone.Load(),
			BytesTotal: r.plan.bytes, BytesDone: r.bytesDone.Load(), Elapsed: time.Since(r.start)}
	}
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.opts.Progress(snap())
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); wg.Wait(); r.opts.Progress(snap()) }
}

func (r *restorer) warn(format string, args ...any) {
	r.mu.Lock()
	r.res.Warnings = append(r.res.Warnings, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *restorer) mkdir(d *entry) error {
	fd, name, done, err := r.dirs.at(d)
	if err != nil {
		return fmt.Errorf("creating %s/%s: %w", d.ct.name, d.rel, err)
	}
	err = unix.Mkdirat(fd, name, 0o700)
	done()
	if err == nil || !errors.Is(err, fs.ErrExist) {
		if err != nil {
			return fmt.Errorf("creating %s/%s: %w", d.ct.name, d.rel, err)
		}
		return nil
	}
	fi, lerr := d.ct.root.Lstat(d.rel)
	if lerr == nil && fi.IsDir() {
		return nil
	}
	if !r.opts.Overwrite {
		return fmt.Errorf("%s/%s exists and is not a directory", d.ct.name, d.rel)
	}
	if err := d.ct.root.Remove(d.rel); err != nil {
		return fmt.Errorf("replacing %s/%s: %w", d.ct.name, d.rel, err)
	}
	return d.ct.root.Mkdir(d.rel, 0o700)
}

// replaceable clears the way for a non-directory at e.rel: an existing
// file or symlink is removed (only when overwriting, and never followed).
func (r *restorer) replaceable(e *entry) error {
	fi, err := e.ct.root.Lstat(e.rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !r.opts.Overwrite {
		return fmt.Errorf("%s/%s already exists", e.ct.name, e.rel)
	}
	if fi.IsDir() {
		return fmt.Errorf("%s/%s is a directory in the way", e.ct.name, e.rel)
	}
	return e.ct.root.Remove(e.rel)
}

func (r *restorer) writeContent(ctx context.Context) error {
	byPack := map[repository.ID][]repository.BlobLocation{}
	targets := map[[2]any][]target{} // (pack, offset) -> where the blob goes
	for _, e := range r.plan.files {
		// Files with content are created by the workers, in parallel, when
		// their first blob arrives; empty ones here.
		if len(e.locs) == 0 {
			f, err := r.create(e)
			if err != nil {
				return fmt.Errorf("creating %s/%s: %w", e.ct.name, e.rel, err)
			}
			f.Close()
			r.finishFile(e, nil)
			r.filesDone.Add(1)
		}
		var off int64
		for _, l := range e.locs {
			k := [2]any{l.Pack, l.Offset}
			if _, ok := targets[k]; !ok {
				byPack[l.Pack] = append(byPack[l.Pack], l)
			}
			targets[k] = append(targets[k], target{e: e, off: off})
			off += int64(l.RawLength)
		}
	}
	packs := make([]repository.ID, 0, len(byPack))
	for id := range byPack {
		packs = append(packs, id)
	}
	sort.Slice(packs, func(i, j int) bool { return bytes.Compare(packs[i][:], packs[j][:]) < 0 })
	remaining := map[*entry]*atomic.Int64{}
	for _, e := range r.plan.files {
		c := &atomic.Int64{}
		c.Store(int64(len(e.locs)))
		remaining[e] = c
	}
	jobs := make(chan repository.ID)
	var wg sync.WaitGroup
	for w := 0; w < r.opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fc := fileCache{r: r}
			defer fc.close()
			var vbuf []byte
			for pack := range jobs {
				err := r.repo.ReadPackBlobs(ctx, byPack[pack], func(l repository.BlobLocation, data []byte, derr error) error {
					for _, t := range targets[[2]any{l.Pack, l.Offset}] {
						if derr == nil && !t.e.failed.Load() {
							derr = fc.writeAt(t.e, data, t.off)
							if derr == nil {
								r.bytesDone.Add(int64(len(data)))
							}
						}
						if derr != nil {
							r.failFile(t.e, derr)
						}
						if remaining[t.e].Add(-1) == 0 {
							fc.release(t.e)
							if vbuf == nil && !r.opts.NoVerify {
								vbuf = make([]byte, repository.MaxChunkSize)
							}
							r.finishFile(t.e, vbuf)
							r.filesDone.Add(1)
						}
					}
					return ctx.Err()
				})
				if err != nil && ctx.Err() == nil {
					// the pack could not be read at all: fail its files
					for _, l := range byPack[pack] {
						for _, t := range targets[[2]any{l.Pack, l.Offset}] {
							r.failFile(t.e, err)
						}
					}
				}
			}
		}()
	}
	for _, p := range packs {
		select {
		case jobs <- p:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	for _, e := range r.plan.files {
		// never leave wrong content behind: failed files, and on
		// cancellation every file not completely written and verified
		if e.failed.Load() || (ctx.Err() != nil && remaining[e].Load() != 0) {
			r.unlink(e)
		}
	}
	return ctx.Err()
}

// create makes e's file (once) and returns it open for writing; a caller
// that did not create it gets nil and opens it itself.
func (r *restorer) create(e *entry) (*os.File, error) {
	var f *os.File
	e.created.Do(func() {
		var err error
		f, err = r.openAt(e, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
		if errors.Is(err, fs.ErrExist) {
			if err = r.replaceable(e); err == nil {
				f, err = r.openAt(e, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
			}
		}
		if err == nil && e.node.Sparse && e.node.Size > 0 {
			if err = f.Truncate(int64(e.node.Size)); err != nil {
				f.Close()
			}
		}
		e.createErr = err
	})
	return f, e.createErr
}

func (r *restorer) failFile(e *entry, err error) {
	if e.failed.Swap(true) {
		return
	}
	r.mu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.mu.Unlock()
}

// fileCache keeps the last file a worker wrote to open: consecutive blobs
// of a pack usually belong to the same file.
type fileCache struct {
	r *restorer
	e *entry
	f *os.File
}

func (c *fileCache) writeAt(e *entry, data []byte, off int64) error {
	if c.e != e {
		c.close()
		f, err := c.r.create(e)
		if err != nil {
			return err
		}
		if f == nil {
			if f, err = c.r.openAt(e, unix.O_WRONLY, 0); err != nil {
				return err
			}
		}
		c.e, c.f = e, f
	}
	if e.node.Sparse && allZero(data) {
		return nil // leave a hole; the file was truncated to its size
	}
	_, err := c.f.WriteAt(data, off)
	return err
}

func (c *fileCache) release(e *entry) {
	if c.e == e {
		c.close()
	}
}

func (c *fileCache) close() {
	if c.f != nil {
		c.f.Close()
	}
	c.e, c.f = nil, nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// finishFile runs when a file's last blob is written: it re-reads the file
// and checks every chunk against the manifest's blob ids (unless NoVerify),
// removes it if that fails, and otherwise sets its metadata. Running it in
// the writing workers keeps the re-read parallel and on hot pages.
func (r *restorer) finishFile(e *entry, buf []byte) {
	if e.failed.Load() {
		return
	}
	if !r.opts.NoVerify {
		if err := r.verifyFile(e, buf); err != nil {
			e.verifyErr = err
			e.failed.Store(true)
			r.unlink(e)
			r.failFile(e, err)
			return
		}
		atomic.AddInt64(&r.res.Verified, 1)
	}
	r.setMeta(e)
}

func (r *restorer) verifyFile(e *entry, buf []byte) error {
	f, err := r.openAt(e, unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for i, l := range e.locs {
		b := buf[:l.RawLength]
		if _, err := io.ReadFull(f, b); err != nil {
			return fmt.Errorf("verify: chunk %d: %w", i, err)
		}
		if r.repo.BlobID(b) != e.node.Content[i] {
			return fmt.Errorf("verify: chunk %d does not match the backup", i)
		}
	}
	var one [1]byte
	if n, _ := f.Read(one[:]); n != 0 {
		return errors.New("verify: file is longer than in the backup")
	}
	return nil
}

func (r *restorer) makeOther(e *entry) error {
	if err := r.replaceable(e); err != nil {
		return err
	}
	n := e.node
	switch n.Type {
	case repository.NodeSymlink:
		return e.ct.root.Symlink(n.LinkTarget, e.rel)
	case repository.NodeFifo, repository.NodeDev, repository.NodeCharDev:
		mode := uint32(n.Mode.Perm())
		switch n.Type {
		case repository.NodeFifo:
			mode |= syscall.S_IFIFO
		case repository.NodeDev:
			mode |= syscall.S_IFBLK
		default:
			mode |= syscall.S_IFCHR
		}
		return r.atParent(e, func(fd int, name string) error {
			return unix.Mknodat(fd, name, mode, int(n.Rdev))
		})
	case repository.NodeSocket:
		return errors.New("sockets are not restored (a program creates them when it starts)")
	}
	return fmt.Errorf("unknown node type %q", n.Type)
}

// atParent runs fn with a descriptor of e's parent directory, opened
// through the root, so no symlink can lead fn outside the target.
func (r *restorer) atParent(e *entry, fn func(fd int, name string) error) error {
	fd, name, done, err := r.dirs.at(e)
	if err != nil {
		return err
	}
	defer done()
	return fn(fd, name)
}

// openAt opens e relative to its parent's descriptor, never following a
// symlink in its place.
func (r *restorer) openAt(e *entry, flags int, perm uint32) (*os.File, error) {
	var f *os.File
	err := r.atParent(e, func(fd int, name string) error {
		nfd, err := unix.Openat(fd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(nfd), e.rel)
		return nil
	})
	return f, err
}

func (r *restorer) unlink(e *entry) {
	r.atParent(e, func(fd int, name string) error { return unix.Unlinkat(fd, name, 0) })
}

func (r *restorer) setMeta(e *entry) {
	n := e.node
	err := r.atParent(e, func(fd int, name string) error {
		if r.isRoot {
			if err := unix.Fchownat(fd, name, int(n.UID), int(n.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				r.warn("%s/%s: chown: %v", e.ct.name, e.rel, err)
			}
		}
		if n.Type != repository.NodeSymlink {
			// fchmodat cannot refuse to follow a symlink on Linux; the entry
			// is one this restore created as a non-symlink.
			if err := unix.Fchmodat(fd, name, unixMode(n.Mode), 0); err != nil {
				r.warn("%s/%s: chmod: %v", e.ct.name, e.rel, err)
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(atime(n)), unix.NsecToTimespec(n.ModTime)}
		if err := unix.UtimesNanoAt(fd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			r.warn("%s/%s: times: %v", e.ct.name, e.rel, err)
		}
		return nil
	})
	if err != nil {
		r.warn("%s/%s: metadata: %v", e.ct.name, e.rel, err)
	}
}

func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

func atime(n *repository.Node) int64 {
	if n.AccessTime != 0 {
		return n.AccessTime
	}
	return n.ModTime
}
