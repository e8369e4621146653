package repository

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"backupd/storage"
	"backupd/storage/fault"
	"backupd/storage/mem"
)

func reopen(t *testing.T, be storage.Backend) *Repository {
	t.Helper()
	r, err := Open(context.Background(), be, Credentials{Password: []byte("correct horse")})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func countPacks(t *testing.T, be storage.Backend) int {
	n := 0
	be.List(context.Background(), "data/", func(storage.ObjectInfo) error { n++; return nil })
	return n
}

// A job writing packs that no manifest references yet: a collection with
// no safety window (an emergency cleanup) must keep them. Before writer
// registrations it deleted every unreferenced pack at once.
func TestGCZeroWindowKeepsAnOpenWritersPacks(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-kept", randData(1, 3000))

	w := reopen(t, be)
	reg, err := w.BeginWrite(ctx, "backup test")
	if err != nil {
		t.Fatal(err)
	}
	w.LoadIndex(ctx)
	data := randData(7, 5000)
	blob, _, _ := w.SaveBlob(ctx, DataBlob, data)
	tree, _ := w.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: "f", Type: NodeFile, Size: uint64(len(data)), Content: []ID{blob}}}})
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before := countPacks(t, be)

	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 0 || res.OpenWriters != 1 || countPacks(t, be) != before {
		t.Fatalf("gc took an open writer's packs: %+v (packs %d -> %d)", res, before, countPacks(t, be))
	}
	// The job commits; its manifest now protects the packs for good.
	if err := w.SaveManifest(ctx, &Manifest{ID: "backup-late", Type: "full", Components: []ComponentManifest{{Name: "c", Tree: tree}}}); err != nil {
		t.Fatal(err)
	}
	reg.End()
	if _, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0}); err != nil {
		t.Fatal(err)
	}
	cr, err := Check(ctx, reopen(t, be), CheckOptions{ReadDataPercent: 100})
	if err != nil || !cr.OK {
		t.Fatalf("check: %v %+v", err, cr)
	}
}

// A writer that loaded the index while a forgotten backup's pack was still
// listed deduplicates against it: a zero-window collection must condemn
// that pack, not delete it, while the writer is open.
func TestGCZeroWindowKeepsPacksAWriterMayHaveDeduplicated(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	shared := randData(3, 4000)
	saveBackup(t, r, "backup-old", shared)
	if err := r.DeleteManifest(ctx, "backup-old"); err != nil {
		t.Fatal(err)
	}
	w := reopen(t, be)
	reg, _ := w.BeginWrite(ctx, "backup test")
	defer reg.End()
	w.LoadIndex(ctx)
	if _, added, _ := w.SaveBlob(ctx, DataBlob, shared); added {
		t.Fatal("expected a deduplicated blob")
	}
	// age everything, so only the writer rule can keep the old pack
	now := time.Now()
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, now.Add(-48*time.Hour)); return nil })
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 0 || res.Condemned == 0 {
		t.Fatalf("want the old packs condemned, not deleted: %+v", res)
	}
	if err := w.CheckPacks(ctx, w.DependedPacks()); err != nil {
		t.Fatalf("the writer's dependency is gone: %v", err)
	}
}

