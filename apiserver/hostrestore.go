package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"backupd/activities"
	"backupd/api"
	"backupd/jobs"
	"backupd/models"
	"backupd/repository"
	"backupd/workflows"
)

// grantLifetime bounds a restore grant whose restore never ends it (the
// server then ends it at the next sweep).
const grantLifetime = 72 * time.Hour

// startHostRestore restores an enrolled host's backup on that host, or on
// another enrolled host (a replacement). The restoring host holds only a
// write-only key, so the server grants it, for this restore alone, a key
// entry in the backup's repository wrapped to its RSA key, and its storage
// proxy lets it read that repository (nothing else, read-only) until the
// restore ends the grant.
func (s *Server) startHostRestore(w http.ResponseWriter, r *http.Request, req api.RestoreRequest, b *models.Backup) error {
	ctx := r.Context()
	source, err := s.Store.GetHost(ctx, b.Host)
	if err != nil {
		return err
	}
	name := req.Host
	if name == "" {
		name = source.Name
	}
	if name == s.Cfg.Host {
		return badRequest("host", "host: backup %s is enrolled host %s's; restoring it on the server itself is not supported: name an enrolled host", b.ID, b.Host)
	}
	reader, err := s.jobHost(ctx, name)
	if err != nil {
		return err
	}
	setHost(r, reader.Name)
	comps, err := restoreSelection(req, b)
	if err != nil {
		return err
	}
	if req.TargetLocation == "" {
		req.TargetLocation = "original"
	}
	original := req.TargetLocation == "original"
	intoDB := strings.HasPrefix(req.TargetLocation, "database:")
	if !original && !intoDB && (!filepath.IsAbs(req.TargetLocation) || strings.Contains("/"+req.TargetLocation+"/", "/../")) {
		return badRequest("target_location", "target_location: %q must be \"original\", \"database:<name>\" or an absolute directory on host %s, without \"..\"", req.TargetLocation, reader.Name)
	}
	restored := restoredOf(comps, b.Components)
	// databases: loaded on the restoring host, through the connections its
	// own configuration has (as it reports them)
	mine := map[string]models.HostComponent{}
	for _, c := range reader.Components {
		mine[c.Name] = c
	}
	if original || intoDB {
		kinds := map[string]string{}
		for _, c := range source.Components {
			kinds[c.Name] = c.Kind
		}
		for _, c := range restored {
			holdsDumps := strings.Contains(kinds[c], "postgresql") || strings.Contains(kinds[c], "mariadb")
			if holdsDumps && len(mine[c].Databases) == 0 {
				return badRequest("target_location", "target_location: component %s holds database dumps, and host %s reports no database connection for it (its worker's configuration names them; a worker older than this server does not report them): configure it there, or restore the component into a directory", c, reader.Name)
			}
		}
	}
	dbs, fileComps, err := databasePlan(restored, req.TargetLocation, req.Overwrite, func(c string) componentConns {
		out := componentConns{paths: len(mine[c].Paths) > 0}
		for _, d := range mine[c].Databases {
			out.dbs = append(out.dbs, api.HostDatabase{Label: d.Label, Database: d.Database})
		}
		return out
	}, " on host "+reader.Name)
	if err != nil {
		return err
	}
	loc := req.StorageLocation
	if loc == "" {
		if len(b.Locations) == 0 {
			return conflictPlain("backup " + b.ID + " is not stored in any location")
		}
		loc = b.Locations[0]
	} else if !contains(b.Locations, loc) {
		return badRequest("storage_location", "storage_location: backup %s is not stored in %q (it is in %s)", b.ID, loc, strings.Join(b.Locations, ", "))
	}
	var warnings []string
	// the snapshot: the components the restore overwrites, as the
	// restoring host has them now, backed up there (into its own
	// repository) before anything is written
	var snapComps []string
	if req.CreatePreRestoreSnapshot && original {
		for _, c := range reader.Components {
			if slices.Contains(restored, c.Name) {
				snapComps = append(snapComps, c.Name)
			}
		}
		if len(snapComps) == 0 {
			warnings = append(warnings, sprintf("no pre-restore snapshot: host %s has none of the restored components (%s) configured to back up", reader.Name, strings.Join(restored, ", ")))
		}
	} else if req.CreatePreRestoreSnapshot {
		warnings = append(warnings, "no pre-restore snapshot: the restore writes to "+req.TargetLocation+", not over the original paths")
	}
	if reader.ID != source.ID {
		warnings = append(warnings, sprintf("host %s reads host %s's backup under a grant for this restore alone; the grant ends with it", reader.Name, source.Name),
			"another host's backup is restored as untrusted: no set-id or sticky bits, no device nodes or FIFOs, and the files belong to the restoring user (each is a warning in the result)")
	}
	verifyBefore := req.VerifyBeforeRestore == nil || *req.VerifyBeforeRestore
	now := time.Now().UTC()
	restoreID, jobID := jobs.NewID("RESTORE-"), jobs.NewID("RESTORE-JOB-")
	g, err := s.grantRestore(ctx, reader, source, loc, b.ID, restoreID, user(r))
	if err != nil {
		return err
	}
	target := req.TargetLocation
	wcomps := comps
	if original || intoDB {
		target, wcomps = "", fileComps
	}
	for i := range dbs {
		dbs[i].Grant = g.ID
	}
	wreq := workflows.RestoreRequest{
		RestoreInput: activities.RestoreInput{BackupID: b.ID, Location: loc, Target: target, Components: wcomps, Paths: req.Paths,
			Overwrite: req.Overwrite || original, Original: original, SkipDumps: original, Mirror: req.Mirror, Grant: g.ID,
			Untrusted: reader.ID != source.ID},
		JobID: jobID, VerifyBefore: verifyBefore, VerifyAfter: req.VerifyAfterRestore, RestoreID: restoreID,
		Subtype: req.RestoreType, CatalogQueue: s.catalogQueue(), Databases: dbs,
		NoFiles: (original || intoDB) && len(fileComps) == 0}
	if len(snapComps) > 0 {
		loc0, err := s.hostSnapshotLocation(reader)
		if err != nil {
			s.endGrantQuietly(g.ID)
			return err
		}
		wreq.PreRestoreSnapshot, wreq.SnapshotComponents, wreq.SnapshotLocation = true, snapComps, loc0
		wreq.HostDir = hostRepoDir(reader)
	}
	var size int64
	for _, c := range restored {
		size += b.ComponentSizes[c]
	}
	if len(restored) == len(b.Components) && size == 0 {
		size = b.SizeBytes
	}
	dur := time.Duration(float64(size)/150e6*float64(time.Second)) + 2*time.Second
	job := &models.Job{ID: jobID, Type: api.JobRestore, Subtype: req.RestoreType, Status: "queued", RefID: restoreID,
		BackupID: b.ID, Name: b.Name, User: user(r), Started: now, EstimatedBytes: size, EstimatedSeconds: dur.Seconds(),
		Host: reader.Name, Request: models.ToJSON(req)}
	if err := s.Store.PutJob(ctx, job); err != nil {
		s.endGrantQuietly(g.ID)
		return err
	}
	started, err := s.jobsFor(reader).StartRestore(ctx, wreq)
	if err != nil {
		s.endGrantQuietly(g.ID)
		s.Store.UpdateJob(context.WithoutCancel(ctx), jobID, map[string]any{"status": "failed", "error": err.Error(), "finished": time.Now().UTC()})
		return err
	}
	s.Store.UpdateJob(ctx, jobID, map[string]any{"workflow_id": started.WorkflowID, "run_id": started.RunID})
	s.Hub.Track(jobID)
	s.Log.Info("restore grant made", "grant", g.ID, "reader", reader.Name, "source", source.Name, "backup", b.ID, "location", loc, "restore", restoreID, "by", user(r))
	writeJSON(w, http.StatusOK, api.RestoreStarted{
		Status: "restore_started", RestoreID: restoreID, BackupID: b.ID, JobID: jobID,
		RestoreType: req.RestoreType, Components: nonNil(restored), StorageLocation: loc,
		TargetLocation: req.TargetLocation, Host: reader.Name,
		EstimatedSize: humanSize(size), EstimatedSizeBytes: size,
		EstimatedDuration: humanEstimate(dur), EstimatedDurationSeconds: math.Round(dur.Seconds()),
		Warning:             "System performance may be affected during restore",
		VerifyBeforeRestore: verifyBefore, VerifyAfterRestore: req.VerifyAfterRestore,
		ProgressURL:   "/cloud-integration/backup/restore/progress?job_id=" + jobID,
		TemporalUIURL: s.workflowURL(started.WorkflowID, started.RunID),
		Warnings:      warnings,
	})
	return nil
}

