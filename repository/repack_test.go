package repository

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"backupd/storage"
	"backupd/storage/fault"
	"backupd/storage/mem"
)

// files maps a file name to its content.
type files map[string][]byte

// fileSet makes n files of size bytes, named by their seeds.
func fileSet(from, n, size int) files {
	fs := files{}
	for i := from; i < from+n; i++ {
		fs[fmt.Sprint("f", i)] = randData(int64(i), size)
	}
	return fs
}

func merge(sets ...files) files {
	out := files{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

// saveFiles stores fs as backup id: one blob per file, one tree.
func saveFiles(t *testing.T, r *Repository, id string, fs files) {
	t.Helper()
	saveFilesAs(t, r, id, "", "c", time.Now(), fs)
}

// saveFilesAs is saveFiles as host's component, started then.
func saveFilesAs(t *testing.T, r *Repository, id, host, component string, started time.Time, fs files) {
	t.Helper()
	ctx := context.Background()
	var nodes []*Node
	for name, data := range fs {
		blob, _, err := r.SaveBlob(ctx, DataBlob, data)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &Node{Name: name, Type: NodeFile, Size: uint64(len(data)), Content: []ID{blob}})
	}
	tree, err := r.SaveTree(ctx, &Tree{Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.SaveManifest(ctx, &Manifest{ID: id, Type: "full", Host: host, Started: started, Components: []ComponentManifest{{Name: component, Tree: tree}}}); err != nil {
		t.Fatal(err)
	}
}

// readBack reads backup id through r and compares it with want.
func readBack(t *testing.T, r *Repository, id string, want files) {
	t.Helper()
	ctx := context.Background()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	m, err := r.LoadManifest(ctx, id)
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	tree, err := r.LoadTree(ctx, m.Components[0].Tree)
	if err != nil {
		t.Fatalf("%s: tree: %v", id, err)
	}
	if len(tree.Nodes) != len(want) {
		t.Fatalf("%s: %d files, want %d", id, len(tree.Nodes), len(want))
	}
	for _, n := range tree.Nodes {
		var got []byte
		for _, b := range n.Content {
			data, err := r.LoadBlob(ctx, DataBlob, b)
			if err != nil {
				t.Fatalf("%s: %s: %v", id, n.Name, err)
			}
			got = append(got, data...)
		}
		if !bytes.Equal(got, want[n.Name]) {
			t.Fatalf("%s: %s: content differs", id, n.Name)
		}
	}
}

func checkClean(t *testing.T, be storage.Backend) *CheckResult {
	t.Helper()
	cr, err := Check(context.Background(), reopen(t, be), CheckOptions{ReadDataPercent: 100})
	if err != nil || !cr.OK {
		t.Fatalf("check: %v %+v", err, cr)
	}
	return cr
}

func storedBytes(t *testing.T, be storage.Backend) (n int64, packs int) {
	t.Helper()
	be.List(context.Background(), "data/", func(oi storage.ObjectInfo) error {
		n += oi.Size
		packs++
		return nil
	})
	return n, packs
}

// noSmall turns the small-pack rule off, to test the unused-share rule
// alone.
var noSmall = &RepackOptions{Small: 1}

// partlyUsed makes a repository whose first data pack is three quarters
// unused: backup-2 keeps 5 of backup-1's 20 files, and backup-1 is gone.
// The files are random: each is a blob of its own.
func partlyUsed(t *testing.T) (*mem.Backend, files) { return partlyUsedWith(t, fileSet) }

// partlyUsedWith is partlyUsed with files made by set.
func partlyUsedWith(t *testing.T, set func(from, n, size int) files) (*mem.Backend, files) {
	r, be := newTestRepo(t)
	old := set(1, 20, 50_000)
	saveFiles(t, r, "backup-1", old)
	kept := merge(set(1, 5, 50_000), set(100, 5, 50_000))
	saveFiles(t, r, "backup-2", kept)
	if err := r.DeleteManifest(context.Background(), "backup-1"); err != nil {
		t.Fatal(err)
	}
	return be, kept
}

func TestRepackReclaimsPartlyUsedPacks(t *testing.T) {
	ctx := context.Background()
	be, kept := partlyUsed(t)
	before, _ := storedBytes(t, be)
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: noSmall})
	if err != nil {
		t.Fatal(err)
	}
	rr := res.Repack
	if rr == nil || rr.Packs != 1 || rr.Blobs != 5 || rr.NewPacks != 1 || rr.Frees < 700_000 {
		t.Fatalf("repack: %+v", rr)
	}
	if res.Deleted < 2 { // backup-1's tree pack, and the repacked data pack
		t.Fatalf("gc: %+v", res)
	}
	after, _ := storedBytes(t, be)
	if before-after < 700_000 {
		t.Fatalf("stored %d bytes before, %d after", before, after)
	}
	readBack(t, reopen(t, be), "backup-2", kept)
	checkClean(t, be)
	// nothing is left to do: a second run rewrites nothing
	res, err = GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: noSmall})
	if err != nil || res.Repack.Packs != 0 || res.Deleted != 0 {
		t.Fatalf("second run: %+v %v", res, err)
	}
}