// A writer whose lease lapsed (its worker died) holds nothing back.
func TestGCIgnoresALapsedWriter(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-gone", randData(4, 4000))
	r.DeleteManifest(ctx, "backup-gone")
	w := reopen(t, be)
	if _, err := w.BeginWrite(ctx, "died"); err != nil { // never ended
		t.Fatal(err)
	}
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Now: time.Now().Add(writerLease + clockSkew + time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if res.OpenWriters != 0 || res.Deleted != 2 {
		t.Fatalf("a lapsed writer blocked collection: %+v", res)
	}
}

// hookBackend runs a hook before the first deletion under a prefix.
type hookBackend struct {
	storage.Backend
	prefix string
	once   sync.Once
	hook   func()
}

func (h *hookBackend) Delete(ctx context.Context, name string) error {
	if strings.HasPrefix(name, h.prefix) {
		h.once.Do(h.hook)
	}
	return h.Backend.Delete(ctx, name)
}

// A writer that registers while the collection rewrites the index may have
// read the old index: the collection puts the packs back and deletes none.
func TestGCDefersWhenAWriterStartsDuringCollection(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-kept", randData(5, 3000))
	gone := randData(6, 4000)
	goneBlob := saveBackup(t, r, "backup-gone", gone)
	r.DeleteManifest(ctx, "backup-gone")

	var late *Repository
	hb := &hookBackend{Backend: be, prefix: "index/"}
	hb.hook = func() {
		late = reopen(t, be)
		if _, err := late.BeginWrite(ctx, "late"); err != nil {
			t.Error(err)
		}
	}
	res, err := GC(ctx, reopen(t, hb), GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	if late == nil || res.Deleted != 0 || res.Deferred != 2 {
		t.Fatalf("want deletion deferred: %+v", res)
	}
	// the packs are indexed again and readable
	r2 := reopen(t, be)
	r2.LoadIndex(ctx)
	if _, err := r2.LoadBlob(ctx, DataBlob, goneBlob); err != nil {
		t.Fatalf("deferred pack not back in the index: %v", err)
	}
	cr, err := Check(ctx, r2, CheckOptions{ReadDataPercent: 100})
	if err != nil || !cr.OK {
		t.Fatalf("check: %v %+v", err, cr)
	}
}

// The commit refuses a manifest whose packs are gone, and writes nothing:
// every pack is looked up in storage, a listed one once, also one the
// index names and no collection condemned (the storage lost it).
func TestCheckPacksRefusesMissingPacks(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r, err := Init(ctx, be, InitOptions{Wrapping: testPass})
	if err != nil {
		t.Fatal(err)
	}
	r.LoadIndex(ctx)
	r.SaveBlob(ctx, DataBlob, randData(8, 2000))
	r.Flush(ctx)
	deps := r.DependedPacks()
	if len(deps) != 1 {
		t.Fatalf("depended packs: %v", deps)
	}
	fb := fault.New(be)
	w := reopen(t, fb)
	fb.Reset()
	if err := w.CheckPacks(ctx, append(deps, deps...)); err != nil {
		t.Fatal(err)
	}
	if n := fb.Calls(fault.Stat); n != 1 {
		t.Fatalf("a pack listed twice: %d lookups, want 1", n)
	}
	be.Delete(ctx, packName(deps[0]))
	if err := w.CheckPacks(ctx, deps); !errors.Is(err, ErrPacksMissing) {
		t.Fatalf("want ErrPacksMissing, got %v", err)
	}
	// the listing path (more packs than lookupLimit) finds it too
	many := slices.Clone(deps)
	for i := range 70 {
		r.SaveBlob(ctx, DataBlob, randData(100+int64(i), 2000))
		r.Flush(ctx)
	}
	for _, id := range r.DependedPacks() {
		if id != deps[0] {
			many = append(many, id)
		}
	}
	fb.Reset()
	if err := w.CheckPacks(ctx, many); !errors.Is(err, ErrPacksMissing) || fb.Calls(fault.Stat) != 0 {
		t.Fatalf("listing path: want ErrPacksMissing and no lookup one by one, got %v, %d", err, fb.Calls(fault.Stat))
	}
}

// Packs are looked up one by one up to 24 for each 1,000 packs the index
// holds (a listing page's worth), 64 while it is not loaded.
func TestLookupLimit(t *testing.T) {
	for _, c := range []struct{ stored, want int }{{0, 64}, {1, 24}, {245, 24}, {1000, 24}, {1001, 48}, {100_000, 2400}} {
		if got := lookupLimit(c.stored); got != c.want {
			t.Errorf("lookupLimit(%d) = %d, want %d", c.stored, got, c.want)
		}
	}
	// in a repository of a few packs, 30 are listed, not looked up
	ctx := context.Background()
	r, be := newTestRepo(t)
	r.LoadIndex(ctx)
	for i := range 30 {
		r.SaveBlob(ctx, DataBlob, randData(300+int64(i), 2000))
		r.Flush(ctx)
	}
	fb := fault.New(be)
	w := reopen(t, fb)
	if err := w.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	fb.Reset()
	if err := w.CheckPacks(ctx, r.DependedPacks()); err != nil || fb.Calls(fault.Stat) != 0 || fb.Calls(fault.List) == 0 {
		t.Fatalf("30 packs of 30: %v, %d lookups, %d listings", err, fb.Calls(fault.Stat), fb.Calls(fault.List))
	}
}

// listHook runs a hook once, after the first listing under a prefix.
type listHook struct {
	storage.Backend
	prefix string
	once   sync.Once
	hook   func()
}

func (h *listHook) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	err := h.Backend.List(ctx, prefix, fn)
	if prefix == h.prefix {
		h.once.Do(h.hook)
	}
	return err
}

// A backup that commits while a collection walks the manifests (after
// it listed them): its tree was named by its pending marker until the
// commit, so the collection must have read the markers before the
// manifests. Found by review: the collection read them afterwards and
// deleted the new backup's packs.
func TestGCKeepsABackupCommittedDuringTheMark(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-old", randData(20, 3000))
	// a finished component, long before: data, tree, pending marker
	w := reopen(t, be)
	w.LoadIndex(ctx)
	data := randData(21, 5000)
	blob, _, _ := w.SaveBlob(ctx, DataBlob, data)
	tree, _ := w.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: "f", Type: NodeFile, Size: uint64(len(data)), Content: []ID{blob}}}})
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.SavePending(ctx, "backup-new", "c", tree); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, old); return nil })
	// the commit lands right after the collection listed the manifests
	h := &listHook{Backend: be, prefix: "manifests/"}
	h.hook = func() {
		if err := w.SaveManifest(ctx, &Manifest{ID: "backup-new", Type: "full", Components: []ComponentManifest{{Name: "c", Tree: tree}}}); err != nil {
			t.Error(err)
		}
		w.DeletePending(ctx, "backup-new")
	}
	if _, err := GC(ctx, reopen(t, h), GCOptions{SafetyWindow: 0}); err != nil {
		t.Fatal(err)
	}
	cr, err := Check(ctx, reopen(t, be), CheckOptions{ReadDataPercent: 100})
	if err != nil || !cr.OK {
		t.Fatalf("the backup committed during collection lost data: %v %+v", err, cr)
	}
}

