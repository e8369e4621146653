package repository

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"backupd/storage"
)

// Garbage collection removes packs that no manifest references. It takes
// no lock and may run while backups write, because of two rules:
//
//  1. A pack is only considered once it is older than the safety window:
//     a running backup's packs have no manifest yet.
//  2. An unreferenced pack is first condemned (listed under gc/); it is
//     deleted by a later run, at least one safety window after, if it is
//     still unreferenced then. Backups do not deduplicate against condemned
//     packs, so a backup that starts after the condemnation never comes to
//     depend on one, and a backup already running then has finished (and
//     its manifest protects what it used) before the deletion.
//
// Both rules assume no backup runs longer than the safety window, except
// for components already finished: their trees are named by pending
// markers (pending.go) until the manifest is written, so a backup paused or
// retried for days keeps them.
// Writers also register (writers.go), and GC reads the registrations when
// it deletes: with a zero window unreferenced packs are deleted at once
// only while no writer is registered, and never a pack younger than the
// oldest registered writer.

// DefaultSafetyWindow bounds the duration of any one backup.
const DefaultSafetyWindow = 6 * time.Hour

// GCOptions tune a garbage collection.
type GCOptions struct {
	DryRun       bool
	SafetyWindow time.Duration
	Now          time.Time // zero: time.Now()
	// Exclude counts these backups' manifests as gone (with DryRun: what
	// removing them would free, computed rather than guessed).
	Exclude []string
	// Repack, when set, also rewrites partly used packs (repack.go).
	Repack *RepackOptions
	// Untrusted: the index files may be another party's word (an enrolled
	// host writes its repository's through the server). A pack that holds
	// a blob a backup uses goes only once the copy the index reads instead
	// has been read back and found whole; a copy this collection wrote is
	// its own. Without it a host that indexed a blob a second time, in a
	// pack of its choosing, could have the real copy collected under its
	// past backups.
	Untrusted bool
}

// GCResult reports what was (or, in a dry run, would be) done.
type GCResult struct {
	Packs           int `json:"packs"`
	ReferencedBlobs int `json:"referenced_blobs"`
	// ReferencedBytes: the stored size of those blobs, once each: what the
	// kept backups need, against which the packs' size is measured.
	ReferencedBytes int64 `json:"referenced_bytes"`
	Unreferenced    int   `json:"unreferenced_packs"`
	Condemned       int   `json:"condemned"`
	Deleted         int   `json:"deleted"`
	BytesFreed      int64 `json:"bytes_freed"`
	// UnreferencedBytes is the size of every unreferenced pack: freed now
	// or, after the safety window, by a later collection.
	UnreferencedBytes int64 `json:"unreferenced_bytes"`
	TooYoung          int   `json:"too_young"`
	DryRun            bool  `json:"dry_run"`
	// OpenWriters is how many writers (writers.go) were registered when
	// GC decided; Deferred counts packs it then did not delete because a
	// writer started while it ran.
	OpenWriters int `json:"open_writers"`
	Deferred    int `json:"deferred,omitempty"`
	// OtherCollections: collections that ran meanwhile (this one then
	// deleted nothing).
	OtherCollections int `json:"other_collections,omitempty"`
	// PackBytes: the size of the packs left stored (what was listed,
	// what a repack wrote, less what was deleted).
	PackBytes int64 `json:"pack_bytes,omitempty"`
	// RepositoryBytes (set by the caller that measures it): the packs and
	// the index, manifests and sets beside them.
	RepositoryBytes int64 `json:"repository_bytes,omitempty"`
	// Unconfirmed (Untrusted only): packs kept because the other copy of
	// a blob they hold did not read back whole.
	Unconfirmed int `json:"unconfirmed,omitempty"`
	// Repack: what rewriting partly used packs did (with Repack set).
	Repack *RepackResult `json:"repack,omitempty"`
	// Manifests: what folding manifests into sets did (not in a dry run,
	// nor while another collection runs).
	Manifests *ManifestCompaction `json:"manifests,omitempty"`
	// Locks: on an immutable location, the locks extended and what waits
	// for its lock to end (locks.go).
	Locks *LockReport `json:"locks,omitempty"`
}

const gcPrefix = "gc/"

type condemnedList struct {
	Packs map[string]time.Time `json:"packs"` // pack id -> when condemned
}

// GC collects garbage; see the package comment above.
func GC(ctx context.Context, r *Repository, opts GCOptions) (*GCResult, error) {
	if !r.keys.CanRead() {
		return nil, ErrWriteOnly
	}
	passed := false
	res, err := collect(ctx, r, opts, &passed)
	if err != nil && !passed && !opts.DryRun && r.lockPeriod() > 0 {
		// what kept backups need is not known: every lock is extended
		// rather than none (locks.go), also when the collection was
		// cancelled (one cancelled every time must not let locks end)
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		defer cancel()
		if _, lerr := r.extendAllLocks(lctx, time.Now()); lerr != nil {
			return res, fmt.Errorf("%w; extending the locks of every object failed too: %v", err, lerr)
		}
		return res, fmt.Errorf("%w (every locked object's lock was extended meanwhile, as what kept backups need could not be told)", err)
	}
	return res, err
}

