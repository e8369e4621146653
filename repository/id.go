package repository

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// ID names a blob (keyed hash of its plaintext), a pack or an index file
// (SHA-256 of the stored bytes).
type ID [32]byte

// String is the lowercase hex form used in object names and JSON.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short is the first 8 hex digits, for messages.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// IsZero reports whether id is the zero value.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses 64 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 64 {
		return id, fmt.Errorf("invalid id %q: want 64 hex digits", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("invalid id %q: %v", s, err)
	}
	return id, nil
}

func (id ID) MarshalJSON() ([]byte, error) {
	return appendJSONID(make([]byte, 0, 66), id), nil
}

func (id *ID) UnmarshalJSON(b []byte) error {
	// the form MarshalJSON writes, decoded directly: a nested Unmarshal
	// was a fifth of the CPU a listing of 1,000 backups took
	if len(b) == 66 && b[0] == '"' && b[65] == '"' {
		var p ID
		if _, err := hex.Decode(p[:], b[1:65]); err == nil {
			*id = p
			return nil
		}
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	p, err := ParseID(s)
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// BlobType separates file content from directory listings: they are packed
// apart so metadata can be checked without reading data.
type BlobType uint8

const (
	DataBlob BlobType = 1
	TreeBlob BlobType = 2
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}
