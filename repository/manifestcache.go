package repository

import (
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"backupd/storage"
)

// The local cache keeps a loose manifest in its verified form: the JSON
// its signature was checked on, sealed with a key derived from the
// repository's read key and bound to the backup id and to the size of the
// stored object. Reading it back costs one AES-GCM open instead of the
// X25519 exchange and the Ed25519 check the stored form needs (about
// 0.3 ms a manifest: most of what `repo list --last 20` and choosing a
// backup's parent spent). Only a key that can read manifests can make or
// read one, so the cache adds nothing a write-only host could forge.
//
// Layout: "BKVM", version 2, then sealed (the header bound too): the
// JSON's length, the JSON, and the manifest's binary form (manifestBin),
// which a listing decodes instead of the JSON. Version 1 (earlier
// versions) sealed the JSON alone; one read is cached again as version 2.
const (
	verifiedManifestMagic   = "BKVM"
	verifiedManifestVersion = 2
)

// manifestCacheAEAD is the key of the verified forms, nil for a key that
// cannot read.
func (r *Repository) manifestCacheAEAD() cipher.AEAD {
	r.mcacheOnce.Do(func() {
		if !r.keys.CanRead() {
			return
		}
		key, err := hkdf.Key(sha256.New, r.keys.DataPrivate, nil, "backupd local manifest cache v1", 32)
		if err == nil {
			r.mcacheAEAD, _ = newAEAD(key)
		}
	})
	return r.mcacheAEAD
}

func verifiedManifestAD(id string, size int64) []byte {
	ad := binary.LittleEndian.AppendUint64([]byte("backupd verified manifest v1"), uint64(size))
	return append(ad, id...)
}

// putVerifiedManifest caches js, checked as backup id's manifest stored in
// an object of size bytes, and m, the manifest decoded from it.
func (r *Repository) putVerifiedManifest(id string, size int64, js []byte, m *Manifest) {
	aead := r.manifestCacheAEAD()
	if aead == nil || r.cache == nil {
		return
	}
	plain := binary.AppendUvarint(nil, uint64(len(js)))
	plain = append(append(plain, js...), manifestBin(m)...)
	hdr := append([]byte(verifiedManifestMagic), verifiedManifestVersion)
	r.cache.put(cacheManifests, id, seal(aead, hdr, plain, append(hdr[:len(hdr):len(hdr)], verifiedManifestAD(id, size)...)))
}

// verifiedManifest reads what putVerifiedManifest sealed (version 1: the
// JSON alone).
func verifiedManifest(id string, version byte, plain []byte) (*Manifest, []byte, error) {
	if version == 1 {
		m, err := parseManifestJSON(id, plain)
		return m, plain, err
	}
	n, l := binary.Uvarint(plain)
	if l <= 0 || n > uint64(len(plain)-l) {
		return nil, nil, errManifestBin
	}
	js, bin := plain[l:l+int(n):l+int(n)], plain[l+int(n):]
	if m, ok := manifestFromBin(bin, id); ok {
		return m, js, nil
	}
	m, err := parseManifestJSON(id, js)
	return m, js, err
}

// cachedManifest returns backup id's manifest from the cache when it is
// there for a stored object of size bytes: in its verified form, or in
// the stored form (what earlier versions cached), which is checked whole
// and then cached in its verified form. false: not cached, or not usable
// (then it is removed).
func (r *Repository) cachedManifest(id string, size int64) (*Manifest, []byte, bool) {
	b, ok := r.cache.get(cacheManifests, id, func([]byte) bool { return true })
	if !ok {
		return nil, nil, false
	}
	if int64(len(b)) == size && string(b[:min(len(b), 4)]) == manifestMagic {
		if m, js, err := decodeManifestJSON(r.keys, id, b); err == nil {
			r.putVerifiedManifest(id, size, js, m)
			return m, js, true
		}
	} else if aead := r.manifestCacheAEAD(); aead != nil && len(b) > 5 &&
		string(b[:4]) == verifiedManifestMagic && (b[4] == 1 || b[4] == verifiedManifestVersion) {
		// version 2 binds its header too; version 1 bound the id and size
		ad := verifiedManifestAD(id, size)
		if b[4] != 1 {
			ad = append(b[:5:5], ad...)
		}
		if plain, err := open(aead, nil, b[5:], ad); err == nil {
			if m, js, err := verifiedManifest(id, b[4], plain); err == nil {
				if b[4] == 1 {
					r.putVerifiedManifest(id, size, js, m)
				}
				return m, js, true
			}
		}
	}
	r.cache.remove(cacheManifests, id)
	return nil, nil, false
}

