package restore

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"backupd/backup"
)

// rereadFixture backs up files of several chunks: "big" (random, several
// chunks), "twice" (one random block twice: the same blob at two offsets
// of one file), "copy" (big's content again: the same blobs in two files)
// and a small file.
func rereadFixture(t *testing.T) (*fixture, map[string][]byte) {
	t.Helper()
	base := t.TempDir()
	f := &fixture{base: base, src: filepath.Join(base, "src"), repo: newRepo(t)}
	rng := rand.New(rand.NewSource(7))
	big := make([]byte, 9<<20)
	rng.Read(big)
	block := make([]byte, 3<<20)
	rng.Read(block)
	files := map[string][]byte{
		"big":       big,
		"twice":     append(append([]byte(nil), block...), block...),
		"copy":      big,
		"dir/small": []byte("small\n"),
	}
	for name, data := range files {
		write(t, filepath.Join(f.src, name), string(data), 0o644)
	}
	m, err := backup.Run(context.Background(), f.repo, backup.Options{Type: backup.Full,
		Components: []backup.Component{{Name: "data", Paths: []string{f.src}}}})
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	return f, files
}

// The re-read after the last write compares each chunk with what was
// written (checksums taken from the authenticated blobs): a restore of
// files of several chunks, repeated chunks and shared chunks verifies
// every file; a file changed between its last write and the re-read, in
// any chunk or in its length, is reported and removed, not left wrong.
func TestRereadCatchesAFileChangedAfterItsWrite(t *testing.T) {
	f, files := rereadFixture(t)
	ctx := context.Background()
	dst := t.TempDir()
	res, err := Run(ctx, f.repo, f.m, Options{Target: dst, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verified != int64(len(files)) {
		t.Fatalf("verified %d of %d files", res.Verified, len(files))
	}
	got := filepath.Join(dst, "data", f.src)
	for name, want := range files {
		if b, err := os.ReadFile(filepath.Join(got, name)); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("%s: %d bytes, %v", name, len(b), err)
		}
	}

	tamper := map[string]func(p string) error{
		"first byte": func(p string) error { return writeAt(p, []byte{^files["big"][0]}, 0) },
		"last chunk": func(p string) error {
			return writeAt(p, []byte{^files["big"][len(files["big"])-1]}, int64(len(files["big"])-1))
		},
		"longer": func(p string) error { return writeAt(p, []byte("x"), int64(len(files["big"]))) },
	}
	for what, change := range tamper {
		dst := t.TempDir()
		changed := false
		setHook(t, func(step, rel string) {
			if step == "finish" && strings.HasSuffix(rel, "/big") {
				p := filepath.Join(dst, "data", "/"+rel)
				if err := change(p); err != nil {
					t.Error(err)
				}
				changed = true
			}
		})
		res, err := Run(ctx, f.repo, f.m, Options{Target: dst, Workers: 3})
		testHook = nil
		if !changed {
			t.Fatalf("%s: the hook never ran", what)
		}
		var fe *FileError
		if !errors.As(err, &fe) || len(fe.Files) != 1 || !strings.Contains(fe.Files[0], "/src/big (verify: ") {
			t.Fatalf("%s: err %v, want big reported", what, err)
		}
		got := filepath.Join(dst, "data", f.src)
		if _, err := os.Lstat(filepath.Join(got, "big")); !os.IsNotExist(err) {
			t.Fatalf("%s: big left behind (%v)", what, err)
		}
		if res.Verified != int64(len(files)-1) {
			t.Fatalf("%s: verified %d", what, res.Verified)
		}
		if b, _ := os.ReadFile(filepath.Join(got, "copy")); !bytes.Equal(b, files["copy"]) {
			t.Fatalf("%s: copy differs", what)
		}
	}
}

func writeAt(p string, b []byte, off int64) error {
	fh, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	_, err = fh.WriteAt(b, off)
	return err
}
