package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gorilla/mux"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"backupd/activities"
	"backupd/api"
	"backupd/codes"
	"backupd/models"
	"backupd/workflows"
)

// Restore drills: each is a Temporal schedule (backupd-drill-<id>) whose
// action is a DrillWorkflow on the server's own worker; the catalog keeps
// the definition and every run's report.

const drillSchedulePrefix = "backupd-drill-"

func drillScheduleID(id string) string { return drillSchedulePrefix + id }

// drillRunsShown: how many runs GET /backup/drills/{id} lists.
const drillRunsShown = 20

// putDrill answers POST /backup/drills: create or update a drill.
func (s *Server) putDrill(w http.ResponseWriter, r *http.Request) error {
	var req api.DrillRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if !scheduleIDRe.MatchString(req.ID) {
		return schedErr("id", "id: %q must be 1-120 letters, digits, '.', '_' or '-'", req.ID)
	}
	setTarget(r, req.ID)
	ctx := r.Context()
	d, err := s.Store.GetDrill(ctx, req.ID)
	created := errors.Is(err, models.ErrNotFound)
	if created {
		d = &models.Drill{ID: req.ID, Enabled: true, Timezone: "UTC", Select: "latest", CreatedBy: user(r),
			Notifications: defaultNotifications()}
	} else if err != nil {
		return err
	}
	set := setFrom
	set(&d.Name, req.Name)
	set(&d.Description, req.Description)
	set(&d.Frequency, req.Frequency)
	set(&d.Time, req.Time)
	set(&d.Day, req.Day)
	set(&d.Timezone, req.Timezone)
	set(&d.Select, req.Select)
	set(&d.Location, req.Location)
	if req.Enabled != nil {
		d.Enabled = *req.Enabled
	}
	if req.WithinDays != nil {
		if *req.WithinDays < 1 || *req.WithinDays > 36500 {
			return schedErr("within_days", "within_days: %d is outside 1..36500", *req.WithinDays)
		}
		d.WithinDays = *req.WithinDays
	}
	for _, f := range []struct {
		name     string
		v        *int
		dst      *int
		min, max int
	}{{"reverify_after_days", req.ReverifyAfterDays, &d.ReverifyAfterDays, 1, 36500}, {"max_backups", req.MaxBackups, &d.MaxBackups, 1, 1000}} {
		if f.v == nil {
			continue
		}
		if *f.v < f.min || *f.v > f.max {
			return schedErr(f.name, "%s: %d is outside %d..%d", f.name, *f.v, f.min, f.max)
		}
		*f.dst = *f.v
	}
	if req.Components != nil {
		for _, c := range req.Components {
			if _, ok := s.Cfg.Components[c]; !ok {
				return schedErr("components", "components: unknown component %q (configured: %s)", c, strings.Join(s.Cfg.ComponentNames(), ", "))
			}
		}
		d.Components = slices.Compact(slices.Sorted(slices.Values(req.Components)))
	}
	if req.BackupIDs != nil {
		d.BackupIDs = slices.Compact(slices.Sorted(slices.Values(req.BackupIDs)))
	}
	if err := setNotifications(&d.Notifications, req.Notifications); err != nil {
		return err
	}
	checks := req.Checks
	if checks == nil {
		_ = json.Unmarshal(d.Checks, &checks)
	}
	// each check names its component: "the drill's first" is resolved
	// now, and checked again whenever the components change
	drilled := d.Components
	if len(drilled) == 0 {
		drilled = s.Cfg.ComponentNames()
	}
	for i := range checks {
		if checks[i].Component == "" && len(drilled) > 0 {
			checks[i].Component = drilled[0]
		}
	}
	if err := s.validDrillChecks(checks, drilled); err != nil {
		return err
	}
	if checks != nil {
		b, _ := json.Marshal(checks)
		d.Checks = models.JSON(b)
	}
	if created && d.Frequency == "" {
		return schedErr("frequency", "frequency is required (hourly, daily, weekly, monthly)")
	}
	if d.Name == "" {
		d.Name = d.ID
	}
	if err := oneOf("select", d.Select, api.DrillSelections...); err != nil {
		return schedErr("select", "select: %q is not one of %s", d.Select, strings.Join(api.DrillSelections, ", "))
	}
	if d.Select == "backups" && len(d.BackupIDs) == 0 {
		return schedErr("backup_ids", "backup_ids: select backups needs at least one backup id")
	}
	if d.Select != "backups" && len(d.BackupIDs) > 0 {
		return schedErr("backup_ids", "backup_ids: only with select backups (select is %s)", d.Select)
	}
	own := s.ownHosts(ctx)
	for _, id := range d.BackupIDs {
		b, err := s.Store.GetBackup(ctx, id)
		if errors.Is(err, models.ErrNotFound) {
			return notFound(codes.BackupNotFound, "backup_ids: backup %s is not in the catalog", id)
		} else if err != nil {
			return err
		}
		if b.Host != "" && !slices.Contains(own, b.Host) {
			return schedErr("backup_ids", "backup_ids: %s is enrolled host %s's backup; drills restore the server's own backups", id, b.Host)
		}
	}
	if d.Location != "" && !slices.Contains(s.Cfg.LocationNames(), d.Location) {
		return schedErr("location", "location: unknown storage location %q (configured: %s)", d.Location, strings.Join(s.Cfg.LocationNames(), ", "))
	}
	if err := validScheduleText(d.Timezone, d.Name, d.Description); err != nil {
		return err
	}
	spec, act, err := s.drillOptions(d)
	if err != nil {
		return err
	}
	h, err := s.upsertTemporalSchedule(ctx, drillScheduleID(d.ID), spec, act, !d.Enabled)
	if err != nil {
		return err
	}
	if err := s.Store.PutDrill(ctx, d); err != nil {
		if created {
			h.Delete(context.WithoutCancel(ctx))
		}
		return err
	}
	status, msg := "updated", "Drill updated"
	if created {
		status, msg = "created", "Drill created"
	}
	writeJSON(w, http.StatusOK, api.DrillSaved{ID: d.ID, Status: status, NextRun: rfc3339ptr(s.nextOf(ctx, h)), Message: msg})
	return nil
}

