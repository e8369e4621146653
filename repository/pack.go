package repository

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
)

// Pack layout (packs are written once and never modified):
//
//	blob 0 | blob 1 | ... | header | trailer
//
// Each blob is seal(session key, codec byte + payload, ad = type || id).
// The header is seal(session key, entries), each entry 45 bytes:
// type(1) id(32) offset(4) length(4) rawLength(4), little endian.
// The trailer is fixed-size: ephemeral public key(32) header length(4)
// version(1) magic "BKPK"(4). The session key is derived from the ephemeral
// key and the repository's data key, so a pack is self-describing for any
// holder of the read key: an index can always be rebuilt from the packs.
const (
	packMagic      = "BKPK"
	packVersion    = 1
	packTrailerLen = 32 + 4 + 1 + 4
	packEntryLen   = 1 + 32 + 4 + 4 + 4
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
	Offset    uint32
	Length    uint32 // stored (sealed) length
	RawLength uint32 // decoded plaintext length
}

func headerAD() []byte { return []byte("backupd pack header v1") }

func blobAD(t BlobType, id ID) []byte {
	ad := make([]byte, 33)
	ad[0] = byte(t)
	copy(ad[1:], id[:])
	return ad
}

func encodePackHeader(entries []PackEntry) []byte {
	b := make([]byte, 0, len(entries)*packEntryLen)
	for _, e := range entries {
		b = append(b, byte(e.Type))
		b = append(b, e.ID[:]...)
		b = binary.LittleEndian.AppendUint32(b, e.Offset)
		b = binary.LittleEndian.AppendUint32(b, e.Length)
		b = binary.LittleEndian.AppendUint32(b, e.RawLength)
	}
	return b
}

// decodePackHeader parses a decrypted header and checks that every entry
// lies inside the blob area of a pack of dataLen bytes.
func decodePackHeader(b []byte, dataLen int64) ([]PackEntry, error) {
	if len(b)%packEntryLen != 0 {
		return nil, fmt.Errorf("%w: pack header length %d is not a multiple of %d", ErrCorrupt, len(b), packEntryLen)
	}
	entries := make([]PackEntry, 0, len(b)/packEntryLen)
	for len(b) > 0 {
		var e PackEntry
		e.Type = BlobType(b[0])
		copy(e.ID[:], b[1:33])
		e.Offset = binary.LittleEndian.Uint32(b[33:])
		e.Length = binary.LittleEndian.Uint32(b[37:])
		e.RawLength = binary.LittleEndian.Uint32(b[41:])
		if e.Type != DataBlob && e.Type != TreeBlob {
			return nil, fmt.Errorf("%w: pack header names blob type %d", ErrCorrupt, e.Type)
		}
		// a blob's stored length is bounded by what a reader would ever
		// accept, so no index or header can make it allocate more
		if int64(e.Offset)+int64(e.Length) > dataLen || e.Length < sealOverhead+1 ||
			e.Length > maxBlobPlaintext+sealOverhead+1 || e.RawLength > maxBlobPlaintext {
			return nil, fmt.Errorf("%w: pack header entry %s out of bounds", ErrCorrupt, e.ID.Short())
		}
		entries = append(entries, e)
		b = b[packEntryLen:]
	}
	return entries, nil
}

// packTrailer is the decoded fixed-size end of a pack.
type packTrailer struct {
	ephPublic []byte
	headerLen uint32
}

func decodePackTrailer(t []byte) (packTrailer, error) {
	if len(t) != packTrailerLen {
		return packTrailer{}, fmt.Errorf("%w: pack trailer has %d bytes", ErrCorrupt, len(t))
	}
	if string(t[37:41]) != packMagic {
		return packTrailer{}, fmt.Errorf("%w: not a pack (bad magic)", ErrCorrupt)
	}
	if t[36] != packVersion {
		return packTrailer{}, fmt.Errorf("pack format version %d is not supported by this backupd (knows %d)", t[36], packVersion)
	}
	hl := binary.LittleEndian.Uint32(t[32:36])
	if hl > maxPackHeader || hl < sealOverhead {
		return packTrailer{}, fmt.Errorf("%w: pack header length %d", ErrCorrupt, hl)
	}
	return packTrailer{ephPublic: append([]byte(nil), t[:32]...), headerLen: hl}, nil
}

// packBuilder accumulates sealed blobs into one pack.
type packBuilder struct {
	typ     BlobType
	buf     []byte
	mem     []byte // buf's first backing array, from packBufMem
	entries []PackEntry
	sealer  *sealer // the session key its blobs were sealed with
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

func (p *packBuilder) add(t BlobType, id ID, sealed []byte, rawLen int) {
	p.entries = append(p.entries, PackEntry{Type: t, ID: id, Offset: uint32(len(p.buf)),
		Length: uint32(len(sealed)), RawLength: uint32(rawLen)})
	p.buf = append(p.buf, sealed...)
}

// finish appends header and trailer and returns the pack bytes.
func (p *packBuilder) finish(s *sealer) []byte {
	hdr := seal(s.aead, nil, encodePackHeader(p.entries), headerAD())
	p.buf = append(p.buf, hdr...)
	p.buf = append(p.buf, s.ephPublic...)
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(hdr)))
	p.buf = append(p.buf, packVersion)
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
	entries, err := decodePackHeader(plain, hdrStart)
	if err != nil {
		return nil, nil, nil, err
	}
	return entries, tr.ephPublic, aead, nil
}
