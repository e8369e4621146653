package repository

// Fuzz targets for every decoder of stored data. A repository is read from
// storage that may be damaged or hostile, so each decoder must refuse bad
// input with an error: never panic, never allocate in proportion to a
// length field instead of the input. Seeds are real encodings from the
// real encoders (and truncations of them); valid inputs must round-trip.
//
// Run one: go test -run '^$' -fuzz '^FuzzPackHeader$' -fuzztime 30s ./repository
// (the Makefile's fuzz target runs each briefly).

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"regexp"
	"runtime/metrics"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"backupd/storage"
)

// fuzzFixture is a small real repository: blobs in every codec, packs,
// index files and manifests written by the real code paths.
type fuzzFixture struct {
	r      *Repository
	blobs  []fuzzBlob // one per (codec, content) pair
	packs  [][]byte   // raw pack objects
	index  [][]byte   // raw index files
	mfs    [][]byte   // raw manifests
	mfIDs  []string
	trees  [][]byte // encoded trees
	bodies [][]byte // decrypted, decompressed index bodies
}

type fuzzBlob struct {
	loc    BlobLocation
	sealed []byte // as stored in the pack (a bundle, for a member)
	plain  []byte // codec byte + payload, as sealed
	data   []byte // the blob's content
}

// raw is the decoded length of what is sealed: the blob, or its bundle.
func (b fuzzBlob) raw() uint32 {
	if b.loc.Bundled() {
		return b.loc.BundleRaw
	}
	return b.loc.RawLength
}

// sealedAD is the associated data the blob (or its bundle) is sealed with.
func sealedAD(loc BlobLocation) []byte {
	if loc.Bundled() {
		return bundleAD(loc.Type)
	}
	return blobAD(loc.Type, loc.ID)
}

var (
	fixtureOnce sync.Once
	fixture     *fuzzFixture
	fixtureErr  error
)

// getFixture builds the fixture once per process (each fuzz worker is a
// process of its own).
func getFixture(t testing.TB) *fuzzFixture {
	t.Helper()
	fixtureOnce.Do(func() { fixture, fixtureErr = buildFixture() })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixture
}