// A copy that starts and ends while a collection runs (its registration
// ended, not removed) deduplicated against a pack the collection thought
// unreferenced: the collection must not delete it at once.
func TestGCCountsAWriterThatEndedDuringIt(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	shared := randData(22, 4000)
	saveBackup(t, r, "backup-forgotten", shared)
	r.DeleteManifest(ctx, "backup-forgotten")
	old := time.Now().Add(-48 * time.Hour)
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, old); return nil })
	h := &listHook{Backend: be, prefix: "manifests/"}
	h.hook = func() {
		w := reopen(t, be)
		reg, _ := w.BeginWrite(ctx, "copy")
		w.LoadIndex(ctx)
		blob, added, _ := w.SaveBlob(ctx, DataBlob, shared) // deduplicated
		tree, _ := w.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: "f", Type: NodeFile, Size: uint64(len(shared)), Content: []ID{blob}}}})
		w.Flush(ctx)
		if err := w.SaveManifest(ctx, &Manifest{ID: "backup-copied", Type: "full", Components: []ComponentManifest{{Name: "c", Tree: tree}}}); err != nil || added {
			t.Errorf("copy: %v (added %v)", err, added)
		}
		reg.End()
	}
	res, err := GC(ctx, reopen(t, h), GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := Check(ctx, reopen(t, be), CheckOptions{ReadDataPercent: 100})
	if err != nil || !cr.OK {
		t.Fatalf("a writer that ended during collection lost its data: %v %+v (gc %+v)", err, cr, res)
	}
}

// Two collections at once: the second to look deletes nothing.
func TestGCDeletesNothingWhileAnotherCollectionRuns(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-gone", randData(23, 4000))
	r.DeleteManifest(ctx, "backup-gone")
	other, err := r.register(ctx, collectorsPrefix, "gc")
	if err != nil {
		t.Fatal(err)
	}
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 0 || res.OtherCollections != 1 {
		t.Fatalf("deleted while another collection ran: %+v", res)
	}
	other.remove()
	if res, _ := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0}); res.Deleted == 0 {
		t.Fatalf("alone, it should collect: %+v", res)
	}
}

// lapse marks a registration lapsed, as a renewal after too long a gap
// does.
func lapse(w *Writer) {
	w.mu.Lock()
	w.lapsed = true
	w.mu.Unlock()
}

