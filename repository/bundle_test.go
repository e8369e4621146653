package repository

import (
	"bytes"
	"context"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"backupd/storage"
	"backupd/storage/fault"
)

// textSet is fileSet with compressible content (16 letters, about 2:1):
// small files of it are bundle members.
func textSet(from, n, size int) files {
	fs := files{}
	for i := from; i < from+n; i++ {
		b := make([]byte, size)
		rng := rand.New(rand.NewSource(int64(i)))
		for j := range b {
			b[j] = "abcdefghijklmnop"[rng.Intn(16)]
		}
		fs[fmt.Sprint("t", i)] = b
	}
	return fs
}

// proseSet is fileSet with text of words and phrases that repeat, where
// zstd's stronger levels find matches its fastest one does not.
func proseSet(from, n, size int) files {
	words := make([]string, 300)
	wr := rand.New(rand.NewSource(1))
	for i := range words {
		w := make([]byte, 3+wr.Intn(8))
		for j := range w {
			w[j] = byte('a' + wr.Intn(26))
		}
		words[i] = string(w)
	}
	fs := files{}
	for i := from; i < from+n; i++ {
		rng := rand.New(rand.NewSource(int64(i)))
		var b []byte
		for len(b) < size {
			b = append(b, words[int(rng.ExpFloat64()*40)%len(words)]...)
			b = append(b, " ,.\n"[rng.Intn(4)])
		}
		fs[fmt.Sprint("p", i)] = b[:size]
	}
	return fs
}