// hostSnapshotLocation: where a host's pre-restore snapshot goes: the
// primary location when the host has its repository there, else the
// first location where it has one.
func (s *Server) hostSnapshotLocation(h *models.Host) (string, error) {
	if h.Repos[s.Cfg.Primary] != "" {
		return s.Cfg.Primary, nil
	}
	for _, l := range s.Cfg.LocationNames() {
		if h.Repos[l] != "" {
			return l, nil
		}
	}
	return "", conflictPlain("host " + h.Name + " has no repository yet for its pre-restore snapshot: the server makes them when the host announces itself")
}

// grantRestore lets reader read source's repository in loc for one
// restore: a full key entry there wrapped to reader's RSA key, and the
// grant its storage proxy checks.
func (s *Server) grantRestore(ctx context.Context, reader, source *models.Host, loc, backupID, restoreID, by string) (*models.HostGrant, error) {
	pub, err := repository.ParseRSAPublicKey([]byte(reader.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("host %s's public key: %w", reader.Name, err)
	}
	repo, err := s.Stores.OpenIn(ctx, loc, hostRepoDir(source))
	if err != nil {
		return nil, err
	}
	// the grant first: a key entry is never made that no grant records
	// (one made by a grant that could not record it is found by its label)
	now := time.Now().UTC()
	g := &models.HostGrant{ID: models.NewGrantID(), Reader: reader.ID, Source: source.ID, Location: loc, RestoreID: restoreID,
		BackupID: backupID, CreatedBy: by, CreatedAt: now, ExpiresAt: now.Add(grantLifetime)}
	if err := s.Store.PutGrant(ctx, g); err != nil {
		return nil, err
	}
	e, err := repo.AddKey(ctx, repository.Wrapping{RSAPublicKey: pub, Label: grantLabel(g.ID) + " (" + restoreID + ") for host " + reader.Name})
	if err == nil {
		g.KeyEntry = e.ID
		err = s.Store.PutGrant(ctx, g)
	}
	if err != nil {
		s.endGrantQuietly(g.ID)
		return nil, err
	}
	return g, nil
}

// grantLabel starts the label of a grant's key entry.
func grantLabel(id string) string { return "restore grant " + id }

// RevokeGrant ends a restore grant: it is marked ended (its reader is
// refused from then on), then its key entry leaves the source repository
// (if that fails, the sweep tries again). Ending an ended grant whose
// entry is gone is a no-op.
func (s *Server) RevokeGrant(ctx context.Context, id string) error {
	g, err := s.Store.GetGrant(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil
	}
	if err != nil || (g.EndedAt != nil && g.KeyRemoved) {
		return err
	}
	// refused from now on, whatever happens to the key entry
	if err := s.Store.EndGrant(ctx, id); err != nil {
		return err
	}
	repo, err := s.Stores.OpenIn(ctx, g.Location, activities.HostRepoDir(g.Source))
	if err != nil {
		return s.Store.ReopenGrantKey(ctx, id, err) // the sweep removes it later
	}
	keys, err := repo.ListKeys(ctx)
	if err != nil {
		return s.Store.ReopenGrantKey(ctx, id, err)
	}
	for _, k := range keys {
		if k.ID == g.KeyEntry || strings.HasPrefix(k.Label, grantLabel(id)+" ") {
			// a locked entry is revoked instead: it opens nothing, and a
			// cleanup removes it once its lock ends
			if err := repo.RemoveKey(ctx, k.ID); err != nil && !strings.HasPrefix(err.Error(), "no key ") && !errors.Is(err, repository.ErrKeyLocked) {
				return s.Store.ReopenGrantKey(ctx, id, err)
			}
		}
	}
	return s.Store.GrantKeyRemoved(ctx, id)
}

// EndHostGrants ends the grants a host reads under (it was revoked).
func (s *Server) EndHostGrants(ctx context.Context, hostID string) {
	gs, err := s.Store.OpenGrants(ctx)
	if err != nil {
		s.Log.Warn("listing restore grants", "err", err)
		return
	}
	for _, g := range gs {
		if g.Reader == hostID && g.EndedAt == nil {
			if err := s.RevokeGrant(ctx, g.ID); err != nil {
				s.Log.Warn("a revoked host's restore grant: its key entry is removed at the next sweep", "grant", g.ID, "err", err)
			}
		}
	}
}

// endGrantQuietly ends a grant whose restore did not start.
func (s *Server) endGrantQuietly(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.RevokeGrant(ctx, id); err != nil {
		s.Log.Error("a restore grant could not be ended; the next sweep ends it", "grant", id, "err", err)
	}
}

// SweepGrants ends the restore grants past their expiry (a restore that
// could not end its own) and removes the key entries of ended grants that
// could not be removed when they ended.
func (s *Server) SweepGrants(ctx context.Context) {
	gs, err := s.Store.OpenGrants(ctx)
	if err != nil {
		s.Log.Warn("listing restore grants", "err", err)
		return
	}
	now := time.Now()
	for _, g := range gs {
		if g.Live(now) {
			continue
		}
		if err := s.RevokeGrant(ctx, g.ID); err != nil {
			s.Log.Warn("a restore grant's key entry could not be removed yet; the next sweep tries again", "grant", g.ID, "err", err)
		}
	}
}

// sweepGrantsEvery runs SweepGrants until ctx ends.
func (s *Server) sweepGrantsEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.SweepGrants(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