func buildFixture() (*fuzzFixture, error) {
	ctx := context.Background()
	r, be := newTestRepo(nopTB{})
	contents := [][]byte{
		{},
		[]byte("x"),
		bytes.Repeat([]byte("compressible text "), 20),
		randData(1, 300),
	}
	fx := &fuzzFixture{r: r}
	// a blob of each codec alone (format 2), then bundles (format 3)
	r.cfg.Version = 2
	type want struct {
		id     ID
		data   []byte
		c      Compression
		shrink bool // compressible content
	}
	var wants []want
	for _, c := range []Compression{CompressNone, CompressZstd, CompressGzip, CompressBzip2, CompressLZ4} {
		r.SetCompression(c)
		for i, d := range contents {
			// Make each (codec, content) pair a distinct blob.
			d = append(append([]byte(nil), d...), byte(c), byte(i))
			id, _, err := r.SaveBlob(ctx, DataBlob, d)
			if err != nil {
				return nil, err
			}
			wants = append(wants, want{id, d, c, i == 2})
		}
	}
	tree := &Tree{Nodes: []*Node{
		{Name: "dir", Type: NodeDir, Mode: 0o755 | 1<<31, Subtree: &wants[0].id, ModTime: 1},
		{Name: "file", Type: NodeFile, Mode: 0o644, Size: uint64(len(wants[2].data)), Content: []ID{wants[2].id}, Inode: 7, Links: 2},
		{Name: "link", Type: NodeSymlink, Mode: 0o777 | 1<<27, LinkTarget: "../file"},
		{Name: "fifo", Type: NodeFifo},
		{Name: "dev", Type: NodeCharDev, Rdev: 0x103},
	}}
	tb, err := EncodeTree(tree)
	if err != nil {
		return nil, err
	}
	treeID, _, err := r.SaveBlob(ctx, TreeBlob, tb)
	if err != nil {
		return nil, err
	}
	empty, _ := EncodeTree(&Tree{})
	fx.trees = [][]byte{tb, empty, []byte(`{"nodes":null}`)}
	if err := r.Flush(ctx); err != nil {
		return nil, err
	}
	// A second session, so there are several packs and index files; its
	// small blobs are bundle members.
	r.cfg.Version = 3
	r.SetCompression(CompressZstd)
	for i, d := range [][]byte{randData(2, 100), bytes.Repeat([]byte("member text "), 30), []byte("m")} {
		id, _, err := r.SaveBlob(ctx, DataBlob, d)
		if err != nil {
			return nil, err
		}
		wants = append(wants, want{id, d, CompressZstd, i == 1})
	}
	if err := r.Flush(ctx); err != nil {
		return nil, err
	}
	for _, w := range wants {
		loc, ok := r.Lookup(w.id)
		if !ok {
			return nil, errors.New("fixture: blob not indexed")
		}
		sealed, err := storage.ReadAll(ctx, be, packName(loc.Pack))
		if err != nil {
			return nil, err
		}
		sealed = sealed[loc.Offset : loc.Offset+loc.Length]
		aead, err := r.session(loc.EphPublic)
		if err != nil {
			return nil, err
		}
		plain, err := open(aead, nil, sealed, sealedAD(loc))
		if err != nil {
			return nil, err
		}
		if w.shrink && Compression(plain[0]) != w.c {
			return nil, errors.New("fixture: compressible blob was stored uncompressed")
		}
		fx.blobs = append(fx.blobs, fuzzBlob{loc: loc, sealed: sealed, plain: plain, data: w.data})
	}
	ms := []*Manifest{
		{ID: "backup-20250101-000000-abcd", Type: "full", Host: "h", Status: "completed",
			Started: time.Unix(1700000000, 5).UTC(), Finished: time.Unix(1700000100, 0).UTC(), Compression: "zstd",
			Tags:       map[string]string{"k": "v"},
			Components: []ComponentManifest{{Name: "c", Paths: []string{"/a", "/b"}, Tree: treeID, Warnings: []string{"w"}}},
			Stats:      Stats{Files: 3, Bytes: 100}},
		{ID: "b", Type: "incremental", Parent: "backup-20250101-000000-abcd", Status: "partial",
			Components: []ComponentManifest{{Name: "c", Tree: treeID}, {Name: "d", Error: "gone"}}},
	}
	for _, m := range ms {
		if err := r.SaveManifest(ctx, m); err != nil {
			return nil, err
		}
		raw, err := storage.ReadAll(ctx, be, manifestsPrefix+m.ID)
		if err != nil {
			return nil, err
		}
		fx.mfs, fx.mfIDs = append(fx.mfs, raw), append(fx.mfIDs, m.ID)
	}
	var names []string
	be.List(ctx, "", func(oi storage.ObjectInfo) error { names = append(names, oi.Name); return nil })
	sort.Strings(names)
	for _, n := range names {
		raw, err := storage.ReadAll(ctx, be, n)
		if err != nil {
			return nil, err
		}
		switch {
		case strings.HasPrefix(n, "data/"):
			fx.packs = append(fx.packs, raw)
		case strings.HasPrefix(n, "index/"):
			fx.index = append(fx.index, raw)
			z, err := open(r.indexAEAD, nil, raw[5:], indexAD())
			if err != nil {
				return nil, err
			}
			body, err := indexDecoder().DecodeAll(z, nil)
			if err != nil {
				return nil, err
			}
			fx.bodies = append(fx.bodies, body)
		}
	}
	if len(fx.packs) < 2 || len(fx.index) < 2 {
		return nil, errors.New("fixture: want several packs and index files")
	}
	if !fx.blobs[len(fx.blobs)-1].loc.Bundled() {
		return nil, errors.New("fixture: want bundle members")
	}
	return fx, nil
}

// nopTB lets newTestRepo run outside a test (the fixture is shared).
type nopTB struct{ testing.TB }

func (nopTB) Helper()               {}
func (nopTB) Fatal(args ...any)     { panic(args) }
func (nopTB) Fatalf(string, ...any) { panic("fatal") }

