package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"regexp"
	"strings"
	"testing"
	"time"

	"backupd/storage"
	"backupd/storage/fault"
	"backupd/storage/mem"
)

var testPass = Wrapping{Password: []byte("correct horse"), KDF: ptr(TestKDF())}

func ptr[T any](v T) *T { return &v }

func newTestRepo(t testing.TB) (*Repository, *mem.Backend) {
	t.Helper()
	be := mem.New()
	r, err := Init(context.Background(), be, InitOptions{Wrapping: testPass})
	if err != nil {
		t.Fatal(err)
	}
	return r, be
}

// storeConfigVersion rewrites the stored config with format version v,
// as a repository of another format (or a newer backupd) would have it.
func storeConfigVersion(t *testing.T, be storage.Backend, v int) {
	t.Helper()
	ctx := context.Background()
	b, err := storage.ReadAll(ctx, be, configName)
	if err != nil {
		t.Fatal(err)
	}
	nb := bytes.Replace(b, []byte(fmt.Sprintf(`"version": %d`, FormatVersion)), []byte(fmt.Sprintf(`"version": %d`, v)), 1)
	if bytes.Equal(nb, b) {
		t.Fatalf("config holds no version %d: %s", FormatVersion, b)
	}
	if err := be.Put(ctx, configName, bytes.NewReader(nb), int64(len(nb))); err != nil {
		t.Fatal(err)
	}
}

func randData(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func TestSaveLoadBlobsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	for _, c := range []Compression{CompressZstd, CompressGzip, CompressBzip2, CompressLZ4, CompressNone} {
		t.Run(c.String(), func(t *testing.T) {
			r, be := newTestRepo(t)
			r.SetCompression(c)
			var ids []ID
			var blobs [][]byte
			for i := 0; i < 40; i++ {
				d := randData(int64(i), 1000*i)
				if i%2 == 0 {
					d = bytes.Repeat([]byte("compressible "), 500*i+1)
				}
				id, added, err := r.SaveBlob(ctx, DataBlob, d)
				if err != nil || !added {
					t.Fatalf("save %d: added=%v err=%v", i, added, err)
				}
				ids, blobs = append(ids, id), append(blobs, d)
			}
			if _, added, _ := r.SaveBlob(ctx, DataBlob, blobs[3]); added {
				t.Fatal("duplicate blob stored twice")
			}
			if err := r.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			r2, err := Open(ctx, be, Credentials{Password: []byte("correct horse")})
			if err != nil {
				t.Fatal(err)
			}
			if err := r2.LoadIndex(ctx); err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				got, err := r2.LoadBlob(ctx, DataBlob, id)
				if err != nil {
					t.Fatalf("load %d: %v", i, err)
				}
				if !bytes.Equal(got, blobs[i]) {
					t.Fatalf("blob %d differs", i)
				}
			}
		})
	}
}

func TestWrongPasswordAndVersion(t *testing.T) {
	ctx := context.Background()
	_, be := newTestRepo(t)
	if _, err := Open(ctx, be, Credentials{Password: []byte("wrong")}); !errors.Is(err, ErrNoMatchingKey) {
		t.Fatalf("wrong password: got %v", err)
	}
	storeConfigVersion(t, be, 9)
	_, err := Open(ctx, be, Credentials{Password: []byte("correct horse")})
	if err == nil || !strings.Contains(err.Error(), "version 9 is not supported") {
		t.Fatalf("unknown version: got %v", err)
	}
	if _, err := Open(ctx, mem.New(), Credentials{Password: []byte("x")}); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("empty location: got %v", err)
	}
}

func TestCorruptBlobDetected(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	id, _, _ := r.SaveBlob(ctx, DataBlob, randData(1, 5000))
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	loc, _ := r.Lookup(id)
	be.Corrupt(PackName(loc.Pack), int(loc.Offset)+40)
	_, err := r.LoadBlob(ctx, DataBlob, id)
	var be2 *BlobError
	if !errors.As(err, &be2) || !errors.Is(err, ErrCorrupt) || be2.Pack != loc.Pack {
		t.Fatalf("want corrupt BlobError naming the pack, got %v", err)
	}
}

func TestManifestSignedAndBound(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	m := &Manifest{ID: "backup-1", Type: "full", Status: "completed"}
	if err := r.SaveManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := r.LoadManifest(ctx, "backup-1")
	if err != nil || got.Type != "full" {
		t.Fatalf("load: %v %v", got, err)
	}
	// a manifest copied to another name is refused
	raw, _ := storage.ReadAll(ctx, be, "manifests/backup-1")
	be.Put(ctx, "manifests/backup-2", bytes.NewReader(raw), int64(len(raw)))
	if _, err := r.LoadManifest(ctx, "backup-2"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("renamed manifest accepted: %v", err)
	}
	if err := r.SaveManifest(ctx, m); err == nil {
		t.Fatal("manifest overwritten")
	}
}

