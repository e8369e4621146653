// Package storagetest is the conformance suite every storage.Backend must
// pass: it checks, one subtest per clause, the contract written on
// storage.Backend. A backend's test calls Run with a function that returns
// a fresh, empty store for each subtest.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"backupd/storage"
)

// Run runs the conformance suite. newBackend must return an empty store
// that no other subtest uses; it is called once per subtest and should
// register its own cleanup (t.Cleanup), including Close.
func Run(t *testing.T, newBackend func(t *testing.T) storage.Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, storage.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"RangedGet", testRangedGet},
		{"Overwrite", testOverwrite},
		{"Stat", testStat},
		{"List", testList},
		{"ListStopsOnError", testListStops},
		{"ListFirst", testListFirst},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"InvalidNames", testInvalidNames},
		{"ReaderPosition", testReaderPosition},
		{"WrongSizeStoresNothing", testWrongSize},
		{"FailingReaderStoresNothing", testFailingReader},
		{"ConcurrentDifferentNames", testConcurrentDifferent},
		{"ConcurrentSameName", testConcurrentSame},
		{"PutBesideDeleteInOneDirectory", testPutBesideDelete},
		{"CancelledContext", testCancelledContext},
		{"CancelDuringPut", testCancelDuringPut},
		{"CancelDuringGet", testCancelDuringGet},
		{"Capacity", testCapacity},
		{"Location", testLocation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newBackend(t))
		})
	}
}

// Data returns n deterministic pseudo-random bytes for seed.
func Data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Put stores data under name or fails the test.
func Put(t testing.TB, b storage.Backend, name string, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", name, len(data), err)
	}
}

// Expect checks that name holds exactly want.
func Expect(t testing.TB, b storage.Backend, name string, want []byte) {
	t.Helper()
	got, err := storage.ReadAll(context.Background(), b, name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q): got %d bytes, want %d bytes (%s)", name, len(got), len(want), firstDiff(got, want))
	}
}

// ExpectMissing checks that name does not exist, for Stat and Get alike.
func ExpectMissing(t testing.TB, b storage.Backend, name string) {
	t.Helper()
	ctx := context.Background()
	if info, err := b.Stat(ctx, name); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(%q) = %+v, %v; want ErrNotFound", name, info, err)
	}
	rc, err := b.Get(ctx, name, 0, -1)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get(%q) error = %v; want ErrNotFound", name, err)
	}
}

// Names lists every object under prefix, sorted.
func Names(t testing.TB, b storage.Backend, prefix string) []string {
	t.Helper()
	var names []string
	var mu sync.Mutex // List may call fn from several goroutines? The contract does not say; be safe.
	err := b.List(context.Background(), prefix, func(oi storage.ObjectInfo) error {
		mu.Lock()
		names = append(names, oi.Name)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	sort.Strings(names)
	return names
}

func firstDiff(a, b []byte) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at byte %d", i)
		}
	}
	return "one is a prefix of the other"
}

func testRoundTrip(t *testing.T, b storage.Backend) {
	for _, size := range []int{0, 1, 100, 64 << 10, 5<<20 + 3} {
		name := fmt.Sprintf("rt/obj-%d", size)
		data := Data(uint64(size), size)
		Put(t, b, name, data)
		Expect(t, b, name, data)
		info, err := b.Stat(context.Background(), name)
		if err != nil {
			t.Fatalf("Stat(%q): %v", name, err)
		}
		if info.Size != int64(size) || info.Name != name {
			t.Fatalf("Stat(%q) = %+v; want size %d", name, info, size)
		}
	}
}

