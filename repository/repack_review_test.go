package repository

// An adversarial review of the first repack (f72639e): each test asserts
// the safe outcome, and each failed on that commit.

import (
	"bytes"
	"context"
	"io"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"backupd/storage"
	"backupd/storage/fault"
	"backupd/storage/mem"
)

// putHook runs hook once, before the first Put under prefix goes through.
type putHook struct {
	storage.Backend
	prefix string
	once   sync.Once
	hook   func()
}

func (h *putHook) Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error {
	if strings.HasPrefix(name, h.prefix) {
		h.once.Do(h.hook)
	}
	return h.Backend.Put(ctx, name, r, size)
}

func listNames(be storage.Backend, prefix string) map[string]bool {
	out := map[string]bool{}
	be.List(context.Background(), prefix, func(oi storage.ObjectInfo) error { out[oi.Name] = true; return nil })
	return out
}

// A repacking collection (A) that stalls after its copies are stored and
// indexed, and before it condemns the old pack, for longer than a
// collector's lease (process frozen, or its storage calls hanging while
// the marker renewals fail). A plain collection (B: `backupd repo gc
// --safety-window 0`, or a cleanup with repack disabled) starts meanwhile,
// does not count A (lapsed), and keeps the old copy (its index happened
// to read the old pack's file first) while deleting A's new pack as
// unreferenced. A then resumes: its decision (others == 0) dates from
// before the stall, its recheck looks at writers only, so it deletes the
// old pack. The five files backup-2 shares with backup-1 are in neither.
func TestReviewStalledRepackBesideAPlainCollectionLosesData(t *testing.T) {
	ctx := context.Background()
	be, kept := partlyUsed(t)
	before := listNames(be, "index/")
	var resB *GCResult
	h := &putHook{Backend: be, prefix: "gc/"}
	h.hook = func() {
		// A stalls here: repack flushed, nothing condemned yet.
		fb := fault.New(be)
		for n := range listNames(be, "index/") {
			if !before[n] { // A's new index file: B happens to read it last
				fb.Add(fault.Rule{Op: fault.Get, Prefix: n, Action: fault.Delay, Delay: 300 * time.Millisecond})
			}
		}
		var err error
		resB, err = GC(ctx, reopen(t, fb), GCOptions{SafetyWindow: 0,
			Now: time.Now().Add(writerLease + clockSkew + time.Minute)}) // B runs 13 minutes into A's stall
		if err != nil {
			t.Errorf("B: %v", err)
		}
	}
	resA, err := GC(ctx, reopen(t, h), GCOptions{SafetyWindow: 0, Repack: noSmall})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("A: deleted %d, repack %+v; B: deleted %d, other collections %d", resA.Deleted, *resA.Repack, resB.Deleted, resB.OtherCollections)
	r := reopen(t, be)
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := r.LoadManifest(ctx, "backup-2")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := r.LoadTree(ctx, m.Components[0].Tree)
	if err != nil {
		t.Fatal(err)
	}
	var lost []string
	for _, n := range tree.Nodes {
		if _, err := r.LoadBlob(ctx, DataBlob, n.Content[0]); err != nil {
			lost = append(lost, n.Name)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("backup-2 lost %d of %d files (%v): a stalled repacking collection and a plain one each deleted the copy the other kept",
			len(lost), len(kept), lost)
	}
}

// partlyUsedPack is partlyUsed with the first data pack's id and the
// location of one of the blobs backup-2 still uses in it.
func partlyUsedPack(t *testing.T) (be storage.Backend, kept files, pack ID, live BlobLocation) {
	mb, kept := partlyUsed(t)
	r := reopen(t, mb)
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, ok := r.Lookup(r.BlobID(kept["f1"]))
	if !ok {
		t.Fatal("f1 not indexed")
	}
	return mb, kept, l.Pack, l
}

// A pack whose live range cannot be read (truncated on disk, an I/O
// error) makes repackOne return an error, and GC then stops before
// deleting anything: with repack on (the default for cleanups) one such
// pack stops all collection, run after run. The comment promises that a
// blob that does not read back keeps its pack and is reported; only
// decoding failures are handled so.
func TestReviewOneUnreadablePackStopsEveryCollection(t *testing.T) {
	ctx := context.Background()
	be, _, pack, _ := partlyUsedPack(t)
	raw, err := storage.ReadAll(ctx, be, packName(pack))
	if err != nil {
		t.Fatal(err)
	}
	short := raw[:1000]
	if err := be.Put(ctx, packName(pack), bytesReader(short), int64(len(short))); err != nil {
		t.Fatal(err)
	}
	plain := be.(*memBackend).Clone()
	if res, err := GC(ctx, reopen(t, plain), GCOptions{SafetyWindow: 0}); err != nil || res.Deleted == 0 {
		t.Fatalf("without repack: %v %+v", err, res)
	}
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: noSmall})
	if err != nil {
		t.Fatalf("with repack, one unreadable pack stopped the whole collection (backup-1's tree pack is not deleted): %v", err)
	}
	if len(res.Repack.Damaged) != 1 {
		t.Fatalf("the unreadable pack is not reported: %+v", res.Repack)
	}
}

