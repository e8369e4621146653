// Package apiserver is backupd's REST and WebSocket API: the contract of
// spec/backup-recovery-api.rst, served at /cloud-integration/... and
// /v1/cloud-integration/.... Handlers start and control durable jobs
// through package jobs (Temporal) and read the catalog (package models);
// they never touch storage for anything but reads (capacity, manifests,
// downloads).
package apiserver

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"go.temporal.io/sdk/client"

	"backupd/activities"
	"backupd/api"
	"backupd/config"
	"backupd/console"
	"backupd/hostgate"
	"backupd/jobs"
	"backupd/logring"
	"backupd/models"
)

// Server serves the API.
type Server struct {
	Cfg      *config.Config
	Store    *models.Store
	Jobs     *jobs.Client
	Temporal client.Client
	Stores   *activities.Stores
	Hub      *Hub
	Log      *slog.Logger
	// LocalWorker: this process also runs the worker (backupd all), so a
	// component's sources can be checked before a backup is accepted.
	LocalWorker bool
	// LocalWorkerState, when set, reports that worker's state.
	LocalWorkerState func() WorkerState
	// LogRing, when set, holds the server's recent log records (for the
	// debug bundle).
	LogRing *logring.Ring
	// Metrics is what GET /metrics serves; New makes one when nil (give
	// its TemporalHandler to the Temporal client first to have the SDK's
	// metrics too).
	Metrics *Metrics

	started time.Time
	routes  []route
	router  *mux.Router

	capMu         sync.Mutex
	capCache      map[string]capEntry
	alertLevel    map[string]string
	lastEmergency map[string]time.Time
	skipped       map[string]int64
	totMu         sync.Mutex
	totCache      map[string]totalsEntry
	refused       refusals
	wcache        workerCache
	readyState    readiness
	recon         reconcileState
	limiter       authLimiter
	browsers      browseSessions
	htot          hostTotals
	hq            hostQueues
	hostPuts      putBudget
	localHost     atomic.Bool // the server's own host is in the catalog
	hostRepoMu    sync.Mutex  // one host repository set-up at a time
	gate          *hostgate.Gateway
	hl            answerCache // GET /backup/hosts
}

// New builds a server; Hub is created if nil.
func New(s *Server) *Server {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Hub == nil {
		s.Hub = NewHub(s.Log)
	}
	s.started = time.Now()
	s.capCache = map[string]capEntry{}
	s.alertLevel = map[string]string{}
	s.totCache = map[string]totalsEntry{}
	s.lastEmergency = map[string]time.Time{}
	s.skipped = map[string]int64{}
	s.limiter = authLimiter{burst: authBurst, rate: authRate}
	if s.Metrics == nil {
		s.Metrics = NewMetrics()
	}
	s.Metrics.Registry.MustRegister(serverCollector{s})
	s.routes = s.routeTable()
	s.router = s.buildRouter()
	return s
}

// route is one endpoint; the OpenAPI document is generated from the same table.
type route struct {
	Method, Path string // Path below /cloud-integration
	// Root: served at Path itself, outside the prefixes (where a
	// Prometheus scraper looks for /metrics)
	Root     bool
	Role     string // public (no token) | viewer | operator | admin
	Action   string // audit log action name (mutating routes)
	Summary  string
	Query    []param // query parameters
	Body     any     // the request body's type (a zero value of an api type; nil = none)
	Response any     // the success answer's type (an api.OneOf: one of several); nil: not JSON, or the OpenAPI document itself
	Status   int     // success status (200 unless said)
	handler  func(w http.ResponseWriter, r *http.Request) error
}

