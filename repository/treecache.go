package repository

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	"backupd/storage"
)

// treeCache keeps tree blobs as they are stored (sealed and compressed,
// a few times smaller than decoded), each decoded when it is asked for. On
// a miss it reads every tree blob of the missing blob's pack in one ranged
// read: walking a backup's trees then costs one request per tree pack
// instead of one per directory, which is what makes incremental backups
// and restores fast on S3 and cold disks. A pack that is already in the
// local cache is not read whole again: each tree is read from it alone.
type treeCache struct {
	mu    sync.Mutex
	blobs map[ID]sealedTree
	bytes int
	// loading: packs being read, closed when done. Walkers that miss on
	// the same pack wait for one read instead of each reading (and
	// holding) the whole pack.
	loading map[ID]chan struct{}
	// reading admits one pack read at a time: each is a whole pack (16
	// MiB) in memory, and parallel walkers reading four at once held
	// 64 MiB more at the peak of a 1M-file incremental backup. From the
	// local cache a read takes milliseconds; from remote storage it takes
	// longer, as it did when the walk was sequential (before walkers ran
	// in parallel, one read at a time was all there was).
	reading chan struct{}
}

type sealedTree struct {
	loc    BlobLocation
	sealed []byte
}

// treeCacheMax bounds the trees kept (the trees of a backup of millions
// of files are hundreds of MB decoded). Past it the cache starts over, and
// a tree pack needed again is read again (from the local cache when there
// is one).
const treeCacheMax = 32 << 20