// With another collection running, repack is skipped, but the result
// still carries the plan's numbers: `repo gc --repack` prints
// "rewrote 1 (5 live blobs ...), freeing 751 kB" and then "nothing
// rewritten: another collection is running".
func TestReviewSkippedRepackReportsNothingDone(t *testing.T) {
	ctx := context.Background()
	r, _ := func() (*Repository, storage.Backend) {
		be, _ := partlyUsed(t)
		return reopen(t, be), be
	}()
	other, err := r.register(ctx, collectorsPrefix, "gc")
	if err != nil {
		t.Fatal(err)
	}
	defer other.remove()
	res, err := GC(ctx, r, GCOptions{SafetyWindow: 0, Repack: noSmall})
	if err != nil {
		t.Fatal(err)
	}
	if rr := res.Repack; rr.Skipped != "" && (rr.Packs != 0 || rr.Frees != 0 || rr.Blobs != 0) {
		t.Fatalf("skipped (%q) but reports %d packs rewritten, %d blobs, %d bytes freed", rr.Skipped, rr.Packs, rr.Blobs, rr.Frees)
	}
}

// One live blob of the pack does not decode: the pack is reported
// damaged and taken out of Packs/LiveBytes/PackBytes, but Blobs still
// counts all five live blobs, and the four healthy ones were copied into
// a new pack (NewPacks/Written) that frees nothing.
func TestReviewDamagedPackAccounting(t *testing.T) {
	ctx := context.Background()
	be, _, pack, live := partlyUsedPack(t)
	be.(*memBackend).Corrupt(packName(pack), int(live.Offset)+20)
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: noSmall})
	if err != nil {
		t.Fatal(err)
	}
	rr := res.Repack
	t.Logf("repack: %+v", *rr)
	if len(rr.Damaged) != 1 {
		t.Fatalf("damage not reported: %+v", rr)
	}
	if rr.Packs == 0 && (rr.Blobs != 0 || rr.NewPacks != 0) {
		t.Fatalf("0 packs rewritten, yet %d blobs counted and %d new packs (%d bytes) written", rr.Blobs, rr.NewPacks, rr.Written)
	}
}

type memBackend = mem.Backend

func bytesReader(b []byte) io.ReadSeeker { return bytes.NewReader(b) }

// A collection whose registration lapsed during its mark (a frozen
// process) skips its repack and deletes nothing, as before a handle's
// lapsed registration stopped its uploads from being indexed: the
// repack's copies then failed the whole collection (review).
func TestALapsedCollectionSkipsItsRepack(t *testing.T) {
	ctx := context.Background()
	be, _ := partlyUsed(t)
	var r *Repository
	// it lapses once it folded the manifests (deleting the loose ones
	// is the fold's last step), before it repacks
	h := &deleteHook{Backend: be, prefix: "manifests/", hook: func() {
		r.regs.mu.Lock()
		defer r.regs.mu.Unlock()
		for w := range r.regs.m {
			lapse(w)
		}
	}}
	r = reopen(t, h)
	before := listNames(be, "data/")
	res, err := GC(ctx, r, GCOptions{SafetyWindow: 0, Repack: noSmall})
	if err != nil {
		t.Fatalf("a lapsed collection: %v", err)
	}
	if res.Repack == nil || !strings.Contains(res.Repack.Skipped, "lapsed") || res.Deleted != 0 {
		t.Fatalf("want the repack skipped and nothing deleted: %+v %+v", res, res.Repack)
	}
	if after := listNames(be, "data/"); !maps.Equal(after, before) {
		t.Fatalf("packs changed: %d before, %d after", len(before), len(after))
	}
}

// deleteHook runs a hook after each deletion under a prefix.
type deleteHook struct {
	storage.Backend
	prefix string
	hook   func()
}

func (h *deleteHook) Delete(ctx context.Context, name string) error {
	err := h.Backend.Delete(ctx, name)
	if strings.HasPrefix(name, h.prefix) {
		h.hook()
	}
	return err
}