func (s *Server) routeTable() []route {
	return []route{
		{Method: "GET", Path: "/backup/status", Role: "viewer", Summary: "Backup system status and configuration", Response: api.SystemStatus{}, handler: s.getStatus},
		{Method: "GET", Path: "/backup/list", Role: "viewer", Summary: "List backups", Query: append([]param{qEnum("type", backupTypes, ""), qEnum("status", backupStatuses, "completed includes partial backups"), qTime("since", "backups taken at or after"), qTime("until", "backups taken at or before"), qStr("schedule_id", "backups a schedule took"), qStr("host", "backups of this host (a name or id from GET /backup/hosts)")}, pagingQuery(50)...), Response: api.BackupList{}, handler: s.listBackups},
		{Method: "GET", Path: "/backup/details/{backup_id}", Role: "viewer", Summary: "One backup in detail", Response: api.BackupDetails{}, handler: s.getDetails},
		{Method: "POST", Path: "/backup/create", Role: "operator", Action: "backup.create", Body: api.CreateBackupRequest{}, Summary: "Start a manual backup", Response: api.BackupStarted{}, handler: s.createBackup},
		{Method: "DELETE", Path: "/backup/{backup_id}", Role: "admin", Action: "backup.delete", Query: []param{qBool("force", "delete even a protected backup, or one the retention policy still keeps"), qStr("locations", "comma-separated locations to delete from (default all)")}, Summary: "Delete a backup from its storage locations (respects protection and retention)", Status: http.StatusAccepted, Response: api.BackupDeletion{}, handler: s.deleteBackup},
		{Method: "POST", Path: "/backup/{backup_id}/protect", Role: "admin", Action: "backup.protect", Body: api.ProtectRequest{}, Summary: "Protect or unprotect a backup from cleanup", Response: api.ProtectResponse{}, handler: s.protectBackup},
		{Method: "GET", Path: "/backup/download/{backup_id}", Role: "admin", Action: "backup.download", Query: []param{qEnum("format", downloadFormats, "default tar.gz"), qStr("component", "only this component")}, Summary: "Download (export) a backup as tar.gz, tar.zst or tar.bz2", handler: s.downloadBackup},
		{Method: "GET", Path: "/backup/tree/{backup_id}", Role: "operator", Query: append([]param{qStr("component", "the component (required)"), qStr("path", "the directory, absolute as backed up (default /)"), qStr("location", "read the tree from this location (default: the first that answers)")}, pagingQuery(200)...), Summary: "List one directory of a backup's file tree (names and metadata, never contents)", Response: api.TreeListing{}, handler: s.listTree},
		{Method: "GET", Path: "/backup/search/{backup_id}", Role: "operator", Query: append([]param{qStr("q", "part of a file name (case-insensitive), or a pattern with * ? [ ] matched against whole names (required)"), qStr("component", "only this component (default all)"), qStr("path", "only below this directory"), qStr("location", "read the trees from this location")}, pagingQuery(100)...), Summary: "Search a backup's file names", Response: api.TreeSearch{}, handler: s.searchTree},
		{Method: "GET", Path: "/backup/components", Role: "viewer", Summary: "Each configured component's newest completed backup and its age against its own schedules (late after 1.5 intervals)", Response: api.ComponentsFreshness{}, handler: s.getComponents},
		{Method: "GET", Path: "/backup/whoami", Role: "viewer", Summary: "The caller's token: its name and role (what a client may offer)", Response: api.WhoAmI{}, handler: s.whoAmI},
		{Method: "GET", Path: "/backup/progress", Role: "viewer", Query: []param{qStr("job_id", "the job (or give backup_id; default the latest running backup)"), qStr("backup_id", "")}, Summary: "Progress of a backup job", Response: api.JobProgress{}, handler: s.backupProgress},
		{Method: "GET", Path: "/backup/schedules", Role: "viewer", Summary: "List schedules", Response: api.ScheduleList{}, handler: s.listSchedules},
		{Method: "POST", Path: "/backup/schedules", Role: "operator", Action: "schedule.put", Body: api.ScheduleRequest{}, Summary: "Create or update a schedule", Response: api.ScheduleSaved{}, handler: s.putSchedule},
		{Method: "DELETE", Path: "/backup/schedules/{schedule_id}", Role: "operator", Action: "schedule.delete", Summary: "Delete a schedule", Response: api.ScheduleAction{}, handler: s.deleteSchedule},
		{Method: "POST", Path: "/backup/schedules/{schedule_id}/trigger", Role: "operator", Action: "schedule.trigger", Summary: "Run a schedule now", Response: api.ScheduleAction{}, handler: s.triggerSchedule},
		{Method: "GET", Path: "/backup/reports/compliance", Role: "admin", Query: []param{qEnum("period", periodNames(), "default 30d"), qEnum("format", api.ComplianceFormats, "json (default), csv (one row per host and component), html or pdf (for an auditor)")}, Summary: "Compliance report over a period: backups taken against schedule, success rate, RPO achieved against objective, restore drills and their RTO, 3-2-1, key rotation, what retention removed and why, protected backups, destructive actions from the audit log (admin: it names who made them)", Response: api.ComplianceReport{}, handler: s.getCompliance},
		{Method: "GET", Path: "/backup/approvals", Role: "operator", Query: []param{qEnum("status", api.ApprovalStatuses, "")}, Summary: "Destructive calls held for a second admin's approval (approvals.enabled), newest first", Response: api.ApprovalList{}, handler: s.listApprovals},
		{Method: "GET", Path: "/backup/approvals/{approval_id}", Role: "operator", Summary: "One held call and what became of it", Response: api.Approval{}, handler: s.getApproval},
		{Method: "POST", Path: "/backup/approvals/{approval_id}/approve", Role: "admin", Action: "approval.approve", Body: api.ApprovalDecision{}, Summary: "Approve a held call (an admin who did not ask for it; with a TOTP code when approvals.totp is on): it runs now, as its requester's call", Response: api.Approval{}, handler: s.decideApproval(true)},
		{Method: "POST", Path: "/backup/approvals/{approval_id}/reject", Role: "admin", Action: "approval.reject", Body: api.ApprovalDecision{}, Summary: "Reject a held call", Response: api.Approval{}, handler: s.decideApproval(false)},
		{Method: "POST", Path: "/backup/tokens/self/totp", Role: "operator", Action: "token.totp_enrol", Summary: "Enrol an authenticator (TOTP) for the calling token; the secret is shown once", Status: http.StatusCreated, Response: api.TOTPEnrolled{}, handler: s.enrolTOTP},
		{Method: "GET", Path: "/backup/drills", Role: "operator", Summary: "List restore drills, each with its newest run", Response: api.DrillList{}, handler: s.listDrills},
		{Method: "POST", Path: "/backup/drills", Role: "admin", Action: "drill.put", Body: api.DrillRequest{}, Summary: "Create or update a restore drill: on a schedule, restore chosen backups into a scratch directory, compare every file, run checks, measure RTO and RPO (admin: a drill's checks run commands on the worker)", Response: api.DrillSaved{}, handler: s.putDrill},
		{Method: "GET", Path: "/backup/drills/{drill_id}", Role: "operator", Summary: "One restore drill and its newest runs' reports", Response: api.DrillDetails{}, handler: s.getDrill},
		{Method: "DELETE", Path: "/backup/drills/{drill_id}", Role: "admin", Action: "drill.delete", Summary: "Delete a restore drill (its runs' reports stay)", Response: api.DrillAction{}, handler: s.deleteDrill},
		{Method: "POST", Path: "/backup/drills/{drill_id}/trigger", Role: "operator", Action: "drill.trigger", Summary: "Run a restore drill now", Response: api.DrillAction{}, handler: s.triggerDrill},
		{Method: "POST", Path: "/backup/restore", Role: "admin", Action: "restore.start", Body: api.RestoreRequest{}, Summary: "Restore from a backup", Response: api.RestoreStarted{}, handler: s.startRestore},
		{Method: "POST", Path: "/backup/restore/rollback", Role: "admin", Action: "restore.rollback", Body: api.RollbackRequest{}, Summary: "Undo a restore: restore its pre-restore snapshot over the original paths and databases", Response: api.RestoreStarted{}, handler: s.rollbackRestore},
		{Method: "GET", Path: "/backup/restore/progress", Role: "viewer", Query: []param{qStr("job_id", "the job (or give restore_id; default the latest running restore)"), qStr("restore_id", "")}, Summary: "Progress of a restore job", Response: api.JobProgress{}, handler: s.restoreProgress},
		{Method: "POST", Path: "/backup/verify", Role: "operator", Action: "verify.start", Body: api.VerifyRequest{}, Summary: "Verify a backup's integrity", Response: api.VerifyStarted{}, handler: s.startVerify},
		{Method: "GET", Path: "/backup/verify/report/{verification_id}", Role: "viewer", Summary: "A verification report", Response: api.OneOf{api.VerifyReport{}, api.ReportPending{}}, handler: s.verifyReport},
		{Method: "GET", Path: "/backup/storage", Role: "viewer", Summary: "Storage configuration and usage", Response: api.StorageConfig{}, handler: s.getStorage},
		{Method: "POST", Path: "/backup/storage/update", Role: "admin", Action: "storage.update", Body: api.StorageUpdateRequest{}, Summary: "Update storage configuration", Response: api.StorageUpdated{}, handler: s.updateStorage},
		{Method: "GET", Path: "/backup/retention", Role: "viewer", Summary: "Retention policies and cleanup rules", Response: api.RetentionConfig{}, handler: s.getRetention},
		{Method: "POST", Path: "/backup/retention", Role: "admin", Action: "retention.update", Body: api.RetentionUpdateRequest{}, Summary: "Change retention policies, cleanup rules or protected backups", Response: api.RetentionUpdated{}, handler: s.updateRetention},
		{Method: "POST", Path: "/backup/cleanup", Role: "admin", Action: "cleanup.start", Body: api.CleanupRequest{}, Summary: "Run a cleanup (or a dry run)", Response: api.CleanupStarted{}, handler: s.startCleanup},
		{Method: "GET", Path: "/backup/cleanup/report/{cleanup_id}", Role: "viewer", Summary: "A cleanup report", Response: api.OneOf{api.CleanupReport{}, api.ReportPending{}}, handler: s.cleanupReport},
		{Method: "GET", Path: "/backup/health", Role: "viewer", Summary: "Backup system health", Response: api.Health{}, handler: s.getHealth},
		{Method: "GET", Path: "/backup/statistics", Role: "viewer", Query: []param{qEnum("period", periodNames(), "default 30d"), qEnum("group_by", groupBys, "")}, Summary: "Backup statistics", Response: api.Statistics{}, handler: s.getStatistics},
		{Method: "GET", Path: "/backup/jobs", Role: "viewer", Query: append([]param{qEnum("status", jobStatuses, "completed includes partial jobs"), qEnum("type", jobTypes, ""), qStr("host", "jobs of this host (a name or id from GET /backup/hosts)")}, pagingQuery(20)...), Summary: "List jobs", Response: api.JobList{}, handler: s.listJobs},
		{Method: "POST", Path: "/backup/jobs/cancel", Role: "operator", Action: "job.cancel", Body: api.CancelRequest{}, Summary: "Cancel a job", Response: api.CancelResponse{}, handler: s.cancelJob},
		{Method: "POST", Path: "/backup/jobs/pause", Role: "operator", Action: "job.pause", Body: api.JobRequest{}, Summary: "Pause a backup job", Response: api.JobControlResponse{}, handler: s.pauseJob},
		{Method: "POST", Path: "/backup/jobs/resume", Role: "operator", Action: "job.resume", Body: api.JobRequest{}, Summary: "Resume a paused backup job", Response: api.JobControlResponse{}, handler: s.resumeJob},
		{Method: "POST", Path: "/backup/repair", Role: "operator", Action: "repair.start", Body: api.RepairRequest{}, Summary: "Copy backups to the locations the 3-2-1 policy says they miss, from a healthy copy", Response: api.RepairPlan{}, handler: s.startRepair},
		{Method: "GET", Path: "/backup/repair/report/{repair_id}", Role: "viewer", Summary: "A repair report", Response: api.OneOf{api.RepairReport{}, api.ReportPending{}}, handler: s.repairReport},
		{Method: "GET", Path: "/backup/audit", Role: "admin", Query: append([]param{qStr("actor", "a token name"), qStr("action", "an audit action, like backup.create"), qEnum("outcome", auditOutcomes, ""), qTime("since", ""), qTime("until", "")}, pagingQuery(50)...), Summary: "The audit log: mutating calls, downloads of backup contents, refused attempts (aggregated per source and minute)", Response: api.AuditList{}, handler: s.listAudit},
		{Method: "GET", Path: "/backup/tokens", Role: "admin", Summary: "List API tokens (never their secrets)", Response: api.TokenList{}, handler: s.listTokens},
		{Method: "POST", Path: "/backup/tokens", Role: "admin", Action: "token.create", Body: api.TokenRequest{}, Summary: "Create an API token", Status: http.StatusCreated, Response: api.TokenCreated{}, handler: s.createToken},
		{Method: "DELETE", Path: "/backup/tokens/{token_id}", Role: "admin", Action: "token.revoke", Summary: "Revoke an API token", Response: api.TokenRevoked{}, handler: s.revokeToken},
		{Method: "GET", Path: "/backup/hosts", Role: "viewer", Query: []param{qEnum("state", api.HostStates, ""), qStr("labels", "a label selector: key=value[,key=value...], all of which must hold")}, Summary: "List the hosts: the server's own and every enrolled one, with state, components, newest backups and storage used", Response: api.HostList{}, handler: s.listHosts},
		{Method: "POST", Path: "/backup/hosts/enrolments", Role: "admin", Action: "host.enrolment_create", Body: api.EnrolmentRequest{}, Summary: "Make a one-time enrolment token for a new host (backupd worker --enrol URL TOKEN on that host)", Status: http.StatusCreated, Response: api.EnrolmentCreated{}, handler: s.createEnrolment},
		{Method: "GET", Path: "/backup/hosts/enrolments", Role: "admin", Summary: "List enrolment tokens (never their secrets)", Response: api.EnrolmentList{}, handler: s.listEnrolments},
		{Method: "DELETE", Path: "/backup/hosts/enrolments/{enrolment_id}", Role: "admin", Action: "host.enrolment_cancel", Summary: "Cancel an unused enrolment token", Response: api.EnrolmentCancelled{}, handler: s.cancelEnrolment},
		{Method: "POST", Path: "/backup/hosts/enrol", Role: rolePublic, Action: "host.enrol", Body: api.EnrolRequest{}, Summary: "A new host enrols with a one-time enrolment token (no bearer token: the enrolment token is the authority) and gets its own credential", Status: http.StatusCreated, Response: api.Enrolled{}, handler: s.enrol},
		{Method: "POST", Path: "/backup/hosts/self/announce", Role: models.RoleHost, Body: api.AnnounceRequest{}, Summary: "A host's worker says it is up and what it has (host credential only)", Response: api.Announced{}, handler: s.announce},
		{Method: "POST", Path: "/backup/hosts/self/credential", Role: models.RoleHost, Action: "host.credential_rotate", Summary: "A host replaces its own credential (host credential only); the old one stops working", Response: api.CredentialRotated{}, handler: s.rotateHostCredential},
		{Method: "GET", Path: "/backup/hosts/self/storage/{location}/list", Role: models.RoleHost, Query: []param{qStr("prefix", "only names starting with this")}, Summary: "A host lists its repository in a location (host credential only): NDJSON, one object per line, then {\"end\":true}", handler: s.hostObjectList},
		{Method: "GET", Path: "/backup/hosts/self/storage/{location}/stat", Role: models.RoleHost, Query: []param{qStr("name", "the object's name (required)")}, Summary: "A host reads one object's size and time (host credential only)", Response: api.StoredObject{}, handler: s.hostObjectStat},
		{Method: "GET", Path: "/backup/hosts/self/storage/{location}/object", Role: models.RoleHost, Query: []param{qStr("name", "the object's name (required)"), qStr("offset", "the first byte (default 0)"), qStr("length", "how many bytes (default: to the end)")}, Summary: "A host reads an object of its repository (host credential only; the key entries of others are not there for it)", handler: s.hostObjectGet},
		{Method: "PUT", Path: "/backup/hosts/self/storage/{location}/object", Role: models.RoleHost, Query: []param{qStr("name", "the object's name (required)")}, Summary: "A host adds an object to its repository (host credential only): packs, index files and manifests are added once and never replaced", Status: http.StatusCreated, handler: s.hostObjectPut},
		{Method: "DELETE", Path: "/backup/hosts/self/storage/{location}/object", Role: models.RoleHost, Query: []param{qStr("name", "the object's name (required)")}, Summary: "A host removes one of its running backups' registrations (host credential only); nothing a backup stored", Status: http.StatusNoContent, handler: s.hostObjectDelete},
		{Method: "PUT", Path: "/backup/hosts/{host_id}/components", Role: "admin", Action: "host.components", Body: api.HostComponentsRequest{}, Summary: "Configure an enrolled host's files components centrally: its worker applies them at its next announcement (within a minute) and reports what it found", Response: api.Host{}, handler: s.setHostComponents},
		{Method: "PUT", Path: "/backup/hosts/{host_id}/quota", Role: "admin", Action: "host.quota", Body: api.HostQuotaRequest{}, Summary: "Set what a host's backups may add to storage: past soft_bytes they warn, past hard_bytes new backups are refused (0: no limit)", Response: api.HostQuotaSet{}, handler: s.setHostQuota},
		{Method: "GET", Path: "/backup/hosts/{host_id}", Role: "viewer", Summary: "One host, by id or name", Response: api.Host{}, handler: s.getHost},
		{Method: "DELETE", Path: "/backup/hosts/{host_id}", Role: "admin", Action: "host.revoke", Summary: "Revoke a host: its credential and worker are refused from now on; its backups stay", Response: api.HostRevoked{}, handler: s.revokeHost},
		{Method: "GET", Path: "/backup/debug-bundle", Role: "admin", Action: "debug_bundle.download", Query: []param{qInt("failed_jobs", 0, bundleFailedJobsMax, bundleFailedJobsDefault, "how many of the last failed jobs to include")}, Summary: "A tar.gz for support: version, configuration (secrets redacted), recent logs, health, storage health, the last failed jobs and their workflow histories", handler: s.debugBundle},
		{Method: "GET", Path: "/backup/openapi.json", Role: rolePublic, Summary: "This API as an OpenAPI 3.1 document (no token needed: it holds no data)", handler: s.openAPI},
		{Method: "GET", Path: "/metrics", Root: true, Role: "viewer", Summary: "Metrics in the Prometheus text format (also without a token on --metrics-listen)", handler: s.getMetrics},
		{Method: "GET", Path: "/ws/backup", Role: "viewer", Query: []param{qStr("job_id", "only this job's messages"), qStr("types", "comma-separated message types: "+strings.Join(wsTypes, ", ")), qStr("access_token", "the token, for clients that cannot send a header")}, Summary: "WebSocket: live progress, completions, storage alerts, schedule events", handler: s.serveWS},
	}
}

