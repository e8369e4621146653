package repository

import (
	"bytes"
	"cmp"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Index file layout: magic "BKIX", version(1), then seal(index key,
// zstd(body), ad). The body lists the index files this one supersedes
// (so a crash during compaction never loses entries) and, per pack, its id,
// ephemeral public key and entries in pack-header form.
// Version 2 is written only for files that list a bundle member (whose
// entries are longer, see pack.go).
const (
	indexMagic   = "BKIX"
	indexVersion = 1
	// indexVersionBundles: entries in the pack header's form with members
	indexVersionBundles = 2
	// maxIndexBody bounds a decoded index file.
	maxIndexBody = 1 << 30
)

func indexAD() []byte { return []byte("backupd index v1") }

// IndexPack is one pack's entry in an index file.
type IndexPack struct {
	ID        ID
	EphPublic []byte
	Blobs     []PackEntry
}

// IndexFile is the decoded content of one file under index/.
type IndexFile struct {
	Supersedes []ID
	Packs      []IndexPack
}

func encodeIndexFile(aead cipher.AEAD, f *IndexFile) []byte {
	body := binary.LittleEndian.AppendUint32(nil, uint32(len(f.Supersedes)))
	for _, id := range f.Supersedes {
		body = append(body, id[:]...)
	}
	body = binary.LittleEndian.AppendUint32(body, uint32(len(f.Packs)))
	for _, p := range f.Packs {
		body = append(body, p.ID[:]...)
		body = append(body, p.EphPublic...)
		body = binary.LittleEndian.AppendUint32(body, uint32(len(p.Blobs)))
		body = append(body, encodePackHeader(p.Blobs)...)
	}
	z := indexEncoder().EncodeAll(body, nil)
	v := byte(indexVersion)
	for _, p := range f.Packs {
		if hasMembers(p.Blobs) {
			v = indexVersionBundles
			break
		}
	}
	out := append([]byte(indexMagic), v)
	return seal(aead, out, z, indexAD())
}

// indexEncoder compresses index files: one at a time, with a small
// window. Their bodies are mostly random ids that no window helps with,
// and the blob encoder's history buffers (tens of MB, one per core) were
// the largest allocation of a backup of many small files, made at its end
// only to write the index.
var indexEncoder = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false),
		zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(err)
	}
	return e
})

var indexDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxIndexBody), zstd.WithDecoderConcurrency(0))
	if err != nil {
		panic(err)
	}
	return d
})

// DecodeIndexFile authenticates and parses an index file.
func decodeIndexFile(aead cipher.AEAD, raw []byte) (*IndexFile, error) {
	if len(raw) < 5 || string(raw[:4]) != indexMagic {
		return nil, fmt.Errorf("%w: not an index file", ErrCorrupt)
	}
	if raw[4] != indexVersion && raw[4] != indexVersionBundles {
		return nil, fmt.Errorf("index format version %d is not supported by this backupd (knows %d and %d)", raw[4], indexVersion, indexVersionBundles)
	}
	z, err := open(aead, nil, raw[5:], indexAD())
	if err != nil {
		return nil, fmt.Errorf("%w: index file does not authenticate (wrong key or damaged)", ErrCorrupt)
	}
	body, err := decodeIndexBody(z)
	if err != nil {
		return nil, fmt.Errorf("%w: index body: %v", ErrCorrupt, err)
	}
	return parseIndexBody(body, raw[4] == indexVersionBundles)
}

// decodeIndexBody decompresses an index body, refusing one that would
// decode to more than an index file of its size holds (its ids do not
// compress: a body of a few kilobytes that unfolds into a gigabyte was
// written to exhaust the reader's memory, as an enrolled host could).
// The frame must declare its size, unless it is tiny.
func decodeIndexBody(z []byte) ([]byte, error) {
	bound := min(int64(len(z))*64+64<<10, maxIndexBody)
	var h zstd.Header
	if err := h.Decode(z); err != nil {
		return nil, err
	}
	size := bound
	switch {
	case h.HasFCS && h.FrameContentSize > uint64(bound):
		return nil, fmt.Errorf("it declares %d bytes decoded from %d: more than an index file holds", h.FrameContentSize, len(z))
	case h.HasFCS:
		size = int64(h.FrameContentSize)
	case len(z) > 4<<10:
		return nil, fmt.Errorf("a %d-byte body that does not declare its decoded size", len(z))
	}
	return indexBodyDecoder().DecodeAll(z, make([]byte, 0, size))
}

