package repository

import (
	"context"
	"encoding/json"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"backupd/storage"
)

// Names of the version 4 form sort newest first, after every name of the
// older form, and parse back to their hash and newest backup; the canary
// parses as no set. The longest backup id still makes a name a file
// system takes (255 bytes a name).
func TestOrderedSetNamesSortNewestFirst(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	randID := func() string {
		n := 1 + rng.Intn(12)
		if rng.Intn(10) == 0 {
			n = 128
		}
		b := make([]byte, n)
		for i := range b {
			for {
				b[i] = backupIDAlphabet[rng.Intn(len(backupIDAlphabet))]
				if i > 0 || ValidBackupID(string(b[:1])) == nil {
					break
				}
			}
		}
		return string(b)
	}
	ids := []string{"backup-20261207-170000-000000000000", "backup-20261207-170000-00000000000", "backup-20261207-170001", "b", "ba", "bz", "Z", "0", "z.z", "z-", "z_"}
	for range 500 {
		ids = append(ids, randID())
	}
	type named struct{ id, old, ordered string }
	var all []named
	for i, id := range ids {
		if ValidBackupID(id) != nil {
			t.Fatalf("test id %q is not valid", id)
		}
		h := ID{byte(i), byte(i >> 8)}
		old := manifestSetsPrefix + h.String() + "-" + id
		ord := orderedSetName(old)
		if ord == "" || !isOrderedSetName(ord) || isOrderedSetName(old) {
			t.Fatalf("%s: named %q", id, ord)
		}
		if !validCacheName(strings.TrimPrefix(ord, manifestSetsPrefix)) {
			t.Fatalf("%s: %d bytes, a name the cache refuses", id, len(ord))
		}
		if gh, gid, ok := parseSetName(ord); !ok || gh != h || gid != id {
			t.Fatalf("%s: %q parses as %v %q %v", id, ord, gh, gid, ok)
		}
		all = append(all, named{id, old, ord})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ordered < all[j].ordered })
	for i := 1; i < len(all); i++ {
		if all[i-1].id < all[i].id {
			t.Fatalf("%q sorts before %q by name, and is older", all[i-1].id, all[i].id)
		}
	}
	for _, a := range all {
		if a.old >= all[len(all)-1].ordered || a.old >= manifestSetsPrefix+string(orderedSetMark) {
			t.Fatalf("the older form %q does not sort before the new", a.old)
		}
	}
	if _, _, ok := parseSetName(formatCanarySet); ok {
		t.Fatal("the canary parses as a set")
	}
	for _, bad := range []string{"n~" + strings.Repeat("0", 64), "nzz" + strings.Repeat("0", 64), "n!~" + strings.Repeat("0", 64), "nzz~" + strings.Repeat("0", 63)} {
		if _, _, ok := parseSetName(manifestSetsPrefix + bad); ok {
			t.Fatalf("%q parses as a set", bad)
		}
	}
}

// setSpy counts the listings of manifest-sets/: whole, or of the first.
type setSpy struct {
	storage.Backend
	whole, first int
}

func (s *setSpy) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if prefix == manifestSetsPrefix {
		s.whole++
	}
	return s.Backend.List(ctx, prefix, fn)
}

func (s *setSpy) ListFirst(ctx context.Context, prefix string, max int, fn func(storage.ObjectInfo) error) (bool, error) {
	if prefix == manifestSetsPrefix {
		s.first++
	}
	return storage.ListFirst(ctx, s.Backend, prefix, max, fn)
}

// storeSets stores sets of per backups each, ids one second apart from
// start, through r (whose format names them).
func storeSets(t *testing.T, r *Repository, mk func(string) *Manifest, start time.Time, sets, per int) []string {
	t.Helper()
	var ids []string
	for s := range sets {
		var some []string
		var at []time.Time
		for i := range per {
			ts := start.Add(time.Duration(s*per+i) * time.Second)
			some, at = append(some, NewBackupID(ts)), append(at, ts)
		}
		storeSetOf(t, r, mk, some, at)
		ids = append(ids, some...)
	}
	return ids
}