// truncations adds b and a few prefixes of it.
func truncations(b []byte) [][]byte {
	out := [][]byte{b}
	for _, n := range []int{0, 1, len(b) / 2, len(b) - 1} {
		if n >= 0 && n < len(b) {
			out = append(out, b[:n])
		}
	}
	return out
}

var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

// heapAllocated is the total of heap bytes allocated so far by the process.
// Fuzz inputs run one at a time per worker process, so a difference around
// one call measures that call (plus a little runtime noise).
func heapAllocated() uint64 {
	metrics.Read(allocSample)
	return allocSample[0].Value.Uint64()
}

// checkAlloc fails when fn allocates more than limit bytes.
func checkAlloc(t *testing.T, what string, limit uint64, fn func()) {
	t.Helper()
	before := heapAllocated()
	fn()
	if got := heapAllocated() - before; got > limit {
		t.Fatalf("%s allocated %d bytes (limit %d)", what, got, limit)
	}
}

// allocSlack covers decoder state (a bzip2 block, zstd tables, gzip
// windows) that does not depend on the input.
const allocSlack = 24 << 20

func FuzzDecodeBlob(f *testing.F) {
	fx := getFixture(f)
	for i, b := range fx.blobs {
		for _, s := range truncations(b.sealed) {
			f.Add(uint8(i), s, b.plain, b.raw())
		}
		for _, p := range truncations(b.plain) {
			f.Add(uint8(i), b.sealed, p, b.raw())
		}
		f.Add(uint8(i), b.sealed, b.plain, b.raw()+1)
		if b.raw() > 0 {
			f.Add(uint8(i), b.sealed, b.plain, b.raw()-1)
		}
	}
	f.Add(uint8(0), []byte{}, []byte{9, 1, 2}, uint32(3))
	f.Add(uint8(0), []byte{}, []byte{byte(CompressLZ4), 0xf0}, uint32(1<<31))
	f.Add(uint8(0), []byte{}, append([]byte{byte(CompressZstd)}, zstdRLEBomb(64)...), uint32(100))
	f.Fuzz(func(t *testing.T, which uint8, sealed, plain []byte, rawLen uint32) {
		fx := getFixture(t)
		b := fx.blobs[int(which)%len(fx.blobs)]

		// 1. The stored form: whatever the bytes, decodeBlob either
		// returns exactly the blob (its id is a keyed hash of the content)
		// or an error naming the pack.
		in := append([]byte(nil), sealed...)
		var data []byte
		var err error
		checkAlloc(t, "decodeBlob", 4*uint64(len(sealed))+4*uint64(b.raw())+allocSlack, func() {
			data, err = fx.r.decodeBlob(b.loc, in)
		})
		if err == nil && !bytes.Equal(data, b.data) {
			t.Fatalf("decodeBlob returned wrong content without an error")
		}
		if err != nil {
			var be *BlobError
			if !errors.As(err, &be) || be.Pack != b.loc.Pack || be.Blob != b.loc.ID {
				t.Fatalf("decodeBlob error does not name pack and blob: %v", err)
			}
		}
		if bytes.Equal(sealed, b.sealed) && err != nil {
			t.Fatalf("valid sealed blob does not decode: %v", err)
		}

		// 2. The codec: decompress must respect the stated length and
		// agree with itself when the length is not given.
		var out []byte
		checkAlloc(t, "decompress", 4*uint64(len(plain))+4*uint64(min(rawLen, maxBlobPlaintext))+allocSlack, func() {
			out, err = decompress(plain, int(rawLen))
		})
		if err == nil {
			if len(out) != int(rawLen) {
				t.Fatalf("decompress returned %d bytes, stated length %d", len(out), rawLen)
			}
			if Compression(plain[0]) != CompressLZ4 {
				out2, err2 := decompress(plain, -1)
				if err2 != nil || !bytes.Equal(out, out2) {
					t.Fatalf("decompress with and without the length disagree: %v", err2)
				}
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decompress error does not wrap ErrCorrupt: %v", err)
		}
		if bytes.Equal(plain, b.plain) && !b.loc.Bundled() && rawLen == b.loc.RawLength && (err != nil || !bytes.Equal(out, b.data)) {
			t.Fatalf("valid blob plaintext does not round-trip: %v", err)
		}

		// 3. Authenticated but arbitrary plaintext (a writer with the keys
		// but a bug): decodeBlob still returns the blob or an error.
		aead, err := fx.r.session(b.loc.EphPublic)
		if err != nil {
			t.Fatal(err)
		}
		loc := b.loc
		if loc.Bundled() {
			loc.BundleRaw = rawLen
		} else {
			loc.RawLength = rawLen
		}
		resealed := seal(aead, nil, plain, sealedAD(loc))
		data, err = fx.r.decodeBlob(loc, resealed)
		if err == nil && !bytes.Equal(data, b.data) {
			t.Fatalf("decodeBlob accepted content that does not match the blob id")
		}
	})
}

func FuzzPackHeader(f *testing.F) {
	fx := getFixture(f)
	for _, p := range fx.packs {
		tr := p[len(p)-packTrailerLen:]
		hl := binary.LittleEndian.Uint32(tr[32:36])
		hdrEnd := len(p) - packTrailerLen
		hdrStart := hdrEnd - int(hl)
		aead, err := fx.r.session(tr[:32])
		if err != nil {
			f.Fatal(err)
		}
		hdr, err := open(aead, nil, p[hdrStart:hdrEnd], headerAD())
		if err != nil {
			f.Fatal(err)
		}
		for _, x := range truncations(p) {
			f.Add(x, hdr, uint32(hdrStart))
		}
		for _, h := range truncations(hdr) {
			f.Add(p, h, uint32(hdrStart))
		}
		f.Add(p[:len(p)-1], hdr, uint32(hdrStart-1))
		f.Add(p[1:], hdr, uint32(0))
	}
	f.Fuzz(func(t *testing.T, pack, hdr []byte, dataLen uint32) {
		fx := getFixture(t)
		keys := fx.r.keys
		var entries []PackEntry
		var err error
		checkAlloc(t, "parsePack", 4*uint64(len(pack))+allocSlack, func() {
			entries, _, _, err = parsePack(pack, keys.DataPrivate)
		})
		if err == nil {
			checkEntries(t, entries, int64(len(pack)))
		}
		for _, p := range fx.packs {
			if bytes.Equal(p, pack) && err != nil {
				t.Fatalf("valid pack does not parse: %v", err)
			}
		}
		if len(pack) >= packTrailerLen {
			tr, err := decodePackTrailer(pack[len(pack)-packTrailerLen:])
			if err == nil && (len(tr.ephPublic) != 32 || tr.headerLen > maxPackHeader || tr.headerLen < sealOverhead) {
				t.Fatalf("decodePackTrailer accepted a bad trailer: %+v", tr)
			}
		}
		decodePackTrailer(pack)

		// The decrypted header on its own: valid ones are canonical.
		checkAlloc(t, "decodePackHeader", 4*uint64(len(hdr))+allocSlack, func() {
			entries, err = decodePackHeader(hdr, int64(dataLen), true)
		})
		if err == nil {
			checkEntries(t, entries, int64(dataLen))
			if !bytes.Equal(encodePackHeader(entries), hdr) {
				t.Fatalf("pack header does not round-trip")
			}
			// a format without members takes exactly the headers that list none
			if _, err1 := decodePackHeader(hdr, int64(dataLen), false); (err1 == nil) == hasMembers(entries) {
				t.Fatalf("version 1 header with members %v: %v", hasMembers(entries), err1)
			}
		}
		hdrErr := err

		// The same header in a real, authenticated pack around dataLen
		// bytes of blob area: parsePack must agree with decodePackHeader.
		if dataLen > 1<<16 {
			return
		}
		s, err := newSealer(keys.DataPublic)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, dataLen)
		sh := seal(s.aead, nil, hdr, headerAD())
		buf = append(buf, sh...)
		buf = append(buf, s.ephPublic...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(sh)))
		buf = append(buf, packVersionBundles)
		buf = append(buf, packMagic...)
		entries, eph, _, err := parsePack(buf, keys.DataPrivate)
		if (err == nil) != (hdrErr == nil) {
			t.Fatalf("parsePack (%v) and decodePackHeader (%v) disagree", err, hdrErr)
		}
		if err == nil && (!bytes.Equal(eph, s.ephPublic) || !bytes.Equal(encodePackHeader(entries), hdr)) {
			t.Fatalf("parsePack does not round-trip its header")
		}
	})
}