// validDrillChecks refuses a check that cannot run: a command must be
// an absolute path (no shell, no search path), on a drilled component.
func (s *Server) validDrillChecks(checks []api.DrillCheck, comps []string) error {
	for i, ch := range checks {
		f := fmt.Sprintf("checks[%d]", i)
		if err := oneOf(f+".type", ch.Type, api.DrillCheckTypes...); err != nil {
			return schedErr(f+".type", "%s.type: %q is not one of %s", f, ch.Type, strings.Join(api.DrillCheckTypes, ", "))
		}
		if ch.Component != "" {
			if _, ok := s.Cfg.Components[ch.Component]; !ok {
				return schedErr(f+".component", "%s.component: unknown component %q (configured: %s)", f, ch.Component, strings.Join(s.Cfg.ComponentNames(), ", "))
			}
			if len(comps) > 0 && !slices.Contains(comps, ch.Component) {
				return schedErr(f+".component", "%s.component: %q is not one of the drill's components (%s)", f, ch.Component, strings.Join(comps, ", "))
			}
		}
		switch ch.Type {
		case "command":
			if len(ch.Command) == 0 || !filepath.IsAbs(ch.Command[0]) {
				return schedErr(f+".command", "%s.command: give the program as an absolute path, then its arguments (no shell), like [\"/usr/bin/test\", \"-s\", \"etc/app.conf\"]", f)
			}
		case "database":
			if len(ch.Command) > 0 {
				return schedErr(f+".command", "%s.command: a database check runs a query, not a command", f)
			}
			comp := ch.Component
			if comp == "" && len(comps) > 0 {
				comp = comps[0]
			}
			if comp == "" {
				return schedErr(f+".component", "%s.component: name the component whose database dump is checked", f)
			}
			var labels []string
			for _, d := range s.Cfg.Components[comp].Databases {
				src := d.Source()
				if ch.Database == "" || ch.Database == src.Label() {
					if src.Kind != "postgresql" {
						return schedErr(f+".database", "%s.database: database checks load PostgreSQL dumps only; %s is %s (a MariaDB dump names its database inside, and loading it on the same server could touch the real one)", f, src.Label(), src.Kind)
					}
				}
				labels = append(labels, src.Label())
			}
			switch {
			case len(labels) == 0:
				return schedErr(f+".component", "%s.component: component %s backs up no database", f, comp)
			case ch.Database == "" && len(labels) > 1:
				return schedErr(f+".database", "%s.database: component %s has several databases; name one of %s", f, comp, strings.Join(labels, ", "))
			case ch.Database != "" && !slices.Contains(labels, ch.Database):
				return schedErr(f+".database", "%s.database: component %s has no database %q (it has %s)", f, comp, ch.Database, strings.Join(labels, ", "))
			}
			if len(ch.Query) > 4000 || (ch.Expect != nil && len(*ch.Expect) > 4000) {
				return schedErr(f+".query", "%s: query and expect are at most 4000 bytes each", f)
			}
		}
		if ch.TimeoutSeconds < 0 || ch.TimeoutSeconds > 86400 {
			return schedErr(f+".timeout_seconds", "%s.timeout_seconds: %d is outside 1..86400", f, ch.TimeoutSeconds)
		}
	}
	return nil
}

