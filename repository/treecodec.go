package repository

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"math"
	"strconv"
	"unicode/utf8"
)

// Trees are JSON (the format document's; any JSON library reads them), and
// a tree's id is the hash of its encoding, so an unchanged directory must
// encode to the same bytes it did before. encoding/json's reflection made
// tree coding the largest cost of an unchanged backup (a third of its CPU),
// so the canonical form is written and read here by hand:
//
//   - appendTree writes exactly the bytes json.Marshal writes for a Tree
//     (field order, omitempty, HTML-safe string escapes, U+FFFD for
//     invalid UTF-8); FuzzTreeEncoding holds it to that.
//   - parseTree reads that canonical form (keys in field order, no
//     whitespace) and gives up on anything else, which json.Unmarshal then
//     decodes; FuzzTreeDecoding holds its results equal to json.Unmarshal's.

// appendTree appends t's JSON encoding to b.
func appendTree(b []byte, t *Tree) []byte {
	b = append(b, `{"nodes":`...)
	if t.Nodes == nil {
		return append(b, "null}"...)
	}
	b = append(b, '[')
	for i, n := range t.Nodes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNode(b, n)
	}
	return append(b, "]}"...)
}

func appendNode(b []byte, n *Node) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"name":`...)
	b = appendJSONString(b, n.Name)
	if nb := wireBytes(n.Name, n.NameBytes); len(nb) > 0 { // omitempty, as encoding/json
		b = append(b, `,"name_bytes":`...)
		b = appendJSONBytes(b, nb)
	}
	b = append(b, `,"type":`...)
	b = appendJSONString(b, n.Type)
	b = append(b, `,"mode":`...)
	b = strconv.AppendUint(b, uint64(n.Mode), 10)
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(n.UID), 10)
	b = append(b, `,"gid":`...)
	b = strconv.AppendUint(b, uint64(n.GID), 10)
	if n.User != "" {
		b = append(b, `,"user":`...)
		b = appendJSONString(b, n.User)
	}
	if n.Group != "" {
		b = append(b, `,"group":`...)
		b = appendJSONString(b, n.Group)
	}
	b = append(b, `,"mtime":`...)
	b = strconv.AppendInt(b, n.ModTime, 10)
	if n.AccessTime != 0 {
		b = append(b, `,"atime":`...)
		b = strconv.AppendInt(b, n.AccessTime, 10)
	}
	if n.ChangeTime != 0 {
		b = append(b, `,"ctime":`...)
		b = strconv.AppendInt(b, n.ChangeTime, 10)
	}
	for _, f := range [...]struct {
		key string
		v   uint64
	}{{`,"inode":`, n.Inode}, {`,"device":`, n.DeviceID}, {`,"links":`, n.Links}, {`,"rdev":`, n.Rdev}, {`,"size":`, n.Size}} {
		if f.v != 0 {
			b = append(b, f.key...)
			b = strconv.AppendUint(b, f.v, 10)
		}
	}
	if n.Sparse {
		b = append(b, `,"sparse":true`...)
	}
	if len(n.Content) > 0 {
		b = append(b, `,"content":[`...)
		for i, id := range n.Content {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONID(b, id)
		}
		b = append(b, ']')
	}
	if n.LinkTarget != "" {
		b = append(b, `,"target":`...)
		b = appendJSONString(b, n.LinkTarget)
	}
	if tb := wireBytes(n.LinkTarget, n.TargetBytes); len(tb) > 0 {
		b = append(b, `,"target_bytes":`...)
		b = appendJSONBytes(b, tb)
	}
	if n.Subtree != nil {
		b = append(b, `,"subtree":`...)
		b = appendJSONID(b, *n.Subtree)
	}
	return append(b, '}')
}

// wireBytes is what the encoding carries in a _bytes field beside string
// s: s's bytes when they are not UTF-8 (a JSON string would change them),
// else what the field holds already (nothing, in trees being written).
func wireBytes(s string, field []byte) []byte {
	if len(field) == 0 && !utf8.ValidString(s) {
		return []byte(s)
	}
	return field
}

// appendJSONBytes writes b as encoding/json writes a []byte: standard
// base64 in a string.
func appendJSONBytes(b, raw []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, raw)
	return append(b, '"')
}

func appendJSONID(b []byte, id ID) []byte {
	b = append(b, '"')
	b = hex.AppendEncode(b, id[:])
	return append(b, '"')
}

const lowerHex = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does with HTML escaping on.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', lowerHex[c>>4], lowerHex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', lowerHex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// decodeTreeJSON decodes a tree blob: the canonical form by hand, anything
// else with encoding/json.
func decodeTreeJSON(b []byte) (*Tree, error) {
	if t, ok := parseTree(b); ok {
		return t, nil
	}
	var t Tree
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// treeParser reads the canonical encoding; any surprise sets bad (the
// caller then lets encoding/json decide what the bytes mean).
type treeParser struct {
	b   []byte
	i   int
	bad bool
	// strings seen more than once in a tree (types, owners) share memory
	interned map[string]string
}

func parseTree(b []byte) (*Tree, bool) {
	p := &treeParser{b: b}
	if !p.lit(`{"nodes":[`) {
		return nil, false
	}
	var nodes []Node
	if !p.lit("]") {
		for {
			var n Node
			p.node(&n)
			if p.bad {
				return nil, false
			}
			nodes = append(nodes, n)
			if p.lit(",") {
				continue
			}
			if !p.lit("]") {
				return nil, false
			}
			break
		}
	}
	if !p.lit("}") || p.i != len(b) {
		return nil, false
	}
	t := &Tree{Nodes: make([]*Node, len(nodes))}
	for i := range nodes {
		t.Nodes[i] = &nodes[i]
	}
	return t, true
}

func (p *treeParser) lit(s string) bool {
	if p.bad || len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// The keys of a node in the order appendNode writes them.
var nodeKeys = [...]string{"name", "name_bytes", "type", "mode", "uid", "gid", "user", "group", "mtime", "atime",
	"ctime", "inode", "device", "links", "rdev", "size", "sparse", "content", "target", "target_bytes", "subtree"}

func (p *treeParser) node(n *Node) {
	if !p.lit("{") {
		p.bad = true
		return
	}
	next := 0 // keys must come in order, each at most once
	for first := true; ; first = false {
		if p.lit("}") {
			return
		}
		if !first && !p.lit(",") {
			p.bad = true
			return
		}
		if !p.lit(`"`) {
			p.bad = true
			return
		}
		k := next
		for k < len(nodeKeys) && !p.lit(nodeKeys[k]+`":`) {
			k++
		}
		if k == len(nodeKeys) {
			p.bad = true
			return
		}
		next = k + 1
		switch nodeKeys[k] {
		case "name":
			n.Name = p.str(false)
		case "name_bytes":
			n.NameBytes = p.base64()
		case "type":
			n.Type = p.str(true)
		case "mode":
			n.Mode = fs.FileMode(p.uint(32))
		case "uid":
			n.UID = uint32(p.uint(32))
		case "gid":
			n.GID = uint32(p.uint(32))
		case "user":
			n.User = p.str(true)
		case "group":
			n.Group = p.str(true)
		case "mtime":
			n.ModTime = p.int()
		case "atime":
			n.AccessTime = p.int()
		case "ctime":
			n.ChangeTime = p.int()
		case "inode":
			n.Inode = p.uint(64)
		case "device":
			n.DeviceID = p.uint(64)
		case "links":
			n.Links = p.uint(64)
		case "rdev":
			n.Rdev = p.uint(64)
		case "size":
			n.Size = p.uint(64)
		case "sparse":
			switch {
			case p.lit("true"):
				n.Sparse = true
			case p.lit("false"):
				n.Sparse = false
			default:
				p.bad = true
			}
		case "content":
			if !p.lit("[") {
				p.bad = true
				return
			}
			n.Content = []ID{}
			if p.lit("]") {
				break
			}
			for {
				n.Content = append(n.Content, p.id())
				if p.lit(",") {
					continue
				}
				if !p.lit("]") {
					p.bad = true
				}
				break
			}
		case "target":
			n.LinkTarget = p.str(false)
		case "target_bytes":
			n.TargetBytes = p.base64()
		case "subtree":
			id := p.id()
			n.Subtree = &id
		}
		if p.bad {
			return
		}
	}
}

