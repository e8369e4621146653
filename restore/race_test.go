package restore

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// racer plays the local user: until stop closes, it keeps swapping
// directories and files inside src for symlinks (and hard links) into the
// victim, and back.
func racer(src, victim string, seed int64, stop <-chan struct{}, swaps *atomic.Int64) {
	rng := rand.New(rand.NewSource(seed))
	// not src itself: renaming it needs write access to its parent (an
	// ancestor of a configured path, /etc for /etc/app), which the local
	// user does not have; and it would change the parent's mtime, which
	// the test checks is untouched
	dirs := []string{"a", "a/b", "c", "extra"}
	files := []string{"a/f1", "a/f2", "a/b/f1", "c/f1", "c/hard", "top.txt", "a/fifo", "extra/f1"}
	for {
		select {
		case <-stop:
			return
		default:
		}
		if rng.Intn(2) == 0 {
			d := filepath.Join(src, dirs[rng.Intn(len(dirs))])
			if os.Rename(d, d+".r") != nil {
				runtime.Gosched()
				continue
			}
			target := victim
			if rng.Intn(2) == 0 {
				target = filepath.Join(victim, "b")
			}
			if os.Symlink(target, d) == nil {
				swaps.Add(1)
			}
			hold(rng)
			os.Remove(d) // the symlink (or whatever the restore made there)
			os.Rename(d+".r", d)
		} else {
			name := files[rng.Intn(len(files))]
			p := filepath.Join(src, name)
			if os.Rename(p, p+".r") != nil {
				runtime.Gosched()
				continue
			}
			vf := filepath.Join(victim, filepath.Base(name))
			if _, err := os.Lstat(vf); err != nil {
				vf = filepath.Join(victim, "secret")
			}
			var err error
			if rng.Intn(2) == 0 {
				err = os.Symlink(vf, p)
			} else {
				err = os.Link(vf, p)
			}
			if err == nil {
				swaps.Add(1)
			}
			hold(rng)
			os.Remove(p)
			os.Rename(p+".r", p)
		}
	}
}

// hold keeps a swap in place for a random while: from a yield (to hit a
// single system call's window) to a few hundred microseconds (to cover a
// whole step of the restore).
func hold(rng *rand.Rand) {
	if n := rng.Intn(4); n == 0 {
		runtime.Gosched()
	} else {
		time.Sleep(time.Duration(rng.Intn(100*n)) * time.Microsecond)
	}
}

// TestSymlinkRaceRestore: restores to "/" confined to a temporary source
// path (the code path of a restore to the original location), each raced
// by a goroutine swapping its directories and files for symlinks and
// hard links into a victim directory. Whatever each restore reports, the
// victim (content, modes, owners, times) must never change, and nothing
// may appear next to the source path. Bounded to about 3 seconds.
func TestSymlinkRaceRestore(t *testing.T) {
	base0 := t.TempDir()
	other := filepath.Join(base0, "other")
	write(t, filepath.Join(other, "o.txt"), "other\n", 0o644)
	f := newFixture(t, other)
	os.RemoveAll(other)
	victimBefore := state(t, f.victim)
	outsideBefore := f.outside(t)
	deadline := time.Now().Add(3 * time.Second)
	var swaps atomic.Int64
	iterations, failed, warned := 0, 0, 0
	for ; iterations < 200 && time.Now().Before(deadline); iterations++ {
		mirror := iterations%2 == 1
		if mirror { // untracked entries named like the victim's
			for _, n := range []string{"f1", "f2", "secret", "b/f1"} {
				write(t, filepath.Join(f.src, "extra", n), "untracked\n", 0o644)
			}
		}
		// one racer: two would follow each other's symlinks (renaming
		// src/a/f1 while the other has a -> victim renames victim/f1)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			racer(f.src, f.victim, int64(iterations), stop, &swaps)
		}()
		res, err := Run(context.Background(), f.repo, f.m, f.original(mirror))
		close(stop)
		wg.Wait()
		if err != nil {
			failed++
		} else if len(res.Warnings) > 1 { // the first names the refused other
			warned++
		}
		sameState(t, "victim", victimBefore, state(t, f.victim))
		if got := f.outside(t); got != outsideBefore {
			t.Fatalf("written outside the confine path: %s, was %s", got, outsideBefore)
		}
		if _, err := os.Lstat(other); !os.IsNotExist(err) {
			t.Fatalf("%s restored outside the confine path", other)
		}
		// start the next restore from an empty src (removing src
		// itself would change its parent)
		kids, _ := os.ReadDir(f.src)
		for _, k := range kids {
			if err := os.RemoveAll(filepath.Join(f.src, k.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	// one restore without the racer: the suite's restores are the real ones
	res, err := Run(context.Background(), f.repo, f.m, f.original(false))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(f.src, "a/b/f1")); string(b) != "restored a/b/f1\n" || res.Files == 0 {
		t.Fatalf("restore without racer: %q, %+v", b, res)
	}
	t.Logf("%d raced restores (%d swaps): %d ended with an error, %d with swap warnings; victim and outside unchanged",
		iterations, swaps.Load(), failed, warned)
	if iterations < 20 || swaps.Load() < int64(iterations) {
		t.Fatalf("too little racing to mean anything: %d restores, %d swaps", iterations, swaps.Load())
	}
}
