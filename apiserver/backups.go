package apiserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gorilla/mux"
	enumspb "go.temporal.io/api/enums/v1"

	"backupd/activities"
	"backupd/api"
	"backupd/codes"
	"backupd/jobs"
	"backupd/models"
	"backupd/repository"
	"backupd/restore"
	"backupd/workflows"
)

var backupTypes, compressions = api.BackupTypes, api.Compressions

// backupStatuses filter /backup/list.
var backupStatuses = []string{"completed", "failed", "in_progress", "partial", "cancelled"}

// downloadFormats are the archive formats of a download.
var downloadFormats = []string{"tar.gz", "tar.zst", "tar.bz2", "tar"}

// ---- list

func (s *Server) listBackups(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "type", "status", "limit", "page_size", "page", "since", "until", "schedule_id", "host"); err != nil {
		return err
	}
	f := models.BackupFilter{Type: q.Get("type"), Status: q.Get("status"), ScheduleID: q.Get("schedule_id")}
	if hq := q.Get("host"); hq != "" {
		local, name, err := s.hostFilter(r.Context(), hq)
		if err != nil {
			return err
		}
		f.Hosts = []string{name}
		if local {
			f.Hosts = append(f.Hosts, "") // rows from before hosts were recorded
		}
	}
	if f.Type != "" {
		if err := oneOf("type", f.Type, backupTypes...); err != nil {
			return err
		}
	}
	if f.Status != "" {
		if err := oneOf("status", f.Status, backupStatuses...); err != nil {
			return err
		}
	}
	var err error
	if f.Limit, f.Page, f.Since, f.Until, err = pageParams(q); err != nil {
		return err
	}
	rows, err := s.Store.ListBackups(r.Context(), f)
	if err != nil {
		return err
	}
	tot, err := s.backupTotals(r.Context(), f)
	if err != nil {
		return err
	}
	out := api.BackupList{Backups: make([]api.BackupSummary, 0, len(rows)), Pagination: api.NewPagination(tot.Total, f.Page, f.Limit),
		Summary: api.BackupListSummary{
			FullBackups: tot.ByType["full"], IncrementalBackups: tot.ByType["incremental"],
			DifferentialBackups: tot.ByType["differential"], SnapshotBackups: tot.ByType["snapshot"],
			TotalSize: humanSize(tot.SizeBytes), TotalSizeBytes: tot.SizeBytes,
			CompressedSize: humanSize(tot.CompressedBytes), CompressedSizeBytes: tot.CompressedBytes,
			AddedSize: humanSize(tot.AddedBytes), AddedSizeBytes: tot.AddedBytes,
		}}
	for i := range rows {
		out.Backups = append(out.Backups, s.backupSummary(&rows[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// sizeRatios are the two ratios, each from its own pair of sizes
// (README: "Sizes and ratios"): compression is content over what it
// takes stored, deduplication is that over what was added. "n/a" when
// the divisor is 0.
func sizeRatios(size, compressed, added int64) (compression, deduplication string) {
	r := func(a, b int64) string {
		if b <= 0 {
			return "n/a"
		}
		return strconv.FormatFloat(float64(a)/float64(b), 'f', 2, 64)
	}
	return r(size, compressed), r(compressed, added)
}

// componentMap is the spec's {"system": true, ...} over every configured
// component (and any the backup has that the configuration no longer does).
func (s *Server) componentMap(have []string) map[string]bool {
	m := map[string]bool{}
	for _, n := range s.Cfg.ComponentNames() {
		m[n] = false
	}
	for _, n := range have {
		m[n] = true
	}
	return m
}

func (s *Server) backupSummary(b *models.Backup) api.BackupSummary {
	return api.BackupSummary{
		ID: b.ID, Name: b.Name, Timestamp: specTime(b.Timestamp), TimestampRFC3339: rfc3339(b.Timestamp),
		Type: b.Type, Status: b.Status,
		Size: humanSize(b.SizeBytes), SizeBytes: b.SizeBytes,
		CompressedSize: humanSize(b.CompressedBytes), CompressedSizeBytes: b.CompressedBytes,
		AddedSize: humanSize(b.AddedBytes), AddedSizeBytes: b.AddedBytes,
		Duration: humanDuration(time.Duration(b.DurationSeconds * float64(time.Second))), DurationSeconds: b.DurationSeconds,
		Components: s.componentMap(b.Components), StorageLocations: nonNil(b.Locations),
		Encryption: b.Encryption, Compression: b.Compression, IntegrityCheck: b.IntegrityCheck,
		Protected: b.Protected, RetentionDays: b.RetentionDays,
		// the catalog lists these locations, but their manifest is gone
		MissingFrom:  b.MissingFrom,
		ParentBackup: b.ParentBackup, BaseBackup: b.BaseBackup, Error: b.Error, ErrorCode: b.ErrorCode,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ---- details

func (s *Server) getDetails(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["backup_id"]
	b, err := s.backupOf(r.Context(), id)
	if err != nil {
		return err
	}
	compSizes, compBytes := map[string]string{}, map[string]int64{}
	for n, v := range b.ComponentSizes {
		compSizes[n], compBytes[n] = humanSize(v), v
	}
	ratio, dedup := sizeRatios(b.SizeBytes, b.CompressedBytes, b.AddedBytes)
	end := b.Finished
	// what the stored manifest says: its checksum, and whether its
	// signature verifies (LoadManifest checks it), per location
	locs := []api.BackupCopy{}
	checksum, signature, keyID, keyVersion := "", "unverified", b.KeyID, b.KeyVersion
	var sigTime *time.Time
	dir, err := s.repoDirOf(r.Context(), b.Host)
	if err != nil {
		return err
	}
	for _, name := range b.Locations {
		l := api.BackupCopy{LocationAddress: s.describeLocation(name), Type: name,
			Size: humanSize(b.CompressedBytes), SizeBytes: b.CompressedBytes,
			Verified: b.IntegrityCheck == "passed", LastVerified: rfc3339ptr(b.VerifiedAt)}
		sum, key, err := s.manifestFacts(r.Context(), name, b)
		if err != nil {
			l.ManifestError = err.Error()
			l.Verified = false
		} else {
			l.Checksum = sum
			if checksum == "" {
				checksum, signature = sum, "verified"
				now := time.Now().UTC()
				sigTime = &now
			}
			if key != nil {
				keyID, keyVersion = key.ID, "v"+strconv.Itoa(key.Version)
			}
		}
		// an enrolled host's backups are in its repository, hosts/<id>
		mf := "manifests/" + b.ID
		if dir != "" {
			mf = dir + "/" + mf
		}
		l.Path = ptr(joinKey(deref(l.Path), mf))
		if l.S3Address != nil {
			l.Key = joinKey(l.Key, mf)
		}
		locs = append(locs, l)
	}
	kids, err := s.Store.ChildBackups(r.Context(), b.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.BackupDetails{
		ID: b.ID, Name: b.Name, Description: b.Description, Timestamp: rfc3339(b.Timestamp),
		Type: b.Type, Status: b.Status, Protected: b.Protected, JobID: b.JobID,
		SizeDetails: api.BackupSizeDetails{
			RawSize: humanSize(b.SizeBytes), RawSizeBytes: b.SizeBytes,
			CompressedSize: humanSize(b.CompressedBytes), CompressedSizeBytes: b.CompressedBytes,
			CompressionRatio: ratio, ComponentsSize: compSizes, ComponentsSizeBytes: compBytes,
			AddedSize: humanSize(b.AddedBytes), AddedSizeBytes: b.AddedBytes, DeduplicationRatio: dedup,
			Files: b.Files,
		},
		Duration: api.BackupDuration{Start: rfc3339(b.Timestamp), End: rfc3339ptr(end), TotalSeconds: math.Round(b.DurationSeconds)},
		Storage:  api.BackupStorage{Locations: locs, Requested: nonNil(b.Requested)},
		Encryption: api.BackupEncryption{Algorithm: b.Encryption, KeyID: keyID, KeyVersion: keyVersion,
			Encrypted: true},
		Integrity: api.BackupIntegrity{Checksum: checksum, Verified: b.IntegrityCheck == "passed",
			Status: b.IntegrityCheck, VerificationTimestamp: rfc3339ptr(b.VerifiedAt),
			Signature: signature, SignatureAlgorithm: "Ed25519", SignatureTimestamp: rfc3339ptr(sigTime)},
		Metadata: api.BackupMetadata{SystemVersion: b.SystemVersion, KernelVersion: b.KernelVersion,
			HardwareID: b.HardwareID, Host: b.Host, CreatedBy: b.CreatedBy, ScheduleID: nilIfEmpty(b.ScheduleID),
			Compression: b.Compression, RetentionDays: b.RetentionDays, Warnings: b.Warnings},
		Dependencies: api.BackupDependencies{ParentBackup: nilIfEmpty(b.ParentBackup), BaseBackup: nilIfEmpty(b.BaseBackup),
			ChildBackups: nonNil(kids),
			// every backup's manifest lists its whole tree: it restores alone
			RequiredForRestore: []string{}},
		Error: nilIfEmpty(b.Error), ErrorCode: nilIfEmpty(b.ErrorCode),
	})
	return nil
}

func joinKey(base, rest string) string {
	if base == "" {
		return rest
	}
	return strings.TrimSuffix(base, "/") + "/" + rest
}

// nilIfEmpty is null for "".
func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// manifestFacts reads a backup's stored manifest at a location: the
// SHA-256 of the stored object, with the signature checked on load.
func (s *Server) manifestFacts(ctx context.Context, loc string, b *models.Backup) (string, *repository.KeyEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	id := b.ID
	repo, err := s.backupRepo(ctx, loc, b)
	if err != nil {
		return "", nil, err
	}
	if _, err := repo.LoadManifest(ctx, id); err != nil {
		return "", nil, err
	}
	rc, err := repo.Backend().Get(ctx, "manifests/"+id, 0, -1)
	if err != nil {
		return "", nil, err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", nil, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), repo.KeyEntry(), nil
}

// ---- create

// priorities map to Temporal's priority keys (1 is served first).
var priorities = map[string]int{"critical": 1, "high": 2, "normal": 3, "low": 4}

func validText(field, v string, max int) error {
	if len(v) > max {
		return badRequest(field, "%s: longer than %d characters", field, max)
	}
	for _, c := range v {
		if unicode.IsControl(c) && c != '\n' && c != '\t' {
			return badRequest(field, "%s: contains control characters", field)
		}
	}
	return nil
}

// selectComponents validates a component selection against the configuration.
func (s *Server) selectComponents(set api.ComponentSet, required bool) ([]string, error) {
	var out []string
	for n, on := range set {
		if _, ok := s.Cfg.Components[n]; !ok {
			return nil, badRequest("components."+n, "components.%s: unknown component (configured: %s)", n,
				strings.Join(s.Cfg.ComponentNames(), ", "))
		}
		if on {
			out = append(out, n)
		}
	}
	if required && len(out) == 0 {
		return nil, badRequest("components", "components: select at least one component (configured: %s)",
			strings.Join(s.Cfg.ComponentNames(), ", "))
	}
	sort.Strings(out)
	return out, nil
}

// selectLocations validates storage locations; the primary, when named,
// is written first (it is the fastest) and the others get copies.
func (s *Server) selectLocations(ctx context.Context, field string, names []string) ([]string, error) {
	if len(names) == 0 {
		p, err := s.policies(ctx)
		if err != nil {
			return nil, err
		}
		if p.Replication.Enabled && p.Replication.AutoReplicate {
			names = s.enabledLocations(p)
		} else {
			names = []string{s.Cfg.Primary}
		}
	}
	seen := map[string]bool{}
	var out []string
	for i, n := range names {
		if _, ok := s.Cfg.Storage[n]; !ok {
			return nil, badRequest(fmt.Sprintf("%s[%d]", field, i), "%s: unknown storage location %q (configured: %s)",
				field, n, strings.Join(s.Cfg.LocationNames(), ", "))
		}
		if seen[n] {
			return nil, badRequest(fmt.Sprintf("%s[%d]", field, i), "%s: %q is listed twice", field, n)
		}
		seen[n] = true
		out = append(out, n)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i] == s.Cfg.Primary && out[j] != s.Cfg.Primary })
	return out, nil
}

func (s *Server) enabledLocations(p *Policies) []string {
	var out []string
	for _, n := range s.Cfg.LocationNames() {
		if lp := p.Locations[n]; lp == nil || lp.Enabled {
			out = append(out, n)
		}
	}
	return out
}

func (s *Server) createBackup(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateBackupRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Type == "" {
		req.Type = "full"
	}
	if err := oneOf("type", req.Type, backupTypes...); err != nil {
		return err
	}
	target, err := s.jobHost(r.Context(), req.Host)
	if err != nil {
		return err
	}
	if target != nil {
		setHost(r, target.Name)
	}
	var comps []string
	if target == nil {
		comps, err = s.selectComponents(req.Components, true)
	} else {
		comps, err = selectHostComponents(target, req.Components)
	}
	if err != nil {
		return err
	}
	if s.LocalWorker && target == nil {
		// the worker runs here: a missing source is refused now (another
		// host's worker refuses it when the job starts, as BACKUP_003 too)
		for _, c := range comps {
			for _, p := range s.Cfg.Components[c].Paths {
				if _, err := os.Lstat(p); err != nil {
					return badRequest("components."+c, "components.%s: source %s does not exist on %s", c, p, s.Cfg.Host)
				}
			}
		}
	}
	locs, err := s.selectLocations(r.Context(), "storage_locations", req.StorageLocations)
	if err != nil {
		return err
	}
	if err := hostHasRepos(target, locs); err != nil {
		return err
	}
	var quotaWarning string
	if target != nil {
		used, err := s.hostUse(r, target)
		if err != nil {
			return err
		}
		switch quotaState(target, used) {
		case "exceeded":
			return overHardQuota(target, used)
		case "warning":
			quotaWarning = sprintf("host %s is past its soft quota: its backups hold %s of %s (hard limit %s)", target.Name,
				humanSize(used), humanSize(target.QuotaSoftBytes), humanSize(target.QuotaHardBytes))
		}
	}
	pol, err := s.policies(r.Context())
	if err != nil {
		return err
	}
	if req.Compression == "" {
		req.Compression = pol.Compression.DefaultAlgorithm
	}
	if err := oneOf("compression", req.Compression, compressions...); err != nil {
		return err
	}
	if req.Priority == "" {
		req.Priority = "normal"
	}
	prio, ok := priorities[req.Priority]
	if !ok {
		return badRequest("priority", "priority: %q is not one of low, normal, high, critical", req.Priority)
	}
	if err := validText("name", req.Name, 200); err != nil {
		return err
	}
	if err := validText("description", req.Description, 2000); err != nil {
		return err
	}
	retention := 0
	if req.RetentionDays != nil {
		if *req.RetentionDays < 1 || *req.RetentionDays > 36500 {
			return badRequest("retention_days", "retention_days: %d is outside 1..36500", *req.RetentionDays)
		}
		retention = *req.RetentionDays
	}
	if req.Protected && stateOf(r).token.Role != "admin" {
		return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN", Message: "protected: protecting a backup needs the admin role"}
	}
	var warnings []string
	if req.Encryption != nil && !*req.Encryption {
		warnings = append(warnings, "encryption cannot be turned off: every backupd repository is encrypted (AES-256-GCM)")
	}
	now := time.Now().UTC()
	if req.Name == "" {
		req.Name = req.Type + "-manual-" + now.Format("20060102-1504")
	}
	est := s.estimate(r.Context(), target, comps, req.Type, len(locs)-1)
	backupID, jobID := repository.NewBackupID(now), jobs.NewID("BACKUP-JOB-")
	setTarget(r, backupID)
	wreq := workflows.BackupRequest{JobID: jobID, BackupID: backupID, Name: req.Name, Type: req.Type,
		Components: comps, Locations: locs, Compression: req.Compression, Verify: req.VerifyAfterCompletion,
		Description: req.Description, CreatedBy: user(r), RetentionDays: retention, CatalogQueue: s.catalogQueue()}
	if req.NotifyOnCompletion != nil && *req.NotifyOnCompletion {
		wreq.Notify = &workflows.NotifyPrefs{OnSuccess: true, OnFailure: true, OnWarning: true}
	}
	if target != nil {
		wreq.HostDir = hostRepoDir(target)
	}
	// the rows first, so a job that finishes at once finds them; they go
	// again if the start is refused
	hostName := ""
	if target != nil {
		hostName = target.Name
	}
	job := &models.Job{ID: jobID, Type: api.JobBackup, Subtype: "manual_" + req.Type, Status: "queued", BackupID: backupID, Host: hostName,
		Name: req.Name, User: user(r), Started: now, EstimatedBytes: est.bytes, EstimatedSeconds: est.duration.Seconds(),
		Request: models.ToJSON(req)}
	row := &models.Backup{ID: backupID, Name: req.Name, Description: req.Description, Type: req.Type, Status: workflows.StatusInProgress,
		Timestamp: now, Components: comps, Requested: locs, Locations: models.Strings{}, Encryption: "AES-256",
		Compression: req.Compression, IntegrityCheck: "pending", RetentionDays: retention, CreatedBy: user(r), JobID: jobID,
		Protected: req.Protected, ComponentSizes: map[string]int64{}, Host: hostName}
	if err := s.Store.PutJob(r.Context(), job); err != nil {
		return err
	}
	if err := s.Store.PutBackup(r.Context(), row); err != nil {
		return err
	}
	started, err := s.startBackupOn(r.Context(), target, wreq, prio)
	if err != nil {
		ctx := context.WithoutCancel(r.Context())
		s.Store.DeleteBackup(ctx, backupID)
		s.Store.UpdateJob(ctx, jobID, map[string]any{"status": "failed", "error": err.Error(), "finished": time.Now().UTC()})
		return err
	}
	s.Store.UpdateJob(r.Context(), jobID, map[string]any{"workflow_id": started.WorkflowID, "run_id": started.RunID})
	s.Hub.Track(jobID)
	if pw := s.policyWarning(locs, pol); pw != "" {
		warnings = append(warnings, pw)
	}
	if quotaWarning != "" {
		warnings = append(warnings, quotaWarning)
	}
	writeJSON(w, http.StatusOK, api.BackupStarted{
		Status: "started", BackupID: backupID, Name: req.Name, JobID: jobID,
		Type: req.Type, EstimatedSize: humanSize(est.bytes), EstimatedSizeBytes: est.bytes,
		EstimatedDuration: humanEstimate(est.duration), EstimatedDurationSeconds: math.Round(est.duration.Seconds()),
		EstimateBasis: est.basis, Components: comps, StorageLocations: locs, Encryption: "AES-256",
		Compression: req.Compression, Priority: req.Priority,
		ProgressURL: "/cloud-integration/backup/progress?job_id=" + jobID,
		Cancelable:  true, Pausable: true, WorkflowID: started.WorkflowID,
		TemporalUIURL: s.workflowURL(started.WorkflowID, started.RunID),
		Warnings:      warnings,
	})
	return nil
}

func (s *Server) catalogQueue() string { return catalogQueueName }

// startBackup starts the workflow. A backup of the same components whose
// job the catalog already shows as ended, but whose workflow is still
// closing (its last steps run after the catalog record), is not "already
// running": a client that waited for "completed" must be able to start
// the next one, so the start waits for it to close (up to 15 s).
func (s *Server) startBackup(ctx context.Context, req workflows.BackupRequest, prio int) (*jobs.Job, error) {
	return s.startBackupOn(ctx, nil, req, prio)
}

// startBackupOn starts the backup on a host's task queue (nil: the
// server's own host).
func (s *Server) startBackupOn(ctx context.Context, h *models.Host, req workflows.BackupRequest, prio int) (*jobs.Job, error) {
	jc := s.jobsFor(h)
	started, err := jc.StartBackup(ctx, req, prio)
	var ce *codes.Error
	if err == nil || !errors.As(err, &ce) || ce.Code != codes.AlreadyInProgress {
		return started, err
	}
	wid := jobs.BackupWorkflowID(jc.Host, req.Components)
	d, derr := s.Temporal.DescribeWorkflowExecution(ctx, wid, "")
	if derr != nil {
		return nil, err
	}
	j, jerr := s.Store.GetJobByRun(ctx, wid, d.WorkflowExecutionInfo.Execution.RunId)
	if jerr != nil || j.Finished == nil {
		return nil, err // really running
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		d, derr := s.Temporal.DescribeWorkflowExecution(ctx, wid, "")
		if derr == nil && d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return jc.StartBackup(ctx, req, prio)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, err
}

// catalogQueueName is where this server runs the catalog activities.
var catalogQueueName = activities.CatalogTaskQueue

func (s *Server) workflowURL(id, run string) string {
	if s.Cfg.Temporal.UIURL == "" {
		return ""
	}
	return strings.TrimSuffix(s.Cfg.Temporal.UIURL, "/") + "/namespaces/" + s.Cfg.Temporal.Namespace + "/workflows/" + id + "/" + run
}

type estimate struct {
	bytes    int64
	duration time.Duration
	basis    string
}

// estimate sizes a backup from the last completed one of the same
// components on the same host, else (the server's own) from a quick scan
// of the sources (bounded in time).
func (s *Server) estimate(ctx context.Context, host *models.Host, comps []string, typ string, copies int) estimate {
	hosts := s.ownHosts(ctx)
	if host != nil {
		hosts = []string{host.Name}
	}
	prev, err := s.Store.LatestBackup(ctx, hosts, comps, workflows.StatusCompleted, "full")
	if err == nil && prev.SizeBytes > 0 {
		e := estimate{bytes: prev.SizeBytes, duration: time.Duration(prev.DurationSeconds * float64(time.Second)), basis: "previous_backup:" + prev.ID}
		if typ != "full" {
			if same, err := s.Store.LatestBackup(ctx, hosts, comps, workflows.StatusCompleted, typ); err == nil {
				e.duration = time.Duration(same.DurationSeconds * float64(time.Second))
				e.basis = "previous_backup:" + same.ID
			}
		}
		return e
	}
	if host != nil {
		// its files are on the host: nothing here to scan
		return estimate{duration: time.Second, basis: "unknown (a first backup of enrolled host " + host.Name + ")"}
	}
	deadline := time.Now().Add(time.Second)
	var total int64
	complete := true
	for _, c := range comps {
		for _, p := range s.Cfg.Components[c].Paths {
			filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
				if err != nil {
					return nil
				}
				if time.Now().After(deadline) {
					complete = false
					return filepath.SkipAll
				}
				if d.Type().IsRegular() {
					if fi, err := d.Info(); err == nil {
						total += fi.Size()
					}
				}
				return nil
			})
		}
	}
	basis := "scan"
	if !complete {
		basis = "partial_scan (lower bound)"
	}
	// a first backup runs at roughly 100 MB/s on the machines measured in
	// bench/README.md; later ones are faster. Copies run in parallel, at
	// about 40 MB/s to the S3 and SFTP servers of the dev stack (1 GiB to
	// both in 23 s, measured with make run)
	d := time.Duration(float64(total)/100e6*float64(time.Second)) + time.Second
	if copies > 0 {
		d += time.Duration(float64(total) / 40e6 * float64(time.Second))
	}
	return estimate{bytes: total, duration: d, basis: basis}
}

// ---- delete, protect, download

func (s *Server) deleteBackup(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["backup_id"]
	setTarget(r, id)
	q := r.URL.Query()
	if err := onlyParams(q, "force", "locations"); err != nil {
		return err
	}
	force, err := boolParam(q.Get("force"), "force")
	if err != nil {
		return err
	}
	b, err := s.backupOf(r.Context(), id)
	if err != nil {
		return err
	}
	if b.Protected {
		return conflict(codes.RetentionViolation, "backup %s is protected; unprotect it first (POST /backup/%s/protect)", id, id)
	}
	if b.Status == workflows.StatusInProgress {
		return conflict(codes.AlreadyInProgress, "backup %s is still running; cancel its job %s first", id, b.JobID)
	}
	if b.RetentionDays > 0 && !force {
		until := b.Timestamp.Add(time.Duration(b.RetentionDays) * 24 * time.Hour)
		if time.Now().Before(until) {
			return conflict(codes.RetentionViolation, "backup %s is kept by its retention (%d days) until %s; add force=true to delete it anyway",
				id, b.RetentionDays, rfc3339(until))
		}
	}
	locs := []string(b.Locations)
	if l := q.Get("locations"); l != "" {
		locs = strings.Split(l, ",")
		for i, n := range locs {
			if !contains(b.Locations, n) {
				return badRequest("locations", "locations[%d]: backup %s is not stored in %q (it is in %s)", i, id, n, strings.Join(b.Locations, ", "))
			}
		}
	}
	if len(locs) == 0 {
		// a failed or cancelled backup stored nowhere: only the row goes
		if err := s.Store.DeleteBackup(r.Context(), id); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, api.BackupDeletion{Status: "deleted", BackupID: id, Locations: []string{}})
		return nil
	}
	cleanupID := jobs.NewID("CLEANUP-")
	req := workflows.CleanupRequest{Locations: locs, BackupIDs: []string{id}, Subtype: "delete"}
	// an enrolled host's backup is in its own repository
	if dir, err := s.repoDirOf(r.Context(), b.Host); err != nil {
		return err
	} else if dir != "" {
		req.HostDirs = map[string]string{id: dir}
	}
	job, err := s.launchCleanup(r.Context(), user(r), cleanupID, req, nil)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, api.BackupDeletion{Status: "deletion_started", BackupID: id, Locations: locs,
		JobID: job, CleanupID: cleanupID, ReportURL: "/cloud-integration/backup/cleanup/report/" + cleanupID})
	return nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func (s *Server) protectBackup(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["backup_id"]
	setTarget(r, id)
	var req api.ProtectRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	err := s.Store.UpdateBackup(r.Context(), id, map[string]any{"protected": req.Protected})
	if errors.Is(err, models.ErrNotFound) {
		return notFound(codes.BackupNotFound, "no backup %q", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ProtectResponse{Status: "updated", BackupID: id, Protected: req.Protected})
	return nil
}

func (s *Server) downloadBackup(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["backup_id"]
	q := r.URL.Query()
	if err := onlyParams(q, "format", "component"); err != nil {
		return err
	}
	format := q.Get("format")
	if format == "" {
		format = "tar.gz"
	}
	if err := oneOf("format", format, downloadFormats...); err != nil {
		return err
	}
	b, err := s.backupOf(r.Context(), id)
	if err != nil {
		return err
	}
	if len(b.Locations) == 0 {
		return conflict(codes.BackupNotFound, "backup %s is not stored in any location (status %s)", id, b.Status)
	}
	var comps []string
	if c := q.Get("component"); c != "" {
		if !contains(b.Components, c) {
			return badRequest("component", "component: backup %s has no component %q (it has %s)", id, c, strings.Join(b.Components, ", "))
		}
		comps = []string{c}
	}
	loc := b.Locations[0]
	repo, err := s.backupRepo(r.Context(), loc, b)
	if err != nil {
		return err
	}
	m, err := repo.LoadManifest(r.Context(), id)
	if err != nil {
		return err
	}
	if err := repo.LoadIndex(r.Context()); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+"."+format))
	w.WriteHeader(http.StatusOK)
	// errors now can only cut the stream: the archive then lacks its
	// end-of-archive marker, so tar reports it as truncated
	if err := restore.Export(r.Context(), repo, m, w, restore.ExportOptions{Format: format, Components: comps}); err != nil {
		s.Log.Warn("download cut short", "backup", id, "err", err)
	}
	return nil
}

// backupOf loads a backup; a missing one is BACKUP_007 naming it.
func (s *Server) backupOf(ctx context.Context, id string) (*models.Backup, error) {
	b, err := s.Store.GetBackup(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, notFound(codes.BackupNotFound, "no backup %q", id)
	}
	return b, err
}

// ---- query helpers

// paging reads a list's page size (limit or page_size: one vocabulary,
// one maximum on every list) and page.
func paging(q url.Values, def int) (size, page int, err error) {
	name, v := "limit", q.Get("limit")
	if ps := q.Get("page_size"); ps != "" {
		if v != "" && v != ps {
			return 0, 0, badRequest("page_size", "page_size (%s) and limit (%s) are the same parameter with different values: send one", ps, v)
		}
		name, v = "page_size", ps
	}
	if size, err = intParam(v, name, def, 1, api.MaxPageSize); err != nil {
		return
	}
	page, err = intParam(q.Get("page"), "page", 1, 1, math.MaxInt32)
	return
}

// pageParams reads the page (default 50 entries), since and until.
func pageParams(q url.Values) (limit, page int, since, until *time.Time, err error) {
	if limit, page, err = paging(q, 50); err != nil {
		return
	}
	if since, err = timeParam(q.Get("since"), "since"); err != nil {
		return
	}
	if until, err = timeParam(q.Get("until"), "until"); err != nil {
		return
	}
	if since != nil && until != nil && until.Before(*since) {
		err = badRequest("until", "until (%s) is before since (%s)", rfc3339(*until), rfc3339(*since))
	}
	return
}

func onlyParams(q map[string][]string, allowed ...string) error {
	for k := range q {
		if !contains(allowed, k) {
			return badRequest(k, "unknown query parameter %q (allowed: %s)", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func intParam(v, name string, def, min, max int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, badRequest(name, "%s: %q is not an integer", name, v)
	}
	if n < min || n > max {
		return 0, badRequest(name, "%s: %d is outside %d..%d", name, n, min, max)
	}
	return n, nil
}

func boolParam(v, name string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest(name, "%s: %q is not true or false", name, v)
	}
	return b, nil
}

func timeParam(v, name string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return &t, nil
		}
	}
	return nil, badRequest(name, "%s: %q is not an RFC 3339 timestamp (like 2025-03-15T02:00:00Z)", name, v)
}

type totalsEntry struct {
	gen        int64
	at         time.Time
	tot        models.BackupTotals
	refreshing bool
}

// backupTotals caches the list's summary per filter: it is an aggregate
// over every matching row (tens of milliseconds at 100k backups), the
// page itself an index scan. An entry is fresh while the catalog has not
// changed through this process and for 30 s (writes by another process);
// after that the old sums are served while one request refreshes them.
func (s *Server) backupTotals(ctx context.Context, f models.BackupFilter) (models.BackupTotals, error) {
	key := fmt.Sprintf("%s|%s|%s|%v|%v|%q", f.Type, f.Status, f.ScheduleID, f.Since, f.Until, f.Hosts)
	gen := s.Store.Generation()
	s.totMu.Lock()
	e, ok := s.totCache[key]
	if ok && e.gen != gen {
		ok = false // this process changed the catalog: never show the old sums
	}
	fresh := ok && time.Since(e.at) < 30*time.Second
	if ok && !fresh && !e.refreshing {
		e.refreshing = true
		s.totCache[key] = e
		s.totMu.Unlock()
		go func() {
			tot, err := s.Store.BackupTotals(context.WithoutCancel(ctx), f)
			s.totMu.Lock()
			defer s.totMu.Unlock()
			if err != nil {
				e.refreshing = false
				s.totCache[key] = e
				return
			}
			s.totCache[key] = totalsEntry{gen: gen, at: time.Now(), tot: tot}
		}()
		return e.tot, nil
	}
	s.totMu.Unlock()
	if ok {
		return e.tot, nil
	}
	tot, err := s.Store.BackupTotals(ctx, f)
	if err != nil {
		return tot, err
	}
	s.totMu.Lock()
	if len(s.totCache) > 1000 {
		s.totCache = map[string]totalsEntry{}
	}
	s.totCache[key] = totalsEntry{gen: gen, at: time.Now(), tot: tot}
	s.totMu.Unlock()
	return tot, nil
}
