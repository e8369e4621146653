package backup_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"backupd/backup"
	"backupd/repository"
	"backupd/restore"
	"backupd/storage"
	"backupd/storage/fault"
	"backupd/storage/mem"
	"backupd/storage/retry"
)

// The fault-injecting soak: random sequences of backup, copy, restore,
// forget, garbage collection and emergency collection (no safety window,
// with a backup running) against two repositories whose storage fails at
// random (errors, uploads broken midway, timeouts, ENOSPC, slow calls,
// corrupted and truncated reads), checked against a model of what must
// exist. Invariants:
//   - a backup reported complete restores bit-identical to its source;
//   - a restore that reports success wrote exactly the backup (a lying
//     read is caught, never written);
//   - after every collection, successful or not, the repository checks
//     clean (no referenced pack was removed);
//   - at the end, with faults off, `check --read-data` is clean and every
//     backup the model holds restores bit-identical.

type soakRepo struct {
	name  string
	mem   *mem.Backend
	fb    *fault.Backend
	be    storage.Backend
	model map[string]map[string]string // backup id -> source snapshot
	// origin says how each backup in the model came to be, for failures
	origin map[string]string
}

type soak struct {
	t        *testing.T
	rng      *rand.Rand
	src      string
	repos    []*soakRepo
	vnow     time.Time // virtual time for collections with a window
	counts   map[string]int
	failures map[string]int
	injected int        // faults fired
	on       bool       // faults are being injected
	mu       sync.Mutex // guards counts and failures (the emergency collection runs beside a backup)
	steps    []string   // what each step did, for failures
}

var soakCreds = repository.Credentials{Password: []byte("pw")}

// faults turns injection on or off and reports the previous state.
func (s *soak) faults(on bool) (was bool) {
	was, s.on = s.on, on
	for _, r := range s.repos {
		s.injected += r.fb.Fired()
		r.fb.Reset()
		if !on {
			continue
		}
		permanent := storage.Permanent(fmt.Errorf("disk full: %w", syscall.ENOSPC))
		for _, rule := range []fault.Rule{
			{Op: fault.Put, Chance: 0.06},
			{Op: fault.Put, Chance: 0.04, Action: fault.FailAfter, Bytes: 700},
			{Op: fault.Put, Prefix: "data/", Chance: 0.01, Err: permanent},
			{Op: fault.Get, Chance: 0.05},
			{Op: fault.Get, Chance: 0.02, Action: fault.FailAfter, Bytes: 100},
			{Op: fault.Get, Prefix: "data/", Chance: 0.01, Action: fault.Corrupt, Bytes: 37},
			{Op: fault.Get, Prefix: "data/", Chance: 0.01, Action: fault.Truncate, Bytes: 50},
			{Op: fault.Get, Chance: 0.02, Err: fmt.Errorf("timeout: %w", os.ErrDeadlineExceeded)},
			{Op: fault.List, Chance: 0.03},
			{Op: fault.Stat, Chance: 0.03},
			{Op: fault.Delete, Chance: 0.05},
			{Op: fault.Any, Chance: 0.02, Action: fault.Delay, Delay: 3 * time.Millisecond},
		} {
			r.fb.Add(rule)
		}
	}
	return was
}

func (s *soak) open(r *soakRepo) (*repository.Repository, error) {
	return repository.Open(context.Background(), r.be, soakCreds)
}

// mustOpen opens with faults off (for the model's checks).
func (s *soak) mustOpen(r *soakRepo) *repository.Repository {
	s.t.Helper()
	repo, err := s.open(r)
	if err != nil {
		s.t.Fatal(err)
	}
	return repo
}