// checkEntries asserts what decodePackHeader promises: known types and
// every blob inside the blob area.
func checkEntries(t *testing.T, entries []PackEntry, dataLen int64) {
	t.Helper()
	for _, e := range entries {
		if e.Type != DataBlob && e.Type != TreeBlob {
			t.Fatalf("entry with blob type %d accepted", e.Type)
		}
		if int64(e.Offset)+int64(e.Length) > dataLen || e.Length < sealOverhead+1 {
			t.Fatalf("entry %+v outside a blob area of %d bytes accepted", e, dataLen)
		}
	}
}

func FuzzIndexFile(f *testing.F) {
	fx := getFixture(f)
	for i, raw := range fx.index {
		for _, x := range truncations(raw) {
			f.Add(x, fx.bodies[i])
		}
		for _, b := range truncations(fx.bodies[i]) {
			f.Add(raw, b)
		}
	}
	f.Add([]byte("BKIX\x02"), []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{}, []byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{}, []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, raw, body []byte) {
		fx := getFixture(t)
		aead := fx.r.indexAEAD
		var idx *IndexFile
		var err error
		checkAlloc(t, "decodeIndexFile", 8*uint64(len(raw))+allocSlack, func() {
			idx, err = decodeIndexFile(aead, raw)
		})
		for i, v := range fx.index {
			if bytes.Equal(v, raw) {
				if err != nil {
					t.Fatalf("valid index file does not decode: %v", err)
				}
				checkIndexRoundTrip(t, aead, idx, fx.bodies[i])
			}
		}

		checkAlloc(t, "parseIndexBody", 8*uint64(len(body))+allocSlack, func() {
			idx, err = parseIndexBody(body, true)
		})
		if err == nil {
			checkIndexRoundTrip(t, aead, idx, body)
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("parseIndexBody error does not wrap ErrCorrupt: %v", err)
		}
		bodyErr := err

		// The body inside an authenticated index file: the file decodes
		// exactly when its body parses.
		file := sealIndexBody(aead, body)
		idx2, err := decodeIndexFile(aead, file)
		if (err == nil) != (bodyErr == nil) {
			t.Fatalf("decodeIndexFile (%v) and parseIndexBody (%v) disagree", err, bodyErr)
		}
		if err == nil {
			checkIndexRoundTrip(t, aead, idx2, body)
		}
	})
}

