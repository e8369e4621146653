package repository

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"backupd/storage"
)

// Findings of an adversarial review of the collector, each as the
// interleaving that lost data before its fix.

func packOf(t *testing.T, r *Repository, blob ID) ID {
	t.Helper()
	l, ok := r.Lookup(blob)
	if !ok {
		t.Fatalf("blob %s not indexed", blob.Short())
	}
	return l.Pack
}

func stored(ctx context.Context, be storage.Backend, pack ID) bool {
	_, err := be.Stat(ctx, packName(pack))
	return err == nil
}

// dropIndexOf removes the index files that list pack.
func dropIndexOf(t *testing.T, r *Repository, be storage.Backend, pack ID) {
	ctx := context.Background()
	be.List(ctx, "index/", func(oi storage.ObjectInfo) error {
		id, _ := ParseID(strings.TrimPrefix(oi.Name, "index/"))
		f, err := r.readIndexFile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Packs {
			if p.ID == pack {
				be.Delete(ctx, oi.Name)
			}
		}
		return nil
	})
}

// A collection whose mark outlasts the clock skew condemned packs with
// the time it began: a writer that registered meanwhile (and loaded the
// list before the packs were in it) counted as started after the
// condemnation, and an emergency collection then deleted what it
// deduplicated against. Condemnations now carry the time the list is
// written.
func TestACondemnationIsTimedWhenItCanBeSeen(t *testing.T) {
	ctx := context.Background()
	defer func(s time.Duration) { clockSkew = s }(clockSkew)
	clockSkew = 50 * time.Millisecond
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-kept", randData(60, 3000))
	shared := randData(61, 4000)
	blob := saveBackup(t, r, "backup-gone", shared)
	r.DeleteManifest(ctx, "backup-gone")
	pack := packOf(t, r, blob)
	old := time.Now().Add(-48 * time.Hour)
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, old); return nil })

	var w *Repository
	h := &listHook{Backend: be, prefix: "manifests/"}
	h.hook = func() {
		time.Sleep(4 * clockSkew) // a long mark
		w = reopen(t, be)
		if _, err := w.BeginWrite(ctx, "backup"); err != nil {
			t.Error(err)
		}
		w.LoadIndex(ctx)
		if _, added, _ := w.SaveBlob(ctx, DataBlob, shared); added {
			t.Error("not deduplicated")
		}
	}
	if _, err := GC(ctx, reopen(t, h), GCOptions{SafetyWindow: time.Hour}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * clockSkew)
	if _, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0}); err != nil {
		t.Fatal(err)
	}
	if !stored(ctx, be, pack) {
		t.Fatal("a pack an open writer deduplicated against was deleted")
	}
}

// A pending marker's tree in a pack that lost its index entry is passed
// over by the walk; the packs the marker names are kept all the same.
func TestGCKeepsThePacksAPendingMarkerNames(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	data := randData(62, 5000)
	blob, _, _ := r.SaveBlob(ctx, DataBlob, data)
	sub, _ := r.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: "f", Type: NodeFile, Size: uint64(len(data)), Content: []ID{blob}}}})
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	root, _ := r.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: "d", Type: NodeDir, Subtree: &sub}}})
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.SavePending(ctx, "backup-paused", "c", root); err != nil {
		t.Fatal(err)
	}
	dataPack, subPack := packOf(t, r, blob), packOf(t, r, sub)
	dropIndexOf(t, r, be, subPack)
	old := time.Now().Add(-48 * time.Hour)
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, old); return nil })
	if _, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0}); err != nil {
		t.Fatal(err)
	}
	if !stored(ctx, be, dataPack) || !stored(ctx, be, subPack) {
		t.Fatalf("packs a pending marker names were deleted (data %v, subtree %v)", stored(ctx, be, dataPack), stored(ctx, be, subPack))
	}
}