// drillRequest is what a drill's runs are started with.
func (s *Server) drillRequest(d *models.Drill) workflows.DrillRequest {
	var checks []api.DrillCheck
	_ = json.Unmarshal(d.Checks, &checks)
	return workflows.DrillRequest{DrillID: d.ID, CatalogQueue: s.catalogQueue(), Checks: checks,
		Plan: drillPlanInput(d), Notify: &workflows.NotifyPrefs{OnSuccess: d.Notifications["on_success"],
			OnFailure: d.Notifications["on_failure"], OnWarning: d.Notifications["on_warning"]}}
}

func drillPlanInput(d *models.Drill) activities.DrillPlanInput {
	return activities.DrillPlanInput{DrillID: d.ID, Select: d.Select, Components: d.Components, WithinDays: d.WithinDays,
		BackupIDs: d.BackupIDs, Location: d.Location, ReverifyAfterDays: d.ReverifyAfterDays, MaxBackups: d.MaxBackups}
}

func (s *Server) drillOptions(d *models.Drill) (client.ScheduleSpec, *client.ScheduleWorkflowAction, error) {
	cal, err := calendar(&models.Schedule{Frequency: d.Frequency, Time: d.Time, Day: d.Day})
	if err != nil {
		return client.ScheduleSpec{}, nil, err
	}
	spec := client.ScheduleSpec{Calendars: []client.ScheduleCalendarSpec{cal}, TimeZoneName: d.Timezone}
	act := &client.ScheduleWorkflowAction{ID: "scheduled-drill:" + d.ID, Workflow: "DrillWorkflow", Args: []any{s.drillRequest(d)},
		TaskQueue: s.Cfg.Temporal.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrJobType.ValueSet(string(api.JobDrill)),
			workflows.AttrScheduleID.ValueSet(drillScheduleID(d.ID)), workflows.AttrStatus.ValueSet(workflows.StatusPending))}
	return spec, act, nil
}

