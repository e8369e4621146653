package repository

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"strings"
	"testing"
	"time"

	"backupd/storage"
)

// A host that writes its own repository (through the server) indexes a
// blob of its past backup a second time, in a pack of garbage, and gets
// the index to read it from there. A collection that trusted the index
// deletes the real copy under the backup; an untrusted one reads the
// other copy back first, finds it bad, and keeps the pack.
func TestUntrustedGCKeepsThePackWhoseOtherCopyIsForged(t *testing.T) {
	for _, untrusted := range []bool{true, false} {
		ctx := context.Background()
		r, be := newTestRepo(t)
		data := randData(71, 6000)
		x := r.BlobID(data)
		// the forged copy: garbage under a pack name, indexed as x
		var forged ID
		crand.Read(forged[:])
		junk := randData(72, 200)
		if err := be.Put(ctx, packName(forged), bytes.NewReader(junk), int64(len(junk))); err != nil {
			t.Fatal(err)
		}
		if _, err := r.writeIndexFile(ctx, &IndexFile{Packs: []IndexPack{{ID: forged, EphPublic: make([]byte, 32),
			Blobs: []PackEntry{{Type: DataBlob, ID: x, Offset: 0, Length: 200, RawLength: 6000}}}}}, false); err != nil {
			t.Fatal(err)
		}
		collector, _ := Open(ctx, be, Credentials{Password: testPass.Password})
		if err := collector.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		// the real backup, written by a session that knew nothing of it
		w, _ := Open(ctx, be, Credentials{Password: testPass.Password})
		saveBackup(t, w, "backup-a", data)
		if err := collector.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		if loc, _ := collector.Lookup(x); loc.Pack != forged {
			t.Fatalf("setup: the index reads x from %s, not the forged pack", loc.Pack.Short())
		}
		real := map[ID]bool{}
		for _, p := range collector.idx.Packs() {
			for _, b := range p.Blobs {
				if b.ID == x && p.ID != forged {
					real[p.ID] = true
				}
			}
		}
		res, err := GC(ctx, collector, GCOptions{Untrusted: untrusted})
		if err != nil {
			t.Fatal(err)
		}
		kept := true
		for p := range real {
			if _, err := be.Stat(ctx, packName(p)); err != nil {
				kept = false
			}
		}
		if !untrusted {
			// the attack, as it worked before: the real copy is gone
			if kept || res.Deleted == 0 {
				t.Fatalf("trusted collection: expected the real pack deleted (the attack this guards against): %+v", res)
			}
			continue
		}
		if !kept || res.Unconfirmed != 1 {
			t.Fatalf("untrusted collection deleted the real copy: %+v", res)
		}
		// the backup still reads: its blob from the real copy
		fresh, _ := Open(ctx, be, Credentials{Password: testPass.Password})
		fresh.LoadIndex(ctx)
		got, err := fresh.LoadBlob(ctx, DataBlob, x)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("the backup's blob after collection: %v", err)
		}
		// a restore reading where the forged entry points gets the real
		// copy instead, whole packs or one blob at a time
		for _, off := range []uint32{0, 1 << 30} {
			forgedLoc := BlobLocation{Pack: forged, EphPublic: make([]byte, 32), PackEntry: PackEntry{Type: DataBlob, ID: x, Offset: off, Length: 200, RawLength: 6000}}
			var read []byte
			err = fresh.ReadPackBlobs(ctx, []BlobLocation{forgedLoc}, func(_ BlobLocation, d []byte, derr error) error {
				if derr != nil {
					return derr
				}
				read = bytes.Clone(d)
				return nil
			})
			if err != nil || !bytes.Equal(read, data) {
				t.Fatalf("reading at the forged entry (offset %d): %v", off, err)
			}
		}
		// and a later collection does not condemn it either
		res, err = GC(ctx, collector, GCOptions{Untrusted: true})
		if err != nil || res.Unconfirmed != 1 || res.Deleted != 0 {
			t.Fatalf("second collection: %v %+v", err, res)
		}
		var n int
		be.List(ctx, "data/", func(storage.ObjectInfo) error { n++; return nil })
		if n < 2 {
			t.Fatalf("packs left: %d", n)
		}
	}
}

