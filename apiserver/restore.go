package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"backupd/activities"
	"backupd/api"
	"backupd/codes"
	"backupd/jobs"
	"backupd/models"
	"backupd/restore"
	"backupd/sources"
	"backupd/workflows"
)

// checkTarget refuses restore targets that could land outside what the
// operator named: relative paths, "..", and any symlink on the way (the
// engine itself never follows symlinks inside the target).
func checkTarget(t string) error {
	const field = "target_location"
	if !filepath.IsAbs(t) {
		return badRequest(field, "target_location: %q must be \"original\" or an absolute directory path", t)
	}
	for _, el := range strings.Split(t, "/") {
		if el == ".." {
			return badRequest(field, "target_location: %q contains \"..\"", t)
		}
	}
	if filepath.Clean(t) == "/" {
		return badRequest(field, "target_location: \"/\" is not a restore directory; use \"original\" to restore to the original paths")
	}
	// every existing ancestor must be a real directory, not a symlink
	p := "/"
	for _, el := range strings.Split(strings.Trim(filepath.Clean(t), "/"), "/") {
		p = filepath.Join(p, el)
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return badRequest(field, "target_location: %s: %v", p, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return badRequest(field, "target_location: %s is a symbolic link; name the real directory", p)
		}
		if !fi.IsDir() {
			return badRequest(field, "target_location: %s is not a directory", p)
		}
	}
	return nil
}

