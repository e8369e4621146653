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
// writer that finishes merges the smallest into one. Every command lists
// every index file and reads those it has not cached (on S3 a request
// each), and without this only garbage collection merged them: a year of
// hourly backups left thousands. It was 64: on versitygw, listing 40 to
// 72 files took 4 to 7 ms of a 60 ms backup, twice a backup (bench case
// D); merging past 16 keeps 8 to 16, a merge every four backups or so
// (each writes one or two files), each copying only the small files.
const IndexFileBound = 16

// LooseManifestBound is how many loose manifests a repository may hold
// before a writer that finishes folds them into a set. Every listing reads
// every loose manifest's name, and a backup's parent is looked up among
// them; without this only garbage collection folded them, so their number
// followed the cleanup schedule (bench case D: 100 where the 10th backup
// had 9).
const LooseManifestBound = 16

// Compaction is what Compact did.
type Compaction struct {
	// IndexFilesMerged: index files replaced by one.
	IndexFilesMerged int `json:"index_files_merged"`
	// ManifestsFolded: loose manifests folded into a set.
	ManifestsFolded int `json:"manifests_folded"`
}

// CompactIndex merges index files when there are more than bound (see
// Compact); it reports how many files it replaced.
func CompactIndex(ctx context.Context, r *Repository, bound int) (int, error) {
	c, err := Compact(ctx, r, bound, 0)
	return c.IndexFilesMerged, err
}

// Compact is the upkeep a writer does after its commit, so that what every
// command reads does not grow with the history between collections:
//
//   - past indexBound index files, the smallest of them, enough to leave
//     indexBound/2, are merged into one;
//   - past looseBound loose manifests (0: never), they are folded into a
//     manifest set (foldLoose).
//
// Only the small index files are merged, so a run's cost does not grow
// with the history: merging every file rewrote the whole index every
// bound/2 backups once collections ran less often than that (bench case D:
// the whole index of 10,000 backups, 90 ms of CPU, and the next command
// read every file again, the snapshot naming the files merged). Now an
// entry is rewritten once per size tier, each tier about bound/2 times the
// one below, until a collection merges everything into one file.
//
// It registers as a collector, as GC does, and stands back when another
// one is registered: GC rewrites the index and the manifest sets from what
// it read, and two rewrites at once could leave entries for packs one of
// them deleted, or bring back a backup deleted meanwhile. A GC that starts
// while this runs deletes nothing (it sees this registration), and what is
// merged is written before what it supersedes is removed, so a crash
// leaves duplicates, never gaps. Write-only hosts, and immutable
// locations (whose manifest sets carry locks), leave it to the server's
// collection.
func Compact(ctx context.Context, r *Repository, indexBound, looseBound int) (Compaction, error) {
	var c Compaction
	// A write-only host cannot delete what it stored (its storage
	// refuses), and each try would leave one file more.
	if !r.keys.CanRead() {
		return c, nil
	}
	index := len(r.indexFiles()) > indexBound
	// (a version 1 repository is moved to version 2 by gc's first fold,
	// as it always was, not by a backup)
	fold := looseBound > 0 && r.lockPeriod() == 0 && r.cfg.Version >= 2
	// The handle's count (its last listing and its saves since) says
	// when to look; a listing, before registering, says whether to fold
	// (another host may have folded meanwhile).
	if seen := r.looseSeen.Load(); fold && (seen == 0 || seen-1 > int64(looseBound)) {
		infos, err := r.manifestInfos(ctx)
		if err != nil {
			return c, err
		}
		fold = len(infos) > looseBound
	} else {
		fold = false
	}
	if !index && !fold {
		return c, nil
	}
	began := time.Now()
	self, err := r.register(ctx, collectorsPrefix, "compaction")
	if err != nil {
		return c, err
	}
	// Ended once it may have changed something, so that a collection
	// running meanwhile learns of it; removed when it stood back. An ended
	// marker counts for collectors that register in the same second (S3
	// times have whole seconds): left by every attempt that stood back,
	// each made the next, a backup later, stand back too, for as long as
	// backups came less than a second apart (bench case D: 92 index files
	// and 41 loose manifests at 1,000 backups, where the bounds are 64
	// and 16).
	worked := false
	defer func() {
		if worked {
			self.End()
		} else {
			self.remove()
		}
	}()
	since := began.Add(-clockSkew)
	if oi, err := r.be.Stat(ctx, self.name); err == nil {
		since = oi.ModTime
	}
	// Alone, it removes the markers of collections that ended before it
	// registered, as a collection does: left for the next collection,
	// every compaction until then read each of them (bench case D: 8
	// reads in the 100th backup).
	others, err := r.otherCollectors(ctx, time.Now(), since, self, false)
	if err != nil || others > 0 {
		return c, err
	}
	worked = true
	var errs []error
	if fold {
		if c.ManifestsFolded, err = r.foldLoose(ctx, looseBound, self.Valid); err != nil {
			errs = append(errs, fmt.Errorf("folding manifests: %w", err))
		}
	}
	if index {
		if c.IndexFilesMerged, err = r.mergeSmallIndexFiles(ctx, indexBound, self.Valid); err != nil {
			errs = append(errs, fmt.Errorf("index compaction: %w", err))
		}
	}
	return c, errors.Join(errs...)
}

// mergeSmallIndexFiles is Compact's merge of index files, inside its registration.
func (r *Repository) mergeSmallIndexFiles(ctx context.Context, bound int, valid func() error) (int, error) {
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
	if err := valid(); err != nil {
		return 0, err
	}
	if _, err := r.writeIndexFile(ctx, &IndexFile{Supersedes: merge, Packs: ix.Packs()}, false); err != nil {
		return 0, err
	}
	if err := valid(); err != nil {
		return 0, err
	}
	if err := r.deleteIndexFiles(ctx, merge); err != nil {
		return 0, err
	}
	r.idx.mu.Lock()
	for _, f := range merge {
		delete(r.idx.files, f)
	}
	r.idx.mu.Unlock()
	// the cached snapshot (or its delta) named the files merged: the next
	// command would read every file again without a delta saying so
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