// A storage that cannot say whether a backup's name is free (Stat fails
// with anything but "not found") gets no manifest written: writing anyway
// replaced another backup's manifest under the same id.
func TestSaveManifestNeverWritesOverOnDoubt(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	fb := fault.New(be)
	r, err := Init(ctx, fb, InitOptions{Wrapping: testPass})
	if err != nil {
		t.Fatal(err)
	}
	first := &Manifest{ID: "backup-20261202-020000-abcd", Type: "full", Host: "a", Status: "completed"}
	if err := r.SaveManifest(ctx, first); err != nil {
		t.Fatal(err)
	}
	fb.Add(fault.Rule{Op: fault.Stat, Prefix: "manifests/"})
	second := &Manifest{ID: first.ID, Type: "full", Host: "b", Status: "completed"}
	if err := r.SaveManifest(ctx, second); err == nil || !strings.Contains(err.Error(), "cannot tell whether the id is free") {
		t.Fatalf("saved on doubt: %v", err)
	}
	fb.Reset()
	if got, err := r.LoadManifest(ctx, first.ID); err != nil || got.Host != "a" {
		t.Fatalf("the first manifest was replaced: %+v %v", got, err)
	}
	if err := r.SaveManifest(ctx, second); !errors.Is(err, ErrBackupExists) {
		t.Fatalf("a taken name: %v", err)
	}
}

// New backup ids carry 48 random bits, and two ids of the same second
// differ.
func TestNewBackupID(t *testing.T) {
	at := time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC)
	id := NewBackupID(at)
	if !regexp.MustCompile(`^backup-20261202-020000-[0-9a-f]{12}$`).MatchString(id) || ValidBackupID(id) != nil {
		t.Fatalf("id %q", id)
	}
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewBackupID(at)
		if seen[id] {
			t.Fatalf("%q twice in 1000", id)
		}
		seen[id] = true
	}
}

func TestChunkerBoundaries(t *testing.T) {
	g := NewGear([]byte("k"))
	data := randData(7, 20<<20)
	c := NewChunker(g)
	c.Reset(bytes.NewReader(data))
	var sizes []int
	var total int
	for {
		ch, err := c.Next()
		if err != nil {
			break
		}
		if len(ch) > MaxChunkSize {
			t.Fatalf("chunk of %d bytes", len(ch))
		}
		sizes = append(sizes, len(ch))
		total += len(ch)
	}
	if total != len(data) {
		t.Fatalf("chunks cover %d bytes, want %d", total, len(data))
	}
	if len(sizes) < 8 || len(sizes) > 40 {
		t.Fatalf("%d chunks for 20 MiB: average far from 1 MiB", len(sizes))
	}
	// An insertion at the start moves only nearby boundaries.
	shifted := append([]byte("inserted bytes"), data...)
	c.Reset(bytes.NewReader(shifted))
	var sizes2 []int
	for {
		ch, err := c.Next()
		if err != nil {
			break
		}
		sizes2 = append(sizes2, len(ch))
	}
	same := 0
	for i := 1; i < len(sizes) && i < len(sizes2); i++ {
		if sizes[len(sizes)-i] == sizes2[len(sizes2)-i] {
			same++
		}
	}
	if same < len(sizes)-2 {
		t.Fatalf("only %d of %d trailing chunks survived a 14-byte insertion", same, len(sizes))
	}
	// Another key gives other boundaries.
	c2 := NewChunker(NewGear([]byte("other")))
	c2.Reset(bytes.NewReader(data))
	first, _ := c2.Next()
	if len(first) == sizes[0] {
		t.Fatalf("keyed chunker: same first boundary with another key")
	}
}

