package repository

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
	"sort"
)

// blobMap maps blob ids to their locations in about 60 bytes an entry (a
// Go map took over 110 at a million blobs: a repository of ten million
// small files needed more than a gigabyte for its index alone).
//
// Ids are uniformly random, so their first 12 bits spread them over 4,096
// buckets. Each bucket holds a sorted array, searched by binary search
// and allocated at its exact size; entries added since the last merge
// wait in a map until it holds an eighth of the total, then each bucket
// is merged on its own, so a merge never holds more than one bucket's
// second copy.
//
// A map read from an index snapshot (indexsnap.go) decodes each bucket
// when it is first used: a backup of a few changed files looks up a few
// hundred blobs, and decoding the whole index for them cost more than
// the rest of the backup once it held 70,000 blobs (bench case D). The
// buckets are many and small so that those lookups touch a small share.
type blobMap struct {
	buckets [numBuckets]blobBucket
	sorted  int // entries in the buckets' arrays (a sealed one's included)
	recent  map[ID]blobLoc
	// src: the snapshot the sealed buckets are read from (nil: none)
	src *snapFile
	// overlay: for a map read from a snapshot, every entry changed or
	// added since, as it is now, so that the next snapshot can be
	// written as a delta of it (indexdelta.go) instead of whole; nil
	// for a map not read from one, and once it held more than
	// overlayMax (the next snapshot is then written whole)
	overlay map[ID]overlayEntry
}

// overlayEntry is an entry of a blob map's overlay: the blob's location,
// and whether the snapshot held the blob (then its bucket is changed
// when the delta is read; otherwise the entry is added as a recent one).
type overlayEntry struct {
	loc    blobLoc
	inBase bool
}

// overlayMax bounds a delta: reading one inserts its entries in a map
// (0.1 µs each), and a backup of a few changed files adds a few dozen.
const overlayMax = 4096

// note records in the overlay that id is now at l; found: the map held
// id before.
func (m *blobMap) note(id ID, l blobLoc, found bool) {
	if m.overlay == nil {
		return
	}
	e, ok := m.overlay[id]
	if !ok {
		// held but never changed since the snapshot: the snapshot's
		e.inBase = found
	}
	e.loc = l
	m.overlay[id] = e
	if len(m.overlay) > overlayMax {
		m.overlay = nil
	}
}

const (
	bucketBits = 12
	numBuckets = 1 << bucketBits
)

// bucketOf is the bucket id belongs in: its first 12 bits.
func bucketOf(id ID) int { return int(id[0])<<4 | int(id[1])>>4 }

// A bucket's entries are sorted by id, the id split into its first 8
// bytes (a number, searched by interpolation: ids are uniform) and the
// other 24.
type blobBucket struct {
	keys []uint64
	rest [][24]byte
	locs []blobLoc
	// sealed: the bucket's entries as a snapshot holds them, decoded on
	// first use (load); kept while the bucket is unchanged since, so a
	// new snapshot copies the sealed bytes instead of sealing them again
	sealed *sealedBucket
}

// load decodes the bucket's sealed entries when it has not yet. It runs
// under the index's read lock: concurrent lookups decode a bucket once.
func (b *blobBucket) load() {
	if s := b.sealed; s != nil {
		s.once.Do(func() { s.src.decode(s, b) })
	}
}

// changed is called, under the index's write lock, before the bucket's
// entries change: its sealed copy no longer matches.
func (b *blobBucket) changed() {
	b.load()
	b.sealed = nil
}

func splitID(id ID) (uint64, [24]byte) {
	var r [24]byte
	copy(r[:], id[8:])
	return binary.BigEndian.Uint64(id[:8]), r
}

func joinID(k uint64, r [24]byte) ID {
	var id ID
	binary.BigEndian.PutUint64(id[:8], k)
	copy(id[8:], r[:])
	return id
}

// splitLess reports whether the id split into k and r sorts before id.
func splitLess(k uint64, r [24]byte, id ID) bool {
	ik, ir := splitID(id)
	return k < ik || (k == ik && bytes.Compare(r[:], ir[:]) < 0)
}

func newBlobMap() *blobMap { return &blobMap{recent: map[ID]blobLoc{}} }

