package repository

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"os"
	"sync"
)

// The session keys a host derived, kept in its local cache. Each pack is
// sealed under its own session: an X25519 exchange with the pack's
// ephemeral key, 40 to 50 µs on this project's machines. An incremental
// backup reads the trees of its parent, and after a long history those
// lie in 30 to 40 tree packs written by as many earlier backups, where the
// 10th backup's lie in 10 (bench case D: 1.3 ms of CPU a backup at 10,000
// backups, 0.2 at 10). Every new handle derived them again.
//
// The file holds the newest sessionCacheMax pairs (ephemeral public key,
// AES key), sealed as one under a key derived from the data private key:
// only a holder of that key can read it or write one that opens, and it
// can derive the same keys anyway. A file that does not open is ignored
// and written over; deleting it only costs the exchanges again.
const (
	sessionCacheName    = "sessions"
	sessionCacheMagic   = "BKSK"
	sessionCacheVersion = 1
	sessionCacheMax     = 1024
	sessionEntrySize    = 32 + 32
)

var sessionCacheAD = []byte("backupd session key cache v1")

// sessionKeys is a handle's view of the cached session keys.
type sessionKeys struct {
	once  sync.Once
	aead  cipher.AEAD // nil: no cache, or no data key
	mu    sync.Mutex
	disk  [][sessionEntrySize]byte // as read, oldest first
	byEph map[[32]byte][]byte      // disk's entries and fresh ones
	used  map[[32]byte]bool        // looked up or derived by this handle
	fresh [][sessionEntrySize]byte // derived by this handle
}

// sessionKey returns the AES key of the session whose ephemeral public key
// is eph: cached, or derived (and then cached by saveSessionKeys).
func (r *Repository) sessionKey(eph []byte) ([]byte, error) {
	s := &r.skeys
	s.once.Do(func() { r.loadSessionKeys() })
	if s.aead == nil || len(eph) != 32 {
		return sessionKeyWith(r.dataKey, eph)
	}
	e := [32]byte(eph)
	s.mu.Lock()
	key, ok := s.byEph[e]
	if ok {
		s.used[e] = true
	}
	s.mu.Unlock()
	if ok {
		return key, nil
	}
	key, err := sessionKeyWith(r.dataKey, eph)
	if err != nil {
		return nil, err
	}
	var ent [sessionEntrySize]byte
	copy(ent[:32], eph)
	copy(ent[32:], key)
	s.mu.Lock()
	if _, ok := s.byEph[e]; !ok {
		s.byEph[e] = ent[32:]
		s.used[e] = true
		s.fresh = append(s.fresh, ent)
	}
	s.mu.Unlock()
	return key, nil
}

func sessionCacheAEAD(dataPrivate []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, dataPrivate, nil, string(sessionCacheAD), 32)
	if err != nil {
		return nil, err
	}
	return newAEAD(key)
}

// loadSessionKeys reads the cached keys, once a handle first needs one.
func (r *Repository) loadSessionKeys() {
	s := &r.skeys
	if r.cache == nil || r.dataKey == nil {
		return
	}
	aead, err := sessionCacheAEAD(r.keys.DataPrivate)
	if err != nil {
		return
	}
	s.aead = aead
	s.byEph, s.used = map[[32]byte][]byte{}, map[[32]byte]bool{}
	raw, err := os.ReadFile(r.cache.path(cacheIndexSnap, sessionCacheName))
	if err != nil {
		return
	}
	s.disk = decodeSessionKeys(aead, raw)
	for i := range s.disk {
		s.byEph[[32]byte(s.disk[i][:32])] = s.disk[i][32:]
	}
}

// decodeSessionKeys opens a session key file: nil when it does not.
func decodeSessionKeys(aead cipher.AEAD, raw []byte) [][sessionEntrySize]byte {
	if len(raw) < 5 || string(raw[:4]) != sessionCacheMagic || raw[4] != sessionCacheVersion {
		return nil
	}
	plain, err := openInPlace(aead, raw[5:], sessionCacheAD)
	if err != nil || len(plain)%sessionEntrySize != 0 || len(plain)/sessionEntrySize > sessionCacheMax {
		return nil
	}
	out := make([][sessionEntrySize]byte, len(plain)/sessionEntrySize)
	for i := range out {
		copy(out[i][:], plain[i*sessionEntrySize:])
	}
	return out
}

// saveSessionKeys writes the cache again when this handle derived keys it
// did not hold: the keys this handle used last, so that those of packs no
// longer read (repacked, deleted) are the first dropped. Failures only
// cost speed.
func (r *Repository) saveSessionKeys() {
	s := &r.skeys
	if r.cache == nil {
		return
	}
	s.mu.Lock()
	if s.aead == nil || len(s.fresh) == 0 {
		s.mu.Unlock()
		return
	}
	var old, used [][sessionEntrySize]byte
	for _, e := range s.disk {
		if s.used[[32]byte(e[:32])] {
			used = append(used, e)
		} else {
			old = append(old, e)
		}
	}
	all := append(append(old, used...), s.fresh...)
	if len(all) > sessionCacheMax {
		all = all[len(all)-sessionCacheMax:]
	}
	s.disk, s.fresh = all, nil
	aead := s.aead
	s.mu.Unlock()
	plain := make([]byte, 0, len(all)*sessionEntrySize)
	for i := range all {
		plain = append(plain, all[i][:]...)
	}
	out := seal(aead, append([]byte(sessionCacheMagic), sessionCacheVersion), plain, sessionCacheAD)
	r.cache.put(cacheIndexSnap, sessionCacheName, out)
}
