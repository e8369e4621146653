package apiserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"backupd/activities"
	"backupd/api"
	"backupd/codes"
	"backupd/jobs"
	"backupd/models"
	"backupd/repository"
)

// The fleet: hosts enrol with a one-time token made by an admin, get a
// credential of their own (role host) and run their jobs on their own
// task queue (backup@<name>). Their workers announce themselves at
// start and every minute; a host is online while those announcements
// keep coming (the server's own host: while a worker polls its queue).

// HostTaskQueue is the task queue of an enrolled host's worker.
func HostTaskQueue(name string) string { return activities.HostQueue(name) }

// announceEvery is how often a host's worker announces itself; a host
// silent for more than twice that is offline.
const announceEvery = time.Minute

var hostName = regexp.MustCompile(api.HostNamePattern)

func validHostName(field, name string) error {
	if !hostName.MatchString(name) || slices.Contains(api.HostRouteWords, name) {
		return badRequest(field, "%s %q: a host name is letters, digits, '.', '_' or '-' (at most 63), starting with a letter or digit, and not enrolments, enrol or self", field, name)
	}
	return nil
}

const labelMax = 20

var labelKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)

func validLabels(field string, l map[string]string) error {
	if len(l) > labelMax {
		return badRequest(field, "%s: at most %d labels", field, labelMax)
	}
	for k, v := range l {
		if !labelKey.MatchString(k) {
			return badRequest(field, "%s: label %q: a key is letters, digits, '.', '_', '-' or '/' (at most 63)", field, k)
		}
		if err := validText(field+"."+k, v, 200); err != nil {
			return err
		}
	}
	return nil
}

