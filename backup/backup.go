// Package backup turns components (named path sets) into a backup in a
// repository: it walks the sources, chunks, deduplicates and stores file
// content in parallel, writes one tree blob per directory and a signed
// manifest. It decides what each backup type reads (see Types).
package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"backupd/repository"
	"backupd/sources"
)

// Backup types (the spec's names).
const (
	Full         = "full"
	Incremental  = "incremental"
	Differential = "differential"
	Snapshot     = "snapshot"
)

// ValidType reports whether t is a backup type.
func ValidType(t string) error {
	switch t {
	case Full, Incremental, Differential, Snapshot:
		return nil
	}
	return fmt.Errorf("unknown backup type %q (want full, incremental, differential or snapshot)", t)
}

// Component is a named set of sources.
type Component struct {
	Name    string
	Paths   []string
	Include []string
	Exclude []string
	// Streams (database dumps) go under the tree's @dumps directory.
	Streams []sources.Stream
}

// Options describe one backup.
type Options struct {
	ID          string // default: a new id
	Type        string
	Components  []Component
	Compression repository.Compression
	Host        string // default: os.Hostname
	Tags        map[string]string
	// Parent overrides the parent choice for incremental, differential and
	// snapshot backups (a backup id); empty chooses by the type's rule.
	Parent string
	// ParentCandidates are tried, in order, before the repository's
	// manifests are searched: the first that fits the type's rule is the
	// parent (a catalog knows the newest backups without listing them).
	ParentCandidates []string
	Workers          int // file readers/compressors; default GOMAXPROCS+1
	Progress         func(Progress)
	// ProgressInterval between Progress calls (default 500 ms).
	ProgressInterval time.Duration
}

// Progress is a snapshot of a running backup.
type Progress struct {
	Component   string
	FilesDone   int64
	DirsDone    int64
	BytesDone   int64 // content bytes processed (read or reused)
	BytesRead   int64
	BytesAdded  int64 // new content bytes stored (trees apart: at most BytesDone)
	StoredAdded int64
	Warnings    int64
	Elapsed     time.Duration
	Done        bool
}

// ErrComponentFailed wraps a component-level failure in a partial backup.
var ErrComponentFailed = errors.New("component failed")

// Plan is what a backup will do, decided before any data moves: its id,
// and for each component the parent tree whose unchanged files are reused.
// It is small and serialisable, so a durable job can carry it between steps.
type Plan struct {
	ID          string                   `json:"id"`
	Type        string                   `json:"type"`
	Host        string                   `json:"host"`
	Started     time.Time                `json:"started"`
	Parent      string                   `json:"parent,omitempty"`
	Base        string                   `json:"base,omitempty"`
	ParentTrees map[string]repository.ID `json:"parent_trees,omitempty"`
	Compression string                   `json:"compression"`
	Tags        map[string]string        `json:"tags,omitempty"`
}

// Prepare validates opts and chooses the parent by the type's rule.
func Prepare(ctx context.Context, repo *repository.Repository, opts Options) (*Plan, error) {
	if err := ValidType(opts.Type); err != nil {
		return nil, err
	}
	if len(opts.Components) == 0 {
		return nil, errors.New("no components to back up")
	}
	seen := map[string]bool{}
	for _, c := range opts.Components {
		if err := validComponent(c); err != nil {
			return nil, err
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("component %q named twice", c.Name)
		}
		seen[c.Name] = true
	}
	p := &Plan{ID: opts.ID, Type: opts.Type, Host: opts.Host, Started: time.Now().UTC(),
		Compression: opts.Compression.String(), Tags: opts.Tags}
	if p.ID == "" {
		p.ID = repository.NewBackupID(p.Started)
	}
	if err := repository.ValidBackupID(p.ID); err != nil {
		return nil, err
	}
	if p.Host == "" {
		p.Host, _ = os.Hostname()
	}
	opts.Host = p.Host
	if opts.Type != Full {
		parent, err := chooseParent(ctx, repo, opts)
		if err != nil {
			return nil, err
		}
		if parent != nil {
			p.Parent = parent.ID
			if opts.Type == Differential {
				p.Base = parent.ID
			}
			p.ParentTrees = map[string]repository.ID{}
			for _, c := range parent.Components {
				if c.Error == "" {
					p.ParentTrees[c.Name] = c.Tree
				}
			}
		}
	}
	return p, nil
}

