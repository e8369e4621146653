package repository

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

func newEphemerals(t *testing.T, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = k.PublicKey().Bytes()
	}
	return out
}

// sessionKeysOf looks every key up in a new handle on root's cache, checks
// each against the derivation, and returns how many the handle derived.
func sessionKeysOf(t *testing.T, h *Repository, ephs [][]byte) int {
	t.Helper()
	for _, e := range ephs {
		got, err := h.sessionKey(e)
		if err != nil {
			t.Fatal(err)
		}
		want, err := sessionKeyWith(h.dataKey, e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatal("a cached session key is not the one derived")
		}
	}
	return len(h.skeys.fresh)
}

// Session keys derived by one handle are read, not derived, by the next;
// a file damaged, cut short or of another repository is ignored and
// written over.
func TestSessionKeysCached(t *testing.T) {
	_, be := newTestRepo(t)
	root := t.TempDir()
	ephs := newEphemerals(t, 5)
	h := withCacheAt(t, reopen(t, be), root)
	if n := sessionKeysOf(t, h, ephs); n != 5 {
		t.Fatalf("the first handle derived %d keys of 5", n)
	}
	h.saveSessionKeys()
	if n := sessionKeysOf(t, withCacheAt(t, reopen(t, be), root), ephs); n != 0 {
		t.Fatalf("a handle after it derived %d keys again", n)
	}
	path := filepath.Join(h.Cache().Dir(), cacheIndexSnap, sessionCacheName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// a handle that derived nothing writes nothing
	h2 := withCacheAt(t, reopen(t, be), root)
	sessionKeysOf(t, h2, ephs)
	os.Remove(path)
	h2.saveSessionKeys()
	if _, err := os.Stat(path); err == nil {
		t.Fatal("a handle that derived no key wrote the file")
	}
	for _, bad := range []struct {
		what string
		b    []byte
	}{
		{"a byte changed", func() []byte { b := bytes.Clone(good); b[len(b)/2] ^= 1; return b }()},
		{"cut short", good[:len(good)-1]},
		{"another version", func() []byte { b := bytes.Clone(good); b[4] = 2; return b }()},
		{"empty", nil},
	} {
		if err := os.WriteFile(path, bad.b, 0o600); err != nil {
			t.Fatal(err)
		}
		x := withCacheAt(t, reopen(t, be), root)
		if n := sessionKeysOf(t, x, ephs); n != 5 {
			t.Fatalf("%s: %d keys derived of 5", bad.what, n)
		}
		x.saveSessionKeys()
		if n := sessionKeysOf(t, withCacheAt(t, reopen(t, be), root), ephs); n != 0 {
			t.Fatalf("%s: not written over (%d keys derived after)", bad.what, n)
		}
	}
	// another repository's file, under this one's name
	other, _ := newTestRepo(t)
	oroot := t.TempDir()
	o := withCacheAt(t, other, oroot)
	sessionKeysOf(t, o, ephs)
	o.saveSessionKeys()
	theirs, err := os.ReadFile(filepath.Join(o.Cache().Dir(), cacheIndexSnap, sessionCacheName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, theirs, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := sessionKeysOf(t, withCacheAt(t, reopen(t, be), root), ephs); n != 5 {
		t.Fatalf("another repository's keys: %d derived of 5", n)
	}
}

// The file holds the newest sessionCacheMax keys: those a handle used are
// kept, the oldest of the others dropped.
func TestSessionKeysBounded(t *testing.T) {
	_, be := newTestRepo(t)
	root := t.TempDir()
	ephs := newEphemerals(t, sessionCacheMax)
	h := withCacheAt(t, reopen(t, be), root)
	sessionKeysOf(t, h, ephs)
	h.saveSessionKeys()
	// a handle uses the oldest key and derives a new one
	more := newEphemerals(t, 1)
	x := withCacheAt(t, reopen(t, be), root)
	if n := sessionKeysOf(t, x, append([][]byte{ephs[0]}, more...)); n != 1 {
		t.Fatalf("%d keys derived, want 1", n)
	}
	x.saveSessionKeys()
	y := withCacheAt(t, reopen(t, be), root)
	y.skeys.once.Do(y.loadSessionKeys)
	if len(y.skeys.disk) != sessionCacheMax {
		t.Fatalf("the file holds %d keys, want %d", len(y.skeys.disk), sessionCacheMax)
	}
	held := func(e []byte) bool { _, ok := y.skeys.byEph[[32]byte(e)]; return ok }
	if !held(ephs[0]) || !held(more[0]) || held(ephs[1]) || !held(ephs[2]) {
		t.Fatalf("kept: used %v, new %v, oldest unused %v (want dropped), next %v",
			held(ephs[0]), held(more[0]), held(ephs[1]), held(ephs[2]))
	}
}

// A handle that read blobs saves their packs' keys when it flushes (a
// backup, after reading its parent's trees); the next handle derives none.
func TestSessionKeysSavedByFlush(t *testing.T) {
	ctx := context.Background()
	_, be := newTestRepo(t)
	w := reopen(t, be)
	id, _, err := w.SaveBlob(ctx, TreeBlob, []byte(`{"nodes":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// data, bundled and not, in another session: the keys of their packs
	// are not kept (a restore's or a repack's would crowd out the trees')
	small, _, err := w.SaveBlob(ctx, DataBlob, randData(7, 100))
	if err != nil {
		t.Fatal(err)
	}
	large, _, err := w.SaveBlob(ctx, DataBlob, randData(8, 600<<10))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	read := func() int {
		h := withCacheAt(t, reopen(t, be), root)
		if err := h.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		for _, b := range []struct {
			t  BlobType
			id ID
		}{{DataBlob, small}, {DataBlob, large}, {TreeBlob, id}} {
			if _, err := h.LoadBlob(ctx, b.t, b.id); err != nil {
				t.Fatal(err)
			}
		}
		n := len(h.skeys.fresh)
		if err := h.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := read(); n != 1 {
		t.Fatalf("the first read derived %d keys, want 1", n)
	}
	if n := read(); n != 0 {
		t.Fatalf("the read after a flush derived %d keys, want 0", n)
	}
}
