package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"
)

// beneath is a directory held open by descriptor, below which the restore
// resolves paths without following a symbolic link in any element.
//
// os.Root is not enough: it follows every symlink that resolves inside
// the root, and a restore to the original location has "/" as its root,
// so any symlink a local user swaps in for a directory (-> /etc/profile.d)
// would be followed by a restore running as root.
type beneath struct {
	fd   int
	path string // for messages only; never used to open anything
}

// openTarget opens (creating what is missing, with create) a target directory given
// by the operator, walking from "/" one element at a time: a missing
// directory is made with mkdirat in the one above and opened with
// O_NOFOLLOW, so nobody can swap a link in between. A symlink on the way is
// followed only when root owns it and it sits in a directory that only
// root can change (/var/run -> /run); any other (a link a local user
// planted in /tmp) is refused, as is a symlink at the target itself.
func openTarget(dir string, create bool) (*beneath, error) {
	if !strings.HasPrefix(dir, "/") {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: errors.New("not an absolute path")}
	}
	cur, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: "/", Err: err}
	}
	els := strings.Split(strings.Trim(dir, "/"), "/")
	for i, el := range els {
		if el == "" || el == "." {
			continue
		}
		if el == ".." {
			unix.Close(cur)
			return nil, &fs.PathError{Op: "open", Path: dir, Err: errors.New("'..' in a target path")}
		}
		last := i == len(els)-1
		next, err := openTargetElem(cur, el, last, create)
		unix.Close(cur)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
		}
		cur = next
	}
	return &beneath{fd: cur, path: dir}, nil
}

// openTargetElem opens el in the directory at dfd, creating it when
// missing, following a symlink only as openTarget says.
func openTargetElem(dfd int, el string, last, create bool) (int, error) {
	const flags = unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	for try := 0; ; try++ {
		fd, err := openat(dfd, el, flags, 0)
		if err == nil {
			return fd, nil
		}
		if err == unix.ENOENT && create && try < 3 {
			if err := unix.Mkdirat(dfd, el, 0o700); err != nil && err != unix.EEXIST {
				return -1, err
			}
			continue
		}
		if err != unix.ELOOP && err != unix.ENOTDIR {
			return -1, err
		}
		var st, parent unix.Stat_t
		if unix.Fstatat(dfd, el, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || fileType(&st) != unix.S_IFLNK {
			return -1, fmt.Errorf("%s: %w", el, errNotFollowed)
		}
		if last {
			return -1, fmt.Errorf("%s: the target is a symbolic link: %w", el, errNotFollowed)
		}
		if unix.Fstat(dfd, &parent) != nil || st.Uid != 0 || parent.Uid != 0 || parent.Mode&0o022 != 0 {
			return -1, fmt.Errorf("%s: a symbolic link that root does not own in a directory only root can change: %w", el, errNotFollowed)
		}
		return openat(dfd, el, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
}

func (b *beneath) close() {
	if b != nil && b.fd >= 0 {
		unix.Close(b.fd)
		b.fd = -1
	}
}

// openDir opens the directory rel (slash-separated, relative) below b with
// flags (O_PATH or O_RDONLY), refusing a symlink in any element: openat2
// with RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH resolves it in one system call;
// where openat2 is missing, refused, or keeps failing with EAGAIN (it does
// while renames happen anywhere on the system), the path is walked one
// element at a time with O_NOFOLLOW, which is as strict.
func (b *beneath) openDir(rel string, flags int) (int, error) {
	if rel == "" || rel == "." {
		return unix.Openat(b.fd, ".", flags|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for try := 0; ; try++ {
		fd, err := unix.Openat2(b.fd, rel, &how)
		switch {
		case err == nil:
			return fd, nil
		case err == unix.EINTR || (err == unix.EAGAIN && try < 4):
			continue
		case err == unix.ENOSYS || err == unix.EPERM || err == unix.EAGAIN:
			// EPERM: a seccomp filter that does not know openat2
			return walkDir(b.fd, rel, flags)
		}
		return -1, dirError(rel, err)
	}
}

// walkDir opens rel below root one element at a time, each with
// O_NOFOLLOW|O_DIRECTORY from the descriptor of the one before.
func walkDir(root int, rel string, flags int) (int, error) {
	els := strings.Split(rel, "/")
	cur := root
	closeCur := func() {
		if cur != root {
			unix.Close(cur)
		}
	}
	for i, el := range els {
		if el == "" || el == "." {
			continue
		}
		if el == ".." {
			closeCur()
			return -1, dirError(rel, unix.EXDEV)
		}
		fl := unix.O_PATH
		if i == len(els)-1 {
			fl = flags
		}
		fd, err := openat(cur, el, fl|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		closeCur()
		if err != nil {
			return -1, dirError(rel, err)
		}
		cur = fd
	}
	if cur == root {
		return unix.Openat(root, ".", flags|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	return cur, nil
}

// errNotFollowed marks a path that ran into a symlink (or something that
// is no directory) where a directory was expected: the restore does not
// follow it, whoever put it there.
var errNotFollowed = errors.New("a symbolic link or non-directory is in the way (not followed)")

func dirError(rel string, err error) error {
	if err == unix.ELOOP || err == unix.ENOTDIR || err == unix.EXDEV {
		return &fs.PathError{Op: "open", Path: rel, Err: fmt.Errorf("%w: %w", errNotFollowed, err)}
	}
	return &fs.PathError{Op: "open", Path: rel, Err: err}
}

// openat retries on EINTR (opening a FIFO or a slow file system can be
// interrupted by the runtime's preemption signals).
func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// fileID identifies an inode: what the restore created or checked at a
// name, so metadata is only ever applied to that inode, and never to one
// swapped in under the same name (a hard link to /etc/shadow, say).
type fileID struct{ dev, ino uint64 }

func idOf(st *unix.Stat_t) fileID { return fileID{uint64(st.Dev), st.Ino} }

func (id fileID) known() bool { return id != fileID{} }

// isEmptyDir reports whether the directory open for reading at fd holds
// no entries, reading as little of it as that takes.
func isEmptyDir(fd int) (bool, error) {
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, err
		}
		if n <= 0 {
			return true, nil
		}
		if _, _, names := unix.ParseDirent(buf[:n], 1, nil); len(names) > 0 {
			return false, nil
		}
	}
}
