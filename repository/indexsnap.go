package repository

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// An index snapshot is the client's in-memory index, written to its local
// cache after a load, with the ids of the index files it holds. A command
// then reads the snapshot and only the index files it lacks, instead of
// decoding every index file and sorting every blob again: a backup of a
// repository of 100,000 blobs spent 40 ms of its 90 loading the index.
//
// A snapshot is used only while every index file it holds is still listed
// (files are never changed, only merged into new ones and deleted; then
// the next load reads everything and writes a new snapshot). It is sealed
// with the index key in chunks (a header, then one per id bucket) whose
// associated data names the snapshot and the chunk's place, so chunks of
// different snapshots cannot be mixed, dropped or reordered: an index
// that says a blob is stored when it is not would make a backup leave it
// out. It is read and written a chunk at a time, so a snapshot of millions
// of blobs never sits in memory beside the index it becomes.
//
// Layout: "BKIS", indexSnapVersion, a 16-byte random snapshot id; then chunks,
// each a 4-byte little-endian length and the sealed chunk.
const (
	indexSnapMagic   = "BKIS"
	indexSnapVersion = 3
	cacheIndexSnap   = "index-snapshot"
	indexSnapName    = "snapshot"
	// snapshots are written when a load read at least this many index
	// files or this share (1/n) of the blobs from index files
	indexSnapFiles = 8
	indexSnapShare = 16
	// and only for an index of at least this many blobs (below it,
	// loading the index files is as quick)
	indexSnapMin = 4096
	// bounds on what a chunk may claim, against a damaged one
	indexSnapMaxChunk = 1 << 30
)

func indexSnapAD(snap []byte, chunk uint32) []byte {
	ad := append([]byte("backupd index snapshot v1"), snap...)
	return binary.LittleEndian.AppendUint32(ad, chunk)
}

const snapEntrySize = 8 + 24 + 6*4 + 1

// saveIndexSnapshot writes ix to the cache (failures only cost speed).
func (r *Repository) saveIndexSnapshot(ix *Index) {
	if r.cache == nil {
		return
	}
	// lookups go on while it is written; additions wait
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.blobs.len() < indexSnapMin {
		return
	}
	_ = r.cache.putStream(cacheIndexSnap, indexSnapName, func(w io.Writer) error {
		return writeIndexSnapshot(w, r.indexAEAD, ix)
	})
}

func writeIndexSnapshot(w io.Writer, aead cipher.AEAD, ix *Index) error {
	snap := randomBytes(16)
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.WriteString(indexSnapMagic)
	bw.WriteByte(indexSnapVersion)
	bw.Write(snap)
	var sealed []byte
	chunk := uint32(0)
	put := func(plain []byte) {
		sealed = seal(aead, sealed[:0], plain, indexSnapAD(snap, chunk))
		chunk++
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(sealed)))
		bw.Write(n[:])
		bw.Write(sealed)
	}
	u32 := binary.LittleEndian.AppendUint32
	// header: files, packs, extra entries, bucket sizes (each pack's
	// trees are not written: they are the trees located in it, in the
	// buckets or in extra, and are found again when first needed)
	h := u32(nil, uint32(len(ix.files)))
	for id := range ix.files {
		h = append(h, id[:]...)
	}
	h = u32(h, uint32(len(ix.packs)))
	for _, p := range ix.packs {
		h = append(h, p.id[:]...)
		h = append(h, byte(len(p.ephPublic)))
		h = append(h, p.ephPublic...)
	}
	h = u32(h, uint32(len(ix.extra)))
	for pi, es := range ix.extra {
		h = u32(u32(h, pi), uint32(len(es)))
		for _, e := range es {
			h = append(h, byte(e.Type))
			h = append(h, e.ID[:]...)
			h = u32(u32(u32(u32(u32(h, e.Offset), e.Length), e.RawLength), e.Inner), e.BundleRaw)
		}
	}
	// the entries not yet merged into the buckets' arrays (written in
	// their places: the arrays are not changed under a read lock)
	var recent [256][]idLoc
	for id, l := range ix.blobs.recent {
		recent[id[0]] = append(recent[id[0]], idLoc{id, l})
	}
	for i := range ix.blobs.buckets {
		slices.SortFunc(recent[i], func(a, b idLoc) int { return bytes.Compare(a.id[:], b.id[:]) })
		h = u32(h, uint32(len(ix.blobs.buckets[i].keys)+len(recent[i])))
	}
	put(h)
	var b []byte
	entry := func(k uint64, rest [24]byte, l blobLoc) {
		b = binary.BigEndian.AppendUint64(b, k)
		b = append(b, rest[:]...)
		b = u32(u32(u32(u32(u32(u32(b, l.pack), l.offset), l.length), l.rawLength), l.inner), l.bundleRaw)
		b = append(b, byte(l.typ))
	}
	for i := range ix.blobs.buckets {
		bk := &ix.blobs.buckets[i]
		b = b[:0]
		rec := recent[i]
		for j, k := range bk.keys {
			for len(rec) > 0 && !splitLess(k, bk.rest[j], rec[0].id) {
				rk, rr := splitID(rec[0].id)
				entry(rk, rr, rec[0].loc)
				rec = rec[1:]
			}
			entry(k, bk.rest[j], bk.locs[j])
		}
		for _, e := range rec {
			rk, rr := splitID(e.id)
			entry(rk, rr, e.loc)
		}
		put(b)
	}
	return bw.Flush()
}