// loaded is reopen with the index loaded.
func loaded(t *testing.T, be storage.Backend) *Repository {
	t.Helper()
	r := reopen(t, be)
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// savedBlobs saves each content as a data blob and flushes.
func savedBlobs(t *testing.T, r *Repository, contents [][]byte) []ID {
	t.Helper()
	ctx := context.Background()
	ids := make([]ID, len(contents))
	for i, c := range contents {
		id, _, err := r.SaveBlob(ctx, DataBlob, c)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

// Small blobs are stored as members of bundles, incompressible ones in
// bundles of their own that are stored raw; large ones alone. Every way of reading gives each member back,
// through this handle, a new one (index files) and a cached one (the
// index snapshot its first load wrote), and the check reads every bundle
// clean.
func TestBundlesRoundTrip(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	var contents [][]byte
	for i := 0; i < 300; i++ {
		contents = append(contents, textSet(i, 1, 10+i*17)[fmt.Sprint("t", i)])
	}
	big := textSet(1000, 1, bundleMember)["t1000"]
	random := randData(7, 10_000)
	contents = append(contents, big, random)
	// enough blobs for an index snapshot: tiny members, bundled by count
	for i := 0; i < indexSnapMin; i++ {
		contents = append(contents, []byte(fmt.Sprintf("tiny member %d, tiny member", i)))
	}
	ids := savedBlobs(t, r, contents)

	type place struct {
		pack   ID
		offset uint32
	}
	bundles := map[place]bool{}
	for i, id := range ids {
		loc, ok := r.Lookup(id)
		if !ok {
			t.Fatalf("blob %d not indexed", i)
		}
		switch {
		case i < 300 && !loc.Bundled():
			t.Fatalf("small blob %d (%d bytes) stored alone", i, len(contents[i]))
		case i == 300 && loc.Bundled():
			t.Fatalf("blob %d (%d bytes) bundled", i, len(contents[i]))
		case i == 301:
			// the random one: in a bundle of its own kind, stored raw
			// (codec byte, nonce and tag only)
			if !loc.Bundled() || loc.BundleRaw != uint32(len(random)) || loc.Length != loc.BundleRaw+1+12+16 {
				t.Fatalf("random blob: bundled %v, bundle of %d bytes stored in %d", loc.Bundled(), loc.BundleRaw, loc.Length)
			}
		}
		if loc.Bundled() && i < 300 {
			bundles[place{loc.Pack, loc.Offset}] = true
		}
	}
	// 300 blobs of 10 to 5,000 bytes: about 750 KB, one or two bundles
	if len(bundles) > 2 {
		t.Fatalf("%d bundles for 300 small blobs", len(bundles))
	}
	read := func(t *testing.T, r *Repository) {
		t.Helper()
		byPack := map[ID][]BlobLocation{}
		for i, id := range ids {
			got, err := r.LoadBlob(ctx, DataBlob, id)
			if err != nil || !bytes.Equal(got, contents[i]) {
				t.Fatalf("LoadBlob %d: %v", i, err)
			}
			loc, _ := r.Lookup(id)
			byPack[loc.Pack] = append(byPack[loc.Pack], loc)
		}
		want := map[ID][]byte{}
		for i, id := range ids {
			want[id] = contents[i]
		}
		n := 0
		for _, locs := range byPack {
			rand.Shuffle(len(locs), func(i, j int) { locs[i], locs[j] = locs[j], locs[i] })
			err := r.ReadPackBlobs(ctx, locs, func(l BlobLocation, data []byte, err error) error {
				if err != nil || !bytes.Equal(data, want[l.ID]) {
					return fmt.Errorf("ReadPackBlobs %s: %v", l.ID.Short(), err)
				}
				n++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if n != len(ids) {
			t.Fatalf("ReadPackBlobs gave %d blobs, want %d", n, len(ids))
		}
	}
	read(t, r)
	read(t, loaded(t, be))
	// through the index snapshot of a cached handle
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		cr := reopen(t, be)
		c, err := OpenCache(dir, cr.Config().ID)
		if err != nil {
			t.Fatal(err)
		}
		cr.SetCache(c)
		if err := cr.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		read(t, cr)
		if _, err := os.Stat(filepath.Join(c.Dir(), cacheIndexSnap, indexSnapName)); err != nil {
			t.Fatalf("no index snapshot after load %d: %v", i+1, err)
		}
	}
	checkClean(t, be)

	// the formats that can say so: pack version 2, index version 2
	be.List(ctx, "", func(oi storage.ObjectInfo) error {
		raw, _ := storage.ReadAll(ctx, be, oi.Name)
		switch {
		case strings.HasPrefix(oi.Name, "data/"):
			if v := raw[len(raw)-5]; v != packVersionBundles && v != packVersion {
				t.Errorf("%s: pack version %d", oi.Name, v)
			}
		case strings.HasPrefix(oi.Name, "index/"):
			if raw[4] != indexVersionBundles {
				t.Errorf("%s: index version %d", oi.Name, raw[4])
			}
		}
		return nil
	})
}

// A repository of format 2 is written as before: no bundles, and packs
// and index files a backupd of that format reads.
func TestFormat2RepositoriesGetNoBundles(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	r.cfg.Version = 2
	var contents [][]byte
	for _, c := range textSet(0, 20, 3000) {
		contents = append(contents, c)
	}
	for _, id := range savedBlobs(t, r, contents) {
		if loc, _ := r.Lookup(id); loc.Bundled() {
			t.Fatal("bundled in a format 2 repository")
		}
	}
	be.List(ctx, "", func(oi storage.ObjectInfo) error {
		raw, _ := storage.ReadAll(ctx, be, oi.Name)
		if strings.HasPrefix(oi.Name, "data/") && raw[len(raw)-5] != packVersion ||
			strings.HasPrefix(oi.Name, "index/") && raw[4] != indexVersion {
			t.Errorf("%s written in the format with bundles", oi.Name)
		}
		return nil
	})
}

// bundleOf returns where member id is.
func bundleOf(t *testing.T, r *Repository, id ID) BlobLocation {
	t.Helper()
	loc, ok := r.Lookup(id)
	if !ok || !loc.Bundled() {
		t.Fatalf("blob %s is not a bundle member", id.Short())
	}
	return loc
}

// A damaged bundle fails every member read from it, each by name, and the
// check lists them all; a member indexed at another member's place is
// refused (its content does not match its id).
func TestDamagedBundleFailsItsMembers(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	var contents [][]byte
	for _, c := range textSet(0, 10, 2000) {
		contents = append(contents, c)
	}
	ids := savedBlobs(t, r, contents)
	first := bundleOf(t, r, ids[0])

	// a member placed where another is: refused
	other := bundleOf(t, r, ids[1])
	lying := first
	lying.Inner, lying.RawLength = other.Inner, other.RawLength
	if _, err := loaded(t, be).readAt(ctx, lying); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("member read at another member's place: %v", err)
	}
	// and one placed past its bundle's end
	lying = first
	lying.Inner = lying.BundleRaw
	if _, err := loaded(t, be).readAt(ctx, lying); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("member read past its bundle: %v", err)
	}

	raw, _ := storage.ReadAll(ctx, be, packName(first.Pack))
	raw[first.Offset+first.Length/2] ^= 1
	be.Put(ctx, packName(first.Pack), bytes.NewReader(raw), int64(len(raw)))
	fresh := loaded(t, be)
	for i, id := range ids {
		_, err := fresh.LoadBlob(ctx, DataBlob, id)
		var be *BlobError
		if !errors.Is(err, ErrCorrupt) || !errors.As(err, &be) || be.Blob != id {
			t.Fatalf("member %d of a damaged bundle: %v", i, err)
		}
	}
	var locs []BlobLocation
	for _, id := range ids {
		loc, _ := fresh.Lookup(id)
		locs = append(locs, loc)
	}
	failed := map[ID]bool{}
	if err := fresh.ReadPackBlobs(ctx, locs, func(l BlobLocation, _ []byte, err error) error {
		if err != nil {
			failed[l.ID] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(failed) != len(ids) {
		t.Fatalf("ReadPackBlobs failed %d of %d members", len(failed), len(ids))
	}
	cr, err := Check(ctx, fresh, CheckOptions{ReadDataPercent: 100})
	if err != nil {
		t.Fatal(err)
	}
	msg := fmt.Sprintf("%+v", cr)
	if cr.OK || !strings.Contains(msg, fmt.Sprintf("%d damaged blob(s)", len(ids))) {
		t.Fatalf("check of a damaged bundle: %s", msg)
	}
}

// A pack's header and an index file that list members round-trip, and a
// member entry that reaches past its bundle is refused.
func TestMemberEntriesDecode(t *testing.T) {
	es := []PackEntry{
		{Type: DataBlob, ID: ID{1}, Offset: 0, Length: 100, RawLength: 50, Inner: 0, BundleRaw: 80},
		{Type: DataBlob, ID: ID{2}, Offset: 0, Length: 100, RawLength: 30, Inner: 50, BundleRaw: 80},
		{Type: TreeBlob, ID: ID{3}, Offset: 100, Length: 60, RawLength: 70},
	}
	got, err := decodePackHeader(encodePackHeader(es), 1000, true)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(es) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	bad := append([]PackEntry(nil), es...)
	bad[1].Inner = 51
	if _, err := decodePackHeader(encodePackHeader(bad), 1000, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("member past its bundle: %v", err)
	}
	b := encodePackHeader(es[:1])
	binary.LittleEndian.PutUint32(b[49:], maxBundleRaw+1)
	if _, err := decodePackHeader(b, 1000, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bundle over the bound: %v", err)
	}
	if _, err := decodePackHeader(encodePackHeader(es[:1])[:packEntryLen], 1000, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("member entry cut short: %v", err)
	}
	// a bundle longer than its content stored raw could be
	bad = append([]PackEntry(nil), es[:1]...)
	bad[0].Length = bad[0].BundleRaw + 1 + sealOverhead + 1
	if _, err := decodePackHeader(encodePackHeader(bad), 1000, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bundle longer than its bound: %v", err)
	}
	// members only in the format that can list them
	if _, err := decodePackHeader(encodePackHeader(es), 1000, false); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("members in a version 1 header: %v", err)
	}
	if _, err := decodePackHeader(encodePackHeader(es[2:]), 1000, false); err != nil {
		t.Fatalf("version 1 header: %v", err)
	}
	f := encodeIndexFile(testIndexAEAD(t), &IndexFile{Packs: []IndexPack{{ID: ID{9}, EphPublic: make([]byte, 32), Blobs: es}}})
	if f[4] != indexVersionBundles {
		t.Fatalf("index file listing members written as version %d", f[4])
	}
	f[4] = indexVersion // (the version byte is outside the sealed part)
	if _, err := decodeIndexFile(testIndexAEAD(t), f); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("members in a version 1 index file: %v", err)
	}
}

func testIndexAEAD(t *testing.T) cipher.AEAD {
	r, _ := newTestRepo(t)
	return r.indexAEAD
}

// Reading a bundle's members one by one (a copy, an export) fetches and
// decodes the bundle once.
func TestMembersReadAloneShareTheirBundle(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	var contents [][]byte
	for i := 0; i < 50; i++ {
		contents = append(contents, textSet(i, 1, 3000)[fmt.Sprint("t", i)])
	}
	ids := savedBlobs(t, r, contents)
	fb := fault.New(be)
	fr := reopen(t, fb)
	if err := fr.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	fb.Reset()
	for i, id := range ids {
		got, err := fr.LoadBlob(ctx, DataBlob, id)
		if err != nil || !bytes.Equal(got, contents[i]) {
			t.Fatalf("member %d: %v", i, err)
		}
		got[0] ^= 1 // the caller's own copy
	}
	if n := fb.Calls(fault.Get); n != 1 {
		t.Fatalf("%d reads for 50 members of one bundle", n)
	}
	for i, id := range ids {
		if got, err := fr.LoadBlob(ctx, DataBlob, id); err != nil || !bytes.Equal(got, contents[i]) {
			t.Fatalf("member %d read again: %v", i, err)
		}
	}
}

// Bundles of many tiny members close by their count, and packs by their
// header's size, not only by their data's, so every pack stays readable.
func TestPackHeaderBudget(t *testing.T) {
	defer func(b, m int) { packHeaderBudget, bundleMaxMembers = b, m }(packHeaderBudget, bundleMaxMembers)
	packHeaderBudget, bundleMaxMembers = 100*memberEntryLen, 30
	r, be := newTestRepo(t)
	var contents [][]byte
	for i := 0; i < 1000; i++ {
		contents = append(contents, []byte(fmt.Sprintf("small file %d, compressible compressible compressible", i)))
	}
	ids := savedBlobs(t, r, contents)
	fresh := loaded(t, be)
	packs := map[ID]int{}
	for i, id := range ids {
		loc, _ := fresh.Lookup(id)
		packs[loc.Pack]++
		if got, err := fresh.LoadBlob(context.Background(), DataBlob, id); err != nil || !bytes.Equal(got, contents[i]) {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
	for p, n := range packs {
		if n > 100 {
			t.Fatalf("pack %s holds %d entries, over the header budget", p.Short(), n)
		}
	}
	if len(packs) < 10 {
		t.Fatalf("%d packs for 1000 members at 100 a pack", len(packs))
	}
	checkClean(t, be)
}

// A flush that fails leaves nothing of its session looking stored.
func TestFailedFlushForgetsItsBlobs(t *testing.T) {
	ctx := context.Background()
	_, be := newTestRepo(t)
	fb := fault.New(be)
	r := reopen(t, fb)
	fb.Add(fault.Rule{Op: fault.Put, Prefix: "data/"})
	id, _, err := r.SaveBlob(ctx, DataBlob, []byte("a small member, never stored"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err == nil {
		t.Fatal("flush stored a pack the storage refused")
	}
	if r.Has(id) {
		t.Fatal("a blob whose pack was never stored looks stored")
	}
	fb.Reset()
	if _, added, err := r.SaveBlob(ctx, DataBlob, []byte("a small member, never stored")); err != nil || !added {
		t.Fatalf("saving it again: added %v, %v", added, err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := loaded(t, be).LoadBlob(ctx, DataBlob, id); err != nil {
		t.Fatal(err)
	}
}

// Repack keeps the live members of a bundle that is mostly unused, bundled
// again, and frees the rest.
func TestRepackRebundlesLiveMembers(t *testing.T) {
	ctx := context.Background()
	be, kept := partlyUsedWith(t, proseSet)
	r := loaded(t, be)
	var members int
	for _, p := range r.idx.Packs() {
		for _, b := range p.Blobs {
			if b.Bundled() {
				members++
			}
		}
	}
	if members < 25 {
		t.Fatalf("%d bundle members, want the 25 files", members)
	}
	before, _ := storedBytes(t, be)
	oldPacks := map[ID]bool{}
	for _, p := range r.idx.Packs() {
		oldPacks[p.ID] = true
	}
	res, err := GC(ctx, reopen(t, be), GCOptions{SafetyWindow: 0, Repack: noSmall})
	if err != nil {
		t.Fatal(err)
	}
	if rr := res.Repack; rr == nil || rr.Packs != 1 || rr.Blobs != 5 {
		t.Fatalf("repack: %+v", res.Repack)
	}
	after, _ := storedBytes(t, be)
	if after > before*2/3 {
		t.Fatalf("stored %d bytes before, %d after", before, after)
	}
	readBack(t, reopen(t, be), "backup-2", kept)
	checkClean(t, be)
	r = loaded(t, be)
	type place struct {
		pack   ID
		offset uint32
	}
	done := map[place]bool{}
	for _, p := range r.idx.Packs() {
		for _, b := range p.Blobs {
			if b.Type == DataBlob && !b.Bundled() {
				t.Fatalf("blob %s unbundled by the repack", b.ID.Short())
			}
			if !b.Bundled() || oldPacks[p.ID] {
				continue
			}
			// the bundles repack wrote are compressed at the stronger
			// level: smaller than the fastest level makes them
			loc, _ := r.Lookup(b.ID)
			if done[place{loc.Pack, loc.Offset}] {
				continue
			}
			done[place{loc.Pack, loc.Offset}] = true
			raw, err := storage.ReadAll(ctx, be, packName(loc.Pack))
			if err != nil {
				t.Fatal(err)
			}
			sealed := raw[loc.Offset : loc.Offset+loc.Length]
			plain, err := r.openBundle(loc, sealed, nil)
			if err != nil {
				t.Fatal(err)
			}
			fast := len(compressBundle(nil, CompressZstd, plain, false)) + 12 + 16
			if int(loc.Length) >= fast {
				t.Fatalf("a repacked bundle of %d bytes is stored in %d bytes; the fastest level gives %d", loc.BundleRaw, loc.Length, fast)
			}
		}
	}
	if len(done) == 0 {
		t.Fatal("no bundle after the repack")
	}
}

// A format 2 repository is written without bundles until it is upgraded;
// then the same handle and new ones bundle, and what was stored before
// still reads. A write-only key cannot upgrade.
func TestUpgradeToBundles(t *testing.T) {
	ctx := context.Background()
	_, be := newTestRepo(t)
	storeConfigVersion(t, be, 2)
	r := loaded(t, be)
	before := savedBlobs(t, r, [][]byte{[]byte("saved in format 2, compressible compressible")})
	if loc, _ := r.Lookup(before[0]); loc.Bundled() {
		t.Fatal("bundled before the upgrade")
	}
	if _, err := r.AddKey(ctx, Wrapping{Password: []byte("host secret"), KDF: ptr(TestKDF()), WriteOnly: true}); err != nil {
		t.Fatal(err)
	}
	host, err := Open(ctx, be, Credentials{Password: []byte("host secret")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := host.Upgrade(ctx); !errors.Is(err, ErrWriteOnly) {
		t.Fatalf("a write-only key upgraded the repository: %v", err)
	}
	if from, to, err := r.Upgrade(ctx); err != nil || from != 2 || to != FormatVersion {
		t.Fatalf("upgrade: %d -> %d, %v", from, to, err)
	}
	after := savedBlobs(t, r, [][]byte{[]byte("saved in format 3, compressible compressible")})
	if loc, _ := r.Lookup(after[0]); !loc.Bundled() {
		t.Fatal("not bundled after the upgrade")
	}
	fresh := loaded(t, be)
	if fresh.Config().Version != FormatVersion {
		t.Fatalf("version %d after the upgrade", fresh.Config().Version)
	}
	for _, id := range append(before, after...) {
		if _, err := fresh.LoadBlob(ctx, DataBlob, id); err != nil {
			t.Fatal(err)
		}
	}
	if from, to, err := fresh.Upgrade(ctx); err != nil || from != to {
		t.Fatalf("second upgrade: %d -> %d, %v", from, to, err)
	}
	checkClean(t, be)
}

// A format 1 repository is upgraded through format 2's step: the canary
// that stops a format 1 collection holding a handle is written first.
func TestUpgradeFromFormat1(t *testing.T) {
	ctx := context.Background()
	_, be := newTestRepo(t)
	storeConfigVersion(t, be, 1)
	r := loaded(t, be)
	if from, to, err := r.Upgrade(ctx); err != nil || from != 1 || to != FormatVersion {
		t.Fatalf("upgrade: %d -> %d, %v", from, to, err)
	}
	if _, err := be.Stat(ctx, formatCanary); err != nil {
		t.Fatalf("no format canary: %v", err)
	}
	if v := loaded(t, be).Config().Version; v != FormatVersion {
		t.Fatalf("version %d", v)
	}
}
