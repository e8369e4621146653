// Command history is benchmark case D, long history: many small backups
// in one repository on a real S3 server (versitygw), and what the Nth
// incremental backup and a listing of the backups cost as N grows, in time
// and in S3 requests (counted by a decorator around the S3 backend).
//
// A seeded tree of small files is backed up N times, a share of its files
// rewritten between backups; every -cleanup backups a garbage collection
// with repack runs, as a scheduled cleanup would. At each checkpoint the
// backups ending there, `backupd repo list` (the newest 50 backups; -last)
// and `repo list --all` (every manifest) are measured, medians of -repeat,
// each with a fresh repository handle and the client's local cache, as a
// new command would run. It judges case D's targets at the last checkpoint
// against the first (exit 1 on a miss): the backup and `repo list` within
// 1.3x the time, and no more requests. Beside each checkpoint it also
// measures a reference repository of 10 backups put back to that state
// before each measure (-ref), and reports the last checkpoint against it:
// the machine's speed drifts in the minutes between the first checkpoint
// and the last.
//
//	go run ./bench/history -n 10000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"backupd/backup"
	"backupd/repository"
	"backupd/storage"
	"backupd/storage/fault"
	"backupd/storage/s3"
	"backupd/storage/s3/s3test"
)

var (
	traceRequests bool
	s3Dir         string
	verbose       bool
	repeat        int
	profileDir    string
	resume        bool
	withRef       bool
)

// measureWith measures fn: its time, and the requests counted and timed
// (traced when trace) by the decorators. The heap is collected first, as
// a new command's process starts with none of the last one's garbage:
// `repo list --all` at 10,000 backups leaves the manifests of all of them,
// and the `repo list` measured next spent the collection's work (6 ms
// against the reference's 4 at 10,000, where 500 listings one after
// another took 4.3 to 4.7 ms, and 4.0 at 10: the medians of opening the
// repository and of the listing, summed).
func measureWith(counted *fault.Backend, tm *timed, trace bool, fn func() error) (Measure, error) {
	runtime.GC()
	counted.Reset()
	tm.reset(trace)
	t := time.Now()
	err := fn()
	m := Measure{Seconds: time.Since(t).Seconds(), S3Seconds: tm.total().Seconds(), ByOp: map[string]int{}}
	for _, op := range []fault.Op{fault.Put, fault.Get, fault.Stat, fault.List, fault.Delete} {
		if c := counted.Calls(op); c > 0 {
			m.ByOp[string(op)] = c
			m.Requests += c
		}
	}
	return m, err
}

