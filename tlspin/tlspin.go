// Package tlspin pins a server's TLS certificate: a connection is
// accepted when the server presents exactly the certificate whose
// SHA-256 was pinned, whatever CA signed it (an enrolled host trusts its
// control plane's certificate this way). Used by the API client and by
// the storage backend an enrolled host writes through.
package tlspin

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrMismatch: the server presented another certificate than the pinned
// one.
var ErrMismatch = errors.New("the server's certificate is not the pinned one")

// Fingerprint is "sha256:<hex>" of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Valid reports whether pin is "sha256:" and 64 hex digits.
func Valid(pin string) bool {
	h, ok := strings.CutPrefix(pin, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// Config accepts exactly the certificate whose fingerprint is pin.
func Config(pin string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: the server presented none", ErrMismatch)
			}
			if got := Fingerprint(cs.PeerCertificates[0].Raw); got != pin {
				return fmt.Errorf("%w: pinned %s, presented %s", ErrMismatch, pin, got)
			}
			return nil
		}}
}
