package repository

import (
	"context"
	"fmt"
	"time"
)

// IndexFileBound is how many index files a repository may hold before a
// writer that finishes merges them into one. Every command reads every
// index file (on S3 a request each, unless cached), and without this only
// garbage collection merged them: a year of hourly backups left thousands.
const IndexFileBound = 64

// CompactIndex merges every index file into one when there are more than
// bound, and reports how many files it replaced (0: nothing to do, or a
// collection is running). It registers as a collector, as GC does, and
// stands back when another one is registered: GC rewrites the index from
// the files it read, and two rewrites at once could leave entries for
// packs one of them deleted. A GC that starts while this runs deletes
// nothing (it sees this registration), and the merged file is written
// before the files it supersedes are removed, so a crash leaves
// duplicates, never gaps.
func CompactIndex(ctx context.Context, r *Repository, bound int) (int, error) {
	if len(r.indexFiles()) <= bound {
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
	if _, err := r.writeIndexFile(ctx, &IndexFile{Supersedes: files, Packs: r.idx.Packs()}, false); err != nil {
		return 0, err
	}
	if err := r.deleteIndexFiles(ctx, files); err != nil {
		return 0, fmt.Errorf("index compaction: %w", err)
	}
	r.idx.mu.Lock()
	for _, f := range files {
		delete(r.idx.files, f)
	}
	r.idx.mu.Unlock()
	return len(files), nil
}