// In a repository of format 4, the newest backups are listed from the
// first sets by name; a commit's check of its id lists no more; a walk
// past them lists every set, as does a set of the older form among them.
// After an upgrade from format 3, the next collection names the sets
// again; the canary stops a format 3 reader and not this one.
func TestNewestSetsListedFirst(t *testing.T) {
	ctx := context.Background()
	r, be, mk := manifestRepo(t)
	start := time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)
	ids := storeSets(t, r, mk, start, 8, 10)
	spy := &setSpy{Backend: be}
	newest := func(n int) []string {
		t.Helper()
		ms, errs, err := reopen(t, spy).NewestManifests(ctx, n, nil)
		if err != nil || len(errs) > 0 {
			t.Fatalf("newest %d: %v %v", n, errs, err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.ID)
		}
		return got
	}
	want := func(n int) string {
		var w []string
		for i := len(ids) - 1; i >= len(ids)-n; i-- {
			w = append(w, ids[i])
		}
		return strings.Join(w, " ")
	}
	check := func(what string, n, whole, first int) {
		t.Helper()
		spy.whole, spy.first = 0, 0
		if got := strings.Join(newest(n), " "); got != want(n) {
			t.Fatalf("%s: newest %d:\n got %s\nwant %s", what, n, got, want(n))
		}
		if spy.whole != whole || spy.first != first {
			t.Fatalf("%s: %d whole listings of the sets and %d of the first, want %d and %d", what, spy.whole, spy.first, whole, first)
		}
	}
	check("format 4", 25, 0, 1)
	check("past the first sets", 65, 1, 1)
	// a new backup's commit lists the first sets only
	spy.whole, spy.first = 0, 0
	m := mk(NewBackupID(start.Add(time.Hour)))
	m.Started = start.Add(time.Hour)
	if err := reopen(t, spy).SaveManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, m.ID)
	if spy.whole != 0 || spy.first != 1 {
		t.Fatalf("a commit: %d whole listings of the sets and %d of the first", spy.whole, spy.first)
	}
	// a backup in an older set is found by its id
	if got, err := reopen(t, spy).LoadManifest(ctx, ids[3]); err != nil || got.ID != ids[3] {
		t.Fatalf("an old backup: %v", err)
	}
	// a set of the older form among the first: every set is listed
	r.cfg.Version = 3
	ids = append(ids, storeSets(t, r, mk, start.Add(2*time.Hour), 1, 10)...)
	r.cfg.Version = 4
	check("a set of the older form", 25, 1, 1)

	// from format 3: upgraded, then the sets are named again by a collection
	_, be3, mk3 := manifestRepo(t)
	storeConfigVersion(t, be3, 3)
	r3 := reopen(t, be3)
	ids = storeSets(t, r3, mk3, start, 6, 10)
	for _, s := range objectNames(t, be3, manifestSetsPrefix) {
		if isOrderedSetName(s) {
			t.Fatalf("format 3 wrote %s", s)
		}
	}
	if from, to, err := r3.Upgrade(ctx); err != nil || from != 3 || to != 4 {
		t.Fatalf("upgrade: %d -> %d, %v", from, to, err)
	}
	if _, err := be3.Stat(ctx, formatCanarySet); err != nil {
		t.Fatalf("no canary: %v", err)
	}
	spy = &setSpy{Backend: be3}
	check("upgraded", 25, 1, 1)
	if _, err := GC(ctx, reopen(t, be3), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range objectNames(t, be3, manifestSetsPrefix) {
		if !isOrderedSetName(s) && s != formatCanarySet {
			t.Fatalf("after a collection, %s is of the older form", s)
		}
	}
	check("upgraded and collected", 25, 0, 1)
	// a format 3 backupd takes the canary for a set (the older form's
	// rules), and cannot read it
	base := strings.TrimPrefix(formatCanarySet, manifestSetsPrefix)
	if _, err := ParseID(base[:64]); err != nil || base[64] != '-' || ValidBackupID(base[65:]) != nil {
		t.Fatalf("the canary %s is not a set's name of the older form", base)
	}
	if base[65:] >= "backup-" {
		t.Fatalf("the canary's newest %s sorts after new backups' ids: a format 3 commit would open it", base[65:])
	}
	raw, err := storage.ReadAll(ctx, be3, formatCanarySet)
	if err != nil || strings.HasPrefix(string(raw), manifestSetMagic) {
		t.Fatalf("the canary reads %q, %v", raw, err)
	}
}