func testRangedGet(t *testing.T, b storage.Backend) {
	const size = 10000
	data := Data(7, size)
	Put(t, b, "range", data)
	ctx := context.Background()
	ok := []struct{ off, length int64 }{
		{0, -1}, {0, size}, {0, 1}, {10, 20}, {size - 10, -1}, {size - 1, 1},
		{size, -1}, {size, 0}, {0, 0}, {5000, 0}, {1234, 4321},
	}
	for _, c := range ok {
		rc, err := b.Get(ctx, "range", c.off, c.length)
		if err != nil {
			t.Fatalf("Get(off=%d, len=%d): %v", c.off, c.length, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("Get(off=%d, len=%d) read: %v", c.off, c.length, err)
		}
		end := int64(size)
		if c.length >= 0 {
			end = c.off + c.length
		}
		if want := data[c.off:end]; !bytes.Equal(got, want) {
			t.Fatalf("Get(off=%d, len=%d): got %d bytes, want %d (%s)", c.off, c.length, len(got), len(want), firstDiff(got, want))
		}
	}
	bad := []struct{ off, length int64 }{
		{size + 1, -1}, {size + 1, 0}, {size - 10, 11}, {0, size + 1}, {-1, -1}, {-1, 10}, {2 * size, 5},
	}
	for _, c := range bad {
		rc, err := b.Get(ctx, "range", c.off, c.length)
		if err == nil {
			n, rerr := io.Copy(io.Discard, rc)
			rc.Close()
			t.Fatalf("Get(off=%d, len=%d) = %d bytes, read error %v; want ErrInvalidRange", c.off, c.length, n, rerr)
		}
		if !errors.Is(err, storage.ErrInvalidRange) {
			t.Fatalf("Get(off=%d, len=%d) error = %v; want ErrInvalidRange", c.off, c.length, err)
		}
	}
	// Ranges on an empty object.
	Put(t, b, "empty", nil)
	for _, c := range []struct{ off, length int64 }{{0, -1}, {0, 0}} {
		rc, err := b.Get(ctx, "empty", c.off, c.length)
		if err != nil {
			t.Fatalf("Get(empty, off=%d, len=%d): %v", c.off, c.length, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || len(got) != 0 {
			t.Fatalf("Get(empty, off=%d, len=%d) = %d bytes, %v", c.off, c.length, len(got), err)
		}
	}
	if rc, err := b.Get(ctx, "empty", 1, -1); !errors.Is(err, storage.ErrInvalidRange) {
		if err == nil {
			rc.Close()
		}
		t.Fatalf("Get(empty, off=1) error = %v; want ErrInvalidRange", err)
	}
}

func testOverwrite(t *testing.T, b storage.Backend) {
	first, second, third := Data(1, 3000), Data(2, 1000), Data(3, 70000)
	Put(t, b, "ow/x", first)
	Put(t, b, "ow/x", second)
	Expect(t, b, "ow/x", second)
	if info, err := b.Stat(context.Background(), "ow/x"); err != nil || info.Size != int64(len(second)) {
		t.Fatalf("Stat after overwrite = %+v, %v; want size %d", info, err, len(second))
	}
	Put(t, b, "ow/x", third)
	Expect(t, b, "ow/x", third)
	if got := Names(t, b, ""); !slices.Equal(got, []string{"ow/x"}) {
		t.Fatalf("List after overwrites = %q; want only ow/x", got)
	}
}

func testStat(t *testing.T, b storage.Backend) {
	// Some stores (S3) keep whole seconds; allow for that and a little clock skew.
	before := time.Now().Add(-2 * time.Second)
	Put(t, b, "stat/one", Data(9, 12345))
	after := time.Now().Add(2 * time.Second)
	info, err := b.Stat(context.Background(), "stat/one")
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "stat/one" || info.Size != 12345 {
		t.Fatalf("Stat = %+v; want name stat/one, size 12345", info)
	}
	if info.ModTime.Before(before) || info.ModTime.After(after) {
		t.Fatalf("Stat ModTime = %v; want between %v and %v", info.ModTime, before, after)
	}
}

func testList(t *testing.T, b storage.Backend) {
	objs := map[string]int{
		"a/1": 10, "a/2": 0, "a/b/3": 30, "a/b/c/d/4": 40, "ab/5": 50, "abc": 60, "c": 70, "data/ff/ff00": 80,
	}
	for name, size := range objs {
		Put(t, b, name, Data(uint64(size), size))
	}
	all := make([]string, 0, len(objs))
	for name := range objs {
		all = append(all, name)
	}
	sort.Strings(all)
	cases := map[string][]string{
		"":          all,
		"a":         {"a/1", "a/2", "a/b/3", "a/b/c/d/4", "ab/5", "abc"},
		"a/":        {"a/1", "a/2", "a/b/3", "a/b/c/d/4"},
		"a/b":       {"a/b/3", "a/b/c/d/4"},
		"a/b/":      {"a/b/3", "a/b/c/d/4"},
		"a/b/c/d/4": {"a/b/c/d/4"},
		"ab":        {"ab/5", "abc"},
		"data/f":    {"data/ff/ff00"},
		"data/ff/f": {"data/ff/ff00"},
		"zzz":       nil,
		"a/zzz/":    nil,
		"c/":        nil,
		"abc/":      nil,
	}
	for prefix, want := range cases {
		if got := Names(t, b, prefix); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q; want %q", prefix, got, want)
		}
	}
	err := b.List(context.Background(), "", func(oi storage.ObjectInfo) error {
		if want, ok := objs[oi.Name]; !ok || oi.Size != int64(want) {
			return fmt.Errorf("listed %+v; want size %d", oi, want)
		}
		if oi.ModTime.IsZero() {
			return fmt.Errorf("listed %+v with no ModTime", oi)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func testListStops(t *testing.T, b storage.Backend) {
	for i := range 5 {
		Put(t, b, fmt.Sprintf("stop/%d", i), []byte("x"))
	}
	stop := errors.New("enough")
	calls := 0
	err := b.List(context.Background(), "stop/", func(storage.ObjectInfo) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("List returned %v; want fn's error", err)
	}
	if calls != 1 {
		t.Fatalf("fn called %d times after returning an error; want 1", calls)
	}
}

// testListFirst: storage.ListFirst gives the first names in byte order
// (the backend's own ListFirst when it has one), and whether more follow.
func testListFirst(t *testing.T, b storage.Backend) {
	names := []string{"first/n~1", "first/0a", "first/nA", "first/n-", "first/z", "first/n~", "first/m/x"}
	for _, n := range names {
		Put(t, b, n, []byte("x"))
	}
	Put(t, b, "firsts", []byte("x")) // beside the prefix
	sorted := slices.Sorted(slices.Values(names))
	for max := 1; max <= len(names)+1; max++ {
		var got []string
		more, err := storage.ListFirst(context.Background(), b, "first/", max, func(oi storage.ObjectInfo) error {
			got = append(got, oi.Name)
			return nil
		})
		want := sorted[:min(max, len(sorted))]
		if err != nil || !slices.Equal(got, want) || more != (max < len(names)) {
			t.Fatalf("first %d: %v, more %v, %v; want %v, more %v", max, got, more, err, want, max < len(names))
		}
	}
}

func testDelete(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	Put(t, b, "del/x", Data(4, 100))
	Put(t, b, "del/y", Data(5, 100))
	if err := b.Delete(ctx, "del/x"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	ExpectMissing(t, b, "del/x")
	Expect(t, b, "del/y", Data(5, 100))
	if err := b.Delete(ctx, "del/x"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second Delete = %v; want ErrNotFound", err)
	}
	if got := Names(t, b, ""); !slices.Equal(got, []string{"del/y"}) {
		t.Fatalf("List after Delete = %q; want [del/y]", got)
	}
	// A deleted name can be written again.
	Put(t, b, "del/x", Data(6, 10))
	Expect(t, b, "del/x", Data(6, 10))
}

func testNotFound(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	Put(t, b, "dir/sub/obj", []byte("x"))
	// "dir" and "dir/sub" are prefixes of an object, not objects.
	for _, name := range []string{"missing", "no/such/object", "dir", "dir/sub", "dir/sub/obj/deeper"} {
		ExpectMissing(t, b, name)
		if rc, err := b.Get(ctx, name, 1, 5); !errors.Is(err, storage.ErrNotFound) {
			if err == nil {
				rc.Close()
			}
			t.Fatalf("ranged Get(%q) = %v; want ErrNotFound", name, err)
		}
		if err := b.Delete(ctx, name); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Delete(%q) = %v; want ErrNotFound", name, err)
		}
	}
	Expect(t, b, "dir/sub/obj", []byte("x"))
}

// InvalidNames are names every backend must refuse.
var InvalidNames = []string{"", "/abs", "/", "../x", "..", ".", "a/..", "a//b", "a/../b", "a/./b", "./a", "a/", "a\\b", "..\\x", "a\x00b"}

func testInvalidNames(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	for _, name := range InvalidNames {
		if err := b.Put(ctx, name, bytes.NewReader([]byte("x")), 1); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Put(%q) = %v; want ErrInvalidName", name, err)
		}
		if rc, err := b.Get(ctx, name, 0, -1); !errors.Is(err, storage.ErrInvalidName) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("Get(%q) = %v; want ErrInvalidName", name, err)
		}
		if _, err := b.Stat(ctx, name); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Stat(%q) = %v; want ErrInvalidName", name, err)
		}
		if err := b.Delete(ctx, name); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Delete(%q) = %v; want ErrInvalidName", name, err)
		}
	}
	if got := Names(t, b, ""); len(got) != 0 {
		t.Fatalf("invalid names stored something: %q", got)
	}
}

func testReaderPosition(t *testing.T, b storage.Backend) {
	data := Data(11, 5000)
	r := bytes.NewReader(data)
	if _, err := r.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), "pos", r, 4000); err != nil {
		t.Fatal(err)
	}
	Expect(t, b, "pos", data[1000:])
}

