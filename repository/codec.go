package repository

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compression names a blob codec. Its byte is the first byte of every blob
// plaintext, so a reader needs no configuration to decode any blob.
type Compression byte

const (
	CompressNone  Compression = 0
	CompressZstd  Compression = 1
	CompressGzip  Compression = 2
	CompressBzip2 Compression = 3
	CompressLZ4   Compression = 4
)

var compressionNames = map[Compression]string{
	CompressNone: "none", CompressZstd: "zstd", CompressGzip: "gzip",
	CompressBzip2: "bzip2", CompressLZ4: "lz4",
}

func (c Compression) String() string {
	if n, ok := compressionNames[c]; ok {
		return n
	}
	return fmt.Sprintf("compression(%d)", byte(c))
}

// ParseCompression accepts the names of the API and CLI.
func ParseCompression(s string) (Compression, error) {
	for c, n := range compressionNames {
		if n == s {
			return c, nil
		}
	}
	if s == "" {
		return CompressZstd, nil
	}
	return 0, fmt.Errorf("unknown compression %q (want zstd, gzip, bzip2, lz4 or none)", s)
}

// smallBlob: in a repository without bundles (format 2), data blobs below
// this size (whole small files, file tails) get the stronger zstd level
// (trees get the fastest: see compressBlob); full-size chunks of large
// files, most of the bytes, use the default level. On the Go toolchain this gives almost
// all of the stronger level's ratio (74.0 MB against 73.4 MB and 75.3 MB)
// at a fifth of its extra CPU.
//
// Below tinyBlob the stronger level costs more per call than it saves: the
// Go toolchain's repository is the same size (74.08 against 74.13 MB) and
// a full backup of 100k files of 1-4 KB spends 10-15% less CPU (medians of
// three warm runs) with the default level there.
const (
	smallBlob = 1 << 20
	tinyBlob  = 4 << 10
)

// bundleStrongLevel compresses the bundles repack writes. Repack runs in
// the background, where a backup's time is not at stake, and rewrites what
// stays live for long: on 64 MB of the Go toolchain's small files in 1 MiB
// bundles, one core, the fastest level gives 17.3 MB at 239 MB/s, the
// default 16.1 MB at 171 MB/s, and this one 15.3 MB at 89 MB/s, faster
// than most links a repack reads and writes through.
var bundleStrongLevel = zstd.SpeedBetterCompression

// maxBlobPlaintext bounds a decoded blob, so a hostile or corrupted blob
// cannot make a reader allocate without limit. Data blobs are at most
// MaxChunkSize; tree blobs of huge directories may be larger.
const maxBlobPlaintext = 256 << 20

// zstdClass picks a zstd encoder for what is compressed.
type zstdClass int

const (
	zstdBySize       zstdClass = iota // by the blob's size (smallBlob, tinyBlob)
	zstdFast                          // the fastest level: chunks of large files, beside bundles
	zstdBundle                        // a bundle of small blobs (bundle.go)
	zstdBundleStrong                  // a bundle that repack stores (repack.go)
)

var (
	zstdEnc       *zstd.Encoder
	zstdEncSmall  *zstd.Encoder
	zstdEncFast   *zstd.Encoder
	zstdEncBundle *zstd.Encoder
	// zstdEncBundleStrong: bundles repack writes
	zstdEncBundleStrong *zstd.Encoder
	zstdDec             *zstd.Decoder
	// zstdDecCap decodes no more than the capacity of its destination, so
	// a blob of known length cannot expand past it (zstd frames need not
	// state their size, and a few bytes of RLE blocks can decode to
	// hundreds of MiB).
	zstdDecCap *zstd.Decoder
	zstdOnce   sync.Once
)

func zstdCodecs() (*zstd.Encoder, *zstd.Decoder) {
	zstdOnce.Do(func() {
		var err error
		// EncodeAll/DecodeAll are safe for concurrent use.
		zstdEnc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			panic(err)
		}
		// its inputs are under smallBlob, so a window of that size loses
		// nothing and keeps each encoder's history buffer small
		zstdEncSmall, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithWindowSize(smallBlob))
		if err != nil {
			panic(err)
		}
		// The fast levels store literals raw when a block has no match,
		// which leaves text of a small alphabet (hex, base64) as large as
		// it is; incompressible() already keeps random data from them, so
		// the entropy coding they skip to save time on it is not skipped.
		zstdEncFast, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithAllLitEntropyCompression(true))
		if err != nil {
			panic(err)
		}
		// A bundle is under bundleTarget+bundleMember. The fastest level:
		// on the Go toolchain (bench case A) the repository is 71.1 MB
		// instead of 69.4 MB at the default level, and a cold full backup
		// takes 1.24 s instead of 1.38 s (medians of 5, alternating); a
		// bundle's many files already give the encoder the matches the
		// stronger level would search for.
		zstdEncBundle, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithWindowSize(2<<20), zstd.WithAllLitEntropyCompression(true))
		if err != nil {
			panic(err)
		}
		zstdEncBundleStrong, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(bundleStrongLevel), zstd.WithEncoderCRC(false),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithWindowSize(2<<20))
		if err != nil {
			panic(err)
		}
		zstdDec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(maxBlobPlaintext))
		if err != nil {
			panic(err)
		}
		zstdDecCap, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(maxBlobPlaintext), zstd.WithDecodeAllCapLimit(true))
		if err != nil {
			panic(err)
		}
	})
	return zstdEnc, zstdDec
}

// compress appends the encoded form of src (codec byte + payload) to dst.
// When compression does not pay (less than 3% saved), or the data looks
// incompressible before trying (see incompressible), the blob is stored
// with CompressNone.
func compress(dst []byte, c Compression, src []byte) []byte {
	return compressClass(dst, c, src, zstdBySize)
}