// indexBodyDecoder decodes into the capacity it is given, never beyond.
var indexBodyDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxIndexBody), zstd.WithDecoderConcurrency(0), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		panic(err)
	}
	return d
})

// parseIndexBody parses a decoded index body; members: its format can
// list bundle members.
func parseIndexBody(body []byte, members bool) (*IndexFile, error) {
	bad := func(what string) (*IndexFile, error) {
		return nil, fmt.Errorf("%w: index body: %s", ErrCorrupt, what)
	}
	u32 := func() (uint32, bool) {
		if len(body) < 4 {
			return 0, false
		}
		v := binary.LittleEndian.Uint32(body)
		body = body[4:]
		return v, true
	}
	f := &IndexFile{}
	n, ok := u32()
	if !ok || uint64(n)*32 > uint64(len(body)) {
		return bad("supersedes list truncated")
	}
	for i := uint32(0); i < n; i++ {
		var id ID
		copy(id[:], body[:32])
		body = body[32:]
		f.Supersedes = append(f.Supersedes, id)
	}
	np, ok := u32()
	if !ok || uint64(np)*68 > uint64(len(body)) {
		return bad("pack list truncated")
	}
	for i := uint32(0); i < np; i++ {
		if len(body) < 68 {
			return bad("pack entry truncated")
		}
		var p IndexPack
		copy(p.ID[:], body[:32])
		p.EphPublic = append([]byte(nil), body[32:64]...)
		body = body[64:]
		nb, ok := u32()
		if !ok || uint64(nb)*packEntryLen > uint64(len(body)) {
			return bad("blob list truncated")
		}
		p.Blobs = make([]PackEntry, 0, nb)
		for ; nb > 0; nb-- {
			e, n, err := decodePackEntry(body, 1<<32, members)
			if err != nil {
				return nil, err
			}
			p.Blobs = append(p.Blobs, e)
			body = body[n:]
		}
		f.Packs = append(f.Packs, p)
	}
	if len(body) != 0 {
		return bad("trailing bytes")
	}
	return f, nil
}

// blobLoc is the in-memory form of an index entry, kept small: with
// millions of blobs this map is most of the engine's memory.
type blobLoc struct {
	pack      uint32 // position in Index.packs
	offset    uint32
	length    uint32
	rawLength uint32
	inner     uint32 // a bundle member's place in its bundle
	bundleRaw uint32 // a bundle member's bundle's decoded length, or 0
	typ       BlobType
}

// locOf is entry e of pack pi in the index's form.
func locOf(pi uint32, e PackEntry) blobLoc {
	return blobLoc{pack: pi, offset: e.Offset, length: e.Length, rawLength: e.RawLength,
		inner: e.Inner, bundleRaw: e.BundleRaw, typ: e.Type}
}

// entry is l as the pack entry of blob id.
func (l blobLoc) entry(id ID) PackEntry {
	return PackEntry{Type: l.typ, ID: id, Offset: l.offset, Length: l.length, RawLength: l.rawLength,
		Inner: l.inner, BundleRaw: l.bundleRaw}
}

type packRef struct {
	id        ID
	ephPublic []byte
}

// Index is the in-memory map from blob id to its place in a pack.
type Index struct {
	mu       sync.RWMutex
	packs    []packRef
	packByID map[ID]uint32
	blobs    *blobMap
	files    map[ID]bool // index files loaded
	// condemned packs (by position) are readable but not deduplicated
	// against: see gc.go.
	condemned map[uint32]bool
	// extra holds entries of blobs already located in another pack: the
	// lookup map keeps one location, but a rewritten index must still list
	// every pack's content.
	extra map[uint32][]PackEntry
	// trees lists each pack's tree blobs, as its first listing gave
	// them (each is at that pack, in blobs or in extra): what reading a
	// tree pack needs, without walking every blob
	trees map[uint32][]ID
	// treesPartial: trees may lack packs' trees (an index read from a
	// snapshot, which does not store them); the first treeLocsInPack
	// finds them all again from the blobs' types
	treesPartial bool
	// gen changes whenever a location may have changed (caches of
	// locations compare it).
	gen uint64
}