// Prefixes the routes are served under.
var Prefixes = []string{"/cloud-integration", "/v1/cloud-integration"}

// servedAt is the full path a route has under prefix p.
func (rt route) servedAt(p string) string {
	if rt.Root {
		return rt.Path
	}
	return p + rt.Path
}

// buildRouter registers every route under each prefix on one router (not
// on per-prefix subrouters: a subrouter answers a known path with the
// wrong method 404, not 405).
func (s *Server) buildRouter() *mux.Router {
	r := mux.NewRouter()
	for i := range s.routes {
		if rt := s.routes[i]; rt.Root {
			r.Handle(rt.Path, s.wrap(rt)).Methods(rt.Method)
		}
	}
	for _, p := range Prefixes {
		for i := range s.routes {
			if rt := s.routes[i]; !rt.Root {
				r.Handle(p+rt.Path, s.wrap(rt)).Methods(rt.Method)
			}
		}
	}
	// the web console: / and its files under /assets/
	c := console.Handler()
	r.Handle("/", c).Methods("GET", "HEAD")
	r.Handle("/assets/{file:.+}", c).Methods("GET", "HEAD")
	r.HandleFunc(HealthzPath, s.healthz).Methods("GET")
	r.HandleFunc(ReadyzPath, s.readyz).Methods("GET")
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		req = withState(req, &reqState{id: newRequestID()})
		sw := &statusWriter{ResponseWriter: w}
		defer s.accessLog(req, "(no route)", sw, time.Now())
		s.writeError(sw, req, &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "no such endpoint: " + req.Method + " " + req.URL.Path})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		req = withState(req, &reqState{id: newRequestID()})
		sw := &statusWriter{ResponseWriter: w}
		defer s.accessLog(req, "(no route)", sw, time.Now())
		allowed := s.allowedMethods(req)
		sw.Header().Set("Allow", strings.Join(allowed, ", "))
		s.writeError(sw, req, &apiError{Status: http.StatusMethodNotAllowed, Code: "METHOD_NOT_ALLOWED",
			Message: req.Method + " is not allowed on " + req.URL.Path + "; allowed: " + strings.Join(allowed, ", "),
			Details: map[string]any{"allowed_methods": allowed},
			Actions: []string{"Send the request with one of the methods in the Allow header: " + strings.Join(allowed, ", ")}})
	})
	return r
}

