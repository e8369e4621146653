package repository

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Manifest describes one backup. It is small: the file trees are tree blobs
// in packs, referenced by each component's root. Stored at
// manifests/<backup-id> as: magic "BKMF", version(1), ephemeral public
// key(32), seal(session key, signature(64) || JSON, ad = header || id).
// The Ed25519 signature covers the id and the JSON, so a manifest cannot be
// altered or moved to another name without detection.
type Manifest struct {
	Version     int                 `json:"version"`
	ID          string              `json:"id"`
	Type        string              `json:"type"` // full | incremental | differential | snapshot
	Parent      string              `json:"parent,omitempty"`
	Base        string              `json:"base,omitempty"` // differential: the full backup it is relative to
	Host        string              `json:"host"`
	Started     time.Time           `json:"started"`
	Finished    time.Time           `json:"finished"`
	Compression string              `json:"compression"`
	Tags        map[string]string   `json:"tags,omitempty"`
	Components  []ComponentManifest `json:"components"`
	Status      string              `json:"status"` // completed | partial
	Stats       Stats               `json:"stats"`
	KeyID       string              `json:"key_id,omitempty"`
}

// ComponentManifest is one component's part of a backup.
type ComponentManifest struct {
	Name     string   `json:"name"`
	Paths    []string `json:"paths"`
	Include  []string `json:"include,omitempty"`
	Exclude  []string `json:"exclude,omitempty"`
	Tree     ID       `json:"tree"`
	Stats    Stats    `json:"stats"`
	Warnings []string `json:"warnings,omitempty"`
	Error    string   `json:"error,omitempty"` // set when the component failed (backup is partial)
}

// Stats counts what a backup holds and what it added.
type Stats struct {
	Files       int64 `json:"files"`
	Dirs        int64 `json:"dirs"`
	Bytes       int64 `json:"bytes"`        // content bytes in the backup
	BytesRead   int64 `json:"bytes_read"`   // content bytes actually read (incrementals skip unchanged files)
	BlobsAdded  int64 `json:"blobs_added"`  // new blobs stored
	BytesAdded  int64 `json:"bytes_added"`  // plaintext bytes of the new blobs
	StoredAdded int64 `json:"stored_added"` // bytes the new blobs take in storage (compressed+encrypted)
	// DataAdded: plaintext bytes of the new data blobs (BytesAdded less
	// the trees), at most Bytes.
	DataAdded int64 `json:"data_added,omitempty"`
	// StoredBytes: what the backup takes in storage, compressed and
	// encrypted, before deduplication (each blob's stored length, once per
	// use; its trees included, so StoredAdded never exceeds it).
	// Bytes/StoredBytes is the compression ratio; StoredBytes/StoredAdded
	// what deduplication saved. 0 in manifests written before it existed.
	StoredBytes   int64 `json:"stored_bytes,omitempty"`
	FilesUnread   int64 `json:"files_unchanged"` // files reused from the parent without reading
	Warnings      int64 `json:"warnings"`
	ErrorsSkipped int64 `json:"errors"`
}

// CompressedSize is what the content takes in storage before
// deduplication (StoredBytes); for manifests written before it was
// measured, what the backup added (StoredAdded), the closest known.
func (s Stats) CompressedSize() int64 {
	if s.StoredBytes > 0 {
		return s.StoredBytes
	}
	return s.StoredAdded
}

// Add sums s2 into s.
func (s *Stats) Add(s2 Stats) {
	s.Files += s2.Files
	s.Dirs += s2.Dirs
	s.Bytes += s2.Bytes
	s.BytesRead += s2.BytesRead
	s.BlobsAdded += s2.BlobsAdded
	s.BytesAdded += s2.BytesAdded
	s.StoredAdded += s2.StoredAdded
	s.DataAdded += s2.DataAdded
	s.StoredBytes += s2.StoredBytes
	s.FilesUnread += s2.FilesUnread
	s.Warnings += s2.Warnings
	s.ErrorsSkipped += s2.ErrorsSkipped
}

// ComponentNames lists the manifest's component names in order.
func (m *Manifest) ComponentNames() []string {
	out := make([]string, len(m.Components))
	for i, c := range m.Components {
		out[i] = c.Name
	}
	return out
}

// Component returns the named component or nil.
func (m *Manifest) Component(name string) *ComponentManifest {
	for i := range m.Components {
		if m.Components[i].Name == name {
			return &m.Components[i]
		}
	}
	return nil
}

const (
	manifestMagic   = "BKMF"
	manifestVersion = 1
	manifestsPrefix = "manifests/"
)

// ValidBackupID reports whether id can name a backup (and an object):
// 1 to 128 of A-Z a-z 0-9 . _ -, the first a letter or digit. (By hand,
// not a regular expression: a listing checks every id it reads.)
func ValidBackupID(id string) error {
	ok := len(id) > 0 && len(id) <= 128
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		ok = alnum || i > 0 && (c == '.' || c == '_' || c == '-')
	}
	if !ok {
		return fmt.Errorf("invalid backup id %q", id)
	}
	return nil
}