// The cache keeps a manifest set in its verified form too, sealed with
// the same key and bound to the set's name, which holds the SHA-256 of
// the stored object. Opening it costs AES-GCM opens instead of hashing
// the object twice (the cache's check and the name's), the X25519
// exchange and the HMAC: a listing of the newest backups, and choosing a
// backup's parent, open the newest set each time.
//
// Layout (version 2): "BKVS", 2, the sealed header's length (4 bytes, big
// endian), the sealed header, then the sealed groups one after another.
// The header holds a random file id, the entries per group, the entries'
// ids (parseSetEntries' checks) and each group's sealed length; a group
// holds, for each of its entries, the JSON and the binary form (manifestBin;
// empty when the JSON does not decode), each length first. Opening reads
// the header only; a group is read and opened when one of its entries is
// first read (setGroup). A set of 500 backups is 590 KB: reading and
// opening all of it cost a listing of the newest 50 half a millisecond of
// its 5 (case D at 10,000 backups), and it needs the last group or two.
//
// Version 1 (one sealed body: the stored set's body, then the binary
// forms) is still read, and cached again as version 2.
const (
	verifiedSetMagic   = "BKVS"
	verifiedSetVersion = 2
	verifiedSetGroup   = 32 // entries in a sealed group
)

func verifiedSetAD(name string) []byte {
	return append([]byte("backupd verified manifest set v1\x00"), name...)
}

func verifiedSetHeaderAD(name string) []byte {
	return append(append([]byte(verifiedSetMagic), verifiedSetVersion, 'h'), verifiedSetAD(name)...)
}

func verifiedSetGroupAD(name string, fileID []byte, i int) []byte {
	ad := append(append([]byte(verifiedSetMagic), verifiedSetVersion, 'g'), fileID...)
	ad = binary.AppendUvarint(ad, uint64(i))
	return append(ad, verifiedSetAD(name)...)
}

// putVerifiedSet caches entries, checked as the set stored under name.
// Every entry must hold its contents (materialized).
func (r *Repository) putVerifiedSet(name string, entries []setEntry) {
	aead := r.manifestCacheAEAD()
	if aead == nil || r.cache == nil || len(entries) == 0 {
		return
	}
	fileID := randomBytes(16)
	hdr := append([]byte{}, fileID...)
	hdr = binary.AppendUvarint(hdr, verifiedSetGroup)
	hdr = binary.AppendUvarint(hdr, uint64(len(entries)))
	for _, e := range entries {
		if e.grp != nil {
			return // not materialized: nothing to cache from
		}
		hdr = appendField(hdr, []byte(e.id))
	}
	var groups [][]byte
	for g := 0; g*verifiedSetGroup < len(entries); g++ {
		var body []byte
		for i := g * verifiedSetGroup; i < min(len(entries), (g+1)*verifiedSetGroup); i++ {
			// a binary form comes from manifestBin or from a sealed cached
			// set; one of another backupd's layout is made again from the
			// JSON, and kept on the entry for this handle's listings
			e := &entries[i]
			if !binCurrent(e.bin) {
				e.bin = nil
				if m, err := e.manifest(context.Background(), name); err == nil {
					e.bin = manifestBin(m)
				}
			}
			body = appendField(appendField(body, e.js), e.bin)
		}
		sealed := seal(aead, nil, body, verifiedSetGroupAD(name, fileID, g))
		hdr = binary.AppendUvarint(hdr, uint64(len(sealed)))
		groups = append(groups, sealed)
	}
	sealedHdr := seal(aead, nil, hdr, verifiedSetHeaderAD(name))
	_ = r.cache.putStream(cacheManifestSets, strings.TrimPrefix(name, manifestSetsPrefix), func(w io.Writer) error {
		if _, err := w.Write(binary.BigEndian.AppendUint32(append([]byte(verifiedSetMagic), verifiedSetVersion), uint32(len(sealedHdr)))); err != nil {
			return err
		}
		if _, err := w.Write(sealedHdr); err != nil {
			return err
		}
		for _, g := range groups {
			if _, err := w.Write(g); err != nil {
				return err
			}
		}
		return nil
	})
}