func snapshotTree(t *testing.T, root string) map[string]string {
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			out[rel+"/"] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		out[rel] = hex.EncodeToString(h[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *soak) mutate() {
	n := 1 + s.rng.Intn(6)
	for i := 0; i < n; i++ {
		dir := filepath.Join(s.src, fmt.Sprintf("d%d", s.rng.Intn(4)))
		os.MkdirAll(dir, 0o755)
		p := filepath.Join(dir, fmt.Sprintf("f%d", s.rng.Intn(12)))
		switch s.rng.Intn(5) {
		case 0:
			os.Remove(p)
		default:
			size := s.rng.Intn(40 << 10)
			if s.rng.Intn(8) == 0 {
				size = 1<<20 + s.rng.Intn(2<<20) // several chunks
			}
			b := make([]byte, size)
			s.rng.Read(b)
			os.WriteFile(p, b, 0o644)
		}
	}
}

func (s *soak) comps() []backup.Component {
	return []backup.Component{{Name: "d", Paths: []string{s.src}}}
}

// backup runs one backup to r; when it is reported complete the model
// gets it. A failed one whose manifest exists anyway is in the model too
// (its data must be whole as well).
func (s *soak) backup(r *soakRepo, typ string) {
	want := snapshotTree(s.t, s.src)
	id := repository.NewBackupID(time.Now())
	// the tag tells this backup's manifest from another's under the id
	step := fmt.Sprint(len(s.steps))
	repo, err := s.open(r)
	if err == nil {
		_, err = backup.Run(context.Background(), repo, backup.Options{ID: id, Type: typ, Components: s.comps(), Workers: 2,
			Tags: map[string]string{"step": step}})
	}
	s.note("backup", err)
	origin := fmt.Sprintf("%s backup at step %s, error %v", typ, step, err)
	if err == nil {
		r.model[id], r.origin[id] = want, origin
		return
	}
	was := s.faults(false)
	if m, lerr := s.mustOpen(r).LoadManifest(context.Background(), id); lerr == nil && m.Tags["step"] == step {
		r.model[id], r.origin[id] = want, origin
	}
	s.faults(was)
}

func (s *soak) note(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[op]++
	if err != nil {
		s.failures[op]++
	}
}

func (s *soak) pick(r *soakRepo) string {
	if len(r.model) == 0 {
		return ""
	}
	ids := make([]string, 0, len(r.model))
	for id := range r.model {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids[s.rng.Intn(len(ids))]
}

// restoreAndCompare restores id from r; a restore that reports success
// must have written exactly the model's tree.
func (s *soak) restoreAndCompare(r *soakRepo, id string, mustSucceed bool) {
	s.t.Helper()
	ctx := context.Background()
	target := s.t.TempDir()
	var err error
	repo, err := s.open(r)
	var m *repository.Manifest
	if err == nil {
		m, err = repo.LoadManifest(ctx, id)
	}
	if err == nil {
		_, err = restore.Run(ctx, repo, m, restore.Options{Target: target, Workers: 2})
	}
	s.note("restore", err)
	if err != nil {
		if mustSucceed {
			s.t.Fatalf("%s: backup %s does not restore with faults off: %v", r.name, id, err)
		}
		return
	}
	got := snapshotTree(s.t, filepath.Join(target, "d", s.src))
	want := r.model[id]
	if fmt.Sprint(got) != fmt.Sprint(want) {
		s.t.Fatalf("%s: backup %s (%s; manifest: type %s, parent %q, base %q, stats %+v) restored differently from its source:\n%s\nsteps: %s",
			r.name, id, r.origin[id], m.Type, m.Parent, m.Base, m.Stats, diffSnap(want, got), strings.Join(s.steps, "; "))
	}
	os.RemoveAll(target)
}

func diffSnap(want, got map[string]string) string {
	var out []string
	for k, v := range want {
		if got[k] != v {
			out = append(out, fmt.Sprintf("  %s: want %.12s got %.12s", k, v, got[k]))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, "  extra "+k)
		}
	}
	sort.Strings(out)
	if len(out) > 20 {
		out = append(out[:20], "  …")
	}
	return strings.Join(out, "\n")
}

// checkClean runs the checker with faults off (read-data when full).
func (s *soak) checkClean(r *soakRepo, why string, readData float64) {
	s.t.Helper()
	defer s.faults(s.faults(false))
	res, err := repository.Check(context.Background(), s.mustOpen(r), repository.CheckOptions{ReadDataPercent: readData})
	if err != nil || !res.OK {
		var origins []string
		for id, o := range r.origin {
			if res != nil && strings.Contains(fmt.Sprint(res.AffectedFiles), id+":") {
				origins = append(origins, id+": "+o)
			}
		}
		s.t.Fatalf("%s: check after %s: %v %+v\naffected backups: %s\nsteps: %s", r.name, why, err, res,
			strings.Join(origins, "; "), strings.Join(s.steps, "; "))
	}
	// and the model's manifests are all there
	for id := range r.model {
		if _, err := s.mustOpen(r).LoadManifest(context.Background(), id); err != nil {
			s.t.Fatalf("%s: after %s, backup %s is gone: %v", r.name, why, id, err)
		}
	}
}

func (s *soak) forget(r *soakRepo) {
	id := s.pick(r)
	if id == "" {
		return
	}
	repo, err := s.open(r)
	if err == nil {
		err = repo.DeleteManifest(context.Background(), id)
	}
	s.note("forget", err)
	if err == nil {
		delete(r.model, id)
		return
	}
	was := s.faults(false)
	if _, lerr := s.mustOpen(r).LoadManifest(context.Background(), id); errors.Is(lerr, repository.ErrBackupNotFound) {
		delete(r.model, id)
	}
	s.faults(was)
}

func (s *soak) gc(r *soakRepo) {
	s.vnow = s.vnow.Add(time.Duration(1+s.rng.Intn(8)) * time.Hour)
	repo, err := s.open(r)
	if err == nil {
		_, err = repository.GC(context.Background(), repo, repository.GCOptions{SafetyWindow: 2 * time.Hour, Now: s.vnow})
	}
	s.note("gc", err)
	s.checkClean(r, "gc", 0)
}

// emergency collects with no safety window while a backup writes.
func (s *soak) emergency(r *soakRepo) {
	var wg sync.WaitGroup
	wg.Add(1)
	delay := time.Duration(s.rng.Intn(3)) * time.Millisecond
	var res *repository.GCResult
	var gerr error
	go func() {
		defer wg.Done()
		time.Sleep(delay)
		repo, err := s.open(r)
		if err == nil {
			res, err = repository.GC(context.Background(), repo, repository.GCOptions{SafetyWindow: 0})
		}
		gerr = err
		s.note("emergency gc", err)
	}()
	s.backup(r, backup.Incremental)
	wg.Wait()
	s.steps = append(s.steps, fmt.Sprintf("(gc %+v, error %v)", res, gerr))
	s.checkClean(r, "emergency gc", 0)
}

func (s *soak) copy(from, to *soakRepo) {
	id := s.pick(from)
	if id == "" {
		return
	}
	if _, ok := to.model[id]; ok {
		return
	}
	src, err := s.open(from)
	var dst *repository.Repository
	if err == nil {
		dst, err = s.open(to)
	}
	if err == nil {
		_, _, err = repository.CopyBackup(context.Background(), src, dst, id)
	}
	s.note("copy", err)
	if err == nil {
		to.model[id], to.origin[id] = from.model[id], "copy of "+from.name+"'s "+from.origin[id]
		return
	}
	was := s.faults(false)
	m, _ := s.mustOpen(from).LoadManifest(context.Background(), id)
	if have, lerr := s.mustOpen(to).LoadManifest(context.Background(), id); lerr == nil && m != nil && have.SameBackup(m) {
		to.model[id], to.origin[id] = from.model[id], "failed copy of "+from.name+"'s "+from.origin[id]
	}
	s.faults(was)
}

// soakOps are the soak's steps, each as often as it appears (of 20 draws:
// backups 7, copies 3, restores 3, forgets 2, collections 3, emergency
// collections beside a backup 2), the same sequence for a seed as before
// they were named.
var soakOps = []string{
	"backup a", "backup a", "backup a", "backup a", "backup a", "backup b", "backup b",
	"copy a->b", "copy a->b", "copy a->b", "restore", "restore", "restore", "forget", "forget",
	"gc", "gc", "gc", "emergency gc + backup a", "emergency gc + backup a",
}

func TestFaultInjectingSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	budget := 15 * time.Second
	seeds := []int64{1, 2, 3}
	per := budget / time.Duration(len(seeds))
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runSoak(t, seed, per) })
	}
}