// A writer whose renewals failed for longer than collections honour it
// may not commit.
func TestALapsedWriterMayNotCommit(t *testing.T) {
	ctx := context.Background()
	_, be := newTestRepo(t)
	w := reopen(t, be)
	reg, err := w.BeginWrite(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.End()
	if err := reg.Valid(); err != nil {
		t.Fatal(err)
	}
	reg.mu.Lock()
	reg.held = time.Now().Add(-writerLease)
	reg.mu.Unlock()
	if err := reg.Valid(); !errors.Is(err, ErrWriterLapsed) {
		t.Fatalf("want ErrWriterLapsed, got %v", err)
	}
	// a renewal that succeeds after the gap (a process stopped, a VM
	// paused) does not make it valid again: a collection may have run
	// without counting it meanwhile
	if err := reg.put(ctx); err != nil {
		t.Fatal(err)
	}
	if err := reg.Valid(); !errors.Is(err, ErrWriterLapsed) {
		t.Fatalf("after a late renewal: want ErrWriterLapsed, got %v", err)
	}
}

// A writer whose registration lapsed writes no index file: a collection
// that no longer counted it may have deleted its packs and their index
// files, and indexing them again (a pack's own file, or the session's
// merge when it wakes) left every later backup deduplicating against
// deleted packs, its commit failing, until the next collection (review).
func TestALapsedWriterIndexesNothing(t *testing.T) {
	ctx := context.Background()
	_, be := newTestRepo(t)
	w := reopen(t, be)
	reg, err := w.BeginWrite(ctx, "asleep")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.End()
	w.LoadIndex(ctx)
	before := objectNames(t, be, "index/")
	w.SaveBlob(ctx, DataBlob, randData(300, 2000))
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(objectNames(t, be, "index/")) - len(before); n != 1 {
		t.Fatalf("%d index files written before the sleep", n)
	}
	lapse(reg)
	written := objectNames(t, be, "index/")
	w.SaveBlob(ctx, DataBlob, randData(400, 2000))
	if err := w.Flush(ctx); !errors.Is(err, ErrWriterLapsed) {
		t.Fatalf("flush after the lapse: want ErrWriterLapsed, got %v", err)
	}
	if got := objectNames(t, be, "index/"); !slices.Equal(got, written) {
		t.Fatalf("index files written after the lapse: %v, before %v", got, written)
	}
	// the session's merge (of its own index files, every
	// sessionIndexRoll packs) is refused too
	w2 := reopen(t, be)
	reg2, _ := w2.BeginWrite(ctx, "asleep too")
	defer reg2.End()
	lapse(reg2)
	if err := w2.compactIndex(ctx, nil, make([]ID, compactMinFiles)); !errors.Is(err, ErrWriterLapsed) {
		t.Fatalf("merge after the lapse: want ErrWriterLapsed, got %v", err)
	}
	// ended, a registration no longer counts
	reg2.End()
	if err := w2.registrationsValid(); err != nil {
		t.Fatal(err)
	}
}

// A writer whose index was loaded before a collection ran (backup.Run
// loads it before the components register; the worker keeps its
// repository open between jobs) must not keep entries for packs the
// collection deleted: registering and loading the index again has to drop
// them, or the writer deduplicates against nothing and commits a backup
// over deleted data (the fault soak found such backups after an
// emergency collection).
func TestLoadIndexDropsPacksACollectionDeleted(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	data := randData(7, 5000)
	blob := saveBackup(t, r, "backup-forgotten", data)
	if err := r.DeleteManifest(ctx, "backup-forgotten"); err != nil {
		t.Fatal(err)
	}
	writer := reopen(t, be)
	if err := writer.LoadIndex(ctx); err != nil { // loaded early, no registration yet
		t.Fatal(err)
	}
	if !writer.Has(blob) {
		t.Fatal("the blob should be indexed before the collection")
	}
	time.Sleep(10 * time.Millisecond) // the packs predate the collection
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0})
	if err != nil || res.Deleted == 0 {
		t.Fatalf("emergency collection: %+v %v", res, err)
	}
	w, err := writer.BeginWrite(ctx, "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer w.End()
	if err := writer.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if writer.Has(blob) {
		t.Fatal("the writer still deduplicates against a pack the collection deleted")
	}
	if _, added, err := writer.SaveBlob(ctx, DataBlob, data); err != nil || !added {
		t.Fatalf("the content is not stored again: added %v, %v", added, err)
	}
}

