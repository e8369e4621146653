package repository

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/scrypt"

	"backupd/storage"
)

// A key entry (keys/<id>, JSON) holds the repository's Keys wrapped by one
// credential. Adding or rotating a credential writes or replaces an entry;
// the data is never re-encrypted.
type KeyEntry struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`   // passphrase | rsa | pgp
	Access  string    `json:"access"` // full | write-only
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"`
	User    string    `json:"user,omitempty"`
	Label   string    `json:"label,omitempty"`

	KDF *KDFParams `json:"kdf,omitempty"` // passphrase

	Fingerprint string `json:"fingerprint,omitempty"` // rsa: SHA-256 of the public key (DER); pgp: primary key fingerprint
	WrappedKEK  []byte `json:"wrapped_kek,omitempty"` // rsa: RSA-OAEP(SHA-256) of the key-encryption key

	Data []byte `json:"data"` // seal(KEK, JSON(Keys)); pgp: an OpenPGP message holding JSON(Keys)
}

// Key kinds and access levels.
const (
	KindPassphrase = "passphrase"
	KindRSA        = "rsa"
	KindPGP        = "pgp"
	AccessFull     = "full"
	AccessWrite    = "write-only"
)

// KDFParams are the passphrase stretching parameters stored in the entry.
type KDFParams struct {
	Alg     string `json:"alg"` // argon2id | scrypt
	Salt    []byte `json:"salt"`
	Time    uint32 `json:"time,omitempty"`    // argon2id passes
	Memory  uint32 `json:"memory,omitempty"`  // argon2id KiB
	Threads uint8  `json:"threads,omitempty"` // argon2id
	N       int    `json:"n,omitempty"`       // scrypt
	R       int    `json:"r,omitempty"`
	P       int    `json:"p,omitempty"`
}

// DefaultKDF: argon2id with 19 MiB, two passes, one lane — OWASP's first
// recommended configuration. It costs about 30 ms here, paid by every
// command that opens the repository (a 64 MiB setting costs 120 ms, most of
// it the kernel zeroing fresh pages). Parameters are stored per key entry,
// so a key can be given stronger ones.
func DefaultKDF() KDFParams {
	return KDFParams{Alg: "argon2id", Time: 2, Memory: 19 << 10, Threads: 1}
}

// TestKDF is cheap, for tests only (env BACKUPD_TEST_KDF=1 selects it in the CLI).
func TestKDF() KDFParams { return KDFParams{Alg: "argon2id", Time: 1, Memory: 64, Threads: 1} }

func (p KDFParams) derive(pass []byte) ([]byte, error) {
	switch p.Alg {
	case "argon2id":
		if p.Time == 0 || p.Memory == 0 || p.Threads == 0 || p.Threads > 64 || p.Memory > 4<<20 || p.Time > 100 {
			return nil, fmt.Errorf("argon2id parameters out of range")
		}
		return argon2.IDKey(pass, p.Salt, p.Time, p.Memory, p.Threads, 32), nil
	case "scrypt":
		if p.N > 1<<22 || p.R > 64 || p.P > 64 {
			return nil, fmt.Errorf("scrypt parameters out of range")
		}
		return scrypt.Key(pass, p.Salt, p.N, p.R, p.P, 32)
	}
	return nil, fmt.Errorf("unknown key derivation %q", p.Alg)
}

// Credentials open a repository: any one that matches a key entry will do.
type Credentials struct {
	Password      []byte
	RSAPrivateKey *rsa.PrivateKey
	PGPKeys       openpgp.EntityList // with decrypted private keys
}

func (c Credentials) empty() bool {
	return c.Password == nil && c.RSAPrivateKey == nil && len(c.PGPKeys) == 0
}

// Wrapping describes how to wrap keys in a new entry: exactly one of
// Password, RSAPublicKey, PGPPublicKeys.
type Wrapping struct {
	Password      []byte
	KDF           *KDFParams // nil: DefaultKDF
	RSAPublicKey  *rsa.PublicKey
	PGPPublicKeys openpgp.EntityList
	WriteOnly     bool
	Label         string
}

// ErrNoMatchingKey: none of the key entries opens with the credentials.
var ErrNoMatchingKey = errors.New("no key entry matches: wrong password or key")

func wrapKeys(k *Keys, w Wrapping, version int) (*KeyEntry, error) {
	if w.WriteOnly {
		k = k.WriteOnly()
	}
	plain, err := json.Marshal(k)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	e := &KeyEntry{ID: newKeyID(), Version: version, Created: time.Now().UTC(), Host: host,
		User: os.Getenv("USER"), Label: w.Label, Access: AccessFull}
	if w.WriteOnly {
		e.Access = AccessWrite
	}
	var kek []byte
	switch {
	case w.Password != nil:
		if len(w.Password) == 0 {
			return nil, errors.New("empty password")
		}
		p := DefaultKDF()
		if w.KDF != nil {
			p = *w.KDF
		}
		p.Salt = randomBytes(16)
		if kek, err = p.derive(w.Password); err != nil {
			return nil, err
		}
		e.Kind, e.KDF = KindPassphrase, &p
	case w.RSAPublicKey != nil:
		kek = randomBytes(32)
		e.WrappedKEK, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, w.RSAPublicKey, kek, []byte("backupd key"))
		if err != nil {
			return nil, fmt.Errorf("RSA wrap: %w", err)
		}
		e.Kind, e.Fingerprint = KindRSA, rsaFingerprint(w.RSAPublicKey)
	case len(w.PGPPublicKeys) > 0:
		var buf bytes.Buffer
		aw, err := armor.Encode(&buf, "PGP MESSAGE", nil)
		if err != nil {
			return nil, err
		}
		pw, err := openpgp.Encrypt(aw, w.PGPPublicKeys, nil, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("PGP wrap: %w", err)
		}
		pw.Write(plain)
		if err := pw.Close(); err != nil {
			return nil, err
		}
		aw.Close()
		e.Kind, e.Data = KindPGP, buf.Bytes()
		e.Fingerprint = strings.ToUpper(hex.EncodeToString(w.PGPPublicKeys[0].PrimaryKey.Fingerprint))
		return e, nil
	default:
		return nil, errors.New("no credential to wrap the key with")
	}
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	e.Data = seal(aead, nil, plain, []byte(e.ID))
	return e, nil
}

