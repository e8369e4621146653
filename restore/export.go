package restore

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"time"

	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"backupd/repository"
)

// Export formats.
var ExportFormats = []string{"tar", "tar.gz", "tar.bz2", "tar.zst"}

// ExportOptions select what goes into the archive.
type ExportOptions struct {
	Format     string
	Components []string
	Paths      []string
}

// Export streams backup m as a tar archive to w. Names inside the archive
// are <component>/<absolute source path>. Content is verified blob by blob
// as it is read; a damaged blob ends the stream with an error (the archive
// is then incomplete and must not be trusted).
func Export(ctx context.Context, repo *repository.Repository, m *repository.Manifest, w io.Writer, opts ExportOptions) error {
	var cw io.WriteCloser
	switch opts.Format {
	case "tar":
		cw = nopCloser{w}
	case "tar.gz", "tgz":
		cw = gzip.NewWriter(w)
	case "tar.bz2":
		bw, err := bzip2.NewWriter(w, &bzip2.WriterConfig{Level: bzip2.DefaultCompression})
		if err != nil {
			return err
		}
		cw = bw
	case "tar.zst":
		zw, err := zstd.NewWriter(w)
		if err != nil {
			return err
		}
		cw = zw
	default:
		return fmt.Errorf("unknown export format %q (want tar, tar.gz, tar.bz2 or tar.zst)", opts.Format)
	}
	comps, err := selectComponents(m, opts.Components)
	if err != nil {
		return err
	}
	if err := repo.LoadIndex(ctx); err != nil {
		return err
	}
	// Plan first: trees and blob locations, so a missing path or blob is
	// an error before the first byte is written.
	p := newPlan(nil)
	targets := make([]*compTarget, len(comps))
	for i, c := range comps {
		targets[i] = &compTarget{name: c.Name}
	}
	if err := p.walk(ctx, repo, comps, targets, opts.Paths); err != nil {
		return err
	}
	tw := tar.NewWriter(cw)
	name := func(e *entry) string { return path.Join(e.ct.name, e.rel) }
	for _, d := range p.dirs {
		if err := tw.WriteHeader(header(d.node, name(d)+"/", tar.TypeDir)); err != nil {
			return err
		}
	}
	// files and the rest as the second walk reaches them; hard links last,
	// after the files they name
	var links []*entry
	err = p.again(ctx, repo, comps, targets, opts.Paths, func(e *entry) error {
		if e.linkSrc != nil {
			links = append(links, e)
			return nil
		}
		return exportEntry(ctx, repo, tw, name(e), e.node)
	})
	if err != nil {
		return err
	}
	for _, e := range links {
		h := header(e.node, name(e), tar.TypeLink)
		h.Linkname = path.Join(e.ct.name, e.linkTo)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return cw.Close()
}

// exportEntry writes a file (with its content) or a symlink, fifo or
// device to tw; sockets have no tar form.
func exportEntry(ctx context.Context, repo *repository.Repository, tw *tar.Writer, name string, n *repository.Node) error {
	var h *tar.Header
	switch n.Type {
	case repository.NodeFile:
		h = header(n, name, tar.TypeReg)
		h.Size = int64(n.Size)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		for _, id := range n.Content {
			data, err := repo.LoadBlob(ctx, repository.DataBlob, id)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
		return nil
	case repository.NodeSymlink:
		h = header(n, name, tar.TypeSymlink)
		h.Linkname = n.LinkTarget
	case repository.NodeFifo:
		h = header(n, name, tar.TypeFifo)
	case repository.NodeDev, repository.NodeCharDev:
		typ := byte(tar.TypeBlock)
		if n.Type == repository.NodeCharDev {
			typ = tar.TypeChar
		}
		h = header(n, name, typ)
		h.Devmajor, h.Devminor = int64((n.Rdev>>8)&0xfff), int64((n.Rdev&0xff)|((n.Rdev>>12)&0xfff00))
	default:
		return nil
	}
	return tw.WriteHeader(h)
}

func header(n *repository.Node, name string, typ byte) *tar.Header {
	return &tar.Header{Typeflag: typ, Name: name, Mode: int64(n.Mode.Perm()) | modeBits(n),
		Uid: int(n.UID), Gid: int(n.GID), Uname: n.User, Gname: n.Group,
		ModTime: time.Unix(0, n.ModTime), Format: tar.FormatPAX}
}

func modeBits(n *repository.Node) int64 {
	var m int64
	if n.Mode&fs.ModeSetuid != 0 {
		m |= 0o4000
	}
	if n.Mode&fs.ModeSetgid != 0 {
		m |= 0o2000
	}
	if n.Mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
