package repository

// Immutable locations (S3 Object Lock, storage.Locker).
//
// What a backup needs to be restored, and cannot be rebuilt from the rest,
// is locked when it is stored: packs, manifests and manifest sets, key
// entries, the configuration. Objects the repository rewrites or removes
// as a matter of course stay unlocked: the index (rebuilt from the packs
// by `repo repair-index`), tombstones, markers of writers and collections.
//
// Locks roll. Once a quarter period has gone by since the last pass, a
// collection extends, to now + period, the lock of every object a kept
// backup needs; it then records the pass (locks/extended, authenticated
// with the repository's keys and bound to this repository and period).
// After a pass at P every object kept backups need is locked until at
// least P + period, so collections at least every half period keep it
// locked with a quarter period or more to spare: a backup stays locked
// for as long as it is kept and collections run, and for at least three
// quarters of a period after it was last seen kept. A collection that
// cannot tell what is kept (a manifest it cannot read, a missing index
// entry: what someone holding the storage credential could cause)
// extends every object under a locked name instead, so breaking the mark
// never lets a lock run out. What a
// collection may delete (packs no backup uses, a deleted backup's
// manifest) waits until its lock has ended, condemned; the server would
// refuse anyway.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"backupd/storage"
)

// locksPrefix holds the record of the last extension pass.
const locksPrefix = "locks/"

const lockPassName = locksPrefix + "extended"

// revokedPrefix: records of key entries removed while locked (one each,
// named by the entry's id). A revoked entry opens nothing, is not
// extended, and goes once its lock ends.
const revokedPrefix = locksPrefix + "revoked/"

// ErrKeyLocked is returned (wrapped) when a key entry to remove is
// locked: it is revoked instead (opens nothing from now on through
// backupd) and removed by the first collection after its lock ends.
var ErrKeyLocked = errors.New("the key entry is locked: revoked now, removed once its lock ends")

func (r *Repository) revokedID(id string) string { return "\x00key\x00" + r.cfg.ID + "\x00" + id }

// revokeKey records that the entry id is revoked.
func (r *Repository) revokeKey(ctx context.Context, id string) error {
	raw, err := encodeTombstone(r.keys, r.revokedID(id), time.Now())
	if err != nil {
		return err
	}
	return r.be.Put(ctx, revokedPrefix+id, bytes.NewReader(raw), int64(len(raw)))
}

// KeyRevoked reports whether the key entry id has an authentic
// revocation record (removed while locked, it lingers until its lock
// ends). A write-only key cannot check the record: for it, any record
// counts (someone holding the storage credential could plant one and
// stop it writing, as they could by deleting its entry).
func (r *Repository) KeyRevoked(ctx context.Context, id string) bool {
	raw, err := storage.ReadAll(ctx, r.be, revokedPrefix+id)
	if err != nil {
		return false
	}
	if !r.keys.CanRead() {
		return true
	}
	return verifyTombstone(r.keys, r.revokedID(id), raw) == nil
}

// removeKeyEntry deletes a key entry; a locked one is revoked instead
// (ErrKeyLocked).
func (r *Repository) removeKeyEntry(ctx context.Context, id string) error {
	err := r.be.Delete(ctx, keysPrefix+id)
	if !errors.Is(err, storage.ErrLocked) {
		return err
	}
	if rerr := r.revokeKey(ctx, id); rerr != nil {
		return fmt.Errorf("key %s is locked, and recording its revocation failed: %w", id, rerr)
	}
	until := ""
	if t := lockedUntil(err); !t.IsZero() {
		until = " (its lock ends " + t.UTC().Format(time.RFC3339) + ")"
	}
	return fmt.Errorf("key %s%s: %w", id, until, ErrKeyLocked)
}

// revokedKeys lists the key entries with an authentic revocation record,
// by id, with the record.
func (r *Repository) revokedKeys(ctx context.Context) (map[string]storage.ObjectInfo, error) {
	out := map[string]storage.ObjectInfo{}
	err := r.be.List(ctx, revokedPrefix, func(oi storage.ObjectInfo) error {
		if id := strings.TrimPrefix(oi.Name, revokedPrefix); r.KeyRevoked(ctx, id) {
			out[id] = oi
		}
		return nil
	})
	return out, err
}