// allowedMethods lists the methods the router serves on req's path.
func (s *Server) allowedMethods(req *http.Request) []string {
	var out []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		probe := req.Clone(req.Context())
		probe.Method = m
		var match mux.RouteMatch
		if s.router.Match(probe, &match) && match.MatchErr == nil {
			out = append(out, m)
		}
	}
	return out
}

// Handler is the whole API.
func (s *Server) Handler() http.Handler { return s.router }

// reqState travels with a request: id, caller, audit facts.
type reqState struct {
	id            string
	clientID      string // the client's X-Request-ID, if it sent one
	token         *models.Token
	host          *models.Host // the calling host (host routes)
	auditHost     string       // the enrolled host the call concerns
	target        string
	outcomeDetail string
}

type ctxKey struct{}

func withState(r *http.Request, st *reqState) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), ctxKey{}, st))
}

func stateOf(r *http.Request) *reqState {
	st, _ := r.Context().Value(ctxKey{}).(*reqState)
	return st
}

func requestID(r *http.Request) string {
	if st := stateOf(r); st != nil {
		return st.id
	}
	return ""
}

// user names the caller for jobs and the audit log.
func user(r *http.Request) string {
	if st := stateOf(r); st != nil && st.token != nil {
		return st.token.Name
	}
	return ""
}

