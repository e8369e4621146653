package repository

import "context"

// TestWriteIndex writes an index file that lists packs as given, as any
// writer holding the index key can, true or not: tests of other packages
// use it to play a compromised writer whose index lies. Not for use
// outside tests.
func TestWriteIndex(ctx context.Context, r *Repository, packs []IndexPack) error {
	_, err := r.writeIndexFile(ctx, &IndexFile{Packs: packs}, true)
	return err
}