func TestRepackDryRunChangesNothing(t *testing.T) {
	ctx := context.Background()
	be, _ := partlyUsed(t)
	names := func() map[string]bool {
		out := map[string]bool{}
		be.List(ctx, "", func(oi storage.ObjectInfo) error { out[oi.Name] = true; return nil })
		return out
	}
	was := names()
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, DryRun: true, Repack: noSmall})
	if err != nil {
		t.Fatal(err)
	}
	if res.Repack.Packs != 1 || res.Repack.Blobs != 5 || res.Repack.Frees < 700_000 || res.Repack.NewPacks != 0 {
		t.Fatalf("dry run: %+v", res.Repack)
	}
	if now := names(); len(now) != len(was) {
		t.Fatalf("a dry run changed the store: %d objects, was %d", len(now), len(was))
	}
	for n := range was {
		if !names()[n] {
			t.Fatalf("a dry run removed %s", n)
		}
	}
}

// TestRepackWithSafetyWindow: the old pack is condemned, stays readable
// for a window, and is deleted by a later run; a reader that loaded the
// index before the repack still reads everything after the deletion.
func TestRepackWithSafetyWindow(t *testing.T) {
	ctx := context.Background()
	be, kept := partlyUsed(t)
	now := time.Now()
	window := time.Hour
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, now.Add(-2*window)); return nil })
	reader := reopen(t, be)
	if err := reader.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: window, Now: now, Repack: noSmall})
	if err != nil {
		t.Fatal(err)
	}
	if res.Repack.Packs != 1 || res.Deleted != 0 || res.Condemned < 2 {
		t.Fatalf("first run: %+v %+v", res, res.Repack)
	}
	readBack(t, reopen(t, be), "backup-2", kept)
	res, err = GC(ctx, reopen(t, be), GCOptions{SafetyWindow: window, Now: now.Add(2 * window), Repack: noSmall})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted < 2 || res.Repack.Packs != 0 {
		t.Fatalf("second run: %+v %+v", res, res.Repack)
	}
	// the reader's index still names the deleted pack
	readBack(t, reader, "backup-2", kept)
	checkClean(t, be)
}

