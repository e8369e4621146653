package repository

import (
	"context"
	"errors"
	"fmt"
)

// CopyStats reports what a copy moved.
type CopyStats struct {
	BlobsCopied  int64 `json:"blobs_copied"`
	BytesCopied  int64 `json:"bytes_copied"`
	BlobsSkipped int64 `json:"blobs_present"`
	// BytesDone of BytesTotal: the backup's content bytes (as its
	// components' stats count them) gone through so far, copied or found
	// present — what a progress bar shows.
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
}

// CopyBackup copies backup id from src into dst under the same id. When
// both repositories share key material (Keys.Fingerprint, the normal case
// for the locations of one service), blob ids are equal and only blobs dst
// lacks are read and written. Otherwise every blob is read and re-identified
// with dst's keys, and the trees are rewritten.
func CopyBackup(ctx context.Context, src, dst *Repository, id string) (*Manifest, CopyStats, error) {
	return CopyBackupProgress(ctx, src, dst, id, nil)
}

// CopyBackupProgress is CopyBackup calling progress (when not nil) with
// the stats so far after each blob.
func CopyBackupProgress(ctx context.Context, src, dst *Repository, id string, progress func(CopyStats)) (*Manifest, CopyStats, error) {
	var st CopyStats
	m, err := src.LoadManifest(ctx, id)
	if err != nil {
		return nil, st, err
	}
	if err := src.LoadIndex(ctx); err != nil {
		return nil, st, err
	}
	w, err := dst.BeginWrite(ctx, "copy "+id)
	if err != nil {
		return nil, st, err
	}
	defer w.End()
	if err := dst.LoadIndex(ctx); err != nil {
		return nil, st, err
	}
	if have, err := dst.LoadManifest(ctx, id); err == nil {
		if !have.SameBackup(m) {
			return nil, st, have.Taken(dst.be.Location())
		}
		return nil, st, fmt.Errorf("%w: %s in %s", ErrBackupExists, id, dst.be.Location())
	} else if !errors.Is(err, ErrBackupNotFound) {
		return nil, st, err
	}
	same := src.keys.Fingerprint() == dst.keys.Fingerprint()
	dst.SetCompression(CompressZstd)
	if c, err := ParseCompression(m.Compression); err == nil {
		dst.SetCompression(c)
	}
	for _, comp := range m.Components {
		if comp.Error == "" {
			st.BytesTotal += comp.Stats.Bytes
		}
	}
	c := &copier{ctx: ctx, src: src, dst: dst, same: same, st: &st, done: map[ID]ID{}, progress: progress}
	out := *m
	out.Components = append([]ComponentManifest(nil), m.Components...)
	for i, comp := range out.Components {
		if comp.Error != "" {
			continue
		}
		nid, err := c.tree(comp.Tree)
		if err != nil {
			dst.Abort()
			return nil, st, fmt.Errorf("copying %s component %s: %w", id, comp.Name, err)
		}
		out.Components[i].Tree = nid
	}
	if err := dst.Flush(ctx); err != nil {
		return nil, st, err
	}
	out.KeyID = ""
	if err := dst.CheckPacks(ctx, dst.DependedPacks()); err != nil {
		return nil, st, err
	}
	if err := w.Valid(); err != nil {
		return nil, st, err
	}
	if err := dst.SaveManifest(ctx, &out); err != nil {
		return nil, st, err
	}
	return &out, st, nil
}

type copier struct {
	ctx      context.Context
	src, dst *Repository
	same     bool
	st       *CopyStats
	done     map[ID]ID // src id -> dst id, for blobs handled
	progress func(CopyStats)
}

// advance counts a data blob's content as gone through.
func (c *copier) advance(t BlobType, id ID) {
	if t != DataBlob {
		return
	}
	if l, ok := c.src.Lookup(id); ok {
		c.st.BytesDone += int64(l.RawLength)
	}
	if c.progress != nil {
		c.progress(*c.st)
	}
}

func (c *copier) blob(t BlobType, id ID) (ID, error) {
	if nid, ok := c.done[id]; ok {
		c.advance(t, id)
		return nid, nil
	}
	if c.same && c.dst.Has(id) {
		c.st.BlobsSkipped++
		c.done[id] = id
		c.advance(t, id)
		return id, nil
	}
	data, err := c.src.LoadBlob(c.ctx, t, id)
	if err != nil {
		return ID{}, err
	}
	nid := id
	if !c.same {
		nid = c.dst.BlobID(data)
	}
	added, err := c.dst.saveBlobWithID(c.ctx, t, nid, data)
	if err != nil {
		return ID{}, err
	}
	if added {
		c.st.BlobsCopied++
		c.st.BytesCopied += int64(len(data))
	} else {
		c.st.BlobsSkipped++
	}
	c.done[id] = nid
	c.advance(t, id)
	return nid, nil
}

func (c *copier) tree(id ID) (ID, error) {
	if nid, ok := c.done[id]; ok {
		return nid, nil
	}
	// Trees are always walked, even when dst has them: a tree stored by an
	// interrupted backup does not prove its data blobs were stored too.
	t, err := c.src.LoadTree(c.ctx, id)
	if err != nil {
		return ID{}, err
	}
	for _, n := range t.Nodes {
		for i, b := range n.Content {
			nb, err := c.blob(DataBlob, b)
			if err != nil {
				return ID{}, err
			}
			n.Content[i] = nb
		}
		if n.Subtree != nil {
			ns, err := c.tree(*n.Subtree)
			if err != nil {
				return ID{}, err
			}
			n.Subtree = &ns
		}
	}
	if c.same {
		return c.blob(TreeBlob, id)
	}
	b, err := EncodeTree(t)
	if err != nil {
		return ID{}, err
	}
	nid := c.dst.BlobID(b)
	if _, err := c.dst.saveBlobWithID(c.ctx, TreeBlob, nid, b); err != nil {
		return ID{}, err
	}
	c.done[id] = nid
	return nid, nil
}
