package repository

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"

	"backupd/storage"
)

// CheckOptions choose how deep the checker reads.
type CheckOptions struct {
	// ReadDataPercent of the packs are downloaded whole and every blob in
	// them decrypted and verified (0: structure and metadata only; 100: all).
	ReadDataPercent float64
	Progress        func(stage string, done, total int)
}

// CheckProblem is one finding.
type CheckProblem struct {
	Kind    string `json:"kind"` // index | pack | manifest | tree | blob
	Object  string `json:"object"`
	Message string `json:"message"`
}

// CheckResult is the checker's report. OK is false when any Error exists;
// Warnings (such as packs left by an interrupted backup) do not fail it.
type CheckResult struct {
	OK            bool           `json:"ok"`
	IndexFiles    int            `json:"index_files"`
	Packs         int            `json:"packs"`
	PacksRead     int            `json:"packs_read"`
	Blobs         int            `json:"blobs"`
	Manifests     int            `json:"manifests"`
	Trees         int            `json:"trees"`
	Errors        []CheckProblem `json:"errors"`
	Warnings      []CheckProblem `json:"warnings"`
	DamagedPacks  []string       `json:"damaged_packs"`
	AffectedFiles []string       `json:"affected_files"` // backup:component:/path
}

type checker struct {
	r   *Repository
	res *CheckResult
	mu  sync.Mutex
	bad map[ID]bool // blobs missing or damaged
}

func (c *checker) problem(warn bool, kind, obj, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := CheckProblem{Kind: kind, Object: obj, Message: fmt.Sprintf(format, args...)}
	if warn {
		c.res.Warnings = append(c.res.Warnings, p)
	} else {
		c.res.Errors = append(c.res.Errors, p)
	}
}