func collect(ctx context.Context, r *Repository, opts GCOptions, passed *bool) (*GCResult, error) {
	began := time.Now()
	now := opts.Now
	if now.IsZero() {
		now = began
	}
	res := &GCResult{DryRun: opts.DryRun}
	// Other collections see this one and delete nothing meanwhile (a dry
	// run registers too: it must judge as a real one would). The
	// registration's time on the storage's own clock is when this
	// collection began, for comparing with other storage times: packs and
	// the ends of writers.
	self, err := r.register(ctx, collectorsPrefix, "gc")
	if err != nil {
		return nil, fmt.Errorf("gc stopped, nothing deleted: %w", err)
	}
	// ended, not removed: a collection that ran meanwhile still learns of
	// this one (it may have read the index files this one deletes). A dry
	// run changes nothing, and leaves nothing behind.
	defer func() {
		if opts.DryRun {
			self.remove()
		} else {
			self.End()
		}
	}()
	// The format may have moved on since this handle was opened (a
	// worker keeps its handle for days): a newer one this backupd does
	// not know could hold backups it cannot see.
	if err := r.rereadConfig(ctx); err != nil {
		return nil, fmt.Errorf("gc stopped, nothing deleted: %w", err)
	}
	since := began.Add(-clockSkew)
	if oi, err := r.be.Stat(ctx, self.name); err == nil {
		since = oi.ModTime
	}
	if err := r.loadWholeIndex(ctx); err != nil {
		return nil, err
	}
	// Mark. Any unreadable manifest or tree stops gc: deleting on
	// incomplete knowledge could destroy data a backup needs.
	exclude := map[string]bool{}
	for _, id := range opts.Exclude {
		exclude[id] = true
	}
	used, older, pendingPacks, view, err := r.referencedBlobs(ctx, exclude)
	if err != nil {
		return nil, fmt.Errorf("gc stopped, nothing deleted: %w", err)
	}
	res.ReferencedBlobs = len(used)
	// Every referenced blob must be in the index: one that is not may be
	// in a stored pack whose index file was lost, and that pack would be
	// taken for an orphan and deleted. (A backup that committed during the
	// mark wrote index files since the load: they are read first.)
	n, first := r.unindexed(used)
	if n > 0 {
		if err := r.loadWholeIndex(ctx); err != nil {
			return nil, err
		}
		n, first = r.unindexed(used)
	}
	if n > 0 {
		return nil, fmt.Errorf("gc stopped, nothing deleted: %d blobs that backups reference are in no index file (blob %s, first): %w; index the packs no index file lists ('backupd repo repair-index'), then check",
			n, first.Short(), ErrBlobNotFound)
	}

	stored := map[ID]storage.ObjectInfo{}
	if err := r.be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		if id, err := ParseID(path.Base(oi.Name)); err == nil && oi.Name == packName(id) {
			stored[id] = oi
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// A pack the index lists that the listing left out is asked for by
	// name before its entries are dropped: one short listing (a storage
	// that failed or lied) must not unindex data a backup needs.
	var unlisted []ID
	r.idx.mu.RLock()
	for id := range r.idx.packByID {
		if _, ok := stored[id]; !ok {
			unlisted = append(unlisted, id)
		}
	}
	r.idx.mu.RUnlock()
	for _, id := range unlisted {
		if oi, err := r.be.Stat(ctx, packName(id)); err == nil {
			stored[id] = oi
		} else if !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("gc stopped, nothing deleted: pack %s is indexed but not listed, and asking for it failed: %w", id.Short(), err)
		}
	}
	res.Packs = len(stored)
	for id := range used {
		if loc, ok := r.idx.lookup(id); ok {
			res.ReferencedBytes += loc.Stored()
		}
	}
	// the index files read, and what they hold (nothing is loaded after
	// this: the rewrite supersedes exactly these files)
	loadedIndex := r.indexFiles()
	packs, err := r.idx.wholePacks()
	if err != nil {
		return nil, fmt.Errorf("gc stopped, nothing deleted: %w", err)
	}
	usedPack := r.usedPacks(packs, used, pendingPacks, stored)
	condemned, listNames, err := r.loadCondemned(ctx)
	if err != nil {
		return nil, err
	}
	// Who writes (or wrote since this collection began) is read now, at
	// deletion time, and again after the index is rewritten (writers.go
	// has the rules); so is whether another collection runs.
	writers, stale, doneWriters, err := r.openWriters(ctx, writersPrefix, now, since, self.order())
	if err != nil {
		return nil, fmt.Errorf("gc stopped, nothing deleted: %w", err)
	}
	res.OpenWriters = len(writers)
	others, err := r.otherCollectors(ctx, now, since, self, opts.DryRun)
	if err != nil {
		return nil, fmt.Errorf("gc stopped, nothing deleted: %w", err)
	}
	res.OtherCollections = others
	var oldest time.Time
	if len(writers) > 0 {
		oldest = writers[0].started.Add(-clockSkew)
	}
	tooYoung := func(oi storage.ObjectInfo) bool {
		return now.Sub(oi.ModTime) < opts.SafetyWindow || (!oldest.IsZero() && !oi.ModTime.Before(oldest)) ||
			!oi.ModTime.Before(since)
	}
	// Immutable location (locks.go): the last pass is read once, for
	// every estimate of a lock's end this collection makes.
	period := r.lockPeriod()
	var pass time.Time
	estimate := period
	if period > 0 {
		res.Locks = newLockReport(period)
		pass, estimate = r.lockPassOf(ctx)
		res.Locks.setPass(pass)
	}
	// Loose manifests are folded into sets, by this collection alone
	// (manifestset.go); the view is the one the mark read.
	if !opts.DryRun && others == 0 {
		var mc *ManifestCompaction
		var err error
		if res.Locks != nil {
			mc, err = r.compactManifestsLocked(ctx, view, now, opts.SafetyWindow, self.Valid, pass, estimate, res.Locks)
		} else {
			mc, err = r.compactManifests(ctx, view, now, opts.SafetyWindow, self.Valid)
		}
		if err != nil {
			return nil, fmt.Errorf("gc stopped while folding manifests (every backup is intact): %w", err)
		}
		res.Manifests = mc
	}
	fresh := map[ID]bool{} // packs this collection wrote
	if opts.Repack != nil {
		o := opts.Repack.withDefaults()
		chosen, rr := r.planRepack(packs, stored, used, older, pendingPacks, func(oi storage.ObjectInfo) bool { return !tooYoung(oi) }, o)
		res.Repack = &rr
		switch {
		case len(chosen) > 0 && r.lockPeriod() >= storage.LockForever:
			// the packs it would replace could never go
			rr = RepackResult{Qualifying: rr.Qualifying, Skipped: "the location is append-only: the packs a repack replaces would stay"}
		case len(chosen) == 0 || opts.DryRun:
		case others > 0:
			rr = RepackResult{Qualifying: rr.Qualifying, Skipped: "another collection is running"}
		case self.Valid() != nil:
			// stalled past its lease in the mark: its copies could not be
			// indexed (registrationsValid), and it deletes nothing anyway
			rr = RepackResult{Qualifying: rr.Qualifying, Skipped: "this collection's registration lapsed"}
		default:
			written, err := r.repack(ctx, chosen, used, older, stored, res.Repack)
			if err != nil {
				return nil, fmt.Errorf("gc stopped, nothing deleted: %w", err)
			}
			// The copies are stored and indexed: the packs they came from
			// are now unreferenced, and go the way of every such pack.
			for id, n := range written {
				stored[id] = storage.ObjectInfo{Name: packName(id), Size: n, ModTime: now}
				fresh[id] = true
			}
			loadedIndex = r.indexFiles()
			if packs, err = r.idx.wholePacks(); err != nil {
				return nil, fmt.Errorf("gc stopped, nothing deleted: %w", err)
			}
			usedPack = r.usedPacks(packs, used, pendingPacks, stored)
		}
	}
	// Immutable location: the objects kept backups need stay locked
	// (locks.go); what is to go waits for its lock.
	if period > 0 {
		if !opts.DryRun {
			revoked, err := r.revokedKeys(ctx)
			if err != nil {
				return nil, fmt.Errorf("gc stopped, nothing deleted: %w", err)
			}
			live, err := r.lockRoots(ctx, revoked)
			if err != nil {
				return nil, fmt.Errorf("gc stopped, nothing deleted: %w", err)
			}
			for id, oi := range stored {
				if usedPack[id] {
					live = append(live, oi)
				}
			}
			for id, oi := range view.loose {
				if _, dead := view.tombs[id]; !dead {
					live = append(live, oi)
				}
			}
			for _, s := range view.sets {
				live = append(live, s.oi)
			}
			if err := r.extendLocks(ctx, live, pass, estimate, now, res.Locks); err != nil {
				return nil, fmt.Errorf("gc stopped, nothing deleted: extending the locks of what kept backups need: %w", err)
			}
			*passed = true
			if err := r.collectRevokedKeys(ctx, revoked, pass, estimate, now, res.Locks); err != nil {
				return nil, fmt.Errorf("gc stopped, nothing deleted: removing revoked key entries: %w", err)
			}
		}
	}
	newCondemned := map[string]time.Time{}
	var toDelete []ID
	for id, oi := range stored {
		if usedPack[id] {
			continue
		}
		res.Unreferenced++
		res.UnreferencedBytes += oi.Size
		if tooYoung(oi) {
			res.TooYoung++
			continue
		}
		when, wasCondemned := condemned[id.String()]
		// a condemned pack may go once every open writer started after its
		// condemnation (those load the condemned list and avoid it)
		writersAfter := oldest.IsZero() || (wasCondemned && when.Before(oldest))
		// with another collection running nothing is deleted: only condemned
		alone := others == 0
		// Packs to delete stay condemned until they are gone: a writer
		// that loads the index meanwhile does not come to depend on them.
		switch {
		case alone && opts.SafetyWindow == 0 && len(writers) == 0,
			alone && wasCondemned && now.Sub(when) >= opts.SafetyWindow && writersAfter:
			if end, locked := surelyLocked(oi, pass, estimate, now); locked {
				res.Locks.WaitingPacks++
				res.Locks.WaitingBytes += oi.Size
				res.Locks.waiting(end)
				if !wasCondemned {
					res.Condemned++
				}
				newCondemned[id.String()] = when
				continue
			}
			toDelete = append(toDelete, id)
			res.BytesFreed += oi.Size
			if !wasCondemned {
				when = time.Time{} // stamped when the list is written
			}
			newCondemned[id.String()] = when
		case wasCondemned:
			newCondemned[id.String()] = when
		default:
			newCondemned[id.String()] = time.Time{}
			res.Condemned++
		}
	}
	if opts.Untrusted && !opts.DryRun && len(toDelete) > 0 {
		bad, err := r.unconfirmedCopies(ctx, toDelete, packs, used, stored, fresh)
		if err != nil {
			return nil, fmt.Errorf("gc stopped, nothing deleted: %w", err)
		}
		kept := toDelete[:0]
		for _, id := range toDelete {
			if !bad[id] {
				kept = append(kept, id)
				continue
			}
			// not even condemned: the pack holds the one good copy
			res.BytesFreed -= stored[id].Size
			res.Unconfirmed++
			delete(newCondemned, id.String())
		}
		toDelete = kept
	}
	res.Deleted = len(toDelete)
	for _, oi := range stored {
		res.PackBytes += oi.Size
	}
	res.PackBytes -= res.BytesFreed
	if opts.DryRun {
		return res, nil
	}
	for _, n := range stale {
		_ = r.be.Delete(ctx, n) // a writer that died a day ago
	}
	if others == 0 {
		for _, n := range doneWriters {
			_ = r.be.Delete(ctx, n) // ended before this collection began
		}
	}
	// Write the new condemned list before deleting the old lists. A
	// condemnation's time is when the list is written, not when this
	// collection began: a writer that registered during a long mark
	// loaded the list without these packs, and a later collection must
	// not take them for condemned before it started (review).
	stamp := func() time.Time { return now.Add(time.Since(began)) }
	list, err := r.saveCondemned(ctx, newCondemned, listNames, stamp)
	if err != nil {
		return nil, err
	}
	missing := 0
	for _, p := range packs {
		if _, there := stored[p.ID]; !there {
			missing++
		}
	}
	if len(toDelete) == 0 && missing == 0 {
		return res, nil
	}
	// The index is rewritten without the packs first, then they go: a
	// crash in between leaves unindexed packs (removed next time), never
	// index entries pointing at nothing.
	gone := map[ID]bool{}
	for _, id := range toDelete {
		gone[id] = true
	}
	// Entries of packs no longer stored (deleted by a collection whose
	// index this one had read, or indexed again by a repair racing a
	// deletion) are dropped: a writer would deduplicate against them and
	// fail its commit every time.
	var keep, dropped []IndexPack
	for _, p := range packs {
		_, there := stored[p.ID]
		switch {
		case gone[p.ID]:
			dropped = append(dropped, p)
		case there:
			keep = append(keep, p)
		}
	}
	if _, err := r.writeIndexFile(ctx, &IndexFile{Supersedes: loadedIndex, Packs: keep}, false); err != nil {
		return nil, err
	}
	// From here on the packs are out of the index, and a writer that
	// registered since the first look may have loaded the old index and
	// deduplicated against them: unless the old index is gone and no new
	// writer is seen after that, they are put back in the index,
	// condemned, and nothing is deleted this time. (An error deleting an
	// old index file once returned here with the packs left unindexed
	// under a backup that had just deduplicated against them: the soak's
	// "data blob is missing".)
	failed := r.deleteIndexFiles(ctx, loadedIndex)
	recheck := now.Add(time.Since(began))
	err = failed
	if err == nil {
		err = r.newWriters(ctx, writers, recheck, since, self.order())
	}
	// Nor is anything deleted when another collection registered meanwhile
	// (each keeps the one copy of a duplicated blob its own index reads,
	// and repack duplicates every blob it moves: two at once could each
	// delete the copy the other kept), or when this one's own registration
	// lapsed (stalled past its lease: a collection that started since did
	// not count it). (review)
	if err == nil {
		if n, cerr := r.otherCollectors(ctx, recheck, since, self, true); cerr != nil {
			err = cerr
		} else if n > 0 {
			err = errors.New("another collection started during this one")
		}
	}
	if err == nil {
		err = self.Valid()
	}
	if err != nil {
		if len(dropped) > 0 {
			if _, ierr := r.writeIndexFile(ctx, &IndexFile{Packs: dropped}, false); ierr != nil {
				return nil, fmt.Errorf("gc: %v, and restoring the index of %d packs failed: %w", err, len(dropped), ierr)
			}
		}
		// condemned anew, whenever they were first: the late writer
		// started before this, and may depend on them; the list written
		// above goes (the earliest time of a pack in any list counts)
		for _, id := range toDelete {
			newCondemned[id.String()] = time.Time{}
		}
		if _, cerr := r.saveCondemned(ctx, newCondemned, []string{list}, stamp); cerr != nil {
			return nil, cerr
		}
		res.Condemned += len(toDelete)
		res.PackBytes += res.BytesFreed
		res.Deleted, res.BytesFreed, res.Deferred = 0, 0, len(toDelete)
		r.idx.reset()
		if failed != nil {
			// a late writer defers normally; a storage that failed is
			// reported (nothing was deleted)
			return res, fmt.Errorf("gc stopped, nothing deleted: %w", failed)
		}
		return res, r.LoadIndex(ctx)
	}
	// no commit through this cache takes a pack for stored on an earlier
	// look now (verifiedpacks.go)
	r.forgetVerifiedPacks()
	for _, id := range toDelete {
		err := r.be.Delete(ctx, packName(id))
		if errors.Is(err, storage.ErrLocked) {
			if res.Locks == nil { // locked by the bucket's own default, say
				res.Locks = &LockReport{}
			}
			// locked longer than estimated: it stays condemned, out of
			// the index, until a later collection finds its lock ended
			size := stored[id].Size
			res.Deleted--
			res.BytesFreed -= size
			res.PackBytes += size
			res.Locks.WaitingPacks++
			res.Locks.WaitingBytes += size
			res.Locks.waiting(lockedUntil(err))
			continue
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("deleting pack %s: %w", id.Short(), err)
		}
	}
	r.idx.reset()
	return res, r.LoadIndex(ctx)
}

