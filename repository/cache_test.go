package repository

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"backupd/storage"
	"backupd/storage/fault"
	"backupd/storage/storagetest"
)

// gets counts the reads of objects that fn makes.
func gets(fb *fault.Backend, fn func()) int {
	fb.Reset()
	fn()
	return fb.Calls(fault.Get)
}

func TestCacheServesIndexManifestsAndTrees(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	want := map[string]files{}
	for i := 0; i < 5; i++ {
		id := "backup-2026010" + string(rune('1'+i)) + "-000000-aaaaaaaa"
		want[id] = fileSet(10*i, 3, 3000)
		saveFiles(t, r, id, want[id])
	}
	fb := fault.New(be)
	root := t.TempDir()
	open := func() *Repository { return withCacheAt(t, reopen(t, fb), root) }
	// what a backup reads: the index, its parent's manifest and trees; and
	// what a listing reads: every manifest
	use := func(x *Repository) {
		if err := x.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		m, err := x.NewestManifest(ctx, func(*Manifest) bool { return true })
		if err != nil || m == nil {
			t.Fatal(m, err)
		}
		if _, err := x.LoadTree(ctx, m.Components[0].Tree); err != nil {
			t.Fatal(err)
		}
		ms, errs, err := x.Manifests(ctx)
		if err != nil || len(errs) > 0 || len(ms) != len(want) {
			t.Fatalf("%d manifests: %v %v", len(ms), errs, err)
		}
	}
	cold := open()
	first := gets(fb, func() { use(cold) })
	if first < 5+5 {
		t.Fatalf("a cold cache read only %d objects", first)
	}
	warm := open() // (opening reads the config and the key entry)
	if n := gets(fb, func() { use(warm) }); n != 0 {
		t.Fatalf("with a warm cache %d objects were read from storage", n)
	}
	// a damaged cached object is noticed and read again
	x := open()
	idx, _ := filepath.Glob(filepath.Join(x.Cache().Dir(), "index", "*"))
	trees, _ := filepath.Glob(filepath.Join(x.Cache().Dir(), "trees", "*"))
	mans, _ := filepath.Glob(filepath.Join(x.Cache().Dir(), "manifests", "*"))
	if len(idx) == 0 || len(trees) == 0 || len(mans) != 5 {
		t.Fatalf("cached: %d index files, %d tree packs, %d manifests", len(idx), len(trees), len(mans))
	}
	for _, p := range []string{idx[0], trees[0], mans[0]} {
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 1
		os.WriteFile(p, b, 0o600)
	}
	if n := gets(fb, func() { use(x) }); n == 0 {
		t.Fatal("damaged cache entries were used")
	}
	for id, fs := range want {
		readBack(t, open(), id, fs)
	}
	// a backup forgotten elsewhere is not brought back by the cache
	if err := reopen(t, be).DeleteManifest(ctx, "backup-20260101-000000-aaaaaaaa"); err != nil {
		t.Fatal(err)
	}
	ms, _, _ := open().Manifests(ctx)
	if len(ms) != 4 {
		t.Fatalf("%d manifests after one was deleted elsewhere", len(ms))
	}
	if _, err := os.Stat(filepath.Join(x.Cache().Dir(), "manifests", "backup-20260101-000000-aaaaaaaa")); !os.IsNotExist(err) {
		t.Fatalf("the forgotten manifest stays cached: %v", err)
	}
	// the cache can go at any time
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	for id, fs := range want {
		if id != "backup-20260101-000000-aaaaaaaa" {
			readBack(t, open(), id, fs)
		}
	}
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache root: %v %v", fi.Mode(), err)
	}
}