// str reads a string of printable characters and valid UTF-8 with no
// escapes other than \uXXXX outside the surrogates (what appendJSONString
// writes for <, > and & and control characters).
func (p *treeParser) str(intern bool) string {
	if !p.lit(`"`) {
		p.bad = true
		return ""
	}
	start := p.i
	plain := true
	for ; p.i < len(p.b); p.i++ {
		c := p.b[p.i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			p.bad = true
			return ""
		}
		if c == '\\' {
			plain = false
			p.i++ // the escaped character is not the end
		} else if c >= utf8.RuneSelf {
			plain = false
		}
	}
	if p.i >= len(p.b) {
		p.bad = true
		return ""
	}
	raw := p.b[start:p.i]
	p.i++
	if plain {
		if intern {
			return p.intern(raw)
		}
		return string(raw)
	}
	if !utf8.Valid(raw) {
		p.bad = true // encoding/json replaces invalid bytes; let it
		return ""
	}
	out := make([]byte, 0, len(raw))
	for j := 0; j < len(raw); j++ {
		c := raw[j]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if j+1 >= len(raw) {
			p.bad = true
			return ""
		}
		j++
		switch raw[j] {
		case '"', '\\', '/':
			out = append(out, raw[j])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if j+4 >= len(raw) {
				p.bad = true
				return ""
			}
			v, err := strconv.ParseUint(string(raw[j+1:j+5]), 16, 32)
			if err != nil || (v >= 0xd800 && v <= 0xdfff) {
				p.bad = true // surrogates (pairs or not) are left to encoding/json
				return ""
			}
			out = utf8.AppendRune(out, rune(v))
			j += 4
		default:
			p.bad = true
			return ""
		}
	}
	if intern {
		return p.intern(out)
	}
	return string(out)
}

