package repository

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"backupd/storage"
	"backupd/storage/fault"
)

// newestTwo lists x's newest two backups, which must be newest and next,
// with wantGets reads from storage.
func newestTwo(t *testing.T, fb *fault.Backend, x *Repository, what string, wantGets int, newest, next string) {
	t.Helper()
	var ms []*Manifest
	var errs []error
	var err error
	if n := gets(fb, func() { ms, errs, err = x.NewestManifests(context.Background(), 2, nil) }); n != wantGets {
		t.Errorf("%s: %d reads from storage, want %d", what, n, wantGets)
	}
	if err != nil || len(errs) > 0 || len(ms) != 2 || ms[0].ID != newest || ms[1].ID != next {
		t.Fatalf("%s: %v %v %v", what, ms, errs, err)
	}
}

// Loose manifests are cached in their verified form, which a listing
// reads without a request and without the stored form's key exchange and
// signature check. A cached form that is not that manifest's (another
// backup's, another repository's, bound to another stored size, damaged)
// is not used: the stored manifest is read and checked, and cached again.
// A stored form cached by an earlier version is still used, then cached
// in the verified form.
func TestCachedManifestsAreVerifiedForms(t *testing.T) {
	ctx := context.Background()
	_, be, mk := manifestRepo(t)
	fb := fault.New(be)
	root := t.TempDir()
	open := func() *Repository { return withCacheAt(t, reopen(t, fb), root) }
	ids := []string{"backup-20260101-000000-aaaaaaaa", "backup-20260102-000000-bbbbbbbb"}
	w := open()
	for _, id := range ids {
		if err := w.SaveManifest(ctx, mk(id)); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(w.Cache().Dir(), cacheManifests)
	cached := func(id string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, id))
		if err != nil {
			t.Fatalf("%s not cached: %v", id, err)
		}
		return b
	}
	list := func(what string, wantGets int) {
		t.Helper()
		newestTwo(t, fb, open(), what, wantGets, ids[1], ids[0])
		for _, id := range ids {
			if b := cached(id); string(b[:4]) != verifiedManifestMagic {
				t.Fatalf("%s: %s cached as %q", what, id, b[:4])
			}
		}
	}
	list("written by this client", 0)

	stored := func(id string) []byte {
		b, err := storage.ReadAll(ctx, be, manifestsPrefix+id)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	other, _, otherMk := manifestRepo(t)
	oc := withCacheAt(t, other, t.TempDir())
	if err := oc.SaveManifest(ctx, otherMk(ids[1])); err != nil {
		t.Fatal(err)
	}
	otherForm, _ := os.ReadFile(filepath.Join(oc.Cache().Dir(), cacheManifests, ids[1]))
	_, js, err := decodeManifestJSON(w.keys, ids[1], stored(ids[1]))
	if err != nil {
		t.Fatal(err)
	}
	// a verified form made here (the JSON only, no binary form): used for
	// a stored object of its size only
	formOfSize := func(size int64) []byte {
		hdr := append([]byte(verifiedManifestMagic), verifiedManifestVersion)
		plain := append(binary.AppendUvarint(nil, uint64(len(js))), js...)
		return seal(w.manifestCacheAEAD(), hdr, plain, append(bytes.Clone(hdr), verifiedManifestAD(ids[1], size)...))
	}
	if err := os.WriteFile(filepath.Join(dir, ids[1]), formOfSize(int64(len(stored(ids[1])))), 0o600); err != nil {
		t.Fatal(err)
	}
	list("made for this size", 0)
	for _, c := range []struct {
		name string
		form func() []byte
	}{
		{"another backup's", func() []byte { return cached(ids[0]) }},
		{"another repository's", func() []byte { return otherForm }},
		{"bound to another size", func() []byte { return formOfSize(int64(len(stored(ids[1]))) + 1) }},
		{"damaged", func() []byte { b := bytes.Clone(cached(ids[1])); b[len(b)/2] ^= 1; return b }},
		{"cut short", func() []byte { return cached(ids[1])[:20] }},
	} {
		if err := os.WriteFile(filepath.Join(dir, ids[1]), c.form(), 0o600); err != nil {
			t.Fatal(err)
		}
		list(c.name, 1)
		list(c.name+", then cached again", 0)
	}
	// the stored form, as earlier versions cached it
	if err := os.WriteFile(filepath.Join(dir, ids[1]), stored(ids[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	list("stored form cached", 0)
	// the verified form of version 1: the JSON alone
	v1 := seal(w.manifestCacheAEAD(), []byte(verifiedManifestMagic+"\x01"), js, verifiedManifestAD(ids[1], int64(len(stored(ids[1])))))
	if err := os.WriteFile(filepath.Join(dir, ids[1]), v1, 0o600); err != nil {
		t.Fatal(err)
	}
	list("version 1 cached", 0)
	if b := cached(ids[1]); b[4] != verifiedManifestVersion {
		t.Fatalf("the version 1 form was not cached again as version %d", verifiedManifestVersion)
	}
	list("version 1 cached again", 0)
}

// Manifest sets are cached in their verified form too, which a listing
// opens without a request, without hashing the object and without the
// key exchange and MAC. A cached form that is not that set's (another
// repository's, bound to another set's name, damaged, cut short) is not
// used: the stored set is read and checked, and cached again. A stored
// form cached by an earlier version is still used, then cached in the
// verified form.
func TestCachedSetsAreVerifiedForms(t *testing.T) {
	ctx := context.Background()
	_, be, mk := manifestRepo(t)
	fb := fault.New(be)
	root := t.TempDir()
	open := func() *Repository { return withCacheAt(t, reopen(t, fb), root) }
	ids := []string{"backup-20260101-000000-aaaaaaaa", "backup-20260102-000000-bbbbbbbb", "backup-20260103-000000-cccccccc"}
	w := open()
	for _, id := range ids {
		if err := w.SaveManifest(ctx, mk(id)); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := Compact(ctx, w, IndexFileBound, 2); err != nil || c.ManifestsFolded != 3 {
		t.Fatalf("fold: %+v %v", c, err)
	}
	sets := objectNames(t, be, manifestSetsPrefix)
	if len(sets) != 1 || len(objectNames(t, be, manifestsPrefix)) != 0 {
		t.Fatalf("sets %v, loose %v", sets, objectNames(t, be, manifestsPrefix))
	}
	name := sets[0]
	path := filepath.Join(w.Cache().Dir(), cacheManifestSets, strings.TrimPrefix(name, manifestSetsPrefix))
	list := func(what string, wantGets int) {
		t.Helper()
		newestTwo(t, fb, open(), what, wantGets, ids[2], ids[1])
		if b, err := os.ReadFile(path); err != nil || string(b[:4]) != verifiedSetMagic {
			t.Fatalf("%s: the set is not cached in its verified form: %q %v", what, b[:min(4, len(b))], err)
		}
	}
	list("written by this client", 0)

	stored, err := storage.ReadAll(ctx, be, name)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := decodeManifestSet(w.keys, name, stored)
	if err != nil {
		t.Fatal(err)
	}
	verified, _ := os.ReadFile(path)
	// a verified form of version 1 (earlier versions') made here,
	// without binary forms: used for its own name only
	formFor := func(name string) []byte {
		hdr := append([]byte(verifiedSetMagic), 1)
		body := setBody(entries)
		for range entries {
			body = append(body, 0)
		}
		return seal(w.manifestCacheAEAD(), hdr, body, append(bytes.Clone(hdr), verifiedSetAD(name)...))
	}
	if err := os.WriteFile(path, formFor(name), 0o600); err != nil {
		t.Fatal(err)
	}
	list("made for this set's name", 0)
	if b, _ := os.ReadFile(path); len(b) < 5 || b[4] != verifiedSetVersion {
		t.Fatalf("a version 1 form was not cached again as version %d", verifiedSetVersion)
	}
	// another repository's verified form of a set of the same backups
	other, _, otherMk := manifestRepo(t)
	oc := withCacheAt(t, other, t.TempDir())
	for _, id := range ids {
		if err := oc.SaveManifest(ctx, otherMk(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Compact(ctx, oc, IndexFileBound, 2); err != nil {
		t.Fatal(err)
	}
	otherForms, _ := os.ReadDir(filepath.Join(oc.Cache().Dir(), cacheManifestSets))
	if len(otherForms) != 1 {
		t.Fatalf("the other repository cached %d sets", len(otherForms))
	}
	otherForm, _ := os.ReadFile(filepath.Join(oc.Cache().Dir(), cacheManifestSets, otherForms[0].Name()))
	for _, c := range []struct {
		name string
		form []byte
	}{
		{"another repository's", otherForm},
		{"bound to another set's name", formFor(manifestSetsPrefix + strings.Repeat("0", 64) + "-" + ids[2])},
		{"damaged", func() []byte { b := bytes.Clone(verified); b[len(b)/2] ^= 1; return b }()},
		{"cut short", verified[:20]},
		{"another version", func() []byte { b := bytes.Clone(verified); b[4] = verifiedSetVersion + 1; return b }()},
	} {
		if err := os.WriteFile(path, c.form, 0o600); err != nil {
			t.Fatal(err)
		}
		list(c.name, 1)
		list(c.name+", then cached again", 0)
	}
	// the stored form, as earlier versions cached it
	if err := os.WriteFile(path, stored, 0o600); err != nil {
		t.Fatal(err)
	}
	list("stored form cached", 0)
}

// A cached set is opened by its header, and each group of its entries is
// read when one of them is first needed: the newest backups are listed
// from the last groups, whatever the first ones hold. A group that does
// not open (damaged, or from another cached form of the same set) makes
// the stored set be read and checked, and every backup is still listed.
func TestCachedSetGroupsAreReadWhenNeeded(t *testing.T) {
	ctx := context.Background()
	_, be, mk := manifestRepo(t)
	fb := fault.New(be)
	root := t.TempDir()
	open := func() *Repository { return withCacheAt(t, reopen(t, fb), root) }
	const n = 3*verifiedSetGroup + 5 // four groups
	var ids []string
	w := open()
	for i := range n {
		id := fmt.Sprintf("backup-20260101-%06d-aaaaaaaa", i)
		ids = append(ids, id)
		if err := w.SaveManifest(ctx, mk(id)); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := Compact(ctx, w, IndexFileBound, 2); err != nil || c.ManifestsFolded != n {
		t.Fatalf("fold: %+v %v", c, err)
	}
	sets := objectNames(t, be, manifestSetsPrefix)
	if len(sets) != 1 {
		t.Fatalf("sets %v", sets)
	}
	path := filepath.Join(w.Cache().Dir(), cacheManifestSets, strings.TrimPrefix(sets[0], manifestSetsPrefix))
	good, err := os.ReadFile(path)
	if err != nil || good[4] != verifiedSetVersion {
		t.Fatalf("cached form: %v", err)
	}
	all := func(what string, wantGets int) {
		t.Helper()
		var ms []*Manifest
		var errs []error
		x := open()
		if g := gets(fb, func() { ms, errs, err = x.Manifests(ctx) }); g != wantGets {
			t.Errorf("%s: %d reads from storage, want %d", what, g, wantGets)
		}
		if err != nil || len(errs) > 0 || len(ms) != n {
			t.Fatalf("%s: %d backups listed, %v %v", what, len(ms), errs, err)
		}
		for _, m := range ms {
			if want := mk(m.ID); m.Host != want.Host || !slices.Contains(ids, m.ID) {
				t.Fatalf("%s: %+v", what, m)
			}
		}
	}
	// the first group's bytes damaged: the newest two come from the last
	// group without a read from storage; listing every backup reads the
	// stored set once, and caches it again
	hl := int(binary.BigEndian.Uint32(good[5:9]))
	damaged := bytes.Clone(good)
	damaged[9+hl+40] ^= 1
	if err := os.WriteFile(path, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	newestTwo(t, fb, open(), "first group damaged", 0, ids[n-1], ids[n-2])
	all("first group damaged", 1)
	all("cached again", 0)
	again, _ := os.ReadFile(path)
	if bytes.Equal(again, good) || len(again) != len(good) {
		t.Fatalf("not cached again (%d bytes, were %d)", len(again), len(good))
	}
	// a form mixing two cached forms of the same set (each with its own
	// file id): the groups of the second do not open with the first's
	// header
	mixed := append(bytes.Clone(good[:9+hl]), again[9+hl:]...)
	if err := os.WriteFile(path, mixed, 0o600); err != nil {
		t.Fatal(err)
	}
	newestTwo(t, fb, open(), "mixed forms", 1, ids[n-1], ids[n-2])
	all("mixed forms, then cached again", 0)
	// cut short in its last group: the stored set is read
	cut, _ := os.ReadFile(path)
	if err := os.WriteFile(path, cut[:len(cut)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	newestTwo(t, fb, open(), "cut short", 1, ids[n-1], ids[n-2])
	all("cut short, then cached again", 0)
}

// hookedSets runs after, once, when a listing of manifest-sets/ returns:
// a collection that rewrites a set just after a reader listed it.
type hookedSets struct {
	storage.Backend
	mu    sync.Mutex
	after func()
}

func (s *hookedSets) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	err := s.Backend.List(ctx, prefix, fn)
	s.mu.Lock()
	after := s.after
	if prefix == manifestSetsPrefix {
		s.after = nil
	}
	s.mu.Unlock()
	if prefix == manifestSetsPrefix && after != nil {
		after()
	}
	return err
}

// A set rewritten after a reader opened its cached form's header, and
// before it read a group (the cached form removed through the reader's
// own cache), makes the reader list again: every backup is listed, none
// reported unreadable, by a listing, the newest-first walk and a lookup
// of one backup (review: the group's fallback read the deleted set and
// reported its backups unreadable). The reader's handle holds the old
// set's entries, opened by a first listing (its groups unread), which is
// how a view that lists the old set reaches its groups after it went.
// Check reads without the cache, so the set it lists goes before it
// opens it (the older retry); were it to read through the cache, this
// case would put it through the race too.
func TestSetRewrittenBeforeItsGroupIsRead(t *testing.T) {
	ctx := context.Background()
	_, be, mk := manifestRepo(t)
	hooked := &hookedSets{Backend: be}
	fb := fault.New(hooked)
	root := t.TempDir()
	open := func() *Repository { return withCacheAt(t, reopen(t, fb), root) }
	const n = 3 * verifiedSetGroup
	var ids []string
	save := func(w *Repository, k int) {
		for range k {
			id := fmt.Sprintf("backup-20260101-%06d-aaaaaaaa", len(ids))
			ids = append(ids, id)
			if err := w.SaveManifest(ctx, mk(id)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Compact(ctx, w, IndexFileBound, 2); err != nil {
			t.Fatal(err)
		}
	}
	save(open(), n)
	for _, c := range []struct {
		what string
		read func(x *Repository) (int, []error, error)
	}{
		{"Manifests", func(x *Repository) (int, []error, error) {
			ms, errs, err := x.Manifests(ctx)
			return len(ms), errs, err
		}},
		{"NewestManifests", func(x *Repository) (int, []error, error) {
			ms, errs, err := x.NewestManifests(ctx, len(ids)+3, nil)
			return len(ms), errs, err
		}},
		{"LoadManifest", func(x *Repository) (int, []error, error) {
			_, err := x.LoadManifest(ctx, ids[0])
			return len(ids), nil, err
		}},
		{"Check", func(x *Repository) (int, []error, error) {
			res, err := Check(ctx, x, CheckOptions{})
			if err == nil && len(res.Errors)+len(res.Warnings) > 0 {
				return res.Manifests, []error{fmt.Errorf("%v %v", res.Errors, res.Warnings)}, nil
			}
			return res.Manifests, nil, err
		}},
	} {
		x := open()
		// the header read, and the last group only
		if ms, _, err := x.NewestManifests(ctx, 1, nil); err != nil || len(ms) != 1 {
			t.Fatalf("%s: %v %v", c.what, ms, err)
		}
		was := objectNames(t, be, manifestSetsPrefix)
		hooked.mu.Lock()
		hooked.after = func() {
			// a fold rewrites the set; a listing through the reader's
			// cache drops the old set's cached form
			save(open(), 3)
			x.cache.remove(cacheManifestSets, strings.TrimPrefix(was[0], manifestSetsPrefix))
		}
		hooked.mu.Unlock()
		got, errs, err := c.read(x)
		if now := objectNames(t, be, manifestSetsPrefix); len(now) != 1 || now[0] == was[0] {
			t.Fatalf("%s: sets %v, were %v", c.what, now, was)
		}
		if err != nil || len(errs) > 0 || c.what != "LoadManifest" && got != len(ids) {
			t.Fatalf("%s: %d of %d backups, %v %v", c.what, got, len(ids), errs, err)
		}
	}
}