func newIndex() *Index {
	return &Index{packByID: map[ID]uint32{}, blobs: newBlobMap(), files: map[ID]bool{}, trees: map[uint32][]ID{}}
}

// reset empties the index in place (its users keep their pointer).
func (ix *Index) reset() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.packs, ix.packByID, ix.blobs, ix.files = nil, map[ID]uint32{}, newBlobMap(), map[ID]bool{}
	ix.condemned, ix.extra, ix.trees, ix.treesPartial = nil, nil, map[uint32][]ID{}, false
	ix.gen++
}

// replace takes fresh's content in one step: readers see the old index or
// the new one, never an empty one between them.
func (ix *Index) replace(fresh *Index) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.takeLocked(fresh)
}

func (ix *Index) takeLocked(fresh *Index) {
	ix.packs, ix.packByID, ix.blobs, ix.files = fresh.packs, fresh.packByID, fresh.blobs, fresh.files
	ix.condemned, ix.extra, ix.trees, ix.treesPartial = fresh.condemned, fresh.extra, fresh.trees, fresh.treesPartial
	ix.gen++
}

// replaceOrAbsorb takes fresh's content as replace does when ix holds
// nothing; otherwise fresh's packs and files are added to what ix holds,
// unless a bucket of the snapshot fresh was opened from does not decode
// (then ix is left as it was, and the error returned).
func (ix *Index) replaceOrAbsorb(fresh *Index) error {
	// fresh is decoded before ix is locked, when it is to be absorbed
	// (lookups in ix go on meanwhile)
	holds := func() bool { return len(ix.packs) > 0 || len(ix.files) > 0 }
	ix.mu.RLock()
	absorb := holds()
	ix.mu.RUnlock()
	var packs []IndexPack
	var err error
	if absorb {
		packs, err = fresh.wholePacks()
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if !holds() {
		ix.takeLocked(fresh)
		return nil
	}
	if !absorb { // given a pack meanwhile
		packs, err = fresh.wholePacks()
	}
	if err != nil {
		return err
	}
	ix.addPacksLocked(packs)
	for id := range fresh.files {
		ix.files[id] = true
	}
	for pi := range fresh.condemned {
		if ix.condemned == nil {
			ix.condemned = map[uint32]bool{}
		}
		ix.condemned[ix.packByID[fresh.packs[pi].id]] = true
	}
	return nil
}

// generation is a number that changes whenever locations may have.
func (ix *Index) generation() uint64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.gen
}

func (ix *Index) addPack(p IndexPack) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.addPackLocked(p)
}

func (ix *Index) addPackLocked(p IndexPack) {
	ix.gen++
	pi := ix.packPos(p)
	for _, b := range p.Blobs {
		if old, dup := ix.blobs.get(b.ID); dup && !ix.addDuplicateLocked(pi, b, old) {
			continue
		}
		ix.blobs.set(b.ID, locOf(pi, b))
	}
}

// packPos returns p's position in ix.packs, adding it if new.
func (ix *Index) packPos(p IndexPack) uint32 {
	pi, ok := ix.packByID[p.ID]
	if !ok {
		pi = uint32(len(ix.packs))
		ix.packs = append(ix.packs, packRef{id: p.ID, ephPublic: p.EphPublic})
		ix.packByID[p.ID] = pi
		for _, b := range p.Blobs {
			if b.Type == TreeBlob {
				ix.trees[pi] = append(ix.trees[pi], b.ID)
			}
		}
	}
	return pi
}