// A commit over a stored pack that no index file lists indexes it again
// from its header (a collection that failed twice left it so).
func TestCheckPacksIndexesAStoredUnindexedPack(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	blob := saveBackup(t, r, "backup-1", randData(63, 4000))
	pack := packOf(t, r, blob)
	dropIndexOf(t, r, be, pack)
	w := reopen(t, be)
	if err := w.CheckPacks(ctx, []ID{pack}); err != nil {
		t.Fatal(err)
	}
	r2 := reopen(t, be)
	r2.LoadIndex(ctx)
	if _, err := r2.LoadBlob(ctx, DataBlob, blob); err != nil {
		t.Fatalf("not indexed again: %v", err)
	}
	// ...but not by a writer whose registration lapsed: a collection
	// that no longer counts it may be deleting the pack (review)
	dropIndexOf(t, r2, be, pack)
	x := reopen(t, be)
	reg, err := x.BeginWrite(ctx, "commit, asleep")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.End()
	lapse(reg)
	files := objectNames(t, be, "index/")
	if err := x.CheckPacks(ctx, []ID{pack}); !errors.Is(err, ErrWriterLapsed) {
		t.Fatalf("lapsed: want ErrWriterLapsed, got %v", err)
	}
	if got := objectNames(t, be, "index/"); !slices.Equal(got, files) {
		t.Fatalf("a lapsed writer indexed the pack: %v, before %v", got, files)
	}
}

// Index entries of a pack that is gone (deleted by a collection whose
// index another one had read) are dropped by the next rewrite: writers
// deduplicated against them and failed every commit.
func TestGCDropsEntriesOfPacksThatAreGone(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-kept", randData(64, 3000))
	blob := saveBackup(t, r, "backup-gone", randData(65, 4000))
	r.DeleteManifest(ctx, "backup-gone")
	be.Delete(ctx, packName(packOf(t, r, blob))) // its data pack vanished; its tree pack is an orphan
	if _, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0}); err != nil {
		t.Fatal(err)
	}
	r2 := reopen(t, be)
	r2.LoadIndex(ctx)
	if _, ok := r2.Lookup(blob); ok {
		t.Fatal("the index still lists a pack that is gone")
	}
}

// A collection that started and ended while another one marked is still
// counted by it (collectors end their registration, they do not remove
// it): the first may have deleted packs whose entries the second read.
func TestGCCountsACollectionThatEndedDuringIt(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-kept", randData(66, 3000))
	saveBackup(t, r, "backup-gone", randData(67, 4000))
	r.DeleteManifest(ctx, "backup-gone")
	h := &listHook{Backend: be, prefix: "manifests/"}
	h.hook = func() {
		if _, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0}); err != nil {
			t.Error(err)
		}
		// and something for the second to delete, were it alone
		w := reopen(t, be)
		w.LoadIndex(ctx)
		saveBackup(t, w, "backup-gone-too", randData(68, 4000))
		w.DeleteManifest(ctx, "backup-gone-too")
		old := time.Now().Add(-48 * time.Hour)
		be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, old); return nil })
	}
	res, err := GC(ctx, reopen(t, h), GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	if res.OtherCollections != 1 || res.Deleted != 0 {
		t.Fatalf("a collection that ran meanwhile was not counted: %+v", res)
	}
}

// RepairIndex leaves condemned packs unindexed: a collection may be
// deleting them as it reads them.
func TestRepairIndexLeavesCondemnedPacks(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-kept", randData(69, 3000))
	blob := saveBackup(t, r, "backup-gone", randData(70, 4000))
	r.DeleteManifest(ctx, "backup-gone")
	pack := packOf(t, r, blob)
	old := time.Now().Add(-48 * time.Hour)
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, old); return nil })
	if _, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: time.Hour}); err != nil { // condemns
		t.Fatal(err)
	}
	dropIndexOf(t, r, be, pack)
	rep, err := RepairIndex(ctx, reopen(t, be))
	if err != nil || rep.Indexed != 0 || rep.Condemned != 1 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
}