// A repack's copies are this collection's own: the pack they came from
// is condemned, and a later collection reads the copies back and deletes
// it (an untrusted repository too).
func TestUntrustedGCRepacksAndCollects(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	dead, live := randData(81, 50000), randData(82, 3000)
	deadID, _, _ := r.SaveBlob(ctx, DataBlob, dead)
	liveID, _, _ := r.SaveBlob(ctx, DataBlob, live)
	for _, b := range []struct {
		id      string
		content []ID
	}{{"backup-a", []ID{deadID, liveID}}, {"backup-b", []ID{liveID}}} {
		tree, err := r.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: "f", Type: NodeFile, Content: b.content}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.SaveManifest(ctx, &Manifest{ID: b.id, Type: "full", Components: []ComponentManifest{{Name: "c", Tree: tree}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.DeleteManifest(ctx, "backup-a"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { be.SetModTime(oi.Name, now.Add(-3*time.Hour)); return nil })
	res, err := GC(ctx, r, GCOptions{Untrusted: true, Repack: &RepackOptions{}, SafetyWindow: time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if res.Repack == nil || res.Repack.NewPacks == 0 || res.Condemned == 0 {
		t.Fatalf("first collection did not repack: %+v %+v", res, res.Repack)
	}
	res, err = GC(ctx, r, GCOptions{Untrusted: true, SafetyWindow: time.Hour, Now: now.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Unconfirmed != 0 || res.Deleted == 0 {
		t.Fatalf("second collection kept the repacked packs: %+v", res)
	}
	fresh, _ := Open(ctx, be, Credentials{Password: testPass.Password})
	if cr, err := Check(ctx, fresh, CheckOptions{ReadDataPercent: 100}); err != nil || !cr.OK {
		t.Fatalf("check: %v %+v", err, cr)
	}
}

// An index file whose body unfolds far beyond its size (a few kilobytes
// into a gigabyte, written to exhaust a reader's memory) is refused
// before it is decoded; real index files of every size still load.
func TestIndexBodyBombIsRefused(t *testing.T) {
	bomb := indexEncoder().EncodeAll(make([]byte, 256<<20), nil)
	if _, err := decodeIndexBody(bomb); err == nil || !strings.Contains(err.Error(), "more than an index file holds") {
		t.Fatalf("a %d-byte body of 256 MiB: %v", len(bomb), err)
	}
	for _, n := range []int{0, 10, 100, 5000, 3 << 20} {
		body := randData(int64(n), n)
		got, err := decodeIndexBody(indexEncoder().EncodeAll(body, nil))
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("a real body of %d bytes: %v", n, err)
		}
	}
}

// A forged entry for a blob in the very pack that holds it (another
// offset) neither replaces the real entry nor is lost to it: a reader
// that meets the forged one first still reads the blob, and an index
// rewrite keeps both.
func TestForgedEntryInTheSamePackDoesNotHideTheRealOne(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	data := randData(91, 7000)
	saveBackup(t, r, "backup-a", data)
	saveBackup(t, r, "backup-b", randData(92, 5000))
	x := r.BlobID(data)
	real, _ := r.Lookup(x)
	bogus := real.PackEntry
	bogus.Offset++
	if _, err := r.writeIndexFile(ctx, &IndexFile{Packs: []IndexPack{{ID: real.Pack, EphPublic: real.EphPublic, Blobs: []PackEntry{bogus}}}}, false); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		for i := 0; i < 5; i++ {
			fresh, _ := Open(ctx, be, Credentials{Password: testPass.Password})
			if err := fresh.LoadIndex(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := fresh.LoadBlob(ctx, DataBlob, x)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: reading the blob: %v", when, err)
			}
			n := 0
			for _, p := range fresh.Index().Packs() {
				for _, b := range p.Blobs {
					if b.ID == x && p.ID == real.Pack {
						n++
					}
				}
			}
			if n != 2 {
				t.Fatalf("%s: %d entries for the blob in its pack, want the real and the forged", when, n)
			}
		}
	}
	check("before a collection")
	if err := r.DeleteManifest(ctx, "backup-b"); err != nil {
		t.Fatal(err)
	}
	collector, _ := Open(ctx, be, Credentials{Password: testPass.Password})
	res, err := GC(ctx, collector, GCOptions{Untrusted: true})
	if err != nil || res.Deleted == 0 {
		t.Fatalf("collection: %v %+v", err, res)
	}
	check("after a collection rewrote the index")
}

// A listing that leaves out a pack (a storage that failed or lied) does
// not make a collection drop the pack's index entries.
func TestGCAsksForAPackTheListingLeftOut(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	data := randData(95, 6000)
	saveBackup(t, r, "backup-a", data)
	saveBackup(t, r, "backup-b", randData(96, 5000))
	x := r.BlobID(data)
	loc, _ := r.Lookup(x)
	r.DeleteManifest(ctx, "backup-b")
	short := &shortListing{Backend: be, hide: packName(loc.Pack)}
	collector, err := Open(ctx, short, Credentials{Password: testPass.Password})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GC(ctx, collector, GCOptions{Untrusted: true}); err != nil {
		t.Fatal(err)
	}
	fresh, _ := Open(ctx, be, Credentials{Password: testPass.Password})
	if cr, err := Check(ctx, fresh, CheckOptions{ReadDataPercent: 100}); err != nil || !cr.OK {
		t.Fatalf("check after a collection with a short listing: %v %+v", err, cr)
	}
}

// shortListing hides one object from listings (Stat and Get still find it).
type shortListing struct {
	storage.Backend
	hide string
}

func (s *shortListing) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	return s.Backend.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if oi.Name == s.hide {
			return nil
		}
		return fn(oi)
	})
}
