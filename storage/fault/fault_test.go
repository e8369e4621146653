package fault_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"backupd/storage"
	"backupd/storage/fault"
	"backupd/storage/local"
	"backupd/storage/storagetest"
)

func newFault(t *testing.T) *fault.Backend {
	b, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return fault.New(b)
}

// With no rules the decorator must be invisible.
func TestConformanceNoRules(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return newFault(t) })
}

func TestNthPrefixAndCounts(t *testing.T) {
	fb := newFault(t)
	ctx := context.Background()
	boom := errors.New("boom")
	fb.Add(fault.Rule{Op: fault.Put, Prefix: "data/", Nth: 2, Err: boom})
	put := func(name string) error { return fb.Put(ctx, name, bytes.NewReader([]byte("x")), 1) }
	for i, c := range []struct {
		name string
		fail bool
	}{{"data/1", false}, {"index/1", false}, {"data/2", true}, {"data/3", false}} {
		err := put(c.name)
		if c.fail != errors.Is(err, boom) || (!c.fail && err != nil) {
			t.Fatalf("call %d Put(%s) = %v; want failure %v", i, c.name, err, c.fail)
		}
	}
	if n := fb.Calls(fault.Put); n != 4 {
		t.Fatalf("Calls(Put) = %d", n)
	}
	if _, err := fb.Stat(ctx, "data/1"); err != nil {
		t.Fatal(err)
	}
	if n := fb.Calls(fault.Any); n != 5 {
		t.Fatalf("Calls(Any) = %d", n)
	}
	if n := fb.Fired(); n != 1 {
		t.Fatalf("Fired = %d", n)
	}
	fb.Reset()
	if n := fb.Calls(fault.Any); n != 0 {
		t.Fatalf("Calls after Reset = %d", n)
	}
	if err := put("data/4"); err != nil {
		t.Fatal(err)
	}
	storagetest.ExpectMissing(t, fb, "data/2")
}

func TestFailBeforeCallingBackend(t *testing.T) {
	fb := newFault(t)
	fb.Add(fault.Rule{Op: fault.Delete, Times: 1})
	storagetest.Put(t, fb, "x", []byte("x"))
	if err := fb.Delete(context.Background(), "x"); !errors.Is(err, fault.ErrInjected) {
		t.Fatalf("Delete = %v", err)
	}
	storagetest.Expect(t, fb, "x", []byte("x")) // the failed Delete did not reach the store
}
