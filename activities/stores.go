package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"backupd/codes"
	"backupd/config"
	"backupd/repository"
	"backupd/storage"
	"backupd/storage/location"
	"backupd/storage/prefix"
	"backupd/storage/s3"
)

// Stores opens the configured storage locations' repositories. The key is
// derived once per location; every job then gets its own Session. Each
// location opens on its own: one that hangs (a blackholed SFTP host waits
// out its dial) delays only its own callers, and a failure is remembered
// for failureTTL so a dead location answers at once instead of every
// caller dialling again.
type Stores struct {
	cfg  *config.Config
	mu   sync.Mutex // guards locs only, never held across I/O
	locs map[string]*locState
	// LockHorizon, when set, tells the longest the retention rules keep a
	// backup in a location (the catalog knows): an immutable location's
	// lock period follows it (config.ObjectLock). Without it, locks last
	// the configured maximum.
	LockHorizon func(ctx context.Context, location string) (time.Duration, error)
	horizons    sync.Map // location -> horizonEntry
}

type horizonEntry struct {
	d  time.Duration
	at time.Time
}

// LockPeriod is the named location's lock period now, and false when it
// does not lock (no object_lock).
func (s *Stores) LockPeriod(name string) (time.Duration, bool) {
	ol := s.cfg.Storage[name].ObjectLock
	if ol == nil {
		return 0, false
	}
	return s.lockPeriod(name, ol), true
}

// lockPeriod is the named immutable location's lock period now (asked of
// LockHorizon at most once a minute).
func (s *Stores) lockPeriod(name string, ol *config.ObjectLock) time.Duration {
	if s.LockHorizon == nil {
		return ol.LockPeriod(0)
	}
	if e, ok := s.horizons.Load(name); ok && time.Since(e.(horizonEntry).at) < time.Minute {
		return ol.LockPeriod(e.(horizonEntry).d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := s.LockHorizon(ctx, name)
	if err != nil {
		slog.Warn("the retention horizon is unknown: objects are locked for the maximum period", "location", name, "error", err)
		d = 0
	}
	s.horizons.Store(name, horizonEntry{d: d, at: time.Now()})
	return ol.LockPeriod(d)
}

// failureTTL is how long a location's failure to open is answered from
// memory.
var failureTTL = 5 * time.Second

type locState struct {
	mu      sync.Mutex
	repo    *repository.Repository
	err     error
	errAt   time.Time
	opening chan struct{} // closed when the open in flight ends
}

// NewStores prepares (but does not yet open) the locations of cfg.
func NewStores(cfg *config.Config) *Stores {
	return &Stores{cfg: cfg, locs: map[string]*locState{}}
}

func (s *Stores) backend(ctx context.Context, name string) (storage.Backend, error) {
	return s.backendWith(ctx, name, "")
}

func (s *Stores) backendWith(ctx context.Context, name, grant string) (storage.Backend, error) {
	loc, ok := s.cfg.Storage[name]
	if !ok {
		return nil, codes.New(codes.InvalidConfiguration, "no storage location named %q (configured: %v)", name, s.cfg.LocationNames())
	}
	opts := location.Options{SSHKeyFile: loc.SSHKey, KnownHostsFile: loc.KnownHosts,
		S3AccessKey: loc.AccessKey, S3SecretKey: loc.SecretKey, S3CreateBucket: true,
		HostToken: loc.HostToken, HostPin: loc.HostPin, HostGrant: grant,
		AppendOnly: loc.AppendOnly, Unlocked: repository.Unlocked}
	if ol := loc.ObjectLock; ol != nil {
		opts.S3Lock = &s3.Lock{Compliance: ol.Compliance(), Period: ol.LockPeriod(0),
			Current: func() time.Duration { return s.lockPeriod(name, ol) }}
	}
	be, err := location.Open(ctx, loc.URL, opts)
	if err != nil {
		return nil, codes.Wrap(codes.StorageConnectivity, fmt.Errorf("storage location %s: %w", name, err))
	}
	return be, nil
}

func (s *Stores) state(name string) *locState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.locs[name]
	if st == nil {
		st = &locState{}
		s.locs[name] = st
	}
	return st
}

// Open returns a fresh session on the named location's repository.
func (s *Stores) Open(ctx context.Context, name string) (*repository.Repository, error) {
	return s.OpenIn(ctx, name, "")
}

// OpenIn returns a fresh session on the repository below dir in the
// named location (an enrolled host's, hosts/<id>; "" is the location's
// own), opened with the same credentials and kept open like it.
func (s *Stores) OpenIn(ctx context.Context, name, dir string) (*repository.Repository, error) {
	if _, ok := s.cfg.Storage[name]; !ok {
		return nil, codes.New(codes.InvalidConfiguration, "no storage location named %q (configured: %v)", name, s.cfg.LocationNames())
	}
	key := name
	if dir != "" {
		key = name + "\x00" + dir
	}
	st := s.state(key)
	for {
		st.mu.Lock()
		switch {
		case st.repo != nil:
			r := st.repo
			st.mu.Unlock()
			return r.Session(), nil
		case st.err != nil && time.Since(st.errAt) < failureTTL:
			err := st.err
			st.mu.Unlock()
			return nil, err
		case st.opening != nil:
			wait := st.opening
			st.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, codes.Wrap(codes.StorageConnectivity, fmt.Errorf("storage location %s: still opening: %w", name, ctx.Err()))
			}
		}
		done := make(chan struct{})
		st.opening = done
		st.mu.Unlock()
		r, err := s.open(ctx, name, dir)
		st.mu.Lock()
		st.opening = nil
		if err == nil {
			st.repo, st.err = r, nil
		} else if ctx.Err() == nil {
			st.err, st.errAt = err, time.Now() // this caller's own cancellation is not the location's failure
		}
		close(done)
		st.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return r.Session(), nil
	}
}