// The soak's trace, made deterministic: a backup registers just after
// the collection listed the writers (so the collection's first look
// misses it), loads the old index and deduplicates against a pack the
// collection is about to delete; then removing an old index file fails.
// The collection used to return right there, with the pack out of the
// index but still stored: the backup's commit found its packs present
// and committed a manifest whose data blob no index knew. Now every
// failure after the index rewrite puts the packs back, condemned.
func TestGCFailingMidRewritePutsThePacksBack(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-kept", randData(30, 3000))
	shared := randData(31, 4000)
	sharedBlob := saveBackup(t, r, "backup-forgotten", shared)
	r.DeleteManifest(ctx, "backup-forgotten")
	// the removal that fails comes after the one of the index file that
	// lists the orphan pack (removals go in the files' order)
	last := func() (last string, holds bool) {
		be.List(ctx, "index/", func(oi storage.ObjectInfo) error { last = max(last, oi.Name); return nil })
		id, _ := ParseID(strings.TrimPrefix(last, "index/"))
		f, err := r.readIndexFile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Packs {
			for _, b := range p.Blobs {
				holds = holds || b.ID == sharedBlob
			}
		}
		return last, holds
	}
	failing, holds := last()
	for i := int64(0); holds; i++ {
		saveBackup(t, r, fmt.Sprint("backup-more-", i), randData(40+i, 1000))
		failing, holds = last()
	}

	fb := fault.New(be)
	var w *Repository
	var blob ID
	h := &listHook{Backend: fb, prefix: "writers/"}
	h.hook = func() {
		w = reopen(t, be)
		if _, err := w.BeginWrite(ctx, "backup"); err != nil {
			t.Error(err)
		}
		w.LoadIndex(ctx)
		var added bool
		blob, added, _ = w.SaveBlob(ctx, DataBlob, shared)
		if added {
			t.Error("the writer did not deduplicate against the orphan pack")
		}
		fb.Add(fault.Rule{Op: fault.Delete, Prefix: failing})
	}
	res, err := GC(ctx, reopen(t, h), GCOptions{SafetyWindow: 0})
	if !errors.Is(err, fault.ErrInjected) || res == nil || res.Deleted != 0 || res.Deferred == 0 {
		t.Fatalf("want the failure reported and the deletions deferred: %+v %v", res, err)
	}
	fb.Reset()
	// the writer commits: its packs are all there...
	tree, _ := w.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: "f", Type: NodeFile, Size: uint64(len(shared)), Content: []ID{blob}}}})
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.CheckPacks(ctx, w.DependedPacks()); err != nil {
		t.Fatal(err)
	}
	if err := w.SaveManifest(ctx, &Manifest{ID: "backup-new", Type: "full", Components: []ComponentManifest{{Name: "c", Tree: tree}}}); err != nil {
		t.Fatal(err)
	}
	// ...and indexed, and condemned no longer matters: it is referenced
	cr, err := Check(ctx, reopen(t, be), CheckOptions{ReadDataPercent: 100})
	if err != nil || !cr.OK {
		t.Fatalf("the backup lost its data to a failed collection: %v %+v", err, cr)
	}
	if _, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0}); err != nil {
		t.Fatal(err)
	}
	if cr, err := Check(ctx, reopen(t, be), CheckOptions{ReadDataPercent: 100}); err != nil || !cr.OK {
		t.Fatalf("after the next collection: %v %+v", err, cr)
	}
}

// A backup that stores its packs after the collection loaded the index
// and commits during the mark: the collection reads the new index files
// rather than stopping on a tree it cannot find (an emergency cleanup
// beside running backups failed that way) or taking the new data for
// lost.
func TestGCReadsIndexFilesWrittenDuringTheMark(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-old", randData(50, 3000))
	h := &listHook{Backend: be, prefix: "pending/"}
	h.hook = func() {
		w := reopen(t, be)
		reg, _ := w.BeginWrite(ctx, "backup")
		defer reg.End()
		w.LoadIndex(ctx)
		saveBackup(t, w, "backup-new", randData(51, 5000))
	}
	res, err := GC(ctx, reopen(t, h), GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatalf("a backup committed during the mark stopped the collection: %v", err)
	}
	if res.ReferencedBlobs != 4 {
		t.Fatalf("marked %d blobs, want both backups' 4: %+v", res.ReferencedBlobs, res)
	}
	if cr, err := Check(ctx, reopen(t, be), CheckOptions{ReadDataPercent: 100}); err != nil || !cr.OK {
		t.Fatalf("check: %v %+v", err, cr)
	}
}