// unconfirmedCopies reads back, for each pack to delete, the copy the
// index reads of every used blob the pack also lists, and returns the
// packs for which one of those copies is missing or does not decode to
// its id. Copies in fresh packs (written by this collection) are not
// read again.
func (r *Repository) unconfirmedCopies(ctx context.Context, toDelete []ID, packs []IndexPack, used map[ID]bool,
	stored map[ID]storage.ObjectInfo, fresh map[ID]bool) (map[ID]bool, error) {
	gone := map[ID]bool{}
	for _, id := range toDelete {
		gone[id] = true
	}
	bad := map[ID]bool{}
	// the copies to read, by the pack they are in; each names the packs to
	// delete that depend on it
	reads := map[ID][]BlobLocation{}
	needs := map[ID][]ID{}
	for _, p := range packs {
		if !gone[p.ID] {
			continue
		}
		for _, b := range p.Blobs {
			if !used[b.ID] {
				continue
			}
			loc, ok := r.idx.lookup(b.ID)
			_, there := stored[loc.Pack]
			switch {
			case !ok || loc.Pack == p.ID || gone[loc.Pack] || !there || loc.Type != b.Type:
				// (a copy of another type is not this blob: a tree's
				// bytes indexed as data would not restore)
				bad[p.ID] = true
			case fresh[loc.Pack]:
			default:
				if len(needs[b.ID]) == 0 {
					reads[loc.Pack] = append(reads[loc.Pack], loc)
				}
				needs[b.ID] = append(needs[b.ID], p.ID)
			}
		}
	}
	for _, locs := range reads {
		err := r.readCopies(ctx, locs, func(l BlobLocation, err error) {
			if err != nil {
				for _, p := range needs[l.ID] {
					bad[p] = true
				}
			}
		})
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			// unreadable: every pack that counted on it stays
			for _, l := range locs {
				for _, p := range needs[l.ID] {
					bad[p] = true
				}
			}
		}
	}
	return bad, nil
}

