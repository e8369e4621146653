package sftptest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	pkgsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"backupd/storage/sftp/sftptest"
)

func dial(t *testing.T, env *sftptest.Env) *pkgsftp.Client {
	t.Helper()
	c, closer, err := env.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closer)
	return c
}

// TestConfinedToRoot tries to leave the served directory by "..", by
// absolute paths and through symlinks planted in the tree.
func TestConfinedToRoot(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(parent, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(parent, filepath.Join(root, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "filelink")); err != nil {
		t.Fatal(err)
	}
	env, err := sftptest.StartEnv(root, t.TempDir(), sftptest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	c := dial(t, env)

	for _, p := range []string{"../secret", "/../secret", "../../../../" + secret, secret, "dirlink/secret", "/dirlink/secret", "filelink", "a/../../secret"} {
		if f, err := c.Open(p); err == nil {
			buf := make([]byte, 10)
			n, _ := f.Read(buf)
			f.Close()
			if strings.Contains(string(buf[:n]), "secret") {
				t.Errorf("read %q: got the file outside the root", p)
			}
		}
		if f, err := c.Create(p); err == nil {
			f.Write([]byte("overwritten"))
			f.Close()
		}
		c.Remove(p)
		c.Rename("/victim", p)
		c.PosixRename(p, "/stolen")
		c.Mkdir(p + "-dir")
	}
	if got, err := os.ReadFile(secret); err != nil || string(got) != "secret" {
		t.Fatalf("file outside the root changed: %q, %v", got, err)
	}
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		if e.Name() != "root" && e.Name() != "secret" {
			t.Errorf("client created %q outside the root", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(root, "stolen")); err == nil {
		t.Error("a file from outside was renamed into the root")
	}
	if err := c.Symlink("/etc/passwd", "/link"); err == nil {
		t.Error("symlink creation allowed")
	}
	// The root itself looks like "/".
	if wd, err := c.Getwd(); err != nil || wd != "/" {
		t.Errorf("Getwd = %q, %v", wd, err)
	}
	rootEntries, _ := os.ReadDir(root)
	if fis, err := c.ReadDir("/.."); err != nil || len(fis) != len(rootEntries) {
		t.Errorf("ReadDir(/..) = %d entries, %v; want the root's %d", len(fis), err, len(rootEntries))
	}
}

func TestExtensions(t *testing.T) {
	env := sftptest.Start(t)
	c := dial(t, env)
	for _, ext := range []string{"posix-rename@openssh.com", "statvfs@openssh.com"} {
		if _, ok := c.HasExtension(ext); !ok {
			t.Errorf("server does not offer %s", ext)
		}
	}
	for _, name := range []string{"/a", "/b"} {
		f, err := c.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(name))
		f.Close()
	}
	if err := c.Rename("/a", "/b"); err == nil {
		t.Error("plain rename replaced an existing file")
	}
	if err := c.PosixRename("/a", "/b"); err != nil {
		t.Fatalf("posix-rename: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(env.Root, "b")); string(got) != "/a" {
		t.Fatalf("after posix-rename b = %q", got)
	}
	st, err := c.StatVFS("/")
	if err != nil || st.TotalSpace() == 0 {
		t.Fatalf("statvfs = %+v, %v", st, err)
	}
}

func TestRejectsUnknownKey(t *testing.T) {
	env := sftptest.Start(t)
	signer, _, err := sftptest.GenerateClientKey()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ssh.Dial("tcp", env.Addr, &ssh.ClientConfig{
		User: env.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.FixedHostKey(env.HostKey),
	})
	if err == nil {
		t.Fatal("a key that is not authorized logged in")
	}
}
