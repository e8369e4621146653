package retry_test

import (
	"sync"
	"testing"
	"time"

	"backupd/storage"
	"backupd/storage/fault"
	"backupd/storage/local"
	"backupd/storage/retry"
	"backupd/storage/storagetest"
)

func newLocal(t *testing.T) storage.Backend {
	b, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestFaults(t *testing.T) {
	storagetest.RunFaults(t, newLocal)
}

// TestConformanceThroughDecorators runs the whole contract through
// retry(fault(local)) with no faults: the decorators must be transparent.
func TestConformanceThroughDecorators(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return retry.New(fault.New(newLocal(t)), storagetest.FastRetry)
	})
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	var mu sync.Mutex
	var waits []time.Duration
	fb := fault.New(newLocal(t))
	fb.Add(fault.Rule{Op: fault.Capacity})
	rb := retry.New(fb, retry.Options{
		MaxAttempts: 6, InitialDelay: 2 * time.Millisecond, MaxDelay: 8 * time.Millisecond,
		OnRetry: func(op, name string, attempt int, err error, wait time.Duration) {
			mu.Lock()
			waits = append(waits, wait)
			mu.Unlock()
		},
	})
	if _, err := rb.Capacity(t.Context()); err == nil {
		t.Fatal("Capacity succeeded through an always-failing rule")
	}
	if len(waits) != 5 {
		t.Fatalf("%d waits; want 5", len(waits))
	}
	limits := []time.Duration{2, 4, 8, 8, 8}
	for i, w := range waits {
		hi := limits[i] * time.Millisecond
		if w < hi/2 || w > hi {
			t.Errorf("wait %d = %v; want within [%v, %v]", i+1, w, hi/2, hi)
		}
	}
}

func TestMaxElapsed(t *testing.T) {
	fb := fault.New(newLocal(t))
	fb.Add(fault.Rule{Op: fault.Stat})
	rb := retry.New(fb, retry.Options{MaxAttempts: 100, InitialDelay: 20 * time.Millisecond, MaxDelay: 20 * time.Millisecond, MaxElapsed: 100 * time.Millisecond})
	start := time.Now()
	if _, err := rb.Stat(t.Context(), "x"); err == nil {
		t.Fatal("Stat succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("gave up after %v; MaxElapsed is 100ms", d)
	}
	if n := fb.Calls(fault.Stat); n < 3 || n > 12 {
		t.Fatalf("%d attempts in 100ms with 10-20ms waits", n)
	}
}