// readCopies reads blobs of one pack with one ranged read and reports
// each one's verdict (nil: it decodes to its id), without looking
// elsewhere for a blob that is not there.
func (r *Repository) readCopies(ctx context.Context, locs []BlobLocation, verdict func(BlobLocation, error)) error {
	rc, start, err := r.openSpan(ctx, locs)
	if err != nil {
		return err
	}
	defer rc.Close()
	d := blobDecoder{r: r}
	return readSealed(rc, start, locs, true, func(l BlobLocation, sealed []byte) error {
		_, err := d.decode(l, sealed)
		verdict(l, err)
		return nil
	})
}

// usedPacks names the packs to keep: those pending markers name, and
// those a used blob is read from. A blob stored twice (a writer stored
// again what a condemned pack holds; repack copied it) keeps only the pack
// the index reads it from, which is never a condemned one while a healthy
// copy exists; every copy is kept if that pack is missing from storage.
// The packs a pending marker names are kept whatever its tree walk found:
// a tree in a pack that lost its index entry is passed over by the walk,
// and the pack must not go with it (review).
func (r *Repository) usedPacks(packs []IndexPack, used, pending map[ID]bool, stored map[ID]storage.ObjectInfo) map[ID]bool {
	usedPack := map[ID]bool{}
	for id := range pending {
		usedPack[id] = true
	}
	for _, p := range packs {
		for _, b := range p.Blobs {
			if r.liveInPack(p.ID, b, used, stored) {
				usedPack[p.ID] = true
				break
			}
		}
	}
	return usedPack
}

