package sources

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// LstatAt and NodeAt describe every kind of entry exactly as os.Lstat and
// NodeFromInfo do (an incremental backup compares nodes across backups:
// any difference would re-read every file), without following symlinks.
func TestNodeAtMatchesNodeFromInfo(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), []byte("data"), 0o640)
	syscall.Chmod(filepath.Join(dir, "file"), 0o6751)
	os.Mkdir(filepath.Join(dir, "dir"), 0o755)
	syscall.Chmod(filepath.Join(dir, "dir"), 0o1777)
	os.Symlink("/etc/passwd", filepath.Join(dir, "link"))
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600)
	os.Link(filepath.Join(dir, "file"), filepath.Join(dir, "hard"))
	if os.Geteuid() == 0 {
		syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	names, err := ReadNames(fd, make([]byte, 64))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadDir(dir)
	var wantNames []string
	for _, e := range want {
		wantNames = append(wantNames, e.Name())
	}
	sort.Strings(names)
	if !reflect.DeepEqual(names, wantNames) {
		t.Fatalf("ReadNames %v, want %v", names, wantNames)
	}
	for _, n := range names {
		abs := filepath.Join(dir, n)
		wfi, err := os.Lstat(abs)
		if err != nil {
			t.Fatal(err)
		}
		gfi, err := LstatAt(fd, n)
		if err != nil {
			t.Fatal(err)
		}
		if gfi.Mode() != wfi.Mode() || gfi.Size() != wfi.Size() || !gfi.ModTime().Equal(wfi.ModTime()) || gfi.IsDir() != wfi.IsDir() || gfi.Name() != wfi.Name() {
			t.Errorf("%s: LstatAt %v %d %v, os.Lstat %v %d %v", n, gfi.Mode(), gfi.Size(), gfi.ModTime(), wfi.Mode(), wfi.Size(), wfi.ModTime())
		}
		wn, err := NodeFromInfo(abs, wfi)
		if err != nil {
			t.Fatal(err)
		}
		gn, err := NodeAt(fd, n, gfi)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gn, wn) {
			t.Errorf("%s: NodeAt %+v, NodeFromInfo %+v", n, gn, wn)
		}
	}
}