// collectRevokedKeys deletes the revoked key entries whose locks have
// ended, then their records.
func (r *Repository) collectRevokedKeys(ctx context.Context, revoked map[string]storage.ObjectInfo, pass time.Time, period time.Duration,
	now time.Time, lr *LockReport) error {
	for id, rec := range revoked {
		oi, err := r.be.Stat(ctx, keysPrefix+id)
		if err == nil {
			end, locked := surelyLocked(oi, pass, period, now)
			if !oi.LockedUntil.IsZero() { // the server said
				end, locked = oi.LockedUntil, now.Before(oi.LockedUntil)
			}
			if locked {
				lr.WaitingKeys++
				lr.waiting(end)
				continue
			}
			err = r.be.Delete(ctx, oi.Name)
			if errors.Is(err, storage.ErrLocked) {
				lr.WaitingKeys++
				lr.waiting(lockedUntil(err))
				continue
			}
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if err := r.be.Delete(ctx, rec.Name); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// lockPassMagic starts the pass record.
const lockPassMagic = "BLKP"

// unlockedPrefixes are the objects Put leaves unlocked.
var unlockedPrefixes = []string{"index/", tombstonesPrefix, gcPrefix, writersPrefix, collectorsPrefix, pendingPrefix, locksPrefix}

// Unlocked reports whether an immutable location leaves name unlocked:
// it is rewritten or removed as a matter of course. name may be below a
// host's directory (hosts/<id>/index/...).
func Unlocked(name string) bool {
	for _, p := range unlockedPrefixes {
		if strings.HasPrefix(name, p) || strings.Contains(name, "/"+p) {
			return true
		}
	}
	return false
}

// LockReport tells what a collection did about locks.
type LockReport struct {
	// Period is how long a new object is locked ("append-only": for ever).
	Period string `json:"period"`
	// AppendOnly: the location never deletes what it keeps; what waits
	// goes at a maintenance run with a credential that may delete.
	AppendOnly bool `json:"append_only,omitempty"`
	// Late: the last pass was more than three quarters of a period ago,
	// so locks may have ended meanwhile: cleanups must run at least
	// every half period.
	Late bool `json:"late,omitempty"`
	// Extended: locks extended by this collection (0 when the last pass
	// is recent: see LastPass).
	Extended int `json:"extended"`
	// LastPass: when every kept backup's objects were last extended.
	LastPass *time.Time `json:"last_pass,omitempty"`
	// WaitingPacks and WaitingBytes: unused packs kept until their lock
	// ends; WaitingManifests: deleted backups' manifests likewise.
	WaitingPacks     int   `json:"waiting_packs"`
	WaitingBytes     int64 `json:"waiting_bytes"`
	WaitingManifests int   `json:"waiting_manifests"`
	// WaitingKeys: revoked key entries likewise.
	WaitingKeys int `json:"waiting_keys,omitempty"`
	// NextUnlock: the earliest end of a waiting object's lock, as far as
	// known.
	NextUnlock *time.Time `json:"next_unlock,omitempty"`
}

// newLockReport is the report of a location locking for period.
func newLockReport(period time.Duration) *LockReport {
	if period >= storage.LockForever {
		return &LockReport{Period: "append-only", AppendOnly: true}
	}
	return &LockReport{Period: period.String()}
}

func (lr *LockReport) waiting(until time.Time) {
	if !lr.AppendOnly && !until.IsZero() && (lr.NextUnlock == nil || until.Before(*lr.NextUnlock)) {
		lr.NextUnlock = &until
	}
}

func (lr *LockReport) setPass(t time.Time) {
	if t.IsZero() {
		lr.LastPass = nil
		return
	}
	lr.LastPass = &t
}

// lockPeriod is how long the repository's storage locks a new object (0:
// it does not).
func (r *Repository) lockPeriod() time.Duration { return storage.LockPeriodOf(r.be) }

// lockPass is the last extension pass: when, and the period it extended
// by.
type lockPass struct {
	at     time.Time
	period time.Duration
}

func (r *Repository) lockPassMAC(key []byte, at, period uint64) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("backupd lock pass v1\x00" + r.cfg.ID + "\x00"))
	h.Write(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, at), period))
	return h.Sum(nil)
}

