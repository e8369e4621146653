package repository

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"backupd/storage"
)

// A pending marker (pending/<backup-id>.<component>) names the root tree of
// a component that is stored but not yet part of a manifest: a backup whose
// components run as separate steps, possibly paused for hours in between.
// Garbage collection treats these trees as referenced, so a backup that
// outlives the safety window never loses its finished components. Commit
// (manifest written) and discarding a cancelled backup remove the markers.
const pendingPrefix = "pending/"

type pendingMarker struct {
	BackupID  string    `json:"backup_id"`
	Component string    `json:"component"`
	Tree      ID        `json:"tree"`
	Created   time.Time `json:"created"`
	// Packs the component's data depends on, checked when the manifest
	// is committed (writers.go).
	Packs []ID `json:"packs,omitempty"`
}

// SavePending records a finished component's tree until its manifest exists.
func (r *Repository) SavePending(ctx context.Context, backupID, component string, tree ID) error {
	if err := ValidBackupID(backupID); err != nil {
		return err
	}
	if err := ValidNodeName(component); err != nil {
		return err
	}
	b, _ := json.Marshal(pendingMarker{BackupID: backupID, Component: component, Tree: tree, Created: time.Now().UTC(),
		Packs: r.DependedPacks()})
	return r.be.Put(ctx, pendingPrefix+backupID+"."+component, bytes.NewReader(b), int64(len(b)))
}

// DeletePending removes a backup's markers.
func (r *Repository) DeletePending(ctx context.Context, backupID string) error {
	if err := ValidBackupID(backupID); err != nil {
		return err
	}
	var names []string
	err := r.be.List(ctx, pendingPrefix+backupID+".", func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := r.be.Delete(ctx, n); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// PendingPacks lists the packs a backup's pending components depend on.
func (r *Repository) PendingPacks(ctx context.Context, backupID string) ([]ID, error) {
	if err := ValidBackupID(backupID); err != nil {
		return nil, err
	}
	ms, err := r.pendingMarkers(ctx, pendingPrefix+backupID+".")
	if err != nil {
		return nil, err
	}
	seen := map[ID]bool{}
	var out []ID
	for _, m := range ms {
		for _, p := range m.Packs {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func (r *Repository) pendingMarkers(ctx context.Context, prefix string) ([]pendingMarker, error) {
	var names []string
	if err := r.be.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		return nil, err
	}
	var out []pendingMarker
	for _, n := range names {
		b, err := storage.ReadAll(ctx, r.be, n)
		if errors.Is(err, storage.ErrNotFound) {
			continue // committed meanwhile: its manifest now references the tree
		}
		if err != nil {
			return nil, err
		}
		var m pendingMarker
		if err := json.Unmarshal(b, &m); err != nil || !strings.HasPrefix(n, pendingPrefix+m.BackupID+".") {
			return nil, fmt.Errorf("%s: %w: unreadable pending marker", n, ErrCorrupt)
		}
		out = append(out, m)
	}
	return out, nil
}
