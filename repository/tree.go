package repository

import (
	"bytes"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
)

// Node types.
const (
	NodeFile    = "file"
	NodeDir     = "dir"
	NodeSymlink = "symlink"
	NodeDev     = "dev"     // block device
	NodeCharDev = "chardev" // character device
	NodeFifo    = "fifo"
	NodeSocket  = "socket"
)

// Node is one entry of a directory listing (a tree blob). Paths are never
// stored, only names, so a tree blob is the same wherever the directory is,
// and unchanged directories dedupe across backups.
type Node struct {
	Name string `json:"name"`
	// NameBytes carries a name that is not valid UTF-8 (JSON strings
	// cannot hold it: Name is then written with U+FFFD in its place, for
	// readers that only show names). Only in the encoding: DecodeTree
	// puts the bytes back into Name.
	NameBytes   []byte      `json:"name_bytes,omitempty"`
	Type        string      `json:"type"`
	Mode        fs.FileMode `json:"mode"` // Go's FileMode: permission, setuid/setgid/sticky and type bits
	UID         uint32      `json:"uid"`
	GID         uint32      `json:"gid"`
	User        string      `json:"user,omitempty"`
	Group       string      `json:"group,omitempty"`
	ModTime     int64       `json:"mtime"`           // ns since the epoch
	AccessTime  int64       `json:"atime,omitempty"` // ns; not recorded by default: it changes on every read and would defeat tree dedup
	ChangeTime  int64       `json:"ctime,omitempty"` // ns; used to detect change, not restored
	Inode       uint64      `json:"inode,omitempty"`
	DeviceID    uint64      `json:"device,omitempty"` // st_dev of the file system holding it
	Links       uint64      `json:"links,omitempty"`
	Rdev        uint64      `json:"rdev,omitempty"` // device nodes
	Size        uint64      `json:"size,omitempty"`
	Sparse      bool        `json:"sparse,omitempty"`
	Content     []ID        `json:"content,omitempty"`
	LinkTarget  string      `json:"target,omitempty"`
	TargetBytes []byte      `json:"target_bytes,omitempty"` // as NameBytes, for LinkTarget
	Subtree     *ID         `json:"subtree,omitempty"`
}

// Tree is a directory listing, sorted by name.
type Tree struct {
	Nodes []*Node `json:"nodes"`
}

// EncodeTree serialises a tree canonically (sorted), so equal directories
// produce equal blobs. Names and link targets that are not UTF-8 are kept
// whole in name_bytes and target_bytes (see Node.NameBytes).
func EncodeTree(t *Tree) ([]byte, error) {
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].Name < t.Nodes[j].Name })
	return appendTree(make([]byte, 0, 64+200*len(t.Nodes)), t), nil
}

// DecodeTree parses and validates a tree blob. Validation is what keeps a
// hostile repository from steering a restore: names are single path
// elements, unique, and types are known.
func DecodeTree(b []byte) (*Tree, error) {
	t, err := decodeTreeJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%w: tree: %v", ErrCorrupt, err)
	}
	// names in strictly ascending order (as EncodeTree writes them) are
	// unique; others are checked with a set
	ascending := true
	for i, n := range t.Nodes {
		if n == nil {
			return nil, fmt.Errorf("%w: tree has a null node", ErrCorrupt)
		}
		if n.NameBytes != nil {
			n.Name, n.NameBytes = string(n.NameBytes), nil
		}
		if n.TargetBytes != nil {
			n.LinkTarget, n.TargetBytes = string(n.TargetBytes), nil
		}
		if err := ValidNodeName(n.Name); err != nil {
			return nil, fmt.Errorf("%w: tree: %v", ErrCorrupt, err)
		}
		if i > 0 && t.Nodes[i-1].Name >= n.Name {
			ascending = false
		}
		switch n.Type {
		case NodeDir:
			if n.Subtree == nil {
				return nil, fmt.Errorf("%w: tree: directory %q without subtree", ErrCorrupt, n.Name)
			}
		case NodeFile, NodeSymlink, NodeDev, NodeCharDev, NodeFifo, NodeSocket:
		default:
			return nil, fmt.Errorf("%w: tree: %q has unknown type %q", ErrCorrupt, n.Name, n.Type)
		}
	}
	if !ascending {
		seen := make(map[string]bool, len(t.Nodes))
		for _, n := range t.Nodes {
			if seen[n.Name] {
				return nil, fmt.Errorf("%w: tree: duplicate name %q", ErrCorrupt, n.Name)
			}
			seen[n.Name] = true
		}
	}
	return t, nil
}

// ValidNodeName reports whether name is a single, safe path element.
func ValidNodeName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("unsafe file name %q", name)
	}
	return nil
}

// SameNode reports whether a and b are equal in every field. A backup
// reuses an unchanged directory's stored tree instead of encoding it
// again when every node is the same as the parent's: the stored tree then
// decodes to exactly the nodes this backup would write. (A tree written
// by a newer backupd may hold fields this one does not know; reused, it
// keeps them, as they were when that backup read the directory: a change
// of the directory's entries since then changes their ctime, which is
// compared.)
func SameNode(a, b *Node) bool {
	return a.Name == b.Name && bytes.Equal(a.NameBytes, b.NameBytes) && a.Type == b.Type &&
		a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID && a.User == b.User && a.Group == b.Group &&
		a.ModTime == b.ModTime && a.AccessTime == b.AccessTime && a.ChangeTime == b.ChangeTime &&
		a.Inode == b.Inode && a.DeviceID == b.DeviceID && a.Links == b.Links && a.Rdev == b.Rdev &&
		a.Size == b.Size && a.Sparse == b.Sparse && slices.Equal(a.Content, b.Content) &&
		a.LinkTarget == b.LinkTarget && bytes.Equal(a.TargetBytes, b.TargetBytes) &&
		(a.Subtree == nil) == (b.Subtree == nil) && (a.Subtree == nil || *a.Subtree == *b.Subtree)
}

// SameNodes reports whether two listings hold the same nodes in the same
// order.
func SameNodes(a, b []*Node) bool {
	return slices.EqualFunc(a, b, SameNode)
}