// RunComponent stores one component's data and trees and flushes them, so
// on return everything it wrote is durable (and referenced by no manifest
// until Commit). A failure of the component itself (missing or unreadable
// source) comes back in the manifest's Error with ErrComponentFailed; a
// failure of the repository (storage, keys) is returned as is.
func RunComponent(ctx context.Context, repo *repository.Repository, plan *Plan, c Component, opts Options) (repository.ComponentManifest, error) {
	if err := validComponent(c); err != nil {
		return repository.ComponentManifest{Name: c.Name}, err
	}
	if opts.Workers <= 0 {
		// Readers wait on the disk more than they compute: more of them
		// than cores keeps a cold disk's queue full.
		opts.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	// Registered before the index is loaded: garbage collection then
	// leaves alone every pack this component may write or deduplicate
	// against, until the pending marker below protects them.
	w, err := repo.BeginWrite(ctx, "backup "+plan.ID+" "+c.Name)
	if err != nil {
		return repository.ComponentManifest{Name: c.Name}, err
	}
	defer w.End()
	if err := repo.LoadIndex(ctx); err != nil {
		return repository.ComponentManifest{Name: c.Name}, err
	}
	comp, err := repository.ParseCompression(plan.Compression)
	if err != nil {
		return repository.ComponentManifest{Name: c.Name}, err
	}
	repo.SetCompression(comp)
	before := repo.WriteStats()
	a := &archiver{repo: repo, workers: opts.Workers, start: time.Now(),
		chunkers: make(chan *repository.Chunker, runtime.GOMAXPROCS(0))}
	for i := 0; i < cap(a.chunkers); i++ {
		a.chunkers <- nil // made on first use: a tree of small files needs none
	}
	a.component.Store(c.Name)
	stopProgress := a.reportProgress(opts)
	defer stopProgress()
	var parentTree *repository.ID
	if id, ok := plan.ParentTrees[c.Name]; ok {
		parentTree = &id
	}
	cm, err := a.component1(ctx, c, parentTree)
	if ctx.Err() != nil {
		repo.Abort()
		return cm, ctx.Err()
	}
	if err != nil {
		var fatal *fatalError
		if errors.As(err, &fatal) {
			repo.Abort()
			return cm, fatal.err
		}
		cm.Error = err.Error()
	}
	if ferr := repo.Flush(ctx); ferr != nil {
		return cm, ferr
	}
	after := repo.WriteStats()
	cm.Stats.BlobsAdded = after.BlobsAdded - before.BlobsAdded
	cm.Stats.BytesAdded = after.BytesAdded - before.BytesAdded
	cm.Stats.StoredAdded = after.StoredAdded - before.StoredAdded
	cm.Stats.DataAdded = after.DataAdded - before.DataAdded
	cm.Stats.StoredBytes = after.StoredReferenced - before.StoredReferenced
	if cm.Error != "" {
		return cm, fmt.Errorf("%w: %s", ErrComponentFailed, cm.Error)
	}
	// Until Commit writes the manifest, a marker keeps garbage collection
	// from taking this component's data, however long the backup lasts.
	if err := repo.SavePending(ctx, plan.ID, c.Name, cm.Tree); err != nil {
		return cm, err
	}
	return cm, nil
}

// Commit writes the manifest that makes the components a backup. It fails
// when every component failed (there is nothing to restore).
func Commit(ctx context.Context, repo *repository.Repository, plan *Plan, comps []repository.ComponentManifest) (*repository.Manifest, error) {
	m := &repository.Manifest{ID: plan.ID, Type: plan.Type, Host: plan.Host, Started: plan.Started,
		Parent: plan.Parent, Base: plan.Base, Compression: plan.Compression, Tags: plan.Tags,
		Status: "completed", Components: comps}
	failed := 0
	var msgs []string
	for _, c := range comps {
		m.Stats.Add(c.Stats)
		if c.Error != "" {
			failed++
			msgs = append(msgs, c.Name+": "+c.Error)
			m.Status = "partial"
		}
	}
	if failed == len(comps) {
		return nil, fmt.Errorf("%w: every component failed: %s", ErrComponentFailed, strings.Join(msgs, "; "))
	}
	m.Finished = time.Now().UTC()
	// An earlier attempt of this commit may have written the manifest
	// (and died before saying so). Each step below may then refuse: the
	// registration or the pack check (its pending markers are gone, its
	// packs' backup deleted since), SaveManifest (the manifest is there,
	// or folded into a set beside one that cannot be read). Whatever
	// refused, the manifest stored is returned when it is this backup's;
	// a manifest of another backup under the same id is never taken for
	// it, nor written over. (Looking first cost every commit a read and
	// two listings.)
	if err := saveManifest(ctx, repo, plan, m); err != nil {
		have, cerr := committed(ctx, repo, m)
		switch {
		case have != nil:
			return have, nil
		case errors.Is(cerr, repository.ErrBackupIDTaken):
			return nil, cerr
		case errors.Is(err, repository.ErrBackupExists) && cerr != nil:
			return nil, cerr
		case errors.Is(err, repository.ErrBackupExists):
			return nil, fmt.Errorf("backup %s: its manifest exists and then did not (another job deletes it?)", m.ID)
		}
		return nil, err
	}
	// the manifest references the trees now; a leftover marker would only
	// delay garbage collection, so a failure here is not the backup's
	_ = repo.DeletePending(ctx, plan.ID)
	// nor is the upkeep that merges index files and folds manifests when
	// there are too many (the next backup tries again)
	_, _ = repository.Compact(ctx, repo, repository.IndexFileBound, repository.LooseManifestBound)
	return m, nil
}

// saveManifest registers a writer, checks the packs and saves m. Never a
// manifest over packs a collection deleted: every pack the components
// stored or depend on must still be stored (a collection that ran
// meanwhile cannot delete them once this writer is registered); one this
// host found stored minutes ago is not asked for again (CheckBackupPacks).
func saveManifest(ctx context.Context, repo *repository.Repository, plan *Plan, m *repository.Manifest) error {
	w, err := repo.BeginWrite(ctx, "commit "+plan.ID)
	if err != nil {
		return err
	}
	defer w.End()
	if err := repo.CheckBackupPacks(ctx, plan.ID, repo.DependedPacks()); err != nil {
		return err
	}
	if err := w.Valid(); err != nil {
		return err
	}
	return repo.SaveManifest(ctx, m)
}

// committed returns the manifest stored under m's id when it is m's own
// backup's (its markers are then removed), ErrBackupIDTaken when it is
// another's, and nil, nil when there is none.
func committed(ctx context.Context, repo *repository.Repository, m *repository.Manifest) (*repository.Manifest, error) {
	have, err := repo.LoadManifest(ctx, m.ID)
	switch {
	case errors.Is(err, repository.ErrBackupNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case !have.SameBackup(m):
		return nil, have.Taken(repo.Backend().Location())
	}
	_ = repo.DeletePending(ctx, m.ID)
	return have, nil
}

// Run makes one backup and returns its manifest: Prepare, RunComponent for
// each component, Commit. A component whose sources fail as a whole is
// recorded with its error and the backup is "partial"; when every component
// fails, Run returns an error and writes no manifest. Files that cannot be
// read are warnings in their component, never silent gaps.
func Run(ctx context.Context, repo *repository.Repository, opts Options) (*repository.Manifest, error) {
	// (the index is loaded by each component once it is registered as a
	// writer; Prepare reads manifests only)
	plan, err := Prepare(ctx, repo, opts)
	if err != nil {
		return nil, err
	}
	var comps []repository.ComponentManifest
	for _, c := range opts.Components {
		cm, err := RunComponent(ctx, repo, plan, c, opts)
		if err != nil && !errors.Is(err, ErrComponentFailed) {
			return nil, err
		}
		comps = append(comps, cm)
	}
	return Commit(ctx, repo, plan, comps)
}

func validComponent(c Component) error {
	if err := repository.ValidNodeName(c.Name); err != nil || strings.ContainsAny(c.Name, " \t\n") {
		return fmt.Errorf("invalid component name %q", c.Name)
	}
	if len(c.Paths) == 0 && len(c.Streams) == 0 {
		return fmt.Errorf("component %q has no paths and no databases", c.Name)
	}
	for _, p := range c.Paths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("component %q: path %q is not absolute", c.Name, p)
		}
	}
	return nil
}

