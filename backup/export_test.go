package backup

import (
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"backupd/repository"
)

// OpenFileForTest exposes openFile to the external tests: it opens the
// file's directory by path (the test's own) and the file relative to it.
func OpenFileForTest(path string, node *repository.Node) (interface{ Close() error }, error) {
	dfd, err := unix.Open(filepath.Dir(path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	f, err := openFile(dfd, filepath.Base(path), node)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// SetTestHook sets the walk's hook (nil: none).
func SetTestHook(h func(nodeType, abs string)) { testHook = h }

// CountTreeReuses counts, until the returned function is called, the
// directories whose parent tree a backup reuses.
func CountTreeReuses() (count func() int64, stop func()) {
	var n atomic.Int64
	treeReusedHook = func() { n.Add(1) }
	return n.Load, func() { treeReusedHook = nil }
}