// After a failed flush, blobs whose pack never got stored are not reported
// as present, so the next attempt stores them (found in review).
func TestFailedFlushForgetsPendingBlobs(t *testing.T) {
	ctx := context.Background()
	be := fault.New(mem.New())
	r, err := Init(ctx, be, InitOptions{Wrapping: testPass})
	if err != nil {
		t.Fatal(err)
	}
	be.Add(fault.Rule{Op: fault.Put, Prefix: "data/", Action: fault.Fail, Times: 1})
	id, _, _ := r.SaveBlob(ctx, DataBlob, randData(3, 4000))
	if err := r.Flush(ctx); err == nil {
		t.Fatal("flush succeeded with its pack upload failing")
	}
	if r.Has(id) {
		t.Fatal("a blob whose pack was never stored is reported present")
	}
	if _, added, err := r.SaveBlob(ctx, DataBlob, randData(3, 4000)); err != nil || !added {
		t.Fatalf("retry: added=%v err=%v", added, err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.LoadBlob(ctx, DataBlob, id); err != nil {
		t.Fatal(err)
	}
}

// A check reads a pack of the listed size into a pack buffer; a pack
// that is not that size any more is reported, never read short or past.
func TestReadWholePackSizes(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	var id ID
	data := randData(3, 5000)
	if err := be.Put(ctx, packName(id), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	raw, release, err := readWholePack(ctx, be, id, 5000)
	if err != nil || !bytes.Equal(raw, data) {
		t.Fatalf("listed size: %v", err)
	}
	release()
	for _, size := range []int64{4999, 5001} {
		if _, _, err := readWholePack(ctx, be, id, size); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("listed %d: %v", size, err)
		}
	}
}

// ghostIndex lists, the first time, an index file that is gone when read
// (merged and removed by a writer between the listing and the read).
type ghostIndex struct {
	storage.Backend
	listed int
}

func (g *ghostIndex) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if prefix == "index/" {
		g.listed++
		if g.listed == 1 {
			if err := fn(storage.ObjectInfo{Name: "index/" + ID{1}.String(), Size: 100}); err != nil {
				return err
			}
		}
	}
	return g.Backend.List(ctx, prefix, fn)
}

func TestCheckReadsPastAnIndexFileMergedMeanwhile(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	if _, _, err := r.SaveBlob(ctx, DataBlob, []byte("some data")); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	g := &ghostIndex{Backend: be}
	x, err := Open(ctx, g, Credentials{Password: testPass.Password})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Check(ctx, x, CheckOptions{})
	if err != nil || len(res.Errors) > 0 || res.IndexFiles != 1 || g.listed < 2 {
		t.Fatalf("check: %v, %+v, listed %d times", err, res, g.listed)
	}
}

// LoadIndex, too, lists again when a listed index file is gone when read
// (its entries are in the file that replaced it).
func TestLoadIndexListsAgainWhenAFileWasMerged(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	id, _, err := r.SaveBlob(ctx, DataBlob, []byte("some data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	g := &ghostIndex{Backend: be}
	x, err := Open(ctx, g, Credentials{Password: testPass.Password})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.LoadIndex(ctx); err != nil || g.listed != 2 || !x.Has(id) {
		t.Fatalf("load: %v, listed %d times, blob found %v", err, g.listed, x.Has(id))
	}
}

// ReuseTree stands in for saving a tree the repository holds: it records
// the tree's pack for the commit's check (as a deduplicated save does) and
// refuses a tree that is not indexed or whose pack is condemned, so the
// caller saves it instead of naming data a collection may take.
func TestReuseTree(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	tr := &Tree{Nodes: []*Node{{Name: "a", Type: NodeFile, Size: 1}}}
	id, err := r.SaveTree(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r2, err := Open(ctx, be, Credentials{Password: testPass.Password})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if r2.ReuseTree(ID{7}) {
		t.Fatal("a tree the repository does not hold was reused")
	}
	if len(r2.DependedPacks()) != 0 {
		t.Fatalf("a refused reuse recorded packs: %v", r2.DependedPacks())
	}
	before := r2.WriteStats().StoredReferenced
	if !r2.ReuseTree(id) {
		t.Fatal("a stored tree was not reused")
	}
	loc, ok := r2.idx.blobs.get(id)
	if !ok {
		t.Fatal("tree not indexed")
	}
	pack := r2.idx.packs[loc.pack].id
	if dp := r2.DependedPacks(); len(dp) != 1 || dp[0] != pack {
		t.Fatalf("depended packs %v, want the tree's pack %s", dp, pack.Short())
	}
	if r2.WriteStats().StoredReferenced <= before {
		t.Error("the reused tree's stored bytes were not counted as referenced")
	}
	r2.idx.mu.Lock()
	if r2.idx.condemned == nil {
		r2.idx.condemned = map[uint32]bool{}
	}
	r2.idx.condemned[loc.pack] = true
	r2.idx.mu.Unlock()
	if r2.ReuseTree(id) {
		t.Fatal("a tree in a condemned pack was reused")
	}
}