// checkNothingStored checks that a failed Put left no trace: name still
// holds old (or is missing when old is nil) and nothing else is listed.
func checkNothingStored(t *testing.T, b storage.Backend, name string, old []byte, others []string) {
	t.Helper()
	if old == nil {
		ExpectMissing(t, b, name)
	} else {
		Expect(t, b, name, old)
	}
	if got := Names(t, b, ""); !slices.Equal(got, others) {
		t.Fatalf("List after failed Put = %q; want %q", got, others)
	}
}

func testWrongSize(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	data := Data(12, 100<<10)
	for _, c := range []struct {
		name    string
		have    int
		declare int64
	}{
		{"short", len(data) / 2, int64(len(data))},
		{"empty-short", 0, 10},
		{"long", len(data), int64(len(data)) / 2},
		{"long-by-one", 1001, 1000},
		{"long-zero", 10, 0},
	} {
		err := b.Put(ctx, "ws/"+c.name, bytes.NewReader(data[:c.have]), c.declare)
		if err == nil {
			t.Fatalf("%s: Put of %d bytes declared as %d succeeded", c.name, c.have, c.declare)
		}
		if !errors.Is(err, storage.ErrSizeMismatch) {
			t.Errorf("%s: Put error = %v; want ErrSizeMismatch", c.name, err)
		}
		checkNothingStored(t, b, "ws/"+c.name, nil, nil)
	}
	// A failed replace keeps the old object whole.
	old := Data(13, 2000)
	Put(t, b, "ws/existing", old)
	if err := b.Put(ctx, "ws/existing", bytes.NewReader(data[:500]), 1000); err == nil {
		t.Fatal("short Put over an existing object succeeded")
	}
	checkNothingStored(t, b, "ws/existing", old, []string{"ws/existing"})
}

