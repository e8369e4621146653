package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"backupd/storage"

	"backupd/storage/fault"
	"backupd/storage/mem"
)

// foldState is what a fold left: loose manifests and sets.
func foldState(t *testing.T, be *mem.Backend) (loose, sets int) {
	t.Helper()
	return len(objectNames(t, be, manifestsPrefix)), len(objectNames(t, be, manifestSetsPrefix))
}

// wantListed fails unless a new reader lists exactly want's backups, each
// of which reads back, and check is clean.
func wantListed(t *testing.T, be *mem.Backend, want map[string]files, after string) {
	t.Helper()
	if got := backupIDs(t, be); strings.Join(got, " ") != strings.Join(sortedKeys(want), " ") {
		t.Fatalf("%s: listed %v, want %v", after, got, sortedKeys(want))
	}
	for id, fs := range want {
		readBack(t, reopen(t, be), id, fs)
	}
	checkClean(t, be)
}

// saveMore saves backups backup-<from> .. backup-<to - 1> through r, into
// want.
func saveMore(t *testing.T, r *Repository, want map[string]files, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		id := fmt.Sprintf("backup-%03d", i)
		want[id] = fileSet(i, 1, 2000)
		saveFiles(t, r, id, want[id])
	}
}

// foldedAndLoose is a repository of n backups folded into one set by a
// collection, then loose more.
func foldedAndLoose(t *testing.T, n, loose int) (*mem.Backend, map[string]files) {
	t.Helper()
	be, want := historyRepo(t, n)
	if _, err := GC(context.Background(), reopen(t, be), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	saveMore(t, reopen(t, be), want, n, n+loose)
	return be, want
}

// foldHook folds be's loose manifests (bound 2), and records how many
// in *folded.
func foldHook(t *testing.T, be storage.Backend, folded *int) func() {
	return func() {
		c, err := Compact(context.Background(), reopen(t, be), IndexFileBound, 2)
		if err != nil {
			t.Error(err)
		}
		*folded = c.ManifestsFolded
	}
}

// A writer's upkeep folds loose manifests past the bound into the newest
// set while it is small, leaves them under the bound, beside a collection,
// and for a write-only host, and moves a deleted backup's entry without
// bringing it back.
func TestCompactFoldsLooseManifests(t *testing.T) {
	ctx := context.Background()
	be, want := historyRepo(t, 6)
	if _, err := GC(ctx, reopen(t, be), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if l, s := foldState(t, be); l != 0 || s != 1 {
		t.Fatalf("after gc: %d loose, %d sets", l, s)
	}
	r := reopen(t, be)
	// as a backup does, looking for its parent
	if _, err := r.NewestManifest(ctx, func(*Manifest) bool { return true }); err != nil {
		t.Fatal(err)
	}
	save := func(from, to int) { saveMore(t, r, want, from, to) }
	save(6, 10)
	// four loose, bound four: nothing to do, and nothing listed for it
	// (the handle counted its own saves since it listed)
	fb := fault.New(be)
	r.be = fb
	if c, err := Compact(ctx, r, IndexFileBound, 4); c.ManifestsFolded != 0 || err != nil || fb.Calls(fault.List) != 0 {
		t.Fatalf("under the bound: %+v %v, %d lists", c, err, fb.Calls(fault.List))
	}
	r.be = be
	save(10, 11)
	// a collection is running: it folds them itself
	gc, err := r.register(ctx, collectorsPrefix, "gc")
	if err != nil {
		t.Fatal(err)
	}
	markers := strings.Join(objectNames(t, be, collectorsPrefix), " ")
	if c, err := Compact(ctx, r, IndexFileBound, 4); c.ManifestsFolded != 0 || err != nil {
		t.Fatalf("beside a collection: %+v %v", c, err)
	}
	// standing back, it leaves no marker: one would hold the next attempt
	// back in turn
	if m := strings.Join(objectNames(t, be, collectorsPrefix), " "); m != markers {
		t.Fatalf("collector markers after standing back: %s, before %s", m, markers)
	}
	gc.remove()
	// a write-only host leaves them to the server's collection
	if _, err := r.AddKey(ctx, Wrapping{Password: []byte("host secret"), KDF: ptr(TestKDF()), WriteOnly: true}); err != nil {
		t.Fatal(err)
	}
	host, err := Open(ctx, be, Credentials{Password: []byte("host secret")})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := Compact(ctx, host, IndexFileBound, 4); c.ManifestsFolded != 0 || err != nil {
		t.Fatalf("write-only: %+v %v", c, err)
	}
	// five past four: folded with the small set of six, into one
	if c, err := Compact(ctx, r, IndexFileBound, 4); c.ManifestsFolded != 5 || err != nil {
		t.Fatalf("past the bound: %+v %v", c, err)
	}
	if l, s := foldState(t, be); l != 0 || s != 1 {
		t.Fatalf("after the fold: %d loose, %d sets", l, s)
	}
	wantListed(t, be, want, "the fold")

	// a deleted backup in the set, and one whose loose manifest its
	// deletion could not remove: neither comes back
	if err := r.DeleteManifest(ctx, "backup-003"); err != nil {
		t.Fatal(err)
	}
	delete(want, "backup-003")
	save(11, 17)
	if err := r.saveTombstone(ctx, "backup-012"); err != nil {
		t.Fatal(err)
	}
	delete(want, "backup-012")
	x := reopen(t, be) // a handle that never listed: it lists once
	if c, err := Compact(ctx, x, IndexFileBound, 4); c.ManifestsFolded != 5 || err != nil {
		t.Fatalf("with tombstones: %+v %v", c, err)
	}
	if l, s := foldState(t, be); l != 1 || s != 1 {
		t.Fatalf("the deleted backup's loose manifest is left (%d), in one set (%d)", l, s)
	}
	wantListed(t, be, want, "a fold beside tombstones")
	// the deleted backup's entry moved with the set, its tombstone kept
	v, err := reopen(t, be).listManifestView(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := v.inSets("backup-003"); s == nil || len(v.tombs) != 2 {
		t.Fatalf("backup-003 in the new set: %v; tombstones %v", s != nil, v.tombs)
	}
	// the next collection drops it from the set and writes its tombstone
	// again; a later one removes the tombstones
	later := time.Now().Add(tombstoneMinAge + time.Minute)
	if _, err := GC(ctx, reopen(t, be), GCOptions{Now: later}); err != nil {
		t.Fatal(err)
	}
	if tb := objectNames(t, be, tombstonesPrefix); len(tb) != 1 || tb[0] != tombstonesPrefix+"backup-003" {
		t.Fatalf("after the first collection: tombstones %v", tb)
	}
	if _, err := GC(ctx, reopen(t, be), GCOptions{Now: later.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if l, s, tb := len(objectNames(t, be, manifestsPrefix)), len(objectNames(t, be, manifestSetsPrefix)), objectNames(t, be, tombstonesPrefix); l != 0 || s != 1 || len(tb) != 0 {
		t.Fatalf("after two collections: %d loose, %d sets, tombstones %v", l, s, tb)
	}
	wantListed(t, be, want, "the collections")
}

// A fold whose registration lapsed before it stored its set (a suspended
// laptop: a collection may have dropped a deleted backup from the set it
// read, and then its tombstone) writes and deletes nothing.
func TestFoldWritesNothingOnceLapsed(t *testing.T) {
	ctx := context.Background()
	be, want := foldedAndLoose(t, 3, 5)
	r := reopen(t, be)
	before := strings.Join(append(objectNames(t, be, manifestsPrefix), objectNames(t, be, manifestSetsPrefix)...), " ")
	n, err := r.foldLoose(ctx, 2, func() error { return ErrWriterLapsed })
	if n != 0 || !errors.Is(err, ErrWriterLapsed) {
		t.Fatalf("lapsed: %d %v", n, err)
	}
	if after := strings.Join(append(objectNames(t, be, manifestsPrefix), objectNames(t, be, manifestSetsPrefix)...), " "); after != before {
		t.Fatalf("a lapsed fold changed the manifests:\n%s\n%s", before, after)
	}
	wantListed(t, be, want, "a lapsed fold")
}

// A storage that takes writes but refuses deletes (not set up as
// append-only) gets one set more, not one a backup; a newest set that does
// not open (planted) is left alone; a version 1 repository is left to gc.
func TestFoldOnStorageThatRefusesDeletes(t *testing.T) {
	ctx := context.Background()
	be, want := historyRepo(t, 3)
	if _, err := GC(ctx, reopen(t, be), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	fb := fault.New(be)
	fb.Add(fault.Rule{Op: fault.Delete, Prefix: manifestsPrefix})
	fb.Add(fault.Rule{Op: fault.Delete, Prefix: manifestSetsPrefix})
	r := reopen(t, fb)
	if _, err := r.NewestManifest(ctx, func(*Manifest) bool { return true }); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 20; i++ {
		saveMore(t, r, want, i, i+1)
		if _, err := Compact(ctx, r, IndexFileBound, 4); err != nil && !errors.Is(err, fault.ErrInjected) {
			t.Fatal(err)
		}
	}
	if _, s := foldState(t, be); s != 2 {
		t.Fatalf("%d sets, want the first and one more", s)
	}
	wantListed(t, be, want, "folds that could not delete")

	// a set planted as the newest does not stop the fold
	be2, want2 := historyRepo(t, 6)
	forger := *reopen(t, be2).keys
	forger.DataPrivate = randData(99, 32)
	name, raw, err := encodeManifestSet(&forger, []setEntry{{id: "backup-999", js: []byte("{}")}})
	if err != nil {
		t.Fatal(err)
	}
	be2.Put(ctx, name, bytes.NewReader(raw), int64(len(raw)))
	if c, err := Compact(ctx, reopen(t, be2), IndexFileBound, 4); c.ManifestsFolded != 6 || err != nil {
		t.Fatalf("beside a planted set: %+v %v", c, err)
	}
	if _, err := be2.Stat(ctx, name); err != nil {
		t.Fatalf("the planted set: %v", err)
	}
	be2.Delete(ctx, name)
	wantListed(t, be2, want2, "a fold beside a planted set")

	// version 1: a backup does not move it to 2
	be3, _ := historyRepo(t, 6)
	storeConfigVersion(t, be3, 1)
	if c, err := Compact(ctx, reopen(t, be3), IndexFileBound, 4); c.ManifestsFolded != 0 || err != nil {
		t.Fatalf("version 1: %+v %v", c, err)
	}
	if v := reopen(t, be3).Config().Version; v != 1 {
		t.Fatalf("version %d", v)
	}
}

// check run beside a fold (another host's backup) reports no folded
// backup as missing.
func TestCheckBesideAFold(t *testing.T) {
	ctx := context.Background()
	be, want := foldedAndLoose(t, 3, 5)
	folded := 0
	// the fold runs when check first reads a loose manifest it listed
	hooked := &getHook{Backend: be, prefix: manifestsPrefix, hook: foldHook(t, be, &folded)}
	cr, err := Check(ctx, reopen(t, hooked), CheckOptions{})
	if folded != 5 {
		t.Fatalf("the fold beside check folded %d", folded)
	}
	if err != nil || !cr.OK || cr.Manifests != len(want) {
		t.Fatalf("check beside a fold: %v %+v", err, cr)
	}
}

// A set of half the maximum or more is left as it is: the fold starts a
// new one.
func TestFoldStartsANewSetAfterABigOne(t *testing.T) {
	ctx := context.Background()
	r, be, mk := manifestRepo(t)
	n := manifestSetMax / 2
	for i := 0; i < n; i++ {
		if err := r.SaveManifest(ctx, mk(fmt.Sprintf("backup-%05d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := GC(ctx, reopen(t, be), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	big := objectNames(t, be, manifestSetsPrefix)
	for i := n; i < n+3; i++ {
		if err := r.SaveManifest(ctx, mk(fmt.Sprintf("backup-%05d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := Compact(ctx, r, IndexFileBound, 2); c.ManifestsFolded != 3 || err != nil {
		t.Fatalf("%+v %v", c, err)
	}
	sets := objectNames(t, be, manifestSetsPrefix)
	if len(big) != 1 || len(sets) != 2 || (sets[0] != big[0] && sets[1] != big[0]) {
		t.Fatalf("sets %v, before %v: the big one should stay", sets, big)
	}
	if ids, err := reopen(t, be).ManifestIDs(ctx); err != nil || len(ids) != n+3 {
		t.Fatalf("%d backups: %v", len(ids), err)
	}
}

// A fold stopped at any write or delete loses nothing and brings back
// nothing; the next one, or a collection, finishes the work.
func TestFoldInterruptedLosesNothing(t *testing.T) {
	ctx := context.Background()
	base, want := historyRepo(t, 4)
	if _, err := GC(ctx, reopen(t, base), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	r := reopen(t, base)
	if err := r.DeleteManifest(ctx, "backup-001"); err != nil {
		t.Fatal(err)
	}
	delete(want, "backup-001")
	saveMore(t, r, want, 4, 9)
	if err := r.saveTombstone(ctx, "backup-006"); err != nil {
		t.Fatal(err)
	}
	delete(want, "backup-006")
	probe := fault.New(base.Clone())
	pr := reopen(t, probe)
	probe.Reset()
	if c, err := Compact(ctx, pr, IndexFileBound, 2); c.ManifestsFolded != 4 || err != nil {
		t.Fatalf("probe: %+v %v", c, err)
	}
	steps := 0
	for _, op := range []fault.Op{fault.Put, fault.Delete} {
		for n := 1; n <= probe.Calls(op); n++ {
			be := base.Clone()
			fb := fault.New(be)
			fr := reopen(t, fb)
			fb.Add(fault.Rule{Op: op, Nth: n, Times: 1})
			_, err := Compact(ctx, fr, IndexFileBound, 2)
			fb.Reset()
			t.Run(fmt.Sprintf("%s %d", op, n), func(t *testing.T) {
				wantListed(t, be, want, fmt.Sprint(err))
				// (a registration it could not end holds the next back
				// until it lapses: the next is a collection an hour on)
				if _, err := GC(ctx, reopen(t, be), GCOptions{Now: time.Now().Add(time.Hour)}); err != nil {
					t.Fatal(err)
				}
				wantListed(t, be, want, "the collection after")
				if l, _ := foldState(t, be); l != 0 {
					t.Fatalf("%d loose manifests left", l)
				}
			})
			steps++
		}
	}
	// (the registration's put and end, the set's; the old set's delete
	// and the four loose ones')
	if p, d := probe.Calls(fault.Put), probe.Calls(fault.Delete); p < 3 || d < 5 {
		t.Fatalf("only %d puts and %d deletes interrupted", p, d)
	}
}

// A reader that listed the loose manifests and the sets before a fold
// lists again when what it wants is gone, and misses nothing.
func TestReaderBesideAWritersFold(t *testing.T) {
	ctx := context.Background()
	for _, prefix := range []string{manifestsPrefix, manifestSetsPrefix} {
		be, want := foldedAndLoose(t, 3, 5)
		folded := 0
		hooked := &listHook{Backend: be, prefix: prefix, hook: foldHook(t, be, &folded)}
		ms, errs, err := reopen(t, hooked).Manifests(ctx)
		if folded != 5 {
			t.Fatalf("listing %s: the fold beside the reader folded %d", prefix, folded)
		}
		if err != nil || len(errs) > 0 || len(ms) != len(want) {
			t.Fatalf("listing %s: %d manifests, want %d: %v %v", prefix, len(ms), len(want), err, errs)
		}
		m, err := reopen(t, &listHook{Backend: be, prefix: prefix, hook: func() {}}).NewestManifest(ctx, func(*Manifest) bool { return true })
		if err != nil || m == nil || m.ID != "backup-007" {
			t.Fatalf("newest after the fold: %v %v", m, err)
		}
	}
}

// getHook runs hook once, before the first Get of a name under prefix.
type getHook struct {
	storage.Backend
	prefix string
	once   sync.Once
	hook   func()
}

func (h *getHook) Get(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	if strings.HasPrefix(name, h.prefix) {
		h.once.Do(h.hook)
	}
	return h.Backend.Get(ctx, name, off, n)
}
