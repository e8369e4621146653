package repository

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"io"
)

// Chunk sizes. Boundaries depend on content only (content-defined), so an
// insertion early in a file moves one boundary, not all of them.
const (
	MinChunkSize = 512 << 10
	AvgChunkSize = 1 << 20
	MaxChunkSize = 8 << 20
)

// FastCDC masks for normalized chunking around a 1 MiB average: harder to
// cut before the average size, easier after it, which narrows the spread.
const (
	maskHard = (1 << 22) - 1 // 22 bits set
	maskEasy = (1 << 18) - 1 // 18 bits set
)

// Gear is the per-repository table of the gear rolling hash. It is derived
// from the repository's chunker key, so chunk boundaries (and therefore chunk
// sizes) reveal nothing about content to someone without the key.
type Gear [256]uint64

// NewGear derives the gear table from key.
func NewGear(key []byte) *Gear {
	var g Gear
	var ctr [8]byte
	for i := 0; i < 256; i += 4 {
		binary.LittleEndian.PutUint64(ctr[:], uint64(i))
		m := hmac.New(sha256.New, key)
		m.Write([]byte("backupd gear table"))
		m.Write(ctr[:])
		sum := m.Sum(nil)
		for j := 0; j < 4; j++ {
			g[i+j] = binary.LittleEndian.Uint64(sum[8*j:])
		}
	}
	return &g
}

// Chunker splits a stream into content-defined chunks. It is not safe for
// concurrent use; each worker has its own.
type Chunker struct {
	gear *Gear
	r    io.Reader
	buf  []byte
	beg  int // start of unconsumed data in buf
	end  int // end of valid data in buf
	eof  bool
	err  error
}

// NewChunker returns a chunker using gear. Reset it onto a reader before use.
func NewChunker(gear *Gear) *Chunker {
	return &Chunker{gear: gear, buf: make([]byte, 2*MaxChunkSize)}
}

// Reset starts chunking r, keeping the buffer.
func (c *Chunker) Reset(r io.Reader) {
	c.r, c.beg, c.end, c.eof, c.err = r, 0, 0, false, nil
}

// fill reads until the buffer holds at least MaxChunkSize unconsumed bytes or
// the reader is exhausted.
func (c *Chunker) fill() {
	if c.eof || c.end-c.beg >= MaxChunkSize {
		return
	}
	if c.beg > 0 {
		n := copy(c.buf, c.buf[c.beg:c.end])
		c.beg, c.end = 0, n
	}
	for c.end < len(c.buf) && !c.eof {
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		if err == io.EOF {
			c.eof = true
		} else if err != nil {
			c.err = err
			c.eof = true
		}
		if c.end-c.beg >= MaxChunkSize {
			break
		}
	}
}

// Next returns the next chunk, valid until the following call, or io.EOF
// after the last one. A read error is returned as is, and ends the stream.
func (c *Chunker) Next() ([]byte, error) {
	c.fill()
	if c.err != nil {
		return nil, c.err
	}
	avail := c.buf[c.beg:c.end]
	if len(avail) == 0 {
		return nil, io.EOF
	}
	n := cut(c.gear, avail)
	chunk := avail[:n]
	c.beg += n
	return chunk, nil
}

// cut returns the length of the first chunk of data.
func cut(g *Gear, data []byte) int {
	n := len(data)
	if n <= MinChunkSize {
		return n
	}
	if n > MaxChunkSize {
		n = MaxChunkSize
	}
	normal := AvgChunkSize
	if normal > n {
		normal = n
	}
	// The hash depends only on the last 64 bytes (each step shifts one bit
	// out), so hashing may begin 64 bytes before the minimum size.
	var h uint64
	i := MinChunkSize - 64
	for ; i < MinChunkSize; i++ {
		h = (h << 1) + g[data[i]]
	}
	for ; i < normal; i++ {
		h = (h << 1) + g[data[i]]
		if h&(maskHard<<40) == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		h = (h << 1) + g[data[i]]
		if h&(maskEasy<<40) == 0 {
			return i + 1
		}
	}
	return n
}
