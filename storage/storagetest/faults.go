package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"backupd/storage"
	"backupd/storage/fault"
	"backupd/storage/retry"
)

// FastRetry are retry options that keep tests quick.
var FastRetry = retry.Options{MaxAttempts: 4, InitialDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

// RunFaults checks the retry and fault decorators on top of a real backend:
// injected transient failures are cured by retrying, permanent ones are not
// retried, a Put broken midway stores nothing, and cancellation stops the
// waiting. newBackend is as for Run.
func RunFaults(t *testing.T, newBackend func(t *testing.T) storage.Backend) {
	ctx := context.Background()
	setup := func(t *testing.T) (storage.Backend, *fault.Backend, *retry.Backend) {
		b := newBackend(t)
		fb := fault.New(b)
		return b, fb, retry.New(fb, FastRetry)
	}

	t.Run("TransientPutRetried", func(t *testing.T) {
		_, fb, rb := setup(t)
		fb.Add(fault.Rule{Op: fault.Put, Nth: 1})
		data := Data(30, 1000)
		Put(t, rb, "x", data)
		Expect(t, rb, "x", data)
		if n := fb.Calls(fault.Put); n != 2 {
			t.Fatalf("Put calls = %d; want 2 (one failure, one retry)", n)
		}
	})

	t.Run("BrokenUploadRetriedFromStart", func(t *testing.T) {
		b, fb, rb := setup(t)
		fb.Add(fault.Rule{Op: fault.Put, Action: fault.FailAfter, Bytes: 300 << 10, Times: 2})
		data := Data(31, 1<<20)
		r := bytes.NewReader(append([]byte("skip"), data...))
		r.Seek(4, io.SeekStart)
		if err := rb.Put(ctx, "x", r, int64(len(data))); err != nil {
			t.Fatal(err)
		}
		Expect(t, b, "x", data)
		if n := fb.Calls(fault.Put); n != 3 {
			t.Fatalf("Put calls = %d; want 3", n)
		}
	})

	t.Run("CrashMidUploadStoresNothing", func(t *testing.T) {
		b, fb, _ := setup(t)
		old := Data(32, 5000)
		Put(t, b, "x", old)
		fb.Add(fault.Rule{Op: fault.Put, Action: fault.FailAfter, Bytes: 1 << 20})
		data := Data(33, 3<<20)
		err := fb.Put(ctx, "x", bytes.NewReader(data), int64(len(data)))
		if !errors.Is(err, fault.ErrInjected) {
			t.Fatalf("Put broken midway = %v; want the injected error", err)
		}
		err = fb.Put(ctx, "y", bytes.NewReader(data), int64(len(data)))
		if !errors.Is(err, fault.ErrInjected) {
			t.Fatalf("Put broken midway = %v; want the injected error", err)
		}
		checkNothingStored(t, b, "x", old, []string{"x"})
	})

	t.Run("PermanentNotRetried", func(t *testing.T) {
		_, fb, rb := setup(t)
		fb.Add(fault.Rule{Op: fault.Put, Err: storage.Permanent(fault.ErrInjected), Times: 1})
		err := rb.Put(ctx, "x", bytes.NewReader([]byte("x")), 1)
		if !errors.Is(err, fault.ErrInjected) || !storage.IsPermanent(err) {
			t.Fatalf("Put = %v; want the permanent injected error", err)
		}
		if n := fb.Calls(fault.Put); n != 1 {
			t.Fatalf("Put calls = %d; want 1: permanent errors are not retried", n)
		}
		if _, err := rb.Stat(ctx, "missing"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Stat(missing) = %v", err)
		}
		if n := fb.Calls(fault.Stat); n != 1 {
			t.Fatalf("Stat calls = %d; want 1: ErrNotFound is not retried", n)
		}
		err = rb.Put(ctx, "short", bytes.NewReader([]byte("x")), 2)
		if !errors.Is(err, storage.ErrSizeMismatch) {
			t.Fatalf("short Put = %v; want ErrSizeMismatch", err)
		}
		if n := fb.Calls(fault.Put); n != 2 {
			t.Fatalf("Put calls = %d; want 2: a size mismatch is not retried", n)
		}
	})

	t.Run("GivesUpAfterMaxAttempts", func(t *testing.T) {
		_, fb, rb := setup(t)
		fb.Add(fault.Rule{Op: fault.Stat})
		if _, err := rb.Stat(ctx, "x"); !errors.Is(err, fault.ErrInjected) {
			t.Fatalf("Stat = %v; want the injected error", err)
		}
		if n := fb.Calls(fault.Stat); n != FastRetry.MaxAttempts {
			t.Fatalf("Stat calls = %d; want %d", n, FastRetry.MaxAttempts)
		}
	})

	t.Run("BrokenDownloadResumed", func(t *testing.T) {
		b, fb, rb := setup(t)
		data := Data(34, 2<<20)
		Put(t, b, "x", data)
		fb.Add(fault.Rule{Op: fault.Get, Action: fault.FailAfter, Bytes: 700 << 10, Times: 1})
		fb.Add(fault.Rule{Op: fault.Get, Action: fault.Truncate, Bytes: 100 << 10, Times: 1})
		rc, err := rb.Get(ctx, "x", 1000, int64(len(data))-2000)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := data[1000 : len(data)-1000]; !bytes.Equal(got, want) {
			t.Fatalf("resumed Get: %d bytes, want %d (%s)", len(got), len(want), firstDiff(got, want))
		}
		if n := fb.Calls(fault.Get); n != 3 {
			t.Fatalf("Get calls = %d; want 3 (two broken bodies)", n)
		}
	})

	t.Run("CorruptAndTruncate", func(t *testing.T) {
		b, fb, _ := setup(t)
		data := Data(35, 1000)
		Put(t, b, "x", data)
		fb.Add(fault.Rule{Op: fault.Get, Action: fault.Corrupt, Bytes: 10, Times: 1})
		got, err := storage.ReadAll(ctx, fb, "x")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(data) || got[10] != ^data[10] || !bytes.Equal(got[11:], data[11:]) || !bytes.Equal(got[:10], data[:10]) {
			t.Fatal("Corrupt did not flip exactly byte 10")
		}
		fb.Add(fault.Rule{Op: fault.Get, Prefix: "x", Action: fault.Truncate, Bytes: 100, Times: 1})
		if got, err := storage.ReadAll(ctx, fb, "x"); err != nil || !bytes.Equal(got, data[:100]) {
			t.Fatalf("Truncate: %d bytes, %v; want the first 100", len(got), err)
		}
		Expect(t, fb, "x", data)
	})

	t.Run("BrokenListResumedWithoutDuplicates", func(t *testing.T) {
		b, fb, rb := setup(t)
		for _, n := range []string{"l/1", "l/2", "l/3", "l/4", "l/5"} {
			Put(t, b, n, []byte(n))
		}
		fb.Add(fault.Rule{Op: fault.List, Action: fault.FailAfter, Bytes: 2, Times: 2})
		var got []string
		if err := rb.List(ctx, "l/", func(oi storage.ObjectInfo) error {
			got = append(got, oi.Name)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if want := []string{"l/1", "l/2", "l/3", "l/4", "l/5"}; !slices.Equal(got, want) {
			t.Fatalf("listed %q; want each of %q once", got, want)
		}
		stop := errors.New("stop")
		calls := 0
		err := rb.List(ctx, "l/", func(storage.ObjectInfo) error { calls++; return stop })
		if err != stop || calls != 1 {
			t.Fatalf("List with failing fn = %v after %d calls; want fn's error after 1 (not retried)", err, calls)
		}
	})

	t.Run("DeleteRetryAfterLostAnswer", func(t *testing.T) {
		b, fb, rb := setup(t)
		Put(t, b, "x", []byte("x"))
		// The first Delete reaches the store but its answer is lost.
		fb.Add(fault.Rule{Op: fault.Delete, Nth: 1})
		if err := b.Delete(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		if err := rb.Delete(ctx, "x"); err != nil {
			t.Fatalf("Delete after a lost answer = %v; want success", err)
		}
		if err := rb.Delete(ctx, "x"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Delete of a missing object = %v; want ErrNotFound", err)
		}
	})

	t.Run("CancelStopsBackoff", func(t *testing.T) {
		_, fb, _ := setup(t)
		rb := retry.New(fb, retry.Options{MaxAttempts: 10, InitialDelay: 10 * time.Second})
		fb.Add(fault.Rule{Op: fault.Put})
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		err := rb.Put(cctx, "x", bytes.NewReader([]byte("x")), 1)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Put returned %v after the cancellation", d)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Put = %v; want context.Canceled", err)
		}
		if n := fb.Calls(fault.Put); n != 1 {
			t.Fatalf("Put calls = %d; want 1", n)
		}
	})

	t.Run("SlowCallHonoursDeadline", func(t *testing.T) {
		_, fb, rb := setup(t)
		fb.Add(fault.Rule{Op: fault.Stat, Action: fault.Delay, Delay: time.Minute})
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := rb.Stat(cctx, "x")
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Stat returned %v after the deadline", d)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stat = %v; want context.DeadlineExceeded", err)
		}
		if n := fb.Calls(fault.Stat); n != 1 {
			t.Fatalf("Stat calls = %d; want 1: context errors are not retried", n)
		}
	})
}