// listDrills answers GET /backup/drills.
func (s *Server) listDrills(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	ctx := r.Context()
	ds, err := s.Store.ListDrills(ctx)
	if err != nil {
		return err
	}
	out := api.DrillList{Drills: []api.Drill{}}
	for i := range ds {
		runs, err := s.drillRuns(ctx, ds[i].ID, 1)
		if err != nil {
			return err
		}
		out.Drills = append(out.Drills, s.drillOut(ctx, &ds[i], runs))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getDrill answers GET /backup/drills/{drill_id}.
func (s *Server) getDrill(w http.ResponseWriter, r *http.Request) error {
	d, err := s.drillOf(r)
	if err != nil {
		return err
	}
	runs, err := s.drillRuns(r.Context(), d.ID, drillRunsShown)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.DrillDetails{Drill: s.drillOut(r.Context(), d, runs), Runs: runs})
	return nil
}

// deleteDrill answers DELETE /backup/drills/{drill_id}; its runs' reports
// stay in the catalog (the compliance report reads them).
func (s *Server) deleteDrill(w http.ResponseWriter, r *http.Request) error {
	d, err := s.drillOf(r)
	if err != nil {
		return err
	}
	h := s.Temporal.ScheduleClient().GetHandle(r.Context(), drillScheduleID(d.ID))
	if err := h.Delete(r.Context()); err != nil && !isNotFound(err) {
		return codes.Wrap(codes.ScheduleError, err)
	}
	if err := s.Store.DeleteDrill(r.Context(), d.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.DrillAction{ID: d.ID, Status: "deleted",
		Message: "Drill deleted; a run it already started goes to its end, and its reports stay"})
	return nil
}

// triggerDrill answers POST /backup/drills/{drill_id}/trigger: the drill's
// schedule runs now (unless a run of it is still going: overlap SKIP).
func (s *Server) triggerDrill(w http.ResponseWriter, r *http.Request) error {
	d, err := s.drillOf(r)
	if err != nil {
		return err
	}
	if !d.Enabled {
		// an admin turned it off; an operator does not run it anyway
		return conflictErr("drill %s is disabled: an admin enables it (POST /backup/drills with enabled true)", d.ID)
	}
	h := s.Temporal.ScheduleClient().GetHandle(r.Context(), drillScheduleID(d.ID))
	if err := h.Trigger(r.Context(), client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP}); err != nil {
		return codes.Wrap(codes.ScheduleError, err)
	}
	writeJSON(w, http.StatusOK, api.DrillAction{ID: d.ID, Status: "triggered",
		Message: "A run starts now unless one of this drill is still going; its report appears under GET /backup/drills/" + d.ID})
	return nil
}

func (s *Server) drillOf(r *http.Request) (*models.Drill, error) {
	id := mux.Vars(r)["drill_id"]
	setTarget(r, id)
	d, err := s.Store.GetDrill(r.Context(), id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, notFound(codes.ScheduleError, "no drill %q (GET /backup/drills lists them)", id)
	}
	return d, err
}

func (s *Server) drillRuns(ctx context.Context, id string, n int) ([]api.DrillReport, error) {
	rows, err := s.Store.DrillRuns(ctx, id, n)
	if err != nil {
		return nil, err
	}
	out := []api.DrillReport{}
	for _, row := range rows {
		var rep api.DrillReport
		if err := json.Unmarshal(row.Body, &rep); err != nil {
			return nil, fmt.Errorf("drill run %s: %w", row.ID, err)
		}
		out = append(out, rep)
	}
	return out, nil
}

func (s *Server) drillOut(ctx context.Context, d *models.Drill, runs []api.DrillReport) api.Drill {
	out := api.Drill{ID: d.ID, Name: d.Name, Description: d.Description, Enabled: d.Enabled, Frequency: d.Frequency,
		Time: d.Time, Day: d.Day, Timezone: d.Timezone, Select: d.Select, Components: nonNil(d.Components),
		WithinDays: d.WithinDays, BackupIDs: d.BackupIDs, Location: d.Location, Checks: []api.DrillCheck{},
		ReverifyAfterDays: d.ReverifyAfterDays, MaxBackups: d.MaxBackups,
		Notifications: map[string]bool{"on_success": d.Notifications["on_success"], "on_failure": d.Notifications["on_failure"],
			"on_warning": d.Notifications["on_warning"]},
		CreatedBy: d.CreatedBy, CreatedAt: rfc3339(d.CreatedAt)}
	_ = json.Unmarshal(d.Checks, &out.Checks)
	if out.Checks == nil {
		out.Checks = []api.DrillCheck{}
	}
	if d.Enabled {
		out.NextRun = rfc3339ptr(s.nextOf(ctx, s.Temporal.ScheduleClient().GetHandle(ctx, drillScheduleID(d.ID))))
	}
	if len(runs) > 0 {
		out.LastRun = &runs[0]
	}
	return out
}
