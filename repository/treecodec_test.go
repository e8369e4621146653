package repository

import (
	"bytes"
	"encoding/json"
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

func TestTreeEncodingIsEncodingJSONs(t *testing.T) {
	for _, tr := range []*Tree{sampleTree(), {}, {Nodes: []*Node{}}, {Nodes: []*Node{nil}}} {
		want, err := json.Marshal(tr)
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
		want, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		got := appendTree(nil, tr)
		if !bytes.Equal(got, want) {
			t.Fatalf("appendTree:\n got %q\nwant %q", got, want)
		}
		checkDecoding(t, got)
	})
}

// FuzzTreeDecoding: whatever parseTree accepts, json.Unmarshal accepts and
// decodes the same.
func FuzzTreeDecoding(f *testing.F) {
	b, _ := EncodeTree(sampleTree())
	f.Add(b)
	f.Add([]byte(`{"nodes":[]}`))
	f.Add([]byte(`{"nodes":[{"name":"\u003c\u0001","type":"file","mode":0,"uid":0,"gid":0,"mtime":-0,"content":[]}]}`))
	f.Add([]byte(`{"nodes":[{"name":"x","type":"dir","mode":4294967295,"uid":1,"gid":2,"mtime":9223372036854775807,"size":18446744073709551615,"sparse":false,"subtree":"ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"}]}`))
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
