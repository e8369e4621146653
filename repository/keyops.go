package repository

import (
	"context"
	"errors"
	"fmt"
)

// AddKey wraps the repository's keys with a new credential. A write-only
// key cannot add a full-access one.
func (r *Repository) AddKey(ctx context.Context, w Wrapping) (*KeyEntry, error) {
	if !r.keys.CanRead() && !w.WriteOnly {
		return nil, errors.New("opened with a write-only key: it can only add write-only keys")
	}
	e, err := wrapKeys(r.keys, w, 1)
	if err != nil {
		return nil, err
	}
	return e, saveKeyEntry(ctx, r.be, e)
}

// ListKeys returns the key entries, oldest first.
func (r *Repository) ListKeys(ctx context.Context) ([]*KeyEntry, error) {
	return listKeyEntries(ctx, r.be)
}

// RemoveKey deletes a key entry. It refuses to remove the key in use and
// the last full-access key (which would make the data unreadable forever).
func (r *Repository) RemoveKey(ctx context.Context, id string) error {
	if id == r.key.ID {
		return errors.New("refusing to remove the key this command was opened with (use another credential, or 'key rotate')")
	}
	entries, err := r.ListKeys(ctx)
	if err != nil {
		return err
	}
	var target *KeyEntry
	full := 0
	for _, e := range entries {
		if e.ID == id {
			target = e
		}
		if e.Access == AccessFull && (e.ID == id || !r.KeyRevoked(ctx, e.ID)) {
			full++ // (a revoked entry opens nothing: it does not count)
		}
	}
	if target == nil {
		return fmt.Errorf("no key %q", id)
	}
	if target.Access == AccessFull && full == 1 {
		return errors.New("refusing to remove the last full-access key: the data could never be read again")
	}
	return r.removeKeyEntry(ctx, id)
}

// RotateKey replaces the key entry in use by one wrapped with a new
// credential (key_version + 1). Only the wrapping changes: packs, index and
// manifests are not re-encrypted, so rotation is instant at any size.
func (r *Repository) RotateKey(ctx context.Context, w Wrapping) (*KeyEntry, error) {
	w.WriteOnly = r.key.Access == AccessWrite
	e, err := wrapKeys(r.keys, w, r.key.Version+1)
	if err != nil {
		return nil, err
	}
	e.Label = r.key.Label
	if err := saveKeyEntry(ctx, r.be, e); err != nil {
		return nil, err
	}
	// The new entry is stored before the old one goes: a crash leaves two
	// working keys, never none.
	if err := r.removeKeyEntry(ctx, r.key.ID); err != nil {
		if errors.Is(err, ErrKeyLocked) {
			r.key = e
			return e, err
		}
		return e, fmt.Errorf("new key %s stored, but removing the old key %s failed: %w", e.ID, r.key.ID, err)
	}
	r.key = e
	return e, nil
}
