package repository

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path"

	"backupd/storage"
)

// IndexRepair reports what RepairIndex found and did.
type IndexRepair struct {
	Packs     int `json:"packs"`
	Unindexed int `json:"unindexed_packs"`
	Indexed   int `json:"indexed_packs"`
	Blobs     int `json:"blobs_indexed"`
	// Condemned packs are left unindexed: unreferenced when condemned,
	// and a collection may be deleting them.
	Condemned int `json:"condemned_packs"`
	// Damaged packs could not be read back whole (hash, trailer or header):
	// they are left as they are, unindexed, for check to report.
	Damaged []string `json:"damaged,omitempty"`
}

// RepairIndex indexes every stored pack that no index file lists. Packs
// are self-describing (pack.go): each is read whole, its name checked
// against its content's hash and its header decoded, so an index file that
// was lost (a storage that failed or lied, an operator's mistake) costs no
// data. Packs left by interrupted backups get indexed too; no manifest
// references them, and garbage collection removes them as any orphan.
// The repair registers as a writer, so a collection running meanwhile
// does not delete what it indexes.
func RepairIndex(ctx context.Context, r *Repository) (*IndexRepair, error) {
	if !r.keys.CanRead() {
		return nil, ErrWriteOnly
	}
	w, err := r.BeginWrite(ctx, "repair index")
	if err != nil {
		return nil, err
	}
	defer w.End()
	if err := r.loadWholeIndex(ctx); err != nil {
		return nil, err
	}
	res := &IndexRepair{}
	var missing []ID
	err = r.be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		id, err := ParseID(path.Base(oi.Name))
		if err != nil || oi.Name != packName(id) {
			return nil // not a pack; check reports it
		}
		res.Packs++
		r.idx.mu.RLock()
		_, known := r.idx.packByID[id]
		r.idx.mu.RUnlock()
		if !known {
			missing = append(missing, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing packs: %w", err)
	}
	res.Unindexed = len(missing)
	// Condemned packs are not indexed again: a collection may be deleting
	// them right now (they were unreferenced when condemned).
	condemned, _, err := r.loadCondemned(ctx)
	if err != nil {
		return nil, err
	}
	var todo []ID
	for _, id := range missing {
		if _, ok := condemned[id.String()]; ok {
			res.Condemned++
			continue
		}
		todo = append(todo, id)
	}
	found, damaged, err := r.readPackHeaders(ctx, todo)
	if err != nil {
		return nil, err
	}
	res.Damaged = damaged
	for _, p := range found {
		res.Blobs += len(p.Blobs)
	}
	if len(found) == 0 {
		return res, nil
	}
	if err := w.Valid(); err != nil {
		return nil, err
	}
	if err := r.addIndex(ctx, found); err != nil {
		return nil, err
	}
	res.Indexed = len(found)
	return res, nil
}

// readPackHeaders reads each pack whole, checks its name against its hash
// and decodes its header. Packs that fail are returned as damaged (with
// why); a storage error stops.
func (r *Repository) readPackHeaders(ctx context.Context, ids []ID) (found []IndexPack, damaged []string, err error) {
	for _, id := range ids {
		raw, err := readBounded(ctx, r.be, packName(id), maxPackSize)
		if errors.Is(err, errTooLarge) {
			damaged = append(damaged, id.String()+": larger than any pack backupd writes")
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading pack %s: %w", id.Short(), err)
		}
		if ID(sha256.Sum256(raw)) != id {
			damaged = append(damaged, id.String()+": content does not match its name")
			continue
		}
		entries, eph, _, err := parsePack(raw, r.keys.DataPrivate)
		if err != nil {
			damaged = append(damaged, id.String()+": "+err.Error())
			continue
		}
		found = append(found, IndexPack{ID: id, EphPublic: eph, Blobs: entries})
	}
	return found, damaged, nil
}

// maxPackSize bounds what is read as a pack: a pack holds up to
// TargetPackSize of blobs plus one blob that did not fit, a header and a
// trailer; a storage that serves more is not believed.
const maxPackSize = 4 * TargetPackSize

var errTooLarge = errors.New("object too large")

// readBounded reads an object whole, refusing one larger than max.
func readBounded(ctx context.Context, be storage.Backend, name string, max int64) ([]byte, error) {
	rc, err := be.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errTooLarge
	}
	return b, nil
}

// addIndex writes an index file for packs and adds them to the index.
func (r *Repository) addIndex(ctx context.Context, packs []IndexPack) error {
	_, err := r.writeIndexFile(ctx, &IndexFile{Packs: packs}, true)
	return err
}
