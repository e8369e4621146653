package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"backupd/activities"
	"backupd/api"
	"backupd/models"
	"backupd/repository"
	"backupd/storage"
	"backupd/storage/hostproxy"
	"backupd/storage/prefix"
)

// An enrolled host's repositories: one per storage location, under
// hosts/<host id>/, with keys of its own (a host's compromise or a grant
// to read one host's backups reveals no other host's). The server holds
// them by its repository password; the host holds one key entry there,
// write-only, wrapped to the RSA key it made at enrolment. The host
// reaches its repositories only through the routes below, which store
// what a backup writes and refuse what would destroy a backup: a
// compromised host cannot delete or overwrite its past backups, read
// another host's, or see the entries that wrap the server's key.

// hostRepoDir is where a host's repository lives in each location.
func hostRepoDir(h *models.Host) string { return activities.HostRepoDir(h.ID) }

// maxHostObject bounds one object a host stores (a pack is about 16 MiB);
// maxHostManifest a manifest (a few kilobytes each); maxHostRenewable the
// registrations or markers a host holds at once (a backup has one of each
// per component it writes).
const (
	maxHostObject    = 64 << 20
	maxHostManifest  = 16 << 20
	maxHostRenewable = 256
)

// hostPutMemory bounds the bytes of all hosts' uploads held at once;
// hostPutDeadline, the time one upload's body may take.
const (
	hostPutMemory   = 512 << 20
	hostPutDeadline = 5 * time.Minute
)

// putBudget is a byte semaphore.
type putBudget struct {
	mu   sync.Mutex
	used int64
	wake chan struct{}
}

// acquire waits until n more bytes fit (ctx ending: an error), and
// returns their release.
func (b *putBudget) acquire(ctx context.Context, n int64) (func(), error) {
	for {
		b.mu.Lock()
		if b.used+n <= hostPutMemory || b.used == 0 {
			b.used += n
			b.mu.Unlock()
			return func() {
				b.mu.Lock()
				b.used -= n
				if b.wake != nil {
					close(b.wake)
					b.wake = nil
				}
				b.mu.Unlock()
			}, nil
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, &apiError{Status: http.StatusServiceUnavailable, Code: "BUSY", Message: "the server is storing other hosts' uploads; retry"}
		}
	}
}

// hostWritable: the top-level names a host may add objects under.
// hostRenewable: of those, the ones it may also replace and delete (a
// running backup's registrations, refreshed and removed by it).
var (
	hostWritable  = map[string]bool{"data": true, "index": true, "manifests": true, "writers": true, "pending": true}
	hostRenewable = map[string]bool{"writers": true, "pending": true}
	// renewableMax bounds the renewable objects (a pending marker lists
	// the packs its component depends on)
	renewableMax = map[string]int64{"writers": 64 << 10, "pending": 16 << 20}
)

func topOf(name string) string {
	t, _, _ := strings.Cut(name, "/")
	return t
}

// hostRepoView is what a host's storage request reaches: its own
// repository in a location (read and add), or, under a restore grant, the
// granted repository (read-only).
type hostRepoView struct {
	host  *models.Host
	be    storage.Backend // not to be closed: the location's is shared
	key   string          // the one key entry it may see
	grant *models.HostGrant
}

// hostBackend is the view of the calling host's request.
func (s *Server) hostBackend(r *http.Request) (*hostRepoView, error) {
	h := stateOf(r).host
	loc := mux.Vars(r)["location"]
	if _, ok := s.Cfg.Storage[loc]; !ok {
		return nil, &apiError{Status: http.StatusNotFound, Code: "UNKNOWN_LOCATION", Message: sprintf("no storage location %q for this host", loc)}
	}
	v := &hostRepoView{host: h, key: h.Repos[loc]}
	dir := hostRepoDir(h)
	if gid := r.Header.Get(hostproxy.GrantHeader); gid != "" {
		g, err := s.Store.GetGrant(r.Context(), gid)
		if err != nil && !errors.Is(err, models.ErrNotFound) {
			return nil, err
		}
		if err != nil || g.Reader != h.ID || g.Location != loc || !g.Live(time.Now()) {
			return nil, forbiddenObject("restore grant %s does not let host %s read location %s: it is another host's or location's, or its restore is over (grants end with their restore)", gid, h.Name, loc)
		}
		v.grant, v.key, dir = g, g.KeyEntry, activities.HostRepoDir(g.Source)
	} else if v.key == "" {
		return nil, &apiError{Status: http.StatusConflict, Code: "CONFLICT",
			Message: sprintf("host %s has no repository in location %s yet: the server makes it when the host announces itself and the location answers", h.Name, loc)}
	}
	repo, err := s.Stores.Open(r.Context(), loc)
	if err != nil {
		return nil, s.storageError(r, err)
	}
	if v.be, err = prefix.New(repo.Backend(), dir); err != nil {
		return nil, err
	}
	return v, nil
}