// serverFingerprint is sha256:<hex> of the API's TLS certificate (its
// leaf), which an enrolling host pins; "" when the API is plain HTTP.
func (s *Server) serverFingerprint() (string, error) {
	if s.Cfg.API.TLSCert == "" {
		return "", nil
	}
	pair, err := tls.LoadX509KeyPair(s.Cfg.API.TLSCert, s.Cfg.API.TLSKey)
	if err != nil || len(pair.Certificate) == 0 {
		return "", fmt.Errorf("the API's certificate %s: %v", s.Cfg.API.TLSCert, err)
	}
	sum := sha256.Sum256(pair.Certificate[0])
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func enrolmentView(e *models.Enrolment) api.Enrolment {
	v := api.Enrolment{ID: e.ID, Name: e.Name, Labels: e.Labels, CreatedBy: e.CreatedBy, Created: rfc3339(e.CreatedAt),
		Expires: rfc3339(e.ExpiresAt), HostID: e.HostID, State: "unused"}
	switch {
	case e.UsedAt != nil:
		v.State = "used"
	case e.Cancelled:
		v.State = "cancelled"
	case time.Now().After(e.ExpiresAt):
		v.State = "expired"
	}
	return v
}

func (s *Server) createEnrolment(w http.ResponseWriter, r *http.Request) error {
	var req api.EnrolmentRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Name != "" {
		if err := validHostName("name", req.Name); err != nil {
			return err
		}
	}
	if err := validLabels("labels", req.Labels); err != nil {
		return err
	}
	hours := 24
	if req.ValidHours != nil {
		if *req.ValidHours < 1 || *req.ValidHours > 720 {
			return badRequest("valid_hours", "valid_hours: %d is outside 1..720", *req.ValidHours)
		}
		hours = *req.ValidHours
	}
	if req.Name != "" {
		if _, err := s.Store.GetHost(r.Context(), req.Name); err == nil {
			return conflictPlain("a host named " + req.Name + " is enrolled (or was: a revoked host keeps its name); choose another name")
		}
	}
	fp, err := s.serverFingerprint()
	if err != nil {
		return err
	}
	plain, e, err := s.Store.CreateEnrolment(r.Context(), req.Name, req.Labels, user(r), time.Duration(hours)*time.Hour)
	if err != nil {
		return err
	}
	setTarget(r, e.ID)
	cmd := "backupd worker --enrol " + s.publicURL(r) + " " + plain
	if fp != "" {
		cmd += " --server-fingerprint " + fp
	}
	writeJSON(w, http.StatusCreated, api.EnrolmentCreated{Enrolment: enrolmentView(e), Token: plain, Command: cmd,
		ServerFingerprint: fp,
		Message:           fmt.Sprintf("run the command on the new host within %d hours; the token works once and only its hash is kept", hours)})
	return nil
}

// publicURL is the server's base URL as this request reached it.
func (s *Server) publicURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) listEnrolments(w http.ResponseWriter, r *http.Request) error {
	list, err := s.Store.ListEnrolments(r.Context())
	if err != nil {
		return err
	}
	out := api.EnrolmentList{Enrolments: make([]api.Enrolment, 0, len(list))}
	for i := range list {
		out.Enrolments = append(out.Enrolments, enrolmentView(&list[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) cancelEnrolment(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["enrolment_id"]
	setTarget(r, id)
	if err := s.Store.CancelEnrolment(r.Context(), id); errors.Is(err, models.ErrNotFound) {
		return &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "no enrolment " + id}
	} else if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.EnrolmentCancelled{Status: "cancelled", ID: id})
	return nil
}

// hostReport checks what a host says of itself (at enrolment and in
// each announcement) and returns its components as the catalog keeps them.
func hostReport(hardwareID, os, version string, in []api.HostComponent) ([]models.HostComponent, error) {
	for _, f := range []struct{ name, v string }{{"hardware_id", hardwareID}, {"os", os}, {"version", version}} {
		if err := validText(f.name, f.v, 200); err != nil {
			return nil, err
		}
	}
	if len(in) > 200 {
		return nil, badRequest("components", "components: at most 200")
	}
	out := make([]models.HostComponent, 0, len(in))
	for i, c := range in {
		if c.Name == "" || len(c.Name) > 100 || len(c.Kind) > 40 || len(c.Paths) > 100 {
			return nil, badRequest(fmt.Sprintf("components[%d]", i), "components[%d]: a name (at most 100 characters), a kind (at most 40) and at most 100 paths", i)
		}
		if len(c.Problems) > 100 || (c.Source != "" && c.Source != "local" && c.Source != "central") {
			return nil, badRequest(fmt.Sprintf("components[%d]", i), "components[%d]: source is local or central, and at most 100 problems", i)
		}
		for j, p := range c.Problems {
			if err := validText(fmt.Sprintf("components[%d].problems[%d]", i, j), p, 1000); err != nil {
				return nil, err
			}
		}
		if len(c.Databases) > 20 {
			return nil, badRequest(fmt.Sprintf("components[%d].databases", i), "components[%d].databases: at most 20", i)
		}
		hc := models.HostComponent{Name: c.Name, Kind: c.Kind, Paths: c.Paths, Source: c.Source, Problems: c.Problems}
		for j, d := range c.Databases {
			f := fmt.Sprintf("components[%d].databases[%d]", i, j)
			if d.Label == "" || len(d.Kind) > 40 {
				return nil, badRequest(f, "%s: a label and a kind (at most 40 characters)", f)
			}
			for _, v := range []string{d.Label, d.Database} {
				if err := validText(f, v, 200); err != nil {
					return nil, err
				}
			}
			hc.Databases = append(hc.Databases, models.HostDatabase{Label: d.Label, Kind: d.Kind, Database: d.Database})
		}
		out = append(out, hc)
	}
	return out, nil
}

// minHostKeyBits: the host's key wraps repository keys.
const minHostKeyBits = 3072

// enrol registers a new host. The route needs no bearer token: the
// one-time enrolment token in the body is the authority, and a source
// that keeps presenting bad ones is slowed down like one with bad
// bearer tokens.
func (s *Server) enrol(w http.ResponseWriter, r *http.Request) (err error) {
	// the route is open: every refusal slows its source down (wrap has
	// already refused a source over its limit, before the audit log)
	defer func() {
		if err != nil {
			s.limiter.spend(sourceOf(r))
		}
	}()
	var req api.EnrolRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Token == "" {
		return badRequest("token", "token is required: the one-time enrolment token an admin made (backupd host enrol-token)")
	}
	if err := validHostName("name", req.Name); err != nil {
		return err
	}
	comps, err := hostReport(req.HardwareID, req.OS, req.Version, req.Components)
	if err != nil {
		return err
	}
	pub, err := repository.ParseRSAPublicKey([]byte(req.PublicKey))
	if err != nil {
		return badRequest("public_key", "public_key: %v (want an RSA public key in PEM)", err)
	}
	if pub.N.BitLen() < minHostKeyBits {
		return badRequest("public_key", "public_key: %d bits; a host key needs at least %d", pub.N.BitLen(), minHostKeyBits)
	}
	h := &models.Host{ID: models.NewHostID(), Name: req.Name, HardwareID: req.HardwareID, OS: req.OS, Version: req.Version,
		Components: comps, PublicKey: req.PublicKey}
	// nor a name whose worker queue is one of the server's (the gateway
	// refuses those queues too)
	reserved := []string{s.Cfg.Host}
	for _, q := range []string{s.Cfg.Temporal.TaskQueue, activities.CatalogTaskQueue, activities.HostJobsTaskQueue} {
		if n, ok := activities.HostOfQueue(q); ok {
			reserved = append(reserved, n)
		}
	}
	cred, err := s.Store.Enrol(r.Context(), req.Token, h, reserved...)
	switch {
	case errors.Is(err, models.ErrEnrolmentInvalid):
		return &apiError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED",
			Message: "the enrolment token is unknown, expired, cancelled or already used; ask an admin for a new one (POST /backup/hosts/enrolments, or backupd host enrol-token)"}
	case errors.Is(err, models.ErrHostNameTaken):
		return conflictPlain(err.Error() + ": enrol under another name (--name)")
	case err != nil:
		return err
	}
	setTarget(r, h.ID)
	now := time.Now().UTC()
	h.LastSeen = &now
	s.Store.Announce(r.Context(), h.ID, map[string]any{})
	s.Log.Info("host enrolled", "host", h.Name, "host_id", h.ID, "request_id", requestID(r))
	locs := s.hostRepos(r, h)
	s.hl.invalidate()
	writeJSON(w, http.StatusCreated, api.Enrolled{HostID: h.ID, Name: h.Name, Credential: cred, TaskQueue: HostTaskQueue(h.Name),
		Namespace: s.Cfg.Temporal.Namespace, Locations: locs})
	return nil
}

// hostRepos sets up what the host's repositories lack and returns the
// locations where it has one; a location that fails is logged and left
// for the host's next announcement.
func (s *Server) hostRepos(r *http.Request, h *models.Host) []string {
	ready := true
	for _, l := range s.Cfg.LocationNames() {
		ready = ready && h.Repos[l] != ""
	}
	// the common case takes no lock: one host's slow location must not
	// hold up every other host's announcement
	if !ready && !h.Local {
		s.hostRepoMu.Lock()
		if fresh, err := s.Store.GetHost(r.Context(), h.ID); err == nil {
			h.Repos = fresh.Repos
		}
		if err := s.ensureHostRepos(r.Context(), h); err != nil {
			s.Log.Warn("a host's repositories are not all ready; retried at its next announcement", "host", h.Name, "err", err, "request_id", requestID(r))
		}
		s.hostRepoMu.Unlock()
	}
	locs := []string{}
	for _, l := range s.Cfg.LocationNames() {
		if h.Repos[l] != "" {
			locs = append(locs, l)
		}
	}
	return locs
}

func (s *Server) announce(w http.ResponseWriter, r *http.Request) error {
	h := stateOf(r).host
	var req api.AnnounceRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	comps, err := hostReport(req.HardwareID, req.OS, req.Version, req.Components)
	if err != nil {
		return err
	}
	if req.CentralVersion < 0 || req.CentralVersion > h.CentralVersion {
		return badRequest("central_version", "central_version: %d is not a version this server gave (the newest is %d)", req.CentralVersion, h.CentralVersion)
	}
	fields := map[string]any{"components": models.ToJSON(comps), "stopped_at": nil, "applied_version": req.CentralVersion}
	if req.Stopping {
		fields["stopped_at"] = time.Now().UTC()
	}
	if req.HardwareID != "" {
		if h.HardwareID != "" && h.HardwareID != req.HardwareID {
			// the credential moved to other hardware: said loudly, not refused
			// (a replaced disk or board changes it too)
			s.Log.Warn("a host's hardware id changed", "host", h.Name, "was", h.HardwareID, "now", req.HardwareID)
		}
		fields["hardware_id"] = req.HardwareID
	}
	if req.OS != "" {
		fields["os"] = req.OS
	}
	if req.Version != "" {
		fields["version"] = req.Version
	}
	if err := s.Store.Announce(r.Context(), h.ID, fields); errors.Is(err, models.ErrNotFound) {
		return &apiError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: "this host was revoked: enrol it again"}
	} else if err != nil {
		return err
	}
	if req.Stopping || !hostOnline(h) {
		s.hl.invalidate() // the host goes offline or comes back: lists say so at once
	}
	locs := s.hostRepos(r, h)
	writeJSON(w, http.StatusOK, api.Announced{HostID: h.ID, Name: h.Name, TaskQueue: HostTaskQueue(h.Name), Locations: locs,
		Central: centralView(h.Central), CentralVersion: h.CentralVersion})
	return nil
}