// chooseParent applies the type's rule: incremental and snapshot take the
// newest backup of the same components (and host); differential takes the
// newest full one. "Newest" is by id, which begins with the start time; a
// parent only saves reading unchanged files, so any earlier backup of the
// same components would be a correct one.
func chooseParent(ctx context.Context, repo *repository.Repository, opts Options) (*repository.Manifest, error) {
	if opts.Parent != "" {
		return repo.LoadManifest(ctx, opts.Parent)
	}
	want := componentKey(opts.Components)
	fits := func(m *repository.Manifest) bool {
		return m.Host == opts.Host && componentKey(toComponents(m)) == want && (opts.Type != Differential || m.Type == Full)
	}
	for _, id := range opts.ParentCandidates {
		// a candidate gone or unreadable is passed over: the search
		// below finds what is there
		if m, err := repo.LoadManifest(ctx, id); err == nil && fits(m) {
			return m, nil
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return repo.NewestManifest(ctx, fits)
}

func toComponents(m *repository.Manifest) []Component {
	out := make([]Component, len(m.Components))
	for i, c := range m.Components {
		out[i] = Component{Name: c.Name, Paths: c.Paths}
	}
	return out
}

// componentKey identifies a set of components by names and paths.
func componentKey(cs []Component) string {
	var parts []string
	for _, c := range cs {
		ps := append([]string(nil), c.Paths...)
		sort.Strings(ps)
		parts = append(parts, c.Name+"="+strings.Join(ps, ","))
	}
	sort.Strings(parts)
	return strings.Join(parts, ";")
}

// fatalError aborts the whole backup (storage failure), as opposed to a
// component failure.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

type archiver struct {
	repo      *repository.Repository
	workers   int
	start     time.Time
	component atomic.Value

	filesDone, dirsDone, bytesDone, bytesRead, warnings atomic.Int64

	chunkers chan *repository.Chunker // a few, each with a 16 MiB buffer
}

// chunker takes a chunker from the pool, waiting if all are in use.
func (a *archiver) chunker() *repository.Chunker {
	c := <-a.chunkers
	if c == nil {
		c = repository.NewChunker(a.repo.Gear())
	}
	return c
}

func (a *archiver) putChunker(c *repository.Chunker) { a.chunkers <- c }

func (a *archiver) reportProgress(opts Options) (stop func()) {
	if opts.Progress == nil {
		return func() {}
	}
	iv := opts.ProgressInterval
	if iv <= 0 {
		iv = 500 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(iv)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				opts.Progress(a.progress(false))
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			opts.Progress(a.progress(true))
		})
	}
}

func (a *archiver) progress(done bool) Progress {
	ws := a.repo.WriteStats()
	c, _ := a.component.Load().(string)
	return Progress{Component: c, FilesDone: a.filesDone.Load(), DirsDone: a.dirsDone.Load(),
		BytesDone: a.bytesDone.Load(), BytesRead: a.bytesRead.Load(), BytesAdded: ws.DataAdded,
		StoredAdded: ws.StoredAdded, Warnings: a.warnings.Load(), Elapsed: time.Since(a.start), Done: done}
}
