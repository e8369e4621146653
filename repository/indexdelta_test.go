package repository

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"backupd/storage/fault"
	"backupd/storage/mem"
)

// loadsLike opens a handle on root's cache, loads the index, and checks
// that it says what the index files say, reading at most maxReads index
// files; it returns the handle.
func loadsLike(t *testing.T, be *mem.Backend, root string, maxReads int, what string) *Repository {
	t.Helper()
	ctx := context.Background()
	plain := reopen(t, be)
	if err := plain.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	fb := fault.New(be)
	z := withCacheAt(t, reopen(t, fb), root)
	if n := gets(fb, func() {
		if err := z.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
	}); n > maxReads {
		t.Fatalf("%s: a load read %d index files, want at most %d", what, n, maxReads)
	}
	if !reflect.DeepEqual(indexContent(plain.idx), indexContent(z.idx)) {
		t.Fatalf("%s: the cached index says another index than the files", what)
	}
	return z
}

func cachedSnapshot(t *testing.T, root string, x *Repository, name string) []byte {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(x.Cache().Dir(), cacheIndexSnap, name))
	return b
}

// Backups and merges of index files change a delta of the snapshot, not
// the snapshot: after each, a new handle reads no index file, and its
// index is the one the files say.
func TestIndexDeltaFollowsBackupsAndMerges(t *testing.T) {
	ctx := context.Background()
	be, root, _, x := snapshotFixture(t)
	snap := cachedSnapshot(t, root, x, indexSnapName)
	if len(snap) == 0 {
		t.Fatal("no snapshot to start from")
	}
	for i := 0; i < 6; i++ {
		h := withCacheAt(t, reopen(t, be), root)
		if err := h.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		// a few new files and many old ones (already stored)
		saveFiles(t, h, fmt.Sprintf("backup-d%d", i), merge(fileSet(100+i*3, 3, 10), fileSet(0, 50, 10)))
		if i%2 == 1 {
			if _, err := CompactIndex(ctx, h, 2); err != nil {
				t.Fatal(err)
			}
		}
		what := fmt.Sprintf("after backup %d", i)
		// a handle reads the files written since the last merge (so
		// few are not worth a write); after a merge, a delta says them
		want := 4
		if i%2 == 1 {
			want = 0
		}
		loadsLike(t, be, root, want, what)
		z := loadsLike(t, be, root, want, what+", again")
		if z.idx.blobs.src == nil || (i > 0 && len(z.idx.blobs.recent) == 0) {
			t.Fatalf("%s: the snapshot and its delta were not used", what)
		}
		if now := cachedSnapshot(t, root, x, indexSnapName); !bytes.Equal(now, snap) {
			t.Fatalf("%s: the snapshot was written again", what)
		}
	}
}

