package repository

import (
	"context"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"backupd/storage"
	"backupd/storage/fault"
)

// elsewhere is the same objects at another location (a replica).
type elsewhere struct{ storage.Backend }

func (elsewhere) Location() string { return "mem:replica" }

// A commit does not ask again for a pack an earlier commit of this host
// found stored moments ago, unless the index does not list it or a
// condemned list names it; entries are not renewed without a lookup, go
// stale, are of one boot and one location; a file that does not open is
// ignored, and a collection drops them all.
func TestFreshPacksAreNotAskedAgain(t *testing.T) {
	ctx := context.Background()
	id := "backup-20261207-160000-abcd"
	r, be, deps := repoWithPacks(t, 3, 700, id)
	pend := func() []ID {
		t.Helper()
		if err := r.SavePending(ctx, id, "d", ID{}); err != nil {
			t.Fatal(err)
		}
		return r.DependedPacks()
	}
	root := t.TempDir()
	fb := fault.New(be)
	at := func(b storage.Backend) *Repository { return withCacheAt(t, reopen(t, b), root) }
	c := at(be)
	boot, _, ok := bootClock()
	if !ok {
		t.Skip("no boot clock here")
	}
	now := func() time.Duration { _, n, _ := bootClock(); return n }
	entries := func() map[ID]time.Duration { return c.readVerifiedPacks(c.verifiedPacksAEAD(), boot) }
	// checkOn runs a commit's check (or, copy, CheckPacks) on a new
	// handle: its error and how many packs it looked up
	checkOn := func(b storage.Backend, deps []ID, copy bool) (error, int) {
		t.Helper()
		fb := fault.New(b)
		w := at(fb)
		if err := w.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		fb.Reset()
		var err error
		if copy {
			err = w.CheckPacks(ctx, deps)
		} else {
			err = w.CheckBackupPacks(ctx, id, deps)
		}
		return err, fb.Calls(fault.Stat) // a lookup a pack (too few for a listing)
	}
	check := func(deps []ID) (error, int) { return checkOn(fb, deps, false) }
	asked := func(what string, deps []ID, want int) {
		t.Helper()
		if err, n := check(deps); err != nil || n != want {
			t.Fatalf("%s: %v, %d packs asked for, want %d", what, err, n, want)
		}
	}
	asked("first check", deps, 3)
	kept := entries()
	asked("second check", deps, 0)
	if !maps.Equal(kept, entries()) {
		t.Fatalf("packs not looked up were kept as found again: %v, then %v", kept, entries())
	}
	r.SaveBlob(ctx, DataBlob, randData(710, 2000))
	r.Flush(ctx)
	deps = pend()
	asked("a pack written since", deps, 1)
	asked("and again", deps, 0)
	if err, n := checkOn(fb, deps, true); err != nil || n != len(deps) {
		t.Fatalf("CheckPacks (a copy): %v, %d of %d packs asked for", err, n, len(deps))
	}
	if err, n := checkOn(elsewhere{be}, deps, false); err != nil || n != len(deps) {
		t.Fatalf("a replica of the repository: %v, %d of %d packs asked for", err, n, len(deps))
	}

	cachePath := c.cache.path(cacheIndexSnap, verifiedPacksName)
	good, err := os.ReadFile(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	damaged := append([]byte(nil), good...)
	damaged[len(damaged)-3] ^= 1
	os.WriteFile(cachePath, damaged, 0o600)
	asked("a damaged file", deps, 4)
	asked("written again", deps, 0)

	// an entry from the future (it cannot be), or of another boot
	c.forgetVerifiedPacks()
	c.keepVerifiedPacks(deps, boot, now()+time.Hour)
	asked("entries from the future", deps, 4)
	c.forgetVerifiedPacks()
	c.keepVerifiedPacks(deps, strings.Repeat("0", bootIDSize), now())
	asked("entries of another boot", deps, 4)

	// a pack lost: found once its entry is stale
	if err := be.Delete(ctx, packName(deps[0])); err != nil {
		t.Fatal(err)
	}
	if err, _ := check(deps); err != nil {
		t.Fatalf("a pack lost moments after it was found: %v", err)
	}
	defer func(d time.Duration) { verifiedFresh = d }(verifiedFresh)
	verifiedFresh = time.Nanosecond
	if err, _ := check(deps); !errors.Is(err, ErrPacksMissing) || !strings.Contains(err.Error(), deps[0].Short()) {
		t.Fatalf("a pack lost, its entry stale: %v", err)
	}
	verifiedFresh = time.Hour
	// from here on a backup whose marker does not name the lost pack
	id = "backup-20261207-160001-abcd"
	// a pack the index does not list is asked for, fresh or not
	stray := ID{1, 2, 3}
	c.keepVerifiedPacks(append(deps[1:], stray), boot, now())
	if err, _ := check(append(deps[1:], stray)); !errors.Is(err, ErrPacksMissing) || !strings.Contains(err.Error(), stray.Short()) {
		t.Fatalf("a fresh pack the index does not list, not stored: %v", err)
	}
	// nor a condemned one; and one found stored is not kept
	c.forgetVerifiedPacks()
	asked("fresh again", deps[1:], 3)
	asked("fresh again", deps[1:], 0)
	if _, err := c.saveCondemned(ctx, map[string]time.Time{deps[1].String(): {}, deps[2].String(): {}}, nil, time.Now); err != nil {
		t.Fatal(err)
	}
	c.forgetVerifiedPacks()
	asked("two condemned", deps[1:], 3)
	if e := entries(); len(e) != 1 {
		t.Fatalf("condemned packs were kept as found: %v", e)
	}
	c.keepVerifiedPacks(deps[1:], boot, now())
	if err := be.Delete(ctx, packName(deps[1])); err != nil {
		t.Fatal(err)
	}
	if err, _ := check(deps[1:]); !errors.Is(err, ErrPacksMissing) || !strings.Contains(err.Error(), deps[1].Short()) {
		t.Fatalf("a fresh pack condemned, not stored: %v", err)
	}

	// a collection that deletes packs drops every entry
	c.keepVerifiedPacks(deps[2:], boot, now())
	if _, err := os.Stat(cachePath); err != nil {
		t.Fatal(err)
	}
	if err := r.DeletePending(ctx, "backup-20261207-160000-abcd"); err != nil {
		t.Fatal(err)
	}
	res, err := GC(ctx, at(be), GCOptions{SafetyWindow: 0})
	if err != nil || res.Deleted == 0 {
		t.Fatalf("gc: %+v, %v", res, err)
	}
	if _, err := os.Stat(cachePath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a collection deleted packs, and the entries stay: %v", err)
	}
}

// A check that lists data/ keeps every pack it found; the file keeps the
// newest verifiedPacksMax.
func TestVerifiedPacksListedAndBounded(t *testing.T) {
	ctx := context.Background()
	id := "backup-20261207-170000-abcd"
	_, be, deps := repoWithPacks(t, 30, 800, id)
	root := t.TempDir()
	fb := fault.New(be)
	var lists [2]int
	for i := range lists {
		w := withCacheAt(t, reopen(t, fb), root)
		w.LoadIndex(ctx)
		fb.Reset()
		if err := w.CheckBackupPacks(ctx, id, deps); err != nil || fb.Calls(fault.Stat) != 0 {
			t.Fatalf("check %d: %v, %d lookups", i, err, fb.Calls(fault.Stat))
		}
		lists[i] = fb.Calls(fault.List)
	}
	if lists[0] != lists[1]+1 {
		t.Fatalf("%d listings, then %d: the second check listed data/ again", lists[0], lists[1])
	}

	c := withCacheAt(t, reopen(t, be), root)
	boot, now, ok := bootClock()
	if !ok {
		t.Skip("no boot clock here")
	}
	var many []ID
	for i := range verifiedPacksMax + 100 {
		many = append(many, ID{byte(i), byte(i >> 8), 9})
	}
	c.keepVerifiedPacks(many[:100], boot, now-time.Second)
	c.keepVerifiedPacks(many[100:], boot, now)
	e := c.readVerifiedPacks(c.verifiedPacksAEAD(), boot)
	if len(e) != verifiedPacksMax {
		t.Fatalf("%d entries kept, want %d", len(e), verifiedPacksMax)
	}
	for _, id := range many[:100] {
		if _, ok := e[id]; ok {
			t.Fatalf("an older entry %s was kept over the newer", id.Short())
		}
	}
}