func TestRepackMergesSmallPacks(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	all := files{}
	for i := 0; i < 6; i++ {
		fs := fileSet(10*i, 3, 2000)
		all = merge(all, fs)
		saveFiles(t, r, fmt.Sprint("backup-", i), fs)
	}
	_, packs := storedBytes(t, be)
	if packs != 12 {
		t.Fatalf("%d packs, want a data and a tree pack per backup", packs)
	}
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: &RepackOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	// a data and a tree pack for the newest backup, and for the older ones
	if _, packs = storedBytes(t, be); packs != 4 || res.Repack.Packs != 12 {
		t.Fatalf("%d packs after merging, want 4: %+v", packs, res.Repack)
	}
	for i := 0; i < 6; i++ {
		readBack(t, reopen(t, be), fmt.Sprint("backup-", i), fileSet(10*i, 3, 2000))
	}
	checkClean(t, be)
	// merged as far as they go, they stay
	res, err = GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: &RepackOptions{}})
	if err != nil || res.Repack.Packs != 0 {
		t.Fatalf("the merged packs were merged again: %+v %v", res.Repack, err)
	}
	// a new backup's small packs merge with the others, backup-5's blobs
	// now older
	r = reopen(t, be)
	saveFiles(t, r, "backup-6", fileSet(60, 1, 100))
	res, err = GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: &RepackOptions{}})
	if err != nil || res.Repack.Packs != 6 {
		t.Fatalf("the new small packs merge with the merged ones: %+v %v", res.Repack, err)
	}
	if _, packs = storedBytes(t, be); packs != 4 {
		t.Fatalf("%d packs", packs)
	}
	// the newest backup's one file has a pack of its own
	r = loaded(t, be)
	found := false
	for _, p := range r.idx.Packs() {
		for _, b := range p.Blobs {
			if b.Type == DataBlob && b.RawLength == 100 {
				found = true
				if len(p.Blobs) != 1 {
					t.Fatalf("the newest backup's data pack holds %d blobs; want its one file alone", len(p.Blobs))
				}
			}
		}
	}
	if !found {
		t.Fatal("no 100-byte blob indexed")
	}
	for i := 0; i <= 6; i++ {
		want := fileSet(10*i, 3, 2000)
		if i == 6 {
			want = fileSet(60, 1, 100)
		}
		readBack(t, reopen(t, be), fmt.Sprint("backup-", i), want)
	}
	checkClean(t, be)
}

// The blobs only older backups use: not the newest backup's of any host's
// component.
func TestReferencedBlobsTellsOlderOnes(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRepo(t)
	t0 := time.Now().Add(-time.Hour)
	content := func(names ...string) files {
		fs := files{}
		for _, n := range names {
			fs[n] = []byte("the content of " + n)
		}
		return fs
	}
	// a's c: x only in its older backup; b's c and a's d: one backup each
	saveFilesAs(t, r, "a-c-1", "a", "c", t0, content("x", "y"))
	saveFilesAs(t, r, "a-c-2", "a", "c", t0.Add(time.Minute), content("y", "z"))
	saveFilesAs(t, r, "b-c-1", "b", "c", t0, content("w"))
	saveFilesAs(t, r, "a-d-1", "a", "d", t0.Add(-time.Minute), content("v"))
	// started at once: the greater id is the newer
	saveFilesAs(t, r, "e-c-2", "e", "c", t0, content("q"))
	saveFilesAs(t, r, "e-c-1", "e", "c", t0, content("p"))
	id := func(n string) ID { return r.ids.Sum([]byte("the content of " + n)) }
	used, older, _, _, err := r.referencedBlobs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"p", "q", "v", "w", "x", "y", "z"} {
		if !used[id(n)] {
			t.Errorf("%s not used", n)
		}
		if older[id(n)] != (n == "x" || n == "p") {
			t.Errorf("%s: older %v", n, older[id(n)])
		}
	}
	// a-c-1's and e-c-1's trees are older too
	if len(older) != 4 {
		t.Errorf("%d older blobs, want x, p and the trees of a-c-1 and e-c-1", len(older))
	}
	// with the newest excluded (forgotten), the one before is the newest
	_, older, _, _, err = r.referencedBlobs(ctx, map[string]bool{"a-c-2": true, "e-c-1": true})
	if err != nil || len(older) != 0 {
		t.Fatalf("%d older blobs with a-c-2 excluded: %v", len(older), err)
	}
}

// Unused space in packs repack may not rewrite yet (too young) does not
// count toward the repository-wide bound: it would have every other pack
// with any unused space rewritten, at every run, for nothing.
func TestRepackBoundCountsOnlyWhatItMayRewrite(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	// old packs 0.5% unused
	saveFiles(t, r, "old-1", fileSet(0, 200, 20_000))
	saveFiles(t, r, "old-2", fileSet(0, 199, 20_000))
	r.DeleteManifest(ctx, "old-1")
	now := time.Now()
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, now.Add(-2*time.Hour)); return nil })
	// a young pack half unused: 6% of all packs' space
	saveFiles(t, r, "young-1", fileSet(1000, 26, 20_000))
	saveFiles(t, r, "young-2", fileSet(1000, 13, 20_000))
	r.DeleteManifest(ctx, "young-1")
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: time.Hour, Now: now, Repack: noSmall})
	if err != nil {
		t.Fatal(err)
	}
	if res.Repack.Packs != 0 {
		t.Fatalf("the old packs are 0.5%% unused, the young one may not be rewritten yet: %+v", res.Repack)
	}
	readBack(t, reopen(t, be), "old-2", fileSet(0, 199, 20_000))
	readBack(t, reopen(t, be), "young-2", fileSet(1000, 13, 20_000))
}