// A delta is used only when it fits: of another snapshot, damaged, or
// naming a file no longer listed, the files are read instead.
func TestIndexDeltaUsedOnlyWhenItFits(t *testing.T) {
	ctx := context.Background()
	be, root, _, x := snapshotFixture(t)
	h := withCacheAt(t, reopen(t, be), root)
	if err := h.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	saveFiles(t, h, "backup-d", fileSet(100, 3, 10))
	h.saveIndexSnapshot(h.idx) // as after a merge
	loadsLike(t, be, root, 0, "the delta written")
	delta := cachedSnapshot(t, root, x, indexDeltaName)
	if len(delta) == 0 {
		t.Fatal("no delta written")
	}
	deltaPath := filepath.Join(x.Cache().Dir(), cacheIndexSnap, indexDeltaName)
	put := func(b []byte) {
		if err := os.WriteFile(deltaPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// damaged anywhere: not used (the snapshot alone is, and the files
	// it lacks are read)
	for _, at := range []int{0, 4, 5, len(delta) / 2, len(delta) - 1} {
		bad := bytes.Clone(delta)
		bad[at] ^= 1
		put(bad)
		z := loadsLike(t, be, root, 2, fmt.Sprintf("delta damaged at %d", at))
		if z.idx.blobs.src == nil {
			t.Fatal("the snapshot should still be used")
		}
	}
	// cut short
	put(delta[:len(delta)-3])
	loadsLike(t, be, root, 2, "delta cut short")
	// sealed with the key but naming a pack twice
	if z := withCacheAt(t, reopen(t, be), root); z.LoadIndex(ctx) == nil {
		z.idx.mu.Lock()
		base := z.idx.blobs.src
		z.idx.packs = append(z.idx.packs, z.idx.packs[len(z.idx.packs)-1])
		var buf bytes.Buffer
		if err := writeIndexDelta(&buf, z.indexAEAD, z.idx, base); err != nil {
			t.Fatal(err)
		}
		z.idx.mu.Unlock()
		put(buf.Bytes())
		loadsLike(t, be, root, 2, "a delta naming a pack twice")
	}
	// of another snapshot: written whole since, the old delta put back
	w := withCacheAt(t, reopen(t, be), root)
	if err := w.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	w.idx.blobs.overlay = nil
	w.saveIndexSnapshot(w.idx)
	if _, err := os.Stat(deltaPath); !os.IsNotExist(err) {
		t.Fatal("a whole snapshot should remove the delta of the one before")
	}
	put(delta)
	loadsLike(t, be, root, 0, "a delta of the snapshot before")
	// its files merged by another client (no cache): neither the delta
	// nor the snapshot says the index any more
	h = withCacheAt(t, reopen(t, be), root)
	if err := h.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	saveFiles(t, h, "backup-e", fileSet(200, 3, 10))
	h.saveIndexSnapshot(h.idx)
	loadsLike(t, be, root, 0, "another delta")
	other := reopen(t, be)
	if err := other.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := CompactIndex(ctx, other, 1); err != nil || n == 0 {
		t.Fatalf("compaction: %d %v", n, err)
	}
	loadsLike(t, be, root, 1000, "the files merged elsewhere")
}

// An entry the snapshot held and a handle changed (a blob moved from a
// condemned pack) is changed in its bucket when the delta is read: one
// location, the new one, and a snapshot written whole from it again holds
// the blob once.
func TestIndexDeltaChangesEntriesInPlace(t *testing.T) {
	ctx := context.Background()
	be, root, _, _ := snapshotFixture(t)
	x := withCacheAt(t, reopen(t, be), root) // opened from the snapshot
	if err := x.LoadIndex(ctx); err != nil || x.idx.blobs.src == nil {
		t.Fatalf("the snapshot should open: %v", err)
	}
	var id ID
	var l blobLoc
	x.idx.mu.Lock()
	x.idx.blobs.each(func(i ID, loc blobLoc) {
		if loc.typ == DataBlob {
			id, l = i, loc
		}
	})
	l.offset++
	x.idx.blobs.set(id, l)
	if e, ok := x.idx.blobs.overlay[id]; !ok || !e.inBase || e.loc != l {
		t.Fatalf("the change is not in the overlay: %+v %v", e, ok)
	}
	x.idx.mu.Unlock()
	x.saveIndexSnapshot(x.idx)
	z := withCacheAt(t, reopen(t, be), root)
	if err := z.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	z.idx.mu.Lock()
	got, ok := z.idx.blobs.get(id)
	_, inRecent := z.idx.blobs.recent[id]
	z.idx.mu.Unlock()
	if !ok || got != l || inRecent {
		t.Fatalf("read back %+v %v (recent %v), want %+v in its bucket", got, ok, inRecent, l)
	}
	n := 0
	z.idx.blobs.each(func(i ID, _ blobLoc) {
		if i == id {
			n++
		}
	})
	if n != 1 {
		t.Fatalf("the blob is held %d times", n)
	}
	var buf bytes.Buffer
	z.idx.mu.RLock()
	err := writeIndexSnapshot(&buf, z.indexAEAD, z.idx)
	z.idx.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	w, err := readIndexSnapshot(bytes.NewReader(buf.Bytes()), int64(buf.Len()), z.indexAEAD, z.idx.files)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.decodeAll(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(indexContent(z.idx), indexContent(w)) {
		t.Fatal("written whole, the index says another")
	}
}

// Past overlayMax entries a delta is not written: the snapshot is written
// whole again.
func TestIndexDeltaBounded(t *testing.T) {
	ctx := context.Background()
	be, root, _, x := snapshotFixture(t)
	snap := cachedSnapshot(t, root, x, indexSnapName)
	h := withCacheAt(t, reopen(t, be), root)
	if err := h.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	saveFiles(t, h, "backup-big", fileSet(50000, overlayMax+10, 10))
	if h.idx.blobs.overlay != nil {
		t.Fatalf("the overlay holds %d entries, past its bound", len(h.idx.blobs.overlay))
	}
	z := loadsLike(t, be, root, 1, "the big backup")
	if z.idx.blobs.overlay != nil {
		t.Fatal("the handle that read the big backup's file should hold no overlay")
	}
	if now := cachedSnapshot(t, root, x, indexSnapName); bytes.Equal(now, snap) {
		t.Fatal("the snapshot should have been written whole")
	}
	if d := cachedSnapshot(t, root, x, indexDeltaName); len(d) != 0 {
		t.Fatal("a delta is left beside the snapshot written whole")
	}
	loadsLike(t, be, root, 0, "the snapshot written whole")
}
