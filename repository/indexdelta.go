package repository

import (
	"bufio"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// An index delta is what changed in a client's index since the snapshot
// it was read from (indexsnap.go): the index files it now holds, the packs
// and blob entries added, each entry changed, and the extra entries. It
// is written instead of a new snapshot while its entries are few
// (overlayMax), and read with the snapshot it names.
//
// A snapshot was written again whenever the index files changed: after
// each merge of small index files (every four backups or so), and when a
// load had read eight new files. Each copied the whole snapshot (5.9 MB
// and 4 to 14 ms, at 10,000 backups of bench case D, where a backup takes
// 35): 3 ms a backup. A delta is the few kilobytes that changed.
//
// A delta holds the files and entries of one index, as a snapshot does:
// read, the snapshot's entries with the delta's make exactly what those
// files say, or, when they are not all listed any more, the delta is not
// used (the snapshot alone is then used when its own files are all
// listed, as before). Entries leave an index only when it is read again
// from scratch, after a file it held is gone; a map read so holds no
// snapshot, so its next snapshot is written whole.
//
// Layout: "BKID", indexDeltaVersion, the 16-byte id of the snapshot it
// changes, then sealed with the index key (its associated data naming
// that id): the files; the snapshot's pack count and the packs added;
// the extra entries (all of them, as a snapshot's header holds them); the
// entries, each with its location and whether the snapshot held it.
const (
	indexDeltaMagic   = "BKID"
	indexDeltaVersion = 1
	indexDeltaName    = "delta"
	deltaEntrySize    = 32 + 6*4 + 1 + 1
)

func indexDeltaAD(snap []byte) []byte {
	return append([]byte("backupd index snapshot delta v1"), snap...)
}

// indexDelta is a decoded delta, checked against its snapshot.
type indexDelta struct {
	files   []ID
	packs   []packRef
	extra   map[uint32][]PackEntry
	entries []deltaEntry
}

type deltaEntry struct {
	id ID
	overlayEntry
}

// deltaBase is the snapshot file ix's map was read from, when a delta of
// it can describe ix: the map's overlay has not overflowed, and the file
// is still the cache's snapshot (another process may have written a new
// one since). Called with ix read-locked.
func (r *Repository) deltaBase(ix *Index) *snapFile {
	src := ix.blobs.src
	if src == nil || ix.blobs.overlay == nil || src.info == nil || ix.blobs.damage() != nil {
		return nil
	}
	fi, err := os.Stat(r.cache.path(cacheIndexSnap, indexSnapName))
	if err != nil || !os.SameFile(fi, src.info) {
		return nil
	}
	return src
}

// writeIndexDelta writes ix, read-locked, as a delta of base to w.
func writeIndexDelta(w io.Writer, aead cipher.AEAD, ix *Index, base *snapFile) error {
	u32 := binary.LittleEndian.AppendUint32
	b := appendFileIDs(nil, ix.files)
	b = u32(b, base.packs)
	b = appendPackRefs(b, ix.packs[base.packs:])
	b = appendExtra(b, ix.extra)
	b = u32(b, uint32(len(ix.blobs.overlay)))
	for id, e := range ix.blobs.overlay {
		l := e.loc
		b = append(b, id[:]...)
		b = u32(u32(u32(u32(u32(u32(b, l.pack), l.offset), l.length), l.rawLength), l.inner), l.bundleRaw)
		inBase := byte(0)
		if e.inBase {
			inBase = 1
		}
		b = append(b, byte(l.typ), inBase)
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(indexDeltaMagic)
	bw.WriteByte(indexDeltaVersion)
	bw.Write(base.id[:])
	bw.Write(seal(aead, nil, b, indexDeltaAD(base.id[:])))
	return bw.Flush()
}

// decodeIndexDelta returns the delta raw holds when it is of snapshot
// src, whose header was read into ix (its packs and extra entries), and
// authenticates and fits it; nil otherwise (a delta that does not is
// not used, and is written over by the next one).
func decodeIndexDelta(aead cipher.AEAD, raw []byte, src *snapFile, ix *Index) *indexDelta {
	pre := len(indexDeltaMagic) + 1 + len(src.id)
	if len(raw) < pre || string(raw[:4]) != indexDeltaMagic || raw[4] != indexDeltaVersion || string(raw[5:pre]) != string(src.id[:]) {
		return nil
	}
	body, err := open(aead, nil, raw[pre:], indexDeltaAD(src.id[:]))
	if err != nil {
		return nil
	}
	p := snapParser{b: body}
	d := &indexDelta{files: p.fileIDs()}
	if p.u32() != src.packs || !p.ok() {
		return nil
	}
	added := newIndex()
	if p.packRefs(added) != nil || len(added.packByID) != len(added.packs) {
		return nil // (a pack named twice)
	}
	for _, pr := range added.packs {
		if _, dup := ix.packByID[pr.id]; dup {
			return nil
		}
	}
	d.packs = added.packs
	total := len(ix.packs) + len(d.packs)
	if d.extra, err = p.extra(total); err != nil {
		return nil
	}
	n := p.u32()
	if !p.ok() || n > overlayMax || uint64(n)*deltaEntrySize != uint64(len(p.b)) {
		return nil
	}
	d.entries = make([]deltaEntry, n)
	for i := range d.entries {
		e := &d.entries[i]
		e.id = p.id()
		e.loc = blobLoc{pack: p.u32(), offset: p.u32(), length: p.u32(), rawLength: p.u32(), inner: p.u32(), bundleRaw: p.u32(), typ: BlobType(p.byte())}
		e.inBase = p.byte() == 1
		if int(e.loc.pack) >= total {
			return nil
		}
	}
	if !p.ok() || len(p.b) != 0 {
		return nil
	}
	return d
}

// apply adds the delta to ix, read from its snapshot (decodeIndexDelta
// checked that it fits).
func (d *indexDelta) apply(ix *Index) {
	for _, pr := range d.packs {
		ix.packByID[pr.id] = uint32(len(ix.packs))
		ix.packs = append(ix.packs, pr)
	}
	ix.extra = d.extra
	m := ix.blobs
	for _, e := range d.entries {
		if e.inBase {
			m.set(e.id, e.loc) // its bucket is decoded and changed
			continue
		}
		// added since the snapshot: a recent entry, its bucket untouched
		m.recent[e.id] = e.loc
		m.overlay[e.id] = e.overlayEntry
	}
}

func allListed(files []ID, listed map[ID]bool) bool {
	for _, id := range files {
		if !listed[id] {
			return false
		}
	}
	return true
}

// appendFileIDs, appendPackRefs and appendExtra write the parts of a
// snapshot header (and of a delta) that snapParser's fileIDs, packRefs and
// extra read.
func appendFileIDs(b []byte, files map[ID]bool) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(files)))
	for id := range files {
		b = append(b, id[:]...)
	}
	return b
}