// addDuplicateLocked adds blob b of pack pi, already located at old, to
// the extra entries, and reports whether b's location is to be the blob's
// location instead (old's pack is condemned; old is then kept as extra).
func (ix *Index) addDuplicateLocked(pi uint32, b PackEntry, old blobLoc) (moves bool) {
	switch {
	case old.pack == pi && idLoc{b.ID, old}.entry() == b:
		return false // the same entry again
	case old.pack == pi:
		// another place in the same pack (a damaged or forged index
		// file): kept beside the first, so a reader whose copy does not
		// decode tries it, and an index rewrite loses neither
		ix.addExtra(pi, b)
		return false
	case !ix.condemned[old.pack]:
		ix.addExtra(pi, b)
		return false
	}
	ix.addExtra(old.pack, idLoc{b.ID, old}.entry())
	return true
}

func (ix *Index) addExtra(pi uint32, b PackEntry) {
	if ix.extra == nil {
		ix.extra = map[uint32][]PackEntry{}
	}
	ix.extra[pi] = append(ix.extra[pi], b)
}

// idLoc is a blob's id and location.
type idLoc struct {
	id  ID
	loc blobLoc
}

func (e idLoc) entry() PackEntry {
	return e.loc.entry(e.id)
}

// addPacksLocked is addPackLocked for many packs at once, in their order
// (the first location of a blob is the one kept, as one by one): their
// blobs are sorted once and merged into the map's arrays, not inserted
// one by one. Loading an index of n blobs this way costs a sort instead
// of n map insertions and the merges they cause (4x faster at 70k blobs).
func (ix *Index) addPacksLocked(ps []IndexPack) {
	ix.gen++
	n := 0
	for _, p := range ps {
		n += len(p.Blobs)
	}
	// placed by first byte (in their order), then each bucket sorted by
	// id and order: small sorts of uniformly spread ids
	var start [257]int
	for _, p := range ps {
		for _, b := range p.Blobs {
			start[int(b.ID[0])+1]++
		}
	}
	for i := 1; i <= 256; i++ {
		start[i] += start[i-1]
	}
	// placed: the entries in bucket order; keys: each one's first 8 id
	// bytes and its position, sorted (16 bytes moved per swap, not 60)
	type key struct {
		k   uint64
		pos uint32
	}
	next := start
	placed := make([]idLoc, n)
	keys := make([]key, n)
	for _, p := range ps {
		pi := ix.packPos(p)
		for _, b := range p.Blobs {
			at := next[b.ID[0]]
			placed[at] = idLoc{b.ID, locOf(pi, b)}
			keys[at] = key{binary.BigEndian.Uint64(b.ID[:8]), uint32(at)}
			next[b.ID[0]]++
		}
	}
	for i := 0; i < 256; i++ {
		slices.SortFunc(keys[start[i]:start[i+1]], func(a, b key) int {
			if a.k != b.k {
				return cmp.Compare(a.k, b.k)
			}
			// the same first 8 bytes: the rest, then the order added
			if c := bytes.Compare(placed[a.pos].id[8:], placed[b.pos].id[8:]); c != 0 {
				return c
			}
			return cmp.Compare(a.pos, b.pos)
		})
	}
	es := make([]idLoc, n)
	for i, k := range keys {
		es[i] = placed[k.pos]
	}
	placed, keys = nil, nil
	ids, locs := make([]ID, 0, len(es)), make([]blobLoc, 0, len(es))
	for i, e := range es {
		if i > 0 && es[i-1].id == e.id && len(ids) > 0 && ids[len(ids)-1] == e.id {
			// a later copy of a blob first met in this batch (located
			// in locs, not yet in the map)
			if old := &locs[len(locs)-1]; ix.addDuplicateLocked(e.loc.pack, e.entry(), *old) {
				*old = e.loc
			}
			continue
		}
		if old, dup := ix.blobs.get(e.id); dup {
			if ix.addDuplicateLocked(e.loc.pack, e.entry(), old) {
				ix.blobs.set(e.id, e.loc)
			}
			continue
		}
		ids, locs = append(ids, e.id), append(locs, e.loc)
	}
	ix.blobs.addAbsent(ids, locs)
}

// BlobLocation is an index lookup's answer.
type BlobLocation struct {
	Pack      ID
	EphPublic []byte
	PackEntry
}