func (s *Server) rotateHostCredential(w http.ResponseWriter, r *http.Request) error {
	h := stateOf(r).host
	setTarget(r, h.ID)
	cred, _, err := s.Store.RotateHostCredential(r.Context(), h.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.CredentialRotated{HostID: h.ID, Credential: cred})
	return nil
}

// hostTotals caches the per-host sums for a few seconds: the host list
// is polled by consoles and monitors.
type hostTotals struct {
	mu  sync.Mutex
	at  time.Time
	gen int64 // the catalog's generation they were summed at
	val map[string]models.HostTotals
}

// totalsByHost are summed again when the catalog changed, at most once
// a second (a busy catalog changes all the time).
func (s *Server) totalsByHost(r *http.Request) (map[string]models.HostTotals, error) {
	s.htot.mu.Lock()
	defer s.htot.mu.Unlock()
	gen := s.Store.Generation()
	if s.htot.val != nil && (gen == s.htot.gen || time.Since(s.htot.at) < time.Second) {
		return s.htot.val, nil
	}
	v, err := s.Store.TotalsByHost(r.Context())
	if err != nil {
		return nil, err
	}
	s.htot.val, s.htot.at, s.htot.gen = v, time.Now(), gen
	return v, nil
}

func (s *Server) hostView(r *http.Request, h *models.Host, tot map[string]models.HostTotals) (api.Host, error) {
	v := api.Host{ID: h.ID, Name: h.Name, Local: h.Local, State: "offline", TaskQueue: HostTaskQueue(h.Name),
		LastSeen: rfc3339ptr(h.LastSeen), Enrolled: rfc3339(h.EnrolledAt), EnrolledBy: h.EnrolledBy,
		Revoked: rfc3339ptr(h.RevokedAt), Version: h.Version, OS: h.OS, HardwareID: h.HardwareID,
		Labels: h.Labels, Components: []api.HostComponent{}, LastBackups: map[string]api.HostLastBackup{},
		Central: centralView(h.Central), CentralState: "applied"}
	if h.AppliedVersion != h.CentralVersion {
		v.CentralState = "pending"
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	for _, c := range h.Components {
		hc := api.HostComponent{Name: c.Name, Kind: c.Kind, Paths: c.Paths, Source: c.Source, Problems: c.Problems}
		for _, d := range c.Databases {
			hc.Databases = append(hc.Databases, api.HostDatabase{Label: d.Label, Kind: d.Kind, Database: d.Database})
		}
		v.Components = append(v.Components, hc)
	}
	switch {
	case h.Status == models.HostRevoked:
		v.State = "revoked"
	case h.Local:
		v.TaskQueue = s.Cfg.Temporal.TaskQueue
		for _, wi := range s.workers(r.Context()) {
			if wi.WorkflowPollers > 0 && wi.ActivityPollers > 0 {
				v.State = "online"
			}
			if wi.LastPoll != nil {
				v.LastSeen = rfc3339ptr(wi.LastPoll)
			}
		}
		v.Components = s.Cfg.HostComponents()
	case hostOnline(h):
		v.State = "online"
	}
	t := tot[h.Name]
	v.Backups, v.StorageBytes, v.WrittenBytes = t.Backups, t.AddedBytes, h.WrittenBytes
	v.Quota = api.HostQuota{SoftBytes: h.QuotaSoftBytes, HardBytes: h.QuotaHardBytes, State: quotaState(h, max(t.AddedBytes, h.WrittenBytes))}
	last, err := s.Store.HostLastBackups(r.Context(), h)
	if err != nil {
		return v, err
	}
	for c, b := range last {
		v.LastBackups[c] = api.HostLastBackup{BackupID: b.ID, Timestamp: rfc3339(b.Timestamp)}
	}
	return v, nil
}

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	state, sel := q.Get("state"), q.Get("labels")
	if state != "" {
		if err := oneOf("state", state, api.HostStates...); err != nil {
			return err
		}
	}
	if sel != "" {
		for _, term := range strings.Split(sel, ",") {
			if k, _, ok := strings.Cut(strings.TrimSpace(term), "="); !ok || !labelKey.MatchString(k) {
				return badRequest("labels", "labels %q: want key=value[,key=value...]", sel)
			}
		}
	}
	if err := s.ensureLocalHost(r.Context()); err != nil {
		return err
	}
	body, err := s.hl.get(r, state+"\x00"+sel, func(r *http.Request) (any, error) { return s.hostList(r, state, sel) })
	if err != nil {
		return err
	}
	writeRawJSON(w, http.StatusOK, body)
	return nil
}

