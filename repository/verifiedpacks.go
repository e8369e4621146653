package repository

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"slices"
	"time"
)

// The packs this host's backup commits found stored, and when, kept in
// its local cache. A commit checks that every pack the backup depends on
// is stored (checkPacks); a pack an earlier commit here found stored less
// than verifiedFresh ago, that the index still lists and no condemned list
// names, is taken as stored without asking the storage again.
//
// Why that is safe: a collection deletes a pack only once the index no
// longer lists it (it rewrites the index first), and while a writer is
// registered only a pack condemned before the writer started, which the
// writer's index shows condemned. So such a pack is gone only when the
// storage lost it (or a repair indexed it again while a collection deleted
// it); a loss is then found by the first backup depending on the pack more
// than verifiedFresh after it was last checked, instead of by the very
// next one. A collection run through this cache forgets every entry.
//
// Why: a pack each small backup writes becomes a dependency of every
// backup after it, until a cleanup repacks them; bench case D checked about
// 100 packs a backup before each cleanup (a listing of data/, 8 of a
// backup's 31 ms), where the 10th backup checked 17. With the entries, a
// backup checks the packs its parent's commit did not: those it wrote.
//
// The file holds at most verifiedPacksMax pairs (pack id, unix time in
// nanoseconds), sealed as one under a key derived from the index key:
// a file that does not open is ignored and written over; deleting it only
// costs the requests again.
const (
	verifiedPacksName    = "verified-packs"
	verifiedPacksMagic   = "BKVP"
	verifiedPacksVersion = 1
	verifiedPacksMax     = 4096
	verifiedEntrySize    = 32 + 8
)

// verifiedFresh is how long a pack found stored is taken as stored.
var verifiedFresh = 10 * time.Minute

var verifiedPacksAD = []byte("backupd verified packs v1")

func (r *Repository) verifiedPacksAEAD() cipher.AEAD {
	if r.cache == nil || len(r.keys.IndexKey) != 32 {
		return nil
	}
	key, err := hkdf.Key(sha256.New, r.keys.IndexKey, nil, string(verifiedPacksAD), 32)
	if err != nil {
		return nil
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil
	}
	return aead
}

// readVerifiedPacks returns the cached entries (nil when there are none or
// the file does not open).
func (r *Repository) readVerifiedPacks(aead cipher.AEAD) map[ID]time.Time {
	raw, err := os.ReadFile(r.cache.path(cacheIndexSnap, verifiedPacksName))
	if err != nil || len(raw) < 5 || string(raw[:4]) != verifiedPacksMagic || raw[4] != verifiedPacksVersion {
		return nil
	}
	plain, err := openInPlace(aead, raw[5:], verifiedPacksAD)
	if err != nil || len(plain)%verifiedEntrySize != 0 || len(plain)/verifiedEntrySize > verifiedPacksMax {
		return nil
	}
	out := make(map[ID]time.Time, len(plain)/verifiedEntrySize)
	for e := plain; len(e) > 0; e = e[verifiedEntrySize:] {
		out[ID(e[:32])] = time.Unix(0, int64(binary.LittleEndian.Uint64(e[32:])))
	}
	return out
}

// freshPacks returns the packs found stored in (now-verifiedFresh, now]:
// a time after now (the clock was set back) counts as not fresh.
func (r *Repository) freshPacks(now time.Time) map[ID]bool {
	aead := r.verifiedPacksAEAD()
	if aead == nil {
		return nil
	}
	fresh := map[ID]bool{}
	for id, t := range r.readVerifiedPacks(aead) {
		if t.After(now.Add(-verifiedFresh)) && !t.After(now) {
			fresh[id] = true
		}
	}
	return fresh
}

// keepVerifiedPacks records packs found stored at when (a time no later
// than the requests that found them), beside the entries still fresh;
// the newest verifiedPacksMax are kept. Failures only cost requests.
func (r *Repository) keepVerifiedPacks(packs []ID, when time.Time) {
	aead := r.verifiedPacksAEAD()
	if aead == nil || len(packs) == 0 {
		return
	}
	all := r.readVerifiedPacks(aead)
	if all == nil {
		all = map[ID]time.Time{}
	}
	now := time.Now()
	for id, t := range all {
		if !t.After(now.Add(-verifiedFresh)) || t.After(now) {
			delete(all, id)
		}
	}
	for _, id := range packs {
		if t, ok := all[id]; !ok || t.Before(when) {
			all[id] = when
		}
	}
	type entry struct {
		id ID
		t  time.Time
	}
	ents := make([]entry, 0, len(all))
	for id, t := range all {
		ents = append(ents, entry{id, t})
	}
	if len(ents) > verifiedPacksMax {
		slices.SortFunc(ents, func(a, b entry) int { return b.t.Compare(a.t) })
		ents = ents[:verifiedPacksMax]
	}
	plain := make([]byte, 0, len(ents)*verifiedEntrySize)
	for _, e := range ents {
		plain = binary.LittleEndian.AppendUint64(append(plain, e.id[:]...), uint64(e.t.UnixNano()))
	}
	r.cache.put(cacheIndexSnap, verifiedPacksName,
		seal(aead, append([]byte(verifiedPacksMagic), verifiedPacksVersion), plain, verifiedPacksAD))
}

// forgetVerifiedPacks drops every entry (a collection deleted packs).
func (r *Repository) forgetVerifiedPacks() {
	if r.cache != nil {
		r.cache.remove(cacheIndexSnap, verifiedPacksName)
	}
}
