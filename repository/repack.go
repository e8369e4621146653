package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"sync"

	"backupd/storage"
)

// Repack is the part of a garbage collection that reclaims partly used
// packs. Deleting only packs nobody references keeps a pack whole for as
// long as one of its blobs is live, so under retention a repository grows
// without bound. Repack copies the live blobs of packs with too much
// unused space (and merges packs that are too small) into new packs, and
// then leaves the old packs to the rules of gc.go: once the copies are
// indexed the old packs are unreferenced, so they are condemned and
// deleted a safety window later, or at once when the window is zero and
// nobody writes. It takes no lock, for the same reasons GC needs none:
//
//   - only packs older than the safety window (and than every open writer)
//     are rewritten, and never one a pending marker names;
//   - the copies are stored and indexed before the old pack is condemned,
//     so at every step each live blob is in an indexed pack: a crash
//     leaves at worst a second copy, which a later collection removes;
//   - a writer that deduplicated against an old pack before it was
//     condemned holds back its deletion (writersAfter in gc.go); a reader
//     that finds it gone reads the index again (Repository.packGone).
//
// Blobs are passed on in the form they were stored in (compressed), sealed
// again with the new pack's key, after their content was verified: a blob
// that does not read back keeps its pack, which is reported.

// Repack defaults.
const (
	// DefaultRepackUnused: a pack with more unused space than this share
	// of its size is rewritten.
	DefaultRepackUnused = 0.10
	// DefaultRepackMaxUnused: while the unused space in packs is more than
	// this share of all of them, the packs with the most are rewritten
	// too. The per-pack threshold alone leaves packs up to 10% unused,
	// about 5% on average. restic's prune keeps 5% by default; with the
	// blobs of older backups kept apart (see referencedBlobs) a tighter
	// bound costs less than that did: in bench case C (30 days, 5% of the
	// files rewritten a day, the last 3 backups kept) 5% rewrote 452 MB
	// and left the repository at 120.8 MB on day 30, 2% rewrote 504-512
	// MB for 119.2-120.4 MB, 1% 593-603 MB for 119.1-119.4 MB; before the
	// blobs were kept apart, 5% rewrote 668-703 MB for 121.2-123.3 MB.
	DefaultRepackMaxUnused = 0.02
	// DefaultRepackSmall: packs below this size are merged (when there are
	// more of one blob type than the lanes their blobs go to).
	DefaultRepackSmall = TargetPackSize / 4
	// DefaultRepackBudget bounds the live bytes one run copies.
	DefaultRepackBudget = 2 << 30
)

// RepackOptions tune repacking; zero fields take the defaults.
type RepackOptions struct {
	Unused float64 // share of a pack's size, 0 < Unused < 1
	// MaxUnused: share of all packs' size; negative: no such bound
	MaxUnused float64
	Small     int64 // bytes
	Budget    int64 // live (stored) bytes copied per run
}

func (o RepackOptions) withDefaults() RepackOptions {
	if o.Unused <= 0 || o.Unused >= 1 {
		o.Unused = DefaultRepackUnused
	}
	if o.MaxUnused == 0 || o.MaxUnused >= 1 {
		o.MaxUnused = DefaultRepackMaxUnused
	}
	if o.Small <= 0 {
		o.Small = DefaultRepackSmall
	}
	if o.Budget <= 0 {
		o.Budget = DefaultRepackBudget
	}
	return o
}

// RepackResult reports what repacking did (or, in a dry run, would do).
type RepackResult struct {
	// Qualifying: packs over the unused threshold or under the small size
	// (old enough to touch); Packs: those rewritten this run.
	Qualifying int `json:"qualifying_packs"`
	Packs      int `json:"packs"`
	Blobs      int `json:"blobs"`
	// LiveBytes: the stored bytes of the live blobs copied; PackBytes: the
	// size of the packs they came from; Frees: what the run frees once the
	// old packs are deleted, net of the new packs (estimated before they
	// are written; Written says what they took).
	LiveBytes int64 `json:"live_bytes"`
	PackBytes int64 `json:"pack_bytes"`
	Frees     int64 `json:"frees_bytes"`
	// NewPacks and Written: the packs written and their size.
	NewPacks int   `json:"new_packs"`
	Written  int64 `json:"written_bytes"`
	// OverBudget: qualifying packs left for a later run by the budget.
	OverBudget int `json:"over_budget,omitempty"`
	// Damaged: packs left as they were because a live blob in them did
	// not read back ('backupd repo check --read-data' tells more).
	Damaged []string `json:"damaged,omitempty"`
	// Skipped says why nothing was rewritten, when something qualified.
	Skipped string `json:"skipped,omitempty"`

	copies map[BlobType][2]int64 // live bytes and blobs copied, by type
}

