package repository

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
)

// Pack layout (packs are written once and never modified):
//
//	blob 0 | blob 1 | ... | header | trailer
//
// Each blob is seal(session key, codec byte + payload, ad = type || id).
// Small blobs may instead be members of a bundle: their plaintexts one
// after another, encoded and sealed as one (ad = bundleAD), so a few
// hundred small files cost one compression call and compress as one
// stream (see bundle.go).
// The header is seal(session key, entries), each entry 45 bytes:
// type(1) id(32) offset(4) length(4) rawLength(4), little endian; a
// bundle member's type byte has bundleFlag set and its entry 8 more
// bytes: inner(4) bundleRaw(4). Version 1 packs hold no members.
// The trailer is fixed-size: ephemeral public key(32) header length(4)
// version(1) magic "BKPK"(4). The session key is derived from the ephemeral
// key and the repository's data key, so a pack is self-describing for any
// holder of the read key: an index can always be rebuilt from the packs.
const (
	packMagic   = "BKPK"
	packVersion = 1
	// packVersionBundles: a pack with bundle members (version 1 readers
	// refuse it rather than misread its header)
	packVersionBundles = 2
	packTrailerLen     = 32 + 4 + 1 + 4
	packEntryLen       = 1 + 32 + 4 + 4 + 4
	// a bundle member's entry: inner offset and the bundle's decoded length
	memberEntryLen = packEntryLen + 4 + 4
	bundleFlag     = 0x80
	// TargetPackSize is where a pack is closed; packs keep object counts
	// low on S3 while bounding rework after a crash to one pack.
	TargetPackSize = 16 << 20
	// maxPackHeader bounds the header a reader will allocate.
	maxPackHeader = 16 << 20
)

// PackEntry locates one blob inside a pack.
type PackEntry struct {
	Type      BlobType
	ID        ID
	Offset    uint32 // of the sealed blob, or of the sealed bundle holding it
	Length    uint32 // stored (sealed) length of the blob or of its bundle
	RawLength uint32 // decoded plaintext length of the blob
	// A bundle member (BundleRaw > 0): its bundle decodes to BundleRaw
	// bytes, of which the blob is the RawLength bytes from Inner.
	Inner     uint32
	BundleRaw uint32
}

// Bundled reports whether the blob is a bundle member.
func (e PackEntry) Bundled() bool { return e.BundleRaw > 0 }

// Stored is the storage the blob takes: its sealed length, or a member's
// share of its bundle's by plaintext length.
func (e PackEntry) Stored() int64 {
	if e.BundleRaw == 0 {
		return int64(e.Length)
	}
	// rounded up: a member is never free
	return max(1, (int64(e.Length)*int64(e.RawLength)+int64(e.BundleRaw)-1)/int64(e.BundleRaw))
}

func headerAD() []byte { return []byte("backupd pack header v1") }

func blobAD(t BlobType, id ID) []byte {
	ad := make([]byte, 33)
	ad[0] = byte(t)
	copy(ad[1:], id[:])
	return ad
}

func encodePackHeader(entries []PackEntry) []byte {
	b := make([]byte, 0, len(entries)*memberEntryLen)
	for _, e := range entries {
		t := byte(e.Type)
		if e.Bundled() {
			t |= bundleFlag
		}
		b = append(b, t)
		b = append(b, e.ID[:]...)
		b = binary.LittleEndian.AppendUint32(b, e.Offset)
		b = binary.LittleEndian.AppendUint32(b, e.Length)
		b = binary.LittleEndian.AppendUint32(b, e.RawLength)
		if e.Bundled() {
			b = binary.LittleEndian.AppendUint32(b, e.Inner)
			b = binary.LittleEndian.AppendUint32(b, e.BundleRaw)
		}
	}
	return b
}

// hasMembers reports whether entries list a bundle member (their pack and
// index file then need the format that can say so).
func hasMembers(entries []PackEntry) bool {
	return slices.ContainsFunc(entries, PackEntry.Bundled)
}

