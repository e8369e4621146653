package repository

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"reflect"
	"testing"
)

func sampleTree() *Tree {
	sub := ID{1, 2, 3}
	return &Tree{Nodes: []*Node{
		{Name: "a.go", Type: NodeFile, Mode: 0o644, UID: 1000, GID: 1000, User: "ann", Group: "staff",
			ModTime: 1700000000123456789, ChangeTime: 1700000000123456789, Inode: 42, DeviceID: 2049, Links: 1,
			Size: 1234, Content: []ID{{9}, {8, 7}}},
		{Name: "dir <&> \u2028 \t\"\\ é", Type: NodeDir, Mode: fs.ModeDir | 0o755, ModTime: -5, Subtree: &sub},
		{Name: "link", Type: NodeSymlink, Mode: fs.ModeSymlink | 0o777, LinkTarget: "../x\x01y"},
		{Name: "empty", Type: NodeFile, Content: []ID{}, Sparse: true, AccessTime: 1},
		{Name: "dev", Type: NodeCharDev, Rdev: 1 << 63, Size: 1<<64 - 1},
	}}
}

// wire is the tree encoding/json would be given to write what appendTree
// writes: names and targets that are not UTF-8 also in their _bytes fields.
func wire(tr *Tree) *Tree {
	if tr.Nodes == nil {
		return tr
	}
	out := &Tree{Nodes: make([]*Node, len(tr.Nodes))}
	for i, n := range tr.Nodes {
		if n == nil {
			continue
		}
		c := *n
		c.NameBytes, c.TargetBytes = wireBytes(n.Name, n.NameBytes), wireBytes(n.LinkTarget, n.TargetBytes)
		out.Nodes[i] = &c
	}
	return out
}

func TestTreeEncodingIsEncodingJSONs(t *testing.T) {
	for _, tr := range []*Tree{sampleTree(), {}, {Nodes: []*Node{}}, {Nodes: []*Node{nil}}} {
		want, err := json.Marshal(wire(tr))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendTree(nil, tr); !bytes.Equal(got, want) {
			t.Fatalf("appendTree:\n got %s\nwant %s", got, want)
		}
	}
}

func TestTreeDecodingTakesTheCanonicalFormByHand(t *testing.T) {
	b, err := EncodeTree(sampleTree())
	if err != nil {
		t.Fatal(err)
	}
	got, ok := parseTree(b)
	if !ok {
		t.Fatalf("the canonical form was left to encoding/json: %s", b)
	}
	var want Tree
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("parseTree differs from json.Unmarshal:\n got %+v\nwant %+v", got.Nodes, want.Nodes)
	}
	// Forms it leaves to encoding/json still decode.
	for _, in := range []string{
		`{"nodes": []}`, `{"Nodes":[]}`, `{"nodes":[{"type":"file","name":"x"}]}`,
		`{"nodes":[{"name":"x","name":"y","type":"file"}]}`, `{"nodes":[{"name":"\ud83d\ude00","type":"file"}]}`,
		`{"nodes":[{"name":"x","type":"file","extra":1}]}`,
	} {
		if _, ok := parseTree([]byte(in)); ok {
			t.Errorf("parseTree took %s", in)
		}
		if _, err := DecodeTree([]byte(in)); err != nil {
			t.Errorf("DecodeTree(%s): %v", in, err)
		}
	}
}