func TestRepackBudgetBoundsARun(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	// three backups, each in its own pack, each losing most of its files
	var kept []files
	for i := 0; i < 3; i++ {
		fs := fileSet(100*i, 10, 50_000)
		saveFiles(t, r, fmt.Sprint("old-", i), fs)
		k := fileSet(100*i, 2, 50_000)
		kept = append(kept, k)
		saveFiles(t, r, fmt.Sprint("new-", i), k)
		r.DeleteManifest(ctx, fmt.Sprint("old-", i))
	}
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: &RepackOptions{Small: 1, Budget: 150_000}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Repack.Qualifying != 3 || res.Repack.Packs != 1 || res.Repack.OverBudget != 2 {
		t.Fatalf("budget: %+v", res.Repack)
	}
	for i := 0; i < 3; i++ {
		readBack(t, reopen(t, be), fmt.Sprint("new-", i), kept[i])
	}
	checkClean(t, be)
}

// TestRepackInterruptedAtAnyStepLosesNothing fails each storage write and
// delete of a repacking collection in turn (the job stops there, as a
// crash would): the kept backup reads back and the repository checks
// clean at once, and a later collection finishes the work.
func TestRepackInterruptedAtAnyStepLosesNothing(t *testing.T) {
	t.Run("blobs", func(t *testing.T) { testRepackInterrupted(t, fileSet, 900_000) })
	// the same files compressible: members of bundles, bundled again
	t.Run("bundles", func(t *testing.T) { testRepackInterrupted(t, textSet, 450_000) })
}

// testRepackInterrupted: most stored when the work is done.
func testRepackInterrupted(t *testing.T, set func(from, n, size int) files, most int64) {
	ctx := context.Background()
	base, kept := partlyUsedWith(t, set)
	for _, window := range []time.Duration{0, time.Hour} {
		now := time.Now()
		if window > 0 {
			base.List(ctx, "data/", func(oi storage.ObjectInfo) error { base.SetModTime(oi.Name, now.Add(-2*window)); return nil })
		}
		// how many writes and deletes a clean run makes
		probe := fault.New(base.Clone())
		pr := reopen(t, probe)
		probe.Reset()
		if _, err := GC(ctx, pr, GCOptions{SafetyWindow: window, Now: now, Repack: noSmall}); err != nil {
			t.Fatal(err)
		}
		counts := map[fault.Op]int{fault.Put: probe.Calls(fault.Put), fault.Delete: probe.Calls(fault.Delete), fault.Get: probe.Calls(fault.Get)}
		steps := 0
		for _, op := range []fault.Op{fault.Put, fault.Delete, fault.Get} {
			for n := 1; n <= counts[op]; n++ {
				name := fmt.Sprintf("window %v: %s %d of %d", window, op, n, counts[op])
				be := base.Clone()
				fb := fault.New(be)
				r := reopen(t, fb)
				fb.Add(fault.Rule{Op: op, Nth: n, Times: 1})
				_, gcErr := GC(ctx, r, GCOptions{SafetyWindow: window, Now: now, Repack: noSmall})
				fb.Reset()
				t.Run(name, func(t *testing.T) {
					readBack(t, reopen(t, be), "backup-2", kept)
					checkClean(t, be)
					// later collections finish the work
					later := now
					for i := 0; i < 3; i++ {
						later = later.Add(2 * window)
						if _, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: window, Now: later, Repack: noSmall}); err != nil {
							t.Fatalf("after %v: %v", gcErr, err)
						}
					}
					readBack(t, reopen(t, be), "backup-2", kept)
					cr := checkClean(t, be)
					if size, _ := storedBytes(t, be); size > most {
						t.Fatalf("after %v the work was not finished: %d bytes stored, %d packs", gcErr, size, cr.Packs)
					}
				})
				steps++
			}
		}
		if steps < 8 {
			t.Fatalf("only %d steps interrupted", steps)
		}
	}
}