// setTarget names what a mutating call acted on, for the audit log.
func setTarget(r *http.Request, t string) {
	if st := stateOf(r); st != nil {
		st.target = t
	}
}

// setHost names the enrolled host a call concerns, for the audit log.
func setHost(r *http.Request, name string) {
	if st := stateOf(r); st != nil {
		st.auditHost = name
	}
}

// hostOfCall is the enrolled host an audited call concerns or came from.
func (st *reqState) hostOfCall() string {
	if st.auditHost == "" && st.host != nil {
		return st.host.Name
	}
	return st.auditHost
}

func newRequestID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "req_" + hex.EncodeToString(b)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands the connection to the WebSocket upgrade.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be hijacked")
	}
	w.status = http.StatusSwitchingProtocols
	return h.Hijack()
}

// wrap adds request id, authentication, authorisation, the audit record
// and error rendering to a route.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// the request id is always the server's own (a client's could make
		// its audit and log lines pass for another request's); a client's
		// id is echoed back and logged beside it
		st := &reqState{id: newRequestID()}
		if id := r.Header.Get("X-Request-ID"); validRequestID(id) {
			st.clientID = id
			w.Header().Set("X-Client-Request-ID", id)
		}
		w.Header().Set("X-Request-ID", st.id)
		r = withState(r, st)
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer s.accessLog(r, rt.Path, sw, start)
		defer func() { s.Metrics.observeRequest(rt, sw.status, time.Since(start)) }()
		src := sourceOf(r)
		if rt.Role == rolePublic && rt.Action != "" && !s.limiter.allow(src) {
			// an open route that writes (the enrolment): a source that
			// keeps failing is refused before it costs an audit entry
			sw.Header().Set("Retry-After", "5")
			s.writeError(sw, r, &apiError{Status: http.StatusTooManyRequests, Code: "TOO_MANY_REQUESTS",
				Message: "too many failed requests from this address; wait, then send a valid one"})
			return
		}
		err := s.authorize(r, rt, st)
		if err != nil && st.token == nil {
			// no valid token: a source that keeps trying is slowed down
			// (a valid token always gets through)
			if !s.limiter.allow(src) {
				sw.Header().Set("Retry-After", "5")
				err = &apiError{Status: http.StatusTooManyRequests, Code: "TOO_MANY_REQUESTS",
					Message: "too many requests without a valid token from this address; wait, then send a valid bearer token"}
			}
			s.limiter.spend(src)
		}
		if err != nil {
			s.writeError(sw, r, err)
			if rt.Action != "" {
				s.auditRefusal(r, rt, st, sw.status)
			}
			return
		}
		// jobs it starts carry the request's id and caller (memo, Temporal UI)
		r = r.WithContext(jobs.WithRequester(r.Context(), jobs.Requester{RequestID: st.id, Actor: user(r)}))
		if rt.Action != "" {
			entry, aerr := s.auditStart(r, rt, st)
			if aerr != nil {
				s.writeError(sw, r, aerr)
				return
			}
			defer func() { s.auditFinish(r, entry, st, sw.status) }()
		}
		if s.holdForApproval(sw, r, rt, st) {
			return
		}
		s.runHandler(rt, sw, r)
	})
}