// Registrations that ended before a collection began are removed by it
// when no other collection runs (one running might still need them), so a
// long history does not make every collection read thousands of markers.
func TestGCRemovesEndedRegistrations(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	for i := 0; i < 5; i++ {
		w, err := r.BeginWrite(ctx, "backup")
		if err != nil {
			t.Fatal(err)
		}
		w.End()
	}
	open, err := r.BeginWrite(ctx, "still writing")
	if err != nil {
		t.Fatal(err)
	}
	defer open.End()
	// S3 and SFTP times can have whole seconds: the markers must have
	// ended before the collection's registration, on the storage's clock
	be.List(ctx, writersPrefix, func(oi storage.ObjectInfo) error {
		if oi.Name != open.name {
			be.SetModTime(oi.Name, time.Now().Add(-time.Minute))
		}
		return nil
	})
	other, err := r.register(ctx, collectorsPrefix, "gc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if n := len(objectNames(t, be, writersPrefix)); n != 6 {
		t.Fatalf("beside another collection: %d writer markers left, want all 6", n)
	}
	other.End()
	be.List(ctx, collectorsPrefix, func(oi storage.ObjectInfo) error {
		be.SetModTime(oi.Name, time.Now().Add(-time.Minute))
		return nil
	})
	if _, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := objectNames(t, be, writersPrefix); len(got) != 1 || got[0] != open.name {
		t.Fatalf("alone: writer markers left %v, want only the open one", got)
	}
	// the ended collections' markers go too (this one's own stays until
	// the next: it ended after it looked)
	if got := objectNames(t, be, collectorsPrefix); len(got) != 1 {
		t.Fatalf("collector markers left: %v", got)
	}
}

// A condemned list replaced between its listing and its read (a
// collection writes the new list, then deletes the old) is looked for
// again: skipping it lost every condemnation it held, and a writer then
// deduplicated against those packs.
func TestCondemnedListsAreReadAgainWhenReplaced(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	put := func(name string, packs map[string]time.Time) {
		b, _ := json.Marshal(condemnedList{Packs: packs})
		be.Put(ctx, name, bytes.NewReader(b), int64(len(b)))
	}
	a, b := ID{1}.String(), ID{2}.String()
	put(gcPrefix+"condemned-1-old", map[string]time.Time{a: time.Now()})
	h := &listHook{Backend: be, prefix: gcPrefix, hook: func() {
		put(gcPrefix+"condemned-2-new", map[string]time.Time{a: time.Now(), b: time.Now()})
		be.Delete(ctx, gcPrefix+"condemned-1-old")
	}}
	r := &Repository{be: h}
	got, names, err := r.loadCondemned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[b]; !ok || len(got) != 2 || len(names) != 1 || names[0] != gcPrefix+"condemned-2-new" {
		t.Fatalf("read %v from %v: want both packs, from the new list", got, names)
	}
}

// A compaction that is alone removes the markers of collections that
// ended before it registered, as a collection does; they piled up until
// the next collection, and each compaction read them all.
func TestCompactionRemovesEndedCollectorMarkers(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	for i := range 3 {
		saveBackup(t, r, fmt.Sprintf("backup-%d", i), randData(int64(200+i), 3000))
	}
	for range 5 {
		c, err := r.register(ctx, collectorsPrefix, "compaction")
		if err != nil {
			t.Fatal(err)
		}
		c.End()
	}
	// ended before the compaction registers, on the storage's clock
	be.List(ctx, collectorsPrefix, func(oi storage.ObjectInfo) error {
		be.SetModTime(oi.Name, time.Now().Add(-time.Minute))
		return nil
	})
	w := reopen(t, be)
	w.LoadIndex(ctx)
	c, err := Compact(ctx, w, 1, 0)
	if err != nil || c.IndexFilesMerged == 0 {
		t.Fatalf("compaction: %+v %v", c, err)
	}
	// its own stays (it ended after it looked)
	if got := objectNames(t, be, collectorsPrefix); len(got) != 1 {
		t.Fatalf("collector markers left: %v", got)
	}
}

// getCounter counts reads of objects under a prefix.
type getCounter struct {
	storage.Backend
	prefix string
	n      atomic.Int32
}

func (g *getCounter) Get(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	if strings.HasPrefix(name, g.prefix) {
		g.n.Add(1)
	}
	return g.Backend.Get(ctx, name, off, n)
}

