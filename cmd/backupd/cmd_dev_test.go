//go:build !lean

package main

import (
	"fmt"
	"testing"

	"backupd/config"
	"backupd/storage/s3/s3test"
	"backupd/storage/sftp/sftptest"
)

// The dev stack's host components are the Linux defaults the README
// documents, from the one definition: its logs component excluded fewer
// rotated archives than the README said.
func TestDevStackUsesTheDefaultComponents(t *testing.T) {
	dir := t.TempDir()
	p, err := writeDevConfig(dir, "127.0.0.1:7233", "127.0.0.1", 8233,
		&s3test.Server{Endpoint: "http://127.0.0.1:1"}, &sftptest.Env{Server: &sftptest.Server{User: "root"}, Host: "127.0.0.1", Port: "2"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range config.DefaultComponents() {
		if name == "data" {
			continue
		}
		if got := cfg.Components[name]; fmt.Sprint(got.Exclude, got.Paths) != fmt.Sprint(want.Exclude, want.Paths) {
			t.Errorf("dev component %s: %+v, default %+v", name, got, want)
		}
	}
}
