package repository

import (
	"bytes"
	"math/rand"
	"reflect"
	"sort"
	"testing"
)

// blobMap answers as a Go map would, across merges: updates of entries
// in the sorted arrays and in the recent map, misses, and iteration.
func TestBlobMapIsAMap(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	m, want := newBlobMap(), map[ID]blobLoc{}
	var ids []ID
	for i := 0; i < 60000; i++ {
		var id ID
		if len(ids) > 0 && rng.Intn(5) == 0 {
			id = ids[rng.Intn(len(ids))] // an update
		} else {
			rng.Read(id[:])
			ids = append(ids, id)
		}
		l := blobLoc{pack: uint32(i), offset: rng.Uint32(), length: uint32(i % 977), typ: BlobType(1 + i%2)}
		m.set(id, l)
		want[id] = l
		if i%997 == 0 {
			probe := ids[rng.Intn(len(ids))]
			if got, ok := m.get(probe); !ok || got != want[probe] {
				t.Fatalf("step %d: get = %+v %v, want %+v", i, got, ok, want[probe])
			}
		}
	}
	if m.sorted == 0 || len(m.recent) == 0 {
		t.Fatalf("the test should leave entries both merged (%d) and recent (%d)", m.sorted, len(m.recent))
	}
	if m.len() != len(want) {
		t.Fatalf("len %d, want %d", m.len(), len(want))
	}
	for id, l := range want {
		if got, ok := m.get(id); !ok || got != l {
			t.Fatalf("get %s = %+v %v, want %+v", id.Short(), got, ok, l)
		}
	}
	var missing ID
	rng.Read(missing[:])
	if _, ok := m.get(missing); ok {
		t.Fatal("found an id never set")
	}
	seen := map[ID]bool{}
	m.each(func(id ID, l blobLoc) {
		if seen[id] || want[id] != l {
			t.Fatalf("each: %s twice or wrong (%+v)", id.Short(), l)
		}
		seen[id] = true
	})
	if len(seen) != len(want) {
		t.Fatalf("each saw %d of %d", len(seen), len(want))
	}
}

func BenchmarkBlobMapGet(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	m := newBlobMap()
	ids := make([]ID, 1<<20)
	for i := range ids {
		rng.Read(ids[i][:])
		m.set(ids[i], blobLoc{pack: uint32(i)})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.get(ids[i&(len(ids)-1)])
	}
}

func BenchmarkGoMapGet(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	m := map[ID]blobLoc{}
	ids := make([]ID, 1<<20)
	for i := range ids {
		rng.Read(ids[i][:])
		m[ids[i]] = blobLoc{pack: uint32(i)}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = m[ids[i&(len(ids)-1)]]
	}
}

// Ids that share their first 8 bytes (the searched number) are told
// apart by the rest, merged or not.
func TestBlobMapSharedPrefixes(t *testing.T) {
	m := newBlobMap()
	var ids []ID
	for i := 0; i < 10000; i++ {
		var id ID
		copy(id[:8], []byte{7, 1, 2, 3, 4, 5, byte(i % 3), 0}) // three prefixes in one bucket
		id[20], id[31] = byte(i>>8), byte(i)
		ids = append(ids, id)
		m.set(id, blobLoc{pack: uint32(i)})
	}
	for i, id := range ids {
		if l, ok := m.get(id); !ok || l.pack != uint32(i) {
			t.Fatalf("id %d: %+v %v", i, l, ok)
		}
		id[31] ^= 0xff
		id[20] ^= 0xff
		if _, ok := m.get(id); ok {
			t.Fatalf("found an id never set beside %d", i)
		}
	}
}