func TestCacheRefusesAPlacePreparedByOthers(t *testing.T) {
	// a root that exists keeps its mode (--cache-dir /tmp must not chmod /tmp)
	root := t.TempDir()
	os.Chmod(root, 0o755)
	if _, err := OpenCache(root, "repo1"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(root); fi.Mode().Perm() != 0o755 {
		t.Fatalf("the cache changed its root's mode to %v", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(root, "repo1")); fi.Mode().Perm() != 0o700 {
		t.Fatalf("the repository's cache directory has mode %v", fi.Mode())
	}
	// a link put where the repository's directory goes is refused
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(root, "repo2")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCache(root, "repo2"); err == nil || !strings.Contains(err.Error(), "not a directory that only this user") {
		t.Fatalf("a symlinked cache directory: %v", err)
	}
	// so is one others can enter
	os.Mkdir(filepath.Join(root, "repo3"), 0o777)
	os.Chmod(filepath.Join(root, "repo3"), 0o777)
	if _, err := OpenCache(root, "repo3"); err == nil {
		t.Fatal("a world-writable cache directory was used")
	}
}

func TestCompactIndexMergesWhenThereAreTooMany(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	want := map[string]files{}
	for i := 0; i < 12; i++ {
		id := fmt.Sprintf("backup-%d", i)
		want[id] = fileSet(10*i, 2, 1000)
		saveFiles(t, r, id, want[id])
	}
	count := func() int { return len(storagetest.Names(t, be, "index/")) }
	if n := count(); n != 24 {
		t.Fatalf("%d index files, want 2 a backup", n)
	}
	x := reopen(t, be)
	x.LoadIndex(ctx)
	if n, err := CompactIndex(ctx, x, 30); n != 0 || err != nil || count() != 24 {
		t.Fatalf("under the bound: %d %v", n, err)
	}
	// a collection is running: it rewrites the index itself
	gc, err := x.register(ctx, collectorsPrefix, "gc")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := CompactIndex(ctx, x, 10); n != 0 || err != nil || count() != 24 {
		t.Fatalf("beside a collection: %d %v", n, err)
	}
	gc.remove()
	// the smallest go, enough to leave half the bound: 20 of 24 into one
	sizes := func() map[string]int64 {
		m := map[string]int64{}
		be.List(ctx, "index/", func(oi storage.ObjectInfo) error { m[oi.Name] = oi.Size; return nil })
		return m
	}
	before := sizes()
	if n, err := CompactIndex(ctx, x, 10); n != 20 || err != nil || count() != 5 {
		t.Fatalf("merged %d: %v; %d files left", n, err, count())
	}
	var kept, gone []int64
	for name, size := range before {
		if _, ok := sizes()[name]; ok {
			kept = append(kept, size)
		} else {
			gone = append(gone, size)
		}
	}
	if len(kept) != 4 || slices.Min(kept) < slices.Max(gone) {
		t.Fatalf("kept files of %v bytes, merged %v: the smallest should go", kept, gone)
	}
	// past the bound again: the merged file is among the smallest now
	x = reopen(t, be)
	for i := 0; i < 6; i++ {
		id := fmt.Sprintf("backup-more-%d", i)
		want[id] = fileSet(300+10*i, 1, 100)
		saveFiles(t, x, id, want[id])
	}
	if n, err := CompactIndex(ctx, x, 10); n != 13 || err != nil || count() != 5 {
		t.Fatalf("a second compaction merged %d: %v; %d files left", n, err, count())
	}
	for id, fs := range want {
		readBack(t, reopen(t, be), id, fs)
	}
	checkClean(t, be)
	// and all of them into one, when the bound is 1
	all := count()
	x = reopen(t, be)
	x.LoadIndex(ctx)
	if n, err := CompactIndex(ctx, x, 1); n != all || err != nil || count() != 1 {
		t.Fatalf("merged %d: %v; %d files left", n, err, count())
	}
	for id, fs := range want {
		readBack(t, reopen(t, be), id, fs)
	}
	checkClean(t, be)
	// a later collection works as ever on the merged index
	y := reopen(t, be)
	saveFiles(t, y, "backup-late", fileSet(500, 1, 100))
	y.DeleteManifest(ctx, "backup-late")
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0})
	if err != nil || res.Deleted != 2 {
		t.Fatalf("a collection after the compaction: %+v %v", res, err)
	}
	for id, fs := range want {
		readBack(t, reopen(t, be), id, fs)
	}
	checkClean(t, be)
}

// A pack two merged files name differently (one of them damaged or
// forged, and the smaller) keeps the entries of both.
func TestCompactIndexKeepsEveryEntryOfAPack(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	want := fileSet(0, 3, 1000)
	saveFiles(t, r, "backup-a", want)
	x := reopen(t, be)
	if err := x.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range x.idx.Packs() {
		e := p.Blobs[0]
		e.ID = ID{1} // a blob the pack does not hold, where one of its blobs is
		forged := IndexPack{ID: p.ID, EphPublic: p.EphPublic, Blobs: []PackEntry{e}}
		if _, err := x.writeIndexFile(ctx, &IndexFile{Packs: []IndexPack{forged}}, false); err != nil {
			t.Fatal(err)
		}
	}
	n := len(storagetest.Names(t, be, "index/"))
	if m, err := CompactIndex(ctx, x, 1); m != n || err != nil {
		t.Fatalf("merged %d of %d: %v", m, n, err)
	}
	readBack(t, reopen(t, be), "backup-a", want)
}

