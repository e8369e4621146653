package repository

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"backupd/storage"
	"backupd/storage/mem"
	"backupd/storage/s3"
	"backupd/storage/s3/s3test"
)

// newLockedRepo is a repository on a versitygw bucket with Object Lock,
// every object it locks held for period.
func newLockedRepo(t *testing.T, period time.Duration) (*Repository, *s3.Backend) {
	t.Helper()
	srv := s3test.StartTB(t)
	cfg := srv.Config("locked", "repo")
	cfg.Lock = &s3.Lock{Period: period, Unlocked: Unlocked}
	be := s3test.NewBackend(t, cfg)
	r, err := Init(context.Background(), be, InitOptions{Wrapping: testPass})
	if err != nil {
		t.Fatal(err)
	}
	return r, be
}

// TestGCHonoursLocks: a deleted backup disappears at once, but its
// manifest and the packs only it used stay (the server would refuse)
// until their locks end; then a collection removes them. The kept
// backup reads back whole throughout.
func TestGCHonoursLocks(t *testing.T) {
	ctx := context.Background()
	const period = 3 * time.Second
	r, be := newLockedRepo(t, period)
	keepData, goneData := randData(1, 3000), randData(2, 4000)
	keep := saveBackup(t, r, "backup-keep", keepData)
	gone := saveBackup(t, r, "backup-gone", goneData)
	written := time.Now()
	time.Sleep(1100 * time.Millisecond) // S3 times are in seconds: the packs predate the collection
	if err := r.DeleteManifest(ctx, "backup-gone"); err != nil {
		t.Fatalf("deleting a backup whose manifest is locked: %v", err)
	}
	if _, err := r.LoadManifest(ctx, "backup-gone"); err == nil {
		t.Fatal("a deleted backup still loads")
	}
	if _, err := be.Stat(ctx, manifestsPrefix+"backup-gone"); err != nil {
		t.Fatalf("the locked manifest: %v", err)
	}
	res, err := GC(ctx, r, GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	if res.Locks == nil || res.Deleted != 0 || res.Locks.WaitingPacks != 2 || res.Locks.WaitingManifests != 1 {
		t.Fatalf("while locked: %+v locks %+v", res, res.Locks)
	}
	if nu := res.Locks.NextUnlock; nu == nil || nu.Before(written) || nu.After(written.Add(period+2*time.Second)) {
		t.Fatalf("next unlock %v, written %v", res.Locks.NextUnlock, written)
	}
	if got, err := r.LoadBlob(ctx, DataBlob, gone); err != nil || string(got) != string(goneData) {
		t.Fatalf("the deleted backup's data, still stored: %v", err)
	}
	checkClean(t, be)

	time.Sleep(time.Until(written.Add(period + 1500*time.Millisecond)))
	res, err = GC(ctx, r, GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 2 || res.Locks.WaitingPacks != 0 || res.Locks.WaitingManifests != 0 {
		t.Fatalf("once unlocked: %+v locks %+v", res, res.Locks)
	}
	if _, err := be.Stat(ctx, manifestsPrefix+"backup-gone"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the deleted backup's manifest after its lock: %v", err)
	}
	if got, err := r.LoadBlob(ctx, DataBlob, keep); err != nil || string(got) != string(keepData) {
		t.Fatalf("kept backup: %v", err)
	}
	checkClean(t, be)
}

// TestGCExtendsLocks: once a quarter period has gone by since the last
// pass, a collection extends everything kept backups need, and records
// the pass so that the next collection extends nothing.
func TestGCExtendsLocks(t *testing.T) {
	ctx := context.Background()
	const period = 8 * time.Second
	r, be := newLockedRepo(t, period)
	saveBackup(t, r, "backup-1", randData(3, 2000))
	res, err := GC(ctx, r, GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	// the first pass: two packs, the manifest, the key entry, config
	if res.Locks.Extended != 5 || res.Locks.LastPass == nil {
		t.Fatalf("first pass: %+v", res.Locks)
	}
	if res, err = GC(ctx, r, GCOptions{SafetyWindow: 0}); err != nil || res.Locks.Extended != 0 {
		t.Fatalf("right after the first pass: %v %+v", err, res.Locks)
	}
	time.Sleep(period/4 + time.Second)
	before := time.Now()
	res, err = GC(ctx, r, GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	if res.Locks.Extended != 5 || res.Locks.LastPass == nil || res.Locks.LastPass.Before(before) {
		t.Fatalf("a quarter period on: %+v", res.Locks)
	}
	var packs int
	if err := be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		packs++
		st, err := be.Stat(ctx, oi.Name)
		if err != nil {
			return err
		}
		if st.LockedUntil.Before(before.Add(period)) {
			t.Errorf("%s locked until %v, want after %v", oi.Name, st.LockedUntil, before.Add(period))
		}
		return nil
	}); err != nil || packs != 2 {
		t.Fatalf("packs %d: %v", packs, err)
	}
	res, err = GC(ctx, r, GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	if res.Locks.Extended != 0 {
		t.Fatalf("right after a pass: %+v", res.Locks)
	}
	checkClean(t, be)
}

// TestGCExtendsAllLocksWhenTheMarkFails: someone with the storage
// credential plants an object that stops every collection's mark; the
// collections then extend every lock instead of none, so no lock runs
// out while the repository is being repaired.
func TestGCExtendsAllLocksWhenTheMarkFails(t *testing.T) {
	ctx := context.Background()
	const period = 8 * time.Second
	r, be := newLockedRepo(t, period)
	saveBackup(t, r, "backup-1", randData(4, 2000))
	if _, err := GC(ctx, r, GCOptions{SafetyWindow: 0}); err != nil {
		t.Fatal(err)
	}
	// a manifest that does not decode (an unlocked name would do as well)
	junk := "not a manifest"
	if err := be.Put(ctx, manifestsPrefix+"backup-junk", strings.NewReader(junk), int64(len(junk))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(period/4 + time.Second)
	before := time.Now()
	_, err := GC(ctx, r, GCOptions{SafetyWindow: 0})
	if err == nil || !strings.Contains(err.Error(), "extended meanwhile") {
		t.Fatalf("gc over a repository it cannot mark: %v", err)
	}
	if err := be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		st, err := be.Stat(ctx, oi.Name)
		if err == nil && st.LockedUntil.Before(before.Add(period-time.Second)) {
			t.Errorf("%s locked until %v only", oi.Name, st.LockedUntil)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestLockPassBoundToRepository: a pass record copied from another
// repository with the same keys is not taken for this one's.
func TestLockPassBoundToRepository(t *testing.T) {
	ctx := context.Background()
	r1, _ := newLockedRepo(t, time.Hour)
	if err := r1.writeLockPass(ctx, lockPass{at: time.Now(), period: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if p := r1.readLockPass(ctx); p.at.IsZero() || p.period != time.Hour {
		t.Fatalf("own pass record: %+v", p)
	}
	raw, err := storage.ReadAll(ctx, r1.be, lockPassName)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Init(ctx, mem.New(), InitOptions{Wrapping: testPass, Keys: r1.keys})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.be.Put(ctx, lockPassName, bytes.NewReader(raw), int64(len(raw))); err != nil {
		t.Fatal(err)
	}
	if p := r2.readLockPass(ctx); !p.at.IsZero() {
		t.Fatalf("a copied pass record was accepted: %+v", p)
	}
}

// TestRemoveLockedKey: a key entry cannot be deleted while locked. It is
// revoked instead: it opens nothing from then on, its lock is no longer
// extended, and the first collection after its lock ends removes it.
func TestRemoveLockedKey(t *testing.T) {
	ctx := context.Background()
	const period = 3 * time.Second
	r, be := newLockedRepo(t, period)
	leaked := Wrapping{Password: []byte("leaked password"), KDF: ptr(TestKDF())}
	e, err := r.AddKey(ctx, leaked)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, be, Credentials{Password: leaked.Password}); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveKey(ctx, e.ID); !errors.Is(err, ErrKeyLocked) {
		t.Fatalf("removing a locked key entry: %v, want ErrKeyLocked", err)
	}
	if _, err := Open(ctx, be, Credentials{Password: leaked.Password}); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("opening with a revoked key: %v", err)
	}
	if _, err := Open(ctx, be, Credentials{Password: testPass.Password}); err != nil {
		t.Fatalf("the other key: %v", err)
	}
	// a write-only key (a host's) cannot check the record, and is refused
	// all the same
	host := Wrapping{Password: []byte("host password"), KDF: ptr(TestKDF()), WriteOnly: true}
	he, err := r.AddKey(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveKey(ctx, he.ID); !errors.Is(err, ErrKeyLocked) {
		t.Fatalf("removing a locked write-only entry: %v", err)
	}
	if _, err := Open(ctx, be, Credentials{Password: host.Password}); err == nil {
		t.Fatal("a revoked write-only key still opens")
	}
	res, err := GC(ctx, r, GCOptions{SafetyWindow: 0})
	if err != nil {
		t.Fatal(err)
	}
	if res.Locks.WaitingKeys != 2 {
		t.Fatalf("while locked: %+v", res.Locks)
	}
	time.Sleep(period + time.Second)
	if res, err = GC(ctx, r, GCOptions{SafetyWindow: 0}); err != nil {
		t.Fatal(err)
	}
	if res.Locks.WaitingKeys != 0 {
		t.Fatalf("once unlocked: %+v", res.Locks)
	}
	for _, name := range []string{keysPrefix + e.ID, revokedPrefix + e.ID, keysPrefix + he.ID, revokedPrefix + he.ID} {
		if _, err := be.Stat(ctx, name); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s after the collection: %v", name, err)
		}
	}
}