// TestBackupBesideRepackRestores: a backup that loaded the index before a
// repack, and deduplicated against both a live and an unused blob of the
// pack being rewritten, commits after it; everything restores and checks
// clean, then and after later collections.
func TestBackupBesideRepackRestores(t *testing.T) {
	ctx := context.Background()
	be, kept := partlyUsed(t)
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, time.Now().Add(-time.Hour)); return nil })
	w := reopen(t, be)
	wr, err := w.BeginWrite(ctx, "backup")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	// f1 is live in the old pack, f15 unused there; both deduplicate
	mine := merge(fileSet(1, 1, 50_000), fileSet(15, 1, 50_000), fileSet(500, 1, 50_000))
	var nodes []*Node
	for name, data := range mine {
		blob, added, err := w.SaveBlob(ctx, DataBlob, data)
		if err != nil {
			t.Fatal(err)
		}
		if added != (name == "f500") {
			t.Fatalf("%s: added %v", name, added)
		}
		nodes = append(nodes, &Node{Name: name, Type: NodeFile, Size: uint64(len(data)), Content: []ID{blob}})
	}
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: noSmall})
	if err != nil {
		t.Fatal(err)
	}
	if res.Repack.Packs != 1 || res.OpenWriters != 1 {
		t.Fatalf("repack beside a writer: %+v %+v", res, res.Repack)
	}
	tree, err := w.SaveTree(ctx, &Tree{Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.CheckPacks(ctx, w.DependedPacks()); err != nil {
		t.Fatal(err)
	}
	if err := w.SaveManifest(ctx, &Manifest{ID: "backup-3", Type: "full", Components: []ComponentManifest{{Name: "c", Tree: tree}}}); err != nil {
		t.Fatal(err)
	}
	wr.End()
	readBack(t, reopen(t, be), "backup-2", kept)
	readBack(t, reopen(t, be), "backup-3", mine)
	checkClean(t, be)
	for i := 0; i < 2; i++ {
		if _, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: noSmall}); err != nil {
			t.Fatal(err)
		}
		readBack(t, reopen(t, be), "backup-2", kept)
		readBack(t, reopen(t, be), "backup-3", mine)
		checkClean(t, be)
	}
}

func TestRepackKeepsTheRepositoryWideUnusedShareBounded(t *testing.T) {
	ctx := context.Background()
	build := func() *mem.Backend {
		r, be := newTestRepo(t)
		for i := 0; i < 3; i++ {
			saveFiles(t, r, fmt.Sprint("old-", i), fileSet(100*i, 25, 20_000))
			saveFiles(t, r, fmt.Sprint("new-", i), fileSet(100*i, 23, 20_000)) // 8% of each pack unused
			r.DeleteManifest(ctx, fmt.Sprint("old-", i))
		}
		return be
	}
	be := build()
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: &RepackOptions{Small: 1, MaxUnused: -1}})
	if err != nil || res.Repack.Packs != 0 {
		t.Fatalf("no pack is over 10%% unused: %+v %v", res.Repack, err)
	}
	be = build()
	res, err = GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: &RepackOptions{Small: 1, MaxUnused: 0.05}})
	if err != nil || res.Repack.Packs != 2 {
		t.Fatalf("8%% unused in all is over a 5%% bound: two of three packs go: %+v %v", res.Repack, err)
	}
	for i := 0; i < 3; i++ {
		readBack(t, reopen(t, be), fmt.Sprint("new-", i), fileSet(100*i, 23, 20_000))
	}
	checkClean(t, be)
	// the default bound, 2%: two rewritten would leave 2.7%
	be = build()
	res, err = GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: &RepackOptions{Small: 1}})
	if err != nil || res.Repack.Packs != 3 {
		t.Fatalf("8%% unused in all is over the default 2%% bound: every pack goes: %+v %v", res.Repack, err)
	}
	for i := 0; i < 3; i++ {
		readBack(t, reopen(t, be), fmt.Sprint("new-", i), fileSet(100*i, 23, 20_000))
	}
	checkClean(t, be)
}