// hostList works GET /backup/hosts' answer out.
func (s *Server) hostList(r *http.Request, state, sel string) (api.HostList, error) {
	list, err := s.Store.ListHosts(r.Context())
	if err != nil {
		return api.HostList{}, err
	}
	tot, err := s.totalsByHost(r)
	if err != nil {
		return api.HostList{}, err
	}
	out := api.HostList{Hosts: []api.Host{}}
	for i := range list {
		h := &list[i]
		if sel != "" && !models.SelectorMatches(sel, h.Labels) {
			continue
		}
		v, err := s.hostView(r, h, tot)
		if err != nil {
			return api.HostList{}, err
		}
		if state != "" && v.State != state {
			continue
		}
		out.Hosts = append(out.Hosts, v)
	}
	out.Total = len(out.Hosts)
	return out, nil
}

func (s *Server) findHost(r *http.Request) (*models.Host, error) {
	id := mux.Vars(r)["host_id"]
	if err := s.ensureLocalHost(r.Context()); err != nil {
		return nil, err
	}
	h, err := s.Store.GetHost(r.Context(), id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "no host " + id + " (GET /backup/hosts lists them)"}
	}
	return h, err
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request) error {
	h, err := s.findHost(r)
	if err != nil {
		return err
	}
	return s.writeHost(w, r, h)
}