func (s *Stores) open(ctx context.Context, name, dir string) (*repository.Repository, error) {
	be, err := s.backend(ctx, name)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		pb, err := prefix.New(be, dir)
		if err != nil {
			be.Close()
			return nil, err
		}
		be = pb
	}
	r, err := s.openOn(ctx, be)
	if err != nil {
		if errors.Is(err, repository.ErrNoMatchingKey) {
			err = fmt.Errorf("%w: the repository password (%s) opens none of its key entries; it was initialised with another password: use that one, or point this location at an empty directory", err, s.cfg.PasswordSource())
		}
		return nil, fmt.Errorf("storage location %s: %w", name, err)
	}
	// The worker's cache of index files, tree packs and manifests: jobs
	// then download only what is new. One that cannot be made costs
	// requests, never a job. Without a var directory (a configuration
	// made in code) there is none: never one in the working directory.
	if s.cfg.VarDir == "" {
		return r, nil
	}
	if c, err := repository.OpenCache(filepath.Join(s.cfg.VarDir, "cache"), r.Config().ID); err == nil {
		r.SetCache(c)
	} else {
		slog.Warn("working without a local cache", "location", name, "error", err)
	}
	return r, nil
}

// OpenGranted opens, on an enrolled host, the repository a restore grant
// opened to it (its own or another host's, read-only, through the
// server) with the key entry the server wrapped to this host's key. It is
// opened afresh each time, without the local cache: nothing of it stays
// on the host beyond the restore.
func (s *Stores) OpenGranted(ctx context.Context, name, grant string) (*repository.Repository, error) {
	if s.cfg.HostKeyFile == "" || s.cfg.Storage[name].HostToken == "" {
		return nil, codes.New(codes.InvalidConfiguration, "restore grant %s: this worker is not an enrolled host's (a grant is read through the server)", grant)
	}
	be, err := s.backendWith(ctx, name, grant)
	if err != nil {
		return nil, err
	}
	r, err := s.openOn(ctx, be)
	if err != nil {
		return nil, fmt.Errorf("storage location %s under restore grant %s: %w", name, grant, err)
	}
	return r, nil
}

// openOn opens the repository on be with this worker's credentials; be
// is closed when it fails.
func (s *Stores) openOn(ctx context.Context, be storage.Backend) (*repository.Repository, error) {
	creds, err := s.credentials()
	if err != nil {
		be.Close()
		return nil, codes.Wrap(codes.KeyUnavailable, err)
	}
	r, err := repository.Open(ctx, be, creds)
	if err != nil {
		be.Close()
		return nil, err
	}
	return r, nil
}

// credentials open the repositories: the password, or an enrolled
// host's RSA key (its write-only entries).
func (s *Stores) credentials() (repository.Credentials, error) {
	if s.cfg.HostKeyFile != "" {
		b, err := os.ReadFile(s.cfg.HostKeyFile)
		if err != nil {
			return repository.Credentials{}, fmt.Errorf("this host's key: %w", err)
		}
		k, err := repository.ParseRSAPrivateKey(b)
		if err != nil {
			return repository.Credentials{}, fmt.Errorf("this host's key %s: %w", s.cfg.HostKeyFile, err)
		}
		return repository.Credentials{RSAPrivateKey: k}, nil
	}
	pw, err := s.cfg.Password()
	return repository.Credentials{Password: pw}, err
}

// set records a location's repository (just initialised).
func (s *Stores) set(name string, r *repository.Repository) {
	st := s.state(name)
	st.mu.Lock()
	st.repo, st.err = r, nil
	st.mu.Unlock()
}

// EnsureInitialized creates a repository in every configured location that
// has none. The primary gets fresh keys (wrapped by the password); the
// others share its key material, so copies between them move only the
// blobs that are missing.
func (s *Stores) EnsureInitialized(ctx context.Context) error {
	if s.cfg.HostKeyFile != "" {
		return nil // an enrolled host's repositories are the server's to make
	}
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
		s.set(name, r)
	}
	return nil
}

// Close closes every opened location.
func (s *Stores) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, st := range s.locs {
		st.mu.Lock()
		if st.repo != nil {
			st.repo.Backend().Close()
		}
		st.mu.Unlock()
		delete(s.locs, n)
	}
}
