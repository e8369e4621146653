package repository

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"backupd/storage"
)

// saveBackup stores data as a one-file backup with its own pack.
func saveBackup(t *testing.T, r *Repository, id string, data []byte) ID {
	ctx := context.Background()
	blob, _, err := r.SaveBlob(ctx, DataBlob, data)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := r.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: "f", Type: NodeFile, Size: uint64(len(data)), Content: []ID{blob}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.SaveManifest(ctx, &Manifest{ID: id, Type: "full", Components: []ComponentManifest{{Name: "c", Tree: tree}}}); err != nil {
		t.Fatal(err)
	}
	return blob
}

func TestGCCondemnsThenDeletesAndWritersAvoidCondemned(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	keep := saveBackup(t, r, "backup-keep", randData(1, 3000))
	gone := randData(2, 4000)
	goneID := saveBackup(t, r, "backup-gone", gone)
	if err := r.DeleteManifest(ctx, "backup-gone"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	window := time.Hour
	res, err := GC(ctx, r, GCOptions{SafetyWindow: window, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 0 || res.Condemned != 0 || res.TooYoung == 0 {
		t.Fatalf("young packs touched: %+v", res)
	}
	// Age every pack past the window: the unreferenced one is condemned, not deleted.
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, now.Add(-2*window)); return nil })
	res, err = GC(ctx, r, GCOptions{SafetyWindow: window, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if res.Condemned != 2 || res.Deleted != 0 { // the data pack and the tree pack of backup-gone
		t.Fatalf("first pass: %+v", res)
	}
	// A backup starting now stores the same content again instead of
	// depending on the condemned pack.
	w, err := Open(ctx, be, Credentials{Password: []byte("correct horse")})
	if err != nil {
		t.Fatal(err)
	}
	w.LoadIndex(ctx)
	if _, added, _ := w.SaveBlob(ctx, DataBlob, gone); !added {
		t.Fatal("writer deduplicated against a condemned pack")
	}
	w.Flush(ctx)
	// One window later the condemned packs go; the kept backup and the
	// re-stored blob remain readable.
	res, err = GC(ctx, r, GCOptions{SafetyWindow: window, Now: now.Add(2 * window)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 2 || res.BytesFreed == 0 {
		t.Fatalf("second pass: %+v", res)
	}
	r2, _ := Open(ctx, be, Credentials{Password: []byte("correct horse")})
	r2.LoadIndex(ctx)
	if _, err := r2.LoadBlob(ctx, DataBlob, keep); err != nil {
		t.Fatalf("kept blob: %v", err)
	}
	if _, err := r2.LoadBlob(ctx, DataBlob, goneID); err != nil {
		t.Fatalf("re-stored blob: %v", err)
	}
	cr, err := Check(ctx, r2, CheckOptions{ReadDataPercent: 100})
	if err != nil || !cr.OK {
		t.Fatalf("check after gc: %v %+v", err, cr)
	}
}

func TestGCRefusesOnUnreadableManifest(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-a", randData(3, 100))
	be.Corrupt("manifests/backup-a", 50)
	_, err := GC(ctx, r, GCOptions{})
	if err == nil || !strings.Contains(err.Error(), "nothing deleted") {
		t.Fatalf("gc with a damaged manifest: %v", err)
	}
}

func TestGCKeepsPendingComponents(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	blob, _, _ := r.SaveBlob(ctx, DataBlob, randData(9, 5000))
	tree, _ := r.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: "f", Type: NodeFile, Size: 5000, Content: []ID{blob}}}})
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// a component finished long ago, its backup not yet committed (paused)
	if err := r.SavePending(ctx, "backup-long", "data", tree); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, old); return nil })
	for i := 0; i < 3; i++ {
		res, err := GC(ctx, r, GCOptions{SafetyWindow: time.Hour, Now: time.Now().Add(time.Duration(i) * 2 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if res.Condemned != 0 || res.Deleted != 0 {
			t.Fatalf("gc touched a pending component's packs: %+v", res)
		}
	}
	if err := r.DeletePending(ctx, "backup-long"); err != nil {
		t.Fatal(err)
	}
	res, err := GC(ctx, r, GCOptions{SafetyWindow: 0})
	if err != nil || res.Deleted != 2 {
		t.Fatalf("after the marker went: %+v %v", res, err)
	}
}

// A pending marker whose tree is partly gone (its job failed for good)
// still protects the rest of what it names: the walk used to stop at the
// first missing subtree and leave its siblings' data unmarked.
func TestGCKeepsWhatAPartlyMissingPendingTreeNames(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	data := randData(12, 5000)
	blob, _, _ := r.SaveBlob(ctx, DataBlob, data)
	sub, _ := r.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: "f", Type: NodeFile, Size: uint64(len(data)), Content: []ID{blob}}}})
	var missing ID
	missing[0] = 1
	root, _ := r.SaveTree(ctx, &Tree{Nodes: []*Node{
		{Name: "a", Type: NodeDir, Subtree: &missing},
		{Name: "b", Type: NodeDir, Subtree: &sub},
	}})
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.SavePending(ctx, "backup-failed", "data", root); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, old); return nil })
	if _, err := GC(ctx, r, GCOptions{SafetyWindow: 0}); err != nil {
		t.Fatal(err)
	}
	r2 := reopen(t, be)
	r2.LoadIndex(ctx)
	if _, err := r2.LoadBlob(ctx, DataBlob, blob); err != nil {
		t.Fatalf("data named by the pending tree was collected: %v", err)
	}
}

