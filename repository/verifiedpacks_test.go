package repository

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"backupd/storage/fault"
)

// A commit does not ask again for a pack an earlier commit of this host
// found stored moments ago, unless the index does not list it or a
// condemned list names it; entries go stale, a file that does not open
// is ignored, and a collection forgets them all.
func TestFreshPacksAreNotAskedAgain(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	r.LoadIndex(ctx)
	for i := range 3 {
		r.SaveBlob(ctx, DataBlob, randData(700+int64(i), 2000))
		r.Flush(ctx)
	}
	id := "backup-20261207-160000-abcd"
	pend := func() []ID {
		t.Helper()
		if err := r.SavePending(ctx, id, "d", ID{}); err != nil {
			t.Fatal(err)
		}
		return r.DependedPacks()
	}
	deps := pend()
	root := t.TempDir()
	fb := fault.New(be)
	check := func(deps []ID) (error, int) {
		t.Helper()
		w := withCacheAt(t, reopen(t, fb), root)
		if err := w.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		fb.Reset()
		err := w.CheckBackupPacks(ctx, id, deps)
		return err, fb.Calls(fault.Stat) // a lookup a pack (too few for a listing)
	}
	asked := func(what string, deps []ID, want int) {
		t.Helper()
		if err, n := check(deps); err != nil || n != want {
			t.Fatalf("%s: %v, %d packs asked for, want %d", what, err, n, want)
		}
	}
	asked("first check", deps, 3)
	asked("second check", deps, 0)
	r.SaveBlob(ctx, DataBlob, randData(710, 2000))
	r.Flush(ctx)
	deps = pend()
	asked("a pack written since", deps, 1)
	asked("and again", deps, 0)

	cachePath := withCacheAt(t, reopen(t, be), root).cache.path(cacheIndexSnap, verifiedPacksName)
	good, err := os.ReadFile(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	damaged := append([]byte(nil), good...)
	damaged[len(damaged)-3] ^= 1
	os.WriteFile(cachePath, damaged, 0o600)
	asked("a damaged file", deps, 4)
	asked("written again", deps, 0)

	// the clock set back: an entry from the future is not fresh
	c := withCacheAt(t, reopen(t, be), root)
	c.forgetVerifiedPacks()
	c.keepVerifiedPacks(deps, time.Now().Add(time.Hour))
	asked("entries from the future", deps, 4)

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
	// a pack the index does not list is asked for, fresh or not
	stray := ID{1, 2, 3}
	c.keepVerifiedPacks(append(deps[1:], stray), time.Now())
	if err, _ := check(append(deps[1:], stray)); !errors.Is(err, ErrPacksMissing) || !strings.Contains(err.Error(), stray.Short()) {
		t.Fatalf("a fresh pack the index does not list, not stored: %v", err)
	}
	// nor a condemned one
	c.keepVerifiedPacks(deps[1:], time.Now())
	asked("fresh again", deps[1:], 0)
	if _, err := c.saveCondemned(ctx, map[string]time.Time{deps[1].String(): {}}, nil, time.Now); err != nil {
		t.Fatal(err)
	}
	if err := be.Delete(ctx, packName(deps[1])); err != nil {
		t.Fatal(err)
	}
	if err, _ := check(deps[1:]); !errors.Is(err, ErrPacksMissing) || !strings.Contains(err.Error(), deps[1].Short()) {
		t.Fatalf("a fresh pack condemned, not stored: %v", err)
	}

	// a collection that deletes packs forgets every entry
	c.keepVerifiedPacks(deps[2:], time.Now())
	if _, err := os.Stat(cachePath); err != nil {
		t.Fatal(err)
	}
	if err := r.DeletePending(ctx, id); err != nil {
		t.Fatal(err)
	}
	g := withCacheAt(t, reopen(t, be), root)
	res, err := GC(ctx, g, GCOptions{SafetyWindow: 0})
	if err != nil || res.Deleted == 0 {
		t.Fatalf("gc: %+v, %v", res, err)
	}
	if _, err := os.Stat(cachePath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a collection deleted packs, and the entries stay: %v", err)
	}
}
