package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"backupd/codes"
	"backupd/config"
	"backupd/repository"
	"backupd/storage"
	"backupd/storage/location"
)

// Stores opens the configured storage locations' repositories. The key is
// derived once per location; every job then gets its own Session.
type Stores struct {
	cfg *config.Config
	mu  sync.Mutex
	m   map[string]*repository.Repository
}

// NewStores prepares (but does not yet open) the locations of cfg.
func NewStores(cfg *config.Config) *Stores {
	return &Stores{cfg: cfg, m: map[string]*repository.Repository{}}
}

func (s *Stores) backend(ctx context.Context, name string) (storage.Backend, error) {
	loc, ok := s.cfg.Storage[name]
	if !ok {
		return nil, codes.New(codes.InvalidConfiguration, "no storage location named %q (configured: %v)", name, s.cfg.LocationNames())
	}
	opts := location.Options{SSHKeyFile: loc.SSHKey, KnownHostsFile: loc.KnownHosts,
		S3AccessKey: loc.AccessKey, S3SecretKey: loc.SecretKey, S3CreateBucket: true}
	be, err := location.Open(ctx, loc.URL, opts)
	if err != nil {
		return nil, codes.Wrap(codes.StorageConnectivity, fmt.Errorf("storage location %s: %w", name, err))
	}
	return be, nil
}

// Open returns a fresh session on the named location's repository.
func (s *Stores) Open(ctx context.Context, name string) (*repository.Repository, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.m[name]; ok {
		return r.Session(), nil
	}
	be, err := s.backend(ctx, name)
	if err != nil {
		return nil, err
	}
	pw, err := s.cfg.Password()
	if err != nil {
		be.Close()
		return nil, codes.Wrap(codes.KeyUnavailable, err)
	}
	r, err := repository.Open(ctx, be, repository.Credentials{Password: pw})
	if err != nil {
		be.Close()
		return nil, fmt.Errorf("storage location %s: %w", name, err)
	}
	s.m[name] = r
	return r.Session(), nil
}

// EnsureInitialized creates a repository in every configured location that
// has none. The primary gets fresh keys (wrapped by the password); the
// others share its key material, so copies between them move only the
// blobs that are missing.
func (s *Stores) EnsureInitialized(ctx context.Context) error {
	pw, err := s.cfg.Password()
	if err != nil {
		return codes.Wrap(codes.KeyUnavailable, err)
	}
	var keys *repository.Keys
	for _, name := range s.cfg.LocationNames() {
		r, err := s.Open(ctx, name)
		if err == nil {
			if keys == nil {
				keys = r.Keys()
			}
			continue
		}
		if !errors.Is(err, repository.ErrNotInitialized) {
			return err
		}
		be, err := s.backend(ctx, name)
		if err != nil {
			return err
		}
		kdf := repository.DefaultKDF()
		if os.Getenv("BACKUPD_TEST_KDF") == "1" {
			kdf = repository.TestKDF()
		}
		r, err = repository.Init(ctx, be, repository.InitOptions{Keys: keys,
			Wrapping: repository.Wrapping{Password: pw, KDF: &kdf}})
		if err != nil {
			be.Close()
			return fmt.Errorf("initialising storage location %s: %w", name, err)
		}
		if keys == nil {
			keys = r.Keys()
		}
		s.mu.Lock()
		s.m[name] = r
		s.mu.Unlock()
	}
	return nil
}

// Close closes every opened location.
func (s *Stores) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, r := range s.m {
		r.Backend().Close()
		delete(s.m, n)
	}
}
