package prefix

import (
	"context"
	"testing"

	"backupd/storage"
	"backupd/storage/mem"
	"backupd/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := New(mem.New(), "hosts/host-1")
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// Objects stay below the prefix, and another prefix's are not seen.
func TestPrefixesDoNotSeeEachOther(t *testing.T) {
	ctx := context.Background()
	under := mem.New()
	a, _ := New(under, "hosts/a")
	b, _ := New(under, "hosts/ab")
	storagetest.Put(t, a, "data/x", []byte("a's"))
	storagetest.Put(t, b, "data/x", []byte("b's"))
	storagetest.Expect(t, a, "data/x", []byte("a's"))
	if got := storagetest.Names(t, a, ""); len(got) != 1 || got[0] != "data/x" {
		t.Fatalf("a lists %v", got)
	}
	if got := storagetest.Names(t, under, ""); len(got) != 2 || got[0] != "hosts/a/data/x" {
		t.Fatalf("below: %v", got)
	}
	for _, bad := range []string{"../ab/data/x", "/data/x", "data/../../x"} {
		if _, err := a.Stat(ctx, bad); err == nil {
			t.Errorf("%q escaped the prefix", bad)
		}
	}
	if _, err := New(under, "../x"); err == nil {
		t.Fatal("a prefix with .. was accepted")
	}
}