// errSetGone: a set's group was read after the set was deleted (a
// collection rewrote it since the view listed it, and its cached form
// went with it); a reader lists again.
var errSetGone = errors.New("manifest set gone since it was listed (rewritten by a collection, or lost by the storage)")

// setGroup is a sealed group of a cached set's entries, read when one of
// them is first read. When it does not open (the cache file damaged, or
// replaced by another's form of the same set), the stored set is read and
// checked (setSource), and its entries are taken from that.
type setGroup struct {
	src    *setSource
	i      int   // the group's number
	lo, hi int   // its entries in the set
	off    int64 // its sealed bytes in the cache file
	n      int

	mu      sync.Mutex
	loaded  bool
	js, bin [][]byte
}

// setSource is what a cached set's groups are read from.
type setSource struct {
	r      *Repository
	set    *manifestSet
	fileID []byte
	ids    []string

	mu     sync.Mutex
	stored []setEntry // the stored set's entries, once read for a group that did not open
}

// contents returns the group's entry i (of the set), reading the group
// first.
func (g *setGroup) contents(ctx context.Context, i int) (js, bin []byte, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.loaded {
		if err := g.load(ctx); err != nil {
			return nil, nil, err
		}
		g.loaded = true
	}
	return g.js[i-g.lo], g.bin[i-g.lo], nil
}

func (g *setGroup) load(ctx context.Context) error {
	src := g.src
	name := src.set.oi.Name
	base := strings.TrimPrefix(name, manifestSetsPrefix)
	if aead := src.r.manifestCacheAEAD(); aead != nil {
		if sealed, ok := src.r.cache.readAt(cacheManifestSets, base, g.off, g.n); ok {
			if body, err := openInPlace(aead, sealed, verifiedSetGroupAD(name, src.fileID, g.i)); err == nil {
				if g.parse(body) {
					return nil
				}
			}
		}
	}
	stored, err := src.readStored(ctx)
	if errors.Is(err, storage.ErrNotFound) {
		// rewritten by a collection since the view listed it: the
		// caller lists again (errSetGone)
		return fmt.Errorf("%w: %w", errSetGone, err)
	} else if err != nil {
		return err
	}
	g.js, g.bin = make([][]byte, g.hi-g.lo), make([][]byte, g.hi-g.lo)
	for i := g.lo; i < g.hi; i++ {
		g.js[i-g.lo], g.bin[i-g.lo] = stored[i].js, stored[i].bin
	}
	return nil
}

// parse reads a group's body: false when it is not the group's.
func (g *setGroup) parse(body []byte) bool {
	n := g.hi - g.lo
	g.js, g.bin = make([][]byte, n), make([][]byte, n)
	field := func() ([]byte, bool) { return cutField(&body) }
	for i := range n {
		js, ok1 := field()
		bin, ok2 := field()
		if !ok1 || !ok2 {
			return false
		}
		g.js[i] = js
		if len(bin) > 0 {
			g.bin[i] = bin
		}
	}
	return len(body) == 0
}