// unindexed counts the blobs of used that the index does not locate.
func (r *Repository) unindexed(used map[ID]bool) (n int, first ID) {
	r.idx.mu.RLock()
	defer r.idx.mu.RUnlock()
	for id := range used {
		if _, ok := r.idx.blobs.get(id); !ok {
			if n == 0 || bytes.Compare(id[:], first[:]) < 0 {
				first = id
			}
			n++
		}
	}
	return n, first
}

func (r *Repository) deleteIndexFiles(ctx context.Context, files []ID) error {
	for _, f := range files {
		if err := r.be.Delete(ctx, "index/"+f.String()); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("removing superseded index %s: %w", f.Short(), err)
		}
	}
	return nil
}

// newWriters reports an error when a writer not among known counts at now
// (or when the writers cannot be read).
func (r *Repository) newWriters(ctx context.Context, known []openWriter, now, since time.Time, self markerOrder) error {
	again, _, _, err := r.openWriters(ctx, writersPrefix, now, since, self)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, w := range known {
		seen[w.name] = true
	}
	for _, w := range again {
		if !seen[w.name] {
			return fmt.Errorf("writer %s started during collection", path.Base(w.name))
		}
	}
	return nil
}

func (r *Repository) indexFiles() []ID {
	r.idx.mu.RLock()
	defer r.idx.mu.RUnlock()
	out := make([]ID, 0, len(r.idx.files))
	for id := range r.idx.files {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i][:], out[j][:]) < 0 })
	return out
}