// writeHost answers with a host's view.
func (s *Server) writeHost(w http.ResponseWriter, r *http.Request, h *models.Host) error {
	tot, err := s.totalsByHost(r)
	if err != nil {
		return err
	}
	v, err := s.hostView(r, h, tot)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// revokeHost revokes a host: its credential is refused from now on (its
// worker stops at its next announcement) and it gets no new jobs. Its
// backups stay, like any backup, until retention or a delete removes
// them.
func (s *Server) revokeHost(w http.ResponseWriter, r *http.Request) error {
	h, err := s.findHost(r)
	if err != nil {
		return err
	}
	setTarget(r, h.ID)
	if h.Local {
		return conflictPlain("host " + h.Name + " is the server's own host; it cannot be revoked")
	}
	setHost(r, h.Name)
	h, err = s.Store.RevokeHost(r.Context(), h.ID, user(r))
	if err != nil {
		return err
	}
	s.Hub.DropToken(h.TokenID)
	s.EndHostGrants(r.Context(), h.ID)
	s.hl.invalidate()
	s.Log.Info("host revoked", "host", h.Name, "host_id", h.ID, "by", user(r))
	writeJSON(w, http.StatusOK, api.HostRevoked{Status: "revoked", ID: h.ID, Name: h.Name})
	return nil
}

// jobHost resolves a job request's host: nil for the server's own (no
// host given, or its name), else an active enrolled host.
func (s *Server) jobHost(ctx context.Context, name string) (*models.Host, error) {
	if name == "" || name == s.Cfg.Host {
		return nil, nil
	}
	h, err := s.Store.GetHost(ctx, name)
	if errors.Is(err, models.ErrNotFound) {
		return nil, badRequest("host", "host %q: no such host (GET /backup/hosts lists them)", name)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case h.Local:
		return nil, badRequest("host", "host %q was this server's own host under an earlier name; its jobs run on %s now", name, s.Cfg.Host)
	case h.Status == models.HostRevoked:
		return nil, &apiError{Status: http.StatusConflict, Code: "CONFLICT", Message: "host " + h.Name + " is revoked: it runs no jobs; enrol it again to back it up"}
	}
	return h, nil
}

// jobsFor is the job client of a host's task queue (nil: the server's own).
func (s *Server) jobsFor(h *models.Host) *jobs.Client {
	if h == nil {
		return s.Jobs
	}
	return &jobs.Client{C: s.Jobs.C, TaskQueue: activities.HostJobsTaskQueue, HostQueue: HostTaskQueue(h.Name), Host: h.Name}
}

// selectHostComponents checks a request's components against what an
// enrolled host reported it has.
func selectHostComponents(h *models.Host, set api.ComponentSet) ([]string, error) {
	have := map[string]bool{}
	var names []string
	for _, c := range h.Components {
		have[c.Name] = true
		names = append(names, c.Name)
	}
	sort.Strings(names)
	var out []string
	for n, on := range set {
		if !have[n] {
			return nil, badRequest("components."+n, "components.%s: host %s has no such component (it reports: %s)", n, h.Name, strings.Join(names, ", "))
		}
		if on {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, badRequest("components", "components: select at least one of host %s's components (%s)", h.Name, strings.Join(names, ", "))
	}
	sort.Strings(out)
	return out, nil
}

// hostHasRepos: an enrolled host writes only where the server has made
// its repository.
func hostHasRepos(h *models.Host, locs []string) error {
	if h == nil {
		return nil
	}
	for i, l := range locs {
		if h.Repos[l] == "" {
			return &apiError{Status: http.StatusConflict, Code: "CONFLICT", Details: map[string]any{"field": fmt.Sprintf("storage_locations[%d]", i)},
				Message: sprintf("host %s has no repository in location %s yet: the server makes it when the host announces itself and the location answers", h.Name, l)}
		}
	}
	return nil
}

// hostOnline: an enrolled host's worker announced itself lately and has
// not said it stopped.
func hostOnline(h *models.Host) bool {
	return h.Status == models.HostActive && h.StoppedAt == nil && h.LastSeen != nil && time.Since(*h.LastSeen) < 2*announceEvery+30*time.Second
}

// quotaState is a host's use against its quota.
func quotaState(h *models.Host, used int64) string {
	switch {
	case h.QuotaHardBytes > 0 && used >= h.QuotaHardBytes:
		return "exceeded"
	case h.QuotaSoftBytes > 0 && used >= h.QuotaSoftBytes:
		return "warning"
	}
	return "ok"
}

// hostUse is what an enrolled host's backups have added to storage: the
// larger of what the catalog counts (refreshed at most once a second) and
// what the server counted as the host stored it, so that a host that
// under-reports its backups' sizes does not escape its quota.
func (s *Server) hostUse(r *http.Request, h *models.Host) (int64, error) {
	tot, err := s.totalsByHost(r)
	if err != nil {
		return 0, err
	}
	return max(tot[h.Name].AddedBytes, h.WrittenBytes), nil
}

// overHardQuota is the refusal of a host past its hard quota.
func overHardQuota(h *models.Host, used int64) error {
	return &apiError{Status: http.StatusInsufficientStorage, Code: string(codes.InsufficientStorage),
		Message: sprintf("host %s is over its hard quota: its backups hold %s of %s; delete some of its backups or raise the quota (PUT /backup/hosts/%s/quota)",
			h.Name, humanSize(used), humanSize(h.QuotaHardBytes), h.Name)}
}

func (s *Server) setHostQuota(w http.ResponseWriter, r *http.Request) error {
	h, err := s.findHost(r)
	if err != nil {
		return err
	}
	setTarget(r, h.ID)
	setHost(r, h.Name)
	var in api.HostQuotaRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	for f, v := range map[string]*int64{"soft_bytes": in.SoftBytes, "hard_bytes": in.HardBytes} {
		if v == nil {
			return badRequest(f, "%s is required (a byte count; 0: no limit)", f)
		}
		if *v < 0 {
			return badRequest(f, "%s: %d is negative (a byte count; 0: no limit)", f, *v)
		}
	}
	req := api.HostQuota{SoftBytes: *in.SoftBytes, HardBytes: *in.HardBytes}
	if req.HardBytes > 0 && req.SoftBytes > req.HardBytes {
		return badRequest("soft_bytes", "soft_bytes (%d) is above hard_bytes (%d): the warning would come after the refusal", req.SoftBytes, req.HardBytes)
	}
	if h.Local {
		return conflictPlain("host " + h.Name + " is the server's own host: its storage is bounded by the locations' quotas (storage.*.quota_bytes)")
	}
	if err := s.Store.SetHostQuota(r.Context(), h.ID, req.SoftBytes, req.HardBytes); err != nil {
		return err
	}
	s.hl.invalidate()
	h.QuotaSoftBytes, h.QuotaHardBytes = req.SoftBytes, req.HardBytes
	used, err := s.hostUse(r, h)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.HostQuotaSet{ID: h.ID, Name: h.Name,
		Quota: api.HostQuota{SoftBytes: h.QuotaSoftBytes, HardBytes: h.QuotaHardBytes, State: quotaState(h, used)}})
	return nil
}

// hostFilter resolves a list's host= (a name or an id): whether it is the
// server's own host, and its name.
func (s *Server) hostFilter(ctx context.Context, q string) (bool, string, error) {
	if q == s.Cfg.Host {
		return true, q, nil
	}
	h, err := s.Store.GetHost(ctx, q)
	if errors.Is(err, models.ErrNotFound) {
		return false, "", badRequest("host", "host %q: no such host (GET /backup/hosts lists them)", q)
	}
	if err != nil {
		return false, "", err
	}
	return h.Local && h.Name == s.Cfg.Host, h.Name, nil
}

// ensureLocalHost registers the server's own host once per process (at
// start, or at the first request that needs it).
func (s *Server) ensureLocalHost(ctx context.Context) error {
	if s.localHost.Load() {
		return nil
	}
	if _, err := s.Store.EnsureLocalHost(ctx, s.Cfg.Host); err != nil {
		return err
	}
	s.localHost.Store(true)
	return nil
}

func centralView(c map[string]models.CentralComponent) map[string]api.CentralComponent {
	out := make(map[string]api.CentralComponent, len(c))
	for n, x := range c {
		out[n] = api.CentralComponent{Description: x.Description, Paths: x.Paths, Include: x.Include, Exclude: x.Exclude}
	}
	return out
}

// componentNameRe: a central component's name, as it appears in jobs,
// manifests and restore paths.
var componentNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// setHostComponents replaces an enrolled host's central components. Only
// files components: what a database needs (credentials) stays on the
// host. The host's worker applies them at its next announcement.
func (s *Server) setHostComponents(w http.ResponseWriter, r *http.Request) error {
	h, err := s.findHost(r)
	if err != nil {
		return err
	}
	setTarget(r, h.ID)
	setHost(r, h.Name)
	if h.Local {
		return conflictPlain("host " + h.Name + " is the server's own: its components are in the server's configuration")
	}
	var in api.HostComponentsRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if in.Components == nil {
		return badRequest("components", "components is required: the host's whole central set, by name ({} clears it)")
	}
	if len(in.Components) > 50 {
		return badRequest("components", "components: at most 50")
	}
	out := map[string]models.CentralComponent{}
	for name, c := range in.Components {
		f := "components." + name
		if !componentNameRe.MatchString(name) {
			return badRequest(f, "%s: a component's name is 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", f)
		}
		if len(c.Paths) == 0 || len(c.Paths) > 100 || len(c.Include) > 100 || len(c.Exclude) > 100 {
			return badRequest(f+".paths", "%s: 1 to 100 paths, and at most 100 include and 100 exclude patterns", f)
		}
		for i, p := range c.Paths {
			if !filepath.IsAbs(p) || filepath.Clean(p) != p || len(p) > 4096 {
				return badRequest(sprintf("%s.paths[%d]", f, i), "%s.paths[%d]: %q must be an absolute, clean path (no .., no trailing /)", f, i, p)
			}
		}
		for _, list := range [][]string{c.Include, c.Exclude} {
			for _, p := range list {
				if _, err := filepath.Match(p, ""); err != nil || p == "" || len(p) > 1000 {
					return badRequest(f, "%s: pattern %q is not a valid pattern", f, p)
				}
			}
		}
		if err := validText(f+".description", c.Description, 2000); err != nil {
			return err
		}
		out[name] = models.CentralComponent{Description: c.Description, Paths: c.Paths, Include: c.Include, Exclude: c.Exclude}
	}
	h, err = s.Store.SetHostCentral(r.Context(), h.ID, out)
	if err != nil {
		return err
	}
	s.hl.invalidate()
	s.Log.Info("central components set", "host", h.Name, "components", len(out), "version", h.CentralVersion, "by", user(r))
	return s.writeHost(w, r, h)
}

// ownHosts are the host names the server's own backups carry (nil when
// the catalog cannot say: then every backup counts, as before hosts).
func (s *Server) ownHosts(ctx context.Context) []string {
	names, err := s.Store.OwnHostNames(ctx)
	if err != nil {
		return nil
	}
	if !slices.Contains(names, s.Cfg.Host) {
		names = append(names, s.Cfg.Host)
	}
	return names
}

// answerCache keeps an answer worked out from many rows for a second
// (GET /backup/hosts: consoles and monitors of a fleet poll it): a fresh
// one is served as is, one up to 5 s old is served while one request
// works the next out in the background, an older one (or one from before
// a change the server made to a host) is worked out at once, one request
// at a time.
type answerCache struct {
	mu      sync.Mutex
	m       map[string]*cachedAnswer
	changed atomic.Int64 // bumped by the server's own changes to what it caches
}

type cachedAnswer struct {
	body       []byte
	at         time.Time
	gen        int64
	refreshing bool
	compute    sync.Mutex
}

const (
	answerFresh = time.Second
	answerStale = 5 * time.Second
)

// invalidate drops every cached answer.
func (c *answerCache) invalidate() { c.changed.Add(1) }

func (c *answerCache) get(r *http.Request, key string, work func(*http.Request) (any, error)) ([]byte, error) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*cachedAnswer{}
	}
	e := c.m[key]
	if e == nil {
		if len(c.m) > 1000 {
			clear(c.m)
		}
		e = &cachedAnswer{}
		c.m[key] = e
	}
	gen := c.changed.Load()
	age := time.Since(e.at)
	if e.body != nil && e.gen == gen {
		if age < answerFresh {
			b := e.body
			c.mu.Unlock()
			return b, nil
		}
		if age < answerStale {
			b := e.body
			if !e.refreshing {
				e.refreshing = true
				bg := r.Clone(context.WithoutCancel(r.Context()))
				go func() {
					c.refresh(bg, e, gen, work)
					c.mu.Lock()
					e.refreshing = false
					c.mu.Unlock()
				}()
			}
			c.mu.Unlock()
			return b, nil
		}
	}
	c.mu.Unlock()
	// worked out here, by one request at a time
	e.compute.Lock()
	defer e.compute.Unlock()
	c.mu.Lock()
	if e.body != nil && e.gen == gen && time.Since(e.at) < answerFresh {
		b := e.body
		c.mu.Unlock()
		return b, nil
	}
	c.mu.Unlock()
	return c.refresh(r, e, gen, work)
}

func (c *answerCache) refresh(r *http.Request, e *cachedAnswer, gen int64, work func(*http.Request) (any, error)) ([]byte, error) {
	v, err := work(r)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	c.mu.Lock()
	e.body, e.at, e.gen = buf.Bytes(), time.Now(), gen
	c.mu.Unlock()
	return buf.Bytes(), nil
}