// readStored reads and checks the stored set, once (a failure is not
// kept: a later read tries again), after a group of its cached form did
// not open; the cached form is replaced.
func (src *setSource) readStored(ctx context.Context) ([]setEntry, error) {
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.stored != nil {
		return src.stored, nil
	}
	r, name := src.r, src.set.oi.Name
	r.cache.remove(cacheManifestSets, strings.TrimPrefix(name, manifestSetsPrefix))
	raw, err := storage.ReadAll(ctx, r.be, name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	entries, err := decodeManifestSet(r.keys, name, raw)
	if err != nil {
		return nil, err
	}
	if len(entries) != len(src.ids) {
		return nil, fmt.Errorf("%s: %w: it holds %d backups, its cached form %d", name, ErrCorrupt, len(entries), len(src.ids))
	}
	for i := range entries {
		if entries[i].id != src.ids[i] {
			return nil, fmt.Errorf("%s: %w: entry %d is %s, in its cached form %s", name, ErrCorrupt, i, entries[i].id, src.ids[i])
		}
	}
	r.putVerifiedSet(name, entries)
	src.stored = entries
	return entries, nil
}

// openVerifiedSet reads a version 2 cached form's header: its entries,
// each read from its group when first needed.
func (r *Repository) openVerifiedSet(s *manifestSet, aead cipher.AEAD) ([]setEntry, bool) {
	base := strings.TrimPrefix(s.oi.Name, manifestSetsPrefix)
	pre, ok := r.cache.readAt(cacheManifestSets, base, 0, 9)
	if !ok || string(pre[:4]) != verifiedSetMagic || pre[4] != verifiedSetVersion {
		return nil, false
	}
	hl := binary.BigEndian.Uint32(pre[5:])
	sealed, ok := r.cache.readAt(cacheManifestSets, base, 9, int(hl))
	if !ok {
		return nil, false
	}
	hdr, err := openInPlace(aead, sealed, verifiedSetHeaderAD(s.oi.Name))
	if err != nil || len(hdr) < 16 {
		return nil, false
	}
	src := &setSource{r: r, set: s, fileID: hdr[:16:16]}
	hdr = hdr[16:]
	num := func() (uint64, bool) {
		v, l := binary.Uvarint(hdr)
		if l <= 0 {
			return 0, false
		}
		hdr = hdr[l:]
		return v, true
	}
	per, ok1 := num()
	count, ok2 := num()
	if !ok1 || !ok2 || per == 0 || count == 0 || count > uint64(len(hdr)) {
		return nil, false
	}
	per = min(per, count) // (an int however large the header says)
	entries := make([]setEntry, count)
	src.ids = make([]string, count)
	for i := range entries {
		f, ok := cutField(&hdr)
		if !ok {
			return nil, false
		}
		id := string(f)
		if ValidBackupID(id) != nil || (i > 0 && entries[i-1].id >= id) {
			return nil, false
		}
		entries[i].id, entries[i].gi, src.ids[i] = id, i, id
	}
	if entries[len(entries)-1].id != s.newest {
		return nil, false
	}
	off := int64(9) + int64(hl)
	for lo, g := 0, 0; lo < len(entries); lo, g = lo+int(per), g+1 {
		n, ok := num()
		if !ok || n > 1<<30 {
			return nil, false
		}
		grp := &setGroup{src: src, i: g, lo: lo, hi: min(len(entries), lo+int(per)), off: off, n: int(n)}
		for i := grp.lo; i < grp.hi; i++ {
			entries[i].grp = grp
		}
		off += int64(n)
	}
	return entries, len(hdr) == 0
}

// parseVerifiedSet reads the body a version 1 cached form sealed.
func parseVerifiedSet(s *manifestSet, body []byte) ([]setEntry, bool) {
	entries, rest, err := parseSetEntries(s.oi.Name, s.newest, body)
	if err != nil {
		return nil, false
	}
	for i := range entries {
		n, l := binary.Uvarint(rest)
		if l <= 0 || n > uint64(len(rest)-l) {
			return nil, false
		}
		if n > 0 {
			entries[i].bin = rest[l : l+int(n) : l+int(n)]
		}
		rest = rest[l+int(n):]
	}
	return entries, len(rest) == 0
}

// cachedSet returns set s's entries from the cache: in the verified form
// (version 2: read a group at a time), or in a form earlier versions
// cached (version 1, or the stored form, which is checked whole), then
// cached in the current one. false: not cached, or not usable (then it
// is removed).
func (r *Repository) cachedSet(s *manifestSet) ([]setEntry, bool) {
	if r.cache == nil {
		return nil, false
	}
	base := strings.TrimPrefix(s.oi.Name, manifestSetsPrefix)
	aead := r.manifestCacheAEAD()
	if aead != nil {
		if entries, ok := r.openVerifiedSet(s, aead); ok {
			return entries, true
		}
	}
	b, ok := r.cache.get(cacheManifestSets, base, func([]byte) bool { return true })
	if !ok {
		return nil, false
	}
	if len(b) > 5 && string(b[:4]) == verifiedSetMagic && b[4] == 1 {
		if aead != nil {
			if body, err := open(aead, nil, b[5:], append(b[:5:5], verifiedSetAD(s.oi.Name)...)); err == nil {
				if entries, ok := parseVerifiedSet(s, body); ok {
					r.putVerifiedSet(s.oi.Name, entries)
					return entries, true
				}
			}
		}
	} else if sha256.Sum256(b) == s.hash {
		if entries, err := decodeManifestSet(r.keys, s.oi.Name, b); err == nil {
			r.putVerifiedSet(s.oi.Name, entries)
			return entries, true
		}
	}
	r.cache.remove(cacheManifestSets, base)
	return nil, false
}