// readLockPass reads the last pass; zero when there was none, or its
// record does not authenticate as this repository's (one copied from
// another location sharing the keys does not).
func (r *Repository) readLockPass(ctx context.Context) lockPass {
	raw, err := storage.ReadAll(ctx, r.be, lockPassName)
	if err != nil || len(raw) != 4+16+32 || string(raw[:4]) != lockPassMagic {
		return lockPass{}
	}
	key, err := r.keys.tombstoneKey()
	if err != nil {
		return lockPass{}
	}
	at, period := binary.BigEndian.Uint64(raw[4:12]), binary.BigEndian.Uint64(raw[12:20])
	if !hmac.Equal(raw[20:], r.lockPassMAC(key, at, period)) {
		return lockPass{}
	}
	return lockPass{at: time.Unix(0, int64(at)), period: time.Duration(period)}
}

func (r *Repository) writeLockPass(ctx context.Context, p lockPass) error {
	key, err := r.keys.tombstoneKey()
	if err != nil {
		return err
	}
	at, period := uint64(p.at.UnixNano()), uint64(p.period)
	raw := append([]byte(lockPassMagic), binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, at), period)...)
	raw = append(raw, r.lockPassMAC(key, at, period)...)
	return r.be.Put(ctx, lockPassName, bytes.NewReader(raw), int64(len(raw)))
}

// lockPassOf is the pass to estimate with: its time, and a period no
// longer than the current one (a writer with a shorter period, or a
// pass that extended by less, locked for less).
func (r *Repository) lockPassOf(ctx context.Context) (time.Time, time.Duration) {
	period := r.lockPeriod()
	p := r.readLockPass(ctx)
	if p.at.IsZero() {
		return time.Time{}, period
	}
	return p.at, min(period, p.period)
}

// lockedAt is a lower bound of the end of the lock of an object written
// at modTime: modTime + period, and pass + 3/4 period if it was there
// (and needed) at the last pass.
func lockedAt(modTime, pass time.Time, period time.Duration) time.Time {
	end := modTime.Add(period)
	if p := pass.Add(period / 4 * 3); !pass.IsZero() && modTime.Before(pass) && p.After(end) {
		end = p
	}
	return end
}

// surelyLocked reports whether an object whose deletion is wanted is
// still locked by the estimate (then it is not asked for: the server
// would refuse). An object the estimate lets go may still be locked
// longer (extended by a pass whose record is lost); Delete says so.
func surelyLocked(oi storage.ObjectInfo, pass time.Time, period time.Duration, now time.Time) (time.Time, bool) {
	if period <= 0 {
		return time.Time{}, false
	}
	end := lockedAt(oi.ModTime, pass, period)
	return end, now.Before(end)
}

// lockedUntil is the lock's end an ErrLocked names, if it does.
func lockedUntil(err error) time.Time {
	var le *storage.LockError
	if errors.As(err, &le) {
		return le.Until
	}
	return time.Time{}
}

