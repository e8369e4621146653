package repository

import (
	"bytes"
	"math/rand"
	"strings"
	"testing"
)

func TestIncompressibleSpotsRandomDataOnly(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog; backup, restore. ", 2000))
	binaryish := random(64 << 10)
	for i := range binaryish {
		binaryish[i] &= 0x3f // six bits of entropy a byte
	}
	for _, c := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"random 1 KiB", random(1 << 10), true},
		{"random 4 KiB", random(4 << 10), true},
		{"random 300 KiB", random(300 << 10), true},
		{"random 3 MiB (sampled)", random(3 << 20), true},
		{"random 600 B", random(600), true},
		{"tiny random", random(100), false},
		{"text", text, false},
		{"six bits a byte", binaryish, false},
		// the histogram sees repeats of a small block...
		{"1 KiB random block eight times", bytes.Repeat(random(1<<10), 8), false},
		// ...and lz4 those of a larger one
		{"32 KiB random block twice", bytes.Repeat(random(32<<10), 2), false},
		{"random with a text tail", append(random(8<<10), text[:8<<10]...), false},
	} {
		if got := incompressible(c.b); got != c.want {
			t.Errorf("%s: incompressible = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestCompressStoresIncompressibleBlobsRaw(t *testing.T) {
	src := make([]byte, 8<<10)
	rand.New(rand.NewSource(2)).Read(src)
	for _, c := range []Compression{CompressZstd, CompressGzip, CompressBzip2, CompressLZ4} {
		enc := compress(nil, c, src)
		if Compression(enc[0]) != CompressNone || !bytes.Equal(enc[1:], src) {
			t.Fatalf("%s: random data stored with codec %d, %d bytes", c, enc[0], len(enc))
		}
		out, err := decompress(enc, len(src))
		if err != nil || !bytes.Equal(out, src) {
			t.Fatalf("%s: round trip: %v", c, err)
		}
	}
	half := append(bytes.Repeat(src[:4<<10], 2), src...)
	if enc := compress(nil, CompressZstd, half); Compression(enc[0]) != CompressZstd || len(enc) > len(half)*3/4 {
		t.Fatalf("a repeated random block was not compressed: codec %d, %d of %d bytes", enc[0], len(enc), len(half))
	}
}