// referencedBlobs walks every manifest's trees but the excluded ones, and
// the trees pending markers name. The markers are read (listed and each
// one loaded) before the manifests are listed: a commit writes its
// manifest before it removes its markers, so a tree is seen in one or
// the other, whenever the commit happens. It returns the blobs, those of
// them only older backups use (older: not the newest of any host's
// component, nor pending), and the packs the pending markers name.
//
// Older blobs go when their backups do, which retention makes sooner than
// the newest backups' blobs; repack keeps them in packs of their own, so
// that those packs are deleted whole instead of leaving unused space in
// the packs of what stays. In bench case C (5% of the files rewritten a
// day, the last 3 backups kept) this took the bytes repack rewrote in 30
// days from 668-703 MB to 452 MB (bench/README.md).
func (r *Repository) referencedBlobs(ctx context.Context, exclude map[string]bool) (used, older, packs map[ID]bool, _ *manifestView, _ error) {
	markers, err := r.pendingMarkers(ctx, pendingPrefix)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ms, errs, view, err := r.manifests(ctx)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if len(errs) > 0 {
		return nil, nil, nil, nil, errs[0]
	}
	used, older = map[ID]bool{}, map[ID]bool{}
	phase2 := false // marking what older backups alone use
	mark := func(id ID) bool {
		if used[id] {
			return false
		}
		used[id] = true
		if phase2 {
			older[id] = true
		}
		return true
	}
	// A manifest's tree that cannot be read stops the collection. A
	// pending marker may outlive its job's data (a job that failed for
	// good): its missing trees are passed over, but never the rest of
	// what it names (a walk that stopped at the first missing subtree
	// left its siblings' blobs unmarked).
	reloads := 0
	var walk func(id ID, missingOK bool) error
	walk = func(id ID, missingOK bool) error {
		if !mark(id) {
			return nil
		}
		t, err := r.LoadTree(ctx, id)
		if errors.Is(err, ErrBlobNotFound) && reloads < 3 {
			// written since the index was loaded (a backup committing
			// during the mark)?
			reloads++
			if lerr := r.LoadIndex(ctx); lerr != nil {
				return lerr
			}
			t, err = r.LoadTree(ctx, id)
		}
		if err != nil {
			if missingOK && errors.Is(err, ErrBlobNotFound) {
				delete(used, id) // nothing to keep, and not a blob lost to the index
				delete(older, id)
				return nil
			}
			return err
		}
		for _, n := range t.Nodes {
			for _, b := range n.Content {
				mark(b)
			}
			if n.Subtree != nil {
				if err := walk(*n.Subtree, missingOK); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// the newest backup of each host's component first, then what is
	// pending, then the rest
	type series struct{ host, component string }
	newest := map[series]*Manifest{}
	for _, m := range ms {
		if exclude[m.ID] {
			continue
		}
		for _, c := range m.Components {
			k := series{m.Host, c.Name}
			// (of two started at once, the one of the greater id)
			if n := newest[k]; c.Error == "" && (n == nil || n.Started.Before(m.Started) || n.Started.Equal(m.Started) && n.ID < m.ID) {
				newest[k] = m
			}
		}
	}
	walkAll := func(m *Manifest, only map[series]*Manifest) error {
		for _, c := range m.Components {
			if c.Error != "" || only != nil && only[series{m.Host, c.Name}] != m {
				continue
			}
			if err := walk(c.Tree, false); err != nil {
				return fmt.Errorf("backup %s: %w", m.ID, err)
			}
		}
		return nil
	}
	for _, m := range ms {
		if !exclude[m.ID] {
			if err := walkAll(m, newest); err != nil {
				return nil, nil, nil, nil, err
			}
		}
	}
	packs = map[ID]bool{}
	for _, m := range markers {
		if err := walk(m.Tree, true); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("pending backup: %w", err)
		}
		for _, p := range m.Packs {
			packs[p] = true
		}
	}
	phase2 = true
	for _, m := range ms {
		if !exclude[m.ID] {
			if err := walkAll(m, nil); err != nil {
				return nil, nil, nil, nil, err
			}
		}
	}
	return used, older, packs, view, nil
}

func (r *Repository) loadCondemned(ctx context.Context) (map[string]time.Time, []string, error) {
	return r.readCondemned(ctx, false)
}

// condemnedPacks is the set of packs the condemned lists name, the lists
// read from the local cache when it has them (their times are not used).
func (r *Repository) condemnedPacks(ctx context.Context) (map[string]time.Time, error) {
	c, _, err := r.readCondemned(ctx, true)
	return c, err
}

// condemnedCacheMagic starts a condemned list's cached form: the number
// of packs it names (4 bytes, little-endian), then their ids (names that
// do not parse as ids name no pack).
const condemnedCacheMagic = "BKCL2"

func condemnedCacheForm(l condemnedList) []byte {
	var ids []byte
	for id := range l.Packs {
		if pid, err := ParseID(id); err == nil {
			ids = append(ids, pid[:]...)
		}
	}
	b := binary.LittleEndian.AppendUint32([]byte(condemnedCacheMagic), uint32(len(ids)/len(ID{})))
	return append(b, ids...)
}

func (r *Repository) readCondemned(ctx context.Context, cached bool) (map[string]time.Time, []string, error) {
	// A list gone between the listing and its read was replaced: its
	// successor was written before it was deleted, so a new listing
	// finds that. Skipping it instead would miss every pack it named (a
	// writer would then deduplicate against them).
	for try := 0; ; try++ {
		out, names, vanished, err := r.loadCondemnedOnce(ctx, cached)
		if err != nil || !vanished {
			return out, names, err
		}
		if try == 4 {
			return nil, nil, errors.New("the condemned lists (gc/) were replaced during each of 5 readings (collections running back to back?); try again")
		}
	}
}

func (r *Repository) loadCondemnedOnce(ctx context.Context, cached bool) (map[string]time.Time, []string, bool, error) {
	out := map[string]time.Time{}
	var names []string
	err := r.be.List(ctx, gcPrefix, func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	})
	if err != nil {
		return nil, nil, false, err
	}
	if cached {
		listed := map[string]bool{}
		for _, n := range names {
			listed[path.Base(n)] = true
		}
		r.cache.keep(cacheCondemned, func(n string) bool { return listed[n] })
	}
	for _, n := range names {
		var l condemnedList
		hit := false
		if cached {
			// the packs alone, 32 bytes each: the JSON of the list a
			// cleanup leaves took 0.6 ms to decode in every backup after
			// it (bench case D)
			_, hit = r.cache.get(cacheCondemned, path.Base(n), func(b []byte) bool {
				rest, ok := strings.CutPrefix(string(b), condemnedCacheMagic)
				if !ok || len(rest) < 4 {
					return false
				}
				// the count first: a file cut short is read again
				count := int(binary.LittleEndian.Uint32([]byte(rest[:4])))
				if rest = rest[4:]; len(rest) != count*len(ID{}) {
					return false
				}
				l = condemnedList{Packs: make(map[string]time.Time, len(rest)/len(ID{}))}
				for ; rest != ""; rest = rest[len(ID{}):] {
					l.Packs[hex.EncodeToString([]byte(rest[:len(ID{})]))] = time.Time{}
				}
				return true
			})
		}
		if !hit {
			b, err := storage.ReadAll(ctx, r.be, n)
			if errors.Is(err, storage.ErrNotFound) {
				return nil, nil, true, nil
			}
			if err != nil {
				return nil, nil, false, err
			}
			l = condemnedList{}
			if err := json.Unmarshal(b, &l); err != nil {
				return nil, nil, false, fmt.Errorf("%s: %w: %v", n, ErrCorrupt, err)
			}
			if cached {
				r.cache.put(cacheCondemned, path.Base(n), condemnedCacheForm(l))
			}
		}
		for id, t := range l.Packs {
			if old, ok := out[id]; !ok || t.Before(old) {
				out[id] = t
			}
		}
	}
	return out, names, false, nil
}

// saveCondemned writes packs as a new list, then deletes the old lists,
// and returns the new list's name ("" when packs is empty). Packs without
// a time (newly condemned) get stamp() in packs itself (the deferral
// saves the same map again), taken just before the write; a
// write slower than the allowed clock skew is done again with a new stamp,
// so a time in a list is never much earlier than the list was readable.
func (r *Repository) saveCondemned(ctx context.Context, packs map[string]time.Time, old []string, stamp func() time.Time) (string, error) {
	name := ""
	if len(packs) > 0 {
		name = fmt.Sprintf("%scondemned-%d-%x", gcPrefix, time.Now().UnixNano(), randomBytes(4))
		var fresh []string
		for id, t := range packs {
			if t.IsZero() {
				fresh = append(fresh, id)
			}
		}
		for try := 0; ; try++ {
			at := stamp()
			for _, id := range fresh {
				packs[id] = at
			}
			b, _ := json.Marshal(condemnedList{Packs: packs})
			began := time.Now()
			if err := r.be.Put(ctx, name, bytes.NewReader(b), int64(len(b))); err != nil {
				return "", err
			}
			if time.Since(began) < clockSkew/2 {
				break
			}
			if try == 2 {
				return "", fmt.Errorf("writing the condemned list took %v, longer than the clock skew allowed", time.Since(began).Round(time.Second))
			}
		}
	}
	for _, n := range old {
		if err := r.be.Delete(ctx, n); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return "", err
		}
	}
	return name, nil
}