func (r *Repository) loadTreeBlob(ctx context.Context, id ID) ([]byte, error) {
	c := &r.trees
	c.mu.Lock()
	st, ok := c.blobs[id]
	c.mu.Unlock()
	if ok {
		return r.decodeTree(ctx, st, false)
	}
	// A tree pack the local cache holds: this tree alone is read from it.
	// After a long history the few trees an incremental backup's parent
	// needs lie in several repacked tree packs of megabytes each, and
	// reading those whole cost more than the rest of the backup.
	if loc, ok := r.idx.lookup(id); ok && loc.Type == TreeBlob && r.cache != nil {
		if sealed, ok := r.cache.readAt(cacheTrees, loc.Pack.String(), int64(loc.Offset), int(loc.Length)); ok {
			return r.decodeTree(ctx, sealedTree{loc, sealed}, true)
		}
	}
	c.mu.Lock()
	var loc BlobLocation
	for {
		if st, ok := c.blobs[id]; ok {
			c.mu.Unlock()
			return r.decodeTree(ctx, st, false)
		}
		var ok bool
		loc, ok = r.idx.lookup(id)
		if !ok || loc.Type != TreeBlob {
			c.mu.Unlock()
			return r.LoadBlob(ctx, TreeBlob, id) // reports the error
		}
		busy, ok := c.loading[loc.Pack]
		if !ok {
			break
		}
		c.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock() // then look again: the read may have failed, or been dropped
	}
	if c.loading == nil {
		c.loading = map[ID]chan struct{}{}
		c.reading = make(chan struct{}, 1)
	}
	reading := c.reading
	done := make(chan struct{})
	c.loading[loc.Pack] = done
	defer func() {
		c.mu.Lock()
		delete(c.loading, loc.Pack)
		c.mu.Unlock()
		close(done)
	}()
	c.mu.Unlock()
	locs := r.idx.treeLocsInPack(loc.Pack)
	if len(locs) == 0 {
		return r.LoadBlob(ctx, TreeBlob, id)
	}
	select {
	case reading <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	got := map[ID]sealedTree{}
	var err error
	if r.cache != nil {
		err = r.readCachedTreePack(ctx, loc.Pack, locs, got)
	} else {
		var rc io.ReadCloser
		var start int64
		if rc, start, err = r.openSpan(ctx, locs); err == nil {
			err = readSealed(rc, start, locs, false, func(l BlobLocation, sealed []byte) error {
				if sealed != nil {
					got[l.ID] = sealedTree{l, sealed}
				}
				return nil
			})
			rc.Close()
		}
	}
	<-reading
	st, found := got[id]
	if err != nil || !found {
		return r.LoadBlob(ctx, TreeBlob, id) // reports why, or finds where it went
	}
	c.mu.Lock()
	if c.blobs == nil || c.bytes > treeCacheMax {
		c.blobs, c.bytes = map[ID]sealedTree{}, 0
	}
	for k, v := range got {
		if _, ok := c.blobs[k]; !ok {
			c.blobs[k] = v
			c.bytes += len(v.sealed)
		}
	}
	c.mu.Unlock()
	return r.decodeTree(ctx, st, false)
}

// decodeTree decodes a tree the cache holds. Its pack was read from the
// local cache without hashing it whole (a tree pack of 5 MiB cost more to
// hash than its trees to decode, on every backup): each tree is checked
// by its own authentication and id instead, and one that fails drops its
// pack from both caches and is read from the storage. owned: st.sealed is
// the caller's to decrypt in place (otherwise the cache's, copied first).
func (r *Repository) decodeTree(ctx context.Context, st sealedTree, owned bool) ([]byte, error) {
	sealed := st.sealed
	if !owned {
		sealed = append([]byte(nil), sealed...)
	}
	data, err := r.decodeBlob(st.loc, sealed)
	if err == nil || !errors.Is(err, ErrCorrupt) {
		return data, err
	}
	c := &r.trees
	c.mu.Lock()
	for id, t := range c.blobs {
		if t.loc.Pack == st.loc.Pack {
			c.bytes -= len(t.sealed)
			delete(c.blobs, id)
		}
	}
	c.mu.Unlock()
	r.cache.remove(cacheTrees, st.loc.Pack.String())
	return r.LoadBlob(ctx, TreeBlob, st.loc.ID)
}

// readCachedTreePack puts the tree blobs locs of pack into got, sealed,
// from the local cache, fetching the whole pack into it first when it is
// not there (a pack holding only trees: tree packs are small and read
// again by every incremental backup and every listing).
func (r *Repository) readCachedTreePack(ctx context.Context, pack ID, locs []BlobLocation, got map[ID]sealedTree) error {
	var size int64 // where its last indexed blob ends
	for _, l := range locs {
		size = max(size, int64(l.Offset)+int64(l.Length))
	}
	// not hashed whole here (see decodeTree); one too short to hold its
	// indexed trees is dropped, as one whose trees do not verify is
	b, ok := r.cache.get(cacheTrees, pack.String(), func(b []byte) bool { return int64(len(b)) >= size })
	if !ok {
		var err error
		// a tree pack's size: its blobs, then a header of under 128 bytes
		// an entry
		// (an estimate from the index, so bounded by what a pack can be)
		b, err = storage.ReadAllSized(ctx, r.be, packName(pack), min(size+128*int64(len(locs))+4096, maxPackSize))
		if err != nil {
			if r.packGone(ctx, pack, err) {
				return err // the caller reads each blob from where it now is
			}
			return &BlobError{pack, locs[0].ID, err}
		}
		if sha256.Sum256(b) != pack {
			return &BlobError{pack, locs[0].ID, fmt.Errorf("%w: pack content does not match its name", ErrCorrupt)}
		}
		if r.onlyTrees(b) {
			r.cache.put(cacheTrees, pack.String(), b)
		}
	}
	// Slices of b, not copies, when the trees are most of it (a tree
	// pack): copying them doubled what a read held. Otherwise a few small
	// trees kept would hold a whole pack the cache's count does not see.
	var kept int64
	for _, l := range locs {
		kept += int64(l.Length)
	}
	slice := kept >= int64(len(b))/2
	for _, l := range locs {
		end := int64(l.Offset) + int64(l.Length)
		if end > int64(len(b)) {
			continue // reported by the caller's LoadBlob
		}
		if slice {
			got[l.ID] = sealedTree{l, b[l.Offset:end:end]}
		} else {
			got[l.ID] = sealedTree{l, append([]byte(nil), b[l.Offset:end]...)}
		}
	}
	return nil
}

// onlyTrees reports whether pack b (whole) holds nothing but trees,
// reading its own header.
func (r *Repository) onlyTrees(b []byte) bool {
	entries, _, _, err := parsePack(b, r.keys.DataPrivate)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Type != TreeBlob {
			return false
		}
	}
	return true
}