func (s *Server) startRestore(w http.ResponseWriter, r *http.Request) error {
	var req api.RestoreRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.BackupID == "" {
		return badRequest("backup_id", "backup_id is required")
	}
	setTarget(r, req.BackupID)
	if req.RestoreType == "" {
		req.RestoreType = "full"
		if len(req.Components) > 0 || len(req.Paths) > 0 {
			req.RestoreType = "partial"
		}
	}
	if err := oneOf("restore_type", req.RestoreType, "full", "partial"); err != nil {
		return err
	}
	if err := validText("description", req.Description, 2000); err != nil {
		return err
	}
	b, err := s.backupOf(r.Context(), req.BackupID)
	if err != nil {
		return err
	}
	if b.Status != workflows.StatusCompleted && b.Status != workflows.StatusPartial {
		return conflict(codes.BackupNotFound, "backup %s is %s; only completed (or partial) backups can be restored", b.ID, b.Status)
	}
	if dir, err := s.repoDirOf(r.Context(), b.Host); err != nil {
		return err
	} else if dir != "" {
		return s.startHostRestore(w, r, req, b)
	}
	if req.Host != "" && req.Host != s.Cfg.Host {
		return badRequest("host", "host: backup %s is this server's (host %s); it is restored here, not on enrolled host %s", b.ID, s.Cfg.Host, req.Host)
	}
	comps, err := restoreSelection(req, b)
	if err != nil {
		return err
	}
	if req.TargetLocation == "" {
		req.TargetLocation = "original"
	}
	original := req.TargetLocation == "original"
	intoDB := strings.HasPrefix(req.TargetLocation, "database:")
	if !original && !intoDB {
		if err := checkTarget(req.TargetLocation); err != nil {
			return err
		}
	}
	loc := req.StorageLocation
	if loc == "" {
		if len(b.Locations) == 0 {
			return conflict(codes.BackupNotFound, "backup %s is not stored in any location", b.ID)
		}
		loc = b.Locations[0]
		for _, l := range b.Locations {
			if l == s.Cfg.Primary {
				loc = l
			}
		}
	} else if !contains(b.Locations, loc) {
		return badRequest("storage_location", "storage_location: backup %s is not stored in %q (it is in %s)", b.ID, loc, strings.Join(b.Locations, ", "))
	}
	verifyBefore := req.VerifyBeforeRestore == nil || *req.VerifyBeforeRestore
	var warnings []string
	if req.CreatePreRestoreSnapshot && !original {
		// the snapshot protects the original paths a restore overwrites;
		// a restore into another directory does not touch them
		req.CreatePreRestoreSnapshot = false
		warnings = append(warnings, "no pre-restore snapshot: the restore writes to "+req.TargetLocation+", not over the original paths")
	}
	var size int64
	restored := restoredOf(comps, b.Components)
	for _, c := range restored {
		size += b.ComponentSizes[c]
	}
	if len(restored) == len(b.Components) && size == 0 {
		size = b.SizeBytes
	}
	now := time.Now().UTC()
	restoreID, jobID := jobs.NewID("RESTORE-"), jobs.NewID("RESTORE-JOB-")
	target := req.TargetLocation
	if original || intoDB {
		target = ""
	}
	dbs, fileComps, err := databasePlan(restored, req.TargetLocation, req.Overwrite, func(c string) componentConns {
		cc := s.Cfg.Components[c]
		out := componentConns{paths: len(cc.Paths) > 0}
		for _, d := range cc.Databases {
			out.dbs = append(out.dbs, api.HostDatabase{Label: d.Source().Label(), Database: d.Database})
		}
		return out
	}, "")
	if err != nil {
		return err
	}
	wcomps := comps
	if original || intoDB {
		wcomps = fileComps
	}
	wreq := workflows.RestoreRequest{
		RestoreInput: activities.RestoreInput{BackupID: b.ID, Location: loc, Target: target, Components: wcomps, Paths: req.Paths,
			Overwrite: req.Overwrite || original, Original: original, SkipDumps: original, Mirror: req.Mirror},
		JobID: jobID, VerifyBefore: verifyBefore, VerifyAfter: req.VerifyAfterRestore, RestoreID: restoreID,
		Subtype: req.RestoreType, CatalogQueue: s.catalogQueue(), Databases: dbs,
		NoFiles:            (original || intoDB) && len(fileComps) == 0,
		PreRestoreSnapshot: req.CreatePreRestoreSnapshot, SnapshotLocation: s.Cfg.Primary}
	if req.CreatePreRestoreSnapshot {
		// exactly the components the restore overwrites, as configured now
		for _, c := range restoredOf(comps, b.Components) {
			if _, ok := s.Cfg.Components[c]; ok {
				wreq.SnapshotComponents = append(wreq.SnapshotComponents, c)
			}
		}
	}
	if s.LocalWorker && !wreq.NoFiles && !wreq.Overwrite {
		// the worker runs here: a target it would refuse is refused now,
		// before a job exists (another host's worker refuses it as the
		// job starts, with the same code)
		a := &activities.Activities{Stores: s.Stores, Config: s.Cfg}
		var full *restore.TargetNotEmptyError
		if err := a.RestoreTargetProblem(r.Context(), wreq.RestoreInput); errors.As(err, &full) {
			e := conflict(codes.RestoreConflict, "%s, where this restore writes under target_location %s, is not empty: set \"overwrite\": true to restore into it (files of the same names are replaced), or choose an empty directory", full.Dir, req.TargetLocation)
			e.Details = map[string]any{"field": "overwrite", "target_location": req.TargetLocation, "directory": full.Dir}
			return e
		} else if err != nil && !userFacing(err) {
			s.Log.Warn("restore target check failed; the worker checks again", "err", err)
		} else if err != nil {
			return err
		}
	}
	// restores run at 100-200 MB/s on the measured machines (bench/README.md)
	dur := time.Duration(float64(size)/150e6*float64(time.Second)) + 2*time.Second
	job := &models.Job{ID: jobID, Type: api.JobRestore, Subtype: req.RestoreType, Status: "queued", RefID: restoreID,
		BackupID: b.ID, Name: b.Name, User: user(r), Started: now, EstimatedBytes: size, EstimatedSeconds: dur.Seconds(),
		Request: models.ToJSON(req)}
	if err := s.Store.PutJob(r.Context(), job); err != nil {
		return err
	}
	started, err := s.Jobs.StartRestore(r.Context(), wreq)
	if err != nil {
		s.Store.UpdateJob(r.Context(), jobID, map[string]any{"status": "failed", "error": err.Error(), "finished": time.Now().UTC()})
		return err
	}
	s.Store.UpdateJob(r.Context(), jobID, map[string]any{"workflow_id": started.WorkflowID, "run_id": started.RunID})
	s.Hub.Track(jobID)
	resp := api.RestoreStarted{
		Status: "restore_started", RestoreID: restoreID, BackupID: b.ID, JobID: jobID,
		RestoreType: req.RestoreType, Components: nonNil(restored), StorageLocation: loc,
		TargetLocation: req.TargetLocation, Databases: len(dbs),
		EstimatedSize: humanSize(size), EstimatedSizeBytes: size,
		EstimatedDuration: humanEstimate(dur), EstimatedDurationSeconds: math.Round(dur.Seconds()),
		Warning:             "System performance may be affected during restore",
		VerifyBeforeRestore: verifyBefore, VerifyAfterRestore: req.VerifyAfterRestore,
		ProgressURL:   "/cloud-integration/backup/restore/progress?job_id=" + jobID,
		TemporalUIURL: s.workflowURL(started.WorkflowID, started.RunID),
		Warnings:      warnings,
	}
	if req.CreatePreRestoreSnapshot {
		// the snapshot is the job's first step (the restore waits for it);
		// its id is fixed now
		snap := workflows.SnapshotID(restoreID)
		resp.PreRestoreSnapshotCreated, resp.SnapshotID = true, &snap
		resp.Rollback = &api.Rollback{BackupID: snap, TargetLocation: "original",
			How: "POST /cloud-integration/backup/restore with this backup_id restores what was there before"}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// restoreSelection is the components a restore request selects (nil: all
// of the backup's), its paths checked.
func restoreSelection(req api.RestoreRequest, b *models.Backup) ([]string, error) {
	// components: named ones must be in the backup
	var comps []string
	for n, on := range req.Components {
		if !contains(b.Components, n) {
			return nil, badRequest("components."+n, "components.%s: backup %s has no such component (it has %s)", n, b.ID, strings.Join(b.Components, ", "))
		}
		if on {
			comps = append(comps, n)
		}
	}
	sort.Strings(comps)
	if req.RestoreType == "partial" && len(comps) == 0 && len(req.Paths) == 0 {
		return nil, badRequest("components", "a partial restore names at least one component or path")
	}
	if req.RestoreType == "full" {
		comps = nil
	}
	for i, p := range req.Paths {
		if !filepath.IsAbs(p) || strings.Contains("/"+p+"/", "/../") {
			return nil, badRequest(fmt.Sprintf("paths[%d]", i), "paths[%d]: %q must be an absolute path without \"..\"", i, p)
		}
	}
	return comps, nil
}

func restoredOf(sel, all []string) []string {
	if sel == nil {
		return all
	}
	return sel
}

// rollback undoes a restore that took a pre-restore snapshot: it restores
// the snapshot over the original paths (and databases) again.
func (s *Server) rollbackRestore(w http.ResponseWriter, r *http.Request) error {
	var req api.RollbackRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.RestoreID == "" && req.JobID == "" {
		return badRequest("restore_id", "restore_id (or job_id) is required")
	}
	j, err := s.findJob(r.Context(), api.JobRestore, req.JobID, req.RestoreID)
	if err != nil {
		return err
	}
	setTarget(r, j.RefID)
	if j.Finished == nil {
		return conflict(codes.RestoreConflict, "restore %s is still running; cancel it first, then roll back", j.RefID)
	}
	snap := workflows.SnapshotID(j.RefID)
	b, err := s.Store.GetBackup(r.Context(), snap)
	if err != nil {
		return notFound(codes.BackupNotFound, "restore %s took no pre-restore snapshot (create_pre_restore_snapshot with target original)", j.RefID)
	}
	if b.Status != workflows.StatusCompleted && b.Status != workflows.StatusPartial {
		return conflict(codes.BackupNotFound, "the pre-restore snapshot %s is %s", snap, b.Status)
	}
	r2 := api.RestoreRequest{BackupID: snap, RestoreType: "full", TargetLocation: "original", Overwrite: true, Mirror: true,
		Description: "rollback of " + j.RefID}
	body, _ := json.Marshal(r2)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Type", "application/json")
	return s.startRestore(w, r)
}

// ---- verify

func (s *Server) startVerify(w http.ResponseWriter, r *http.Request) error {
	var req api.VerifyRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.BackupID == "" {
		return badRequest("backup_id", "backup_id is required")
	}
	setTarget(r, req.BackupID)
	b, err := s.backupOf(r.Context(), req.BackupID)
	if err != nil {
		return err
	}
	// an enrolled host's backup is verified by the server, in the host's
	// repository (the server holds its keys)
	dir, err := s.repoDirOf(r.Context(), b.Host)
	if err != nil {
		return err
	}
	jc := s.Jobs
	if dir != "" {
		setHost(r, b.Host)
		jc = &jobs.Client{C: s.Jobs.C, TaskQueue: activities.HostJobsTaskQueue, Host: b.Host}
	}
	loc := req.StorageLocation
	if loc == "" {
		if len(b.Locations) == 0 {
			return conflict(codes.BackupNotFound, "backup %s is not stored in any location", b.ID)
		}
		loc = b.Locations[0]
	} else if _, ok := s.Cfg.Storage[loc]; !ok {
		return badRequest("storage_location", "storage_location: unknown location %q (configured: %s)", loc, strings.Join(s.Cfg.LocationNames(), ", "))
	} else if !contains(b.Locations, loc) {
		return badRequest("storage_location", "storage_location: backup %s is not stored in %q (it is in %s)", b.ID, loc, strings.Join(b.Locations, ", "))
	}
	on := func(p *bool) bool { return p == nil || *p }
	// the structure and signature checks always run (they are what makes
	// the rest meaningful); verify_checksum reads and checks all data
	pct := 0.0
	if on(req.VerifyChecksum) {
		pct = 100
	}
	if req.ReadDataPercent != nil {
		if *req.ReadDataPercent < 0 || *req.ReadDataPercent > 100 {
			return badRequest("read_data_percent", "read_data_percent: %v is outside 0..100", *req.ReadDataPercent)
		}
		pct = *req.ReadDataPercent
	}
	checks := []string{"File existence check", "Digital signature verification", "Archive structure validation", "Metadata validation"}
	if pct > 0 {
		checks = append(checks[:1], append([]string{fmt.Sprintf("Checksum verification (%.0f%% of the data read)", pct)}, checks[1:]...)...)
	}
	if req.ExtractTest {
		checks = append(checks, "Extract test (restore into a scratch directory, every file verified)")
	}
	verID, jobID := jobs.NewID("VERIFY-"), jobs.NewID("VERIFY-JOB-")
	size := b.CompressedBytes
	dur := time.Duration(float64(size)*pct/100/150e6*float64(time.Second)) + 2*time.Second
	if req.ExtractTest {
		dur += time.Duration(float64(b.SizeBytes) / 150e6 * float64(time.Second))
	}
	job := &models.Job{ID: jobID, Type: api.JobVerify, Subtype: "manual", Status: "queued", RefID: verID, BackupID: b.ID,
		Name: b.Name, User: user(r), Started: time.Now().UTC(), EstimatedBytes: size, EstimatedSeconds: dur.Seconds(),
		Request: models.ToJSON(req)}
	if dir != "" {
		job.Host = b.Host
	}
	if err := s.Store.PutJob(r.Context(), job); err != nil {
		return err
	}
	started, err := jc.StartVerify(r.Context(), workflows.VerifyRequest{JobID: jobID, BackupID: b.ID, Location: loc,
		ReadDataPercent: pct, ExtractTest: req.ExtractTest, VerificationID: verID, CatalogQueue: s.catalogQueue(), Dir: dir})
	if err != nil {
		s.Store.UpdateJob(r.Context(), jobID, map[string]any{"status": "failed", "error": err.Error(), "finished": time.Now().UTC()})
		return err
	}
	s.Store.UpdateJob(r.Context(), jobID, map[string]any{"workflow_id": started.WorkflowID, "run_id": started.RunID})
	s.Hub.Track(jobID)
	writeJSON(w, http.StatusOK, api.VerifyStarted{
		Status: "verification_started", VerificationID: verID, JobID: jobID, BackupID: b.ID,
		StorageLocation: loc, EstimatedDuration: humanEstimate(dur), EstimatedDurationSeconds: math.Round(dur.Seconds()),
		Checks: checks, ReadDataPercent: pct, ExtractTest: req.ExtractTest,
		ReportURL: "/cloud-integration/backup/verify/report/" + verID,
	})
	return nil
}

func (s *Server) verifyReport(w http.ResponseWriter, r *http.Request) error {
	return s.report(w, r, api.JobVerify, mux.Vars(r)["verification_id"])
}

func (s *Server) cleanupReport(w http.ResponseWriter, r *http.Request) error {
	return s.report(w, r, api.JobCleanup, mux.Vars(r)["cleanup_id"])
}

// report returns a stored report, or the job's state while it runs.
func (s *Server) report(w http.ResponseWriter, r *http.Request, kind api.JobType, id string) error {
	rep, err := s.Store.GetReport(r.Context(), id)
	if err == nil && rep.Kind == kind {
		out, err := storedReport(rep)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	j, jerr := s.Store.GetJobByRef(r.Context(), kind, id)
	if jerr != nil {
		what := map[api.JobType]string{api.JobVerify: "verification", api.JobCleanup: "cleanup", api.JobRepair: "repair"}[kind]
		return notFound(codes.JobNotFound, "no %s %q", what, id)
	}
	p := s.liveProgress(r.Context(), j)
	// the report is the job's last record: without it the job is not over
	status := "in_progress"
	if j.Finished != nil {
		status = "failed"
	}
	body := api.ReportPending{ID: id, JobID: j.ID, Status: status, BackupID: nilIfEmpty(j.BackupID),
		Message: "the report is written when the job finishes", Progress: p.Percentage}
	if j.Finished != nil && j.Error != "" {
		body.Error = jobError(j.ErrorCode, j.Error, nil)
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// storedReport is a report as the job stored it, under its head.
func storedReport(rep *models.Report) (any, error) {
	head := api.ReportHead{ID: rep.ID, Status: rep.Status, JobID: rep.JobID, Created: rfc3339(rep.CreatedAt)}
	switch rep.Kind {
	case api.JobVerify:
		var v api.VerifyReport
		err := json.Unmarshal(rep.Body, &v)
		v.ReportHead = head
		return v, err
	case api.JobCleanup:
		var v api.CleanupReport
		err := json.Unmarshal(rep.Body, &v)
		v.ReportHead = head
		return v, err
	case api.JobRepair:
		var v api.RepairReport
		err := json.Unmarshal(rep.Body, &v)
		v.ReportHead = head
		return v, err
	}
	return nil, fmt.Errorf("report %s: no answer for a report of kind %q", rep.ID, rep.Kind)
}

// componentConns is what a component has where a restore runs: paths
// besides its databases, and its database connections.
type componentConns struct {
	paths bool
	dbs   []api.HostDatabase
}

// databasePlan splits a restore of the restored components to target:
// to the original (or into a database, "database:<name>") the dumps of
// each component's connections (conns, where the restore runs) are
// loaded and only the components with paths, or no connections, are
// restored as files; into a directory everything is files. where names
// the restoring host in errors ("" the server).
func databasePlan(restored []string, target string, overwrite bool, conns func(string) componentConns, where string) ([]activities.DatabaseRestoreInput, []string, error) {
	intoDB := strings.HasPrefix(target, "database:")
	if target != "original" && !intoDB {
		return nil, restored, nil
	}
	var dbs []activities.DatabaseRestoreInput
	var files []string
	for _, c := range restored {
		cc := conns(c)
		for _, d := range cc.dbs {
			dbs = append(dbs, activities.DatabaseRestoreInput{Component: c, Database: d.Label, Overwrite: overwrite})
		}
		if cc.paths || len(cc.dbs) == 0 {
			files = append(files, c)
		}
	}
	if !intoDB {
		return dbs, files, nil
	}
	name := strings.TrimPrefix(target, "database:")
	if len(dbs) != 1 {
		return nil, nil, badRequest("target_location", "target_location: %q restores one database, but the selection has %d%s (choose one component with one database)", target, len(dbs), where)
	}
	if !sources.ValidDBName(name) {
		return nil, nil, badRequest("target_location", "target_location: %q is not a database name (letters, digits, _ and $; at most 63)", name)
	}
	for _, d := range conns(dbs[0].Component).dbs {
		if d.Label == dbs[0].Database && d.Database == name {
			return nil, nil, badRequest("target_location", "target_location: %q is the original database%s; use \"original\" (and a pre-restore snapshot)", name, where)
		}
	}
	dbs[0].Target = name
	return dbs, nil, nil
}