// A writer reads each condemned list once into the local cache (the packs
// a list names never change); a new list is read, one gone is dropped
// from the cache, and a collection reads them from storage (their times
// can be an earlier write's in the cache).
func TestCondemnedListsAreCachedForWriters(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-1", randData(70, 3000))
	put := func(name string, packs ...ID) {
		m := map[string]time.Time{}
		for _, p := range packs {
			m[p.String()] = time.Now()
		}
		b, _ := json.Marshal(condemnedList{Packs: m})
		be.Put(ctx, name, bytes.NewReader(b), int64(len(b)))
	}
	put(gcPrefix+"condemned-1-a", ID{1})
	gets := &getCounter{Backend: be, prefix: gcPrefix}
	dir := t.TempDir()
	handle := func() *Repository {
		w := reopen(t, gets)
		c, err := OpenCache(dir, w.Config().ID)
		if err != nil {
			t.Fatal(err)
		}
		w.SetCache(c)
		return w
	}
	for i := range 3 {
		w := handle()
		if err := w.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		if n := gets.n.Load(); n != 1 {
			t.Fatalf("load %d: %d reads of condemned lists, want the one", i, n)
		}
		// what a read from the cache gives is the list's packs (their
		// times are not kept: writers do not use them)
		if c, err := w.condemnedPacks(ctx); err != nil || len(c) != 1 || !hasKey(c, ID{1}.String()) {
			t.Fatalf("load %d: condemned %v %v, want pack 1", i, c, err)
		}
	}
	// and a writer does not deduplicate against a condemned pack known
	// from the cache alone
	blob := randData(71, 3000)
	saveBackup(t, r, "backup-2", blob)
	pack := packOf(t, r, r.ids.Sum(blob))
	put(gcPrefix+"condemned-1-c", pack)
	handle().LoadIndex(ctx) // read into the cache
	gets.n.Store(0)
	w := handle()
	w.LoadIndex(ctx)
	if gets.n.Load() != 0 {
		t.Fatalf("%d reads of condemned lists, want none", gets.n.Load())
	}
	if w.Reuse([]ID{r.ids.Sum(blob)}) {
		t.Fatal("reused a blob of a condemned pack")
	}
	be.Delete(ctx, gcPrefix+"condemned-1-c")
	gets.n.Store(1)
	// replaced by a list naming more: that one is read, the old one
	// leaves the cache
	put(gcPrefix+"condemned-2-b", ID{1}, ID{2})
	be.Delete(ctx, gcPrefix+"condemned-1-a")
	w = handle()
	c, err := w.condemnedPacks(ctx)
	if err != nil || len(c) != 2 || gets.n.Load() != 2 {
		t.Fatalf("after the list changed: %v %v, %d reads", c, err, gets.n.Load())
	}
	if _, err := os.Stat(w.cache.path(cacheCondemned, "condemned-1-a")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a list gone from storage stays cached: %v", err)
	}
	// a collection reads from storage
	if _, _, err := w.loadCondemned(ctx); err != nil || gets.n.Load() != 3 {
		t.Fatalf("collection's read: %v, %d reads", err, gets.n.Load())
	}
}

// A registration this process ended before a collector registered does
// not count for it, even when the storage's whole-second times put its
// end at or after the collector's start: a compaction after each
// backup, backups less than a second apart, stood back from the one
// before. One of another process, or this process's still open, counts.
func TestRegistrationsEndedBeforeInThisProcessDoNotCount(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	for i := range 4 {
		saveBackup(t, r, fmt.Sprintf("backup-%d", i), randData(int64(300+i), 3000))
	}
	// ended, on the storage's clock after anything that registers now
	ended := func(prefix, purpose, proc string) string {
		t.Helper()
		c, err := r.register(ctx, prefix, purpose)
		if err != nil {
			t.Fatal(err)
		}
		c.End()
		if proc != "" {
			b, _ := storage.ReadAll(ctx, be, c.name)
			var m writerMarker
			json.Unmarshal(b, &m)
			m.Proc = proc
			b, _ = json.Marshal(m)
			be.Put(ctx, c.name, bytes.NewReader(b), int64(len(b)))
		}
		be.SetModTime(c.name, time.Now().Add(time.Hour))
		return c.name
	}
	indexFiles := func() int { return len(objectNames(t, be, "index/")) }
	other := ended(collectorsPrefix, "compaction", "another process")
	w := reopen(t, be)
	w.LoadIndex(ctx)
	if c, err := Compact(ctx, w, 1, 0); err != nil || c.IndexFilesMerged != 0 {
		t.Fatalf("beside another process's compaction that may have overlapped it: %+v %v", c, err)
	}
	be.Delete(ctx, other)
	ended(collectorsPrefix, "compaction", "")
	before := indexFiles()
	w = reopen(t, be)
	w.LoadIndex(ctx)
	if c, err := Compact(ctx, w, 1, 0); err != nil || c.IndexFilesMerged != before {
		t.Fatalf("after this process's compaction ended: %+v %v (%d index files)", c, err, before)
	}
	// a collection: this process's writer that ended before it is not
	// open; another process's is
	ended(writersPrefix, "backup", "")
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0})
	if err != nil || res.OpenWriters != 0 {
		t.Fatalf("collection after this process's writer ended: %+v %v", res, err)
	}
	ended(writersPrefix, "backup", "another process")
	res, err = GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0})
	if err != nil || res.OpenWriters != 1 {
		t.Fatalf("collection after another process's writer ended: %+v %v", res, err)
	}
	// still open, in this process: counts
	open, err := r.BeginWrite(ctx, "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer open.End()
	res, err = GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0})
	if err != nil || res.OpenWriters < 1 {
		t.Fatalf("collection beside this process's open writer: %+v %v", res, err)
	}
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

