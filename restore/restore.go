// Package restore writes a backup (all of it, chosen components or chosen
// paths) into a target directory, never outside it, verifying every file
// against the manifest's chunk hashes; and exports a backup as a tar stream.
package restore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/maphash"
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
	Mirror bool
	// Confine limits where a component's restore writes: for a component
	// named here, only entries whose absolute path is one of these paths
	// or below one are written. A restore to the original location passes
	// the worker's configured source paths, so a backup (or a tree that
	// no longer matches the configuration) cannot put files anywhere else
	// on the host. Directories above those paths are created when missing,
	// but existing ones are left as they are (restoring /etc/app must not
	// chmod /etc). Everything else is left out, with a warning naming it.
	// A component with an empty list restores no files at all.
	Confine map[string][]string
	// Untrusted: the backup is another host's word (a restore of one
	// enrolled host's backup on another). Nothing in it may raise
	// privileges here: set-id and sticky bits are dropped, device nodes
	// and FIFOs are not made, and what is written belongs to the user
	// who restores (no chown to the backup's owners). Each is a warning.
	Untrusted bool
	Workers   int
	Progress  func(Progress)
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

// ErrInTheWay: something at a restored file's place may not be replaced
// (a directory, or anything without Overwrite). Retrying cannot help.
var ErrInTheWay = errors.New("it is in the way of the restore")

// ErrTargetNotEmpty: restoring into a non-empty directory needs Overwrite.
var ErrTargetNotEmpty = errors.New(`target directory is not empty (set "overwrite": true in the restore request to restore into it, replacing files of the same names)`)

type compTarget struct {
	name string
	dir  string
	root *beneath
	// confine: the absolute paths below which this component may write
	// (nil: anywhere below its target directory)
	confine []string
}

// placement of an entry relative to its component's confinement.
type placement int

const (
	placeAllowed  placement = iota // at or below a confine path (or unconfined)
	placeAncestor                  // a directory above a confine path
	placeRefused                   // anywhere else
)

func (t *compTarget) place(rel string) placement {
	if t.confine == nil {
		return placeAllowed
	}
	abs := path.Clean("/" + rel)
	for _, p := range t.confine {
		if abs == p || p == "/" || strings.HasPrefix(abs, p+"/") {
			return placeAllowed
		}
	}
	for _, p := range t.confine {
		if abs == "/" || strings.HasPrefix(p, abs+"/") {
			return placeAncestor
		}
	}
	return placeRefused
}

type entry struct {
	ct   *compTarget
	rel  string
	node *repository.Node
	// files
	locs    []repository.BlobLocation
	linkTo  string // hard link to this rel (same component)
	linkSrc *entry // ... which is this entry
	failed  atomic.Bool
	// remaining: blobs of the file not yet written
	remaining atomic.Int64
	// ancestor: a directory above the component's confine paths, made
	// only to reach them; keepMeta: it existed, so its metadata is not
	// the restore's to change
	ancestor, keepMeta bool
	// id of the inode this restore made (or found, for directories) at
	// rel: metadata goes to that inode only, never to another one put
	// under the same name meanwhile. Set once by the entry's creator
	// before any other goroutine uses the entry.
	id fileID
	// tmp: the file is written under this name beside rel, and renamed
	// over it only once complete and verified, because something was at
	// rel already: a restore that fails never leaves the original
	// destroyed (set by the creator, cleared by the rename)
	tmp string

	created   sync.Once // files are created by the first worker that writes one
	createErr error
	verifyErr error
	// made: a file's owner and mode as created (set with id): what
	// already matches the manifest is not set again
	made struct {
		known    bool
		uid, gid uint32
		mode     uint32
	}
}

// plan is one walk of the selected trees. The first walk (emit nil)
// checks everything, locating every blob, before anything is written; it
// keeps only the directories and counts the rest. The restore then walks
// again, handing every file, link and other entry to emit in walk order
// and holding only a batch of them at once: memory does not grow with the
// number of files.
type plan struct {
	dirs    []*entry
	files   int64 // counted, links excluded
	bytes   int64
	skipTop map[string]bool
	refused map[*compTarget][]string // outside the confinement
	inodes  map[[2]uint64]*entry     // first names of multiply linked files
	emit    func(e *entry) error
}

func newPlan(skipTop []string) *plan {
	p := &plan{skipTop: map[string]bool{}, refused: map[*compTarget][]string{}, inodes: map[[2]uint64]*entry{}}
	for _, n := range skipTop {
		p.skipTop[n] = true
	}
	return p
}

// walk plans the selection of comps (into targets) with this plan's rules.
func (p *plan) walk(ctx context.Context, repo *repository.Repository, comps []repository.ComponentManifest, targets []*compTarget, paths []string) error {
	for i, c := range comps {
		if err := p.addComponent(ctx, repo, targets[i], c, paths); err != nil {
			return err
		}
	}
	return nil
}

