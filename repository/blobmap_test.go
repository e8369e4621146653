package repository

import (
	"math/rand"
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
		l := blobLoc{pack: uint32(i), offset: rng.Uint32(), length: uint32(i % 977), typ: BlobType(i % 2)}
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