// storeSetOf stores one set of the backups started at the given times,
// with the given ids, through r.
func storeSetOf(t *testing.T, r *Repository, mk func(string) *Manifest, ids []string, at []time.Time) string {
	t.Helper()
	var entries []setEntry
	for i, id := range ids {
		m := mk(id)
		m.Started, m.Version = at[i], manifestVersion
		js, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, setEntry{id: id, js: js, bin: manifestBin(m)})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].id < entries[j].id })
	before := map[string]bool{}
	for _, n := range objectNames(t, r.be, manifestSetsPrefix) {
		before[n] = true
	}
	if _, err := r.storeManifestSets(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	for _, n := range objectNames(t, r.be, manifestSetsPrefix) {
		if !before[n] {
			return n
		}
	}
	t.Fatal("no set stored")
	return ""
}

// Sets of the older form, the newest of them listed last (by its hash),
// past the first five: the walk lists them all and finds the newest.
func TestNewestManifestsOverOlderSetsPastThePage(t *testing.T) {
	ctx := context.Background()
	r, be, mk := manifestRepo(t)
	start := time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)
	r.cfg.Version = 3
	var all []string
	for s := range 8 {
		var ids []string
		var at []time.Time
		for i := range 3 {
			ts := start.Add(time.Duration(s*3+i) * time.Minute)
			ids, at = append(ids, NewBackupID(ts)), append(at, ts)
		}
		for {
			name := storeSetOf(t, r, mk, ids, at)
			// the newest set must sort last of all by name (its hash)
			names := objectNames(t, be, manifestSetsPrefix)
			if s < 7 || slices.Max(names) == name {
				break
			}
			if err := be.Delete(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, ids...)
	}
	r.cfg.Version = 4
	ms, errs, err := reopen(t, be).NewestManifests(ctx, 5, nil)
	if err != nil || len(errs) > 0 || len(ms) != 5 {
		t.Fatalf("newest 5: %d, %v, %v", len(ms), errs, err)
	}
	for i, m := range ms {
		if want := all[len(all)-1-i]; m.ID != want {
			t.Fatalf("newest %d is %s, want %s", i, m.ID, want)
		}
	}
}

// Once n are found, the backups of the last one's second may be in a set
// past the first five listed: every set is then listed, and the one
// started last in that second is taken, whatever its id.
func TestNewestManifestsFollowTheLastSecondPastThePage(t *testing.T) {
	ctx := context.Background()
	r, be, mk := manifestRepo(t)
	base := time.Date(2026, 12, 7, 17, 1, 0, 0, time.UTC)
	sec := "backup-20261207-170100-"
	var newer []string
	for i := range 4 { // four sets of one backup each, in later seconds
		ts := base.Add(time.Duration(i+1) * time.Second)
		id := NewBackupID(ts)
		storeSetOf(t, r, mk, []string{id}, []time.Time{ts})
		newer = append(newer, id)
	}
	// the fifth newest set holds the id of that second that sorts last,
	// started first; the sixth, not listed at first, the one started last
	storeSetOf(t, r, mk, []string{sec + "ffffffffffff"}, []time.Time{base.Add(time.Millisecond)})
	storeSetOf(t, r, mk, []string{sec + "000000000000"}, []time.Time{base.Add(9 * time.Millisecond)})
	spy := &setSpy{Backend: be}
	ms, errs, err := reopen(t, spy).NewestManifests(ctx, 5, nil)
	if err != nil || len(errs) > 0 || len(ms) != 5 {
		t.Fatalf("newest 5: %d, %v, %v", len(ms), errs, err)
	}
	if ms[4].ID != sec+"000000000000" || spy.whole != 1 {
		t.Fatalf("the fifth newest is %s (want the one started last in its second), after %d whole listings of the sets", ms[4].ID, spy.whole)
	}
	for i := range 4 {
		if ms[i].ID != newer[3-i] {
			t.Fatalf("newest %d is %s, want %s", i, ms[i].ID, newer[3-i])
		}
	}
}
