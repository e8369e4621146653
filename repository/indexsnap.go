package repository

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// An index snapshot is the client's in-memory index, written to its local
// cache after a load, with the ids of the index files it holds. A command
// then reads the snapshot and only the index files it lacks, instead of
// decoding every index file and sorting every blob again: a backup of a
// repository of 100,000 blobs spent 40 ms of its 90 loading the index.
//
// A snapshot is used only while every index file it holds is still listed
// (files are never changed, only merged into new ones and deleted; then
// the next load reads everything and writes a new snapshot).
//
// It is opened, not read: opening reads its header (the files, the packs,
// and where each bucket of the blob map is), and each bucket is read and
// decoded when a lookup first needs it (blobmap.go). A backup of a few
// changed files looks up a few hundred blobs: reading the whole snapshot
// for them took 8 ms of CPU a backup at 70,000 blobs, on a machine where
// the 10th backup took 55 ms (bench case D); opened, it takes 0.4 ms and
// the buckets those lookups decode 1.3 ms, on one where the 10th takes 18.
//
// Each bucket is sealed on its own with the index key, its associated data
// naming its place; the header, sealed with the snapshot's random id,
// holds each bucket's entry count, length and tag, so buckets of different
// snapshots cannot be mixed, dropped or moved: an index that says a blob
// is stored when it is not would make a backup leave it out. A bucket
// that has not changed since it was read is copied into the next snapshot
// as it is sealed (its tag is kept in the new header), so writing a
// snapshot after a compaction merged files copies bytes instead of
// sealing every entry again.
//
// Layout: "BKIS", indexSnapVersion, a 16-byte random snapshot id; the
// sealed buckets, in order (empty ones are left out); the sealed header;
// its length, 4 bytes little-endian.
const (
	indexSnapMagic   = "BKIS"
	indexSnapVersion = 4
	cacheIndexSnap   = "index-snapshot"
	indexSnapName    = "snapshot"
	// snapshots are written when a load read at least this many index
	// files or this share (1/n) of the blobs from index files
	indexSnapFiles = 8
	indexSnapShare = 16
	// and only for an index of at least this many blobs (below it,
	// loading the index files is as quick)
	indexSnapMin = 4096
	// bounds on what a header may claim, against a damaged one
	indexSnapMaxHeader = 1 << 30
	indexSnapPrefix    = 4 + 1 + 16
	tagSize            = 16
)

func indexSnapHeaderAD(snap []byte) []byte {
	return append([]byte("backupd index snapshot v2 header"), snap...)
}

func indexSnapBucketAD(bucket int) []byte {
	return binary.LittleEndian.AppendUint32([]byte("backupd index snapshot v2 bucket"), uint32(bucket))
}

const snapEntrySize = 8 + 24 + 6*4 + 1

// saveIndexSnapshot writes ix to the cache (failures only cost speed): as
// a delta of the snapshot it was read from when one can describe it
// (indexdelta.go), else whole.
func (r *Repository) saveIndexSnapshot(ix *Index) {
	if r.cache == nil {
		return
	}
	// lookups go on while it is written; additions wait
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.blobs.len() < indexSnapMin || ix.blobs.damage() != nil {
		return
	}
	if base := r.deltaBase(ix); base != nil {
		_ = r.cache.putStream(cacheIndexSnap, indexDeltaName, func(w io.Writer) error {
			return writeIndexDelta(w, r.indexAEAD, ix, base)
		})
		return
	}
	err := r.cache.putStream(cacheIndexSnap, indexSnapName, func(w io.Writer) error {
		return writeIndexSnapshot(w, r.indexAEAD, ix)
	})
	if err == nil {
		// of the snapshot written over (it names that one's id)
		r.cache.remove(cacheIndexSnap, indexDeltaName)
	}
}

