package location

import (
	"context"
	"fmt"
	"net/url"
	"os"

	"backupd/storage"
	"backupd/storage/retry"
	"backupd/storage/sftp"
)

func openSFTP(ctx context.Context, u *url.URL, opts Options) (storage.Backend, error) {
	if u.Host == "" || u.User == nil || u.User.Username() == "" {
		return nil, fmt.Errorf("sftp URL %q: want sftp://user@host[:port]/path", Redact(u.String()))
	}
	cfg := sftp.Config{
		User:                  u.User.Username(),
		Host:                  u.Hostname(),
		Port:                  u.Port(),
		Path:                  u.Path,
		KeyFile:               opts.SSHKeyFile,
		KnownHostsFile:        opts.KnownHostsFile,
		InsecureIgnoreHostKey: opts.InsecureIgnoreHostKey,
		NoReplace:             opts.AppendOnly,
		Replaceable:           opts.Unlocked,
	}
	if pw, ok := u.User.Password(); ok {
		cfg.Password = pw
	}
	if cfg.KeyFile == "" && cfg.Password == "" {
		cfg.UseAgent = os.Getenv("SSH_AUTH_SOCK") != ""
		if !cfg.UseAgent {
			return nil, fmt.Errorf("sftp: no key: pass --ssh-key FILE or run an SSH agent")
		}
	}
	if cfg.KnownHostsFile == "" && !cfg.InsecureIgnoreHostKey {
		cfg.KnownHostsFile = homeFile(".ssh/known_hosts")
	}
	b, err := sftp.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return retry.New(b, retry.Options{}), nil
}