// profile writes a CPU profile of n calls of fn to profileDir/name.
func profile(name string, n int, fn func() error) error {
	f, err := os.Create(filepath.Join(profileDir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	for range n {
		if err := fn(); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	n := flag.Int("n", 10000, "backups to make")
	points := flag.String("at", "10,100,1000,10000", "checkpoints (backup numbers) to measure at")
	files := flag.Int("files", 300, "files in the tree")
	dirs := flag.Int("dirs", 30, "directories in the tree")
	change := flag.Float64("change", 1, "percent of the files rewritten between backups")
	cleanup := flag.Int("cleanup", 100, "run a cleanup (gc with repack) every this many backups (0: never)")
	scratch := flag.String("dir", "", "scratch directory (default: a new temporary one, removed at the end)")
	flag.StringVar(&s3Dir, "s3-dir", s3Dir, "where the S3 server keeps its objects (default: a new directory in /dev/shm when it is there, removed at the end unless -dir is given; else in the scratch directory)")
	out := flag.String("json", "", "also write the results here as JSON")
	flag.IntVar(&repeat, "repeat", 5, "measures at each checkpoint (the backups ending at it, and listings), their median reported")
	flag.BoolVar(&verbose, "v", false, "report each cleanup")
	flag.IntVar(&lastN, "last", lastN, "repo list shows the newest this many backups (repo list --last N; 50 is its default), measured beside repo list --all")
	flag.BoolVar(&traceRequests, "trace", false, "at each checkpoint, print one more backup's and listing's S3 requests, each with its time, and the time by kind")
	flag.StringVar(&profileDir, "profile", "", "at each checkpoint N, write CPU profiles of the backups measured (backup-N.pprof), of 100 listings of the newest (-last) and of 10 whole listings (list-N.pprof, all-N.pprof) here")
	flag.BoolVar(&withRef, "ref", true, "beside each checkpoint, also measure the backup and repo list of a repository of 10 backups, put back to that state before each measure: the first checkpoint is measured in the run's first second and the last minutes later, and the machine's speed drifts meanwhile (not with -resume)")
	flag.BoolVar(&resume, "resume", false, "go on with the history an earlier run kept (its -dir and -s3-dir, both required), from its last backup up to -n: measuring at 10,000 backups again takes minutes, not the 22 to make them")
	flag.Parse()
	if resume && (*scratch == "" || s3Dir == "") {
		fmt.Fprintln(os.Stderr, "history: -resume needs the -dir and -s3-dir of the run it goes on with")
		os.Exit(2)
	}
	if err := run(*n, *points, *files, *dirs, *change, *cleanup, *scratch, *out); err != nil {
		fmt.Fprintln(os.Stderr, "history:", err)
		os.Exit(1)
	}
}

// Measure is one operation's cost.
type Measure struct {
	Seconds float64 `json:"seconds"`
	// S3Seconds: time spent in S3 requests (requests made at once add up)
	S3Seconds float64        `json:"s3_seconds"`
	Requests  int            `json:"requests"`
	ByOp      map[string]int `json:"by_op"`
}

// median is the measure of median time (requests and kinds from it).
func median(ms []Measure) Measure {
	if len(ms) == 0 {
		return Measure{}
	}
	s := append([]Measure(nil), ms...)
	sort.Slice(s, func(i, j int) bool { return s[i].Seconds < s[j].Seconds })
	return s[len(s)/2]
}

// lastN: repo list shows the newest lastN backups (-last; 50, as the
// command without --last or --all).
var lastN = 50

// Point is one checkpoint: medians of -repeat measures.
type Point struct {
	Backups int     `json:"backups"`
	Backup  Measure `json:"incremental_backup"`
	// List: repo list, the newest -last backups
	List Measure `json:"list"`
	// All: repo list --all
	All        Measure `json:"list_all"`
	IndexFiles int     `json:"index_files"`
	// LooseManifests and ManifestSets: the manifest objects a listing reads
	LooseManifests int   `json:"loose_manifests"`
	ManifestSets   int   `json:"manifest_sets"`
	Packs          int   `json:"packs"`
	StoredBytes    int64 `json:"stored_bytes"`
	// RefBackup and RefList: the reference's (-ref), measured beside
	// this checkpoint
	RefBackup Measure `json:"reference_backup,omitzero"`
	RefList   Measure `json:"reference_list,omitzero"`
}

func run(n int, pointsFlag string, nfiles, ndirs int, change float64, cleanup int, scratch, out string) error {
	ctx := context.Background()
	points := map[int]bool{}
	for _, p := range strings.Split(pointsFlag, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 1 {
			return fmt.Errorf("-at: %q is not a backup number", p)
		}
		points[v] = true
	}
	keep := scratch != "" // -dir: nothing is removed at the end
	if scratch == "" {
		d, err := os.MkdirTemp("", "backupd-history-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		scratch = d
	}
	bin, err := s3test.FindBinary()
	if err != nil {
		return err
	}
	// The S3 server is another machine in real use. Here it shares the
	// client's disk: by the 1,000th backup, creating the client's cache
	// files took 80 ms of the nine measured backups' 470 ms of CPU (the
	// profile's open calls), where at the 10th none showed. My reading,
	// not traced in the kernel: on an ext4 without a journal (this VM's)
	// a new inode is searched past those freed in the last minute, and
	// the server's own files are most of those. Its objects go to memory.
	if s3Dir == "" {
		s3Dir = filepath.Join(scratch, "s3")
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			d, err := os.MkdirTemp("/dev/shm", "backupd-history-s3-")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(d)
			}
			s3Dir = d
		}
	}
	fmt.Printf("S3 objects in %s, the client's cache and tree in %s\n", s3Dir, scratch)
	srv, err := s3test.StartServer(bin, s3Dir)
	if err != nil {
		return err
	}
	defer srv.Stop()
	be, err := s3.New(ctx, srv.Config("history", "repo"))
	if err != nil {
		return err
	}
	tm := newTimed(be)
	counted := fault.New(tm)
	creds := repository.Credentials{Password: []byte("history")}
	kdf := repository.TestKDF() // a scratch repository: cheap key stretching
	if !resume {
		if _, err := repository.Init(ctx, counted, repository.InitOptions{Wrapping: repository.Wrapping{Password: creds.Password, KDF: &kdf}}); err != nil {
			return err
		}
	}
	cacheRoot := filepath.Join(scratch, "cache")
	open := func() (*repository.Repository, error) {
		r, err := repository.Open(ctx, counted, creds)
		if err != nil {
			return nil, err
		}
		c, err := repository.OpenCache(cacheRoot, r.Config().ID)
		if err != nil {
			return nil, err
		}
		r.SetCache(c)
		return r, nil
	}
	src := filepath.Join(scratch, "tree")
	rng := rand.New(rand.NewSource(1))
	first := 1
	var paths []string
	if resume {
		if paths, err = filepath.Glob(filepath.Join(src, "*", "*")); err != nil || len(paths) == 0 {
			return fmt.Errorf("-resume: no tree in %s (%v)", src, err)
		}
		r, err := open()
		if err != nil {
			return fmt.Errorf("-resume: %w", err)
		}
		ms, _, err := r.Manifests(ctx)
		if err != nil {
			return fmt.Errorf("-resume: %w", err)
		}
		first = len(ms) + 1
		rng = rand.New(rand.NewSource(int64(first)))
		fmt.Printf("resuming after backup %d\n", len(ms))
	} else if paths, err = makeTree(src, nfiles, ndirs, rng); err != nil {
		return err
	}
	comps := []backup.Component{{Name: "data", Paths: []string{src}}}
	measureTraced := func(fn func() error, trace bool) (Measure, error) {
		return measureWith(counted, tm, trace, fn)
	}
	var ref *reference
	if withRef && !resume {
		if ref, err = newReference(ctx, srv, s3Dir, scratch, nfiles, ndirs, change, creds, kdf); err != nil {
			return err
		}
	}
	measure := func(fn func() error) (Measure, error) { return measureTraced(fn, false) }
	var results []Point
	fmt.Printf("history: %d backups of %d files in %d directories, %.1f%% rewritten between them, cleanup every %d; S3 = versitygw\n",
		n, nfiles, ndirs, change, cleanup)
	fmt.Printf("%8s %10s %9s %10s %9s %10s %9s %8s %6s %5s %7s %10s\n", "backups", "backup_s", "backup_rq", "list_s", "list_rq", "all_s", "all_rq", "indexes", "loose", "sets", "packs", "stored_MB")
	// the repeat backups ending at each checkpoint are measured
	measuring := func(i int) bool {
		for p := range points {
			if i <= p && i > p-repeat {
				return true
			}
		}
		return false
	}
	var backups []Measure
	var backupProf *os.File // the profile of the backups measured at the next checkpoint
	began := time.Now()
	for i := first; i <= n; i++ {
		if i > 1 {
			if err := mutate(paths, change, rng); err != nil {
				return err
			}
		}
		var r *repository.Repository
		do := func() error {
			var err error
			if r, err = open(); err != nil {
				return err
			}
			_, err = backup.Run(ctx, r, backup.Options{Type: backup.Incremental, Components: comps, Host: "history"})
			return err
		}
		// the backups ending at a checkpoint are measured (their median
		// is reported): one backup's time on this machine varies by half
		if !measuring(i) {
			if err := do(); err != nil {
				return fmt.Errorf("backup %d: %w", i, err)
			}
		} else {
			if profileDir != "" && backupProf == nil {
				f, err := os.Create(filepath.Join(profileDir, fmt.Sprintf("backup-%d.pprof", i+repeat-1)))
				if err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				backupProf = f
			}
			m, err := measureTraced(do, traceRequests && points[i])
			if err != nil {
				return fmt.Errorf("backup %d: %w", i, err)
			}
			backups = append(backups, m)
			if traceRequests && points[i] {
				fmt.Printf("  backup %d: %.2f ms, %.2f ms in S3 requests:\n%s", i, m.Seconds*1000, m.S3Seconds*1000, tm.report())
			}
		}
		if points[i] && backupProf != nil {
			pprof.StopCPUProfile()
			backupProf.Close()
			backupProf = nil
		}
		if points[i] {
			p := Point{Backups: i, Backup: median(backups)}
			backups = nil
			// what `repo list --all` and `repo list` do, each with a
			// new handle, as a command would
			all := func() error {
				lr, err := open()
				if err != nil {
					return err
				}
				ms, errs, err := lr.Manifests(ctx)
				if err == nil && (len(errs) > 0 || len(ms) != i) {
					err = fmt.Errorf("listed %d backups (%d unreadable), want %d", len(ms), len(errs), i)
				}
				return err
			}
			last := func() error {
				lr, err := open()
				if err != nil {
					return err
				}
				// one more than shown: whether older ones were left out
				ms, errs, err := lr.NewestManifests(ctx, lastN+1, nil)
				if err == nil && (len(errs) > 0 || len(ms) != min(i, lastN+1)) {
					err = fmt.Errorf("the newest %d: listed %d (%d unreadable)", lastN+1, len(ms), len(errs))
				}
				return err
			}
			// Each series back to back, the listings of the newest
			// first, as the reference's are. Before 2026-12-07 (night)
			// each listing followed a `repo list --all`, which at 10,000
			// reads 10,000 manifests (23 to 41 ms), where a new command's
			// process follows nothing (at 10 both read the same 10): it
			// measured 1.3x to 1.5x the reference's listing at 10,000,
			// where 500 of each, alternated in one process, took the
			// same. See bench/README.md, case D.
			var lists, alls []Measure
			for k := 0; k < repeat; k++ {
				m, err := measure(last)
				if err != nil {
					return fmt.Errorf("list at %d: %w", i, err)
				}
				lists = append(lists, m)
			}
			if traceRequests {
				m, err := measureTraced(last, true)
				if err != nil {
					return err
				}
				fmt.Printf("  repo list at %d: %.2f ms, %.2f ms in S3 requests:\n%s", i, m.Seconds*1000, m.S3Seconds*1000, tm.report())
			}
			for k := 0; k < repeat; k++ {
				m, err := measure(all)
				if err != nil {
					return fmt.Errorf("list --all at %d: %w", i, err)
				}
				alls = append(alls, m)
			}
			p.List, p.All = median(lists), median(alls)
			if profileDir != "" {
				if err := profile(fmt.Sprintf("list-%d.pprof", i), 100, last); err != nil {
					return err
				}
				if err := profile(fmt.Sprintf("all-%d.pprof", i), 10, all); err != nil {
					return err
				}
			}
			if ref != nil {
				if p.RefBackup, p.RefList, err = ref.measure(ctx); err != nil {
					return err
				}
			}
			p.IndexFiles = count(ctx, be, "index/", nil)
			p.LooseManifests = count(ctx, be, "manifests/", nil)
			p.ManifestSets = count(ctx, be, "manifest-sets/", nil)
			p.Packs = count(ctx, be, "data/", &p.StoredBytes)
			results = append(results, p)
			fmt.Printf("%8d %10.3f %9d %10.3f %9d %10.3f %9d %8d %6d %5d %7d %10.1f   (%s elapsed)\n", i, p.Backup.Seconds, p.Backup.Requests,
				p.List.Seconds, p.List.Requests, p.All.Seconds, p.All.Requests, p.IndexFiles, p.LooseManifests, p.ManifestSets, p.Packs, float64(p.StoredBytes)/1e6, time.Since(began).Round(time.Second))
			if ref != nil {
				fmt.Printf("%8s %10.3f %9d %10.3f %9d   (reference: %d backups, measured beside it)\n", "ref", p.RefBackup.Seconds, p.RefBackup.Requests, p.RefList.Seconds, p.RefList.Requests, refAt)
			}
		}
		if cleanup > 0 && i%cleanup == 0 {
			// S3 times have whole seconds: a writer that ended in the
			// second the collection starts counts as still running (and
			// holds back every pack written up to two minutes before it
			// started). A scheduled cleanup is not that close to a backup.
			time.Sleep(1100 * time.Millisecond)
			g, err := open()
			if err != nil {
				return err
			}
			res, err := repository.GC(ctx, g, repository.GCOptions{SafetyWindow: 0, Repack: &repository.RepackOptions{}})
			if err != nil {
				return fmt.Errorf("cleanup after %d: %w", i, err)
			}
			if verbose {
				fmt.Printf("cleanup after %d: %d packs, %d deleted, %d too young, %d open writers; repack %+v\n", i, res.Packs, res.Deleted, res.TooYoung, res.OpenWriters, *res.Repack)
			}
		}
	}
	printRequests(results)
	if out != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(out, b, 0o644); err != nil {
			return err
		}
	}
	if !judge(results) {
		return errors.New("a target of case D is missed")
	}
	return nil
}

func printRequests(results []Point) {
	if len(results) == 0 {
		return
	}
	fmt.Printf("requests by kind (backup | list | list --all):\n")
	for _, p := range results {
		fmt.Printf("%8d  %s | %s | %s\n", p.Backups, ops(p.Backup.ByOp), ops(p.List.ByOp), ops(p.All.ByOp))
	}
	first, last := results[0], results[len(results)-1]
	fmt.Printf("ratio %d/%d: backup time %.2f, requests %.2f; list time %.2f, requests %.2f; list --all time %.2f, requests %.2f\n", last.Backups, first.Backups,
		last.Backup.Seconds/first.Backup.Seconds, float64(last.Backup.Requests)/float64(first.Backup.Requests),
		last.List.Seconds/first.List.Seconds, float64(last.List.Requests)/float64(first.List.Requests),
		last.All.Seconds/first.All.Seconds, float64(last.All.Requests)/float64(first.All.Requests))
}

// judge reports case D's targets at the last checkpoint against the
// first: the backup and repo list take at most 1.3x the time and make no
// more requests. false: one is missed.
func judge(results []Point) bool {
	if len(results) < 2 {
		return true
	}
	first, last := results[0], results[len(results)-1]
	if last.RefBackup.Seconds > 0 {
		// beside the targets, judged as they are set: the machine's
		// drift between the first checkpoint and the last
		fmt.Printf("reference (%d backups) beside %d and beside %d: backup %.3f -> %.3f s, repo list %.3f -> %.3f s; at %d against it: backup %.2fx, repo list %.2fx\n",
			refAt, first.Backups, last.Backups, first.RefBackup.Seconds, last.RefBackup.Seconds, first.RefList.Seconds, last.RefList.Seconds,
			last.Backups, last.Backup.Seconds/last.RefBackup.Seconds, last.List.Seconds/last.RefList.Seconds)
	}
	ok := true
	for _, c := range []struct {
		what     string
		from, to Measure
	}{{"backup", first.Backup, last.Backup}, {"repo list", first.List, last.List}} {
		r := c.to.Seconds / c.from.Seconds
		verdict := "met"
		if r > 1.3 || c.to.Requests > c.from.Requests {
			verdict, ok = "MISSED", false
		}
		fmt.Printf("target: %s at %d within 1.3x its time at %d and no more requests: %.2fx, %d -> %d requests: %s\n",
			c.what, last.Backups, first.Backups, r, c.from.Requests, c.to.Requests, verdict)
	}
	return ok
}

func ops(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func count(ctx context.Context, be storage.Backend, prefix string, bytes *int64) int {
	n := 0
	be.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		n++
		if bytes != nil {
			*bytes += oi.Size
		}
		return nil
	})
	return n
}

func makeTree(root string, nfiles, ndirs int, rng *rand.Rand) ([]string, error) {
	var paths []string
	for i := 0; i < nfiles; i++ {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i%ndirs))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		p := filepath.Join(dir, fmt.Sprintf("f%05d", i))
		if err := writeRandom(p, 200+rng.Intn(2000), rng); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func mutate(paths []string, pct float64, rng *rand.Rand) error {
	k := max(1, int(float64(len(paths))*pct/100))
	for _, i := range rng.Perm(len(paths))[:k] {
		if err := writeRandom(paths[i], 200+rng.Intn(2000), rng); err != nil {
			return err
		}
	}
	return nil
}

func writeRandom(p string, n int, rng *rand.Rand) error {
	b := make([]byte, n)
	rng.Read(b)
	return os.WriteFile(p, b, 0o644)
}