// A compaction saves the index snapshot of what it leaves: the next
// command starts from it (it decoded every index file again, every time
// one ran).
func TestCompactIndexKeepsTheSnapshotCurrent(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	dir := t.TempDir()
	cached := func() *Repository {
		x := withCacheAt(t, reopen(t, be), dir)
		if err := x.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		return x
	}
	// enough blobs for a snapshot (tiny members, bundled by count)
	var tiny [][]byte
	for i := 0; i < indexSnapMin; i++ {
		tiny = append(tiny, []byte(fmt.Sprintf("tiny member %d, tiny member", i)))
	}
	ids := savedBlobs(t, r, tiny)
	x := cached()
	want := map[string]files{}
	for i := 0; i < 4; i++ {
		id := fmt.Sprintf("backup-%d", i)
		want[id] = fileSet(10*i, 1, 100)
		saveFiles(t, x, id, want[id])
	}
	if n, err := CompactIndex(ctx, x, 4); n == 0 || err != nil {
		t.Fatalf("merged %d: %v", n, err)
	}
	listed := map[ID]bool{}
	for _, name := range storagetest.Names(t, be, "index/") {
		id, _ := ParseID(strings.TrimPrefix(name, "index/"))
		listed[id] = true
	}
	if x.loadIndexSnapshot(listed) == nil {
		t.Fatal("the snapshot names files the compaction merged")
	}
	y := cached() // from the snapshot
	for _, id := range ids {
		if _, ok := y.Lookup(id); !ok {
			t.Fatalf("blob %s lost", id.Short())
		}
	}
	for id, fs := range want {
		readBack(t, y, id, fs)
	}
	checkClean(t, be)
}