// FuzzTreeEncoding: appendTree writes what json.Marshal writes, and its
// output decodes to what json.Unmarshal makes of it.
func FuzzTreeEncoding(f *testing.F) {
	f.Add("a.go", "root", "../t", uint32(0o644), int64(1700000000123456789), uint64(1234), uint64(7), byte(0xff))
	f.Add("<&>\u2028\u2029\x7f\x00\xff\xfe", "é", "\\\"/", uint32(1<<31|0o755), int64(-1), uint64(0), uint64(1<<63), byte(0))
	f.Add("\xed\xa0\x80", "\U0001F600", "\b\f\n\r\t", uint32(0), int64(-1<<63), uint64(1<<64-1), uint64(1), byte(0x55))
	f.Fuzz(func(t *testing.T, name, user, target string, mode uint32, mtime int64, size, inode uint64, flags byte) {
		n := &Node{Name: name, Type: NodeFile, Mode: fs.FileMode(mode), User: user, ModTime: mtime, Size: size,
			Inode: inode, LinkTarget: target}
		if flags&1 != 0 {
			n.Content = []ID{{byte(size)}, {byte(inode)}}
		}
		if flags&2 != 0 {
			id := ID{flags}
			n.Subtree = &id
		}
		if flags&4 != 0 {
			n.Sparse = true
			n.AccessTime, n.ChangeTime = mtime, -mtime
		}
		if flags&8 != 0 {
			n.Group, n.UID, n.GID, n.DeviceID, n.Links, n.Rdev = user, mode, ^mode, size, inode, size^inode
		}
		tr := &Tree{Nodes: []*Node{n, {Name: target, Type: name}}}
		want, err := json.Marshal(wire(tr))
		if err != nil {
			t.Fatal(err)
		}
		got := appendTree(nil, tr)
		if !bytes.Equal(got, want) {
			t.Fatalf("appendTree:\n got %q\nwant %q", got, want)
		}
		checkDecoding(t, got)
		// and the names and targets come back byte for byte
		if ValidNodeName(name) == nil {
			enc, err := EncodeTree(&Tree{Nodes: []*Node{{Name: name, Type: NodeSymlink, LinkTarget: target}}})
			if err != nil {
				t.Fatal(err)
			}
			back, err := DecodeTree(enc)
			if err != nil {
				t.Fatalf("DecodeTree(%q): %v", enc, err)
			}
			if n := back.Nodes[0]; n.Name != name || n.LinkTarget != target {
				t.Fatalf("%q -> %q came back as %q -> %q", name, target, n.Name, n.LinkTarget)
			}
		}
	})
}

// Names and symlink targets that are not UTF-8 (Latin-1 file names, say)
// come back byte for byte; two that differ only there stay two. They had
// both been written as U+FFFD: the directory became unreadable ("duplicate
// name") and a lone one came back under another name.
func TestTreeKeepsNamesThatAreNotUTF8(t *testing.T) {
	tr := &Tree{Nodes: []*Node{
		{Name: "caf\xe9", Type: NodeFile, Size: 1},
		{Name: "caf\xe8", Type: NodeFile, Size: 2},
		{Name: "caf\u00e9", Type: NodeFile, Size: 3},
		{Name: "link", Type: NodeSymlink, LinkTarget: "../t\xff\xfe"},
	}}
	b, err := EncodeTree(tr)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := parseTree(b); !ok {
		t.Errorf("left to encoding/json: %s", b)
	}
	for _, dec := range []func([]byte) (*Tree, error){DecodeTree, func(b []byte) (*Tree, error) {
		// encoding/json's way (what a form the fast path leaves to it gets)
		return DecodeTree(bytes.Replace(b, []byte(`{"nodes":[`), []byte(`{"nodes": [`), 1))
	}} {
		got, err := dec(b)
		if err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		if len(got.Nodes) != 4 {
			t.Fatalf("%d nodes", len(got.Nodes))
		}
		for i, n := range got.Nodes {
			w := tr.Nodes[i]
			if n.Name != w.Name || n.LinkTarget != w.LinkTarget || n.Size != w.Size || n.NameBytes != nil || n.TargetBytes != nil {
				t.Fatalf("node %d: %+v, want %+v", i, n, w)
			}
		}
	}
	// a name_bytes that is no name is refused like one
	for _, bad := range []string{`{"nodes":[{"name":"x","name_bytes":"Lw==","type":"file","mode":0,"uid":0,"gid":0,"mtime":0}]}`,
		`{"nodes":[{"name":"x","name_bytes":"","type":"file","mode":0,"uid":0,"gid":0,"mtime":0}]}`} {
		if _, err := DecodeTree([]byte(bad)); err == nil {
			t.Errorf("DecodeTree took %s", bad)
		}
	}
}