// writeIndexSnapshot writes ix, read-locked, to w.
func writeIndexSnapshot(w io.Writer, aead cipher.AEAD, ix *Index) error {
	if err := ix.blobs.damage(); err != nil {
		return err
	}
	snap := randomBytes(16)
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.WriteString(indexSnapMagic)
	bw.WriteByte(indexSnapVersion)
	bw.Write(snap)
	u32 := binary.LittleEndian.AppendUint32
	// the entries not yet merged into the buckets' arrays (written in
	// their places: the arrays are not changed under a read lock)
	recent := map[int][]idLoc{}
	for id, l := range ix.blobs.recent {
		recent[bucketOf(id)] = append(recent[bucketOf(id)], idLoc{id, l})
	}
	// each bucket's entry count, sealed length and tag, for the header
	table := make([]byte, 0, numBuckets*(8+tagSize))
	var b, sealed []byte
	entry := func(k uint64, rest [24]byte, l blobLoc) {
		b = binary.BigEndian.AppendUint64(b, k)
		b = append(b, rest[:]...)
		b = u32(u32(u32(u32(u32(u32(b, l.pack), l.offset), l.length), l.rawLength), l.inner), l.bundleRaw)
		b = append(b, byte(l.typ))
	}
	// a bucket unchanged since it was read is copied as it is sealed,
	// with the neighbours it was stored beside in one read (its tag,
	// kept in the header, still says whether the bytes are the ones
	// sealed: a copy of a bucket damaged on disk does not decode either)
	clean := func(i int) *sealedBucket {
		if len(recent[i]) == 0 {
			return ix.blobs.buckets[i].sealed
		}
		return nil
	}
	empty := func(i int) bool {
		bk := &ix.blobs.buckets[i]
		return bk.sealed == nil && len(bk.keys) == 0 && len(recent[i]) == 0
	}
	noTag := make([]byte, tagSize)
	for i := 0; i < numBuckets; {
		if s := clean(i); s != nil {
			end := s.off
			for ; i < numBuckets; i++ {
				if c := clean(i); c != nil && c.src == s.src && c.off == end {
					table = append(u32(u32(table, c.n), c.size), c.tag[:]...)
					end += int64(c.size)
				} else if empty(i) {
					table = append(u32(u32(table, 0), 0), noTag...)
				} else {
					break
				}
			}
			if n, err := io.Copy(bw, io.NewSectionReader(s.src.rd, s.off, end-s.off)); err != nil || n != end-s.off {
				return fmt.Errorf("copying the index snapshot's buckets: %d of %d bytes: %v", n, end-s.off, err)
			}
			continue
		}
		bk := &ix.blobs.buckets[i]
		rec := recent[i]
		bk.load()
		if err := ix.blobs.damage(); err != nil {
			return err
		}
		n := len(bk.keys) + len(rec)
		if n == 0 {
			table = append(u32(u32(table, 0), 0), noTag...)
			i++
			continue
		}
		slices.SortFunc(rec, func(a, b idLoc) int { return bytes.Compare(a.id[:], b.id[:]) })
		b = b[:0]
		for j, k := range bk.keys {
			shadowed := false // a recent entry of the same blob is the one looked up
			for len(rec) > 0 && !splitLess(k, bk.rest[j], rec[0].id) {
				rk, rr := splitID(rec[0].id)
				entry(rk, rr, rec[0].loc)
				shadowed = rk == k && rr == bk.rest[j]
				rec = rec[1:]
			}
			if !shadowed {
				entry(k, bk.rest[j], bk.locs[j])
			}
		}
		for _, e := range rec {
			rk, rr := splitID(e.id)
			entry(rk, rr, e.loc)
		}
		sealed = seal(aead, sealed[:0], b, indexSnapBucketAD(i))
		table = append(u32(u32(table, uint32(len(b)/snapEntrySize)), uint32(len(sealed))), sealed[len(sealed)-tagSize:]...)
		bw.Write(sealed)
		i++
	}
	// header: files, packs, extra entries, the bucket table (each pack's
	// trees are not written: they are the trees located in it, in the
	// buckets or in extra, and are found again when first needed)
	h := appendFileIDs(nil, ix.files)
	h = appendPackRefs(h, ix.packs)
	h = appendExtra(h, ix.extra)
	h = append(h, table...)
	// a bucket another reader found damaged meanwhile is not published
	if err := ix.blobs.damage(); err != nil {
		return err
	}
	sealed = seal(aead, sealed[:0], h, indexSnapHeaderAD(snap))
	bw.Write(sealed)
	bw.Write(u32(nil, uint32(len(sealed))))
	return bw.Flush()
}