// decodePackHeader parses a decrypted header and checks that every entry
// lies inside the blob area of a pack of dataLen bytes. members: the
// pack's format can list bundle members.
func decodePackHeader(b []byte, dataLen int64, members bool) ([]PackEntry, error) {
	entries := make([]PackEntry, 0, len(b)/packEntryLen)
	for len(b) > 0 {
		e, n, err := decodePackEntry(b, dataLen, members)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
		b = b[n:]
	}
	return entries, nil
}

// decodePackEntry parses the entry at the start of b and returns it with
// its encoded length.
func decodePackEntry(b []byte, dataLen int64, members bool) (PackEntry, int, error) {
	var e PackEntry
	if len(b) < packEntryLen {
		return e, 0, fmt.Errorf("%w: pack header entry truncated", ErrCorrupt)
	}
	n := packEntryLen
	e.Type = BlobType(b[0] &^ bundleFlag)
	copy(e.ID[:], b[1:33])
	e.Offset = binary.LittleEndian.Uint32(b[33:])
	e.Length = binary.LittleEndian.Uint32(b[37:])
	e.RawLength = binary.LittleEndian.Uint32(b[41:])
	if e.Type != DataBlob && e.Type != TreeBlob {
		return e, 0, fmt.Errorf("%w: pack header names blob type %d", ErrCorrupt, e.Type)
	}
	if b[0]&bundleFlag != 0 {
		if !members {
			return e, 0, fmt.Errorf("%w: a bundle member listed in a pack or index file of format version 1", ErrCorrupt)
		}
		if len(b) < memberEntryLen {
			return e, 0, fmt.Errorf("%w: pack header entry truncated", ErrCorrupt)
		}
		e.Inner = binary.LittleEndian.Uint32(b[45:])
		e.BundleRaw = binary.LittleEndian.Uint32(b[49:])
		n = memberEntryLen
		// a member lies inside its bundle, and a bundle is bounded (stored
		// raw when compression does not pay, it is its codec byte longer)
		if e.BundleRaw == 0 || e.BundleRaw > maxBundleRaw || uint64(e.Inner)+uint64(e.RawLength) > uint64(e.BundleRaw) ||
			e.Length > e.BundleRaw+1+sealOverhead {
			return e, 0, fmt.Errorf("%w: pack header entry %s out of its bundle", ErrCorrupt, e.ID.Short())
		}
	}
	// a blob's stored length is bounded by what a reader would ever
	// accept, so no index or header can make it allocate more
	if int64(e.Offset)+int64(e.Length) > dataLen || e.Length < sealOverhead+1 ||
		e.Length > maxBlobPlaintext+sealOverhead+1 || e.RawLength > maxBlobPlaintext {
		return e, 0, fmt.Errorf("%w: pack header entry %s out of bounds", ErrCorrupt, e.ID.Short())
	}
	return e, n, nil
}

// packTrailer is the decoded fixed-size end of a pack.
type packTrailer struct {
	ephPublic []byte
	headerLen uint32
	members   bool // its format can list bundle members
}

func decodePackTrailer(t []byte) (packTrailer, error) {
	if len(t) != packTrailerLen {
		return packTrailer{}, fmt.Errorf("%w: pack trailer has %d bytes", ErrCorrupt, len(t))
	}
	if string(t[37:41]) != packMagic {
		return packTrailer{}, fmt.Errorf("%w: not a pack (bad magic)", ErrCorrupt)
	}
	if t[36] != packVersion && t[36] != packVersionBundles {
		return packTrailer{}, fmt.Errorf("pack format version %d is not supported by this backupd (knows %d and %d)", t[36], packVersion, packVersionBundles)
	}
	hl := binary.LittleEndian.Uint32(t[32:36])
	if hl > maxPackHeader || hl < sealOverhead {
		return packTrailer{}, fmt.Errorf("%w: pack header length %d", ErrCorrupt, hl)
	}
	return packTrailer{ephPublic: append([]byte(nil), t[:32]...), headerLen: hl, members: t[36] == packVersionBundles}, nil
}