func (p *treeParser) intern(b []byte) string {
	if s, ok := p.interned[string(b)]; ok {
		return s
	}
	if p.interned == nil {
		p.interned = map[string]string{}
	}
	s := string(b)
	p.interned[s] = s
	return s
}

// uint reads a JSON integer that fits in bits bits.
func (p *treeParser) uint(bits int) uint64 {
	v := p.digits()
	if bits < 64 && v>>bits != 0 {
		p.bad = true
	}
	return v
}

// int reads a JSON integer that fits in an int64.
func (p *treeParser) int() int64 {
	neg := p.lit("-")
	v := p.digits()
	switch {
	case !neg && v <= math.MaxInt64:
		return int64(v)
	case neg && v <= math.MaxInt64+1:
		return int64(-v) // -(1<<63) wraps to itself
	}
	p.bad = true
	return 0
}

// digits reads the digits of a JSON integer (no fraction or exponent: those
// are left to encoding/json) that fits in 64 bits.
func (p *treeParser) digits() uint64 {
	start := p.i
	var v uint64
	for ; p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9'; p.i++ {
		d := uint64(p.b[p.i] - '0')
		if v > (math.MaxUint64-d)/10 {
			p.bad = true
			return 0
		}
		v = v*10 + d
	}
	n := p.i - start
	if n == 0 || n > 1 && p.b[start] == '0' || p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.bad = true
		return 0
	}
	return v
}

// base64 reads a []byte as encoding/json writes it (standard base64,
// padded); anything else is left to encoding/json.
func (p *treeParser) base64() []byte {
	if !p.lit(`"`) {
		p.bad = true
		return nil
	}
	start := p.i
	for p.i < len(p.b) && isBase64Char(p.b[p.i]) {
		p.i++ // (base64's decoder would skip a raw newline, which JSON refuses)
	}
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		p.bad = true
		return nil
	}
	enc := p.b[start:p.i]
	p.i++
	out := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
	n, err := base64.StdEncoding.Decode(out, enc)
	if err != nil {
		p.bad = true
		return nil
	}
	return out[:n]
}

func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '='
}

func (p *treeParser) id() ID {
	var id ID
	if len(p.b)-p.i < 66 || p.b[p.i] != '"' || p.b[p.i+65] != '"' {
		p.bad = true
		return id
	}
	if _, err := hex.Decode(id[:], p.b[p.i+1:p.i+65]); err != nil {
		p.bad = true
		return id
	}
	p.i += 66
	return id
}