// loadIndexSnapshot opens the cached snapshot as a new index when every
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
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil
	}
	// Mapped, read while the index is used: each bucket is read when
	// first used, 300 of them in a backup (a read call each took 0.8 of
	// the 1.3 ms they cost, bench case D). A file written over it since
	// is another file; one damaged since is removed when a bucket does
	// not decode; one cut short under it faults, and reads as damaged.
	var rd io.ReaderAt = f
	var mem []byte
	if fi.Size() > 0 && fi.Size() <= math.MaxInt {
		if m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED); err == nil {
			mem, rd = m, faultGuard{bytes.NewReader(m)}
		}
	}
	delta, _ := os.ReadFile(r.cache.path(cacheIndexSnap, indexDeltaName))
	ix, err := openIndexSnapshot(rd, fi.Size(), r.indexAEAD, listed, delta)
	if err != nil {
		if mem != nil {
			unix.Munmap(mem)
		}
		f.Close()
		if !errors.Is(err, errSnapshotStale) {
			os.Remove(path)
		}
		return nil
	}
	src := ix.blobs.src
	src.info, src.path = fi, path
	if mem != nil {
		f.Close()
		runtime.AddCleanup(src, func(m []byte) { unix.Munmap(m) }, mem)
	} else {
		src.file = f // closed when unreachable
	}
	return ix
}

// faultGuard reads from a mapped file, a fault (the file cut short under
// the mapping) returned as an error instead of stopping the process.
type faultGuard struct{ rd io.ReaderAt }

func (g faultGuard) ReadAt(p []byte, off int64) (n int, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if e := recover(); e != nil {
			n, err = 0, fmt.Errorf("%w: reading the index snapshot: %v", ErrCorrupt, e)
		}
	}()
	return g.rd.ReadAt(p, off)
}

var errSnapshotStale = errors.New("index snapshot holds an index file no longer listed")

// snapFile is an opened snapshot whose buckets are read when first used.
type snapFile struct {
	id    [16]byte // its random id (a delta names it)
	rd    io.ReaderAt
	aead  cipher.AEAD
	packs uint32 // packs the snapshot holds (entries name no other)
	// info and path: the cache file rd reads, removed when a bucket
	// does not decode (nil for a snapshot read from memory); file: that
	// file, when it is read and not mapped
	info os.FileInfo
	path string
	file *os.File
	err  atomic.Pointer[error]
}

// sealedBucket is where a bucket's sealed entries are in a snapshot.
type sealedBucket struct {
	once   sync.Once
	src    *snapFile
	bucket int
	off    int64
	size   uint32
	n      uint32
	tag    [tagSize]byte
}

// read returns the bucket's sealed bytes, checked against the tag the
// header gives.
func (f *snapFile) read(s *sealedBucket) ([]byte, error) {
	buf := make([]byte, s.size)
	if _, err := f.rd.ReadAt(buf, s.off); err != nil {
		return nil, fmt.Errorf("%w: index snapshot bucket %d: %v", ErrCorrupt, s.bucket, err)
	}
	if !bytes.Equal(buf[len(buf)-tagSize:], s.tag[:]) {
		return nil, fmt.Errorf("%w: index snapshot bucket %d is not the one its header names", ErrCorrupt, s.bucket)
	}
	return buf, nil
}

// decode fills b with the entries s holds; when they do not read or
// decode, b is left empty and the snapshot marked damaged (see damage).
func (f *snapFile) decode(s *sealedBucket, b *blobBucket) {
	keys, rest, locs, err := f.decodeBucket(s)
	if err != nil {
		f.fail(err)
		return
	}
	b.keys, b.rest, b.locs = keys, rest, locs
}