// again walks once more, handing the entries to emit; directories were
// planned by the first walk.
func (p *plan) again(ctx context.Context, repo *repository.Repository, comps []repository.ComponentManifest, targets []*compTarget, paths []string, emit func(e *entry) error) error {
	q := newPlan(nil)
	q.skipTop, q.emit = p.skipTop, emit
	return q.walk(ctx, repo, comps, targets, paths)
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
		t := &compTarget{name: c.Name, dir: dir}
		if paths, ok := opts.Confine[c.Name]; ok {
			t.confine = []string{}
			for _, p := range paths {
				if !path.IsAbs(p) || strings.ContainsRune(p, 0) {
					return nil, fmt.Errorf("%w: component %s: confine path %q is not absolute", ErrInvalidSelection, c.Name, p)
				}
				t.confine = append(t.confine, path.Clean(p))
			}
		}
		targets = append(targets, t)
	}
	p := newPlan(opts.SkipTop)
	if err := p.walk(ctx, repo, comps, targets, opts.Paths); err != nil {
		return nil, err
	}
	for _, t := range targets {
		if opts.VerifyOnly {
			root, err := openTarget(filepath.Clean(t.dir), false)
			if err != nil {
				return nil, fmt.Errorf("verify restored %s: %w", t.name, err)
			}
			t.root = root
		} else if err := prepareTarget(t, opts.Overwrite); err != nil {
			return nil, err
		}
		defer t.root.close()
	}
	res := &Result{Warnings: p.refusedWarnings(targets)}
	r := &restorer{repo: repo, opts: opts, plan: p, res: res, start: time.Now(),
		again: func(emit func(e *entry) error) error { return p.again(ctx, repo, comps, targets, opts.Paths, emit) }}
	r.dirs = newDirCache(256, p.dirs)
	defer r.dirs.close()
	if opts.VerifyOnly {
		return r.verifyTree(ctx)
	}
	if opts.Mirror && len(opts.Paths) == 0 {
		r.kept = map[dirKey]bool{}
	}
	res, err = r.run(ctx)
	if err == nil && r.kept != nil {
		removed, merr := r.mirror(comps, targets)
		res.Removed = removed
		if len(removed) > 0 {
			// removing changed the parents' times: set them as backed up again
			r.setDirsMeta()
		}
		if merr != nil {
			return res, merr
		}
	}
	return res, err
}

// refusedWarnings names what the confinement left out, a few entries per
// component (a backup of /etc restored with only /etc/app configured
// would otherwise list thousands).
func (p *plan) refusedWarnings(targets []*compTarget) []string {
	var out []string
	for _, t := range targets {
		list := p.refused[t]
		if len(list) == 0 {
			continue
		}
		more := ""
		if len(list) > 20 {
			list, more = list[:20], fmt.Sprintf(" and %d more", len(p.refused[t])-20)
		}
		allowed := strings.Join(t.confine, ", ")
		if allowed == "" {
			allowed = "none configured"
		}
		out = append(out, fmt.Sprintf("component %s: not restored, outside its source paths (%s): %s%s",
			t.name, allowed, strings.Join(list, ", "), more))
	}
	return out
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

// TargetNotEmptyError names the directory a restore would write into that
// already holds files; it is ErrTargetNotEmpty.
type TargetNotEmptyError struct{ Dir string }

func (e *TargetNotEmptyError) Error() string { return e.Dir + ": " + ErrTargetNotEmpty.Error() }
func (e *TargetNotEmptyError) Unwrap() error { return ErrTargetNotEmpty }

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
			return &TargetNotEmptyError{Dir: dir}
		}
	}
	return nil
}

