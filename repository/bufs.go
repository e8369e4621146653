package repository

import (
	"sync"

	"golang.org/x/sys/unix"
)

// packMem hands out pack buffers mapped outside the Go heap. A backup
// holds a few of them (one per open pack type, one per upload), 17 MiB
// each: on the heap they were half of what a backup of many small files
// kept live, and the garbage collector lets the heap grow to twice what is
// live, so they cost twice their size in RSS. Outside it they cost their
// size, and only the pages written.
//
// A buffer is returned with put once nothing of backupd's refers to it.
// Mappings are never removed: an HTTP client may still read a request
// body after the request returned (the server answered before reading it
// all), and a read of an unmapped buffer would crash the process, where a
// read of a reused one only feeds a request already answered. Free
// buffers beyond keep give their pages back to the system instead (a
// late read of them sees zeros). The number mapped is the most ever in
// use at once.
type packMem struct {
	mu   sync.Mutex
	size int
	free [][]byte
	keep int // free buffers that keep their pages for the next packs
	// mapped: the buffers get mapped, by first byte; only they go back
	// to the free list (a heap buffer is the collector's)
	mapped map[*byte]bool
}

var packBufMem = &packMem{size: TargetPackSize + 1<<20, keep: 4, mapped: map[*byte]bool{}}

func (m *packMem) get() []byte {
	m.mu.Lock()
	if n := len(m.free); n > 0 {
		b := m.free[n-1]
		m.free = m.free[:n-1]
		m.mu.Unlock()
		return b[:0]
	}
	m.mu.Unlock()
	b, err := unix.Mmap(-1, 0, m.size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return make([]byte, 0, m.size) // no mapping: the heap will do
	}
	m.mu.Lock()
	m.mapped[&b[0]] = true
	m.mu.Unlock()
	return b[:0]
}

// put takes back a buffer get gave out (b[:0] of it, or any slice of it
// from its start); anything else is left to the garbage collector.
func (m *packMem) put(b []byte) {
	if cap(b) != m.size {
		return
	}
	b = b[:m.size]
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.mapped[&b[0]] {
		return // a heap buffer (get's fallback, or not get's): the collector has it
	}
	if len(m.free) >= m.keep {
		unix.Madvise(b, unix.MADV_DONTNEED)
	}
	m.free = append(m.free, b)
}