type repackCandidate struct {
	pack   IndexPack
	typ    BlobType
	size   int64
	live   int64
	unused int64   // bytes of blobs not live
	small  bool    // qualifies by size only
	lanes  laneSet // the lanes its live blobs go to
}

// liveInPack reports whether blob b, listed in pack p, is live there: used
// by a backup and read from p (the index's location for it is p, or a pack
// that is not stored).
func (r *Repository) liveInPack(p ID, b PackEntry, used map[ID]bool, stored map[ID]storage.ObjectInfo) bool {
	if !used[b.ID] {
		return false
	}
	if loc, ok := r.idx.lookup(b.ID); ok && loc.Pack != p {
		if _, there := stored[loc.Pack]; there {
			return false
		}
	}
	return true
}

// planRepack picks the packs to rewrite: old enough (old), not pinned,
// with some live blob; over the unused share or, more of a blob type than
// the lanes their live blobs go to (older's and the others': see
// referencedBlobs), under the small size; then, while the unused space
// left in the packs it may rewrite is over MaxUnused of all packs' size,
// the packs with the most unused share. The ones freeing the most per
// byte copied come first, up to the budget.
func (r *Repository) planRepack(packs []IndexPack, stored map[ID]storage.ObjectInfo, used, older, pinned map[ID]bool,
	old func(storage.ObjectInfo) bool, o RepackOptions) ([]repackCandidate, RepackResult) {
	var cands, rest []repackCandidate
	smallOf := map[BlobType]int{}
	// the lanes the live blobs of small packs go to, by type: merged,
	// they make a pack per lane, so fewer packs than lanes merge into
	// as many again, at every run
	smallLanes := map[BlobType]laneSet{}
	// total: over every pack with a live blob; unusedAll: over those it
	// may rewrite (what is unused in the others cannot be reclaimed now)
	var total, unusedAll int64
	for _, p := range packs {
		oi, there := stored[p.ID]
		if !there || len(p.Blobs) == 0 {
			continue
		}
		c := repackCandidate{pack: p, typ: p.Blobs[0].Type, size: oi.Size}
		var blobs int64 // the header and trailer are not unused space
		for _, b := range p.Blobs {
			blobs += b.Stored()
			if r.liveInPack(p.ID, b, used, stored) {
				c.live += b.Stored()
				c.lanes.add(older[b.ID])
			}
		}
		if c.live == 0 {
			continue // unreferenced: collected whole
		}
		total += c.size
		if pinned[p.ID] || !old(oi) {
			continue
		}
		c.unused = blobs - c.live
		unusedAll += c.unused
		share := float64(c.unused) / float64(blobs)
		switch {
		case share > o.Unused:
		case c.size < o.Small:
			c.small = true
			smallOf[c.typ]++
			smallLanes[c.typ] |= c.lanes
		default:
			if c.unused > 0 {
				rest = append(rest, c)
			}
			continue
		}
		cands = append(cands, c)
	}
	kept := cands[:0]
	for _, c := range cands {
		if !c.small || smallOf[c.typ] > smallLanes[c.typ].count() {
			kept = append(kept, c)
		}
	}
	cands = kept
	byGain := func(cs []repackCandidate) {
		sort.Slice(cs, func(i, j int) bool {
			a, b := cs[i], cs[j]
			fa, fb := float64(a.unused)/float64(a.live), float64(b.unused)/float64(b.live)
			if fa != fb {
				return fa > fb
			}
			return bytes.Compare(a.pack.ID[:], b.pack.ID[:]) < 0
		})
	}
	byGain(cands)
	// the repository-wide bound: what the per-pack rule leaves
	left := unusedAll
	for _, c := range cands {
		left -= c.unused
	}
	byGain(rest)
	for _, c := range rest {
		if o.MaxUnused < 0 || float64(left) <= o.MaxUnused*float64(total) {
			break
		}
		cands = append(cands, c)
		left -= c.unused
	}
	res := RepackResult{Qualifying: len(cands)}
	var chosen []repackCandidate
	var liveChosen int64
	for _, c := range cands {
		if len(chosen) > 0 && liveChosen+c.live > o.Budget {
			res.OverBudget++
			continue
		}
		chosen = append(chosen, c)
		liveChosen += c.live
	}
	// small packs the budget left too few of their type to merge with (no
	// more packs of it chosen than the lanes they go to) stay as they are
	perType := map[BlobType]int{}
	chosenLanes := map[BlobType]laneSet{}
	for _, c := range chosen {
		perType[c.typ]++
		chosenLanes[c.typ] |= c.lanes
	}
	kept = chosen[:0]
	for _, c := range chosen {
		if c.small && perType[c.typ] <= chosenLanes[c.typ].count() {
			res.OverBudget++
			continue
		}
		kept = append(kept, c)
	}
	chosen = kept
	for _, c := range chosen {
		res.count(c, r.liveBlobs(c, used, stored))
	}
	return chosen, res
}