// A blob stored in a condemned pack and again in a healthy one is looked up
// in the healthy one, whichever index file loaded first (found in review).
func TestCondemnedBlobResolvesToHealthyCopy(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRepo(t)
	data := randData(11, 3000)
	id, _, _ := r.SaveBlob(ctx, DataBlob, data)
	r.Flush(ctx)
	locA, _ := r.Lookup(id)
	r2 := r.Session() // has not loaded the index: stores the blob again
	if _, added, _ := r2.SaveBlob(ctx, DataBlob, data); !added {
		t.Fatal("second session deduplicated without an index")
	}
	r2.Flush(ctx)
	if _, err := r.saveCondemned(ctx, map[string]time.Time{locA.Pack.String(): time.Now()}, nil, time.Now); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		r3 := r.Session()
		if err := r3.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		loc, _ := r3.Lookup(id)
		if loc.Pack == locA.Pack {
			t.Fatalf("lookup %d resolves to the condemned pack", i)
		}
		if !r3.Has(id) {
			t.Fatalf("lookup %d: the healthy copy is not deduplicated against", i)
		}
	}
}

// A dry run that excludes backups computes what removing them would free:
// the packs only they use, not the ones a kept backup shares.
func TestGCDryRunExcludeComputesWhatRemovalFrees(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRepo(t)
	shared := randData(3, 5000)
	saveBackup(t, r, "backup-a", shared)
	saveBackup(t, r, "backup-b", shared) // dedupes: no new data pack
	saveBackup(t, r, "backup-c", randData(4, 7000))
	res, err := GC(ctx, r, GCOptions{DryRun: true, Exclude: []string{"backup-a"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Unreferenced != 0 || res.UnreferencedBytes != 0 { // b has the same data and tree: nothing is a's alone
		t.Fatalf("excluding a: %+v", res)
	}
	both, err := GC(ctx, r, GCOptions{DryRun: true, Exclude: []string{"backup-a", "backup-b"}})
	if err != nil {
		t.Fatal(err)
	}
	if both.Unreferenced != 2 || both.UnreferencedBytes <= 5000 || both.Packs != 4 {
		t.Fatalf("excluding a and b: %+v (a alone: %+v)", both, res)
	}
	if ids, _ := r.ManifestIDs(ctx); len(ids) != 3 {
		t.Fatalf("a dry run changed the repository: %v", ids)
	}
}

// A blob stored again (in a healthy pack) while its first pack sat
// condemned: the condemned pack goes a window later, though the blob is
// referenced (its healthy copy is kept).
func TestGCCollectsACondemnedPackWhoseBlobsWereStoredAgain(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	data := randData(30, 4000)
	saveBackup(t, r, "backup-a", data)
	r.DeleteManifest(ctx, "backup-a")
	now := time.Now()
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, now.Add(-3*time.Hour)); return nil })
	if res, err := GC(ctx, r, GCOptions{SafetyWindow: time.Hour, Now: now}); err != nil || res.Condemned != 2 {
		t.Fatalf("condemn: %v %+v", err, res)
	}
	w, _ := Open(ctx, be, Credentials{Password: []byte("correct horse")})
	w.LoadIndex(ctx)
	saveBackup(t, w, "backup-b", data) // stores the blob again: its pack is condemned
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		if oi.ModTime.After(now.Add(-time.Hour)) {
			be.SetModTime(oi.Name, now.Add(-90*time.Minute))
		}
		return nil
	})
	res, err := GC(ctx, r, GCOptions{SafetyWindow: time.Hour, Now: now.Add(2 * time.Hour)})
	if err != nil || res.Deleted != 2 {
		t.Fatalf("the condemned packs were kept: %v %+v", err, res)
	}
	r2, _ := Open(ctx, be, Credentials{Password: []byte("correct horse")})
	if cr, err := Check(ctx, r2, CheckOptions{ReadDataPercent: 100}); err != nil || !cr.OK {
		t.Fatalf("check: %v %+v", err, cr)
	}
}

// An index file lost (a storage that failed or lied) leaves a pack of
// referenced data unindexed: the collection used to take it for an orphan
// and delete it. It now stops, and RepairIndex indexes the pack again from
// its own header.
func TestGCStopsWhenReferencedDataIsUnindexedAndRepairIndexRestoresIt(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	data := randData(13, 5000)
	blob := saveBackup(t, r, "backup-1", data)
	pack := packOf(t, r, blob)
	dropIndexOf(t, r, be, pack) // lose the index file that lists the data pack
	old := time.Now().Add(-48 * time.Hour)
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, old); return nil })
	_, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0})
	if !errors.Is(err, ErrBlobNotFound) || !strings.Contains(err.Error(), "repair-index") {
		t.Fatalf("gc over unindexed referenced data: %v", err)
	}
	if _, err := be.Stat(ctx, packName(pack)); err != nil {
		t.Fatalf("the pack was deleted: %v", err)
	}
	// a damaged unindexed pack is reported and left alone
	be.Put(ctx, "data/ab/"+strings.Repeat("ab", 32), bytes.NewReader([]byte("junk")), 4)
	rep, err := RepairIndex(ctx, reopen(t, be))
	if err != nil || rep.Indexed != 1 || rep.Unindexed != 2 || len(rep.Damaged) != 1 || rep.Blobs != 1 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	be.Delete(ctx, "data/ab/"+strings.Repeat("ab", 32))
	if _, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0}); err != nil {
		t.Fatal(err)
	}
	if cr, err := Check(ctx, reopen(t, be), CheckOptions{ReadDataPercent: 100}); err != nil || !cr.OK {
		t.Fatalf("after repair and collection: %v %+v", err, cr)
	}
}
