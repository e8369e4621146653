package repository

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path"

	"backupd/storage"
)

// IndexRepair reports what RepairIndex found and did.
type IndexRepair struct {
	Packs     int `json:"packs"`
	Unindexed int `json:"unindexed_packs"`
	Indexed   int `json:"indexed_packs"`
	Blobs     int `json:"blobs_indexed"`
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
	if err := r.LoadIndex(ctx); err != nil {
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
	var found []IndexPack
	for _, id := range missing {
		raw, err := storage.ReadAll(ctx, r.be, packName(id))
		if err != nil {
			return nil, fmt.Errorf("reading pack %s: %w", id.Short(), err)
		}
		if ID(sha256.Sum256(raw)) != id {
			res.Damaged = append(res.Damaged, id.String()+": content does not match its name")
			continue
		}
		entries, eph, _, err := parsePack(raw, r.keys.DataPrivate)
		if err != nil {
			res.Damaged = append(res.Damaged, id.String()+": "+err.Error())
			continue
		}
		found = append(found, IndexPack{ID: id, EphPublic: eph, Blobs: entries})
		res.Blobs += len(entries)
	}
	if len(found) == 0 {
		return res, nil
	}
	if err := w.Valid(); err != nil {
		return nil, err
	}
	if _, err := r.writeIndexFile(ctx, &IndexFile{Packs: found}); err != nil {
		return nil, err
	}
	for _, p := range found {
		r.idx.addPack(p)
	}
	res.Indexed = len(found)
	return res, nil
}
