package sources

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"sync"
	"syscall"

	"backupd/repository"
)

// NodeFromInfo describes the file at abs (already lstat'ed as fi) as a tree
// node, without content.
func NodeFromInfo(abs string, fi fs.FileInfo) (*repository.Node, error) {
	return nodeFrom(fi, func() (string, error) { return os.Readlink(abs) })
}

func nodeFrom(fi fs.FileInfo, readlink func() (string, error)) (*repository.Node, error) {
	n := &repository.Node{Name: fi.Name(), Mode: fi.Mode(), ModTime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		n.UID, n.GID = st.Uid, st.Gid
		n.User, n.Group = userName(st.Uid), groupName(st.Gid)
		n.ChangeTime = st.Ctim.Sec*1e9 + st.Ctim.Nsec
		n.Inode, n.DeviceID, n.Links = st.Ino, uint64(st.Dev), uint64(st.Nlink)
		n.Rdev = uint64(st.Rdev)
		if fi.Mode().IsRegular() && st.Blocks*512 < st.Size {
			n.Sparse = true
		}
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		n.Type = repository.NodeFile
		n.Size = uint64(fi.Size())
	case m.IsDir():
		n.Type = repository.NodeDir
	case m&fs.ModeSymlink != 0:
		n.Type = repository.NodeSymlink
		t, err := readlink()
		if err != nil {
			return nil, err
		}
		n.LinkTarget = t
	case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice != 0:
		n.Type = repository.NodeCharDev
	case m&fs.ModeDevice != 0:
		n.Type = repository.NodeDev
	case m&fs.ModeNamedPipe != 0:
		n.Type = repository.NodeFifo
	case m&fs.ModeSocket != 0:
		n.Type = repository.NodeSocket
	default:
		return nil, fmt.Errorf("unsupported file type %v", m.Type())
	}
	if n.Type != repository.NodeDir {
		// Only links between regular files are restored as links.
		if n.Type != repository.NodeFile || n.Links < 2 {
			n.Links = 0
		}
	} else {
		n.Links = 0
	}
	return n, nil
}

var (
	namesMu sync.Mutex
	users   = map[uint32]string{}
	groups  = map[uint32]string{}
)

func userName(uid uint32) string {
	namesMu.Lock()
	defer namesMu.Unlock()
	if n, ok := users[uid]; ok {
		return n
	}
	n := ""
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		n = u.Username
	}
	users[uid] = n
	return n
}

func groupName(gid uint32) string {
	namesMu.Lock()
	defer namesMu.Unlock()
	if n, ok := groups[gid]; ok {
		return n
	}
	n := ""
	if g, err := user.LookupGroupId(strconv.Itoa(int(gid))); err == nil {
		n = g.Name
	}
	groups[gid] = n
	return n
}