// FuzzTreeDecoding: whatever parseTree accepts, json.Unmarshal accepts and
// decodes the same.
func FuzzTreeDecoding(f *testing.F) {
	b, _ := EncodeTree(sampleTree())
	f.Add(b)
	f.Add([]byte(`{"nodes":[]}`))
	f.Add([]byte(`{"nodes":[{"name":"\u003c\u0001","type":"file","mode":0,"uid":0,"gid":0,"mtime":-0,"content":[]}]}`))
	f.Add([]byte(`{"nodes":[{"name":"x","type":"dir","mode":4294967295,"uid":1,"gid":2,"mtime":9223372036854775807,"size":18446744073709551615,"sparse":false,"subtree":"ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"}]}`))
	f.Add([]byte(`{"nodes":[{"name":"x","name_bytes":"YQ==","type":"symlink","mode":0,"uid":0,"gid":0,"mtime":0,"target":"t","target_bytes":"/w=="}]}`))
	f.Add([]byte("{\"nodes\":[{\"name\":\"x\",\"name_bytes\":\"YQ\n==\",\"type\":\"file\"}]}"))
	f.Fuzz(func(t *testing.T, b []byte) { checkDecoding(t, b) })
}

func checkDecoding(t *testing.T, b []byte) {
	t.Helper()
	got, ok := parseTree(b)
	if !ok {
		return
	}
	var want Tree
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("parseTree accepted what json.Unmarshal refuses (%v): %q", err, b)
	}
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("parseTree and json.Unmarshal differ on %q:\n got %+v\nwant %+v", b, got.Nodes, want.Nodes)
	}
}

// SameNode decides whether a backup reuses a stored tree instead of
// encoding the directory again: a field it does not compare would let a
// change of that field alone go unrecorded.
func TestSameNodeComparesEveryField(t *testing.T) {
	id := ID{1}
	base := func() *Node { return &Node{Name: "n", Type: NodeFile} }
	if !SameNode(base(), base()) {
		t.Fatal("equal nodes reported different")
	}
	typ := reflect.TypeOf(Node{})
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		b := base()
		v := reflect.ValueOf(b).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Int64, reflect.Int:
			v.SetInt(7)
		case reflect.Uint32, reflect.Uint64:
			v.SetUint(7)
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Slice:
			switch f.Type.Elem().Kind() {
			case reflect.Uint8:
				v.SetBytes([]byte{0xff})
			default:
				v.Set(reflect.ValueOf([]ID{id}))
			}
		case reflect.Pointer:
			v.Set(reflect.ValueOf(&id))
		default:
			t.Fatalf("field %s of kind %s: teach this test (and SameNode) about it", f.Name, v.Kind())
		}
		if SameNode(base(), b) || SameNode(b, base()) {
			t.Errorf("SameNode ignores %s", f.Name)
		}
	}
	// values, not pointers, are compared
	a, b := base(), base()
	id2 := id
	a.Subtree, b.Subtree = &id, &id2
	a.Content, b.Content = []ID{id}, []ID{id2}
	if !SameNode(a, b) {
		t.Error("equal subtrees and contents at different addresses reported different")
	}
	b.Content = []ID{id, id}
	if SameNode(a, b) || SameNodes([]*Node{a}, []*Node{a, b}) {
		t.Error("different contents or listings reported the same")
	}
}

// A tree naming an entry twice is refused, in order (as EncodeTree
// writes) or not (a hostile repository's).
func TestDecodeTreeRefusesDuplicateNames(t *testing.T) {
	f := func(name string) *Node { return &Node{Name: name, Type: NodeFile} }
	for _, names := range [][]string{{"a", "a"}, {"a", "b", "a"}, {"b", "a", "b"}, {"c", "b", "a", "b"}} {
		tr := &Tree{}
		for _, n := range names {
			tr.Nodes = append(tr.Nodes, f(n))
		}
		if _, err := DecodeTree(appendTree(nil, tr)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%v: %v, want ErrCorrupt", names, err)
		}
	}
	// unsorted but unique is read (trees are sorted when written; a
	// reader does not depend on it)
	tr := &Tree{Nodes: []*Node{f("b"), f("a")}}
	got, err := DecodeTree(appendTree(nil, tr))
	if err != nil || len(got.Nodes) != 2 {
		t.Fatalf("unsorted unique names: %v", err)
	}
}