// packBuilder accumulates sealed blobs into one pack.
type packBuilder struct {
	typ     BlobType
	buf     []byte
	mem     []byte // buf's first backing array, from packBufMem
	entries []PackEntry
	header  int     // the encoded length of entries
	sealer  *sealer // the session key its blobs were sealed with
}

// packHeaderBudget closes a pack whose header would grow past it: a pack
// of many small, well compressed bundle members could otherwise hold more
// entries than a reader accepts (maxPackHeader).
var packHeaderBudget = 4 << 20

// fits reports whether an item of n sealed bytes holding entries goes
// into the pack without taking it past its target size or header budget.
func (p *packBuilder) fits(n int, entries []PackEntry) bool {
	return len(p.buf)+n <= TargetPackSize && p.header+headerLen(entries) <= packHeaderBudget
}

// headerLen is the encoded length of entries in a pack header.
func headerLen(entries []PackEntry) int {
	n := 0
	for _, e := range entries {
		n += packEntryLen
		if e.Bundled() {
			n += memberEntryLen - packEntryLen
		}
	}
	return n
}

// newPackBuilder starts a pack in a buffer from packBufMem, given back by
// release (or, for a builder dropped without it, by the collector).
func newPackBuilder(t BlobType, s *sealer) *packBuilder {
	mem := packBufMem.get()
	p := &packBuilder{typ: t, buf: mem, mem: mem, sealer: s}
	runtime.SetFinalizer(p, (*packBuilder).release)
	return p
}

// release gives the pack's buffer back; nothing may use buf after it.
func (p *packBuilder) release() {
	packBufMem.put(p.mem)
	p.mem, p.buf = nil, nil
}

// add appends a sealed item and the entries of the blobs it holds (one,
// or a bundle's members), setting their offset.
func (p *packBuilder) add(sealed []byte, entries []PackEntry) {
	for _, e := range entries {
		e.Offset = uint32(len(p.buf))
		p.entries = append(p.entries, e)
	}
	p.header += headerLen(entries)
	p.buf = append(p.buf, sealed...)
}

// finish appends header and trailer and returns the pack bytes.
func (p *packBuilder) finish(s *sealer) []byte {
	hdr := seal(s.aead, nil, encodePackHeader(p.entries), headerAD())
	p.buf = append(p.buf, hdr...)
	p.buf = append(p.buf, s.ephPublic...)
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(hdr)))
	if hasMembers(p.entries) {
		p.buf = append(p.buf, packVersionBundles)
	} else {
		p.buf = append(p.buf, packVersion)
	}
	p.buf = append(p.buf, packMagic...)
	return p.buf
}

// ParsePack decodes a whole pack's header (used by the checker and by index
// repair). It returns the entries and the ephemeral public key.
func parsePack(pack []byte, dataPrivate []byte) ([]PackEntry, []byte, cipher.AEAD, error) {
	if len(pack) < packTrailerLen {
		return nil, nil, nil, fmt.Errorf("%w: pack of %d bytes is truncated", ErrCorrupt, len(pack))
	}
	tr, err := decodePackTrailer(pack[len(pack)-packTrailerLen:])
	if err != nil {
		return nil, nil, nil, err
	}
	hdrEnd := int64(len(pack) - packTrailerLen)
	if int64(tr.headerLen) > hdrEnd {
		return nil, nil, nil, fmt.Errorf("%w: pack header length exceeds pack", ErrCorrupt)
	}
	aead, err := openSession(dataPrivate, tr.ephPublic)
	if err != nil {
		if errors.Is(err, ErrWriteOnly) {
			return nil, nil, nil, err
		}
		return nil, nil, nil, fmt.Errorf("%w: pack key: %v", ErrCorrupt, err)
	}
	hdrStart := hdrEnd - int64(tr.headerLen)
	plain, err := open(aead, nil, pack[hdrStart:hdrEnd], headerAD())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: pack header does not authenticate", ErrCorrupt)
	}
	entries, err := decodePackHeader(plain, hdrStart, tr.members)
	if err != nil {
		return nil, nil, nil, err
	}
	return entries, tr.ephPublic, aead, nil
}
