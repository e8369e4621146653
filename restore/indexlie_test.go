package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"backupd/backup"
	"backupd/repository"
)

// A compromised writer's index that places another chunk's id at a stored
// blob's pack and offset: a restore of a file with that chunk (which an
// honest writer deduplicated against the lie and never stored) fails and
// leaves nothing, instead of writing the other blob's bytes, which the
// re-read's checksums, taken from what was written, would not notice.
func TestIndexPlacingAChunkAtAnotherBlobIsCaught(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	src := filepath.Join(base, "src")
	write(t, filepath.Join(src, "a-real"), strings.Repeat("real content ", 5000), 0o644)
	repo := newRepo(t)
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full,
		Components: []backup.Component{{Name: "data", Paths: []string{src}}}})
	if err != nil {
		t.Fatal(err)
	}
	root, err := repo.LoadTree(ctx, m.Components[0].Tree)
	if err != nil {
		t.Fatal(err)
	}
	// down to the source directory's tree
	dir := root
	for len(dir.Nodes) == 1 && dir.Nodes[0].Type == repository.NodeDir {
		if dir, err = repo.LoadTree(ctx, *dir.Nodes[0].Subtree); err != nil {
			t.Fatal(err)
		}
	}
	real := dir.Nodes[0]
	if real.Name != "a-real" || len(real.Content) != 1 {
		t.Fatalf("unexpected tree: %+v", dir.Nodes)
	}
	at, ok := repo.Lookup(real.Content[0])
	if !ok {
		t.Fatal("chunk not indexed")
	}
	// the lie: a chunk never stored, indexed at the real chunk's place
	fake := []byte(strings.Repeat("what the file holds ", 3250)) // as long as the real one
	fakeID := repo.BlobID(fake)
	lie := at.PackEntry
	lie.ID = fakeID
	if err := repository.TestWriteIndex(ctx, repo, []repository.IndexPack{{ID: at.Pack, EphPublic: at.EphPublic, Blobs: []repository.PackEntry{lie}}}); err != nil {
		t.Fatal(err)
	}
	victim := *real
	victim.Name, victim.Content, victim.Size = "b-victim", []repository.ID{fakeID}, uint64(len(fake))
	tree := &repository.Tree{Nodes: []*repository.Node{real, &victim}}
	tid, err := repo.SaveTree(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m2 := *m
	m2.ID = "backup-20260102-000000-bbbbbbbb"
	c := m.Components[0]
	c.Tree = tid
	m2.Components = []repository.ComponentManifest{c}
	dst := t.TempDir()
	_, err = Run(ctx, repo, &m2, Options{Target: dst, Workers: 2})
	got := filepath.Join(dst, "data")
	var fe *FileError
	if !errors.As(err, &fe) || len(fe.Files) != 1 || !strings.Contains(fe.Files[0], "b-victim") || !errors.Is(err, repository.ErrCorrupt) {
		t.Fatalf("err %v, want b-victim reported as corrupt", err)
	}
	if _, err := os.Lstat(filepath.Join(got, "b-victim")); !os.IsNotExist(err) {
		t.Fatalf("b-victim left behind (%v)", err)
	}
	if b, err := os.ReadFile(filepath.Join(got, "a-real")); err != nil || string(b) != strings.Repeat("real content ", 5000) {
		t.Fatalf("a-real: %v", err)
	}
}
