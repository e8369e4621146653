package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"backupd/storage"
	"backupd/storage/fault"
	"backupd/storage/mem"
)

func objectNames(t *testing.T, be storage.Backend, prefix string) []string {
	t.Helper()
	var out []string
	if err := be.List(context.Background(), prefix, func(oi storage.ObjectInfo) error {
		out = append(out, oi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// backupIDs is what a new reader of be lists, by id.
func backupIDs(t *testing.T, be storage.Backend) []string {
	t.Helper()
	ms, errs, err := reopen(t, be).Manifests(context.Background())
	if err != nil || len(errs) > 0 {
		t.Fatalf("manifests: %v %v", err, errs)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	return ids
}

// historyRepo makes n backups backup-000 .. of one small file each.
func historyRepo(t *testing.T, n int) (*mem.Backend, map[string]files) {
	r, be := newTestRepo(t)
	want := map[string]files{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("backup-%03d", i)
		want[id] = fileSet(i, 1, 2000)
		saveFiles(t, r, id, want[id])
	}
	return be, want
}

// manifestRepo is a repository holding one empty tree, and mk makes a
// manifest of it.
func manifestRepo(t *testing.T) (r *Repository, be *mem.Backend, mk func(id string) *Manifest) {
	t.Helper()
	r, be = newTestRepo(t)
	tree, err := r.SaveTree(context.Background(), &Tree{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, be, func(id string) *Manifest {
		return &Manifest{ID: id, Components: []ComponentManifest{{Name: "c", Tree: tree}}}
	}
}

func sortedKeys(m map[string]files) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestManifestSetsFoldListAndDelete(t *testing.T) {
	ctx := context.Background()
	be, want := historyRepo(t, 12)
	now := time.Now()
	res, err := GC(ctx, reopen(t, be), GCOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if mc := res.Manifests; mc == nil || mc.Folded != 12 || mc.SetsWritten != 1 || mc.Sets != 1 {
		t.Fatalf("fold: %+v", res.Manifests)
	}
	if loose := objectNames(t, be, manifestsPrefix); len(loose) != 0 {
		t.Fatalf("loose manifests left: %v", loose)
	}
	sets := objectNames(t, be, manifestSetsPrefix)
	if _, newest, ok := parseSetName(sets[0]); len(sets) != 1 || !ok || newest != "backup-011" || !isOrderedSetName(sets[0]) {
		t.Fatalf("sets: %v", sets)
	}
	if got := backupIDs(t, be); strings.Join(got, " ") != strings.Join(sortedKeys(want), " ") {
		t.Fatalf("listed %v", got)
	}
	for id, fs := range want {
		readBack(t, reopen(t, be), id, fs)
	}
	// the newest, and the newest that matches, come from the set
	r := reopen(t, be)
	m, err := r.NewestManifest(ctx, func(m *Manifest) bool { return true })
	if err != nil || m == nil || m.ID != "backup-011" {
		t.Fatalf("newest: %v %v", m, err)
	}
	m, err = r.NewestManifest(ctx, func(m *Manifest) bool { return m.ID < "backup-004" })
	if err != nil || m == nil || m.ID != "backup-003" {
		t.Fatalf("newest matching: %v %v", m, err)
	}
	// an id in a set is taken
	if err := r.SaveManifest(ctx, &Manifest{ID: "backup-005"}); !errors.Is(err, ErrBackupExists) {
		t.Fatalf("saving over a folded manifest: %v", err)
	}
	checkClean(t, be)

	// a deleted backup: tombstone, gone from every way of reading
	if err := r.DeleteManifest(ctx, "backup-005"); err != nil {
		t.Fatal(err)
	}
	delete(want, "backup-005")
	if got := objectNames(t, be, tombstonesPrefix); len(got) != 1 {
		t.Fatalf("tombstones: %v", got)
	}
	if _, err := reopen(t, be).LoadManifest(ctx, "backup-005"); !errors.Is(err, ErrBackupNotFound) {
		t.Fatalf("load deleted: %v", err)
	}
	if err := reopen(t, be).DeleteManifest(ctx, "backup-005"); !errors.Is(err, ErrBackupNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if err := reopen(t, be).SaveManifest(ctx, &Manifest{ID: "backup-005"}); !errors.Is(err, ErrBackupIDTaken) {
		t.Fatalf("saving a deleted id: %v", err)
	}
	if got := backupIDs(t, be); strings.Join(got, " ") != strings.Join(sortedKeys(want), " ") {
		t.Fatalf("listed %v after the delete", got)
	}
	checkClean(t, be)

	// the next collection rewrites the set without it; the tombstone
	// stays (even a day later: written again by the rewrite), and goes
	// in a later collection
	res, err = GC(ctx, reopen(t, be), GCOptions{Now: now.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if mc := res.Manifests; mc.Dropped != 1 || mc.SetsWritten != 1 || mc.SetsRemoved != 1 || mc.TombstonesRemoved != 0 {
		t.Fatalf("rewrite: %+v", mc)
	}
	if got := objectNames(t, be, tombstonesPrefix); len(got) != 1 {
		t.Fatalf("tombstone went too soon: %v", got)
	}
	res, err = GC(ctx, reopen(t, be), GCOptions{Now: now.Add(tombstoneMinAge + time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if mc := res.Manifests; mc.TombstonesRemoved != 1 || mc.SetsWritten != 0 {
		t.Fatalf("tombstone removal: %+v", mc)
	}
	if got := backupIDs(t, be); strings.Join(got, " ") != strings.Join(sortedKeys(want), " ") {
		t.Fatalf("listed %v at the end", got)
	}
	for id, fs := range want {
		readBack(t, reopen(t, be), id, fs)
	}
	checkClean(t, be)
}

// Small sets merge with what is folded next; full ones stay.
func TestManifestSetsStayFewAndBounded(t *testing.T) {
	ctx := context.Background()
	r, be, mk := manifestRepo(t)
	n := 0
	for round := 0; round < 5; round++ {
		for i := 0; i < 300; i++ {
			if err := r.SaveManifest(ctx, mk(fmt.Sprintf("backup-%05d", n))); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if _, err := GC(ctx, reopen(t, be), GCOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sets := objectNames(t, be, manifestSetsPrefix)
	if len(sets) > 3 {
		t.Fatalf("%d sets for %d backups: %v", len(sets), n, sets)
	}
	ids, err := reopen(t, be).ManifestIDs(ctx)
	if err != nil || len(ids) != n {
		t.Fatalf("%d ids, want %d: %v", len(ids), n, err)
	}
	// listing and choosing a parent read no manifest from the storage
	// once the sets are cached
	c, err := OpenCache(t.TempDir(), reopen(t, be).Config().ID)
	if err != nil {
		t.Fatal(err)
	}
	fb := fault.New(be)
	rc := reopen(t, fb)
	rc.SetCache(c)
	if _, _, err := rc.Manifests(ctx); err != nil {
		t.Fatal(err)
	}
	fb.Reset()
	rc = reopen(t, fb)
	rc.SetCache(c)
	fb.Reset()
	if ms, _, err := rc.Manifests(ctx); err != nil || len(ms) != n {
		t.Fatalf("%d manifests: %v", len(ms), err)
	}
	if m, err := rc.NewestManifest(ctx, func(*Manifest) bool { return true }); err != nil || m.ID != fmt.Sprintf("backup-%05d", n-1) {
		t.Fatalf("newest: %v %v", m, err)
	}
	if g, l := fb.Calls(fault.Get), fb.Calls(fault.List); g != 0 || l != 6 {
		t.Fatalf("a cached listing and parent choice made %d reads and %d listings, want 0 and 6", g, l)
	}
}

// A collection interrupted at any write or delete while it folds,
// rewrites or removes tombstones leaves every backup readable and every
// deleted one deleted; later collections finish the work.
func TestManifestCompactionInterruptedLosesNothing(t *testing.T) {
	ctx := context.Background()
	base, want := historyRepo(t, 6)
	now := time.Now()
	if _, err := GC(ctx, reopen(t, base), GCOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	r := reopen(t, base)
	for _, id := range []string{"backup-001", "backup-004"} {
		if err := r.DeleteManifest(ctx, id); err != nil {
			t.Fatal(err)
		}
		delete(want, id)
	}
	for i := 6; i < 9; i++ {
		id := fmt.Sprintf("backup-%03d", i)
		want[id] = fileSet(i, 1, 2000)
		saveFiles(t, r, id, want[id])
	}
	later := now.Add(tombstoneMinAge + time.Minute)
	probe := fault.New(base.Clone())
	pr := reopen(t, probe)
	probe.Reset()
	if _, err := GC(ctx, pr, GCOptions{Now: later}); err != nil {
		t.Fatal(err)
	}
	steps := 0
	for _, op := range []fault.Op{fault.Put, fault.Delete} {
		for n := 1; n <= probe.Calls(op); n++ {
			be := base.Clone()
			fb := fault.New(be)
			fr := reopen(t, fb)
			fb.Add(fault.Rule{Op: op, Nth: n, Times: 1})
			_, gcErr := GC(ctx, fr, GCOptions{Now: later})
			fb.Reset()
			t.Run(fmt.Sprintf("%s %d", op, n), func(t *testing.T) {
				if got := backupIDs(t, be); strings.Join(got, " ") != strings.Join(sortedKeys(want), " ") {
					t.Fatalf("after %v: listed %v", gcErr, got)
				}
				for id, fs := range want {
					readBack(t, reopen(t, be), id, fs)
				}
				checkClean(t, be)
				// (a registration the interrupted run could not end holds
				// other collections back until it lapses)
				for i := 1; i <= 2; i++ {
					if _, err := GC(ctx, reopen(t, be), GCOptions{Now: later.Add(time.Duration(i) * time.Hour)}); err != nil {
						t.Fatalf("after %v: %v", gcErr, err)
					}
				}
				if got := backupIDs(t, be); strings.Join(got, " ") != strings.Join(sortedKeys(want), " ") {
					t.Fatalf("after %v and two more: listed %v", gcErr, got)
				}
				if l, s, tb := objectNames(t, be, manifestsPrefix), objectNames(t, be, manifestSetsPrefix), objectNames(t, be, tombstonesPrefix); len(l)+len(tb) != 0 || len(s) != 1 {
					t.Fatalf("after %v the work was not finished: loose %v sets %v tombstones %v", gcErr, l, s, tb)
				}
				checkClean(t, be)
			})
			steps++
		}
	}
	if steps < 5 {
		t.Fatalf("only %d steps interrupted", steps)
	}
}

// A reader that listed the sets before a collection rewrote them lists
// again when the set it wants is gone, and misses nothing.
func TestManifestReaderBesideCompaction(t *testing.T) {
	ctx := context.Background()
	be, want := historyRepo(t, 5)
	if _, err := GC(ctx, reopen(t, be), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	r := reopen(t, be)
	saveFiles(t, r, "backup-100", fileSet(100, 1, 2000))
	want["backup-100"] = fileSet(100, 1, 2000)
	hooked := &listHook{Backend: be, prefix: tombstonesPrefix, hook: func() {
		if _, err := GC(ctx, reopen(t, be), GCOptions{}); err != nil {
			t.Error(err)
		}
	}}
	ms, errs, err := reopen(t, hooked).Manifests(ctx)
	if err != nil || len(errs) > 0 || len(ms) != len(want) {
		t.Fatalf("%d manifests, want %d: %v %v", len(ms), len(want), err, errs)
	}
	if len(objectNames(t, be, manifestsPrefix)) != 0 {
		t.Fatal("the collection did not run beside the reader")
	}
}

// A tombstone that does not authenticate (planted by someone without the
// repository's keys) hides nothing, and check reports it; a set renamed
// to claim other backups is refused.
func TestManifestSetsRefuseForgery(t *testing.T) {
	ctx := context.Background()
	be, want := historyRepo(t, 3)
	if _, err := GC(ctx, reopen(t, be), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	fake := append([]byte(tombstoneMagic), 1)
	fake = append(fake, make([]byte, 8+32)...)
	be.Put(ctx, tombstonesPrefix+"backup-001", bytes.NewReader(fake), int64(len(fake)))
	if got := backupIDs(t, be); len(got) != len(want) {
		t.Fatalf("a planted tombstone hid a backup: %v", got)
	}
	cr, err := Check(ctx, reopen(t, be), CheckOptions{})
	if err != nil || cr.OK || !strings.Contains(fmt.Sprint(cr.Errors), "does not authenticate") {
		t.Fatalf("check: %v %+v", err, cr.Errors)
	}
	be.Delete(ctx, tombstonesPrefix+"backup-001")

	set := objectNames(t, be, manifestSetsPrefix)[0]
	raw, _ := storage.ReadAll(ctx, be, set)
	be.Delete(ctx, set)
	h, newest, _ := parseSetName(set)
	if newest != "backup-002" || !isOrderedSetName(set) {
		t.Fatalf("the set is %s", set)
	}
	renamed := orderedSetName(manifestSetsPrefix + h.String() + "-backup-009")
	be.Put(ctx, renamed, bytes.NewReader(raw), int64(len(raw)))
	_, errs, err := reopen(t, be).Manifests(ctx)
	if err != nil || len(errs) != 1 || !errors.Is(errs[0], ErrCorrupt) {
		t.Fatalf("renamed set: %v %v", err, errs)
	}
	if _, err := GC(ctx, reopen(t, be), GCOptions{}); err == nil {
		t.Fatal("gc ran over an unreadable set")
	}
}

// A version 1 repository is read as before, and moved to version 2 by
// the collection that writes its first set.
func TestFormatUpgradeOnFirstFold(t *testing.T) {
	ctx := context.Background()
	be, want := historyRepo(t, 2)
	storeConfigVersion(t, be, 1)
	r := reopen(t, be)
	if r.Config().Version != 1 {
		t.Fatalf("version %d", r.Config().Version)
	}
	if got := backupIDs(t, be); len(got) != len(want) {
		t.Fatalf("listed %v", got)
	}
	if _, err := GC(ctx, r, GCOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if reopen(t, be).Config().Version != 1 {
		t.Fatal("a dry run upgraded the format")
	}
	if _, err := GC(ctx, r, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if v := reopen(t, be).Config().Version; v != 2 {
		t.Fatalf("after the first fold: version %d", v)
	}
	// what stops a version 1 gc whose handle predates the upgrade
	if _, err := be.Stat(ctx, formatCanary); err != nil {
		t.Fatalf("canary: %v", err)
	}
	for id, fs := range want {
		readBack(t, reopen(t, be), id, fs)
	}
}

// A host with a write-only key holds the signing key but not the data
// private key: a set it makes (to replace other backups' manifests with
// empty ones) is refused, and so is its deletion of a backup.
func TestManifestSetsFromAWriteOnlyHostAreRefused(t *testing.T) {
	ctx := context.Background()
	be, want := historyRepo(t, 3)
	r := reopen(t, be)
	if _, err := GC(ctx, r, GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddKey(ctx, Wrapping{Password: []byte("host secret"), KDF: ptr(TestKDF()), WriteOnly: true}); err != nil {
		t.Fatal(err)
	}
	host, err := Open(ctx, be, Credentials{Password: []byte("host secret")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := encodeManifestSet(host.keys, []setEntry{{id: "backup-001", js: []byte("{}")}}); !errors.Is(err, ErrWriteOnly) {
		t.Fatalf("a write-only key made a set: %v", err)
	}
	// what it could make by hand: sealed to the data key, MAC under a key
	// of its own
	forger := *host.keys
	forger.DataPrivate = randData(99, 32)
	js := []byte(`{"id":"backup-001","version":1,"components":[]}`)
	name, raw, err := encodeManifestSet(&forger, []setEntry{{id: "backup-001", js: js}, {id: "zz-newest", js: []byte("{}")}})
	if err != nil {
		t.Fatal(err)
	}
	be.Put(ctx, name, bytes.NewReader(raw), int64(len(raw)))
	_, errs, err := reopen(t, be).Manifests(ctx)
	if err != nil || len(errs) != 1 || !strings.Contains(errs[0].Error(), "full-access keys") {
		t.Fatalf("forged set: %v %v", err, errs)
	}
	if _, err := GC(ctx, reopen(t, be), GCOptions{}); err == nil {
		t.Fatal("gc ran beside a set it cannot authenticate")
	}
	be.Delete(ctx, name)
	for id, fs := range want {
		readBack(t, reopen(t, be), id, fs)
	}
	if err := host.DeleteManifest(ctx, "backup-002"); !errors.Is(err, ErrWriteOnly) {
		t.Fatalf("write-only delete: %v", err)
	}
}

// A reader that listed loose manifests a collection then folds (without
// rewriting any set it listed) lists again instead of reporting them
// gone; so does the choice of a parent.
func TestManifestReaderBesideAFold(t *testing.T) {
	ctx := context.Background()
	for _, list := range []func(*Repository) (string, error){
		func(lr *Repository) (string, error) {
			ms, errs, err := lr.Manifests(ctx)
			if err == nil && len(errs) > 0 {
				err = errs[0]
			}
			return fmt.Sprint(len(ms)), err
		},
		func(lr *Repository) (string, error) {
			m, err := lr.NewestManifest(ctx, func(*Manifest) bool { return true })
			if m == nil {
				return "none", err
			}
			return m.ID, err
		},
	} {
		r, be := newTestRepo(t)
		tree, err := r.SaveTree(ctx, &Tree{})
		if err != nil {
			t.Fatal(err)
		}
		r.Flush(ctx)
		save := func(id string) {
			if err := r.SaveManifest(ctx, &Manifest{ID: id, Components: []ComponentManifest{{Name: "c", Tree: tree}}}); err != nil {
				t.Fatal(err)
			}
		}
		n := manifestSetMax/2 + 10 // a set big enough to be left alone
		for i := 0; i < n; i++ {
			save(fmt.Sprintf("backup-%05d", i))
		}
		if _, err := GC(ctx, reopen(t, be), GCOptions{}); err != nil {
			t.Fatal(err)
		}
		save(fmt.Sprintf("backup-%05d", n))
		save(fmt.Sprintf("backup-%05d", n+1))
		n += 2
		folded := false
		hooked := &listHook{Backend: be, prefix: manifestSetsPrefix, hook: func() {
			res, err := GC(ctx, reopen(t, be), GCOptions{})
			if err != nil {
				t.Error(err)
			}
			folded = res != nil && res.Manifests != nil && res.Manifests.Folded == 2 && res.Manifests.SetsRemoved == 0
		}}
		got, err := list(reopen(t, hooked))
		if !folded {
			t.Fatal("the collection beside the reader did not fold the two new manifests alone")
		}
		if err != nil || (got != fmt.Sprint(n) && got != fmt.Sprintf("backup-%05d", n-1)) {
			t.Fatalf("beside a fold: got %s, %v", got, err)
		}
	}
}

// A backup whose tombstone was written but whose loose manifest could not
// be removed is deleted for LoadManifest too.
func TestLoadManifestHonoursATombstone(t *testing.T) {
	ctx := context.Background()
	be, _ := historyRepo(t, 2)
	r := reopen(t, be)
	if err := r.saveTombstone(ctx, "backup-001"); err != nil {
		t.Fatal(err)
	}
	if _, err := reopen(t, be).LoadManifest(ctx, "backup-001"); !errors.Is(err, ErrBackupNotFound) {
		t.Fatalf("load: %v", err)
	}
	if got := backupIDs(t, be); len(got) != 1 {
		t.Fatalf("listed %v", got)
	}
	if _, err := GC(ctx, reopen(t, be), GCOptions{Now: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if l, tb := objectNames(t, be, manifestsPrefix), objectNames(t, be, tombstonesPrefix); len(l)+len(tb) != 0 {
		t.Fatalf("left: %v %v", l, tb)
	}
	checkClean(t, be)
}

// Looking up one backup opens only the sets that may hold it (named by a
// backup no older), so a new backup's commit, which looks up its own id,
// opens none however long the history: it opened every set before.
func TestLookupOpensOnlyTheSetsThatMayHoldIt(t *testing.T) {
	ctx := context.Background()
	r, be, mk := manifestRepo(t)
	id := func(i int) string { return fmt.Sprintf("backup-%05d", i) }
	n := 0
	for _, batch := range []int{1000, 300} {
		for i := 0; i < batch; i++ {
			if err := r.SaveManifest(ctx, mk(id(n))); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if _, err := GC(ctx, reopen(t, be), GCOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if sets := objectNames(t, be, manifestSetsPrefix); len(sets) != 2 {
		t.Fatalf("want 2 sets, have %v", sets)
	}
	fb := fault.New(be)
	for _, c := range []struct {
		id    string
		found bool
		gets  int // the loose manifest's GET, then one per set opened
	}{
		{id(n), false, 1},      // newer than every set
		{id(n - 1), true, 2},   // in the newest set
		{id(1100), true, 2},    // the same
		{id(999), true, 3},     // in the older set: both opened
		{"backup-0", false, 3}, // older than all: both
	} {
		rr := reopen(t, fb)
		fb.Reset()
		m, err := rr.LoadManifest(ctx, c.id)
		if c.found && (err != nil || m.ID != c.id) {
			t.Fatalf("%s: %v %v", c.id, m, err)
		}
		if !c.found && !errors.Is(err, ErrBackupNotFound) {
			t.Fatalf("%s: want not found, got %v %v", c.id, m, err)
		}
		if g := fb.Calls(fault.Get); g != c.gets {
			t.Errorf("LoadManifest(%s) made %d reads, want %d", c.id, g, c.gets)
		}
	}
	rr := reopen(t, fb)
	fb.Reset()
	if err := rr.SaveManifest(ctx, mk(id(n))); err != nil {
		t.Fatal(err)
	}
	if g := fb.Calls(fault.Get); g != 0 {
		t.Errorf("a new backup's manifest made %d reads, want 0", g)
	}
	// an id a set holds is refused
	if err := reopen(t, be).SaveManifest(ctx, mk(id(5))); !errors.Is(err, ErrBackupExists) {
		t.Fatalf("saving over a folded backup: %v", err)
	}

	// the newest 20 (repo list --last 20): the loose ones, then the
	// newest set's, a deleted one skipped; the older set is not opened
	for i := n + 1; i < n+5; i++ {
		if err := r.SaveManifest(ctx, mk(id(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := reopen(t, be).DeleteManifest(ctx, id(n-3)); err != nil {
		t.Fatal(err)
	}
	rr = reopen(t, fb)
	fb.Reset()
	ms, errs, err := rr.NewestManifests(ctx, 20, nil)
	if err != nil || len(errs) > 0 {
		t.Fatal(err, errs)
	}
	var got, want []string
	for _, m := range ms {
		got = append(got, m.ID)
	}
	for i := n + 4; len(want) < 20; i-- {
		if i != n-3 {
			want = append(want, id(i))
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("newest 20:\n got %v\nwant %v", got, want)
	}
	if g := fb.Calls(fault.Get); g != 5+1+1 {
		t.Errorf("the newest 20 made %d reads, want 7 (5 loose manifests, the tombstone, the newest set)", g)
	}
	if ms, _, err := rr.NewestManifests(ctx, 5000, func(m *Manifest) bool { return m.ID < id(3) }); err != nil || len(ms) != 3 || ms[0].ID != id(2) {
		t.Fatalf("the newest matching, fewer than asked for: %d %v", len(ms), err)
	}
}

// Backups started in the same second have ids in random order: the newest
// is the one started last, whichever id sorts first.
func TestNewestOfOneSecondIsTheLastStarted(t *testing.T) {
	ctx := context.Background()
	r, _, mk := manifestRepo(t)
	at := time.Date(2026, 12, 3, 17, 0, 44, 0, time.UTC)
	for i, id := range []string{"backup-20261203-170043-ffffffffffff", "backup-20261203-170044-ffffffffffff", "backup-20261203-170044-000000000000"} {
		m := mk(id)
		m.Started = at.Add(time.Duration(i) * time.Millisecond)
		if err := r.SaveManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for n, want := range map[int]string{1: "backup-20261203-170044-000000000000", 2: "backup-20261203-170044-ffffffffffff", 3: "backup-20261203-170043-ffffffffffff"} {
		ms, _, err := r.NewestManifests(ctx, n, nil)
		if err != nil || len(ms) != n || ms[n-1].ID != want {
			t.Fatalf("newest %d: %d, last %v, want %s", n, len(ms), ms[len(ms)-1].ID, want)
		}
	}
}

// A collection that stored a set but could not delete the manifests it
// folded leaves each of those backups twice, loose and in the set: the
// newest n are n backups, each once; an unreadable copy is no error while
// the other reads, and a backup with no readable copy is reported.
func TestNewestManifestsTakeEachBackupOnce(t *testing.T) {
	ctx := context.Background()
	be, _ := historyRepo(t, 12)
	fb := fault.New(be)
	fb.Add(fault.Rule{Op: fault.Delete, Prefix: manifestsPrefix, Action: fault.Fail})
	GC(ctx, reopen(t, fb), GCOptions{}) // fails at the deletes
	if sets, loose := objectNames(t, be, manifestSetsPrefix), objectNames(t, be, manifestsPrefix); len(sets) != 1 || len(loose) != 12 {
		t.Fatalf("want one set and 12 loose manifests, have %d and %d", len(sets), len(loose))
	}
	check := func(wantErrs int) {
		t.Helper()
		ms, errs, err := reopen(t, be).NewestManifests(ctx, 5, nil)
		var got []string
		for _, m := range ms {
			got = append(got, m.ID)
		}
		if err != nil || len(errs) != wantErrs || strings.Join(got, " ") != "backup-011 backup-010 backup-009 backup-008 backup-007" {
			t.Fatalf("newest 5: %v, errors %v (want %d), %v", got, errs, wantErrs, err)
		}
	}
	check(0)
	// a damaged loose copy: the set's copy is read, nothing to report
	if err := be.Put(ctx, manifestsPrefix+"backup-010", strings.NewReader("damaged"), 7); err != nil {
		t.Fatal(err)
	}
	check(0)
	// a damaged set as well: backup-010 cannot be read at all and is
	// reported; the others come from their loose copies
	for _, name := range objectNames(t, be, manifestSetsPrefix) {
		if err := be.Put(ctx, name, strings.NewReader("damaged"), 7); err != nil {
			t.Fatal(err)
		}
	}
	ms, errs, err := reopen(t, be).NewestManifests(ctx, 5, nil)
	if err != nil || len(errs) != 2 || len(ms) != 5 || ms[0].ID != "backup-011" || ms[1].ID != "backup-009" {
		t.Fatalf("with the set damaged too: %d manifests (first %v), errors %v, %v", len(ms), ms, errs, err)
	}
}

// mergeDesc gives what sorting both lists together gives (ids equal in
// both lists are kept twice), for lists of every small length.
func TestMergeDesc(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for a := 0; a < 6; a++ {
		for b := 0; b < 6; b++ {
			var x, y []backupRef
			for range a {
				x = append(x, backupRef{id: fmt.Sprintf("backup-%02d", rng.Intn(8))})
			}
			for range b {
				y = append(y, backupRef{id: fmt.Sprintf("backup-%02d", rng.Intn(8))})
			}
			desc := func(c []backupRef) { sort.SliceStable(c, func(i, j int) bool { return c[i].id > c[j].id }) }
			desc(x)
			desc(y)
			want := append(append([]backupRef(nil), x...), y...)
			desc(want)
			got := mergeDesc(x, y)
			if len(got) != len(want) {
				t.Fatalf("%d + %d: %d refs", a, b, len(got))
			}
			for i := range got {
				if got[i].id != want[i].id {
					t.Fatalf("%d + %d: %v, want %v", a, b, got, want)
				}
			}
		}
	}
}

// Once n are found, only the candidates of the last one's second are
// read (their order is their start's, not their ids'), not a whole batch.
func TestNewestManifestsReadOnlyTheLastSecond(t *testing.T) {
	ctx := context.Background()
	r, be, mk := manifestRepo(t)
	at := time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)
	var sameSecond []string
	for i := range 30 {
		sec, ms := i, 0
		if i >= 18 { // the newest 12 started in one second
			sec, ms = 18, i
		}
		id := fmt.Sprintf("backup-20261207-1700%02d-%012x", sec, (i*7919)%1000)
		m := mk(id)
		m.Started = at.Add(time.Duration(sec)*time.Second + time.Duration(ms)*time.Millisecond)
		if err := r.SaveManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		if i >= 18 {
			sameSecond = append(sameSecond, id)
		}
	}
	fb := fault.New(be)
	rr := reopen(t, fb)
	fb.Reset()
	ms, errs, err := rr.NewestManifests(ctx, 10, nil)
	if err != nil || len(errs) > 0 || len(ms) != 10 {
		t.Fatalf("newest 10: %d, %v, %v", len(ms), errs, err)
	}
	for i, m := range ms {
		if want := sameSecond[len(sameSecond)-1-i]; m.ID != want {
			t.Fatalf("newest %d is %s, want %s (the last started)", i, m.ID, want)
		}
	}
	if g := fb.Calls(fault.Get); g != 12 {
		t.Errorf("the newest 10 made %d reads, want 12 (the backups of the last second)", g)
	}
}