func (f *snapFile) decodeBucket(s *sealedBucket) ([]uint64, [][24]byte, []blobLoc, error) {
	buf, err := f.read(s)
	if err != nil {
		return nil, nil, nil, err
	}
	plain, err := openInPlace(f.aead, buf, indexSnapBucketAD(s.bucket))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: index snapshot bucket %d does not authenticate", ErrCorrupt, s.bucket)
	}
	n := int(s.n)
	if len(plain) != n*snapEntrySize {
		return nil, nil, nil, fmt.Errorf("%w: index snapshot bucket %d", ErrCorrupt, s.bucket)
	}
	keys, rest, locs := make([]uint64, n), make([][24]byte, n), make([]blobLoc, n)
	for j := 0; j < n; j++ {
		e := plain[j*snapEntrySize:]
		keys[j] = binary.BigEndian.Uint64(e)
		copy(rest[j][:], e[8:32])
		u := func(at int) uint32 { return binary.LittleEndian.Uint32(e[at:]) }
		l := blobLoc{pack: u(32), offset: u(36), length: u(40), rawLength: u(44), inner: u(48), bundleRaw: u(52), typ: BlobType(e[56])}
		// in the bucket, after the one before
		k := keys[j]
		inOrder := j == 0 || keys[j-1] < k || (keys[j-1] == k && bytes.Compare(rest[j-1][:], rest[j][:]) < 0)
		if l.pack >= f.packs || !inOrder || int(k>>(64-bucketBits)) != s.bucket {
			return nil, nil, nil, fmt.Errorf("%w: index snapshot bucket %d", ErrCorrupt, s.bucket)
		}
		locs[j] = l
	}
	return keys, rest, locs, nil
}

// fail records the first damage found, and removes the cache file when it
// is still the one read, so that the next load reads the index files.
func (f *snapFile) fail(err error) {
	if !f.err.CompareAndSwap(nil, &err) || f.info == nil {
		return
	}
	if b, e2 := os.Stat(f.path); e2 == nil && os.SameFile(f.info, b) {
		os.Remove(f.path)
	}
}

// damage is the error a bucket of the map's snapshot failed with (nil:
// none did, or there is no snapshot).
func (m *blobMap) damage() error {
	if m.src == nil {
		return nil
	}
	if e := m.src.err.Load(); e != nil {
		return *e
	}
	return nil
}

// readIndexSnapshot opens a snapshot of size bytes read from rd: its
// header is read and checked now, each bucket when first used.
func readIndexSnapshot(rd io.ReaderAt, size int64, aead cipher.AEAD, listed map[ID]bool) (*Index, error) {
	return openIndexSnapshot(rd, size, aead, listed, nil)
}