// NewBackupID returns "backup-YYYYMMDD-HHMMSS-" and 12 random hex digits
// for t (UTC). 48 random bits: ten thousand hosts starting a backup in the
// same second into one repository collide once in about 2^48/10^8 nights.
// (16 bits collided within seconds in the fault soak, and a collision made
// the second backup look like the first: see SameBackup.)
func NewBackupID(t time.Time) string {
	return BackupIDWith(t, fmt.Sprintf("%x", randomBytes(6)))
}

// BackupIDWith is NewBackupID with the random part given (a scheduled
// job draws it once and keeps it in its history, so replays agree).
func BackupIDWith(t time.Time, random string) string {
	return "backup-" + t.UTC().Format("20060102-150405") + "-" + random
}

// ErrBackupExists: a manifest with the backup's id is already stored.
var ErrBackupExists = errors.New("a backup with this id already exists")

// ErrBackupIDTaken: the id names another backup (another host or job got
// the same id); nothing of it was touched.
var ErrBackupIDTaken = errors.New("the backup id is taken by another backup")

// SameBackup reports whether o is the same backup as m, not merely one
// with the same id: the same host started it at the same instant (a
// backup's start time is kept to the nanosecond). A job that finds a
// manifest under its id (its own earlier attempt, or a copy already made)
// trusts it only then.
func (m *Manifest) SameBackup(o *Manifest) bool {
	return m.ID == o.ID && m.Host == o.Host && m.Started.Equal(o.Started)
}

// Taken is the error for a manifest found under id that is not the
// backup's own.
func (m *Manifest) Taken(where string) error {
	return fmt.Errorf("%w: %s in %s is a backup of host %q started %s; start the backup again (it gets a new id)",
		ErrBackupIDTaken, m.ID, where, m.Host, m.Started.UTC().Format(time.RFC3339Nano))
}

func manifestSignedBytes(id string, js []byte) []byte {
	b := append([]byte("backupd manifest v1\x00"), id...)
	b = append(b, 0)
	return append(b, js...)
}

func encodeManifest(k *Keys, m *Manifest) ([]byte, error) {
	raw, _, err := encodeManifestJSON(k, m)
	return raw, err
}

// encodeManifestJSON is encodeManifest, also returning the JSON it signed.
func encodeManifestJSON(k *Keys, m *Manifest) (raw, js []byte, err error) {
	js, err = json.Marshal(m)
	if err != nil {
		return nil, nil, err
	}
	s, err := newSealer(k.DataPublic)
	if err != nil {
		return nil, nil, err
	}
	sig := ed25519.Sign(k.SignPrivate, manifestSignedBytes(m.ID, js))
	hdr := append([]byte(manifestMagic), manifestVersion)
	hdr = append(hdr, s.ephPublic...)
	plain := append(sig, js...)
	return seal(s.aead, hdr, plain, append(append([]byte{}, hdr...), m.ID...)), js, nil
}

func decodeManifest(k *Keys, id string, raw []byte) (*Manifest, error) {
	m, _, err := decodeManifestJSON(k, id, raw)
	return m, err
}

// decodeManifestJSON is decodeManifest, also returning the manifest's JSON
// as its writer stored it (a set keeps it so, fields this backupd does not
// know included).
func decodeManifestJSON(k *Keys, id string, raw []byte) (*Manifest, []byte, error) {
	if len(raw) < 5+32 || string(raw[:4]) != manifestMagic {
		return nil, nil, fmt.Errorf("manifest %s: %w: not a manifest", id, ErrCorrupt)
	}
	if raw[4] != manifestVersion {
		return nil, nil, fmt.Errorf("manifest %s: format version %d is not supported by this backupd (knows %d)", id, raw[4], manifestVersion)
	}
	hdr := raw[:5+32]
	aead, err := openSession(k.DataPrivate, hdr[5:])
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", id, err)
	}
	plain, err := open(aead, nil, raw[len(hdr):], append(append([]byte{}, hdr...), id...))
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w: does not authenticate (damaged, or renamed)", id, ErrCorrupt)
	}
	if len(plain) < ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("manifest %s: %w: too short", id, ErrCorrupt)
	}
	sig, js := plain[:ed25519.SignatureSize], plain[ed25519.SignatureSize:]
	pub := k.SignPrivate.Public().(ed25519.PublicKey)
	if !ed25519.Verify(pub, manifestSignedBytes(id, js), sig) {
		return nil, nil, fmt.Errorf("manifest %s: %w: signature does not verify", id, ErrCorrupt)
	}
	m, err := parseManifestJSON(id, js)
	if err != nil {
		return nil, nil, err
	}
	return m, js, nil
}

// parseManifestJSON decodes backup id's manifest from its checked JSON.
func parseManifestJSON(id string, js []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w: %v", id, ErrCorrupt, err)
	}
	if m.ID != id {
		return nil, fmt.Errorf("manifest %s: %w: names itself %q", id, ErrCorrupt, m.ID)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("manifest %s: version %d is not supported by this backupd", id, m.Version)
	}
	return &m, nil
}
