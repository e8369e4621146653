package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strings"
	"time"

	"backupd/activities"
	"backupd/api"
	"backupd/jobs"
	"backupd/models"
	"backupd/retention"
	"backupd/workflows"
)

func (s *Server) retentionSettings(ctx context.Context) (retention.Settings, error) {
	return activities.RetentionSettings(ctx, s.Store)
}

func (s *Server) getRetention(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.retentionSettings(r.Context())
	if err != nil {
		return err
	}
	var prot []string
	if err := s.Store.DB.WithContext(r.Context()).Model(&models.Backup{}).Where("protected = ?", true).
		Order("timestamp DESC").Pluck("id", &prot).Error; err != nil {
		return err
	}
	out := api.RetentionConfig{RetentionPolicies: rs.Policy, CleanupRules: rs.Rules, ProtectedBackups: nonNil(prot),
		NextCleanup: rfc3339ptr(s.nextOf(r.Context(), s.Temporal.ScheduleClient().GetHandle(r.Context(), cleanupScheduleID)))}
	if rep, err := s.Store.LatestReport(r.Context(), api.JobCleanup); err == nil {
		var body struct {
			DryRun  bool                      `json:"dry_run"`
			Outcome *workflows.CleanupOutcome `json:"outcome"`
		}
		json.Unmarshal(rep.Body, &body)
		removed, freed := 0, int64(0)
		if body.Outcome != nil {
			seen := map[string]bool{}
			for _, ids := range body.Outcome.Removed {
				for _, id := range ids {
					seen[id] = true
				}
			}
			removed = len(seen)
			body.Outcome.Each(func(g api.GCLocationOutcome) { freed += g.Freed() })
		}
		lc := &api.LastCleanup{Timestamp: rfc3339(rep.CreatedAt), CleanupID: rep.ID, Status: rep.Status,
			DryRun: body.DryRun, BackupsRemoved: removed, SpaceFreed: signedSize(freed), SpaceFreedBytes: freed}
		if j, err := s.Store.GetJob(r.Context(), rep.JobID); err == nil && j.Finished != nil {
			d := j.Finished.Sub(j.Started)
			lc.Duration, lc.DurationSeconds = humanDuration(d), ptr(math.Round(d.Seconds()))
		}
		out.LastCleanup = lc
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

var hhmm = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)

func (s *Server) updateRetention(w http.ResponseWriter, r *http.Request) error {
	var req api.RetentionUpdateRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	rs, err := s.retentionSettings(r.Context())
	if err != nil {
		return err
	}
	var changes api.RetentionChanges
	if req.Policies != nil {
		if err := req.Policies.Validate(); err != nil {
			return badRequest("retention_policies", "retention_policies.%v", err)
		}
		changes.RetentionPolicies = &api.RetentionPolicyChange{Old: rs.Policy, New: *req.Policies}
		rs.Policy = *req.Policies
	}
	if req.Rules != nil {
		ru := *req.Rules
		if err := oneOf("cleanup_rules.cleanup_schedule", ru.CleanupSchedule, "daily", "weekly", "disabled"); err != nil {
			return err
		}
		if !hhmm.MatchString(ru.CleanupTime) {
			return badRequest("cleanup_rules.cleanup_time", "cleanup_rules.cleanup_time: %q is not HH:MM (00:00..23:59)", ru.CleanupTime)
		}
		if err := oneOf("cleanup_rules.cleanup_strategy", ru.CleanupStrategy, "oldest_first", "largest_first"); err != nil {
			return err
		}
		for f, v := range map[string]string{"minimum_free_space": ru.MinimumFreeSpace, "emergency_cleanup_threshold": ru.EmergencyCleanupThreshold} {
			if _, err := api.ParseSize(v); err != nil {
				return badRequest("cleanup_rules."+f, "cleanup_rules.%s: %v", f, err)
			}
		}
		changes.CleanupRules = &api.CleanupRulesChange{Old: rs.Rules, New: ru}
		rs.Rules = ru
	}
	protect := map[string]bool{}
	if req.Protected != nil {
		var cur []string
		s.Store.DB.WithContext(r.Context()).Model(&models.Backup{}).Where("protected = ?", true).Pluck("id", &cur)
		for _, id := range cur {
			protect[id] = false
		}
		for _, id := range *req.Protected {
			protect[id] = true
		}
	}
	for _, id := range req.Protect {
		protect[id] = true
	}
	for _, id := range req.Unprotect {
		protect[id] = false
	}
	for id := range protect {
		if _, err := s.Store.GetBackup(r.Context(), id); err != nil {
			return badRequest("protected_backups", "protected_backups: no backup %q", id)
		}
	}
	if err := s.Store.PutSetting(r.Context(), "retention", rs); err != nil {
		return err
	}
	next, err := s.EnsureCleanupSchedule(r.Context())
	if err != nil {
		return err
	}
	for id, p := range protect {
		if err := s.Store.UpdateBackup(r.Context(), id, map[string]any{"protected": p}); err != nil {
			return err
		}
	}
	if len(protect) > 0 {
		changes.ProtectedBackups = protect
	}
	writeJSON(w, http.StatusOK, api.RetentionUpdated{Status: "updated", Changes: changes, NextCleanup: rfc3339ptr(next)})
	return nil
}

// ---- cleanup

func (s *Server) startCleanup(w http.ResponseWriter, r *http.Request) error {
	var req api.CleanupRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	dry := req.DryRun == nil || *req.DryRun // a cleanup removes nothing unless asked to
	if err := validText("reason", req.Reason, 2000); err != nil {
		return err
	}
	if req.CleanupStrategy == "" {
		req.CleanupStrategy = "oldest_first"
	}
	if err := oneOf("cleanup_strategy", req.CleanupStrategy, "oldest_first", "largest_first"); err != nil {
		return err
	}
	maxRemove := 0
	if req.MaxBackupsToRemove != nil {
		if *req.MaxBackupsToRemove < 1 || *req.MaxBackupsToRemove > 100000 {
			return badRequest("max_backups_to_remove", "max_backups_to_remove: %d is outside 1..100000", *req.MaxBackupsToRemove)
		}
		maxRemove = *req.MaxBackupsToRemove
	}
	targets := req.TargetStorage
	if len(targets) == 0 {
		targets = s.Cfg.LocationNames()
	}
	for i, t := range targets {
		if _, ok := s.Cfg.Storage[t]; !ok {
			return badRequest(fmt.Sprintf("target_storage[%d]", i), "target_storage: unknown storage location %q (configured: %s)", t, strings.Join(s.Cfg.LocationNames(), ", "))
		}
	}
	// ignore_protected lets protected backups go like any other: the route
	// is admin-only, and the choice is written into the audit record
	ignore := req.IgnoreProtected != nil && *req.IgnoreProtected
	plan, err := (&activities.Catalog{Store: s.Store}).PlanCleanup(r.Context(), activities.PlanInput{Targets: targets,
		Strategy: req.CleanupStrategy, Max: maxRemove, DryRun: dry, Force: req.ForceCleanup, IgnoreProtected: ignore})
	if err != nil {
		return err
	}
	decisions, ids, protected := plan.Lines, plan.IDs, plan.Protected
	if ignore {
		protected = 0
	}
	agedOut := 0
	for _, d := range decisions {
		if len(d.RemoveFrom) > 0 {
			agedOut++
		}
	}
	var est int64
	for _, d := range decisions {
		if d.Decision == "remove" || d.Decision == "would_remove" {
			est += d.Bytes
		}
	}
	cleanupID := jobs.NewID("CLEANUP-")
	if ignore {
		setTarget(r, cleanupID+" (ignore_protected: protected backups may be removed)")
	} else {
		setTarget(r, cleanupID)
	}
	jobID, err := s.launchCleanup(r.Context(), user(r), cleanupID, workflows.CleanupRequest{Locations: targets, BackupIDs: ids,
		DryRun: dry, PerLocation: plan.PerLocation, Subtype: "manual", HostDirs: plan.HostDirs, CollectDirs: plan.CollectDirs}, decisions)
	if err != nil {
		return err
	}
	dur := time.Duration(len(ids))*time.Second + 5*time.Second
	writeJSON(w, http.StatusOK, api.CleanupStarted{
		Status: "cleanup_started", CleanupID: cleanupID, JobID: jobID, DryRun: dry,
		EstimatedDuration: humanEstimate(dur), EstimatedDurationSeconds: math.Round(dur.Seconds()),
		BackupsAnalyzed: len(decisions), BackupsCandidateForRemoval: len(ids),
		EstimatedSpaceToFree: humanSize(est), EstimatedSpaceToFreeBytes: est,
		EstimateBasis:            "bytes the candidates added when they were written; the report has the bytes garbage collection frees",
		ProtectedBackupsExcluded: protected, IgnoreProtected: ignore, BackupsLeavingALocation: agedOut, TargetStorage: targets,
		CleanupStrategy: req.CleanupStrategy, Reason: req.Reason, ReportURL: "/cloud-integration/backup/cleanup/report/" + cleanupID,
	})
	return nil
}

// launchCleanup records the cleanup job and starts its workflow.
func (s *Server) launchCleanup(ctx context.Context, who, cleanupID string, req workflows.CleanupRequest, decisions []retention.Line) (string, error) {
	jobID := "CLEANUP-JOB-" + strings.TrimPrefix(cleanupID, "CLEANUP-")
	locs, ids, dry, subtype := req.Locations, req.BackupIDs, req.DryRun, req.Subtype
	job := &models.Job{ID: jobID, Type: api.JobCleanup, Subtype: subtype, Status: "queued", RefID: cleanupID, User: who,
		Started: time.Now().UTC(), Request: models.ToJSON(map[string]any{"locations": locs, "backup_ids": ids, "dry_run": dry})}
	if len(ids) == 1 {
		job.BackupID = ids[0]
	}
	if err := s.Store.PutJob(ctx, job); err != nil {
		return "", err
	}
	if decisions != nil {
		req.Decisions, _ = json.Marshal(decisions)
	}
	req.JobID, req.CleanupID, req.CatalogQueue = jobID, cleanupID, s.catalogQueue()
	if w, ok := s.Cfg.SafetyWindow(); ok && !req.Immediate {
		req.SafetyWindowSeconds, req.Immediate = int64(w/time.Second), w == 0
	}
	started, err := s.Jobs.StartCleanup(ctx, req)
	if err != nil {
		s.Store.UpdateJob(ctx, jobID, map[string]any{"status": "failed", "error": err.Error(), "finished": time.Now().UTC()})
		return "", err
	}
	s.Store.UpdateJob(ctx, jobID, map[string]any{"workflow_id": started.WorkflowID, "run_id": started.RunID})
	s.Hub.Track(jobID)
	return jobID, nil
}

// signedSize is humanSize with a sign: a cleanup whose repack wrote copies
// of packs that go only after the safety window freed less than nothing.
func signedSize(n int64) string {
	if n < 0 {
		return "-" + humanSize(-n)
	}
	return humanSize(n)
}