// Check verifies the repository independently of the code paths that
// wrote it: every index file, every pack's header against the index, every
// manifest's signature, every tree, that every referenced blob exists, and
// (by option) the content of a share of the packs.
func Check(ctx context.Context, r *Repository, opts CheckOptions) (*CheckResult, error) {
	if r.cache != nil {
		// The check is of the repository, not of this client's copies of
		// it: a cached index file or tree pack (a writer caches its own)
		// would hide damage to the stored one.
		s := r.Session()
		s.cache = nil
		r = s
	}
	c := &checker{r: r, res: &CheckResult{}, bad: map[ID]bool{}}
	if !r.keys.CanRead() {
		return nil, ErrWriteOnly
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string, int, int) {}
	}
	// 1. index files, each on its own, so one bad file is reported, not
	// fatal. A file gone since the listing was merged into a new one (a
	// writer does so past IndexFileBound): the listing is taken again for it.
	seen := map[string]bool{}
	for round := 0; round < 5; round++ {
		var indexNames []string
		if err := r.be.List(ctx, "index/", func(oi storage.ObjectInfo) error {
			if !seen[oi.Name] {
				indexNames = append(indexNames, oi.Name)
			}
			return nil
		}); err != nil {
			return nil, err
		}
		vanished := false
		for _, n := range indexNames {
			seen[n] = true
			id, err := ParseID(path.Base(n))
			if err != nil {
				c.problem(true, "index", n, "not an index file name")
				continue
			}
			f, err := r.readIndexFile(ctx, id)
			if errors.Is(err, storage.ErrNotFound) {
				vanished = true
				continue
			}
			c.res.IndexFiles++
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				c.problem(false, "index", n, "%v", err)
				continue
			}
			r.idx.mu.Lock()
			for _, p := range f.Packs {
				r.idx.addPackLocked(p)
			}
			r.idx.files[id] = true
			r.idx.mu.Unlock()
		}
		if !vanished {
			break
		}
	}
	// 2. packs: present with their indexed blobs, headers agree with the index
	stored := map[ID]storage.ObjectInfo{}
	if err := r.be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		id, err := ParseID(path.Base(oi.Name))
		if err != nil || oi.Name != packName(id) {
			c.problem(true, "pack", oi.Name, "unexpected object under data/")
			return nil
		}
		stored[id] = oi
		return nil
	}); err != nil {
		return nil, err
	}
	packs, err := r.idx.wholePacks()
	if err != nil {
		return nil, err
	}
	c.res.Packs, c.res.Blobs = len(stored), r.idx.Len()
	indexed := map[ID]bool{}
	for _, p := range packs {
		indexed[p.ID] = true
	}
	for id := range stored {
		if !indexed[id] {
			c.problem(true, "pack", packName(id), "pack is not in the index: left by an interrupted backup (gc removes it), or its index file was lost ('backupd repo repair-index' indexes it again)")
		}
	}
	var done int
	err = parallel(ctx, len(packs), 4, func(i int) error {
		p := packs[i]
		if _, ok := stored[p.ID]; !ok {
			c.problem(false, "pack", packName(p.ID), "pack is missing: %d blob(s) lost", len(p.Blobs))
			c.markBad(p.Blobs)
			return nil
		}
		if err := c.checkPackHeader(ctx, p, stored[p.ID].Size); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.problem(false, "pack", packName(p.ID), "%v", err)
			c.damaged(p)
		}
		c.mu.Lock()
		done++
		progress("packs", done, len(packs))
		c.mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	// 3. content of a share of the packs
	if opts.ReadDataPercent > 0 {
		sel := choosePacks(packs, opts.ReadDataPercent, stored)
		c.res.PacksRead = len(sel)
		done = 0
		err := parallel(ctx, len(sel), 2, func(i int) error {
			if err := c.readPack(ctx, sel[i], stored[sel[i].ID].Size); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				c.problem(false, "pack", packName(sel[i].ID), "%v", err)
				c.damaged(sel[i])
			}
			c.mu.Lock()
			done++
			progress("read", done, len(sel))
			c.mu.Unlock()
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// 4. manifests (loose, in sets, tombstones) and trees; then which
	// files the damage touches
	view, err := r.listManifestView(ctx, true)
	if err != nil {
		return nil, err
	}
	for _, p := range view.problems {
		c.problem(false, "tombstone", "", "%v", p)
	}
	refs, errs := view.refs()
	for _, e := range errs {
		c.problem(false, "manifest", "", "%v", e)
	}
	c.res.Manifests = len(refs)
	manifests := make([]*Manifest, len(refs))
	seenTrees := map[ID]bool{}
	for i, ref := range refs {
		m, err := r.loadRef(ctx, ref)
		if ref.loose != nil && errors.Is(err, ErrBackupNotFound) {
			// folded into a set since the listing (by a collection, or
			// another host's backup), or deleted
			if m, err = r.LoadManifest(ctx, ref.id); errors.Is(err, ErrBackupNotFound) {
				c.res.Manifests--
				continue
			}
		}
		if err != nil {
			obj := manifestsPrefix + ref.id
			if ref.set != nil {
				obj = ref.set.oi.Name
			}
			c.problem(false, "manifest", obj, "%v", err)
			continue
		}
		manifests[i] = m
		for _, comp := range m.Components {
			if comp.Error != "" {
				continue
			}
			if err := c.walkTree(ctx, comp.Tree, "/", seenTrees, nil); err != nil {
				return nil, err
			}
		}
	}
	if len(c.bad) > 0 {
		for _, m := range manifests {
			if m == nil {
				continue
			}
			for _, comp := range m.Components {
				if comp.Error != "" {
					continue
				}
				prefix := m.ID + ":" + comp.Name + ":"
				c.walkTree(ctx, comp.Tree, "/", map[ID]bool{}, func(p string) {
					c.res.AffectedFiles = append(c.res.AffectedFiles, prefix+p)
				})
			}
		}
	}
	sort.Strings(c.res.DamagedPacks)
	c.res.OK = len(c.res.Errors) == 0
	return c.res, nil
}

func (c *checker) markBad(bs []PackEntry) {
	c.mu.Lock()
	for _, b := range bs {
		c.bad[b.ID] = true
	}
	c.mu.Unlock()
}

func (c *checker) damaged(p IndexPack) {
	c.mu.Lock()
	c.res.DamagedPacks = append(c.res.DamagedPacks, packName(p.ID))
	c.mu.Unlock()
}

func (c *checker) checkPackHeader(ctx context.Context, p IndexPack, size int64) error {
	if size < packTrailerLen {
		c.markBad(p.Blobs)
		return fmt.Errorf("%w: pack of %d bytes is truncated", ErrCorrupt, size)
	}
	tb, err := readRange(ctx, c.r.be, packName(p.ID), size-packTrailerLen, packTrailerLen)
	if err != nil {
		return err
	}
	tr, err := decodePackTrailer(tb)
	if err != nil {
		c.markBad(p.Blobs)
		return err
	}
	if int64(tr.headerLen) > size-packTrailerLen {
		c.markBad(p.Blobs)
		return fmt.Errorf("%w: header length exceeds pack", ErrCorrupt)
	}
	hstart := size - packTrailerLen - int64(tr.headerLen)
	hb, err := readRange(ctx, c.r.be, packName(p.ID), hstart, int64(tr.headerLen))
	if err != nil {
		return err
	}
	aead, err := c.r.session(tr.ephPublic)
	if err != nil {
		return err
	}
	plain, err := open(aead, nil, hb, headerAD())
	if err != nil {
		c.markBad(p.Blobs)
		return fmt.Errorf("%w: pack header does not authenticate", ErrCorrupt)
	}
	entries, err := decodePackHeader(plain, hstart, tr.members)
	if err != nil {
		c.markBad(p.Blobs)
		return err
	}
	inPack := map[ID]PackEntry{}
	for _, e := range entries {
		inPack[e.ID] = e
	}
	var missing []PackEntry
	for _, b := range p.Blobs {
		if e, ok := inPack[b.ID]; !ok || e != b {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		c.markBad(missing)
		return fmt.Errorf("%w: %d indexed blob(s) not found as indexed in the pack header", ErrCorrupt, len(missing))
	}
	return nil
}

func readRange(ctx context.Context, be storage.Backend, name string, off, n int64) ([]byte, error) {
	rc, err := be.Get(ctx, name, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	_, err = io.ReadFull(rc, b)
	return b, err
}

// readPack downloads a pack, checks its hash, and decodes every blob.
func (c *checker) readPack(ctx context.Context, p IndexPack, size int64) error {
	raw, release, err := readWholePack(ctx, c.r.be, p.ID, size)
	if err != nil {
		return err
	}
	defer release()
	var problems []string
	if ID(sha256.Sum256(raw)) != p.ID {
		problems = append(problems, "content does not match its name (SHA-256)")
	}
	entries, eph, _, err := parsePack(raw, c.r.keys.DataPrivate)
	if err != nil {
		c.markBad(p.Blobs)
		return err
	}
	var badBlobs []PackEntry
	var sealed []byte // one buffer for every blob of the pack
	d := blobDecoder{r: c.r}
	slices.SortStableFunc(entries, func(a, b PackEntry) int { return cmp.Compare(a.Offset, b.Offset) })
	for i, e := range entries {
		var s []byte // nil: the item decoded last (a bundle, or the blob again)
		if i == 0 || e.Offset != entries[i-1].Offset {
			sealed = append(sealed[:0], raw[e.Offset:e.Offset+e.Length]...)
			s = sealed
		}
		if _, err := d.decode(BlobLocation{Pack: p.ID, EphPublic: eph, PackEntry: e}, s); err != nil {
			badBlobs = append(badBlobs, e)
		}
	}
	if len(badBlobs) > 0 {
		c.markBad(badBlobs)
		var names []string
		for _, b := range badBlobs {
			names = append(names, b.Type.String()+" "+b.ID.Short())
		}
		problems = append(problems, fmt.Sprintf("%d damaged blob(s): %s", len(badBlobs), strings.Join(names, ", ")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrCorrupt, strings.Join(problems, "; "))
	}
	return nil
}

// readWholePack reads a pack of the listed size into a pack buffer (a
// growing buffer doubled a large pack's memory), or, larger than one, as
// it comes; release gives the buffer back.
func readWholePack(ctx context.Context, be storage.Backend, id ID, size int64) ([]byte, func(), error) {
	if size <= 0 || size > int64(packBufMem.size) {
		raw, err := storage.ReadAll(ctx, be, packName(id))
		return raw, func() {}, err
	}
	rc, err := be.Get(ctx, packName(id), 0, -1)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	buf := packBufMem.get()
	release := func() { packBufMem.put(buf) }
	n, err := io.ReadFull(rc, buf[:size])
	if err == nil {
		var one [1]byte
		if m, _ := io.ReadFull(rc, one[:]); m > 0 {
			err = fmt.Errorf("%w: pack is larger than the %d bytes listed", ErrCorrupt, size)
		}
	} else if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: pack is %d bytes, %d listed", ErrCorrupt, n, size)
	}
	if err != nil {
		release()
		return nil, nil, err
	}
	return buf[:size], release, nil
}

func choosePacks(packs []IndexPack, percent float64, stored map[ID]storage.ObjectInfo) []IndexPack {
	var present []IndexPack
	for _, p := range packs {
		if _, ok := stored[p.ID]; ok {
			present = append(present, p)
		}
	}
	if percent >= 100 {
		return present
	}
	n := int(float64(len(present))*percent/100 + 0.999)
	rand.Shuffle(len(present), func(i, j int) { present[i], present[j] = present[j], present[i] })
	if n > len(present) {
		n = len(present)
	}
	return present[:n]
}

// walkTree checks a tree and its subtrees; with affected set, it instead
// reports the paths of files that use a bad blob.
func (c *checker) walkTree(ctx context.Context, id ID, dir string, seen map[ID]bool, affected func(string)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if affected == nil {
		if seen[id] {
			return nil
		}
		seen[id] = true
		c.res.Trees++
	}
	if c.bad[id] {
		if affected != nil {
			affected(dir + " (directory listing lost)")
		}
		return nil
	}
	t, err := c.r.LoadTree(ctx, id)
	if err != nil {
		if affected == nil {
			c.problem(false, "tree", id.String(), "directory %s: %v", dir, err)
			c.bad[id] = true
		}
		return nil
	}
	for _, n := range t.Nodes {
		p := path.Join(dir, n.Name)
		switch n.Type {
		case NodeDir:
			if err := c.walkTree(ctx, *n.Subtree, p, seen, affected); err != nil {
				return err
			}
		case NodeFile:
			for _, b := range n.Content {
				if affected != nil {
					if c.bad[b] {
						affected(p)
						break
					}
					continue
				}
				if !c.r.idx.has(b) && !c.bad[b] {
					c.problem(false, "blob", b.String(), "file %s: data blob is missing", p)
					c.bad[b] = true
				}
			}
		}
	}
	return nil
}