// openIndexSnapshot is readIndexSnapshot with the delta file's bytes (nil:
// none), applied when it is of this snapshot (indexdelta.go).
func openIndexSnapshot(rd io.ReaderAt, size int64, aead cipher.AEAD, listed map[ID]bool, delta []byte) (*Index, error) {
	var pre [indexSnapPrefix]byte
	if size < indexSnapPrefix+4 {
		return nil, fmt.Errorf("%w: index snapshot of %d bytes", ErrCorrupt, size)
	}
	if _, err := rd.ReadAt(pre[:], 0); err != nil {
		return nil, err
	}
	if string(pre[:4]) != indexSnapMagic || pre[4] != indexSnapVersion {
		return nil, fmt.Errorf("%w: not an index snapshot", ErrCorrupt)
	}
	snap := pre[5:]
	var n [4]byte
	if _, err := rd.ReadAt(n[:], size-4); err != nil {
		return nil, err
	}
	hsize := int64(binary.LittleEndian.Uint32(n[:]))
	if hsize > size-indexSnapPrefix-4 || hsize > indexSnapMaxHeader {
		return nil, fmt.Errorf("%w: index snapshot header of %d bytes in %d", ErrCorrupt, hsize, size)
	}
	hoff := size - 4 - hsize
	sealed := make([]byte, hsize)
	if _, err := rd.ReadAt(sealed, hoff); err != nil {
		return nil, err
	}
	h, err := openInPlace(aead, sealed, indexSnapHeaderAD(snap))
	if err != nil {
		return nil, fmt.Errorf("%w: index snapshot does not authenticate", ErrCorrupt)
	}
	p := snapParser{b: h}
	ix := newIndex()
	files := p.fileIDs()
	if err := p.packRefs(ix); err != nil {
		return nil, err
	}
	var err2 error
	if ix.extra, err2 = p.extra(len(ix.packs)); err2 != nil {
		return nil, err2
	}
	src := &snapFile{rd: rd, aead: aead, packs: uint32(len(ix.packs))}
	copy(src.id[:], snap)
	ix.blobs.src = src
	off := int64(indexSnapPrefix)
	over := uint64(aead.NonceSize() + aead.Overhead()) // a sealed bucket's bytes beyond its entries
	// one allocation for them all (one each was a tenth of the open)
	sealedAll := make([]sealedBucket, len(ix.blobs.buckets))
	for i := range ix.blobs.buckets {
		count, length := p.u32(), p.u32()
		tag := p.bytes(tagSize)
		if !p.ok() {
			break
		}
		empty := count == 0
		if empty != (length == 0) || (!empty && (int64(length) > hoff-off || uint64(count)*snapEntrySize+over != uint64(length))) {
			return nil, fmt.Errorf("%w: index snapshot bucket %d", ErrCorrupt, i)
		}
		if empty {
			continue
		}
		s := &sealedAll[i]
		s.src, s.bucket, s.off, s.size, s.n = src, i, off, length, count
		copy(s.tag[:], tag)
		ix.blobs.buckets[i].sealed = s
		ix.blobs.sorted += int(count)
		off += int64(length)
	}
	if !p.ok() || len(p.b) != 0 || off != hoff {
		return nil, fmt.Errorf("%w: index snapshot header", ErrCorrupt)
	}
	// The files it holds: a delta's, written since, when they are all
	// still listed; else its own, when they are.
	d := decodeIndexDelta(aead, delta, src, ix)
	if d != nil && !allListed(d.files, listed) {
		d = nil
	}
	if d != nil {
		files = d.files
	} else if !allListed(files, listed) {
		return nil, errSnapshotStale
	}
	for _, id := range files {
		ix.files[id] = true
	}
	if d != nil {
		// sized once: growing them entry by entry was most of the apply
		ix.blobs.overlay = make(map[ID]overlayEntry, len(d.entries)+64)
		if len(ix.blobs.recent) == 0 {
			ix.blobs.recent = make(map[ID]blobLoc, len(d.entries)+64)
		}
		d.apply(ix)
	} else {
		ix.blobs.overlay = map[ID]overlayEntry{}
	}
	// each pack's trees are found from the blobs' types when first asked
	// for (building them here cost a third of the read)
	ix.treesPartial = true
	return ix, nil
}

// decodeAll decodes every bucket the index has not yet: what a command
// that reads the whole index needs, or the damage a bucket shows.
func (ix *Index) decodeAll() error {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	for i := range ix.blobs.buckets {
		ix.blobs.buckets[i].load()
	}
	return ix.blobs.damage()
}

// wholePacks is Packs for a command that acts on the whole index (a
// collection rewrites it from what this returns): an error, not fewer
// entries, when a bucket of its snapshot does not decode.
func (ix *Index) wholePacks() ([]IndexPack, error) {
	// under one lock: an index swapped in between a check and the
	// listing would be listed unchecked (review)
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	packs := ix.packsLocked()
	if err := ix.blobs.damage(); err != nil {
		return nil, err
	}
	return packs, nil
}

// damage: see blobMap.damage.
func (ix *Index) damage() error {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.blobs.damage()
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
