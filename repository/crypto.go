package repository

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// Keys is a repository's secret material. It is never stored in the clear:
// key entries under keys/ hold it wrapped (see keys.go).
//
// Reading needs DataPrivate. Writing needs the rest: IDKey (blob ids),
// ChunkerKey (boundaries), IndexKey (the index, which holds only ids and
// sizes), the signing key and DataPublic, to which every pack and manifest
// is sealed. A write-only key entry omits DataPrivate, so a host holding it
// can add backups it cannot read back.
type Keys struct {
	DataPrivate []byte             `json:"data_private,omitempty"` // X25519, 32 bytes
	DataPublic  []byte             `json:"data_public"`            // X25519, 32 bytes
	IDKey       []byte             `json:"id_key"`                 // HMAC-SHA-256 key for blob ids
	ChunkerKey  []byte             `json:"chunker_key"`
	IndexKey    []byte             `json:"index_key"`    // AES-256-GCM
	SignPrivate ed25519.PrivateKey `json:"sign_private"` // Ed25519 manifest signatures
}

// NewKeys generates fresh material.
func NewKeys() (*Keys, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	_, sign, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Keys{
		DataPrivate: priv.Bytes(),
		DataPublic:  priv.PublicKey().Bytes(),
		IDKey:       randomBytes(32),
		ChunkerKey:  randomBytes(32),
		IndexKey:    randomBytes(32),
		SignPrivate: sign,
	}, nil
}

// WriteOnly returns a copy without the key that opens packs and manifests.
func (k *Keys) WriteOnly() *Keys {
	c := *k
	c.DataPrivate = nil
	return &c
}

// CanRead reports whether these keys can decrypt data.
func (k *Keys) CanRead() bool { return len(k.DataPrivate) == 32 }

func (k *Keys) validate() error {
	if len(k.DataPublic) != 32 || len(k.IDKey) != 32 || len(k.ChunkerKey) != 32 ||
		len(k.IndexKey) != 32 || len(k.SignPrivate) != ed25519.PrivateKeySize {
		return errors.New("key material is incomplete or malformed")
	}
	if k.DataPrivate != nil {
		priv, err := ecdh.X25519().NewPrivateKey(k.DataPrivate)
		if err != nil {
			return fmt.Errorf("key material: %w", err)
		}
		if !hmac.Equal(priv.PublicKey().Bytes(), k.DataPublic) {
			return errors.New("key material: data public key does not match private key")
		}
	}
	return nil
}

// Fingerprint identifies the write material (which decides blob ids and
// chunk boundaries): two repositories with equal fingerprints share blob ids,
// so copying between them moves only missing blobs.
func (k *Keys) Fingerprint() string {
	m := hmac.New(sha256.New, k.IDKey)
	m.Write([]byte("backupd fingerprint"))
	m.Write(k.ChunkerKey)
	return fmt.Sprintf("%x", m.Sum(nil)[:8])
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// idHasher computes blob ids; pooled because hmac.New allocates.
type idHasher struct {
	pool sync.Pool
}

func newIDHasher(key []byte) *idHasher {
	h := &idHasher{}
	h.pool.New = func() any { return hmac.New(sha256.New, key) }
	return h
}

func (h *idHasher) Sum(data []byte) ID {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	m.Write(data)
	var id ID
	m.Sum(id[:0])
	h.pool.Put(m)
	return id
}

// sealer holds the session key a writer derives for its packs: an ephemeral
// X25519 key agreed with the repository's data public key. Only the holder
// of DataPrivate can re-derive it from the ephemeral public key stored in
// each pack's trailer.
type sealer struct {
	ephPublic []byte
	aead      cipher.AEAD
}

const sealInfo = "backupd v1 session key"

func newSealer(dataPublic []byte) (*sealer, error) {
	pub, err := ecdh.X25519().NewPublicKey(dataPublic)
	if err != nil {
		return nil, err
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(pub)
	if err != nil {
		return nil, err
	}
	aead, err := deriveAEAD(shared, eph.PublicKey().Bytes(), dataPublic)
	if err != nil {
		return nil, err
	}
	return &sealer{ephPublic: eph.PublicKey().Bytes(), aead: aead}, nil
}

// openSession re-derives the session AEAD from an ephemeral public key.
func openSession(dataPrivate, ephPublic []byte) (cipher.AEAD, error) {
	priv, err := parseDataKey(dataPrivate)
	if err != nil {
		return nil, err
	}
	return openSessionWith(priv, ephPublic)
}

// parseDataKey parses the data private key. Parsing computes its public
// key, a scalar multiplication that cost as much as the exchange itself:
// a handle parses it once, not once per pack (openSessionWith).
func parseDataKey(dataPrivate []byte) (*ecdh.PrivateKey, error) {
	if len(dataPrivate) != 32 {
		return nil, ErrWriteOnly
	}
	return ecdh.X25519().NewPrivateKey(dataPrivate)
}

// openSessionWith is openSession with the data key parsed.
func openSessionWith(priv *ecdh.PrivateKey, ephPublic []byte) (cipher.AEAD, error) {
	key, err := sessionKeyWith(priv, ephPublic)
	if err != nil {
		return nil, err
	}
	return newAEAD(key)
}

// sessionKeyWith derives the AES key of the session whose ephemeral public
// key is ephPublic.
func sessionKeyWith(priv *ecdh.PrivateKey, ephPublic []byte) ([]byte, error) {
	eph, err := ecdh.X25519().NewPublicKey(ephPublic)
	if err != nil {
		return nil, err
	}
	shared, err := priv.ECDH(eph)
	if err != nil {
		return nil, err
	}
	return deriveKey(shared, ephPublic, priv.PublicKey().Bytes())
}

func deriveAEAD(shared, ephPublic, dataPublic []byte) (cipher.AEAD, error) {
	key, err := deriveKey(shared, ephPublic, dataPublic)
	if err != nil {
		return nil, err
	}
	return newAEAD(key)
}

func deriveKey(shared, ephPublic, dataPublic []byte) ([]byte, error) {
	salt := append(append([]byte{}, ephPublic...), dataPublic...)
	return hkdf.Key(sha256.New, shared, salt, sealInfo, 32)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts plaintext, appending nonce||ciphertext||tag to dst.
func seal(aead cipher.AEAD, dst, plaintext, ad []byte) []byte {
	nonce := randomBytes(aead.NonceSize())
	dst = append(dst, nonce...)
	return aead.Seal(dst, nonce, plaintext, ad)
}

// open reverses seal.
func open(aead cipher.AEAD, dst, sealed, ad []byte) ([]byte, error) {
	ns := aead.NonceSize()
	if len(sealed) < ns+aead.Overhead() {
		return nil, errors.New("ciphertext too short")
	}
	return aead.Open(dst, sealed[:ns], sealed[ns:], ad)
}

// openInPlace is open, decrypting into sealed's own storage.
func openInPlace(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	ns := aead.NonceSize()
	if len(sealed) < ns+aead.Overhead() {
		return nil, errors.New("ciphertext too short")
	}
	return aead.Open(sealed[ns:ns], sealed[:ns], sealed[ns:], ad)
}

// sealOverhead is what seal adds to a plaintext.
const sealOverhead = 12 + 16

// ErrWriteOnly is returned when reading with a write-only key.
var ErrWriteOnly = errors.New("this key is write-only: it can add backups but not read them")
