package repository

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"backupd/storage"
	"backupd/storage/fault"
)

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
		x := open()
		var ms []*Manifest
		var errs []error
		var err error
		if n := gets(fb, func() { ms, errs, err = x.NewestManifests(ctx, 2, nil) }); n != wantGets {
			t.Errorf("%s: %d reads from storage, want %d", what, n, wantGets)
		}
		if err != nil || len(errs) > 0 || len(ms) != 2 || ms[0].ID != ids[1] || ms[1].ID != ids[0] {
			t.Fatalf("%s: %v %v %v", what, ms, errs, err)
		}
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
	for _, c := range []struct {
		name string
		form func() []byte
	}{
		{"another backup's", func() []byte { return cached(ids[0]) }},
		{"another repository's", func() []byte { return otherForm }},
		{"bound to another size", func() []byte {
			hdr := append([]byte(verifiedManifestMagic), verifiedManifestVersion)
			return seal(w.manifestCacheAEAD(), hdr, js, verifiedManifestAD(ids[1], int64(len(stored(ids[1])))+1))
		}},
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
}