func runSoak(t *testing.T, seed int64, budget time.Duration) {
	ctx := context.Background()
	s := &soak{t: t, rng: rand.New(rand.NewSource(seed)), src: t.TempDir(), vnow: time.Now(),
		counts: map[string]int{}, failures: map[string]int{}}
	kdf := repository.TestKDF()
	var keys *repository.Keys
	for _, name := range []string{"a", "b"} {
		m := mem.New()
		fb := fault.New(m)
		fb.Seed(seed*100 + int64(len(s.repos)))
		r := &soakRepo{name: name, mem: m, fb: fb, model: map[string]map[string]string{}, origin: map[string]string{},
			be: retry.New(fb, retry.Options{MaxAttempts: 2, InitialDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond})}
		repo, err := repository.Init(ctx, r.be, repository.InitOptions{Keys: keys, Wrapping: repository.Wrapping{Password: soakCreds.Password, KDF: &kdf}})
		if err != nil {
			t.Fatal(err)
		}
		keys = repo.Keys()
		s.repos = append(s.repos, r)
	}
	a, b := s.repos[0], s.repos[1]
	s.mutate()
	s.faults(true)
	start := time.Now()
	steps := 0
	for time.Since(start) < budget && steps < 300 {
		steps++
		op := soakOps[s.rng.Intn(len(soakOps))]
		s.steps = append(s.steps, op)
		switch op {
		case "backup a":
			s.mutate()
			typ := backup.Incremental
			if s.rng.Intn(3) == 0 {
				typ = backup.Full
			}
			s.backup(a, typ)
		case "backup b":
			s.mutate()
			s.backup(b, backup.Incremental)
		case "copy a->b":
			s.copy(a, b)
		case "restore":
			r := s.repos[s.rng.Intn(2)]
			if id := s.pick(r); id != "" {
				s.restoreAndCompare(r, id, false)
			}
		case "forget":
			s.forget(s.repos[s.rng.Intn(2)])
		case "gc":
			s.gc(s.repos[s.rng.Intn(2)])
		case "emergency gc + backup a":
			s.mutate()
			s.emergency(a)
		}
	}
	s.faults(false)
	for _, r := range s.repos {
		s.checkClean(r, "the soak", 100)
		for id := range r.model {
			s.restoreAndCompare(r, id, true)
		}
	}
	t.Logf("seed %d: %d steps in %v, %d faults injected; operations %v, of which failed %v; backups kept a=%d b=%d, all restored bit-identical",
		seed, steps, time.Since(start).Round(time.Millisecond), s.injected, s.counts, s.failures, len(a.model), len(b.model))
}
