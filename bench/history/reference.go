package main

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"

	"backupd/backup"
	"backupd/repository"
	"backupd/storage/fault"
	"backupd/storage/s3"
	"backupd/storage/s3/s3test"
)

// refAt is the size of the reference repository: case D's first
// checkpoint.
const refAt = 10

// A reference is a repository of refAt backups beside the history, on the
// same S3 server, with its own tree and cache, put back to that state
// before each of its measures. Measured beside each checkpoint, it gives
// the backup and the listing at refAt again, at the same time as the
// checkpoint: the first checkpoint is measured in the run's first second
// and the last ten minutes later, and on a 2-core VM beside others the
// machine's speed drifts by more than the target's margin in that time
// (the 10th backup took 22, 28, 30 and 38 ms in four runs of the same
// code on one VM, 2026-12-07).
type reference struct {
	tm      *timed
	counted *fault.Backend
	// s3: where the server keeps its objects; cache and tree: the
	// client's; saved: their copies after the refAt-th backup
	s3, cache, tree, saved string
	paths                  []string
	change                 float64
	open                   func() (*repository.Repository, error)
}

// newReference makes the reference: refAt backups of a tree like the
// history's, under the prefix "ref" of the history's bucket.
func newReference(ctx context.Context, srv *s3test.Server, s3Dir, scratch string, nfiles, ndirs int, change float64,
	creds repository.Credentials, kdf repository.KDFParams) (*reference, error) {
	be, err := s3.New(ctx, srv.Config("history", "ref"))
	if err != nil {
		return nil, err
	}
	ref := &reference{tm: newTimed(be), s3: filepath.Join(s3Dir, "history", "ref"),
		cache: filepath.Join(scratch, "ref-cache"), tree: filepath.Join(scratch, "ref-tree"), saved: filepath.Join(scratch, "ref-saved"),
		change: change}
	ref.counted = fault.New(ref.tm)
	if _, err := repository.Init(ctx, ref.counted, repository.InitOptions{Wrapping: repository.Wrapping{Password: creds.Password, KDF: &kdf}}); err != nil {
		return nil, err
	}
	ref.open = func() (*repository.Repository, error) {
		r, err := repository.Open(ctx, ref.counted, creds)
		if err != nil {
			return nil, err
		}
		c, err := repository.OpenCache(ref.cache, r.Config().ID)
		if err != nil {
			return nil, err
		}
		r.SetCache(c)
		return r, nil
	}
	rng := rand.New(rand.NewSource(2))
	if ref.paths, err = makeTree(ref.tree, nfiles, ndirs, rng); err != nil {
		return nil, err
	}
	for i := 1; i <= refAt; i++ {
		if i > 1 {
			if err := mutate(ref.paths, change, rng); err != nil {
				return nil, err
			}
		}
		if err := ref.backup(ctx); err != nil {
			return nil, fmt.Errorf("reference backup %d: %w", i, err)
		}
	}
	os.RemoveAll(ref.saved)
	if err := os.MkdirAll(ref.saved, 0o700); err != nil {
		return nil, err
	}
	for _, d := range []string{ref.s3, ref.cache, ref.tree} {
		// cp -a: the server keeps each object's metadata in extended
		// attributes
		if out, err := exec.Command("cp", "-a", d, filepath.Join(ref.saved, filepath.Base(d))).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("saving the reference: %v: %s", err, out)
		}
	}
	return ref, nil
}

func (ref *reference) backup(ctx context.Context) error {
	r, err := ref.open()
	if err != nil {
		return err
	}
	_, err = backup.Run(ctx, r, backup.Options{Type: backup.Incremental, Components: []backup.Component{{Name: "data", Paths: []string{ref.tree}}}, Host: "history"})
	return err
}

// restore puts the objects, the cache and the tree back as they were
// after the refAt-th backup.
func (ref *reference) restore() error {
	for _, d := range []string{ref.s3, ref.cache, ref.tree} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		if out, err := exec.Command("cp", "-a", filepath.Join(ref.saved, filepath.Base(d)), d).CombinedOutput(); err != nil {
			return fmt.Errorf("restoring the reference: %v: %s", err, out)
		}
	}
	return nil
}

// measure is the median of repeat backups of the reference, each from
// its restored state, and of repeat listings of its newest backups.
func (ref *reference) measure(ctx context.Context) (bk, list Measure, err error) {
	var bks, lists []Measure
	for k := 0; k < repeat; k++ {
		if err := ref.restore(); err != nil {
			return bk, list, err
		}
		// The copied tree's files have new inodes and change times, so
		// the next backup would read them all: one backup, not measured,
		// records them; the one measured after it is an incremental
		// backup of a repository of refAt+1.
		if err := ref.backup(ctx); err != nil {
			return bk, list, fmt.Errorf("reference backup: %w", err)
		}
		if err := mutate(ref.paths, ref.change, rand.New(rand.NewSource(int64(1000+k)))); err != nil {
			return bk, list, err
		}
		m, err := measureWith(ref.counted, ref.tm, false, func() error { return ref.backup(ctx) })
		if err != nil {
			return bk, list, fmt.Errorf("reference backup: %w", err)
		}
		bks = append(bks, m)
	}
	if err := ref.restore(); err != nil {
		return bk, list, err
	}
	for k := 0; k < repeat; k++ {
		m, err := measureWith(ref.counted, ref.tm, false, func() error {
			r, err := ref.open()
			if err != nil {
				return err
			}
			ms, errs, err := r.NewestManifests(ctx, lastN+1, nil)
			if err == nil && (len(errs) > 0 || len(ms) != min(refAt, lastN+1)) {
				err = fmt.Errorf("listed %d (%d unreadable)", len(ms), len(errs))
			}
			return err
		})
		if err != nil {
			return bk, list, fmt.Errorf("reference listing: %w", err)
		}
		lists = append(lists, m)
	}
	return median(bks), median(lists), nil
}
