package backup

import (
	"context"
	"os"
	"path/filepath"
	"sync"

	"backupd/sources"
)

// prefetchMetadata walks the component's directories ahead of the real
// walk, with several goroutines, only to bring directory entries and inodes
// into the kernel's caches. The real walk is sequential (it builds trees in
// order); on a cold cache it would otherwise wait for one disk read at a
// time. It stops when ctx ends or every directory has been visited.
func prefetchMetadata(ctx context.Context, roots []string, m *sources.Matcher, workers int) {
	dirs := make(chan string, 4096)
	var pending sync.WaitGroup
	push := func(d string) {
		pending.Add(1)
		select {
		case dirs <- d:
		default:
			pending.Done() // queue full: the real walk will read it itself
		}
	}
	for _, r := range roots {
		push(r)
	}
	go func() { pending.Wait(); close(dirs) }()
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range dirs {
				if ctx.Err() == nil {
					f, err := os.Open(d)
					if err == nil {
						names, _ := f.Readdirnames(-1)
						f.Close()
						for _, n := range names {
							p := filepath.Join(d, n)
							fi, err := os.Lstat(p)
							if err == nil && fi.IsDir() && !m.Excluded(p) && ctx.Err() == nil {
								push(p)
							}
						}
					}
				}
				pending.Done()
			}
		}()
	}
	wg.Wait()
}
