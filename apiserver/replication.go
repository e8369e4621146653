package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"backupd/api"
	"backupd/codes"
	"backupd/jobs"
	"backupd/models"
	"backupd/workflows"
)

// mediaOf is a location's kind of medium for the 3-2-1 rule: the
// configured media, else disk (local), object (S3) or remote-disk (SFTP).
func (s *Server) mediaOf(name string) string {
	loc := s.Cfg.Storage[name]
	if loc.Media != "" {
		return loc.Media
	}
	return map[string]string{"local": "disk", "s3": "object", "sftp": "remote-disk"}[locationKind(loc.URL)]
}

// check321 measures a backup against the policy: copies (locations that
// hold it), distinct media, offsite copies.
func (s *Server) check321(b *models.Backup, pol *Policies) *api.Shortfall {
	if !pol.Replication.Enabled {
		return nil
	}
	media := map[string]bool{}
	f := &api.Shortfall{BackupID: b.ID, Copies: len(b.Locations), Timestamp: rfc3339(b.Timestamp)}
	for _, l := range b.Locations {
		if _, ok := s.Cfg.Storage[l]; !ok {
			continue
		}
		media[s.mediaOf(l)] = true
		if s.Cfg.Storage[l].Offsite {
			f.Offsite++
		}
	}
	f.Media = len(media)
	for _, l := range s.enabledLocations(pol) {
		if !contains(b.Locations, l) {
			f.Missing = append(f.Missing, l)
		}
	}
	r := pol.Replication
	if f.Copies < r.Copies {
		f.Reasons = append(f.Reasons, fmt.Sprintf("%d of %d copies", f.Copies, r.Copies))
	}
	if f.Media < r.Locations {
		f.Reasons = append(f.Reasons, fmt.Sprintf("%d of %d media", f.Media, r.Locations))
	}
	if f.Offsite < r.Offsite {
		f.Reasons = append(f.Reasons, fmt.Sprintf("%d of %d offsite", f.Offsite, r.Offsite))
	}
	if len(f.Reasons) == 0 {
		return nil
	}
	if f.Missing == nil {
		f.Missing = []string{}
		f.Reasons = append(f.Reasons, "no further location is configured: add one to meet the policy")
	}
	return f
}

// policyWarning says, when backups written to locs would fall short of
// the replication policy, how and what would meet it: a schedule or a
// backup that breaks the 3-2-1 rule is accepted, with this warning, and
// health turns degraded after its first run.
func (s *Server) policyWarning(locs []string, pol *Policies) string {
	f := s.check321(&models.Backup{ID: "(new)", Locations: locs}, pol)
	if f == nil {
		return ""
	}
	msg := fmt.Sprintf("storage_locations %v do not meet the replication policy (%s): health turns degraded after the first run", locs, strings.Join(f.Reasons, ", "))
	if len(f.Missing) > 0 {
		msg += fmt.Sprintf("; add %v to storage_locations to meet it", f.Missing)
	}
	return msg
}

// replicationState checks every completed backup (the newest first).
func (s *Server) replicationState(ctx context.Context) (api.ReplicationState, []api.Shortfall, error) {
	pol, err := s.policies(ctx)
	if err != nil {
		return api.ReplicationState{}, nil, err
	}
	rows, err := s.Store.AllBackups(ctx, workflows.StatusCompleted, workflows.StatusPartial)
	if err != nil {
		return api.ReplicationState{}, nil, err
	}
	var short []api.Shortfall
	for i := len(rows) - 1; i >= 0; i-- {
		if f := s.check321(&rows[i], pol); f != nil {
			short = append(short, *f)
		}
	}
	list := short
	if len(list) > 20 {
		list = list[:20]
	}
	if list == nil {
		list = []api.Shortfall{}
	}
	return api.ReplicationState{Policy: pol.Replication.Strategy, Enabled: pol.Replication.Enabled,
		Required:       api.ReplicationRequired{Copies: pol.Replication.Copies, Media: pol.Replication.Locations, Offsite: pol.Replication.Offsite},
		BackupsChecked: len(rows), Compliant: len(rows) - len(short), Short: len(short), ShortBackups: list,
		Repair: "POST /cloud-integration/backup/repair copies what is missing from a healthy copy"}, short, nil
}

func (s *Server) startRepair(w http.ResponseWriter, r *http.Request) error {
	var req api.RepairRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	_, short, err := s.replicationState(r.Context())
	if err != nil {
		return err
	}
	byID := map[string]api.Shortfall{}
	for _, f := range short {
		byID[f.BackupID] = f
	}
	ids := req.BackupIDs
	if len(ids) == 0 {
		for _, f := range short {
			ids = append(ids, f.BackupID)
		}
	}
	var items []workflows.RepairItem
	for i, id := range ids {
		b, err := s.Store.GetBackup(r.Context(), id)
		if err != nil {
			return notFound(codes.BackupNotFound, "backup_ids[%d]: no backup %q", i, id)
		}
		f, ok := byID[id]
		if !ok || len(f.Missing) == 0 {
			continue // meets the policy, or nothing can be added
		}
		src := append([]string(nil), b.Locations...)
		// read from the primary first (the fastest), then the others
		sort.SliceStable(src, func(a, c int) bool { return src[a] == s.Cfg.Primary && src[c] != s.Cfg.Primary })
		dir, err := s.repoDirOf(r.Context(), b.Host)
		if err != nil {
			return err
		}
		items = append(items, workflows.RepairItem{BackupID: id, Sources: src, Missing: f.Missing, Repository: dir})
	}
	resp := api.RepairPlan{BackupsShort: len(short), BackupsToRepair: len(items), Plan: items}
	if items == nil {
		resp.Plan = []workflows.RepairItem{}
	}
	if req.DryRun || len(items) == 0 {
		resp.Status = "nothing_to_do"
		if req.DryRun {
			resp.Status = "dry_run"
		}
		writeJSON(w, http.StatusOK, resp)
		return nil
	}
	repairID := jobs.NewID("REPAIR-")
	jobID := "REPAIR-JOB-" + repairID[len("REPAIR-"):]
	setTarget(r, repairID)
	if err := s.Store.PutJob(r.Context(), &models.Job{ID: jobID, Type: api.JobRepair, Subtype: "3-2-1", Status: "queued",
		RefID: repairID, User: user(r), Started: time.Now().UTC(), Request: models.ToJSON(items)}); err != nil {
		return err
	}
	started, err := s.Jobs.StartRepair(r.Context(), workflows.RepairRequest{JobID: jobID, RepairID: repairID, Items: items,
		CatalogQueue: s.catalogQueue()})
	if err != nil {
		s.Store.UpdateJob(r.Context(), jobID, map[string]any{"status": "failed", "error": err.Error(), "finished": time.Now().UTC()})
		return err
	}
	s.Store.UpdateJob(r.Context(), jobID, map[string]any{"workflow_id": started.WorkflowID, "run_id": started.RunID})
	s.Hub.Track(jobID)
	resp.Status, resp.RepairID, resp.JobID = "repair_started", repairID, jobID
	resp.ReportURL = "/cloud-integration/backup/repair/report/" + repairID
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) repairReport(w http.ResponseWriter, r *http.Request) error {
	return s.report(w, r, api.JobRepair, muxVar(r, "repair_id"))
}
