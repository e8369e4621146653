package repository

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// Two ids listed at one offset of a pack (an index that lies): the bytes
// there are handed over only under the id they were checked as; the other
// gets an error, not the same bytes. A blob listed twice under its own id
// gets its bytes twice.
func TestReadPackBlobsNeverHandsABlobOverUnderAnotherID(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRepo(t)
	data := randData(1, 5000)
	id, _, err := r.SaveBlob(ctx, DataBlob, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	loc, _ := r.Lookup(id)
	other := loc
	other.ID = r.BlobID([]byte("never stored"))
	type got struct {
		id   ID
		data []byte
		err  error
	}
	var gots []got
	err = r.ReadPackBlobs(ctx, []BlobLocation{loc, loc, other}, func(l BlobLocation, b []byte, err error) error {
		gots = append(gots, got{l.ID, bytes.Clone(b), err})
		return nil
	})
	if err != nil || len(gots) != 3 {
		t.Fatalf("%v, %d calls", err, len(gots))
	}
	for i, g := range gots[:2] {
		if g.id != id || g.err != nil || !bytes.Equal(g.data, data) {
			t.Fatalf("call %d: %s %v", i, g.id.Short(), g.err)
		}
	}
	if g := gots[2]; g.id != other.ID || g.data != nil || !errors.Is(g.err, ErrCorrupt) {
		t.Fatalf("the other id: %d bytes, %v", len(g.data), g.err)
	}
}