// compressBundle is compress for a bundle's plaintext; strong: at
// bundleStrongLevel instead of the fastest (see zstdEncBundle).
func compressBundle(dst []byte, c Compression, src []byte, strong bool) []byte {
	if strong {
		return compressClass(dst, c, src, zstdBundleStrong)
	}
	return compressClass(dst, c, src, zstdBundle)
}

// compressClass is compress with zstd's encoder chosen by class.
func compressClass(dst []byte, c Compression, src []byte, class zstdClass) []byte {
	start := len(dst)
	// (a bundle's members were each probed before they joined it)
	if c != CompressNone && class != zstdBundle && class != zstdBundleStrong && incompressible(src) {
		c = CompressNone
	}
	dst = append(dst, byte(c))
	switch c {
	case CompressZstd:
		enc, _ := zstdCodecs()
		switch {
		case class == zstdFast:
			enc = zstdEncFast
		case class == zstdBundle:
			enc = zstdEncBundle
		case class == zstdBundleStrong:
			enc = zstdEncBundleStrong
		case len(src) < smallBlob && len(src) >= tinyBlob:
			enc = zstdEncSmall
		}
		dst = enc.EncodeAll(src, dst)
	case CompressGzip:
		buf := bytes.NewBuffer(dst)
		w, _ := gzip.NewWriterLevel(buf, gzip.DefaultCompression)
		w.Write(src)
		w.Close()
		dst = buf.Bytes()
	case CompressBzip2:
		buf := bytes.NewBuffer(dst)
		w, _ := bzip2.NewWriter(buf, &bzip2.WriterConfig{Level: bzip2.DefaultCompression})
		w.Write(src)
		w.Close()
		dst = buf.Bytes()
	case CompressLZ4:
		bound := lz4.CompressBlockBound(len(src))
		dst = growBy(dst, bound)
		var lc lz4.Compressor
		n, err := lc.CompressBlock(src, dst[len(dst)-bound:])
		if err != nil || n == 0 {
			dst = dst[:start]
			return append(append(dst, byte(CompressNone)), src...)
		}
		dst = dst[:len(dst)-bound+n]
	default:
		return append(dst, src...)
	}
	if c != CompressNone && len(dst)-start-1 > len(src)-len(src)/32 {
		dst = dst[:start]
		dst = append(dst, byte(CompressNone))
		dst = append(dst, src...)
	}
	return dst
}

func growBy(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// ErrCorrupt wraps every decoding failure of stored data.
var ErrCorrupt = errors.New("repository data is corrupt")

// decompress decodes a blob plaintext (codec byte + payload). rawLen is the
// expected decoded length when known (from the index), or -1.
func decompress(src []byte, rawLen int) ([]byte, error) { return decompressInto(nil, src, rawLen) }

// decompressInto is decompress writing into dst's array when its capacity
// holds rawLen bytes (the result may also alias src: a blob stored
// uncompressed is returned in place).
func decompressInto(dst, src []byte, rawLen int) ([]byte, error) {
	if len(src) < 1 {
		return nil, fmt.Errorf("%w: empty blob", ErrCorrupt)
	}
	c, payload := Compression(src[0]), src[1:]
	limit := maxBlobPlaintext
	if rawLen > maxBlobPlaintext {
		// The length comes from an index or pack header; lz4 and the zstd
		// buffer allocate it up front, so it must be bounded first.
		return nil, fmt.Errorf("%w: stated blob length %d exceeds the limit of %d", ErrCorrupt, rawLen, maxBlobPlaintext)
	}
	if rawLen >= 0 {
		limit = rawLen
	}
	var out []byte
	var err error
	switch c {
	case CompressNone:
		out = payload
	case CompressZstd:
		_, dec := zstdCodecs()
		if rawLen >= 0 {
			if cap(dst) < rawLen {
				dst = make([]byte, 0, rawLen)
			}
			// capped at rawLen: the decoder stops at the capacity
			out, err = zstdDecCap.DecodeAll(payload, dst[:0:rawLen])
		} else {
			out, err = dec.DecodeAll(payload, nil)
		}
	case CompressGzip:
		var r *gzip.Reader
		r, err = gzip.NewReader(bytes.NewReader(payload))
		if err == nil {
			out, err = readLimited(r, limit)
		}
	case CompressBzip2:
		var r *bzip2.Reader
		r, err = bzip2.NewReader(bytes.NewReader(payload), nil)
		if err == nil {
			out, err = readLimited(r, limit)
		}
	case CompressLZ4:
		if rawLen < 0 {
			return nil, fmt.Errorf("%w: lz4 blob without a known length", ErrCorrupt)
		}
		if cap(dst) < rawLen || dst == nil {
			// never nil: the lz4 decoder dereferences a nil buffer
			// even when the stated length is zero
			dst = make([]byte, rawLen)
		}
		out = dst[:rawLen]
		var n int
		n, err = lz4.UncompressBlock(payload, out)
		if err == nil && n != rawLen {
			err = fmt.Errorf("lz4 produced %d bytes, want %d", n, rawLen)
		}
	default:
		return nil, fmt.Errorf("%w: unknown compression byte %d", ErrCorrupt, src[0])
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, c, err)
	}
	if len(out) > limit || (rawLen >= 0 && len(out) != rawLen) {
		return nil, fmt.Errorf("%w: decoded length %d, want %d", ErrCorrupt, len(out), rawLen)
	}
	return out, nil
}

func readLimited(r io.Reader, limit int) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(out) > limit {
		return nil, errors.New("decoded data exceeds its stated length")
	}
	return out, nil
}
