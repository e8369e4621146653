package s3_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"backupd/storage"
	"backupd/storage/s3"
	"backupd/storage/s3/s3test"
)

// versitygw's listings take the fast path, and List returns what was put.
func TestListDecodeVersitygw(t *testing.T) {
	srv := s3test.StartTB(t)
	be := s3test.NewBackend(t, srv.Config("fastlist", "p"))
	ctx := context.Background()
	want := map[string]int64{}
	for i := range 30 {
		name := fmt.Sprintf("data/%02x/pack-%d", i%7, i)
		body := strings.Repeat("x", i)
		if err := be.Put(ctx, name, strings.NewReader(body), int64(i)); err != nil {
			t.Fatal(err)
		}
		want[name] = int64(i)
	}
	before := s3.ListFallbacks.Load()
	got := map[string]int64{}
	if err := be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		if oi.ModTime.IsZero() || time.Since(oi.ModTime) > time.Hour {
			t.Errorf("%s: modified %v", oi.Name, oi.ModTime)
		}
		got[oi.Name] = oi.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	if n := s3.ListFallbacks.Load() - before; n != 0 {
		t.Fatalf("%d of versitygw's listings went to the SDK's decoder", n)
	}
}