// find returns the position of id, or false.
func (b *blobBucket) find(id ID) (int, bool) {
	n := len(b.keys)
	if n == 0 {
		return 0, false
	}
	k, r := splitID(id)
	// where a uniform key would be, then a window around it doubled
	// until it holds k, then a binary search in the window
	est, _ := bits.Mul64(k<<bucketBits, uint64(n))
	lo, hi := int(est), int(est)+1 // keys[lo] < k <= keys[hi-1] wanted
	for step := 16; lo > 0 && b.keys[lo] >= k; step *= 2 {
		lo = max(0, lo-step)
	}
	for step := 16; hi < n && b.keys[hi-1] < k; step *= 2 {
		hi = min(n, hi+step)
	}
	i := lo + sort.Search(hi-lo, func(j int) bool { return b.keys[lo+j] >= k })
	for ; i < n && b.keys[i] == k; i++ {
		if b.rest[i] == r {
			return i, true
		}
	}
	return 0, false
}

func (m *blobMap) get(id ID) (blobLoc, bool) {
	if l, ok := m.recent[id]; ok {
		return l, true
	}
	b := &m.buckets[bucketOf(id)]
	b.load()
	if i, ok := b.find(id); ok {
		return b.locs[i], true
	}
	return blobLoc{}, false
}

func (m *blobMap) set(id ID, l blobLoc) {
	b := &m.buckets[bucketOf(id)]
	b.load()
	if i, ok := b.find(id); ok {
		b.changed()
		b.locs[i] = l
		m.note(id, l, true)
		return
	}
	_, had := m.recent[id]
	m.recent[id] = l
	m.note(id, l, had)
	if len(m.recent) > 4096+m.sorted/8 {
		m.merge()
	}
}

func (m *blobMap) len() int { return m.sorted + len(m.recent) }

// each calls fn for every entry, in no particular order; fn must not
// change the map.
func (m *blobMap) each(fn func(ID, blobLoc)) {
	for i := range m.buckets {
		b := &m.buckets[i]
		b.load()
		for j, k := range b.keys {
			fn(joinID(k, b.rest[j]), b.locs[j])
		}
	}
	for id, l := range m.recent {
		fn(id, l)
	}
}

// merge moves the recent entries into the buckets' sorted arrays.
func (m *blobMap) merge() {
	add := make([][]ID, numBuckets)
	for id := range m.recent {
		add[bucketOf(id)] = append(add[bucketOf(id)], id)
	}
	for i := range m.buckets {
		if len(add[i]) == 0 {
			continue
		}
		news := add[i]
		slices.SortFunc(news, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
		m.buckets[i].merge(news, func(k int) blobLoc { return m.recent[news[k]] })
		add[i] = nil
	}
	m.sorted += len(m.recent)
	m.recent = map[ID]blobLoc{}
}

// addAbsent adds entries for ids sorted and not in the map, merging them
// into the buckets' arrays at once.
func (m *blobMap) addAbsent(ids []ID, locs []blobLoc) {
	for start := 0; start < len(ids); {
		end := start + 1
		for end < len(ids) && bucketOf(ids[end]) == bucketOf(ids[start]) {
			end++
		}
		news, nlocs := ids[start:end], locs[start:end]
		m.buckets[bucketOf(ids[start])].merge(news, func(k int) blobLoc { return nlocs[k] })
		start = end
	}
	for i, id := range ids {
		m.note(id, locs[i], false)
	}
	m.sorted += len(ids)
}

// merge merges news (sorted, absent) into the bucket's arrays; loc gives
// the location of news[k].
func (b *blobBucket) merge(news []ID, loc func(k int) blobLoc) {
	b.changed()
	n := len(b.keys) + len(news)
	keys, rest, locs := make([]uint64, 0, n), make([][24]byte, 0, n), make([]blobLoc, 0, n)
	j, k := 0, 0
	for j < len(b.keys) || k < len(news) {
		if k == len(news) || (j < len(b.keys) && splitLess(b.keys[j], b.rest[j], news[k])) {
			keys, rest, locs = append(keys, b.keys[j]), append(rest, b.rest[j]), append(locs, b.locs[j])
			j++
		} else {
			nk, nr := splitID(news[k])
			keys, rest, locs = append(keys, nk), append(rest, nr), append(locs, loc(k))
			k++
		}
	}
	b.keys, b.rest, b.locs = keys, rest, locs
}
