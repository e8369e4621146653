package repository

import (
	"encoding/binary"
	"errors"
	"time"
)

// A manifest's compact binary form, kept only in the local cache beside
// the JSON it was decoded from (the JSON stays what the repository
// stores and what sets are made of). Decoding JSON costs about 20 µs a
// manifest here, so a listing of the newest 50 backups spent 1 to 2 ms
// of CPU in encoding/json, and one of 10,000 backups 200 ms; this form
// decodes in about a tenth of that.
//
// It is made from the manifest decoded from its verified JSON and gives
// back the same Manifest (reflect.DeepEqual; times as their JSON text, so
// their location is the one JSON decoding gives). Fields this backupd
// does not know are in the JSON only, as they are in a Manifest decoded
// from it. A form that does not decode is not an error: the JSON is.
const manifestBinVersion = 1

var errManifestBin = errors.New("not a manifest's binary form")

// manifestBin is m's binary form, or nil when a field has no JSON form
// (a time past year 9999), which a manifest read from JSON never has.
func manifestBin(m *Manifest) []byte {
	w := binWriter{b: make([]byte, 0, 256)}
	w.b = append(w.b, manifestBinVersion)
	w.varint(int64(m.Version))
	w.str(m.ID)
	w.str(m.Type)
	w.str(m.Parent)
	w.str(m.Base)
	w.str(m.Host)
	w.time(m.Started)
	w.time(m.Finished)
	w.str(m.Compression)
	w.count(m.Tags == nil, len(m.Tags))
	for k, v := range m.Tags {
		w.str(k)
		w.str(v)
	}
	w.count(m.Components == nil, len(m.Components))
	for i := range m.Components {
		c := &m.Components[i]
		w.str(c.Name)
		w.strs(c.Paths)
		w.strs(c.Include)
		w.strs(c.Exclude)
		w.b = append(w.b, c.Tree[:]...)
		w.stats(&c.Stats)
		w.strs(c.Warnings)
		w.str(c.Error)
	}
	w.str(m.Status)
	w.stats(&m.Stats)
	w.str(m.KeyID)
	if w.bad {
		return nil
	}
	return w.b
}

// decodeManifestBin reads what manifestBin wrote.
func decodeManifestBin(b []byte) (*Manifest, error) {
	if len(b) == 0 || b[0] != manifestBinVersion {
		return nil, errManifestBin
	}
	r := binReader{b: b[1:]}
	m := &Manifest{}
	m.Version = int(r.varint())
	m.ID = r.str()
	m.Type = r.str()
	m.Parent = r.str()
	m.Base = r.str()
	m.Host = r.str()
	m.Started = r.time()
	m.Finished = r.time()
	m.Compression = r.str()
	if n, ok := r.count(); ok {
		m.Tags = make(map[string]string, n)
		for i := 0; i < n && !r.bad; i++ {
			k := r.str()
			m.Tags[k] = r.str()
		}
	}
	if n, ok := r.count(); ok {
		m.Components = make([]ComponentManifest, n)
		for i := 0; i < n && !r.bad; i++ {
			c := &m.Components[i]
			c.Name = r.str()
			c.Paths = r.strs()
			c.Include = r.strs()
			c.Exclude = r.strs()
			copy(c.Tree[:], r.take(len(c.Tree)))
			r.stats(&c.Stats)
			c.Warnings = r.strs()
			c.Error = r.str()
		}
	}
	m.Status = r.str()
	r.stats(&m.Stats)
	m.KeyID = r.str()
	if r.bad || len(r.b) != 0 {
		return nil, errManifestBin
	}
	return m, nil
}

// manifestFromBin is backup id's manifest from its binary form, when the
// form decodes, names id and is of the manifest version this backupd
// reads; false: decode the JSON instead.
func manifestFromBin(bin []byte, id string) (*Manifest, bool) {
	m, err := decodeManifestBin(bin)
	if err != nil || m.ID != id || m.Version != manifestVersion {
		return nil, false
	}
	return m, true
}

// binCurrent reports whether bin is a binary form of this backupd's
// layout (one from the cache of another version is not).
func binCurrent(bin []byte) bool { return len(bin) > 0 && bin[0] == manifestBinVersion }

type binWriter struct {
	b   []byte
	bad bool
}

func (w *binWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *binWriter) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *binWriter) str(s string)     { w.uvarint(uint64(len(s))); w.b = append(w.b, s...) }

// count writes a length that tells nil (0) from empty (1).
func (w *binWriter) count(isNil bool, n int) {
	if isNil {
		w.uvarint(0)
	} else {
		w.uvarint(uint64(n) + 1)
	}
}

func (w *binWriter) strs(ss []string) {
	w.count(ss == nil, len(ss))
	for _, s := range ss {
		w.str(s)
	}
}

// time writes t as its JSON text: decoding parses it as JSON does.
func (w *binWriter) time(t time.Time) {
	text, err := t.MarshalText()
	if err != nil {
		w.bad = true
	}
	w.uvarint(uint64(len(text)))
	w.b = append(w.b, text...)
}

func (w *binWriter) stats(s *Stats) {
	for _, v := range [...]int64{s.Files, s.Dirs, s.Bytes, s.BytesRead, s.BlobsAdded, s.BytesAdded, s.StoredAdded,
		s.DataAdded, s.StoredBytes, s.FilesUnread, s.Warnings, s.ErrorsSkipped} {
		w.varint(v)
	}
}

type binReader struct {
	b   []byte
	bad bool
}

// skip moves past the n bytes a varint took (n <= 0: it did not decode).
func (r *binReader) skip(n int) {
	if n <= 0 {
		r.bad = true
		r.b = nil
		return
	}
	r.b = r.b[n:]
}

func (r *binReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	r.skip(n)
	return v
}

func (r *binReader) varint() int64 {
	v, n := binary.Varint(r.b)
	r.skip(n)
	return v
}

func (r *binReader) take(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.bad = true
		r.b = nil
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *binReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad = true
		return ""
	}
	return string(r.take(int(n)))
}

// count reads what binWriter.count wrote: false for nil. A count past
// what is left to read (each element takes a byte at least) is bad.
func (r *binReader) count() (int, bool) {
	n := r.uvarint()
	if n == 0 || r.bad {
		return 0, false
	}
	if n-1 > uint64(len(r.b)) {
		r.bad = true
		return 0, false
	}
	return int(n - 1), true
}

func (r *binReader) strs() []string {
	n, ok := r.count()
	if !ok {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = r.str()
	}
	return ss
}

func (r *binReader) time() time.Time {
	var t time.Time
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad = true
		return t
	}
	if err := t.UnmarshalText(r.take(int(n))); err != nil {
		r.bad = true
	}
	return t
}

func (r *binReader) stats(s *Stats) {
	for _, p := range [...]*int64{&s.Files, &s.Dirs, &s.Bytes, &s.BytesRead, &s.BlobsAdded, &s.BytesAdded, &s.StoredAdded,
		&s.DataAdded, &s.StoredBytes, &s.FilesUnread, &s.Warnings, &s.ErrorsSkipped} {
		*p = r.varint()
	}
}
