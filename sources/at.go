package sources

import (
	"io/fs"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"backupd/repository"
)

// The walks that must not follow a symlink swapped in for a directory
// (a backup reading /home as root, a restore writing into /) work from
// directory descriptors: each entry is looked at relative to its parent's
// descriptor, so no element of a path is ever resolved again by name.

// unix.Stat_t and syscall.Stat_t are the same kernel structure; fs.FileInfo
// users (NodeFromInfo) expect the latter.
var _ [unsafe.Sizeof(unix.Stat_t{}) - unsafe.Sizeof(syscall.Stat_t{})]byte
var _ [unsafe.Sizeof(syscall.Stat_t{}) - unsafe.Sizeof(unix.Stat_t{})]byte

// LstatAt describes the entry name of the directory open at dirfd, without
// following it if it is a symlink (fstatat with AT_SYMLINK_NOFOLLOW: the
// same cost as an lstat by path, without the path walk). Sys() is a
// *syscall.Stat_t, as from os.Lstat.
func LstatAt(dirfd int, name string) (fs.FileInfo, error) {
	si := &statInfo{name: name}
	for {
		err := unix.Fstatat(dirfd, name, (*unix.Stat_t)(unsafe.Pointer(&si.st)), unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
		}
		return si, nil
	}
}

// NodeAt is NodeFromInfo for the entry name of the directory open at
// dirfd (fi from LstatAt): a symlink's target is read relative to dirfd.
func NodeAt(dirfd int, name string, fi fs.FileInfo) (*repository.Node, error) {
	return nodeFrom(fi, func() (string, error) { return readlinkAt(dirfd, name) })
}

func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		b := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, b)
		if err == unix.EINTR {
			size /= 2
			continue
		}
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
		}
		if n < size {
			return string(b[:n]), nil
		}
	}
}

// ReadNames lists the directory open for reading at fd (without "." and
// ".."), using buf for the kernel's records.
func ReadNames(fd int, buf []byte) ([]string, error) {
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return names, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

type statInfo struct {
	name string
	st   syscall.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Sec, s.st.Mtim.Nsec) }
func (s *statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *statInfo) Sys() any           { return &s.st }

// Mode converts as os.Lstat does.
func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if s.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}