// ErrReaderBroke is the error FailingReader returns.
var ErrReaderBroke = errors.New("storagetest: reader broke")

// FailingReader serves data but fails with ErrReaderBroke once failAt bytes
// have been read (from any position: seeking back does not cure it), like a
// source that breaks halfway through an upload.
type FailingReader struct {
	*bytes.Reader
	failAt int64
}

// NewFailingReader returns a reader over data that fails at byte failAt.
func NewFailingReader(data []byte, failAt int64) *FailingReader {
	return &FailingReader{Reader: bytes.NewReader(data), failAt: failAt}
}

func (f *FailingReader) Read(p []byte) (int, error) {
	pos := f.Size() - int64(f.Len())
	if pos >= f.failAt {
		return 0, ErrReaderBroke
	}
	if int64(len(p)) > f.failAt-pos {
		p = p[:f.failAt-pos]
	}
	return f.Reader.Read(p)
}

func testFailingReader(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	data := Data(14, 3<<20)
	for _, failAt := range []int64{0, 1, 1 << 20, 3<<20 - 1} {
		err := b.Put(ctx, "fr/x", NewFailingReader(data, failAt), int64(len(data)))
		if err == nil {
			t.Fatalf("Put with a reader failing at %d succeeded", failAt)
		}
		if !errors.Is(err, ErrReaderBroke) {
			t.Errorf("Put with a reader failing at %d: error %v does not wrap the reader's error", failAt, err)
		}
		checkNothingStored(t, b, "fr/x", nil, nil)
	}
	old := Data(15, 1000)
	Put(t, b, "fr/x", old)
	if err := b.Put(ctx, "fr/x", NewFailingReader(data, 1<<20), int64(len(data))); err == nil {
		t.Fatal("failing Put over an existing object succeeded")
	}
	checkNothingStored(t, b, "fr/x", old, []string{"fr/x"})
}

