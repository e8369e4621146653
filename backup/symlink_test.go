package backup_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"backupd/backup"
	"backupd/repository"
)

const canary = "canary: root's secret\n"

// victimDir makes a directory an unprivileged user must not get into a
// backup: canary files, one nested, with names a source also has.
func victimDir(t *testing.T) string {
	v := filepath.Join(t.TempDir(), "victim")
	write(t, filepath.Join(v, "CANARY"), []byte(canary))
	write(t, filepath.Join(v, "f"), []byte(canary))
	write(t, filepath.Join(v, "x/CANARY2"), []byte(canary))
	return v
}

// leaks lists what of the victim made it into m: a name starting with
// CANARY, or a chunk with the canary's content.
func leaks(t testing.TB, repo *repository.Repository, m *repository.Manifest) []string {
	t.Helper()
	ctx := context.Background()
	bad := repo.BlobID([]byte(canary))
	var out []string
	var walk func(id repository.ID, dir string)
	walk = func(id repository.ID, dir string) {
		tree, err := repo.LoadTree(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tree.Nodes {
			p := dir + "/" + n.Name
			if strings.HasPrefix(n.Name, "CANARY") {
				out = append(out, p)
			}
			for _, c := range n.Content {
				if c == bad {
					out = append(out, p+" (canary content)")
				}
			}
			if n.Subtree != nil {
				walk(*n.Subtree, p)
			}
		}
	}
	for _, c := range m.Components {
		if c.Error == "" {
			walk(c.Tree, c.Name)
		}
	}
	return out
}

func backupOnce(t testing.TB, repo *repository.Repository, paths ...string) *repository.Manifest {
	t.Helper()
	m, err := backup.Run(context.Background(), repo, backup.Options{Type: backup.Full, Workers: 4,
		Components: []backup.Component{{Name: "data", Paths: paths}}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func hasWarning(m *repository.Manifest, s string) bool {
	for _, c := range m.Components {
		for _, w := range c.Warnings {
			if strings.Contains(w, s) {
				return true
			}
		}
	}
	return false
}

// A directory swapped (for a symlink to the victim, or for another
// directory) between its parent's listing and its opening is left out
// with a warning; a file swapped for a hard link to a victim file too.
// Also for a directory above the source path (the component's partial
// tree from /).
func TestBackupEntrySwappedAfterListing(t *testing.T) {
	cases := []struct {
		name, hookType, at string
		paths              []string
		swap               func(t *testing.T, p, victim string)
	}{
		{"dir->symlink", repository.NodeDir, "sub", nil, func(t *testing.T, p, v string) {
			os.Rename(p, p+".moved")
			if err := os.Symlink(v, p); err != nil {
				t.Fatal(err)
			}
		}},
		{"dir->other dir", repository.NodeDir, "sub", nil, func(t *testing.T, p, v string) {
			os.Rename(p, p+".moved")
			if err := os.Rename(v, p); err != nil {
				t.Fatal(err)
			}
		}},
		{"file->hard link", repository.NodeFile, "sub/f", nil, func(t *testing.T, p, v string) {
			os.Remove(p)
			if err := os.Link(filepath.Join(v, "CANARY"), p); err != nil {
				t.Fatal(err)
			}
		}},
		{"file->symlink", repository.NodeFile, "sub/f", nil, func(t *testing.T, p, v string) {
			os.Remove(p)
			if err := os.Symlink(filepath.Join(v, "CANARY"), p); err != nil {
				t.Fatal(err)
			}
		}},
		{"ancestor->symlink", repository.NodeDir, "sub", []string{"sub/x"}, func(t *testing.T, p, v string) {
			os.Rename(p, p+".moved")
			if err := os.Symlink(v, p); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo, _ := newRepo(t)
			src := t.TempDir()
			write(t, filepath.Join(src, "sub/f"), []byte("mine\n"))
			write(t, filepath.Join(src, "sub/x/g"), []byte("mine\n"))
			victim := victimDir(t)
			at := filepath.Join(src, c.at)
			swapped := false
			backup.SetTestHook(func(typ, abs string) {
				if typ == c.hookType && abs == at && !swapped {
					swapped = true
					c.swap(t, abs, victim)
				}
			})
			defer backup.SetTestHook(nil)
			paths := []string{src}
			for _, p := range c.paths {
				paths = []string{filepath.Join(src, p)}
			}
			m := backupOnce(t, repo, paths...)
			if !swapped {
				t.Fatal("the hook never ran")
			}
			if l := leaks(t, repo, m); len(l) > 0 {
				t.Fatalf("the victim got into the backup: %v", l)
			}
			if !hasWarning(m, "replaced") {
				t.Fatalf("no warning about the swap: %v", m.Components[0].Warnings)
			}
		})
	}
}

// TestSymlinkRaceBackup: backups raced by a goroutine swapping the
// source's subdirectories and files for symlinks into a victim directory
// holding canary files, and back. No backup may ever hold a canary's name
// or content. Bounded to about 3 seconds.
//
// No hard links here: one present when its directory is listed is simply
// a file of the source (and with fs.protected_hardlinks an unprivileged
// user cannot link a file of root's; this test runs as root and could).
// A hard link swapped in after the listing is in the test above.
func TestSymlinkRaceBackup(t *testing.T) {
	repo, _ := newRepo(t)
	src := t.TempDir()
	// directories long enough to list that a swap lands inside a listing,
	// with names the victim has too ("f", "x"): a lookup by path through a
	// swapped parent would find the canary
	var dirs, files []string
	for i := 0; i < 6; i++ {
		for _, d := range []string{fmt.Sprintf("d%d", i), fmt.Sprintf("d%d/x", i)} {
			dirs = append(dirs, d)
			for j := 0; j < 40; j++ {
				n := fmt.Sprintf("%s/n%02d", d, j)
				if j == 20 {
					n = d + "/f"
				}
				files = append(files, n)
				write(t, filepath.Join(src, n), []byte("mine "+n+"\n"))
			}
		}
	}
	victim := victimDir(t)
	deadline := time.Now().Add(3 * time.Second)
	var swaps atomic.Int64
	iterations, warned := 0, 0
	for ; iterations < 300 && time.Now().Before(deadline); iterations++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for {
				select {
				case <-stop:
					return
				default:
				}
				var p, target string
				if rng.Intn(4) != 0 {
					p, target = filepath.Join(src, dirs[rng.Intn(len(dirs))]), victim
				} else {
					p, target = filepath.Join(src, files[rng.Intn(len(files))]), filepath.Join(victim, "CANARY")
				}
				if os.Rename(p, p+".r") != nil {
					runtime.Gosched()
					continue
				}
				if os.Symlink(target, p) == nil {
					swaps.Add(1)
				}
				if n := rng.Intn(4); n == 0 {
					runtime.Gosched()
				} else {
					time.Sleep(time.Duration(rng.Intn(400*n)) * time.Microsecond)
				}
				os.Remove(p)
				os.Rename(p+".r", p)
			}
		}(int64(iterations))
		m := backupOnce(t, repo, src)
		close(stop)
		wg.Wait()
		if l := leaks(t, repo, m); len(l) > 0 {
			t.Fatalf("backup %d holds the victim's canary: %v (warnings %v)", iterations, l, m.Components[0].Warnings)
		}
		if len(m.Components[0].Warnings) > 0 {
			warned++
		}
	}
	t.Logf("%d raced backups (%d swaps), %d with warnings; none holds a canary", iterations, swaps.Load(), warned)
	if iterations < 10 || swaps.Load() < int64(iterations) {
		t.Fatalf("too little racing to mean anything: %d backups, %d swaps", iterations, swaps.Load())
	}
}