// runHandler runs a route's handler and answers its error; a handler's
// panic is one failed request, logged, never a dropped connection.
func (s *Server) runHandler(rt route, sw *statusWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("handler panicked", "path", r.URL.Path, "request_id", requestID(r), "panic", p, "stack", string(debug.Stack()))
			if sw.status == 0 {
				s.writeError(sw, r, fmt.Errorf("panic: %v", p))
			}
		}
	}()
	if err := rt.handler(sw, r); err != nil {
		if sw.status != 0 {
			s.Log.Error("error after the response started", "path", r.URL.Path, "request_id", requestID(r), "err", err)
		} else {
			s.writeError(sw, r, err)
		}
	}
}

// accessLog writes one line per request: method, route (the template,
// never the ids in the path), status, duration, request id, actor.
func (s *Server) accessLog(r *http.Request, route string, sw *statusWriter, t0 time.Time) {
	if s.Log == nil {
		return
	}
	actor := "-"
	st := stateOf(r)
	if st != nil && st.token != nil {
		actor = st.token.Name
	}
	args := []any{"method", r.Method, "route", route, "status", sw.status, "duration_ms", time.Since(t0).Milliseconds(),
		"request_id", requestID(r), "actor", actor, "remote", sourceOf(r)}
	if st != nil && st.clientID != "" {
		args = append(args, "client_request_id", st.clientID)
	}
	s.Log.Info("request", args...)
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// token finds the caller's bearer token: the Authorization header, or for
// the WebSocket (browsers cannot set headers there) the
// Sec-WebSocket-Protocol "bearer, <token>" pair or ?access_token=.
func bearer(r *http.Request, ws bool) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
		return ""
	}
	if !ws {
		return ""
	}
	for _, p := range websocketProtocols(r) {
		if strings.HasPrefix(p, models.TokenPrefix) {
			return p
		}
	}
	return r.URL.Query().Get("access_token")
}

func websocketProtocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// rolePublic marks a route that needs no token.
const rolePublic = "public"

func (s *Server) authorize(r *http.Request, rt route, st *reqState) error {
	if rt.Role == rolePublic {
		return nil
	}
	if ar := approvedRunOf(r); ar != nil {
		// a held call a second admin approved runs as its requester's
		st.token = ar.token
		st.outcomeDetail = "approved: " + ar.approval.ID
		return nil
	}
	plain := bearer(r, rt.Path == "/ws/backup")
	if plain == "" {
		return &apiError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: "a bearer token is required"}
	}
	tok, err := s.Store.Authenticate(r.Context(), plain)
	if errors.Is(err, models.ErrNotFound) {
		if rt.Role == models.RoleHost {
			return &apiError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED",
				Message: "this host's credential is invalid, revoked or replaced: enrol the host again (backupd worker --enrol URL TOKEN)"}
		}
		return &apiError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: "the token is invalid, expired or revoked"}
	}
	if err != nil {
		return err
	}
	st.token = tok
	// a host's credential opens the host routes and nothing else, and
	// only a host's credential opens them
	if rt.Role == models.RoleHost || tok.Role == models.RoleHost {
		if rt.Role != tok.Role {
			return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN",
				Message: sprintf("%s %s needs the %s role; this token has %s", rt.Method, rt.Path, rt.Role, tok.Role)}
		}
		h, err := s.Store.HostOfToken(r.Context(), tok)
		if errors.Is(err, models.ErrNotFound) {
			return &apiError{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: "this host's credential was revoked or replaced: enrol the host again"}
		}
		if err != nil {
			return err
		}
		st.host = h
		return nil
	}
	if models.RoleRank(tok.Role) < models.RoleRank(s.requestRole(rt)) {
		return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN",
			Message: sprintf("%s %s needs the %s role; this token has %s", rt.Method, rt.Path, rt.Role, tok.Role)}
	}
	return nil
}