// sealIndexBody builds an index file around an arbitrary body.
func sealIndexBody(aead cipher.AEAD, body []byte) []byte {
	enc, _ := zstdCodecs()
	return seal(aead, []byte(indexMagic+"\x02"), enc.EncodeAll(body, nil), indexAD())
}

// checkIndexRoundTrip re-encodes a decoded index file with the real encoder
// and wants the same body back (the body format is canonical).
func checkIndexRoundTrip(t *testing.T, aead cipher.AEAD, f *IndexFile, body []byte) {
	t.Helper()
	for _, p := range f.Packs {
		if len(p.EphPublic) != 32 {
			t.Fatalf("pack with a %d-byte ephemeral key", len(p.EphPublic))
		}
		checkEntries(t, p.Blobs, 1<<32)
	}
	raw := encodeIndexFile(aead, f)
	z, err := open(aead, nil, raw[5:], indexAD())
	if err != nil {
		t.Fatal(err)
	}
	got, err := indexDecoder().DecodeAll(z, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("index body does not round-trip (%d bytes in, %d out)", len(body), len(got))
	}
	f2, err := decodeIndexFile(aead, raw)
	if err != nil {
		t.Fatalf("re-encoded index file does not decode: %v", err)
	}
	if len(f2.Packs) != len(f.Packs) || len(f2.Supersedes) != len(f.Supersedes) {
		t.Fatalf("index file changed in a round trip")
	}
}