// excludeCondemned makes a writer store blobs again rather than depend on
// packs that garbage collection has condemned (c: condemnedPacks').
func excludeCondemned(ix *Index, c map[string]time.Time) {
	if len(c) == 0 {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for id := range c {
		pid, err := ParseID(id)
		if err != nil {
			continue
		}
		if pi, ok := ix.packByID[pid]; ok {
			if ix.condemned == nil {
				ix.condemned = map[uint32]bool{}
			}
			ix.condemned[pi] = true
		}
	}
	ix.preferHealthyLocked()
}

// preferHealthyLocked looks up blobs whose first-loaded location is
// condemned but that also live in a healthy pack there (index files load
// in any order, and repack copies blobs out of packs it then condemns).
func (ix *Index) preferHealthyLocked() {
	ix.gen++
	for pi, es := range ix.extra {
		if ix.condemned[pi] {
			continue
		}
		kept := es[:0]
		for _, e := range es {
			cur, ok := ix.blobs.get(e.ID)
			if ok && ix.condemned[cur.pack] {
				ix.extra[cur.pack] = append(ix.extra[cur.pack], cur.entry(e.ID))
				ix.blobs.set(e.ID, locOf(pi, e))
				continue
			}
			kept = append(kept, e)
		}
		ix.extra[pi] = kept
	}
}

// otherCollectors counts the collections registered besides self.
func (r *Repository) otherCollectors(ctx context.Context, now, since time.Time, self *Writer, dryRun bool) (int, error) {
	cs, stale, done, err := r.openWriters(ctx, collectorsPrefix, now, since, self.order())
	n := 0
	for _, c := range cs {
		if c.name != self.name {
			n++
		}
	}
	if !dryRun {
		for _, name := range stale {
			_ = r.be.Delete(ctx, name) // a collection that died a day ago
		}
		if n == 0 {
			for _, name := range done {
				_ = r.be.Delete(ctx, name) // ended before this one began
			}
		}
	}
	return n, err
}