func remoteIP(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// writeRawJSON writes a JSON body encoded before (as writeJSON does).
func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Serve runs the API on ln until ctx ends; with cert and key it serves
// HTTPS (and WSS).
func (s *Server) Serve(ctx context.Context, ln net.Listener, certFile, keyFile string) error {
	if err := s.StartHostGateway(ctx); err != nil {
		return fmt.Errorf("host gateway: %w", err)
	}
	// HTTP/2 without TLS too (prior knowledge): the gateway's gRPC on a
	// plain-HTTP server (loopback, or behind a TLS proxy)
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	hs := &http.Server{Handler: s.withGateway(s.Handler()), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}, Protocols: &protos,
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 64}}
	go s.Poll(ctx)
	// the server's own host is registered before any host can enrol, so
	// none can take its name
	if err := s.ensureLocalHost(ctx); err != nil {
		s.Log.Error("registering this server's host in the catalog", "err", err)
	}
	go s.sweepGrantsEvery(ctx, 10*time.Minute)
	errc := make(chan error, 1)
	go func() {
		if certFile != "" {
			errc <- hs.ServeTLS(ln, certFile, keyFile)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Hub.Close()
	return hs.Shutdown(sctx)
}

func muxVar(r *http.Request, name string) string { return mux.Vars(r)[name] }
