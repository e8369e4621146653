package repository

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	"backupd/storage"
)

// treeCache keeps decoded tree blobs. On a miss it reads every tree blob of
// the missing blob's pack in one ranged read: walking a backup's trees then
// costs one request per tree pack instead of one per directory, which is
// what makes incremental backups and restores fast on S3 and cold disks.
type treeCache struct {
	mu     sync.Mutex
	blobs  map[ID][]byte
	bytes  int
	byPack map[ID][]BlobLocation // tree blobs per pack, built on first use
	built  uint64                // index generation byPack was built at
}

// treeCacheMax bounds the decoded trees kept: the trees of a backup of
// millions of files are hundreds of MB. Past it the cache starts over,
// and a tree pack needed again is read again (from the local cache when
// there is one).
const treeCacheMax = 64 << 20

func (r *Repository) loadTreeBlob(ctx context.Context, id ID) ([]byte, error) {
	c := &r.trees
	c.mu.Lock()
	if b, ok := c.blobs[id]; ok {
		c.mu.Unlock()
		return b, nil
	}
	loc, ok := r.idx.lookup(id)
	if !ok || loc.Type != TreeBlob {
		c.mu.Unlock()
		return r.LoadBlob(ctx, TreeBlob, id) // reports the error
	}
	if gen := r.idx.generation(); c.byPack == nil || c.built != gen {
		c.byPack = map[ID][]BlobLocation{}
		for _, p := range r.idx.Packs() {
			for _, b := range p.Blobs {
				if b.Type == TreeBlob {
					c.byPack[p.ID] = append(c.byPack[p.ID], BlobLocation{Pack: p.ID, EphPublic: p.EphPublic, PackEntry: b})
				}
			}
		}
		c.built = gen
	}
	locs := append([]BlobLocation(nil), c.byPack[loc.Pack]...)
	c.mu.Unlock()
	if len(locs) == 0 {
		return r.LoadBlob(ctx, TreeBlob, id)
	}
	got := map[ID][]byte{}
	var err error
	if r.cache != nil {
		err = r.readCachedTreePack(ctx, loc.Pack, locs, got)
	} else {
		err = r.ReadPackBlobs(ctx, locs, func(l BlobLocation, data []byte, err error) error {
			if err == nil {
				got[l.ID] = data
			}
			return nil
		})
	}
	if err != nil {
		return r.LoadBlob(ctx, TreeBlob, id)
	}
	c.mu.Lock()
	if c.blobs == nil || c.bytes > treeCacheMax {
		c.blobs, c.bytes = map[ID][]byte{}, 0
	}
	for k, v := range got {
		if _, ok := c.blobs[k]; !ok {
			c.blobs[k] = v
			c.bytes += len(v)
		}
	}
	c.mu.Unlock()
	if b, ok := got[id]; ok {
		return b, nil
	}
	return r.LoadBlob(ctx, TreeBlob, id) // this blob failed: report why
}

// readCachedTreePack decodes the tree blobs locs of pack from the local
// cache, fetching the whole pack into it first when it is not there (a
// pack holding only trees: tree packs are small and read again by every
// incremental backup and every listing).
func (r *Repository) readCachedTreePack(ctx context.Context, pack ID, locs []BlobLocation, got map[ID][]byte) error {
	b, ok := r.cache.getByHash(cacheTrees, pack)
	if !ok {
		var err error
		b, err = storage.ReadAll(ctx, r.be, packName(pack))
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
	for _, l := range locs {
		end := int64(l.Offset) + int64(l.Length)
		if end > int64(len(b)) {
			continue // reported by the caller's LoadBlob
		}
		data, err := r.decodeBlob(l, append([]byte(nil), b[l.Offset:end]...))
		if err == nil {
			got[l.ID] = data
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

// DropTreeCache forgets the decoded trees (a caller that has read every
// tree it needs gives their memory back).
func (r *Repository) DropTreeCache() {
	c := &r.trees
	c.mu.Lock()
	c.blobs, c.bytes, c.byPack = nil, 0, nil
	c.mu.Unlock()
}
