package repository

import (
	"cmp"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
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
// writer's index shows condemned. So such a pack is gone when the storage
// lost it, or after races that already take two failures (a repair
// indexing a pack again while a collection deletes it; a collection that
// failed between condemning and rewriting the index, racing a commit that
// indexed the pack again). A loss is found by the first backup depending
// on the pack more than verifiedFresh after it was last looked up, not by
// the very next one; the backups in between reference data that is gone.
// Only packs the commit's index listed and did not show condemned are
// recorded. A collection run through this cache drops the file before it
// deletes packs: a shorter window, not what safety rests on (a commit
// racing it may write entries back; another host's collection, or another
// cache's, does not touch it).
//
// Times are the boot clock's (CLOCK_BOOTTIME) under the boot's id, not
// the wall clock: a clock set back cannot make an old finding recent, and
// after a reboot every entry is stale. The file is sealed under a key
// derived from the index key, bound to the storage location: a copy of
// the repository elsewhere (a replica, a bucket restored) shares the
// repository id and so the cache, but not what was found stored.
//
// Why: a pack each small backup writes becomes a dependency of every
// backup after it, until a cleanup repacks them; bench case D checked about
// 100 packs a backup before each cleanup (a listing of data/, 8 of a
// backup's 31 ms), where the 10th backup checked 17. With the entries, a
// backup checks the packs its parent's commit did not: those it wrote.
//
// The file holds the boot id and at most verifiedPacksMax pairs (pack
// id, boot clock in nanoseconds), sealed as one: a file that does not open
// is ignored and written over; deleting it only costs the requests again.
const (
	verifiedPacksName    = "verified-packs"
	verifiedPacksMagic   = "BKVP"
	verifiedPacksVersion = 1
	verifiedPacksMax     = 4096
	verifiedEntrySize    = 32 + 8
	bootIDSize           = 36 // as the kernel writes it
)

// verifiedFresh is how long a pack found stored is taken as stored.
var verifiedFresh = 10 * time.Minute

var verifiedPacksAD = []byte("backupd verified packs v1")

// bootClock returns the boot's id and the time since boot (suspended
// time included); false where either cannot be read (then nothing is
// kept). A variable for tests.
var bootClock = func() (string, time.Duration, bool) {
	bootIDOnce.Do(func() {
		if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
			if id := strings.TrimSpace(string(b)); len(id) == bootIDSize {
				bootID = id
			}
		}
	})
	var ts unix.Timespec
	if bootID == "" || unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return "", 0, false
	}
	return bootID, time.Duration(ts.Nano()), true
}

var (
	bootIDOnce sync.Once
	bootID     string
)

// verifiedPacksAEAD is the file's key, derived once a handle.
func (r *Repository) verifiedPacksAEAD() cipher.AEAD {
	if r.cache == nil {
		return nil
	}
	r.vpacksOnce.Do(func() {
		if len(r.keys.IndexKey) != 32 {
			return
		}
		if key, err := hkdf.Key(sha256.New, r.keys.IndexKey, nil, string(verifiedPacksAD), 32); err == nil {
			r.vpacksAEAD, _ = newAEAD(key)
		}
	})
	return r.vpacksAEAD
}

// verifiedPacksBound is what the file is sealed to: the format, and where
// the packs were found.
func (r *Repository) verifiedPacksBound() []byte {
	return append(append(slices.Clip(verifiedPacksAD), 0), r.be.Location()...)
}

// readVerifiedPacks returns the cached entries of this boot (nil when
// there are none, or the file does not open or is of another boot).
func (r *Repository) readVerifiedPacks(aead cipher.AEAD, boot string) map[ID]time.Duration {
	raw, err := os.ReadFile(r.cache.path(cacheIndexSnap, verifiedPacksName))
	if err != nil || len(raw) < 5 || string(raw[:4]) != verifiedPacksMagic || raw[4] != verifiedPacksVersion {
		return nil
	}
	plain, err := openInPlace(aead, raw[5:], r.verifiedPacksBound())
	if err != nil || len(plain) < bootIDSize || string(plain[:bootIDSize]) != boot {
		return nil
	}
	plain = plain[bootIDSize:]
	if len(plain)%verifiedEntrySize != 0 || len(plain)/verifiedEntrySize > verifiedPacksMax {
		return nil
	}
	out := make(map[ID]time.Duration, len(plain)/verifiedEntrySize)
	for e := plain; len(e) > 0; e = e[verifiedEntrySize:] {
		out[ID(e[:32])] = time.Duration(binary.LittleEndian.Uint64(e[32:]))
	}
	return out
}

// isFresh reports whether a finding at t is fresh at now: in
// (now-verifiedFresh, now].
func isFresh(t, now time.Duration) bool { return t > now-verifiedFresh && t <= now }

// freshPacks returns the packs found stored less than verifiedFresh
// before now (a bootClock time), nil when none are or nothing is kept.
func (r *Repository) freshPacks(boot string, now time.Duration) map[ID]bool {
	aead := r.verifiedPacksAEAD()
	if aead == nil || boot == "" {
		return nil
	}
	out := map[ID]bool{}
	for id, t := range r.readVerifiedPacks(aead, boot) {
		if isFresh(t, now) {
			out[id] = true
		}
	}
	return out
}

// keepVerifiedPacks records packs found stored at when (a bootClock time
// no later than the requests that found them), beside the entries still
// fresh; the newest verifiedPacksMax are kept. Failures only cost
// requests.
func (r *Repository) keepVerifiedPacks(packs []ID, boot string, when time.Duration) {
	aead := r.verifiedPacksAEAD()
	if aead == nil || boot == "" || len(packs) == 0 {
		return
	}
	all := r.readVerifiedPacks(aead, boot)
	if all == nil {
		all = map[ID]time.Duration{}
	}
	if b, now, ok := bootClock(); ok && b == boot {
		for id, t := range all {
			if !isFresh(t, now) {
				delete(all, id)
			}
		}
	}
	for _, id := range packs {
		if t, ok := all[id]; !ok || t < when {
			all[id] = when
		}
	}
	type entry struct {
		id ID
		t  time.Duration
	}
	ents := make([]entry, 0, len(all))
	for id, t := range all {
		ents = append(ents, entry{id, t})
	}
	if len(ents) > verifiedPacksMax {
		slices.SortFunc(ents, func(a, b entry) int { return cmp.Compare(b.t, a.t) })
		ents = ents[:verifiedPacksMax]
	}
	plain := make([]byte, 0, bootIDSize+len(ents)*verifiedEntrySize)
	plain = append(plain, boot...)
	for _, e := range ents {
		plain = binary.LittleEndian.AppendUint64(append(plain, e.id[:]...), uint64(e.t))
	}
	r.cache.put(cacheIndexSnap, verifiedPacksName,
		seal(aead, append([]byte(verifiedPacksMagic), verifiedPacksVersion), plain, r.verifiedPacksBound()))
}

// forgetVerifiedPacks drops every entry (a collection deletes packs; see
// above: this shortens the window, it is not what safety rests on).
func (r *Repository) forgetVerifiedPacks() {
	if r.cache != nil {
		r.cache.remove(cacheIndexSnap, verifiedPacksName)
	}
}
