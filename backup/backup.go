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
	Parent   string
	Workers  int // file readers/compressors; default GOMAXPROCS+1
	Progress func(Progress)
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
	BytesAdded  int64 // new plaintext bytes stored
	StoredAdded int64
	Warnings    int64
	Elapsed     time.Duration
	Done        bool
}

// ErrComponentFailed wraps a component-level failure in a partial backup.
var ErrComponentFailed = errors.New("component failed")

// Run makes one backup and returns its manifest. A component whose sources
// fail as a whole (missing root, unreadable root) is recorded with its
// error and the backup is "partial"; when every component fails, Run
// returns an error and writes no manifest. Files that cannot be read are
// warnings in their component, never silent gaps.
func Run(ctx context.Context, repo *repository.Repository, opts Options) (*repository.Manifest, error) {
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
	started := time.Now().UTC()
	if opts.ID == "" {
		opts.ID = repository.NewBackupID(started)
	}
	if err := repository.ValidBackupID(opts.ID); err != nil {
		return nil, err
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if opts.Workers <= 0 {
		// Readers wait on the disk more than they compute: more of them
		// than cores keeps a cold disk's queue full.
		opts.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	if err := repo.LoadIndex(ctx); err != nil {
		return nil, err
	}
	m := &repository.Manifest{ID: opts.ID, Type: opts.Type, Host: opts.Host, Started: started,
		Compression: opts.Compression.String(), Tags: opts.Tags, Status: "completed"}

	var parent *repository.Manifest
	if opts.Type != Full {
		var err error
		parent, err = chooseParent(ctx, repo, opts)
		if err != nil {
			return nil, err
		}
		if parent != nil {
			m.Parent = parent.ID
			if opts.Type == Differential {
				m.Base = parent.ID
			}
		}
	}
	repo.SetCompression(opts.Compression)

	a := &archiver{repo: repo, workers: opts.Workers, start: time.Now(),
		chunkers: make(chan *repository.Chunker, runtime.GOMAXPROCS(0)+1)}
	for i := 0; i < cap(a.chunkers); i++ {
		a.chunkers <- repository.NewChunker(repo.Gear())
	}
	stopProgress := a.reportProgress(opts)
	failed := 0
	for _, c := range opts.Components {
		a.component.Store(c.Name)
		var parentTree *repository.ID
		if parent != nil {
			if pc := parent.Component(c.Name); pc != nil && pc.Error == "" {
				id := pc.Tree
				parentTree = &id
			}
		}
		cm, err := a.component1(ctx, c, parentTree)
		if ctx.Err() != nil {
			stopProgress()
			repo.Abort()
			return nil, ctx.Err()
		}
		if err != nil {
			var fatal *fatalError
			if errors.As(err, &fatal) {
				stopProgress()
				repo.Abort()
				return nil, fatal.err
			}
			failed++
			cm.Error = err.Error()
			m.Status = "partial"
		}
		m.Components = append(m.Components, cm)
		m.Stats.Add(cm.Stats)
	}
	if failed == len(opts.Components) {
		stopProgress()
		repo.Abort()
		var msgs []string
		for _, c := range m.Components {
			msgs = append(msgs, c.Name+": "+c.Error)
		}
		return nil, fmt.Errorf("%w: every component failed: %s", ErrComponentFailed, strings.Join(msgs, "; "))
	}
	if err := repo.Flush(ctx); err != nil {
		stopProgress()
		return nil, err
	}
	ws := repo.WriteStats()
	m.Stats.BlobsAdded, m.Stats.BytesAdded, m.Stats.StoredAdded = ws.BlobsAdded, ws.BytesAdded, ws.StoredAdded
	m.Finished = time.Now().UTC()
	if err := repo.SaveManifest(ctx, m); err != nil {
		stopProgress()
		return nil, err
	}
	stopProgress()
	return m, nil
}

func validComponent(c Component) error {
	if err := repository.ValidNodeName(c.Name); err != nil || strings.ContainsAny(c.Name, " \t\n") {
		return fmt.Errorf("invalid component name %q", c.Name)
	}
	if len(c.Paths) == 0 {
		return fmt.Errorf("component %q has no paths", c.Name)
	}
	for _, p := range c.Paths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("component %q: path %q is not absolute", c.Name, p)
		}
	}
	return nil
}

// chooseParent applies the type's rule: incremental and snapshot take the
// newest completed backup of the same components (and host); differential
// takes the newest full one.
func chooseParent(ctx context.Context, repo *repository.Repository, opts Options) (*repository.Manifest, error) {
	if opts.Parent != "" {
		return repo.LoadManifest(ctx, opts.Parent)
	}
	ms, _, err := repo.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	want := componentKey(opts.Components)
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		if m.Host != opts.Host || componentKey(toComponents(m)) != want {
			continue
		}
		if opts.Type == Differential && m.Type != Full {
			continue
		}
		return m, nil
	}
	return nil, nil
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
	return <-a.chunkers
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
		BytesDone: a.bytesDone.Load(), BytesRead: a.bytesRead.Load(), BytesAdded: ws.BytesAdded,
		StoredAdded: ws.StoredAdded, Warnings: a.warnings.Load(), Elapsed: time.Since(a.start), Done: done}
}