// Adding packs in batches (as an index load does) gives the index that
// adding them one by one gives: the first location of a blob kept, later
// copies as extra (within a batch, across batches and against entries
// already loaded), a condemned pack's blobs moved to the next copy.
func TestIndexBatchesAddAsOneByOne(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	var packs []IndexPack
	var seen []ID
	for p := 0; p < 300; p++ {
		ip := IndexPack{ID: randomID(rng)}
		for b := 0; b < 1+rng.Intn(400); b++ {
			id := randomID(rng)
			if len(seen) > 0 && rng.Intn(10) == 0 {
				id = seen[rng.Intn(len(seen))] // a copy of a blob in an earlier pack (or this one); the type goes with the id
			}
			seen = append(seen, id)
			ip.Blobs = append(ip.Blobs, PackEntry{Type: BlobType(1 + id[31]%2), ID: id, Offset: uint32(b * 100), Length: 90, RawLength: uint32(b)})
		}
		if p%50 == 7 {
			packs = append(packs, packs[rng.Intn(len(packs))]) // a pack listed twice
		}
		packs = append(packs, ip)
	}
	one, batched := newIndex(), newIndex()
	// the first packs are loaded, one of them condemned, before the rest
	for _, ix := range []*Index{one, batched} {
		for _, p := range packs[:40] {
			ix.addPackLocked(p)
		}
		ix.condemned = map[uint32]bool{3: true}
	}
	for _, p := range packs[40:] {
		one.addPackLocked(p)
	}
	for start := 40; start < len(packs); start += 37 {
		batched.addPacksLocked(packs[start:min(start+37, len(packs))])
	}
	if one.blobs.len() != batched.blobs.len() || len(one.packs) != len(batched.packs) {
		t.Fatalf("blobs %d/%d, packs %d/%d", one.blobs.len(), batched.blobs.len(), len(one.packs), len(batched.packs))
	}
	one.blobs.each(func(id ID, l blobLoc) {
		if got, ok := batched.blobs.get(id); !ok || got != l {
			t.Fatalf("%s: %+v %v, want %+v", id.Short(), got, ok, l)
		}
	})
	if len(one.extra) == 0 || len(one.extra[3]) == 0 {
		t.Fatal("the test should make extra entries, and move some from the condemned pack")
	}
	for pi, want := range one.extra {
		got := batched.extra[pi]
		sortEntries := func(es []PackEntry) {
			sort.Slice(es, func(i, j int) bool { return bytes.Compare(es[i].ID[:], es[j].ID[:]) < 0 })
		}
		sortEntries(want)
		sortEntries(got)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("pack %d: extra %d entries, want %d", pi, len(got), len(want))
		}
	}
	if len(one.extra) != len(batched.extra) {
		t.Fatalf("extra for %d packs, want %d", len(batched.extra), len(one.extra))
	}
	// each pack's trees, found without walking the index, are those a
	// walk of every location finds (a condemned pack's moved ones too)
	for _, ix := range []*Index{one, batched} {
		ix.preferHealthyLocked()
		// (by id: a tree at two places of one pack is found once)
		walked := map[ID]map[ID]bool{}
		put := func(pi uint32, e PackEntry) {
			if e.Type != TreeBlob {
				return
			}
			p := ix.packs[pi].id
			if walked[p] == nil {
				walked[p] = map[ID]bool{}
			}
			walked[p][e.ID] = true
		}
		ix.blobs.each(func(id ID, l blobLoc) { put(l.pack, idLoc{id, l}.entry()) })
		for pi, es := range ix.extra {
			for _, e := range es {
				put(pi, e)
			}
		}
		for _, p := range ix.packs {
			got := map[ID]bool{}
			for _, l := range ix.treeLocsInPack(p.id) {
				if l.Pack != p.id {
					t.Fatalf("pack %s: a tree of pack %s", p.id.Short(), l.Pack.Short())
				}
				got[l.ID] = true
			}
			if !reflect.DeepEqual(got, walked[p.id]) && len(got)+len(walked[p.id]) > 0 {
				t.Fatalf("pack %s: %d trees, a walk finds %d", p.id.Short(), len(got), len(walked[p.id]))
			}
		}
	}
}

func randomID(rng *rand.Rand) ID {
	var id ID
	rng.Read(id[:])
	return id
}

func BenchmarkIndexLoad(b *testing.B) {
	rng := rand.New(rand.NewSource(3))
	var packs []IndexPack
	for p := 0; p < 1000; p++ {
		ip := IndexPack{ID: randomID(rng)}
		for i := 0; i < 70; i++ {
			ip.Blobs = append(ip.Blobs, PackEntry{ID: randomID(rng), Length: 100})
		}
		packs = append(packs, ip)
	}
	b.Run("one-by-one", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ix := newIndex()
			for _, p := range packs {
				ix.addPackLocked(p)
			}
		}
	})
	b.Run("batched", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			newIndex().addPacksLocked(packs)
		}
	})
}
