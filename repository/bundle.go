package repository

import (
	"bytes"
	"context"
	"fmt"
	"sync"
)

// Bundles: in a repository of format 3, data blobs under bundleMember
// bytes (whole small files, the tails of large ones) are not encoded and
// sealed one by one: they are gathered, in the order they are saved, into
// a bundle of about bundleTarget bytes that is compressed and sealed as
// one. Each member keeps its own entry (its id, the bundle's place and
// stored length, its place in the decoded bundle), so deduplication,
// garbage collection and restores still work blob by blob; a reader of one
// member decodes its bundle and checks the member's content against its
// id, as for any blob.
//
// A source tree's small files compress as one stream far better than one
// by one: on the Go toolchain (15,000 files under 512 KiB) zstd's output
// was 67 MB instead of 72 MB in a third less time (870 against 1,354 ms on
// one core, bundles at the default level and large chunks at the fastest,
// against each file on its own at the stronger level; a throwaway
// measurement, 2026-12-04), because one call per megabyte replaces one per
// file and small files no longer need the stronger level. Case A's
// repository went from 74.2 to 69.5 MB (bench/README.md). Bundles now use
// the fastest level (see zstdEncBundle): 71.1 MB, 10% less time.
const (
	bundleMember = 512 << 10 // blobs below this are bundled
	bundleTarget = 1 << 20   // a bundle is sealed when it holds this much
	// maxBundleRaw bounds a decoded bundle a reader accepts
	maxBundleRaw = 16 << 20
)

// bundleMaxMembers also seals a bundle: its entries in a pack header
// (53 bytes each) stay well inside packHeaderBudget.
var bundleMaxMembers = 4096

// bundleAD is the associated data of a sealed bundle. A member's content
// is checked against its id once decoded, as every blob's is; the bundle
// itself is bound to being a bundle of its type.
func bundleAD(t BlobType) []byte { return append([]byte("backupd bundle v1 "), byte(t)) }

// bundle is an open bundle: its members' plaintexts, one after another.
type bundle struct {
	openKey // raw: members that do not compress, stored without trying
	data    []byte
	members []bundleEntry
}

// openKey names an open bundle: small blobs that compress and those that
// do not (random-looking data, already compressed files) are bundled apart.
// A bundle of the second kind is stored raw, without a compression call
// that would find nothing, and each member's share of its storage is then
// its own size; bundled, such a blob saves the nonce, tag and codec byte
// (29 bytes) a blob stored alone takes, less the 8 its pack entry adds.
type openKey struct {
	ln  lane
	raw bool
}

type bundleEntry struct {
	id          ID
	inner, size uint32
}

// bundles reports whether this repository's format stores bundles.
func (r *Repository) bundles() bool { return r.cfg.Version >= 3 }

// saveMember adds a small blob to the open bundle of its lane and kind
// (raw: it does not compress), and stores the bundle when it is full.
// Like saveEncoded, it reports whether the blob was new; the blob is
// durable once its bundle's pack is committed.
func (r *Repository) saveMember(ctx context.Context, ln lane, id ID, data []byte, raw bool) (bool, error) {
	t := ln.typ
	s, err := r.claim(t, id)
	if s == nil {
		return false, err
	}
	k := openKey{ln, raw}
	r.wmu.Lock()
	b := r.open[k]
	if b == nil {
		b = &bundle{openKey: k, data: (*bundleBufs.Get().(*[]byte))[:0]}
		r.open[k] = b
	}
	b.members = append(b.members, bundleEntry{id: id, inner: uint32(len(b.data)), size: uint32(len(data))})
	b.data = append(b.data, data...)
	full := len(b.data) >= bundleTarget || len(b.members) >= bundleMaxMembers
	if full {
		delete(r.open, k)
	}
	r.wmu.Unlock()
	r.stats.blobsAdded.Add(1)
	r.stats.bytesAdded.Add(int64(len(data)))
	if t == DataBlob {
		r.stats.dataAdded.Add(int64(len(data)))
	}
	if full {
		return true, r.storeBundle(ctx, b, s)
	}
	return true, nil
}