// objectName is the request's object name, checked.
func objectName(r *http.Request) (string, error) {
	n := r.URL.Query().Get("name")
	if err := storage.ValidName(n); err != nil {
		return "", badRequest("name", "name %q: not a valid object name", n)
	}
	return n, nil
}

// hostObject is the calling host's view and the request's object name,
// checked; for a read, one the host may see (the others answer as
// missing); for a write, not under a grant.
func (s *Server) hostObject(r *http.Request, read bool) (*hostRepoView, string, error) {
	v, err := s.hostBackend(r)
	if err != nil {
		return nil, "", err
	}
	name, err := objectName(r)
	if err != nil {
		return nil, "", err
	}
	if read && !v.mayRead(name) {
		return nil, "", s.storageError(r, storage.ErrNotFound)
	}
	if !read && v.grant != nil {
		return nil, "", forbiddenObject("restore grant %s reads; nothing is written or deleted under it", v.grant.ID)
	}
	return v, name, nil
}

// mayRead: everything of the repository except the key entries the host
// does not hold (the server's, wrapped by its password; other grants').
func (v *hostRepoView) mayRead(name string) bool {
	if k, ok := strings.CutPrefix(name, "keys/"); ok {
		return k == v.key
	}
	return true
}

// storageError answers a host: the contract's own errors as they are,
// anything else (the location's address, credentials' errors) only in
// the server's log.
func (s *Server) storageError(r *http.Request, err error) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "no such object"}
	case errors.Is(err, storage.ErrInvalidRange):
		return &apiError{Status: http.StatusRequestedRangeNotSatisfiable, Code: "INVALID_RANGE", Message: "the range is outside the object"}
	case errors.Is(err, storage.ErrInvalidName):
		return badRequest("name", "not a valid object name")
	case errors.Is(err, context.Canceled):
		return err
	}
	s.Log.Error("a host's storage request failed", "host", stateOf(r).host.Name, "location", mux.Vars(r)["location"], "err", err, "request_id", requestID(r))
	return &apiError{Status: http.StatusServiceUnavailable, Code: "STORAGE_UNAVAILABLE",
		Message: "the storage location did not answer; retry (request " + requestID(r) + " in the server's log has the cause)"}
}

func forbiddenObject(format string, args ...any) error {
	return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Message: sprintf(format, args...)}
}

func (s *Server) hostObjectList(w http.ResponseWriter, r *http.Request) error {
	v, err := s.hostBackend(r)
	if err != nil {
		return err
	}
	h, be, loc := v.host, v.be, mux.Vars(r)["location"]
	p := r.URL.Query().Get("prefix")
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	started := false
	err = be.List(r.Context(), p, func(oi storage.ObjectInfo) error {
		if !v.mayRead(oi.Name) {
			return nil
		}
		started = true
		return enc.Encode(api.StoredObject{Name: oi.Name, Size: oi.Size, ModTime: oi.ModTime.UTC().Format(time.RFC3339Nano)})
	})
	if err != nil && !started {
		return s.storageError(r, err)
	}
	if err != nil {
		// the listing is cut short: the client sees no final line
		s.Log.Warn("host storage listing failed midway", "host", h.Name, "location", loc, "err", err)
		return nil
	}
	enc.Encode(api.StoredObject{End: true})
	return nil
}

func (s *Server) hostObjectStat(w http.ResponseWriter, r *http.Request) error {
	v, name, err := s.hostObject(r, true)
	if err != nil {
		return err
	}
	be := v.be
	oi, err := be.Stat(r.Context(), name)
	if err != nil {
		return s.storageError(r, err)
	}
	writeJSON(w, http.StatusOK, api.StoredObject{Name: name, Size: oi.Size, ModTime: oi.ModTime.UTC().Format(time.RFC3339Nano)})
	return nil
}

