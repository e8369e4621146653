package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"backupd/storage"
	"backupd/storage/mem"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "data/ab/ab12", "a.b", "..a", "a..", ".hidden/x", "x/.y"} {
		if err := storage.ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/", "/a", "a/", "a//b", ".", "..", "../a", "a/..", "a/./b", "a\\b", "a\x00"} {
		if err := storage.ValidName(bad); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("ValidName(%q) = %v; want ErrInvalidName", bad, err)
		}
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("disk on fire")
	p := storage.Permanent(base)
	if !storage.IsPermanent(p) || !errors.Is(p, base) || p.Error() != base.Error() {
		t.Fatalf("Permanent(%v) = %v", base, p)
	}
	if storage.IsPermanent(base) || storage.IsPermanent(nil) || storage.Permanent(nil) != nil {
		t.Fatal("unmarked errors must not be permanent")
	}
	if w := fmt.Errorf("put: %w", p); !storage.IsPermanent(w) {
		t.Fatal("wrapping lost the mark")
	}
	for _, err := range []error{storage.ErrNotFound, storage.ErrInvalidName, storage.ErrInvalidRange,
		storage.ErrSizeMismatch, context.Canceled, fmt.Errorf("x: %w", context.DeadlineExceeded)} {
		if !storage.IsPermanent(err) {
			t.Errorf("IsPermanent(%v) = false", err)
		}
	}
}

func TestCheckRange(t *testing.T) {
	for _, c := range []struct{ size, off, length, want int64 }{
		{10, 0, -1, 10}, {10, 3, -1, 7}, {10, 10, -1, 0}, {10, 10, 0, 0}, {10, 2, 8, 8}, {0, 0, -1, 0},
	} {
		if n, err := storage.CheckRange(c.size, c.off, c.length); err != nil || n != c.want {
			t.Errorf("CheckRange(%d, %d, %d) = %d, %v; want %d", c.size, c.off, c.length, n, err, c.want)
		}
	}
	for _, c := range []struct{ size, off, length int64 }{{10, 11, -1}, {10, -1, 1}, {10, 2, 9}, {0, 1, 0}} {
		if _, err := storage.CheckRange(c.size, c.off, c.length); !errors.Is(err, storage.ErrInvalidRange) {
			t.Errorf("CheckRange(%d, %d, %d) = %v; want ErrInvalidRange", c.size, c.off, c.length, err)
		}
	}
}

type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func TestExactReader(t *testing.T) {
	data := []byte("0123456789")
	for _, c := range []struct {
		have int
		size int64
		ok   bool
	}{{10, 10, true}, {0, 0, true}, {9, 10, false}, {10, 9, false}, {1, 0, false}, {0, 1, false}} {
		for _, slow := range []bool{false, true} {
			var r io.Reader = bytes.NewReader(data[:c.have])
			if slow {
				r = oneByteReader{r}
			}
			got, err := io.ReadAll(storage.ExactReader(r, c.size))
			if c.ok && (err != nil || !bytes.Equal(got, data[:c.have])) {
				t.Errorf("%d bytes as %d: %q, %v", c.have, c.size, got, err)
			}
			if !c.ok && (!errors.Is(err, storage.ErrSizeMismatch) || !storage.IsPermanent(err)) {
				t.Errorf("%d bytes as %d: error %v; want a permanent ErrSizeMismatch", c.have, c.size, err)
			}
			if int64(len(got)) > c.size {
				t.Errorf("%d bytes as %d: passed on %d bytes", c.have, c.size, len(got))
			}
		}
	}
	broken := errors.New("broken")
	_, err := io.ReadAll(storage.ExactReader(io.MultiReader(bytes.NewReader(data), errReader{broken}), 20))
	if !errors.Is(err, broken) || storage.IsPermanent(err) {
		t.Errorf("reader error = %v; want it passed on unchanged", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestContextReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := storage.ContextReader(ctx, bytes.NewReader(make([]byte, 100)))
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %v", err)
	}
}

func TestReadAllSizedReadsWhateverTheHint(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	data := bytes.Repeat([]byte("pack"), 5000)
	if err := be.Put(ctx, "data/x", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	for _, hint := range []int64{0, 1, int64(len(data)) - 1, int64(len(data)), int64(len(data)) * 3, 1 << 40} {
		got, err := storage.ReadAllSized(ctx, be, "data/x", hint)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("hint %d: %d bytes, %v", hint, len(got), err)
		}
		if hint == int64(len(data)) && cap(got) > len(data)+bytes.MinRead {
			t.Fatalf("hint %d: a buffer of %d bytes for %d", hint, cap(got), len(data))
		}
	}
	if _, err := storage.ReadAllSized(ctx, be, "data/none", 10); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
}