// count adds a rewritten pack to the figures.
func (res *RepackResult) count(c repackCandidate, blobs int) {
	res.Packs++
	res.Blobs += blobs
	res.LiveBytes += c.live
	res.PackBytes += c.size
	if res.copies == nil {
		res.copies = map[BlobType][2]int64{}
	}
	t := res.copies[c.typ]
	res.copies[c.typ] = [2]int64{t[0] + c.live, t[1] + int64(blobs)}
	// net of the copies: their blobs, a header entry each, and each new
	// pack's sealed header and trailer (the copies of each blob type fill
	// packs of their own)
	res.Frees = res.PackBytes
	for _, t := range res.copies {
		copies := t[0] + t[1]*packEntryLen
		packs := (copies + TargetPackSize - 1) / TargetPackSize
		res.Frees -= copies + packs*(sealOverhead+packTrailerLen)
	}
}

// liveLocs lists pack c's live blobs, by offset.
func (r *Repository) liveLocs(c repackCandidate, used map[ID]bool, stored map[ID]storage.ObjectInfo) []BlobLocation {
	var locs []BlobLocation
	for _, b := range c.pack.Blobs {
		if r.liveInPack(c.pack.ID, b, used, stored) {
			locs = append(locs, BlobLocation{Pack: c.pack.ID, EphPublic: c.pack.EphPublic, PackEntry: b})
		}
	}
	sort.Slice(locs, func(i, j int) bool { return locs[i].Offset < locs[j].Offset })
	return locs
}

func (r *Repository) liveBlobs(c repackCandidate, used map[ID]bool, stored map[ID]storage.ObjectInfo) int {
	n := 0
	for _, b := range c.pack.Blobs {
		if r.liveInPack(c.pack.ID, b, used, stored) {
			n++
		}
	}
	return n
}

// laneSet: the lanes blobs go to, others' (bit 0) and older's (bit 1).
type laneSet uint8

func (l *laneSet) add(short bool) {
	if short {
		*l |= 2
	} else {
		*l |= 1
	}
}

// count is how many lanes l names (at least 1).
func (l laneSet) count() int { return max(1, bits.OnesCount8(uint8(l))) }

// repack copies the live blobs of chosen into new packs and indexes them,
// the blobs of older (used by older backups only) into packs of their own,
// and sets res's figures to what it did. It returns the new packs (id ->
// size). On an error nothing is condemned; packs already written are
// unreferenced and collected later.
func (r *Repository) repack(ctx context.Context, chosen []repackCandidate, used, older map[ID]bool,
	stored map[ID]storage.ObjectInfo, res *RepackResult) (map[ID]int64, error) {
	// The old packs are condemned in this index first: saving a blob then
	// stores it anew instead of finding it where it is, and once the copy
	// is indexed the index reads it from there.
	r.idx.mu.Lock()
	for _, c := range chosen {
		if pi, ok := r.idx.packByID[c.pack.ID]; ok {
			if r.idx.condemned == nil {
				r.idx.condemned = map[uint32]bool{}
			}
			r.idx.condemned[pi] = true
		}
	}
	r.idx.preferHealthyLocked()
	r.idx.mu.Unlock()

	var mu sync.Mutex // the uploaders call OnPackCommitted concurrently
	written := map[ID]int64{}
	r.OnPackCommitted = func(pc PackCommit) {
		mu.Lock()
		written[pc.Pack] = pc.StoredSize
		mu.Unlock()
	}
	r.repacking = true
	defer func() { r.OnPackCommitted, r.repacking = nil, false }()
	sort.SliceStable(chosen, func(i, j int) bool { return chosen[i].typ < chosen[j].typ })
	*res = RepackResult{Qualifying: res.Qualifying, OverBudget: res.OverBudget}
	for _, c := range chosen {
		blobs, err := r.repackOne(ctx, c, used, older, stored)
		switch {
		case err == nil:
			res.count(c, blobs)
		case ctx.Err() != nil || errors.Is(err, errRepackStore):
			r.Abort()
			r.idx.reset() // the condemnations above were this run's alone
			return nil, fmt.Errorf("repacking pack %s: %w", c.pack.ID.Short(), err)
		default:
			// This pack cannot be read whole: what was not copied keeps
			// it referenced, so it stays; the others go on.
			res.Damaged = append(res.Damaged, fmt.Sprintf("%s: %v", c.pack.ID, err))
		}
	}
	if err := r.Flush(ctx); err != nil {
		r.idx.reset()
		return nil, fmt.Errorf("repack: %w", err)
	}
	for _, n := range written {
		res.NewPacks++
		res.Written += n
	}
	return written, nil
}