// bundleBufs holds the buffers bundles are gathered in (a new one for
// each bundle was a tenth of a full backup's memory clearing).
var bundleBufs = sync.Pool{New: func() any { b := make([]byte, 0, bundleTarget+bundleMember); return &b }}

// storeBundle encodes and seals bundle b with s and adds it to a pack.
func (r *Repository) storeBundle(ctx context.Context, b *bundle, s *sealer) error {
	pool := blobPool(len(b.data))
	pb, sb := pool.Get().(*[]byte), pool.Get().(*[]byte)
	c := r.compression
	if b.raw {
		c = CompressNone
	}
	plain := compressBundle((*pb)[:0], c, b.data, r.repacking)
	raw := uint32(len(b.data))
	if cap(b.data) == bundleTarget+bundleMember {
		data := b.data[:0]
		bundleBufs.Put(&data)
	}
	b.data = nil
	sealed := seal(s.aead, (*sb)[:0], plain, bundleAD(b.ln.typ))
	*pb, *sb = plain[:0], sealed[:0]
	pool.Put(pb)
	defer pool.Put(sb) // after the pack has copied it

	entries := make([]PackEntry, len(b.members))
	for i, m := range b.members {
		entries[i] = PackEntry{Type: b.ln.typ, ID: m.id, Length: uint32(len(sealed)), RawLength: m.size,
			Inner: m.inner, BundleRaw: raw}
	}
	return r.addSealed(ctx, s, b.ln, sealed, entries)
}

// flushBundles stores the open bundles (before the open packs are).
func (r *Repository) flushBundles(ctx context.Context) error {
	r.wmu.Lock()
	var open []*bundle
	for k, b := range r.open {
		open = append(open, b)
		delete(r.open, k)
	}
	s := r.sealer
	r.wmu.Unlock()
	for _, b := range open {
		if err := r.storeBundle(ctx, b, s); err != nil {
			return err
		}
	}
	return nil
}

// openBundle decrypts and decodes the sealed bundle holding member loc,
// into *buf when it is large enough (growing it when not; nil: a new
// buffer). The result may alias *buf or sealed.
func (r *Repository) openBundle(loc BlobLocation, sealed []byte, buf *[]byte) ([]byte, error) {
	// (the member's place in it is checked by member, for each member)
	if loc.BundleRaw == 0 || loc.BundleRaw > maxBundleRaw {
		return nil, &BlobError{loc.Pack, loc.ID, fmt.Errorf("%w: bundle length %d out of bounds", ErrCorrupt, loc.BundleRaw)}
	}
	aead, err := r.session(loc.EphPublic)
	if err != nil {
		return nil, &BlobError{loc.Pack, loc.ID, err}
	}
	plain, err := openInPlace(aead, sealed, bundleAD(loc.Type))
	if err != nil {
		return nil, &BlobError{loc.Pack, loc.ID, fmt.Errorf("%w: its bundle does not authenticate", ErrCorrupt)}
	}
	var dst []byte
	if buf != nil {
		if need := int(loc.BundleRaw); cap(*buf) < need {
			*buf = make([]byte, need)
		}
		dst = *buf
	}
	data, err := decompressInto(dst, plain, int(loc.BundleRaw))
	if err != nil {
		return nil, &BlobError{loc.Pack, loc.ID, fmt.Errorf("bundle: %w", err)}
	}
	return data, nil
}

// member returns member loc's content from its decoded bundle, checked
// against its id.
func (r *Repository) member(loc BlobLocation, bundle []byte) ([]byte, error) {
	if uint64(loc.Inner)+uint64(loc.RawLength) > uint64(len(bundle)) {
		return nil, &BlobError{loc.Pack, loc.ID, fmt.Errorf("%w: member located outside its bundle", ErrCorrupt)}
	}
	data := bundle[loc.Inner : loc.Inner+loc.RawLength]
	if r.ids.Sum(data) != loc.ID {
		return nil, &BlobError{loc.Pack, loc.ID, fmt.Errorf("%w: content does not match its id", ErrCorrupt)}
	}
	return data, nil
}