// A condemned list's cached form cut short (by a whole pack id, so its
// length still fits) is read again from storage, not taken with fewer
// packs.
func TestCondemnedListCachedCutShortIsReadAgain(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	saveBackup(t, r, "backup-1", randData(72, 3000))
	m := map[string]time.Time{ID{1}.String(): time.Now(), ID{2}.String(): time.Now()}
	b, _ := json.Marshal(condemnedList{Packs: m})
	be.Put(ctx, gcPrefix+"condemned-1-a", bytes.NewReader(b), int64(len(b)))
	dir := t.TempDir()
	w := withCacheAt(t, reopen(t, be), dir)
	if c, err := w.condemnedPacks(ctx); err != nil || len(c) != 2 {
		t.Fatalf("%v %v", c, err)
	}
	p := w.cache.path(cacheCondemned, "condemned-1-a")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, raw[:len(raw)-len(ID{})], 0o600)
	gets := &getCounter{Backend: be, prefix: gcPrefix}
	w = withCacheAt(t, reopen(t, gets), dir)
	if c, err := w.condemnedPacks(ctx); err != nil || len(c) != 2 || gets.n.Load() != 1 {
		t.Fatalf("after the cache was cut: %v %v, %d reads", c, err, gets.n.Load())
	}
}

// repoWithPacks is a repository of n packs of one data blob each, which a
// pending marker of backup id names: its handle, storage and the packs.
func repoWithPacks(t *testing.T, n int, seed int64, id string) (*Repository, *mem.Backend, []ID) {
	t.Helper()
	ctx := context.Background()
	r, be := newTestRepo(t)
	r.LoadIndex(ctx)
	for i := range n {
		r.SaveBlob(ctx, DataBlob, randData(seed+int64(i), 2000))
		r.Flush(ctx)
	}
	if err := r.SavePending(ctx, id, "d", ID{}); err != nil {
		t.Fatal(err)
	}
	return r, be, r.DependedPacks()
}

// A commit's check reads the pending markers, loads the index again and,
// for many dependencies, lists data/, all at once: a pack missing is
// found whichever way it was looked for, named by a marker or by the
// handle's dependencies.
func TestCheckBackupPacks(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		packs   int
		listing bool
	}{{30, true}, {3, false}} {
		id := "backup-20261207-120000-abcd"
		_, be, deps := repoWithPacks(t, c.packs, 400, id)
		check := func(deps []ID) (error, int, int) {
			fb := fault.New(be)
			w := reopen(t, fb)
			if err := w.LoadIndex(ctx); err != nil {
				t.Fatal(err)
			}
			fb.Reset()
			err := w.CheckBackupPacks(ctx, id, deps)
			return err, fb.Calls(fault.Stat), fb.Calls(fault.List)
		}
		if err, stats, lists := check(deps); err != nil || (stats == 0) != c.listing {
			t.Fatalf("%d packs: %v, %d lookups, %d listings", c.packs, err, stats, lists)
		}
		if err := be.Delete(ctx, packName(deps[1])); err != nil {
			t.Fatal(err)
		}
		// named by the handle's dependencies and the marker, or by the
		// marker alone
		for _, d := range [][]ID{deps, nil} {
			err, _, _ := check(d)
			if !errors.Is(err, ErrPacksMissing) || !strings.Contains(err.Error(), deps[1].Short()) {
				t.Fatalf("%d packs, %d named by the handle, one gone: %v", c.packs, len(d), err)
			}
		}
	}
}
