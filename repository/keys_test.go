package repository

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"backupd/storage"
	"backupd/storage/mem"
)

func TestRSAWrappedKeyAndWriteOnlyHost(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddKey(ctx, Wrapping{RSAPublicKey: &priv.PublicKey}); err != nil {
		t.Fatal(err)
	}
	// A write-only key for a backup host.
	if _, err := r.AddKey(ctx, Wrapping{Password: []byte("host secret"), KDF: ptr(TestKDF()), WriteOnly: true}); err != nil {
		t.Fatal(err)
	}
	host, err := Open(ctx, be, Credentials{Password: []byte("host secret")})
	if err != nil {
		t.Fatal(err)
	}
	if host.Keys().CanRead() {
		t.Fatal("write-only key can read")
	}
	if err := host.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	data := []byte("written by a host that cannot read it")
	id, _, err := host.SaveBlob(ctx, DataBlob, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := host.SaveManifest(ctx, &Manifest{ID: "backup-w", Type: "full"}); err != nil {
		t.Fatal(err)
	}
	if _, err := host.LoadBlob(ctx, DataBlob, id); !errors.Is(err, ErrWriteOnly) {
		t.Fatalf("write-only host read a blob: %v", err)
	}
	if _, err := host.LoadManifest(ctx, "backup-w"); !errors.Is(err, ErrWriteOnly) {
		t.Fatalf("write-only host read a manifest: %v", err)
	}
	if _, err := host.AddKey(ctx, Wrapping{Password: []byte("x"), KDF: ptr(TestKDF())}); err == nil {
		t.Fatal("write-only key added a full key")
	}
	// The operator's RSA private key reads what the host wrote.
	op, err := Open(ctx, be, Credentials{RSAPrivateKey: priv})
	if err != nil {
		t.Fatal(err)
	}
	op.LoadIndex(ctx)
	got, err := op.LoadBlob(ctx, DataBlob, id)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("RSA key cannot read: %v", err)
	}
	if _, err := op.LoadManifest(ctx, "backup-w"); err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := Open(ctx, be, Credentials{RSAPrivateKey: other}); !errors.Is(err, ErrNoMatchingKey) {
		t.Fatalf("foreign RSA key: %v", err)
	}
}

func TestPGPWrappedKey(t *testing.T) {
	ctx := context.Background()
	ent, err := openpgp.NewEntity("Operator", "", "op@example.org", nil)
	if err != nil {
		t.Fatal(err)
	}
	var pub, sec bytes.Buffer
	w, _ := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	ent.Serialize(w)
	w.Close()
	w, _ = armor.Encode(&sec, openpgp.PrivateKeyType, nil)
	ent.SerializePrivate(w, nil)
	w.Close()

	pubRing, err := ReadPGPKeyRing(pub.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	be := mem.New()
	r, err := Init(ctx, be, InitOptions{Wrapping: Wrapping{PGPPublicKeys: pubRing}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SaveManifest(ctx, &Manifest{ID: "b1", Type: "full"}); err != nil {
		t.Fatal(err)
	}
	secRing, err := ReadPGPKeyRing(sec.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Open(ctx, be, Credentials{PGPKeys: secRing})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.LoadManifest(ctx, "b1"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, be, Credentials{PGPKeys: pubRing}); err == nil {
		t.Fatal("opened with a public key only")
	}
}

func TestRotateRewrapsWithoutReencrypting(t *testing.T) {
	ctx := context.Background()
	r, be := newTestRepo(t)
	id, _, _ := r.SaveBlob(ctx, DataBlob, []byte("payload"))
	r.Flush(ctx)
	before := map[string]bool{}
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { before[oi.Name] = true; return nil })
	old := r.KeyEntry()
	e, err := r.RotateKey(ctx, Wrapping{Password: []byte("new pass"), KDF: ptr(TestKDF())})
	if err != nil {
		t.Fatal(err)
	}
	if e.Version != old.Version+1 {
		t.Fatalf("version %d after %d", e.Version, old.Version)
	}
	if _, err := Open(ctx, be, Credentials{Password: []byte("correct horse")}); !errors.Is(err, ErrNoMatchingKey) {
		t.Fatalf("old password still opens: %v", err)
	}
	r2, err := Open(ctx, be, Credentials{Password: []byte("new pass")})
	if err != nil {
		t.Fatal(err)
	}
	r2.LoadIndex(ctx)
	if got, err := r2.LoadBlob(ctx, DataBlob, id); err != nil || string(got) != "payload" {
		t.Fatalf("after rotation: %q %v", got, err)
	}
	after := map[string]bool{}
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error { after[oi.Name] = true; return nil })
	if len(after) != len(before) {
		t.Fatal("rotation rewrote data")
	}
	if err := r2.RemoveKey(ctx, r2.KeyEntry().ID); err == nil {
		t.Fatal("removed the key in use")
	}
}