// unwrap opens e with creds; ErrNoMatchingKey when they do not fit.
func (e *KeyEntry) unwrap(creds Credentials) (*Keys, error) {
	var plain []byte
	switch e.Kind {
	case KindPassphrase:
		if creds.Password == nil || e.KDF == nil {
			return nil, ErrNoMatchingKey
		}
		kek, err := e.KDF.derive(creds.Password)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", e.ID, err)
		}
		if plain, err = openKEK(kek, e); err != nil {
			return nil, ErrNoMatchingKey
		}
	case KindRSA:
		if creds.RSAPrivateKey == nil || rsaFingerprint(&creds.RSAPrivateKey.PublicKey) != e.Fingerprint {
			return nil, ErrNoMatchingKey
		}
		kek, err := rsa.DecryptOAEP(sha256.New(), nil, creds.RSAPrivateKey, e.WrappedKEK, []byte("backupd key"))
		if err != nil {
			return nil, fmt.Errorf("key %s: RSA unwrap: %w", e.ID, err)
		}
		if plain, err = openKEK(kek, e); err != nil {
			return nil, fmt.Errorf("key %s: %w", e.ID, err)
		}
	case KindPGP:
		if len(creds.PGPKeys) == 0 {
			return nil, ErrNoMatchingKey
		}
		blk, err := armor.Decode(bytes.NewReader(e.Data))
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", e.ID, err)
		}
		md, err := openpgp.ReadMessage(blk.Body, creds.PGPKeys, nil, nil)
		if err != nil {
			return nil, ErrNoMatchingKey
		}
		if plain, err = io.ReadAll(io.LimitReader(md.UnverifiedBody, 1<<20)); err != nil {
			return nil, fmt.Errorf("key %s: %w", e.ID, err)
		}
	default:
		return nil, fmt.Errorf("key %s: unknown kind %q", e.ID, e.Kind)
	}
	var k Keys
	if err := json.Unmarshal(plain, &k); err != nil {
		return nil, fmt.Errorf("key %s: %w: %v", e.ID, ErrCorrupt, err)
	}
	if err := k.validate(); err != nil {
		return nil, fmt.Errorf("key %s: %w", e.ID, err)
	}
	return &k, nil
}

func openKEK(kek []byte, e *KeyEntry) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	return open(aead, nil, e.Data, []byte(e.ID))
}

func rsaFingerprint(pub *rsa.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

func newKeyID() string { return "key-" + hex.EncodeToString(randomBytes(4)) }

const keysPrefix = "keys/"

func saveKeyEntry(ctx context.Context, be storage.Backend, e *KeyEntry) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return be.Put(ctx, keysPrefix+e.ID, bytes.NewReader(b), int64(len(b)))
}

// ListKeys returns the key entries, oldest first.
func listKeyEntries(ctx context.Context, be storage.Backend) ([]*KeyEntry, error) {
	var names []string
	err := be.List(ctx, keysPrefix, func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []*KeyEntry
	for _, n := range names {
		b, err := storage.ReadAll(ctx, be, n)
		if err != nil {
			return nil, err
		}
		var e KeyEntry
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("%s: %w: %v", n, ErrCorrupt, err)
		}
		if keysPrefix+e.ID != n {
			return nil, fmt.Errorf("%s: %w: entry names itself %q", n, ErrCorrupt, e.ID)
		}
		out = append(out, &e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// ParseRSAPublicKey reads a PEM public key (PKIX or PKCS#1).
func ParseRSAPublicKey(pemBytes []byte) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errors.New("no PEM block in RSA public key file")
	}
	if k, err := x509.ParsePKIXPublicKey(blk.Bytes); err == nil {
		if rk, ok := k.(*rsa.PublicKey); ok {
			return rk, nil
		}
		return nil, errors.New("public key is not RSA")
	}
	return x509.ParsePKCS1PublicKey(blk.Bytes)
}

// ParseRSAPrivateKey reads a PEM private key (PKCS#8 or PKCS#1).
func ParseRSAPrivateKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errors.New("no PEM block in RSA private key file")
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return rk, nil
		}
		return nil, errors.New("private key is not RSA")
	}
	return x509.ParsePKCS1PrivateKey(blk.Bytes)
}

// ReadPGPKeyRing reads an armored or binary OpenPGP key ring. passphrase
// unlocks encrypted private keys (nil if they are not encrypted).
func ReadPGPKeyRing(data, passphrase []byte) (openpgp.EntityList, error) {
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("reading OpenPGP key: %w", err)
		}
	}
	for _, e := range el {
		if e.PrivateKey != nil && e.PrivateKey.Encrypted {
			if passphrase == nil {
				return nil, errors.New("OpenPGP private key is passphrase-protected: set BACKUPD_PGP_PASSPHRASE")
			}
			if err := e.DecryptPrivateKeys(passphrase); err != nil {
				return nil, fmt.Errorf("unlocking OpenPGP key: %w", err)
			}
		}
	}
	return el, nil
}