// loadIndexSnapshot reads the cached snapshot into a new index when every
// index file it holds is in listed; nil when there is none that fits (a
// damaged one is removed).
func (r *Repository) loadIndexSnapshot(listed map[ID]bool) *Index {
	if r.cache == nil {
		return nil
	}
	path := r.cache.path(cacheIndexSnap, indexSnapName)
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	ix, err := readIndexSnapshot(bufio.NewReaderSize(f, 1<<16), fi.Size(), r.indexAEAD, listed)
	if err != nil {
		if !errors.Is(err, errSnapshotStale) {
			os.Remove(path)
		}
		return nil
	}
	return ix
}

var errSnapshotStale = errors.New("index snapshot holds an index file no longer listed")

// readIndexSnapshot reads a snapshot of size bytes from rd.
func readIndexSnapshot(rd io.Reader, size int64, aead cipher.AEAD, listed map[ID]bool) (*Index, error) {
	var hdr [4 + 1 + 16]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		return nil, err
	}
	left := size - int64(len(hdr))
	if string(hdr[:4]) != indexSnapMagic || hdr[4] != indexSnapVersion {
		return nil, fmt.Errorf("%w: not an index snapshot", ErrCorrupt)
	}
	snap := hdr[5:]
	chunk := uint32(0)
	var buf []byte
	next := func() ([]byte, error) {
		var n [4]byte
		if _, err := io.ReadFull(rd, n[:]); err != nil {
			return nil, err
		}
		size := binary.LittleEndian.Uint32(n[:])
		if left -= 4; int64(size) > left || size > indexSnapMaxChunk {
			return nil, fmt.Errorf("%w: index snapshot chunk of %d bytes, %d left", ErrCorrupt, size, left)
		}
		left -= int64(size)
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(rd, buf); err != nil {
			return nil, err
		}
		plain, err := openInPlace(aead, buf, indexSnapAD(snap, chunk))
		chunk++
		if err != nil {
			return nil, fmt.Errorf("%w: index snapshot does not authenticate", ErrCorrupt)
		}
		return plain, nil
	}
	h, err := next()
	if err != nil {
		return nil, err
	}
	p := snapParser{b: h}
	ix := newIndex()
	for n := p.u32(); n > 0 && p.ok(); n-- {
		id := p.id()
		if !listed[id] {
			return nil, errSnapshotStale
		}
		ix.files[id] = true
	}
	for n := p.u32(); n > 0 && p.ok(); n-- {
		id := p.id()
		eph := p.bytes(int(p.byte()))
		ix.packByID[id] = uint32(len(ix.packs))
		ix.packs = append(ix.packs, packRef{id: id, ephPublic: append([]byte(nil), eph...)})
	}
	packOK := func(pi uint32) bool { return int(pi) < len(ix.packs) }
	for n := p.u32(); n > 0 && p.ok(); n-- {
		pi, m := p.u32(), p.u32()
		if !packOK(pi) || uint64(m)*(1+32+20) > uint64(len(p.b)) {
			return nil, fmt.Errorf("%w: index snapshot header", ErrCorrupt)
		}
		es := make([]PackEntry, 0, m)
		for ; m > 0; m-- {
			t := BlobType(p.byte())
			id := p.id()
			es = append(es, PackEntry{Type: t, ID: id, Offset: p.u32(), Length: p.u32(), RawLength: p.u32(), Inner: p.u32(), BundleRaw: p.u32()})
		}
		if ix.extra == nil {
			ix.extra = map[uint32][]PackEntry{}
		}
		ix.extra[pi] = es
	}
	var sizes [256]uint32
	for i := range sizes {
		sizes[i] = p.u32()
	}
	if !p.ok() || len(p.b) != 0 {
		return nil, fmt.Errorf("%w: index snapshot header", ErrCorrupt)
	}
	for i := range ix.blobs.buckets {
		b, err := next()
		if err != nil {
			return nil, err
		}
		n := int(sizes[i])
		if len(b) != n*snapEntrySize {
			return nil, fmt.Errorf("%w: index snapshot bucket %d", ErrCorrupt, i)
		}
		bk := &ix.blobs.buckets[i]
		bk.keys, bk.rest, bk.locs = make([]uint64, n), make([][24]byte, n), make([]blobLoc, n)
		for j := 0; j < n; j++ {
			e := b[j*snapEntrySize:]
			bk.keys[j] = binary.BigEndian.Uint64(e)
			copy(bk.rest[j][:], e[8:32])
			u := func(at int) uint32 { return binary.LittleEndian.Uint32(e[at:]) }
			l := blobLoc{pack: u(32), offset: u(36), length: u(40), rawLength: u(44), inner: u(48), bundleRaw: u(52), typ: BlobType(e[56])}
			// in the bucket, after the one before
			k := bk.keys[j]
			inOrder := j == 0 || bk.keys[j-1] < k || (bk.keys[j-1] == k && bytes.Compare(bk.rest[j-1][:], bk.rest[j][:]) < 0)
			if !packOK(l.pack) || !inOrder || byte(k>>56) != byte(i) {
				return nil, fmt.Errorf("%w: index snapshot bucket %d", ErrCorrupt, i)
			}
			bk.locs[j] = l
		}
		ix.blobs.sorted += n
	}
	if _, err := rd.Read(make([]byte, 1)); err != io.EOF {
		return nil, fmt.Errorf("%w: index snapshot: trailing bytes", ErrCorrupt)
	}
	// each pack's trees are found from the blobs' types when first asked
	// for (building them here cost a third of the read)
	ix.treesPartial = true
	return ix, nil
}

// snapParser reads a snapshot header; a read past its end sets bad.
type snapParser struct {
	b   []byte
	bad bool
}

func (p *snapParser) ok() bool { return !p.bad }

func (p *snapParser) bytes(n int) []byte {
	if p.bad || n > len(p.b) {
		p.bad = true
		return make([]byte, n)
	}
	v := p.b[:n]
	p.b = p.b[n:]
	return v
}

func (p *snapParser) u32() uint32 { return binary.LittleEndian.Uint32(p.bytes(4)) }
func (p *snapParser) byte() byte  { return p.bytes(1)[0] }
func (p *snapParser) id() (id ID) { copy(id[:], p.bytes(32)); return id }

// putStream stores an object written by fill (aside, then renamed).
func (c *Cache) putStream(kind, name string, fill func(io.Writer) error) error {
	if c == nil || !validCacheName(name) {
		return nil
	}
	f, err := os.CreateTemp(filepath.Join(c.dir, kind), ".tmp-*")
	if err != nil {
		return err
	}
	err = fill(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), c.path(kind, name))
		c.fds.forget(c.path(kind, name))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