// extendLocks extends the locks of live (objects kept backups need) when
// the last pass is a quarter period old, then records the pass.
// pass and estimate are lockPassOf's.
func (r *Repository) extendLocks(ctx context.Context, live []storage.ObjectInfo, pass time.Time, estimate time.Duration, now time.Time, lr *LockReport) error {
	period := r.lockPeriod()
	l, ok := r.be.(storage.Locker)
	if period <= 0 || !ok {
		return nil
	}
	if !pass.IsZero() && !pass.After(now) && now.Sub(pass) < estimate/4 {
		return nil
	}
	if !pass.IsZero() && now.Sub(pass) > estimate/4*3 && period < storage.LockForever {
		lr.Late = true
	}
	// Every object: one written since the last pass may have been locked
	// for less than this collection's period (a writer whose period
	// followed another retention horizon), and nothing here knows.
	until := now.Add(period)
	var todo []string
	for _, oi := range live {
		if !l.Unlocked(oi.Name) {
			todo = append(todo, oi.Name)
		}
	}
	var n atomic.Int64
	var mu sync.Mutex
	var firstErr error
	_ = parallel(ctx, len(todo), 8, func(i int) error {
		if err := l.ExtendLock(ctx, todo[i], until); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil // deleted meanwhile (a tombstoned manifest)
			}
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			return nil
		}
		n.Add(1)
		return nil
	})
	lr.Extended = int(n.Load())
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.writeLockPass(ctx, lockPass{at: now, period: period}); err != nil {
		return err
	}
	lr.setPass(now)
	return nil
}

// lockedPrefixes hold what a locked location locks (besides config).
var lockedPrefixes = []string{"data/", manifestsPrefix, manifestSetsPrefix, keysPrefix}

// extendAllLocks is the pass of a collection that could not tell what
// kept backups need: every object under a locked name is extended.
func (r *Repository) extendAllLocks(ctx context.Context, now time.Time) (*LockReport, error) {
	lr := newLockReport(r.lockPeriod())
	var all []storage.ObjectInfo
	for _, p := range lockedPrefixes {
		if err := r.be.List(ctx, p, func(oi storage.ObjectInfo) error {
			all = append(all, oi)
			return nil
		}); err != nil {
			return lr, err
		}
	}
	if oi, err := r.be.Stat(ctx, configName); err == nil {
		all = append(all, oi)
	}
	pass, estimate := r.lockPassOf(ctx)
	lr.setPass(pass)
	return lr, r.extendLocks(ctx, all, pass, estimate, now, lr)
}

// lockRoots lists the objects every backup needs besides its own: the
// key entries not revoked, and the configuration.
func (r *Repository) lockRoots(ctx context.Context, revoked map[string]storage.ObjectInfo) ([]storage.ObjectInfo, error) {
	var out []storage.ObjectInfo
	if err := r.be.List(ctx, keysPrefix, func(oi storage.ObjectInfo) error {
		if _, gone := revoked[strings.TrimPrefix(oi.Name, keysPrefix)]; !gone {
			out = append(out, oi)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	oi, err := r.be.Stat(ctx, configName)
	if err != nil {
		return nil, err
	}
	return append(out, oi), nil
}

// compactManifestsLocked is compactManifests on an immutable location,
// where manifests are not folded into sets (folding would delete locked
// manifests and sets). It removes the manifests of deleted backups whose
// locks have ended, then their tombstones as compactManifests does.
func (r *Repository) compactManifestsLocked(ctx context.Context, v *manifestView, now time.Time, window time.Duration,
	valid func() error, pass time.Time, period time.Duration, lr *LockReport) (*ManifestCompaction, error) {
	res := &ManifestCompaction{Sets: len(v.sets)}
	held := map[string]bool{}
	for _, s := range v.sets {
		for _, e := range s.entries {
			held[e.id] = true
		}
	}
	for id, tomb := range v.tombs {
		if held[id] {
			// a set holds it, and sets stay: so does the tombstone
			continue
		}
		if oi, loose := v.loose[id]; loose {
			if end, locked := surelyLocked(oi, pass, period, now); locked {
				lr.WaitingManifests++
				lr.waiting(end)
				continue
			}
			if err := valid(); err != nil {
				return nil, err
			}
			err := r.be.Delete(ctx, oi.Name)
			if errors.Is(err, storage.ErrLocked) {
				lr.WaitingManifests++
				lr.waiting(lockedUntil(err))
				continue
			}
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, fmt.Errorf("deleting %s: %w", oi.Name, err)
			}
			r.cache.remove(cacheManifests, id)
			continue // its tombstone goes in a later collection, once past the window
		}
		if err := r.removeOldTombstone(ctx, id, tomb, now, window, valid, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}