// A long writing session merges its per-pack index files every
// sessionIndexRoll packs instead of holding every pack's entries for the
// end; nothing is lost and the merged files replace the small ones.
func TestSessionIndexRolls(t *testing.T) {
	old := sessionIndexRoll
	sessionIndexRoll = 4
	t.Cleanup(func() { sessionIndexRoll = old })
	ctx := context.Background()
	r, be := newTestRepo(t)
	var ids []ID
	for i := 0; i < 9; i++ { // one blob a pack: two of them would pass TargetPackSize
		id, _, err := r.SaveBlob(ctx, DataBlob, randData(int64(i), MaxChunkSize))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(storagetest.Names(t, be, "index/")); n != 3 {
		t.Fatalf("%d index files, want 3 (two merged sets of 4 packs, one single)", n)
	}
	if len(r.sessionPacks) != 0 {
		t.Fatalf("session still holds %d packs", len(r.sessionPacks))
	}
	x := reopen(t, be)
	if err := x.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		b, err := x.LoadBlob(ctx, DataBlob, id)
		if err != nil || !bytes.Equal(b, randData(int64(i), MaxChunkSize)) {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
	checkClean(t, be)
}

// Walkers that miss on trees of the same pack at once read the pack once
// (each had read, and held, the whole pack), and a session's own tree
// packs are in the cache when it is done (the next backup's parent trees).
func TestTreePackReadOnceAndCachedByItsWriter(t *testing.T) {
	ctx := context.Background()
	_, be := newTestRepo(t)
	fb := fault.New(be)
	root := t.TempDir()
	withCache := func(x *Repository) *Repository { return withCacheAt(t, x, root) }
	w := withCache(reopen(t, fb))
	ids := saveSmallTrees(t, w, 40)
	load := func(x *Repository) int {
		if err := x.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		return gets(fb, func() {
			var wg sync.WaitGroup
			for _, id := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := x.LoadTree(ctx, id); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
		})
	}
	if n := load(withCache(reopen(t, fb))); n != 0 {
		t.Fatalf("the writer's own tree pack was read %d times from storage", n)
	}
	// without the cached copy, the pack is read once, however many ask
	os.RemoveAll(root)
	fb.Add(fault.Rule{Op: fault.Get, Prefix: "data/", Action: fault.Delay, Delay: 50 * time.Millisecond})
	if n := load(withCache(reopen(t, fb))); n != 1 {
		t.Fatalf("%d walkers read the tree pack %d times", len(ids), n)
	}
}

// Trees that are a small part of the pack read for them are copied out:
// slices of it would keep the whole pack alive past the cache's count.
func TestTreesFewInAPackAreCopiedOut(t *testing.T) {
	r, _ := newTestRepo(t)
	c, err := OpenCache(t.TempDir(), r.Config().ID)
	if err != nil {
		t.Fatal(err)
	}
	r.SetCache(c)
	pack := bytes.Repeat([]byte("p"), 1<<20)
	id := ID(sha256.Sum256(pack))
	c.put(cacheTrees, id.String(), pack)
	for _, share := range []int{8, 900 << 10} { // bytes of trees in the 1 MiB pack
		locs := []BlobLocation{{Pack: id, PackEntry: PackEntry{ID: ID{1}, Offset: 0, Length: uint32(share / 2)}},
			{Pack: id, PackEntry: PackEntry{ID: ID{2}, Offset: uint32(share / 2), Length: uint32(share / 2)}}}
		got := map[ID]sealedTree{}
		if err := r.readCachedTreePack(context.Background(), id, locs, got); err != nil {
			t.Fatal(err)
		}
		a, b := got[ID{1}].sealed, got[ID{2}].sealed
		adjacent := unsafe.Pointer(unsafe.SliceData(b)) == unsafe.Add(unsafe.Pointer(unsafe.SliceData(a)), len(a))
		if want := share > 1<<19; adjacent != want {
			t.Fatalf("%d bytes of trees in a 1 MiB pack: kept as slices of it = %v, want %v", share, adjacent, want)
		}
	}
}

// A cached tree pack is not hashed whole when read (see decodeTree): a
// tree damaged in it, or a file that is not the pack at all, is caught by
// the tree's own check, dropped, and read from the storage; the backup's
// trees come back whole every time.
func TestDamagedCachedTreePackIsReadFromStorage(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	want := fileSet(0, 4, 1000)
	saveFiles(t, r, "backup-1", want)
	saveFiles(t, r, "backup-2", fileSet(10, 2, 1000))
	fb := fault.New(be)
	root := t.TempDir()
	open := func() *Repository { return openCachedIndexed(t, fb, root) }
	m, err := reopen(t, be).LoadManifest(ctx, "backup-1")
	if err != nil {
		t.Fatal(err)
	}
	treeID := m.Components[0].Tree
	x := open()
	loc, ok := x.Lookup(treeID)
	if !ok {
		t.Fatal("tree not indexed")
	}
	path := filepath.Join(x.Cache().Dir(), "trees", loc.Pack.String())
	other, _ := x.Lookup(mustLoadManifest(t, be, "backup-2").Components[0].Tree)
	for _, damage := range []struct {
		name string
		do   func(b []byte) []byte
	}{
		{"a bit flipped in the tree", func(b []byte) []byte { b[loc.Offset+loc.Length/2] ^= 1; return b }},
		{"cut short", func(b []byte) []byte { return b[:loc.Offset+loc.Length/2] }},
		{"another pack's bytes", func(b []byte) []byte {
			o, err := storage.ReadAll(ctx, be, packName(other.Pack))
			if err != nil {
				t.Fatal(err)
			}
			return append(o, b...)
		}},
	} {
		if _, err := open().LoadTree(ctx, treeID); err != nil { // cached whole
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: the tree pack is not cached: %v", damage.name, err)
		}
		if err := os.WriteFile(path, damage.do(b), 0o600); err != nil {
			t.Fatal(err)
		}
		x := open()
		var tree *Tree
		if n := gets(fb, func() { tree, err = x.LoadTree(ctx, treeID) }); err != nil || n == 0 {
			t.Fatalf("%s: %v (%d reads from storage)", damage.name, err, n)
		}
		if len(tree.Nodes) != len(want) {
			t.Fatalf("%s: %d files, want %d", damage.name, len(tree.Nodes), len(want))
		}
		// and once more through the same handle: its memory no longer
		// holds the damaged copy
		if _, err := x.LoadTree(ctx, treeID); err != nil {
			t.Fatalf("%s: again: %v", damage.name, err)
		}
		// nor does the disk: the damaged copy was replaced by the pack
		if b, err := os.ReadFile(path); err != nil || ID(sha256.Sum256(b)) != loc.Pack {
			t.Fatalf("%s: the damaged copy stays cached (%v)", damage.name, err)
		}
	}
}

// withCacheAt gives x the local cache under root.
func withCacheAt(t *testing.T, x *Repository, root string) *Repository {
	t.Helper()
	c, err := OpenCache(root, x.Config().ID)
	if err != nil {
		t.Fatal(err)
	}
	x.SetCache(c)
	return x
}

func mustLoadManifest(t *testing.T, be storage.Backend, id string) *Manifest {
	t.Helper()
	m, err := reopen(t, be).LoadManifest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A tree whose pack the local cache holds is read alone from it: no
// request, and the pack's other trees are not loaded (after a long history
// an incremental backup's parent needs a few trees from each of several
// repacked tree packs of megabytes). A pack not cached yet is fetched
// whole once, cached, and serves its other trees from memory.
func TestCachedTreeIsReadAloneFromItsPack(t *testing.T) {
	r, be := newTestRepo(t)
	ids := saveSmallTrees(t, r, 50)
	fb := fault.New(be)
	root := t.TempDir()
	open := func() *Repository { return openCachedIndexed(t, fb, root) }
	first, _ := r.Lookup(ids[0])
	if last, _ := r.Lookup(ids[49]); last.Pack != first.Pack {
		t.Fatal("the trees are not in one pack")
	}
	x := open()
	if n := gets(fb, func() { mustLoadTree(t, x, ids[0], "f0") }); n != 1 {
		t.Fatalf("first read: %d requests, want the pack's one", n)
	}
	if n := gets(fb, func() { mustLoadTree(t, x, ids[1], "f1") }); n != 0 {
		t.Fatalf("a tree of the same pack: %d requests", n)
	}
	if len(x.trees.blobs) != 50 {
		t.Fatalf("%d trees kept from the fetched pack, want 50", len(x.trees.blobs))
	}
	y := open()
	if n := gets(fb, func() { mustLoadTree(t, y, ids[7], "f7") }); n != 0 {
		t.Fatalf("from the cached pack: %d requests", n)
	}
	if len(y.trees.blobs) != 0 {
		t.Fatalf("%d trees loaded into memory to read one", len(y.trees.blobs))
	}
}

func mustLoadTree(t *testing.T, r *Repository, id ID, name string) {
	t.Helper()
	tree, err := r.LoadTree(context.Background(), id)
	if err != nil || len(tree.Nodes) != 1 || tree.Nodes[0].Name != name {
		t.Fatalf("tree %s: %v %v", id.Short(), tree, err)
	}
}

// saveSmallTrees saves n trees of one file each (f0, f1, ...) and flushes
// them: one tree pack.
func saveSmallTrees(t *testing.T, r *Repository, n int) []ID {
	t.Helper()
	var ids []ID
	for i := 0; i < n; i++ {
		id, err := r.SaveTree(context.Background(), &Tree{Nodes: []*Node{{Name: fmt.Sprint("f", i), Type: NodeFile, Size: uint64(i)}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ids
}

// openCachedIndexed opens a new handle on be with the cache at root and
// loads its index.
func openCachedIndexed(t *testing.T, be storage.Backend, root string) *Repository {
	t.Helper()
	x := withCacheAt(t, reopen(t, be), root)
	if err := x.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	return x
}

// readAt keeps a few cached files open; a removed or replaced object is
// never read from the file it was.
func TestCacheReadAtKeepsFilesOpen(t *testing.T) {
	c, err := OpenCache(t.TempDir(), "repo")
	if err != nil {
		t.Fatal(err)
	}
	content := func(i, gen int) []byte { return []byte(fmt.Sprintf("object %d generation %d", i, gen)) }
	name := func(i int) string { return fmt.Sprint("obj", i) }
	for i := 0; i < 6; i++ {
		c.put(cacheTrees, name(i), content(i, 0))
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < 300; k++ {
				i := (g + k) % 6
				want := content(i, 0)
				if got, ok := c.readAt(cacheTrees, name(i), 7, len(want)-7); !ok || !bytes.Equal(got, want[7:]) {
					t.Errorf("object %d: %q %v", i, got, ok)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if n := len(c.fds.files); n > fdTableSize {
		t.Fatalf("%d files kept open", n)
	}
	for i := 0; i < 6; i++ {
		c.readAt(cacheTrees, name(i), 0, 1)
		c.remove(cacheTrees, name(i))
		if _, ok := c.readAt(cacheTrees, name(i), 0, 1); ok {
			t.Fatalf("object %d read after its removal", i)
		}
		c.put(cacheTrees, name(i), content(i, 1))
		c.readAt(cacheTrees, name(i), 0, 1)
		c.put(cacheTrees, name(i), content(i, 2)) // replaced while open
		want := content(i, 2)
		if got, ok := c.readAt(cacheTrees, name(i), 0, len(want)); !ok || !bytes.Equal(got, want) {
			t.Fatalf("object %d after replacement: %q %v", i, got, ok)
		}
	}
	if _, ok := c.readAt(cacheTrees, name(0), 0, 1000); ok {
		t.Fatal("read past the end of a cached object")
	}
}
