package repository

import (
	"math"
	"sync"

	"github.com/pierrec/lz4/v4"
)

// Compressing data that does not compress (media, archives, encrypted
// files) costs the stronger zstd level its full price per byte and saves
// nothing: on 100k small files of which 40% are random, that was half the
// CPU of a full backup. incompressible spots such data cheaply, as borg's
// "auto" does with lz4, in two steps:
//
//  1. the entropy of the blob's byte histogram (about 1 ns a byte) must be
//     what random bytes of that length show; text, code and most binaries
//     are far below it, and so is data that repeats (its counts are
//     multiples of a smaller sample's);
//  2. lz4, which skips quickly through data it cannot match, must then
//     save less than the 3% below which compress stores a blob raw anyway,
//     which catches repeats the histogram cannot see (within lz4's 64 KiB
//     window).
//
// What it misses is only space: a random block repeated farther apart
// than 64 KiB inside one blob is stored without the saving zstd would find.
func incompressible(src []byte) bool {
	if len(src) < 512 {
		return false
	}
	if !randomLooking(src) {
		return false
	}
	lc := lz4Probes.Get().(*lz4Probe)
	defer lz4Probes.Put(lc)
	bound := lz4.CompressBlockBound(len(src))
	if cap(lc.dst) < bound {
		lc.dst = make([]byte, bound)
	}
	n, err := lc.c.CompressBlock(src, lc.dst[:bound])
	return err == nil && (n == 0 || n > len(src)-len(src)/32)
}

type lz4Probe struct {
	c   lz4.Compressor
	dst []byte
}

var lz4Probes = sync.Pool{New: func() any { return new(lz4Probe) }}

// randomLooking: the order-0 entropy of src's bytes (sampled: up to four
// 64 KiB windows spread over it) is what uniform random bytes of that
// length show. The estimate of n random bytes falls short of 8 bits by
// about 1.0-1.15 times 255/(2n ln 2), with a spread of about 17/n (measured
// over 1,000 samples each of 512 B to 256 KiB); the threshold leaves over
// five spreads to spare, and text (4-5 bits), code and base64 (6) are far
// below it.
func randomLooking(src []byte) bool {
	var counts [256]uint32
	const window = 64 << 10
	n := 0
	if len(src) <= 4*window {
		for _, c := range src {
			counts[c]++
		}
		n = len(src)
	} else {
		step := (len(src) - window) / 3
		for i := 0; i < 4; i++ {
			for _, c := range src[i*step : i*step+window] {
				counts[c]++
			}
		}
		n = 4 * window
	}
	fn := float64(n)
	var sum float64
	for _, c := range counts {
		if c > 0 {
			sum += float64(c) * math.Log2(float64(c))
		}
	}
	h := math.Log2(fn) - sum/fn
	return h >= 8-1.2*255/(2*fn*math.Ln2)-0.02-70/fn
}