// prepareTarget creates the component's directory and opens it; it
// refuses a non-empty one unless overwriting.
func prepareTarget(t *compTarget, overwrite bool) error {
	// made and opened without following a link a user could plant on the
	// way (openTarget); everything below is opened the same way
	root, err := openTarget(filepath.Clean(t.dir), true)
	if errors.Is(err, errNotFollowed) {
		return fmt.Errorf("%w: creating target %s: %v", ErrInvalidSelection, t.dir, err)
	}
	if err != nil {
		return fmt.Errorf("creating target %s: %w", t.dir, err)
	}
	if !overwrite {
		fd, err := root.openDir(".", unix.O_RDONLY)
		if err != nil {
			root.close()
			return err
		}
		empty, err := isEmptyDir(fd)
		unix.Close(fd)
		if err != nil {
			root.close()
			return err
		}
		if !empty {
			root.close()
			return fmt.Errorf("%s: %w", t.dir, ErrTargetNotEmpty)
		}
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

func (p *plan) addComponent(ctx context.Context, repo *repository.Repository, t *compTarget, c repository.ComponentManifest, paths []string) error {
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
		return p.addTree(ctx, repo, t, ".", root)
	}
	sels, err := selections(paths)
	if err != nil {
		return err
	}
	found := 0
	for _, els := range sels {
		if len(els) == 0 {
			return p.addTree(ctx, repo, t, ".", root)
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
			if i < len(els)-1 && !p.confined(t, rel, n) {
				found++ // there, but refused (and named in a warning)
				break
			}
			if i == len(els)-1 {
				found++
				if err := p.addNode(ctx, repo, t, rel, n); err != nil {
					return err
				}
				break
			}
			if n.Type != repository.NodeDir {
				break
			}
			p.dirs = append(p.dirs, &entry{ct: t, rel: rel, node: n, ancestor: t.place(rel) == placeAncestor})
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

func (p *plan) addTree(ctx context.Context, repo *repository.Repository, t *compTarget, rel string, tree *repository.Tree) error {
	for _, n := range tree.Nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.addNode(ctx, repo, t, path.Join(rel, n.Name), n); err != nil {
			return err
		}
	}
	return nil
}

// confined reports whether the entry n at rel may be restored under the
// component's confinement, and records it as refused if not. Only a
// directory may stand above the confine paths: anything else there would
// replace an ancestor of them.
func (p *plan) confined(t *compTarget, rel string, n *repository.Node) bool {
	switch t.place(rel) {
	case placeAllowed:
		return true
	case placeAncestor:
		if n.Type == repository.NodeDir {
			return true
		}
	}
	p.refused[t] = append(p.refused[t], path.Clean("/"+rel))
	return false
}

func (p *plan) addNode(ctx context.Context, repo *repository.Repository, t *compTarget, rel string, n *repository.Node) error {
	if !p.confined(t, rel, n) {
		return nil // nor anything below it: nothing there can be allowed
	}
	e := &entry{ct: t, rel: rel, node: n, ancestor: t.place(rel) == placeAncestor}
	switch n.Type {
	case repository.NodeDir:
		p.dirs = append(p.dirs, e)
		sub, err := repo.LoadTree(ctx, *n.Subtree)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", t.name, rel, err)
		}
		return p.addTree(ctx, repo, t, rel, sub)
	case repository.NodeFile:
		if n.Links > 1 {
			k := [2]uint64{n.DeviceID, n.Inode}
			if first, ok := p.inodes[k]; ok && first.ct == t {
				e.linkTo, e.linkSrc = first.rel, first
				return p.put(e)
			}
			p.inodes[k] = e
		}
		var size int64
		for _, id := range n.Content {
			loc, ok := repo.Locate(ctx, id)
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
		p.files++
	}
	return p.put(e)
}

// put hands a file, link or other entry to emit.
func (p *plan) put(e *entry) error {
	if p.emit == nil {
		e.locs = nil // checked; the first walk keeps (hard links') entries only for their names
		return nil
	}
	return p.emit(e)
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
	// again walks the plan once more, handing each file, link and other
	// entry to emit
	again func(emit func(e *entry) error) error
	kept  map[dirKey]bool // Mirror: every name the backup holds
}

// A restore writes files in batches of about this many blobs (or entries),
// so what it holds per file is bounded by the batch, not by the backup.
var batchBlobs = 16384

type target struct {
	e   *entry
	off int64
	i   int32 // the chunk's place in e's content
}

// testHook, when set by a test, runs before the named step on an entry
// (to race the restore at exactly that point).
var testHook func(step, rel string)

func hook(step string, e *entry) {
	if testHook != nil {
		testHook(step, e.rel)
	}
}

func (r *restorer) run(ctx context.Context) (*Result, error) {
	r.isRoot = os.Geteuid() == 0
	p := r.plan
	stop := r.reportProgress()
	defer stop()
	// 1. directories, parents first (the plan lists them in walk order)
	for _, d := range p.dirs {
		if err := r.mkdir(d); err != nil {
			return nil, err
		}
		r.res.Dirs++
		r.keep(d)
	}
	// 2. file content, pack by pack, a batch at a time; then the batch's
	// symlinks, devices and fifos
	var files, others, links []*entry
	var blobs int
	var failed []string
	flush := func() error {
		err := r.writeContent(ctx, files)
		for _, e := range files {
			if e.failed.Load() {
				name := e.ct.name + "/" + e.rel
				if e.verifyErr != nil {
					name += " (" + e.verifyErr.Error() + ")"
				}
				failed = append(failed, name)
			}
			// an entry kept as a hard link's first name needs no content now
			e.locs = nil
		}
		if err != nil {
			return err
		}
		for _, e := range others {
			if err := r.makeOther(e); err != nil {
				r.warn("%s/%s: %v", e.ct.name, e.rel, err)
				if errors.Is(err, errUntrustedNode) {
					continue
				}
			}
			r.setMeta(e)
		}
		files, others, blobs = files[:0], others[:0], 0
		return nil
	}
	err := r.again(func(e *entry) error {
		r.keep(e)
		switch {
		case e.linkSrc != nil:
			links = append(links, e)
		case e.node.Type == repository.NodeFile:
			files = append(files, e)
			blobs += len(e.locs)
		default:
			others = append(others, e)
		}
		if blobs >= batchBlobs || len(files)+len(others) >= batchBlobs {
			return flush()
		}
		return ctx.Err()
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return nil, err
	}
	// 3. hard links
	for _, e := range links {
		if err := r.link(e); err != nil {
			// a missing link is a missing file, not a footnote
			failed = append(failed, fmt.Sprintf("%s/%s (hard link to %s: %v)", e.ct.name, e.rel, e.linkTo, err))
			continue
		}
		r.res.Links++
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// 4. metadata of directories
	// (files were verified and got their metadata as they were completed)
	r.setDirsMeta()
	r.res.Files = p.files - int64(len(failed))
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

// setDirsMeta sets the directories' metadata, deepest first.
func (r *restorer) setDirsMeta() {
	for i := len(r.plan.dirs) - 1; i >= 0; i-- {
		r.setMeta(r.plan.dirs[i])
	}
}

// keep records, for a mirror restore, that the backup holds e's name.
func (r *restorer) keep(e *entry) {
	if r.kept != nil {
		r.kept[dirKey{e.ct, e.rel}] = true
	}
}

func (r *restorer) reportProgress() func() {
	if r.opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	snap := func() Progress {
		return Progress{FilesTotal: r.plan.files, FilesDone: r.filesDone.Load(),
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

// errReplaced: the name no longer holds what the restore made or checked
// there (something was swapped in while it ran); the restore neither
// writes to it, nor changes its metadata, nor removes it.
var errReplaced = errors.New("replaced by something else while the restore ran; left as it is")

func fileType(st *unix.Stat_t) uint32 { return st.Mode & unix.S_IFMT }

// mkdir makes d's directory (or checks the one there) and records its
// inode: later descriptors of it, and its metadata, must be of that inode.
func (r *restorer) mkdir(d *entry) error {
	hook("mkdir", d)
	err := r.atParent(d, func(fd int, name string) error {
		err := unix.Mkdirat(fd, name, 0o700)
		if err != nil && err != unix.EEXIST {
			return err
		}
		created := err == nil
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if fileType(&st) != unix.S_IFDIR {
			switch {
			case created:
				return errReplaced
			case d.ancestor:
				// not the restore's to replace: it lies above the
				// paths this restore may write
				return fmt.Errorf("exists and is not a directory (it lies above the component's source paths %s and is left alone)", strings.Join(d.ct.confine, ", "))
			case !r.opts.Overwrite:
				return errors.New("exists and is not a directory")
			}
			// never followed: a symlink here is removed, not entered
			if err := unix.Unlinkat(fd, name, 0); err != nil {
				return fmt.Errorf("replacing it: %w", err)
			}
			if err := unix.Mkdirat(fd, name, 0o700); err != nil {
				return err
			}
			created = true
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			if fileType(&st) != unix.S_IFDIR {
				return errReplaced
			}
		}
		d.id = idOf(&st)
		d.keepMeta = d.ancestor && !created
		return nil
	})
	if err != nil {
		return fmt.Errorf("creating %s/%s: %w", d.ct.name, d.rel, err)
	}
	return nil
}

// replaceableAt clears the way for a non-directory at name in the
// directory fd: an existing file or symlink is removed (only when
// overwriting, and never followed).
func (r *restorer) replaceableAt(e *entry, fd int, name string) error {
	if err := r.replaceableCheck(e, fd, name); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	return unix.Unlinkat(fd, name, 0)
}

// blobAt names a blob by where it is stored (a key of plain values: boxing
// the pack id and offset in interfaces cost more than the rest of the map):
// its pack, offset and, for a bundle member, its place in the bundle.
type blobAt struct {
	pack   repository.ID
	offset uint32
	inner  uint32
}

func at(l repository.BlobLocation) blobAt { return blobAt{l.Pack, l.Offset, l.Inner} }

func (r *restorer) writeContent(ctx context.Context, files []*entry) error {
	byPack := map[repository.ID][]repository.BlobLocation{}
	targets := map[blobAt][]target{} // where each blob goes
	// what the written chunks of each file hashed to, in order: the
	// re-read after the last write compares the file with them. The blobs
	// were authenticated and their ids checked as they were decoded; the
	// re-read only has to show that the file holds exactly those bytes, so
	// a 64-bit keyed hash (seeded per batch) does at memory speed what
	// recomputing the blob ids did at SHA-256's.
	written := map[*entry][]uint64{}
	seed := maphash.MakeSeed()
	for _, e := range files {
		// Files with content are created by the workers, in parallel, when
		// their first blob arrives; empty ones here.
		if len(e.locs) == 0 {
			fd, err := r.create(e)
			if err != nil {
				return fmt.Errorf("creating %s/%s: %w", e.ct.name, e.rel, err)
			}
			r.finishFile(e, fd, nil, verifyBlobs{})
			r.filesDone.Add(1)
		}
		if !r.opts.NoVerify && len(e.locs) > 0 {
			written[e] = make([]uint64, len(e.locs))
		}
		var off int64
		for i, l := range e.locs {
			k := at(l)
			if _, ok := targets[k]; !ok {
				byPack[l.Pack] = append(byPack[l.Pack], l)
			}
			targets[k] = append(targets[k], target{e: e, off: off, i: int32(i)})
			off += int64(l.RawLength)
		}
	}
	packs := make([]repository.ID, 0, len(byPack))
	for id := range byPack {
		packs = append(packs, id)
	}
	sort.Slice(packs, func(i, j int) bool { return bytes.Compare(packs[i][:], packs[j][:]) < 0 })
	for _, e := range files {
		e.remaining.Store(int64(len(e.locs)))
	}
	jobs := make(chan repository.ID)
	var wg sync.WaitGroup
	for w := 0; w < r.opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fc := fileCache{r: r, fd: -1}
			defer fc.close()
			var vbuf []byte
			for pack := range jobs {
				err := r.repo.ReadPackBlobs(ctx, byPack[pack], func(l repository.BlobLocation, data []byte, derr error) error {
					var h uint64
					if derr == nil && !r.opts.NoVerify {
						h = maphash.Bytes(seed, data)
					}
					for _, t := range targets[at(l)] {
						terr := derr
						if want := t.e.node.Content[t.i]; terr == nil && want != l.ID {
							// the index put two blobs at one place: the one
							// read was checked as l.ID, not as this chunk
							terr = fmt.Errorf("%w: chunk %d (%s) is indexed where blob %s is stored", repository.ErrCorrupt, t.i, want.Short(), l.ID.Short())
						}
						if terr == nil && !t.e.failed.Load() {
							terr = fc.writeAt(t.e, data, t.off)
							if terr == nil {
								r.bytesDone.Add(int64(len(data)))
								if sums := written[t.e]; sums != nil {
									// read by the finishing writer after the
									// remaining count below reaches 0
									sums[t.i] = h
								}
							}
						}
						if terr != nil {
							r.failFile(t.e, terr)
						}
						if t.e.remaining.Add(-1) == 0 {
							if !r.opts.NoVerify {
								// as large as the file's largest chunk: a
								// chunk-sized buffer per worker was a
								// restore's largest allocation
								need := 0
								for _, l := range t.e.locs {
									need = max(need, int(l.RawLength))
								}
								if cap(vbuf) < need {
									vbuf = make([]byte, need)
								}
							}
							r.finishFile(t.e, fc.take(t.e), vbuf, verifyBlobs{seed: seed, sums: written[t.e]})
							r.filesDone.Add(1)
						}
					}
					return ctx.Err()
				})
				if err != nil && ctx.Err() == nil {
					// the pack could not be read at all: fail its files
					for _, l := range byPack[pack] {
						for _, t := range targets[at(l)] {
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
	for _, e := range files {
		// never leave wrong content behind: failed files, and on
		// cancellation every file not completely written and verified
		if e.failed.Load() || (ctx.Err() != nil && e.remaining.Load() != 0) {
			r.unlink(e)
		}
	}
	return ctx.Err()
}

// create makes e's file (once) and returns its descriptor, open for
// reading and writing; a caller that did not create it gets -1 and opens
// it itself (openOwn). The created inode is recorded in e.id.
func (r *restorer) create(e *entry) (int, error) {
	fd := -1
	e.created.Do(func() {
		hook("create", e)
		err := r.atParent(e, func(dfd int, name string) error {
			const flags = unix.O_CREAT | unix.O_EXCL | unix.O_RDWR | unix.O_NOFOLLOW | unix.O_CLOEXEC
			perm := r.createMode(e)
			nfd, err := openat(dfd, name, flags, perm)
			if err == unix.EEXIST {
				// something is there: write beside it, replace it when done
				if err = r.replaceableCheck(e, dfd, name); err == nil {
					tmp := tmpName(name)
					if nfd, err = openat(dfd, tmp, flags, perm); err == nil {
						e.tmp = tmp
					}
				}
			}
			if err != nil {
				return err
			}
			st, err := fstatOrClose(nfd)
			if err != nil {
				return err
			}
			e.id = idOf(st)
			e.made.known, e.made.uid, e.made.gid, e.made.mode = true, st.Uid, st.Gid, st.Mode&0o7777
			fd = nfd
			return nil
		})
		if err == nil && e.node.Sparse && e.node.Size > 0 {
			if err = unix.Ftruncate(fd, int64(e.node.Size)); err != nil {
				unix.Close(fd)
				fd = -1
			}
		}
		e.createErr = err
	})
	return fd, e.createErr
}

// openOwn opens e's regular file again, relative to its parent's
// descriptor and never following a symlink (O_NONBLOCK: nor blocking on a
// FIFO put in its place). It must be the inode the restore created (when
// known: a verify-only pass knows none), not whatever was swapped in under
// its name since: a hard link to /etc/shadow must not receive content or
// metadata.
func (r *restorer) openOwn(e *entry, flags int) (int, error) {
	fd := -1
	err := r.atParent(e, func(dfd int, name string) error {
		nfd, err := openat(dfd, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		st, err := fstatOrClose(nfd)
		if err != nil {
			return err
		}
		if fileType(st) != unix.S_IFREG {
			unix.Close(nfd)
			if e.id.known() {
				return errReplaced
			}
			return errors.New("not a regular file")
		}
		if e.id.known() && idOf(st) != e.id {
			unix.Close(nfd)
			return errReplaced
		}
		fd = nfd
		return nil
	})
	return fd, err
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
	r  *restorer
	e  *entry
	fd int
}

func (c *fileCache) writeAt(e *entry, data []byte, off int64) error {
	if c.e != e {
		c.close()
		fd, err := c.r.create(e)
		if err != nil {
			return err
		}
		if fd < 0 {
			if fd, err = c.r.openOwn(e, unix.O_RDWR); err != nil {
				return err
			}
		}
		c.e, c.fd = e, fd
	}
	if e.node.Sparse && allZero(data) {
		return nil // leave a hole; the file was truncated to its size
	}
	return pwriteAll(c.fd, data, off)
}

// take hands e's descriptor over to the caller (-1 if not held), so the
// last writer verifies the file and sets its metadata through the
// descriptor it wrote with: no second open, and no name looked up again.
func (c *fileCache) take(e *entry) int {
	if c.e != e {
		return -1
	}
	fd := c.fd
	c.e, c.fd = nil, -1
	return fd
}

func (c *fileCache) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
	}
	c.e, c.fd = nil, -1
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func preadFull(fd int, b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		k, err := unix.Pread(fd, b[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if k == 0 {
			return n, io.ErrUnexpectedEOF
		}
		n += k
	}
	return n, nil
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

// finishFile runs when a file's last blob is written (fd: the writer's
// descriptor of it, or -1): it re-reads the file and checks every chunk
// against the manifest's blob ids (unless NoVerify), removes it if that
// fails, and otherwise sets its metadata, through the same descriptor.
// Running it in the writing workers keeps the re-read parallel and on hot
// pages.
func (r *restorer) finishFile(e *entry, fd int, buf []byte, v verifyBlobs) {
	if e.failed.Load() {
		if fd >= 0 {
			unix.Close(fd)
		}
		return
	}
	hook("finish", e)
	if fd < 0 {
		var err error
		if fd, err = r.openOwn(e, unix.O_RDONLY); err != nil {
			r.fileFailed(e, err)
			return
		}
	}
	defer unix.Close(fd)
	if !r.opts.NoVerify {
		if err := r.verifyFile(e, fd, buf, v); err != nil {
			r.fileFailed(e, err)
			return
		}
		atomic.AddInt64(&r.res.Verified, 1)
	}
	hook("meta", e)
	r.applyMeta(e, fd, false)
	if e.tmp != "" {
		if err := r.replaceWithTmp(e); err != nil {
			r.fileFailed(e, err)
		}
	}
}

// replaceWithTmp renames a file written under its temporary name over
// the name it restores (the one system call that replaces the old file:
// it is never missing, never half written). renameat does not follow a
// symlink at either name; a directory put there meanwhile makes it fail.
func (r *restorer) replaceWithTmp(e *entry) error {
	dfd, name, done, err := r.dirs.at(e)
	if err != nil {
		return err
	}
	defer done()
	if err := unix.Renameat(dfd, e.tmp, dfd, name); err != nil {
		return fmt.Errorf("replacing %s/%s: %w", e.ct.name, e.rel, err)
	}
	e.tmp = ""
	return nil
}

// tmpName is the temporary name a file is written under beside name.
func tmpName(name string) string {
	if len(name) > 180 {
		name = name[:180]
	}
	return fmt.Sprintf(".%s.backupd-restore-%x", name, randomSuffix())
}

// replaceableCheck refuses what a file may not replace: anything unless
// overwriting, and a directory; unix.ENOENT when nothing is there.
func (r *restorer) replaceableCheck(e *entry, fd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if !r.opts.Overwrite {
		return fmt.Errorf("%s/%s already exists: %w (set overwrite to replace it)", e.ct.name, e.rel, ErrInTheWay)
	}
	if fileType(&st) == unix.S_IFDIR {
		return fmt.Errorf("%s/%s is a directory: %w (move or remove it, then restore again)", e.ct.name, e.rel, ErrInTheWay)
	}
	return nil
}

func (r *restorer) fileFailed(e *entry, err error) {
	e.verifyErr = err
	e.failed.Store(true)
	r.unlink(e)
	r.failFile(e, err)
}

// verifyBlobs is what a re-read compares a file's chunks with: the
// checksums taken as they were written (sums, one per chunk), or, with
// sums nil, the backup's blob ids.
type verifyBlobs struct {
	seed maphash.Seed
	sums []uint64
}

// verifyFile reads the file open at fd from the start and checks it
// against e's chunks.
func (r *restorer) verifyFile(e *entry, fd int, buf []byte, v verifyBlobs) error {
	var off int64
	for i, l := range e.locs {
		b := buf[:l.RawLength]
		if _, err := preadFull(fd, b, off); err != nil {
			return fmt.Errorf("verify: chunk %d: %w", i, err)
		}
		if v.sums != nil {
			if maphash.Bytes(v.seed, b) != v.sums[i] {
				return fmt.Errorf("verify: chunk %d does not match the backup", i)
			}
		} else if r.repo.BlobID(b) != e.node.Content[i] {
			return fmt.Errorf("verify: chunk %d does not match the backup", i)
		}
		off += int64(l.RawLength)
	}
	var one [1]byte
	if n, _ := unix.Pread(fd, one[:], off); n > 0 {
		return errors.New("verify: file is longer than in the backup")
	}
	return nil
}

// errUntrustedNode: a device node or FIFO in another host's backup.
var errUntrustedNode = errors.New("not made from another host's backup (device nodes and FIFOs are left out of an untrusted restore)")

func (r *restorer) makeOther(e *entry) error {
	hook("other", e)
	n := e.node
	if r.opts.Untrusted && (n.Type == repository.NodeFifo || n.Type == repository.NodeDev || n.Type == repository.NodeCharDev) {
		return errUntrustedNode
	}
	var want uint32
	var mk func(fd int, name string) error
	switch n.Type {
	case repository.NodeSymlink:
		want = unix.S_IFLNK
		mk = func(fd int, name string) error { return unix.Symlinkat(n.LinkTarget, fd, name) }
	case repository.NodeFifo, repository.NodeDev, repository.NodeCharDev:
		mode := uint32(n.Mode.Perm())
		switch n.Type {
		case repository.NodeFifo:
			want = unix.S_IFIFO
		case repository.NodeDev:
			want = unix.S_IFBLK
		default:
			want = unix.S_IFCHR
		}
		mode |= want
		mk = func(fd int, name string) error { return unix.Mknodat(fd, name, mode, int(n.Rdev)) }
	case repository.NodeSocket:
		return errors.New("sockets are not restored (a program creates them when it starts)")
	default:
		return fmt.Errorf("unknown node type %q", n.Type)
	}
	return r.atParent(e, func(fd int, name string) error {
		if err := r.replaceableAt(e, fd, name); err != nil {
			return err
		}
		if err := mk(fd, name); err != nil {
			return err
		}
		// record what was made, for setMeta; the type (and a device's
		// number) must be what was asked for: a regular file swapped in
		// at once (a hard link to a victim) never gets this node's mode
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if fileType(&st) != want || (want == unix.S_IFBLK || want == unix.S_IFCHR) && uint64(st.Rdev) != n.Rdev {
			return errReplaced
		}
		e.id = idOf(&st)
		return nil
	})
}

// link makes e a hard link to the file restored at e.linkTo, from the
// held parent descriptors (linkat without AT_SYMLINK_FOLLOW: a symlink at
// the source is linked itself, never followed), and checks that the new
// name is the restored inode.
func (r *restorer) link(e *entry) error {
	hook("link", e)
	src := e.linkSrc
	if src == nil || src.failed.Load() || !src.id.known() {
		return errors.New("its first name was not restored")
	}
	return r.atParent(src, func(sfd int, sname string) error {
		return r.atParent(e, func(fd int, name string) error {
			if err := r.replaceableAt(e, fd, name); err != nil {
				return err
			}
			if err := unix.Linkat(sfd, sname, fd, name, 0); err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			if idOf(&st) != src.id {
				// the source name was swapped meanwhile: this link is ours
				// (just made), and wrong
				unix.Unlinkat(fd, name, 0)
				return errReplaced
			}
			e.id = src.id
			return nil
		})
	})
}

// atParent runs fn with a descriptor of e's parent directory, opened
// without following any symlink, so no symlink can lead fn outside the
// target.
func (r *restorer) atParent(e *entry, fn func(fd int, name string) error) error {
	fd, name, done, err := r.dirs.at(e)
	if err != nil {
		return err
	}
	defer done()
	if e.tmp != "" {
		name = e.tmp // the file is being written beside its name
	}
	return fn(fd, name)
}

// unlink removes e's file after a failure, unless the name now holds
// another inode than the one the restore created (that is not the
// restore's to remove).
func (r *restorer) unlink(e *entry) {
	if !e.id.known() {
		// never made: what is at the name is not the restore's (a live
		// file whose restore failed before its first write must stay)
		return
	}
	r.atParent(e, func(fd int, name string) error {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || idOf(&st) != e.id {
			return err
		}
		return unix.Unlinkat(fd, name, 0)
	})
}

// setMeta sets the owner, mode and times of a directory, symlink, FIFO or
// device the restore made (or, for directories, checked): through an
// O_PATH|O_NOFOLLOW descriptor of the name that must be that very inode,
// so a symlink or hard link swapped in under the name meanwhile is never
// changed (a warning says so instead). Regular files get theirs in
// finishFile, through their own descriptor.
func (r *restorer) setMeta(e *entry) {
	if e.keepMeta || !e.id.known() {
		return // an existing ancestor of the confine paths; or never made
	}
	hook("meta", e)
	err := r.atParent(e, func(dfd int, name string) error {
		fd, err := openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		if idOf(&st) != e.id {
			return errReplaced
		}
		r.applyMeta(e, fd, true)
		return nil
	})
	if err != nil {
		r.warn("%s/%s: metadata not set: %v", e.ct.name, e.rel, err)
	}
}

// createMode is the mode a regular file is created with: its own when
// that lets no one read what they could not read in the end (world
// readable, written by its owner alone, no set-id or sticky bit), so no
// chmod follows; else 0600 until its metadata is set.
func (r *restorer) createMode(e *entry) uint32 {
	if r.opts.Untrusted {
		return 0o600
	}
	m := unixMode(e.node.Mode)
	if m&^0o777 != 0 || m&0o004 == 0 || m&0o022 != 0 {
		return 0o600
	}
	return m
}

// applyMeta sets e's owner, mode and times on the inode open at fd (an
// O_PATH descriptor when opath: it cannot be used with fchmod, and the
// *at calls with an empty name and AT_EMPTY_PATH act on it instead). The
// chown comes first: it clears set-id bits the chmod then restores. A
// file this restore created is not given again the owner or mode it was
// created with (two system calls a file: a fifth of a restore's).
func (r *restorer) applyMeta(e *entry, fd int, opath bool) {
	n := e.node
	chowned := false
	if r.isRoot && !r.opts.Untrusted && !(e.made.known && e.made.uid == n.UID && e.made.gid == n.GID) {
		if err := unix.Fchownat(fd, "", int(n.UID), int(n.GID), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
			r.warn("%s/%s: chown: %v", e.ct.name, e.rel, err)
		}
		chowned = true
	}
	if n.Type != repository.NodeSymlink {
		var err error
		mode := unixMode(n.Mode)
		if r.opts.Untrusted && mode&^0o777 != 0 {
			mode &= 0o777
			r.warn("%s/%s: set-id and sticky bits dropped (another host's backup)", e.ct.name, e.rel)
		}
		switch {
		case e.made.known && !chowned && e.made.mode == mode:
			// created so
		case !opath:
			err = unix.Fchmod(fd, mode)
		default:
			if err = unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH); err == unix.EOPNOTSUPP || err == unix.ENOSYS {
				// no fchmodat2 (before Linux 6.6): the descriptor's own
				// /proc link names exactly its inode (it is no symlink:
				// the caller checked the inode)
				err = unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), mode)
			}
		}
		if err != nil {
			r.warn("%s/%s: chmod: %v", e.ct.name, e.rel, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime(n)), unix.NsecToTimespec(n.ModTime)}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		r.warn("%s/%s: times: %v", e.ct.name, e.rel, err)
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

// fstatOrClose stats a descriptor just opened, closing it when that fails.
func fstatOrClose(fd int) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &st, nil
}

func randomSuffix() []byte {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}
