package repository

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"backupd/storage"
)

// IndexFileBound is how many index files a repository may hold before a
// writer that finishes merges them into one. Every command reads every
// index file (on S3 a request each, unless cached), and without this only
// garbage collection merged them: a year of hourly backups left thousands.
const IndexFileBound = 64

// CompactIndex merges index files when there are more than bound: the
// smallest of them, enough to leave bound/2, into one. It reports how many
// files it replaced (0: nothing to do, or a collection is running).
//
// Only the small files are merged, so a run's cost does not grow with the
// history: merging every file rewrote the whole index every bound/2
// backups once collections ran less often than that (bench case D: the
// whole index of 10,000 backups, 90 ms of CPU, and the next command read
// every file again, the snapshot naming the files merged). Now an entry is rewritten once per size tier, each
// tier about bound/2 times the one below, until a collection merges
// everything into one file.
//
// It registers as a collector, as GC does, and stands back when another
// one is registered: GC rewrites the index from the files it read, and two
// rewrites at once could leave entries for packs one of them deleted. A GC
// that starts while this runs deletes nothing (it sees this registration),
// and the merged file is written before the files it supersedes are
// removed, so a crash leaves duplicates, never gaps.
func CompactIndex(ctx context.Context, r *Repository, bound int) (int, error) {
	// A write-only host leaves it to the server's collection: it cannot
	// delete what it stored (its storage refuses), and each try would
	// leave one file more.
	if len(r.indexFiles()) <= bound || !r.keys.CanRead() {
		return 0, nil
	}
	began := time.Now()
	self, err := r.register(ctx, collectorsPrefix, "index compaction")
	if err != nil {
		return 0, err
	}
	defer self.End()
	since := began.Add(-clockSkew)
	if oi, err := r.be.Stat(ctx, self.name); err == nil {
		since = oi.ModTime
	}
	others, err := r.otherCollectors(ctx, time.Now(), since, self.name, true)
	if err != nil || others > 0 {
		return 0, err
	}
	// read after registering: whatever a collection that ended before
	// did is seen
	if err := r.LoadIndex(ctx); err != nil {
		return 0, err
	}
	files := r.indexFiles()
	if len(files) <= bound {
		return 0, nil
	}
	merge, err := r.smallestIndexFiles(ctx, files, len(files)-max(bound/2, 1)+1)
	if err != nil {
		return 0, err
	}
	// The merged file holds every entry they held: gathered in an index
	// of their own, which keeps each differing entry of a blob (a pack
	// two files name differently, one of them damaged or forged, loses
	// neither).
	ix := newIndex()
	for _, id := range merge {
		f, err := r.readIndexFile(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			return 0, nil // merged or rewritten meanwhile: next time
		}
		if err != nil {
			return 0, err
		}
		ix.addPacksLocked(f.Packs)
	}
	// stalled past its lease, a collection that started since did not
	// count it: it writes and deletes nothing then (as GC)
	if err := self.Valid(); err != nil {
		return 0, err
	}
	if _, err := r.writeIndexFile(ctx, &IndexFile{Supersedes: merge, Packs: ix.Packs()}, false); err != nil {
		return 0, err
	}
	if err := self.Valid(); err != nil {
		return 0, err
	}
	if err := r.deleteIndexFiles(ctx, merge); err != nil {
		return 0, fmt.Errorf("index compaction: %w", err)
	}
	r.idx.mu.Lock()
	for _, f := range merge {
		delete(r.idx.files, f)
	}
	r.idx.mu.Unlock()
	// the cached snapshot named the files merged: the next command would
	// read every file again without this one
	r.saveIndexSnapshot(r.idx)
	return len(merge), nil
}

// smallestIndexFiles is the n smallest of files (by stored size, ties by
// id).
func (r *Repository) smallestIndexFiles(ctx context.Context, files []ID, n int) ([]ID, error) {
	size := map[ID]int64{}
	err := r.be.List(ctx, "index/", func(oi storage.ObjectInfo) error {
		if id, err := ParseID(strings.TrimPrefix(oi.Name, "index/")); err == nil {
			size[id] = oi.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing index: %w", err)
	}
	out := slices.Clone(files)
	slices.SortFunc(out, func(a, b ID) int {
		if c := cmp.Compare(size[a], size[b]); c != 0 {
			return c
		}
		return bytes.Compare(a[:], b[:])
	})
	return out[:min(n, len(out))], nil
}