func appendPackRefs(b []byte, packs []packRef) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(packs)))
	for _, p := range packs {
		b = append(b, p.id[:]...)
		b = append(b, byte(len(p.ephPublic)))
		b = append(b, p.ephPublic...)
	}
	return b
}

func appendExtra(b []byte, extra map[uint32][]PackEntry) []byte {
	u32 := binary.LittleEndian.AppendUint32
	b = u32(b, uint32(len(extra)))
	for pi, es := range extra {
		b = u32(u32(b, pi), uint32(len(es)))
		for _, e := range es {
			b = append(b, byte(e.Type))
			b = append(b, e.ID[:]...)
			b = u32(u32(u32(u32(u32(b, e.Offset), e.Length), e.RawLength), e.Inner), e.BundleRaw)
		}
	}
	return b
}

func (p *snapParser) fileIDs() []ID {
	var ids []ID
	for n := p.u32(); n > 0 && p.ok(); n-- {
		ids = append(ids, p.id())
	}
	return ids
}

// packRefs appends the packs read to ix's.
func (p *snapParser) packRefs(ix *Index) error {
	for n := p.u32(); n > 0 && p.ok(); n-- {
		id := p.id()
		eph := p.bytes(int(p.byte()))
		ix.packByID[id] = uint32(len(ix.packs))
		ix.packs = append(ix.packs, packRef{id: id, ephPublic: append([]byte(nil), eph...)})
	}
	if !p.ok() {
		return fmt.Errorf("%w: index snapshot header", ErrCorrupt)
	}
	return nil
}

// extra reads extra entries of packs below npacks.
func (p *snapParser) extra(npacks int) (map[uint32][]PackEntry, error) {
	var extra map[uint32][]PackEntry
	for n := p.u32(); n > 0 && p.ok(); n-- {
		pi, m := p.u32(), p.u32()
		if int(pi) >= npacks || uint64(m)*(1+32+20) > uint64(len(p.b)) {
			return nil, fmt.Errorf("%w: index snapshot header", ErrCorrupt)
		}
		es := make([]PackEntry, 0, m)
		for ; m > 0; m-- {
			t := BlobType(p.byte())
			id := p.id()
			es = append(es, PackEntry{Type: t, ID: id, Offset: p.u32(), Length: p.u32(), RawLength: p.u32(), Inner: p.u32(), BundleRaw: p.u32()})
		}
		if extra == nil {
			extra = map[uint32][]PackEntry{}
		}
		extra[pi] = es
	}
	if !p.ok() {
		return nil, fmt.Errorf("%w: index snapshot header", ErrCorrupt)
	}
	return extra, nil
}