// blobDecoder decodes the blobs of a pack in offset order with reused
// buffers: a result is valid until the next sealed item is decoded.
// Members of one bundle, met one after another, share one decryption and
// decompression.
type blobDecoder struct {
	r      *Repository
	buf    []byte
	prev   BlobLocation // the last item decoded
	data   []byte       // its plaintext (a bundle's, for a member)
	err    error
	primed bool
}

// decode returns the verified content of loc. sealed is the sealed item
// at loc's offset (decrypted in place), or nil when it is the one the
// previous call was given.
func (d *blobDecoder) decode(loc BlobLocation, sealed []byte) ([]byte, error) {
	if sealed != nil {
		d.prev, d.primed = loc, true
		if loc.Bundled() {
			d.data, d.err = d.r.openBundle(loc, sealed, &d.buf)
		} else {
			d.data, d.err = d.r.decodeBlobInto(loc, sealed, &d.buf)
		}
	} else if !d.primed || loc.Offset != d.prev.Offset {
		return nil, fmt.Errorf("blobDecoder: blob %s at offset %d not read", loc.ID.Short(), loc.Offset)
	}
	p := d.prev
	switch {
	case loc.Bundled() && p.Bundled() && loc.Type == p.Type && loc.Length == p.Length && loc.BundleRaw == p.BundleRaw:
		if be, ok := d.err.(*BlobError); ok {
			return nil, &BlobError{loc.Pack, loc.ID, be.Err}
		} else if d.err != nil {
			return nil, d.err
		}
		return d.r.member(loc, d.data)
	case !loc.Bundled() && !p.Bundled() && loc.ID == p.ID:
		return d.data, d.err // the same blob listed again
	}
	// another blob indexed at the same place: what was read there was
	// checked as the one before
	return nil, &BlobError{loc.Pack, loc.ID, fmt.Errorf("%w: indexed at the offset of blob %s", ErrCorrupt, p.ID.Short())}
}

// bundleMemo keeps the last few bundles decoded for single-member reads
// (LoadBlob: a copy, an export, a restore's fallback after a repack), so
// reading a bundle's members one after another fetches and decodes it
// once, not once per member.
type bundleMemo struct {
	mu      sync.Mutex
	entries [4]memoEntry
	next    int
}

type memoEntry struct {
	key  bundleKey
	data []byte
}

// bundleKey names a sealed bundle by everything its members' entries say
// of it.
type bundleKey struct {
	pack           ID
	offset, length uint32
	raw            uint32
	typ            BlobType
}

func keyOf(loc BlobLocation) bundleKey {
	return bundleKey{loc.Pack, loc.Offset, loc.Length, loc.BundleRaw, loc.Type}
}

func (m *bundleMemo) get(loc BlobLocation) ([]byte, bool) {
	k := keyOf(loc)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		if e.data != nil && e.key == k {
			return e.data, true
		}
	}
	return nil, false
}

// put keeps a decoded bundle; it must not be changed afterwards.
func (m *bundleMemo) put(loc BlobLocation, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries[m.next] = memoEntry{keyOf(loc), data}
	m.next = (m.next + 1) % len(m.entries)
}

// readMember reads member loc alone: its bundle from the memo, or from
// storage (then kept). The result is the member's own copy.
func (r *Repository) readMember(loc BlobLocation, sealed func() ([]byte, error)) ([]byte, error) {
	b, ok := r.bundleMemo.get(loc)
	if !ok {
		s, err := sealed()
		if err != nil {
			return nil, err
		}
		if b, err = r.openBundle(loc, s, nil); err != nil {
			return nil, err
		}
		r.bundleMemo.put(loc, b) // (sealed gives a new buffer each time: b may alias it)
	}
	d, err := r.member(loc, b)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(d), nil
}