func testConcurrentDifferent(t *testing.T, b storage.Backend) {
	const n = 8
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("cd/%02d/obj", i)
			data := Data(uint64(100+i), 100<<10+i)
			if err := b.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
				errs <- fmt.Errorf("Put %s: %w", name, err)
				return
			}
			got, err := storage.ReadAll(ctx, b, name)
			if err != nil {
				errs <- fmt.Errorf("Get %s: %w", name, err)
				return
			}
			if !bytes.Equal(got, data) {
				errs <- fmt.Errorf("Get %s: wrong data", name)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := Names(t, b, "cd/"); len(got) != n {
		t.Fatalf("listed %d objects; want %d: %q", len(got), n, got)
	}
}

// testPutBesideDelete: objects put and deleted in one nested prefix at
// once, each delete possibly of the prefix's last object (file stores
// remove the directory then), never fail a put, and nothing is left.
func testPutBesideDelete(t *testing.T, b storage.Backend) {
	const n = 40
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for w := range 2 {
		wg.Go(func() {
			for i := range n {
				name := fmt.Sprintf("pd/ab/w%d-%d", w, i)
				data := Data(uint64(w*n+i), 1000+i)
				if err := b.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
					errs <- fmt.Errorf("Put %s: %w", name, err)
					return
				}
				if got, err := storage.ReadAll(ctx, b, name); err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("Get %s: %v (equal %v)", name, err, bytes.Equal(got, data))
					return
				}
				if err := b.Delete(ctx, name); err != nil {
					errs <- fmt.Errorf("Delete %s: %w", name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := Names(t, b, "pd/"); len(got) != 0 {
		t.Fatalf("left %q", got)
	}
	Put(t, b, "pd/ab/again", []byte("again"))
	Expect(t, b, "pd/ab/again", []byte("again"))
}

func testConcurrentSame(t *testing.T, b storage.Backend) {
	const writers = 6
	ctx := context.Background()
	versions := make([][]byte, writers)
	for i := range versions {
		versions[i] = Data(uint64(200+i), 200<<10+i*1000)
	}
	isVersion := func(got []byte) bool {
		for _, v := range versions {
			if bytes.Equal(got, v) {
				return true
			}
		}
		return false
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	done := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			for range 3 {
				if err := b.Put(ctx, "same", bytes.NewReader(versions[i]), int64(len(versions[i]))); err != nil {
					errs <- fmt.Errorf("Put: %w", err)
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := storage.ReadAll(ctx, b, "same")
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("Get during concurrent Puts: %w", err)
					return
				}
				if !isVersion(got) {
					errs <- fmt.Errorf("Get during concurrent Puts returned %d bytes that are no whole version", len(got))
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := storage.ReadAll(ctx, b, "same")
	if err != nil {
		t.Fatal(err)
	}
	if !isVersion(got) {
		t.Fatal("final object is no whole version")
	}
	if names := Names(t, b, ""); !slices.Equal(names, []string{"same"}) {
		t.Fatalf("List = %q; want [same]", names)
	}
}

// promptly fails the test if fn takes longer than limit.
func promptly(t *testing.T, what string, limit time.Duration, fn func() error) error {
	t.Helper()
	start := time.Now()
	err := fn()
	if d := time.Since(start); d > limit {
		t.Errorf("%s took %v after cancellation; want under %v", what, d, limit)
	}
	return err
}

func testCancelledContext(t *testing.T, b storage.Backend) {
	Put(t, b, "cc", []byte("data"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	const limit = 2 * time.Second
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v; want context.Canceled", what, err)
		}
	}
	check("Put", promptly(t, "Put", limit, func() error {
		return b.Put(ctx, "cc2", bytes.NewReader([]byte("x")), 1)
	}))
	check("Get", promptly(t, "Get", limit, func() error {
		rc, err := b.Get(ctx, "cc", 0, -1)
		if err == nil {
			// Some backends only notice on the first read.
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		return err
	}))
	check("Stat", promptly(t, "Stat", limit, func() error { _, err := b.Stat(ctx, "cc"); return err }))
	check("List", promptly(t, "List", limit, func() error {
		return b.List(ctx, "", func(storage.ObjectInfo) error { return nil })
	}))
	check("Delete", promptly(t, "Delete", limit, func() error { return b.Delete(ctx, "cc") }))
	check("Capacity", promptly(t, "Capacity", limit, func() error { _, err := b.Capacity(ctx); return err }))
	Expect(t, b, "cc", []byte("data"))
	ExpectMissing(t, b, "cc2")
}

// slowReader yields zeros in small pieces with a pause before each, forever.
type slowReader struct{ pos int64 }

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	n := min(len(p), 4096)
	clear(p[:n])
	s.pos += int64(n)
	return n, nil
}

func (s *slowReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		s.pos = offset
	case io.SeekCurrent:
		s.pos += offset
	default:
		return 0, errors.New("slowReader: seek from end")
	}
	return s.pos, nil
}

func testCancelDuringPut(t *testing.T, b storage.Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	err := b.Put(ctx, "slow", &slowReader{}, 1<<30)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Put took %v; cancellation came after 300ms", d)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Put = %v; want context.Canceled", err)
	}
	checkNothingStored(t, b, "slow", nil, nil)
}

func testCancelDuringGet(t *testing.T, b storage.Backend) {
	data := Data(16, 8<<20)
	Put(t, b, "big", data)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, err := b.Get(ctx, "big", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	cancel()
	err = promptly(t, "reading after cancel", 5*time.Second, func() error {
		_, err := io.Copy(io.Discard, rc)
		return err
	})
	if err == nil {
		t.Fatal("reading a Get's body went on to the end after its context was cancelled")
	}
}

func testCapacity(t *testing.T, b storage.Backend) {
	Put(t, b, "cap", Data(17, 1<<20))
	c, err := b.Capacity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int64{c.TotalBytes, c.FreeBytes, c.UsedBytes} {
		if v < -1 {
			t.Fatalf("Capacity = %+v: negative field other than -1", c)
		}
	}
	if c.TotalBytes >= 0 && c.FreeBytes > c.TotalBytes {
		t.Fatalf("Capacity = %+v: more free than total", c)
	}
	if c.TotalBytes >= 0 && c.UsedBytes > c.TotalBytes {
		t.Fatalf("Capacity = %+v: more used than total", c)
	}
	if c.UsedBytes != -1 && c.UsedBytes < 1<<20 {
		t.Fatalf("Capacity = %+v: a 1 MiB object is stored but UsedBytes is below that", c)
	}
}

func testLocation(t *testing.T, b storage.Backend) {
	if b.Location() == "" {
		t.Fatal("Location is empty")
	}
}
