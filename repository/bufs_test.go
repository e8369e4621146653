package repository

import "testing"

// Pack buffers are reused, never unmapped: a reader still holding one
// after it was given back (an HTTP client finishing a request body) reads
// zeros or another pack's bytes, and does not crash the process.
func TestPackMemReusesAndNeverUnmaps(t *testing.T) {
	m := &packMem{size: 1 << 20, keep: 1, mapped: map[*byte]bool{}}
	var held [][]byte
	for i := 0; i < 3; i++ {
		b := m.get()
		held = append(held, append(b, make([]byte, 1000)...))
	}
	for _, b := range held {
		m.put(b)
	}
	late := held[2][:1000]
	for i := 0; i < 10; i++ { // reuse: no new mappings
		m.put(append(m.get(), 1, 2, 3))
	}
	if len(m.mapped) != 3 || len(m.free) != 3 {
		t.Fatalf("%d mapped, %d free: want the 3 ever in use at once", len(m.mapped), len(m.free))
	}
	_ = late[999] // the pages may be gone, the mapping is not
	m.put(make([]byte, 10, 1<<20))
	if len(m.free) != 3 {
		t.Fatal("a heap buffer went into the free list")
	}
}
