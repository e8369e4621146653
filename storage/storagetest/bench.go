package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"backupd/storage"
)

// Bench measures Put and Get of pack-sized and small objects. newBackend
// returns an empty store, as for Run.
func Bench(b *testing.B, newBackend func(b *testing.B) storage.Backend) {
	for _, size := range []int{4 << 10, 1 << 20, 16 << 20} {
		data := Data(uint64(size), size)
		b.Run(fmt.Sprintf("Put/%dKiB", size>>10), func(b *testing.B) {
			be := newBackend(b)
			ctx := context.Background()
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				if err := be.Put(ctx, fmt.Sprintf("bench/%d", i), bytes.NewReader(data), int64(size)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("Get/%dKiB", size>>10), func(b *testing.B) {
			be := newBackend(b)
			ctx := context.Background()
			Put(b, be, "bench", data)
			b.SetBytes(int64(size))
			for b.Loop() {
				rc, err := be.Get(ctx, "bench", 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}