// sealManifestJSON is encodeManifest for arbitrary JSON: a correctly
// sealed and signed manifest whose content is the fuzzer's.
func sealManifestJSON(k *Keys, id string, js []byte) ([]byte, error) {
	s, err := newSealer(k.DataPublic)
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(k.SignPrivate, manifestSignedBytes(id, js))
	hdr := append([]byte(manifestMagic), manifestVersion)
	hdr = append(hdr, s.ephPublic...)
	return seal(s.aead, hdr, append(sig, js...), append(append([]byte{}, hdr...), id...)), nil
}

func FuzzManifest(f *testing.F) {
	fx := getFixture(f)
	for i, raw := range fx.mfs {
		m, err := decodeManifest(fx.r.keys, fx.mfIDs[i], raw)
		if err != nil {
			f.Fatal(err)
		}
		js, _ := json.Marshal(m)
		for _, x := range truncations(raw) {
			f.Add(fx.mfIDs[i], x, js)
		}
		for _, j := range truncations(js) {
			f.Add(fx.mfIDs[i], raw, j)
		}
		f.Add("other", raw, js)
	}
	f.Add("x", []byte("BKMF\x02"), []byte(`{"version":2,"id":"x"}`))
	f.Add("x", []byte{}, []byte(`{"version":1,"id":"x","components":[{"tree":"00"}]}`))
	f.Fuzz(func(t *testing.T, id string, raw, js []byte) {
		fx := getFixture(t)
		k := fx.r.keys
		var m *Manifest
		var err error
		checkAlloc(t, "decodeManifest", 16*uint64(len(raw)+len(id))+allocSlack, func() {
			m, err = decodeManifest(k, id, raw)
		})
		for i, v := range fx.mfs {
			if bytes.Equal(v, raw) && id == fx.mfIDs[i] && err != nil {
				t.Fatalf("valid manifest does not decode: %v", err)
			}
		}
		if err == nil {
			checkManifestRoundTrip(t, k, m)
		}

		// Authentic (sealed and signed) manifests with arbitrary JSON.
		sealed, err := sealManifestJSON(k, id, js)
		if err != nil {
			t.Fatal(err)
		}
		checkAlloc(t, "decodeManifest", 16*uint64(len(sealed)+len(id))+allocSlack, func() {
			m, err = decodeManifest(k, id, sealed)
		})
		if err == nil {
			if m.ID != id || m.Version != manifestVersion {
				t.Fatalf("manifest %q accepted naming itself %q, version %d", id, m.ID, m.Version)
			}
			checkManifestRoundTrip(t, k, m)
		}
	})
}

func checkManifestRoundTrip(t *testing.T, k *Keys, m *Manifest) {
	t.Helper()
	raw, err := encodeManifest(k, m)
	if err != nil {
		// Values JSON can decode but not encode (none known) would land here.
		t.Fatalf("decoded manifest does not encode: %v", err)
	}
	m2, err := decodeManifest(k, m.ID, raw)
	if err != nil {
		t.Fatalf("re-encoded manifest does not decode: %v", err)
	}
	a, _ := json.Marshal(m)
	b, _ := json.Marshal(m2)
	if !bytes.Equal(a, b) {
		t.Fatalf("manifest changed in a round trip:\n%s\n%s", a, b)
	}
}

