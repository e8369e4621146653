package storage_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"backupd/storage"
	"backupd/storage/mem"
)

// unordered answers ListFirst out of order (a server that does not keep
// S3's order), or with a name twice.
type unordered struct {
	storage.Backend
	twice bool
}

func (u unordered) ListFirst(ctx context.Context, prefix string, max int, fn func(storage.ObjectInfo) error) (bool, error) {
	fn(storage.ObjectInfo{Name: "p/b"})
	if u.twice {
		fn(storage.ObjectInfo{Name: "p/b"})
	} else {
		fn(storage.ObjectInfo{Name: "p/a"})
	}
	return true, nil
}

// An answer out of order, or with a name twice, is not taken: the prefix
// is listed whole instead.
func TestListFirstRefusesAnAnswerOutOfOrder(t *testing.T) {
	ctx := context.Background()
	m := mem.New()
	for _, n := range []string{"p/c", "p/a", "p/b"} {
		if err := m.Put(ctx, n, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, twice := range []bool{false, true} {
		var got []string
		more, err := storage.ListFirst(ctx, unordered{m, twice}, "p/", 2, func(oi storage.ObjectInfo) error {
			got = append(got, oi.Name)
			return nil
		})
		if err != nil || !more || !slices.Equal(got, []string{"p/a", "p/b"}) {
			t.Fatalf("twice %v: %v, more %v, %v", twice, got, more, err)
		}
	}
}
