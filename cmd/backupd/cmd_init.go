package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"backupd/repository"
	"backupd/storage/location"
)

// wrapFlags choose the credential a new key entry is wrapped with.
type wrapFlags struct {
	newPasswordFile string
	rsaPublicKey    string
	pgpPublicKey    string
	writeOnly       bool
	label           string
}

func (w *wrapFlags) register(fs *flag.FlagSet, pwHelp string) {
	fs.StringVar(&w.newPasswordFile, "new-password-file", "", pwHelp)
	fs.StringVar(&w.rsaPublicKey, "rsa-public-key", "", "wrap the key with this RSA public key (PEM); the private key opens it")
	fs.StringVar(&w.pgpPublicKey, "pgp-public-key", "", "wrap the key with this OpenPGP public key; the private key opens it")
	fs.BoolVar(&w.writeOnly, "write-only", false, "the new key can add backups but not read them")
	fs.StringVar(&w.label, "label", "", "a note stored with the key")
}

// wrapping builds the Wrapping; pw is the password to use when no other
// credential is named.
func (w *wrapFlags) wrapping(pw []byte) (repository.Wrapping, error) {
	out := repository.Wrapping{WriteOnly: w.writeOnly, Label: w.label, KDF: kdf()}
	n := 0
	if w.rsaPublicKey != "" {
		b, err := os.ReadFile(w.rsaPublicKey)
		if err != nil {
			return out, err
		}
		if out.RSAPublicKey, err = repository.ParseRSAPublicKey(b); err != nil {
			return out, fmt.Errorf("%s: %w", w.rsaPublicKey, err)
		}
		n++
	}
	if w.pgpPublicKey != "" {
		b, err := os.ReadFile(w.pgpPublicKey)
		if err != nil {
			return out, err
		}
		if out.PGPPublicKeys, err = repository.ReadPGPKeyRing(b, nil); err != nil {
			return out, fmt.Errorf("%s: %w", w.pgpPublicKey, err)
		}
		n++
	}
	if w.newPasswordFile != "" {
		b, err := os.ReadFile(w.newPasswordFile)
		if err != nil {
			return out, err
		}
		pw = []byte(trimNewline(string(b)))
		if len(pw) == 0 {
			return out, fmt.Errorf("%s is empty", w.newPasswordFile)
		}
		n++
	}
	if n > 1 {
		return out, errors.New("name one credential: --new-password-file, --rsa-public-key or --pgp-public-key")
	}
	if n == 0 {
		if pw == nil {
			return out, errors.New("no password: set BACKUPD_PASSWORD or pass --password-file")
		}
		out.Password = pw
	} else if w.newPasswordFile != "" {
		out.Password = pw
	}
	return out, nil
}

func trimNewline(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

func cmdInit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo init", flag.ContinueOnError)
	var rf repoFlags
	var wf wrapFlags
	var copyFrom string
	rf.register(fs)
	wf.register(fs, "password file for the first key (default: the --password-file / BACKUPD_PASSWORD password)")
	fs.StringVar(&copyFrom, "copy-keys-from", "", "reuse the key material of this repository (opened with the same credentials), so copies between the two move only missing blobs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	pw, err := rf.password("BACKUPD_PASSWORD")
	if err != nil {
		return err
	}
	w, err := wf.wrapping(pw)
	if err != nil {
		return err
	}
	opts := repository.InitOptions{Wrapping: w}
	if copyFrom != "" {
		src := rf
		src.repo = copyFrom
		sr, err := src.open(ctx)
		if err != nil {
			return err
		}
		defer sr.Backend().Close()
		opts.Keys = sr.Keys()
	}
	rf.createBucket = true // an S3 bucket that is not there yet (with Object Lock, given --object-lock)
	be, err := rf.backend(ctx)
	if err != nil {
		return err
	}
	defer be.Close()
	r, err := repository.Init(ctx, be, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", location.Redact(rf.repo), err)
	}
	if rf.jsonOut {
		return printJSON(map[string]any{"repository": location.Redact(rf.repo), "id": r.Config().ID, "key_id": r.KeyEntry().ID})
	}
	fmt.Printf("created repository %s at %s (key %s)\n", r.Config().ID, location.Redact(rf.repo), r.KeyEntry().ID)
	return nil
}