func FuzzTree(f *testing.F) {
	fx := getFixture(f)
	for _, tb := range fx.trees {
		for _, x := range truncations(tb) {
			f.Add(x)
		}
	}
	f.Add([]byte(`{"nodes":[{"name":"..","type":"file"}]}`))
	f.Add([]byte(`{"nodes":[{"name":"a","type":"dir"}]}`))
	f.Add([]byte(`{"nodes":[{"name":"a","type":"file"},{"name":"a","type":"file"}]}`))
	f.Add([]byte(`{"nodes":[null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var tr *Tree
		var err error
		checkAlloc(t, "DecodeTree", 32*uint64(len(b))+allocSlack, func() {
			tr, err = DecodeTree(b)
		})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeTree error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		for _, n := range tr.Nodes {
			if ValidNodeName(n.Name) != nil || (n.Type == NodeDir && n.Subtree == nil) {
				t.Fatalf("DecodeTree accepted node %+v", n)
			}
		}
		enc, err := EncodeTree(tr)
		if err != nil {
			t.Fatalf("decoded tree does not encode: %v", err)
		}
		tr2, err := DecodeTree(enc)
		if err != nil {
			t.Fatalf("re-encoded tree does not decode: %v", err)
		}
		enc2, _ := EncodeTree(tr2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("tree encoding is not a fixed point:\n%s\n%s", enc, enc2)
		}
	})
	_ = fx
}

// zstdRLEBomb is a valid zstd frame without a content size whose n RLE
// blocks decode to n*128 KiB: a few bytes that claim nothing and expand
// enormously.
func zstdRLEBomb(n int) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58} // magic; no FCS, no checksum; window 8 MiB
	for i := 0; i < n; i++ {
		h := uint32(1<<1) | uint32(128<<10)<<3 // RLE block of 128 KiB
		if i == n-1 {
			h |= 1 // last block
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 'A')
	}
	return b
}

// A blob's stated length (from the index) bounds what decoding it may
// allocate, whatever its codec payload claims or expands to.
func TestDecompressBoundedByStatedLength(t *testing.T) {
	bomb := append([]byte{byte(CompressZstd)}, zstdRLEBomb(1024)...) // 128 MiB
	if out, err := decompress(bomb, 128<<20); err != nil || len(out) != 128<<20 {
		t.Fatalf("the test frame is not valid zstd: %v", err)
	}
	checkAlloc(t, "decompress of a zstd bomb stated as 10 bytes", allocSlack, func() {
		if _, err := decompress(bomb, 10); !errors.Is(err, ErrCorrupt) {
			t.Errorf("got %v, want ErrCorrupt", err)
		}
	})
	checkAlloc(t, "decompress of lz4 stated as 4 GiB", allocSlack, func() {
		if _, err := decompress([]byte{byte(CompressLZ4), 0x10, 'a'}, 1<<32-1); !errors.Is(err, ErrCorrupt) {
			t.Errorf("got %v, want ErrCorrupt", err)
		}
	})
}

// An lz4 blob stated as empty decodes to nothing or fails cleanly; the
// lz4 decoder once panicked on the nil buffer a zero length gave it
// (found by FuzzDecodeBlob).
func TestDecompressEmptyLZ4(t *testing.T) {
	for _, payload := range [][]byte{{0x10, 'a'}, {0xf0, 0xff, 'a'}, {0x00}, {}, {0x01, 0x00, 0x01, 0x00},
		{0x4f, 0x16, 0x3f, 0x5f, 0x0f, 0x9a, 0x62, 0x1d, 0x72, 0x95, 0x66, 0xc7, 0x4d, 0x10, 0x03, 0x7c, 0x4d, 0x7b}} {
		src := append([]byte{byte(CompressLZ4)}, payload...)
		out, err := decompress(src, 0)
		if err == nil && len(out) != 0 {
			t.Errorf("payload %x: %d bytes from a blob stated as empty", payload, len(out))
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Errorf("payload %x: error does not wrap ErrCorrupt: %v", payload, err)
		}
	}
}

// ValidBackupID, written by hand, accepts what its rule's regular
// expression accepts.
func FuzzValidBackupID(f *testing.F) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	for _, s := range []string{"", "a", "-a", ".a", "a-", "backup-20261203-170044-0123456789ab", "a/b", "ä", "a\n", "A_b.c-9",
		strings.Repeat("a", 128), strings.Repeat("a", 129), "a\x00", "_x", "9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidBackupID(s) == nil, re.MatchString(s); got != want {
			t.Fatalf("ValidBackupID(%q) valid = %v, the rule says %v", s, got, want)
		}
	})
}
