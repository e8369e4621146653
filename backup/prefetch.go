package backup

import (
	"context"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"backupd/sources"
)

// prefetchWorkers: how many directories the prefetch reads at once. Its
// goroutines wait on the disk, not the CPU, and a deeper queue of reads
// keeps a virtual disk busier: a cold unchanged re-backup of the Go tree
// (15,036 files) took a median of 0.42 s with 4 and 0.38 s with 32 (six
// interleaved rounds on a 2-core VM; 64 gave nothing more).
const prefetchWorkers = 32

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
			buf := make([]byte, 32<<10)
			for d := range dirs {
				if ctx.Err() == nil {
					// Only caches are warmed here, but a symlink at the
					// final element is still not followed (the children
					// are stat'ed relative to the directory's descriptor,
					// as the real walk does).
					fd, err := openat(unix.AT_FDCWD, d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
					if err == nil {
						names, _ := sources.ReadNames(fd, buf)
						for _, n := range names {
							var st unix.Stat_t
							p := filepath.Join(d, n)
							err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW)
							if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && !m.Excluded(p) && ctx.Err() == nil {
								push(p)
							}
						}
						unix.Close(fd)
					}
				}
				pending.Done()
			}
		}()
	}
	wg.Wait()
}