func (ix *Index) lookup(id ID) (BlobLocation, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	l, ok := ix.blobs.get(id)
	if !ok {
		return BlobLocation{}, false
	}
	p := ix.packs[l.pack]
	return BlobLocation{Pack: p.id, EphPublic: p.ephPublic, PackEntry: l.entry(id)}, true
}

// others returns the locations of blob id besides the one lookup gives
// (copies in other packs: a repack's source, a blob stored again).
func (ix *Index) others(id ID) []BlobLocation {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []BlobLocation
	for pi, es := range ix.extra {
		for _, e := range es {
			if e.ID == id {
				p := ix.packs[pi]
				out = append(out, BlobLocation{Pack: p.id, EphPublic: p.ephPublic, PackEntry: e})
			}
		}
	}
	return out
}

func (ix *Index) has(id ID) bool {
	ix.mu.RLock()
	_, ok := ix.blobs.get(id)
	ix.mu.RUnlock()
	return ok
}

// dedupablePack is dedupable with the pack that holds the blob.
func (ix *Index) dedupablePack(id ID) (ID, bool) {
	p, _, ok := ix.dedupable(id)
	return p, ok
}

// dedupable is dedupablePack with the blob's stored length.
func (ix *Index) dedupable(id ID) (ID, int64, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	l, ok := ix.blobs.get(id)
	if !ok || ix.condemned[l.pack] {
		return ID{}, 0, false
	}
	return ix.packs[l.pack].id, l.entry(id).Stored(), true
}

// Len is the number of blobs indexed.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.blobs.len()
}

// treeLocsInPack returns where the tree blobs stored in pack are.
func (ix *Index) treeLocsInPack(pack ID) []BlobLocation {
	ix.findTrees()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	pi, ok := ix.packByID[pack]
	if !ok {
		return nil
	}
	p := ix.packs[pi]
	var out []BlobLocation
	var extra map[ID]PackEntry // copies also stored elsewhere, by id
	seen := make(map[ID]bool, len(ix.trees[pi]))
	for _, id := range ix.trees[pi] {
		if seen[id] {
			continue // listed twice in its pack
		}
		seen[id] = true
		if l, ok := ix.blobs.get(id); ok && l.pack == pi {
			out = append(out, BlobLocation{Pack: p.id, EphPublic: p.ephPublic, PackEntry: l.entry(id)})
			continue
		}
		if extra == nil {
			extra = map[ID]PackEntry{}
			for _, e := range ix.extra[pi] {
				extra[e.ID] = e
			}
		}
		if e, ok := extra[id]; ok {
			out = append(out, BlobLocation{Pack: p.id, EphPublic: p.ephPublic, PackEntry: e})
		}
	}
	return out
}

// findTrees lists every pack's trees again when they may be incomplete:
// once per index read from a snapshot, and only when a tree pack is read
// whole (one not in the local cache yet).
func (ix *Index) findTrees() {
	ix.mu.RLock()
	partial := ix.treesPartial
	ix.mu.RUnlock()
	if !partial {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if !ix.treesPartial {
		return
	}
	trees := map[uint32][]ID{}
	ix.blobs.each(func(id ID, l blobLoc) {
		if l.typ == TreeBlob {
			trees[l.pack] = append(trees[l.pack], id)
		}
	})
	for pi, es := range ix.extra {
		for _, e := range es {
			if e.Type == TreeBlob {
				trees[pi] = append(trees[pi], e.ID)
			}
		}
	}
	ix.trees, ix.treesPartial = trees, false
}

// Packs returns every indexed pack with its entries.
func (ix *Index) Packs() []IndexPack {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.packsLocked()
}

func (ix *Index) packsLocked() []IndexPack {
	out := make([]IndexPack, len(ix.packs))
	for i, p := range ix.packs {
		out[i] = IndexPack{ID: p.id, EphPublic: p.ephPublic}
	}
	ix.blobs.each(func(id ID, l blobLoc) {
		out[l.pack].Blobs = append(out[l.pack].Blobs, l.entry(id))
	})
	for pi, es := range ix.extra {
		out[pi].Blobs = append(out[pi].Blobs, es...)
	}
	return out
}
