package repository

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"strings"
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

// The cache keeps a manifest set in its verified form too: its body,
// sealed with the same key and bound to the set's name, which holds the
// SHA-256 of the stored object. Opening it costs one AES-GCM open instead
// of hashing the object twice (the cache's check and the name's), the
// X25519 exchange and the HMAC: a listing of the newest backups, and
// choosing a backup's parent, open the newest set each time.
//
// Layout: "BKVS", version 1, then sealed (the header bound too): the stored set's body
// (parseSetEntries'), then each entry's binary form (manifestBin; empty
// when its JSON does not decode), length first, in the entries' order.
const (
	verifiedSetMagic   = "BKVS"
	verifiedSetVersion = 1
)

func verifiedSetAD(name string) []byte {
	return append([]byte("backupd verified manifest set v1\x00"), name...)
}

// putVerifiedSet caches entries, checked as the set stored under name.
func (r *Repository) putVerifiedSet(name string, entries []setEntry) {
	aead := r.manifestCacheAEAD()
	if aead == nil || r.cache == nil {
		return
	}
	body := setBody(entries)
	for i := range entries {
		// a binary form comes from manifestBin or from a sealed cached
		// set; one of another backupd's layout is made again from the
		// JSON, and kept on the entry for this handle's listings
		e := &entries[i]
		if !binCurrent(e.bin) {
			e.bin = nil
			if m, err := e.manifest(name); err == nil {
				e.bin = manifestBin(m)
			}
		}
		body = binary.AppendUvarint(body, uint64(len(e.bin)))
		body = append(body, e.bin...)
	}
	hdr := append([]byte(verifiedSetMagic), verifiedSetVersion)
	r.cache.put(cacheManifestSets, strings.TrimPrefix(name, manifestSetsPrefix), seal(aead, hdr, body, append(hdr[:len(hdr):len(hdr)], verifiedSetAD(name)...)))
}

// parseVerifiedSet reads the body putVerifiedSet sealed.
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

// cachedSet returns set s's entries from the cache: in the verified form,
// or in the stored form (what earlier versions cached), which is checked
// whole and then cached in the verified form. false: not cached, or not
// usable (then it is removed).
func (r *Repository) cachedSet(s *manifestSet) ([]setEntry, bool) {
	base := strings.TrimPrefix(s.oi.Name, manifestSetsPrefix)
	b, ok := r.cache.get(cacheManifestSets, base, func([]byte) bool { return true })
	if !ok {
		return nil, false
	}
	if len(b) > 5 && string(b[:4]) == verifiedSetMagic && b[4] == verifiedSetVersion {
		if aead := r.manifestCacheAEAD(); aead != nil {
			if body, err := open(aead, nil, b[5:], append(b[:5:5], verifiedSetAD(s.oi.Name)...)); err == nil {
				if entries, ok := parseVerifiedSet(s, body); ok {
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