// errRepackStore marks a failure to store copies (as opposed to reading
// the pack being rewritten): it stops the repack.
var errRepackStore = errors.New("storing the copies")

// repackOne reads pack c's live blobs with one ranged read and saves them
// again, and returns how many it copied. An error that is not
// errRepackStore is the pack's own: it could not be read, or a blob in it
// does not decode (such a blob is left where it is, so its pack stays).
func (r *Repository) repackOne(ctx context.Context, c repackCandidate, used, older map[ID]bool, stored map[ID]storage.ObjectInfo) (int, error) {
	locs := r.liveLocs(c, used, stored)
	if len(locs) == 0 {
		return 0, nil
	}
	rc, start, err := r.openSpan(ctx, locs)
	if err != nil {
		return 0, fmt.Errorf("reading: %w", err)
	}
	defer rc.Close()
	aead, err := r.session(c.pack.EphPublic)
	if err != nil {
		return 0, err
	}
	// Every live blob is read and verified before any is stored again: a
	// pack that is not wholly readable is left as it is, and no copy of
	// part of it is made (it would free nothing).
	type blob struct {
		l     BlobLocation
		plain []byte // a blob's stored form, or a member's content
	}
	var blobs []blob
	bad := 0
	var firstBad error
	d := blobDecoder{r: r}
	var prev ID
	err = readSealed(rc, start, locs, false, func(l BlobLocation, sealed []byte) error {
		if l.Bundled() {
			// members are bundled again with the blobs saved beside them
			data, err := d.decode(l, sealed)
			if err != nil {
				if bad == 0 {
					firstBad = err
				}
				bad++
				return nil
			}
			blobs = append(blobs, blob{l, bytes.Clone(data)})
			return nil
		}
		if sealed == nil {
			if l.ID != prev {
				if bad == 0 {
					firstBad = fmt.Errorf("blob %s: %w: indexed at the offset of blob %s", l.ID.Short(), ErrCorrupt, prev.Short())
				}
				bad++
			}
			return nil // listed twice
		}
		prev = l.ID
		plain, err := openInPlace(aead, sealed, blobAD(l.Type, l.ID))
		if err != nil {
			err = fmt.Errorf("%w: does not authenticate", ErrCorrupt)
		} else {
			var data []byte
			if data, err = decompress(plain, int(l.RawLength)); err == nil && r.ids.Sum(data) != l.ID {
				err = fmt.Errorf("%w: content does not match its id", ErrCorrupt)
			}
		}
		if err != nil {
			if bad == 0 {
				firstBad = fmt.Errorf("blob %s: %w", l.ID.Short(), err)
			}
			bad++
			return nil
		}
		blobs = append(blobs, blob{l, plain})
		return nil
	})
	if err != nil {
		return 0, err
	}
	if bad > 0 {
		return 0, fmt.Errorf("%d of %d live blobs do not read back (first %v)", bad, len(locs), firstBad)
	}
	for _, b := range blobs {
		var err error
		ln := lane{typ: b.l.Type, short: older[b.l.ID]}
		if b.l.Bundled() {
			_, err = r.saveIn(ctx, ln, b.l.ID, b.plain)
		} else {
			_, err = r.saveEncoded(ctx, ln, b.l.ID, int(b.l.RawLength), func(dst []byte) []byte { return append(dst, b.plain...) })
		}
		if err != nil {
			return 0, fmt.Errorf("%w: %v", errRepackStore, err)
		}
	}
	return len(blobs), nil
}