func (s *Server) hostObjectGet(w http.ResponseWriter, r *http.Request) error {
	v, name, err := s.hostObject(r, true)
	if err != nil {
		return err
	}
	be := v.be
	if top := topOf(name); v.grant == nil && (top == "data" || top == "manifests") {
		// a writer needs none of its past packs and manifests (it asks
		// only whether one is there): a host that once held a restore
		// grant's key must not fetch them later
		if _, err := be.Stat(r.Context(), name); err != nil {
			return s.storageError(r, err)
		}
		return forbiddenObject("a host reads %s only under a restore grant: it writes its packs and manifests, it does not read them back", name)
	}
	q := r.URL.Query()
	off, length := int64(0), int64(-1)
	if v := q.Get("offset"); v != "" {
		if off, err = strconv.ParseInt(v, 10, 64); err != nil {
			return badRequest("offset", "offset %q: not a number", v)
		}
	}
	if v := q.Get("length"); v != "" {
		if length, err = strconv.ParseInt(v, 10, 64); err != nil {
			return badRequest("length", "length %q: not a number", v)
		}
	}
	rc, err := be.Get(r.Context(), name, off, length)
	if err != nil {
		return s.storageError(r, err)
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(w, rc)
	return err
}

func (s *Server) hostObjectPut(w http.ResponseWriter, r *http.Request) error {
	v, name, err := s.hostObject(r, false)
	if err != nil {
		return err
	}
	be := v.be
	top := topOf(name)
	if !hostWritable[top] {
		return forbiddenObject("a host cannot write %s: it adds packs, index files, manifests and its own registrations, nothing else", name)
	}
	if r.ContentLength < 0 {
		return &apiError{Status: http.StatusLengthRequired, Code: "LENGTH_REQUIRED", Message: "send Content-Length"}
	}
	h := stateOf(r).host
	if max := renewableMax[top]; max > 0 && r.ContentLength > max {
		// registrations and markers are small: they are not counted
		// against the quota, so they may not carry data
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "REQUEST_TOO_LARGE", Message: sprintf("an object under %s/ is at most %d bytes", top, max)}
	}
	if h.QuotaHardBytes > 0 && !hostRenewable[top] {
		// a backup that began under the quota stops at its next object
		// once the host is past it (its registrations may still end it)
		used, err := s.hostUse(r, h)
		if err != nil {
			return err
		}
		if used >= h.QuotaHardBytes {
			return overHardQuota(h, used)
		}
	}
	if r.ContentLength > maxHostObject {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "REQUEST_TOO_LARGE", Message: sprintf("an object is at most %d bytes", maxHostObject)}
	}
	if top == "manifests" && r.ContentLength > maxHostManifest {
		// the server reads every manifest whole when it collects the
		// host's repository
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "REQUEST_TOO_LARGE", Message: sprintf("a manifest is at most %d bytes", maxHostManifest)}
	}
	if hostRenewable[top] {
		// registrations and markers are not counted against the quota, and
		// the server reads them all when it collects: a host has a bounded
		// number
		if _, err := be.Stat(r.Context(), name); errors.Is(err, storage.ErrNotFound) {
			n := 0
			if err := be.List(r.Context(), top+"/", func(storage.ObjectInfo) error { n++; return nil }); err != nil {
				return s.storageError(r, err)
			}
			if n >= maxHostRenewable {
				return &apiError{Status: http.StatusConflict, Code: "CONFLICT", Message: sprintf("host %s has %d objects under %s/, the most it may: a backup removes its own when it ends", h.Name, n, top)}
			}
		}
	}
	if !hostRenewable[top] {
		// added once, never replaced: a past backup cannot be overwritten
		if _, err := be.Stat(r.Context(), name); err == nil {
			return &apiError{Status: http.StatusConflict, Code: "CONFLICT", Message: sprintf("%s exists: a host adds objects, it never replaces them", name)}
		} else if !errors.Is(err, storage.ErrNotFound) {
			return s.storageError(r, err)
		}
	}
	// bodies are held in memory (a backend's Put may need to read twice):
	// all hosts together hold at most hostPutMemory, and a body that
	// trickles in is cut off
	release, err := s.hostPuts.acquire(r.Context(), r.ContentLength)
	if err != nil {
		return err
	}
	defer release()
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(hostPutDeadline))
	buf := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, buf); err != nil {
		return badRequest("", "the body ended before Content-Length (%d bytes): %v", r.ContentLength, err)
	}
	if !hostRenewable[top] {
		// again now that the body is here: the window is the Put alone
		if _, err := be.Stat(r.Context(), name); err == nil {
			return &apiError{Status: http.StatusConflict, Code: "CONFLICT", Message: sprintf("%s exists: a host adds objects, it never replaces them", name)}
		}
	}
	if err := be.Put(r.Context(), name, bytes.NewReader(buf), int64(len(buf))); err != nil {
		return s.storageError(r, err)
	}
	if !hostRenewable[top] {
		// counted by the server, whatever the host's manifests will say
		if err := s.Store.AddHostWritten(context.WithoutCancel(r.Context()), h.ID, int64(len(buf))); err != nil {
			s.Log.Error("counting what a host stored", "host", h.Name, "err", err)
		}
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) hostObjectDelete(w http.ResponseWriter, r *http.Request) error {
	v, name, err := s.hostObject(r, false)
	if err != nil {
		return err
	}
	h, be := v.host, v.be
	if !hostRenewable[topOf(name)] {
		return forbiddenObject("a host cannot delete %s: only the server's cleanup removes what backups stored (host %s)", name, h.Name)
	}
	if err := be.Delete(r.Context(), name); err != nil {
		return s.storageError(r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ensureHostRepos makes the host's repository in every location that
// lacks one (the first gets fresh keys, the others share them, as the
// server's own locations do) and its write-only key entry there. A
// location that does not answer is left for the next announcement.
func (s *Server) ensureHostRepos(ctx context.Context, h *models.Host) error {
	if h.Local || h.PublicKey == "" {
		return nil
	}
	missing := false
	for _, loc := range s.Cfg.LocationNames() {
		missing = missing || h.Repos[loc] == ""
	}
	if !missing {
		return nil // the common case: every announcement after the first
	}
	pub, err := repository.ParseRSAPublicKey([]byte(h.PublicKey))
	if err != nil {
		return fmt.Errorf("host %s's key: %w", h.Name, err)
	}
	pw, err := s.Cfg.Password()
	if err != nil {
		return err
	}
	kdf := repository.DefaultKDF()
	if os.Getenv("BACKUPD_TEST_KDF") == "1" {
		kdf = repository.TestKDF()
	}
	var keys *repository.Keys
	var errs []error
	changed := false
	for _, loc := range s.Cfg.LocationNames() {
		root, err := s.Stores.Open(ctx, loc)
		if err != nil {
			errs = append(errs, fmt.Errorf("location %s: %w", loc, err))
			continue
		}
		be, err := prefix.New(root.Backend(), hostRepoDir(h))
		if err != nil {
			return err
		}
		r, err := repository.Open(ctx, be, repository.Credentials{Password: pw})
		if errors.Is(err, repository.ErrNotInitialized) {
			r, err = repository.Init(ctx, be, repository.InitOptions{Keys: keys, Wrapping: repository.Wrapping{Password: pw, KDF: &kdf}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("location %s: host %s's repository: %w", loc, h.Name, err))
			continue
		}
		if keys == nil {
			keys = r.Keys()
		}
		if h.Repos[loc] != "" {
			continue
		}
		e, err := r.AddKey(ctx, repository.Wrapping{RSAPublicKey: pub, WriteOnly: true})
		if err != nil {
			errs = append(errs, fmt.Errorf("location %s: host %s's key entry: %w", loc, h.Name, err))
			continue
		}
		if h.Repos == nil {
			h.Repos = map[string]string{}
		}
		h.Repos[loc], changed = e.ID, true
	}
	if changed {
		if err := s.Store.SetHostRepos(ctx, h.ID, h.Repos); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// repoDirOf is where a host's backups are in each location: "" for the
// server's own host (and for a host the catalog does not know, as
// backups made before the fleet were), hosts/<id> for an enrolled one.
func (s *Server) repoDirOf(ctx context.Context, host string) (string, error) {
	if host == "" || host == s.Cfg.Host {
		return "", nil
	}
	h, err := s.Store.GetHost(ctx, host)
	if errors.Is(err, models.ErrNotFound) {
		return "", nil
	}
	if err != nil || h.Local {
		return "", err
	}
	return hostRepoDir(h), nil
}

// backupRepoDir is repoDirOf the host of a backup in the catalog.
func (s *Server) backupRepoDir(ctx context.Context, id string) (string, error) {
	b, err := s.Store.GetBackup(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return s.repoDirOf(ctx, b.Host)
}

// backupRepo opens the repository that holds a backup in a location.
func (s *Server) backupRepo(ctx context.Context, loc string, b *models.Backup) (*repository.Repository, error) {
	dir, err := s.repoDirOf(ctx, b.Host)
	if err != nil {
		return nil, err
	}
	return s.Stores.OpenIn(ctx, loc, dir)
}
