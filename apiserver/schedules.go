package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

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

var scheduleIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$`)

var weekdays = map[string]int{"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6}

func schedErr(field, format string, args ...any) error {
	return invalid(codes.ScheduleError, field, format, args...)
}

// setFrom sets *dst to *v when the request gave v.
func setFrom(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

// defaultNotifications are a new schedule's or drill's: failures and
// warnings, not successes.
func defaultNotifications() map[string]bool {
	return map[string]bool{"on_success": false, "on_failure": true, "on_warning": true}
}

// setNotifications applies a request's notifications flags.
func setNotifications(dst *map[string]bool, req map[string]bool) error {
	for k, v := range req {
		if err := oneOf("notifications."+k, k, api.Notifications...); err != nil {
			return schedErr("notifications."+k, "notifications: unknown key %q (%s)", k, strings.Join(api.Notifications, ", "))
		}
		if *dst == nil {
			*dst = defaultNotifications()
		}
		(*dst)[k] = v
	}
	return nil
}

// validScheduleText checks what a schedule and a drill both carry: their
// time zone, name and description.
func validScheduleText(tz, name, description string) error {
	if _, err := time.LoadLocation(tz); err != nil || tz == "" || tz == "Local" {
		return schedErr("timezone", "timezone: %q is not an IANA time zone (like UTC or Europe/Berlin)", tz)
	}
	if err := validText("name", name, 200); err != nil {
		return schedErr("name", "name: %v", err)
	}
	if err := validText("description", description, 2000); err != nil {
		return schedErr("description", "description: %v", err)
	}
	return nil
}

// temporalScheduleID keeps users' schedules apart from backupd's own (the
// admin-only retention cleanup is backupd-cleanup) and from others in the
// Temporal namespace: an operator's schedule id can never name backupd's.
func temporalScheduleID(id string) string { return userSchedulePrefix + id }

const userSchedulePrefix = "backupd-schedule-"

// reservedScheduleID reports ids users may not take: they name, or look
// like, backupd's own schedules and jobs.
func reservedScheduleID(id string) bool {
	l := strings.ToLower(id)
	return l == "cleanup" || strings.HasPrefix(l, "backupd") || strings.HasPrefix(l, "scheduled-")
}

// MigrateScheduleIDs moves schedules created before user schedules had a
// namespace of their own (Temporal id backupd-<id>) to theirs, keeping
// their spec, action and pause state; it runs when the server starts.
func (s *Server) MigrateScheduleIDs(ctx context.Context) error {
	list, err := s.Store.ListSchedules(ctx)
	if err != nil {
		return err
	}
	sched := s.Temporal.ScheduleClient()
	var errs []error
	for i := range list {
		sc := &list[i]
		if reservedScheduleID(sc.ID) {
			continue // never user schedules: left for an admin to look at
		}
		old := sched.GetHandle(ctx, "backupd-"+sc.ID)
		d, err := old.Describe(ctx)
		if err != nil {
			continue // nothing under the old id
		}
		// "backupd-schedule-x" is both the old id of schedule
		// "schedule-x" and the new id of "x": move only a schedule whose
		// action says it is this one
		if act, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction); !ok || act.ID != "scheduled-backup:"+sc.ID {
			continue
		}
		spec, act, err := s.scheduleOptions(sc)
		if err == nil {
			_, err = s.upsertTemporalSchedule(ctx, temporalScheduleID(sc.ID), spec, act, !sc.Enabled)
		}
		if err == nil {
			err = old.Delete(ctx)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("schedule %s: %w", sc.ID, err))
		}
	}
	return errors.Join(errs...)
}

// calendar turns frequency/time/day into a Temporal calendar spec.
func calendar(sc *models.Schedule) (client.ScheduleCalendarSpec, error) {
	var cal client.ScheduleCalendarSpec
	h, m := 0, 0
	if sc.Time != "" {
		mm := hhmm.FindStringSubmatch(sc.Time)
		if mm == nil {
			return cal, schedErr("time", "time: %q is not HH:MM (00:00..23:59)", sc.Time)
		}
		h, _ = strconv.Atoi(mm[1])
		m, _ = strconv.Atoi(mm[2])
	}
	cal.Minute = []client.ScheduleRange{{Start: m}}
	switch sc.Frequency {
	case "hourly":
		if sc.Day != "" {
			return cal, schedErr("day", "day: an hourly schedule takes no day")
		}
		cal.Hour = []client.ScheduleRange{{Start: 0, End: 23}}
		cal.Comment = "hourly at minute " + strconv.Itoa(m)
	case "daily":
		if sc.Time == "" {
			return cal, schedErr("time", "time: a daily schedule needs a time (HH:MM)")
		}
		if sc.Day != "" {
			return cal, schedErr("day", "day: a daily schedule takes no day")
		}
		cal.Hour = []client.ScheduleRange{{Start: h}}
		cal.Comment = "daily at " + sc.Time
	case "weekly":
		if sc.Time == "" {
			return cal, schedErr("time", "time: a weekly schedule needs a time (HH:MM)")
		}
		d, ok := weekdays[strings.ToLower(sc.Day)]
		if !ok {
			return cal, schedErr("day", "day: a weekly schedule needs a weekday (Sunday..Saturday), got %q", sc.Day)
		}
		cal.Hour = []client.ScheduleRange{{Start: h}}
		cal.DayOfWeek = []client.ScheduleRange{{Start: d}}
		cal.Comment = "weekly on " + sc.Day + " at " + sc.Time
	case "monthly":
		if sc.Time == "" {
			return cal, schedErr("time", "time: a monthly schedule needs a time (HH:MM)")
		}
		d, err := strconv.Atoi(sc.Day)
		if err != nil || d < 1 || d > 31 {
			return cal, schedErr("day", "day: a monthly schedule needs a day of the month (1..31), got %q", sc.Day)
		}
		cal.Hour = []client.ScheduleRange{{Start: h}}
		cal.DayOfMonth = []client.ScheduleRange{{Start: d}}
		cal.Comment = "monthly on day " + sc.Day + " at " + sc.Time
	default:
		return cal, schedErr("frequency", "frequency: %q is not one of hourly, daily, weekly, monthly", sc.Frequency)
	}
	return cal, nil
}

func (s *Server) scheduleOptions(sc *models.Schedule) (client.ScheduleSpec, *client.ScheduleWorkflowAction, error) {
	cal, err := calendar(sc)
	if err != nil {
		return client.ScheduleSpec{}, nil, err
	}
	spec := client.ScheduleSpec{Calendars: []client.ScheduleCalendarSpec{cal}, TimeZoneName: sc.Timezone}
	req := workflows.BackupRequest{Name: sc.Name, Type: sc.Type, Components: sc.Components, Locations: sc.Locations,
		Compression: sc.Compression, ScheduleID: sc.ID, CreatedBy: "scheduler", RetentionDays: sc.RetentionDays,
		CatalogQueue: s.catalogQueue(), Description: "scheduled by " + sc.ID,
		Notify: &workflows.NotifyPrefs{OnSuccess: sc.Notifications["on_success"], OnFailure: sc.Notifications["on_failure"],
			OnWarning: sc.Notifications["on_warning"]}}
	if len(sc.Hosts) > 0 || sc.HostSelector != "" {
		// each host's run is a workflow of its own, started by this one
		fr := workflows.FleetBackupRequest{Backup: req, Hosts: sc.Hosts, Selector: sc.HostSelector,
			CatchUp: time.Duration(sc.CatchupMinutes) * time.Minute}
		return spec, &client.ScheduleWorkflowAction{ID: "scheduled-hosts:" + sc.ID, Workflow: "FleetBackupWorkflow", Args: []any{fr},
			TaskQueue: activities.HostJobsTaskQueue,
			TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrJobType.ValueSet(string(api.JobBackup)),
				workflows.AttrScheduleID.ValueSet(sc.ID), workflows.AttrStatus.ValueSet(workflows.StatusPending),
				workflows.AttrComponents.ValueSet(sc.Components))}, nil
	}
	act := &client.ScheduleWorkflowAction{ID: "scheduled-backup:" + sc.ID, Workflow: "BackupWorkflow", Args: []any{req},
		TaskQueue: s.Cfg.Temporal.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrJobType.ValueSet(string(api.JobBackup)),
			workflows.AttrScheduleID.ValueSet(sc.ID), workflows.AttrStatus.ValueSet(workflows.StatusPending),
			workflows.AttrComponents.ValueSet(sc.Components))}
	return spec, act, nil
}

func (s *Server) putSchedule(w http.ResponseWriter, r *http.Request) error {
	var req api.ScheduleRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if !scheduleIDRe.MatchString(req.ID) {
		return schedErr("id", "id: %q must be 1-120 letters, digits, '.', '_' or '-'", req.ID)
	}
	if reservedScheduleID(req.ID) {
		return schedErr("id", "id: %q is reserved for backupd's own schedules (cleanup, backupd*, scheduled-*); choose another id", req.ID)
	}
	setTarget(r, req.ID)
	ctx := r.Context()
	sc, err := s.Store.GetSchedule(ctx, req.ID)
	created := errors.Is(err, models.ErrNotFound)
	if created {
		sc = &models.Schedule{ID: req.ID, Enabled: true, Type: "full", Timezone: "UTC", Compression: "",
			Notifications: defaultNotifications(), CreatedBy: user(r)}
	} else if err != nil {
		return err
	}
	set := setFrom
	set(&sc.Name, req.Name)
	set(&sc.Type, req.Type)
	set(&sc.Frequency, req.Frequency)
	set(&sc.Time, req.Time)
	set(&sc.Day, req.Day)
	set(&sc.Timezone, req.Timezone)
	set(&sc.Compression, req.Compression)
	set(&sc.Description, req.Description)
	if req.Enabled != nil {
		sc.Enabled = *req.Enabled
	}
	if req.RetentionDays != nil {
		if *req.RetentionDays < 1 || *req.RetentionDays > 36500 {
			return schedErr("retention_days", "retention_days: %d is outside 1..36500", *req.RetentionDays)
		}
		sc.RetentionDays = *req.RetentionDays
	}
	if err := setNotifications(&sc.Notifications, req.Notifications); err != nil {
		return err
	}
	var warnings []string
	if err := s.setScheduleHosts(ctx, sc, req); err != nil {
		return err
	}
	fleet := len(sc.Hosts) > 0 || sc.HostSelector != ""
	if req.Components != nil && fleet {
		comps, warn, err := s.selectFleetComponents(ctx, sc, req.Components)
		if err != nil {
			return err
		}
		sc.Components, warnings = comps, append(warnings, warn...)
	} else if req.Components != nil {
		comps, err := s.selectComponents(req.Components, true)
		if err != nil {
			e := err.(*apiError)
			e.Code = string(codes.ScheduleError)
			return e
		}
		sc.Components = comps
	}
	if req.StorageLocations != nil {
		locs, err := s.selectLocations(ctx, "storage_locations", req.StorageLocations)
		if err != nil {
			if e, ok := err.(*apiError); ok {
				e.Code = string(codes.ScheduleError)
			}
			return err
		}
		sc.Locations = locs
	}
	// what a new schedule must say
	if created {
		if sc.Frequency == "" {
			return schedErr("frequency", "frequency is required (hourly, daily, weekly, monthly)")
		}
		if len(sc.Components) == 0 {
			return schedErr("components", "components: select at least one component (configured: %s)", strings.Join(s.Cfg.ComponentNames(), ", "))
		}
		if sc.Name == "" {
			sc.Name = sc.ID
		}
	}
	if len(sc.Locations) == 0 {
		locs, err := s.selectLocations(ctx, "storage_locations", nil)
		if err != nil {
			return err
		}
		sc.Locations = locs
	}
	if sc.Compression == "" {
		pol, err := s.policies(ctx)
		if err != nil {
			return err
		}
		sc.Compression = pol.Compression.DefaultAlgorithm
	}
	if err := oneOf("type", sc.Type, backupTypes...); err != nil {
		return schedErr("type", "type: %q is not one of %s", sc.Type, strings.Join(backupTypes, ", "))
	}
	if err := oneOf("compression", sc.Compression, compressions...); err != nil {
		return schedErr("compression", "compression: %q is not one of %s", sc.Compression, strings.Join(compressions, ", "))
	}
	if err := validScheduleText(sc.Timezone, sc.Name, sc.Description); err != nil {
		return err
	}
	if req.Encryption != nil && !*req.Encryption {
		return schedErr("encryption", "encryption: backupd always encrypts; false is not possible")
	}
	sc.Encryption = true
	spec, act, err := s.scheduleOptions(sc)
	if err != nil {
		return err
	}
	h, err := s.upsertTemporalSchedule(ctx, temporalScheduleID(sc.ID), spec, act, !sc.Enabled)
	if err != nil {
		return err
	}
	if err := s.Store.PutSchedule(ctx, sc); err != nil {
		if created { // no schedule in Temporal that the catalog does not know
			h.Delete(context.WithoutCancel(ctx))
		}
		return err
	}
	next := s.nextOf(ctx, h)
	status, msg := "updated", "Schedule updated successfully"
	if created {
		status, msg = "created", "Schedule created successfully"
	}
	s.Hub.Broadcast(scheduleEvent("schedule_"+status, sc, msg, next))
	if warnings == nil {
		warnings = []string{}
	}
	policyMet := true
	if pol, err := s.policies(ctx); err == nil {
		if pw := s.policyWarning(sc.Locations, pol); pw != "" {
			warnings, policyMet = append(warnings, pw), false
		}
	}
	writeJSON(w, http.StatusOK, api.ScheduleSaved{
		Status: status, ScheduleID: sc.ID, Name: sc.Name, Message: msg, Enabled: sc.Enabled,
		NextExecution: rfc3339ptr(next),
		Validation: api.ScheduleValidation{ComponentsValid: true, StorageValid: true, ScheduleValid: true, RetentionValid: true,
			ReplicationPolicyMet: policyMet},
		Warnings:           warnings,
		TemporalScheduleID: temporalScheduleID(sc.ID),
	})
	return nil
}

// upsertTemporalSchedule creates the Temporal schedule or, when it
// exists, replaces its spec, action and state (Create is not idempotent).
func (s *Server) upsertTemporalSchedule(ctx context.Context, id string, spec client.ScheduleSpec, act *client.ScheduleWorkflowAction, paused bool) (client.ScheduleHandle, error) {
	sched := s.Temporal.ScheduleClient()
	note := "enabled"
	if paused {
		note = "disabled through the API"
	}
	h, err := sched.Create(ctx, client.ScheduleOptions{ID: id, Spec: spec, Action: act,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: catchupWindow, Paused: paused, Note: note})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		h = sched.GetHandle(ctx, id)
		err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			x := in.Description.Schedule
			x.Spec, x.Action = &spec, act
			if x.State == nil {
				x.State = &client.ScheduleState{}
			}
			x.State.Paused, x.State.Note = paused, note
			if x.Policy == nil {
				x.Policy = &client.SchedulePolicies{}
			}
			x.Policy.Overlap, x.Policy.CatchupWindow = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, catchupWindow
			return &client.ScheduleUpdate{Schedule: &x}, nil
		}})
	}
	if err != nil {
		return nil, codes.Wrap(codes.ScheduleError, err)
	}
	return h, nil
}

// catchupWindow: runs missed while Temporal (or every worker) was down
// still happen when it is back within a day (Temporal's default is 1 min).
const catchupWindow = 24 * time.Hour

// cleanupScheduleID is the Temporal schedule of the retention cleanup.
const cleanupScheduleID = "backupd-cleanup"

// EnsureCleanupSchedule makes the cleanup schedule match the cleanup
// rules: a planned cleanup of every location daily or weekly (Sunday) at
// cleanup_time UTC; paused when auto_cleanup is off or the schedule
// disabled.
func (s *Server) EnsureCleanupSchedule(ctx context.Context) (*time.Time, error) {
	rs, err := s.retentionSettings(ctx)
	if err != nil {
		return nil, err
	}
	r := rs.Rules
	h, m := 3, 0
	if mm := hhmm.FindStringSubmatch(r.CleanupTime); mm != nil {
		h, _ = strconv.Atoi(mm[1])
		m, _ = strconv.Atoi(mm[2])
	}
	cal := client.ScheduleCalendarSpec{Hour: []client.ScheduleRange{{Start: h}}, Minute: []client.ScheduleRange{{Start: m}},
		Comment: "retention cleanup " + r.CleanupSchedule + " at " + r.CleanupTime + " UTC"}
	if r.CleanupSchedule == "weekly" {
		cal.DayOfWeek = []client.ScheduleRange{{Start: 0}}
	}
	locs := s.Cfg.LocationNames()
	creq := workflows.CleanupRequest{Locations: locs, CatalogQueue: s.catalogQueue(), Subtype: "scheduled",
		Plan: &activities.PlanInput{Targets: locs}}
	if w, ok := s.Cfg.SafetyWindow(); ok {
		creq.SafetyWindowSeconds, creq.Immediate = int64(w/time.Second), w == 0
	}
	act := &client.ScheduleWorkflowAction{ID: "scheduled-cleanup", Workflow: "CleanupWorkflow", TaskQueue: s.Cfg.Temporal.TaskQueue,
		Args: []any{creq},
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.AttrJobType.ValueSet(string(api.JobCleanup)),
			workflows.AttrStatus.ValueSet(workflows.StatusPending))}
	paused := !r.AutoCleanup || r.CleanupSchedule == "disabled"
	hd, err := s.upsertTemporalSchedule(ctx, cleanupScheduleID, client.ScheduleSpec{Calendars: []client.ScheduleCalendarSpec{cal},
		TimeZoneName: "UTC"}, act, paused)
	if err != nil {
		return nil, err
	}
	return s.nextOf(ctx, hd), nil
}

func (s *Server) nextOf(ctx context.Context, h client.ScheduleHandle) *time.Time {
	d, err := h.Describe(ctx)
	if err != nil || len(d.Info.NextActionTimes) == 0 || d.Schedule.State.Paused {
		return nil
	}
	t := d.Info.NextActionTimes[0].UTC()
	return &t
}

// nextScheduledRun is the soonest next run of any schedule.
func (s *Server) nextScheduledRun(ctx context.Context) *time.Time {
	list, err := s.Store.ListSchedules(ctx)
	if err != nil {
		return nil
	}
	var best *time.Time
	for _, sc := range list {
		if t := s.nextOf(ctx, s.Temporal.ScheduleClient().GetHandle(ctx, temporalScheduleID(sc.ID))); t != nil && (best == nil || t.Before(*best)) {
			best = t
		}
	}
	return best
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	list, err := s.Store.ListSchedules(ctx)
	if err != nil {
		return err
	}
	out := []api.ScheduleView{}
	byFreq := map[string]int{"hourly": 0, "daily": 0, "weekly": 0, "monthly": 0}
	enabled := 0
	for i := range list {
		sc := &list[i]
		byFreq[sc.Frequency]++
		if sc.Enabled {
			enabled++
		}
		v := api.ScheduleView{ID: sc.ID, Name: sc.Name, Enabled: sc.Enabled, Type: sc.Type, Frequency: sc.Frequency,
			Time: sc.Time, Day: sc.Day, Timezone: sc.Timezone, Components: s.componentMap(sc.Components),
			StorageLocations: nonNil(sc.Locations), RetentionDays: sc.RetentionDays, Encryption: sc.Encryption,
			Compression: sc.Compression, Notifications: sc.Notifications, Description: sc.Description,
			Hosts: sc.Hosts, HostSelector: sc.HostSelector, CatchupMinutes: sc.CatchupMinutes}
		if len(sc.Hosts) > 0 || sc.HostSelector != "" {
			v.Components = map[string]bool{}
			for _, c := range sc.Components {
				v.Components[c] = true
			}
		}
		h := s.Temporal.ScheduleClient().GetHandle(ctx, temporalScheduleID(sc.ID))
		if d, err := h.Describe(ctx); err == nil {
			if len(d.Info.NextActionTimes) > 0 && !d.Schedule.State.Paused {
				v.NextExecution = ptr(rfc3339(d.Info.NextActionTimes[0]))
			}
			v.ScheduleRuns = &api.ScheduleRuns{Executions: d.Info.NumActions, SkippedOverlap: d.Info.NumActionsSkippedOverlap,
				MissedCatchupWindow: d.Info.NumActionsMissedCatchupWindow}
			tz, err := time.LoadLocation(sc.Timezone)
			if err != nil {
				tz = time.UTC
			}
			for i, t := range d.Info.NextActionTimes {
				if i == 5 || d.Schedule.State.Paused {
					break
				}
				v.NextExecutions = append(v.NextExecutions, t.In(tz).Format(time.RFC3339))
			}
			for i := len(d.Info.RecentActions) - 1; i >= 0; i-- {
				a := d.Info.RecentActions[i]
				run := api.ScheduleRun{ScheduledAt: a.ScheduleTime.In(tz).Format(time.RFC3339), StartedAt: a.ActualTime.In(tz).Format(time.RFC3339)}
				if a.StartWorkflowResult != nil {
					run.WorkflowID = a.StartWorkflowResult.WorkflowID
					run.TemporalUIURL = s.workflowURL(a.StartWorkflowResult.WorkflowID, a.StartWorkflowResult.FirstExecutionRunID)
				}
				v.RecentExecutions = append(v.RecentExecutions, run)
			}
		} else {
			v.TemporalError = err.Error()
		}
		if rows, err := s.Store.ListBackups(ctx, models.BackupFilter{ScheduleID: sc.ID, Limit: 1}); err == nil && len(rows) > 0 {
			b := rows[0]
			st := map[string]string{workflows.StatusCompleted: "success", workflows.StatusPartial: "warning",
				workflows.StatusFailed: "failed", workflows.StatusCancelled: "cancelled", workflows.StatusInProgress: "running"}[b.Status]
			v.LastExecution = &api.LastExecution{Timestamp: rfc3339(b.Timestamp), Status: st, BackupID: b.ID,
				Size: humanSize(b.SizeBytes), SizeBytes: b.SizeBytes,
				Duration: humanDuration(time.Duration(b.DurationSeconds * float64(time.Second))), DurationSeconds: b.DurationSeconds}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, api.ScheduleList{Schedules: out, Summary: api.ScheduleSummary{
		TotalSchedules: len(list), Enabled: enabled, Disabled: len(list) - enabled, ByFrequency: byFreq}})
	return nil
}

func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	sc, err := s.scheduleOf(r)
	if err != nil {
		return err
	}
	id := sc.ID
	h := s.Temporal.ScheduleClient().GetHandle(r.Context(), temporalScheduleID(id))
	if err := h.Delete(r.Context()); err != nil && !isNotFound(err) {
		return codes.Wrap(codes.ScheduleError, err)
	}
	if err := s.Store.DeleteSchedule(r.Context(), id); err != nil {
		return err
	}
	s.capMu.Lock()
	delete(s.skipped, id)
	s.capMu.Unlock()
	s.Hub.Broadcast(scheduleEvent("schedule_deleted", sc, "Schedule "+id+" deleted", nil))
	writeJSON(w, http.StatusOK, api.ScheduleAction{Status: "deleted", ScheduleID: id,
		Message: "Schedule deleted; a backup it already started runs to its end"})
	return nil
}

func (s *Server) triggerSchedule(w http.ResponseWriter, r *http.Request) error {
	sc, err := s.scheduleOf(r)
	if err != nil {
		return err
	}
	id := sc.ID
	h := s.Temporal.ScheduleClient().GetHandle(r.Context(), temporalScheduleID(id))
	if err := h.Trigger(r.Context(), client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP}); err != nil {
		return codes.Wrap(codes.ScheduleError, err)
	}
	s.Hub.Broadcast(scheduleEvent("backup_triggered", sc, "Schedule "+id+" triggered by "+user(r), nil))
	writeJSON(w, http.StatusOK, api.ScheduleAction{Status: "triggered", ScheduleID: id,
		Message: "A backup starts now unless one of this schedule is still running (overlap policy SKIP)"})
	return nil
}

func isNotFound(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "not found")
}

func scheduleEvent(event string, sc *models.Schedule, msg string, next *time.Time) api.ScheduleEventMessage {
	return api.ScheduleEventMessage{Type: "schedule_event", Event: event, ScheduleID: sc.ID, Message: msg,
		Timestamp: rfc3339(time.Now()), NextExecution: rfc3339ptr(next)}
}

// scheduleOf loads the schedule the path names.
func (s *Server) scheduleOf(r *http.Request) (*models.Schedule, error) {
	id := mux.Vars(r)["schedule_id"]
	setTarget(r, id)
	sc, err := s.Store.GetSchedule(r.Context(), id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, &apiError{Status: http.StatusNotFound, Code: string(codes.ScheduleError), Message: "no schedule " + strconv.Quote(id)}
	}
	return sc, err
}

// setScheduleHosts applies a schedule request's hosts, host selector and
// catch-up window.
func (s *Server) setScheduleHosts(ctx context.Context, sc *models.Schedule, req api.ScheduleRequest) error {
	if req.Hosts != nil && req.HostSelector != nil && len(req.Hosts) > 0 && *req.HostSelector != "" {
		return schedErr("hosts", "hosts and host_selector: give one of them (a list of hosts, or the labels that select them)")
	}
	if req.Hosts != nil {
		sc.Hosts = models.Strings{}
		seen := map[string]bool{}
		for i, n := range req.Hosts {
			h, err := s.jobHost(ctx, n)
			if err != nil {
				if e, ok := err.(*apiError); ok {
					e.Code, e.Details = string(codes.ScheduleError), map[string]any{"field": sprintf("hosts[%d]", i)}
				}
				return err
			}
			if h == nil {
				return schedErr(sprintf("hosts[%d]", i), "hosts[%d]: %s is the server's own host; a schedule without hosts backs it up", i, n)
			}
			if !seen[h.Name] {
				seen[h.Name] = true
				sc.Hosts = append(sc.Hosts, h.Name)
			}
		}
		if len(sc.Hosts) > 0 {
			sc.HostSelector = ""
		}
	}
	if req.HostSelector != nil {
		if *req.HostSelector != "" {
			if err := models.ValidSelector(*req.HostSelector); err != nil {
				return schedErr("host_selector", "host_selector: %v", err)
			}
			sc.Hosts = models.Strings{}
		}
		sc.HostSelector = *req.HostSelector
	}
	if req.CatchupMinutes != nil {
		if *req.CatchupMinutes < 1 || *req.CatchupMinutes > 7*24*60 {
			return schedErr("catchup_minutes", "catchup_minutes: %d is outside 1..10080 (a week)", *req.CatchupMinutes)
		}
		sc.CatchupMinutes = *req.CatchupMinutes
	}
	if (len(sc.Hosts) > 0 || sc.HostSelector != "") && sc.CatchupMinutes == 0 {
		sc.CatchupMinutes = int(catchupWindow / time.Minute)
	}
	return nil
}

// selectFleetComponents checks a host schedule's components against
// what its hosts report now: each must be reported by one of them (a
// host that lacks one is skipped at the run, and says so).
func (s *Server) selectFleetComponents(ctx context.Context, sc *models.Schedule, set api.ComponentSet) ([]string, []string, error) {
	hosts, err := s.Store.ListHosts(ctx)
	if err != nil {
		return nil, nil, err
	}
	reported := map[string]bool{}
	matched := 0
	for _, h := range hosts {
		if h.Local || h.Status != models.HostActive {
			continue
		}
		if (len(sc.Hosts) > 0 && contains(sc.Hosts, h.Name)) || (len(sc.Hosts) == 0 && models.SelectorMatches(sc.HostSelector, h.Labels)) {
			matched++
			for _, c := range h.Components {
				reported[c.Name] = true
			}
		}
	}
	names := make([]string, 0, len(reported))
	for n := range reported {
		names = append(names, n)
	}
	sort.Strings(names)
	var out, warnings []string
	for n, on := range set {
		if matched > 0 && !reported[n] {
			return nil, nil, schedErr("components."+n, "components.%s: none of the schedule's hosts reports it (they report: %s)", n, strings.Join(names, ", "))
		}
		if on {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, nil, schedErr("components", "components: select at least one component of the schedule's hosts")
	}
	if matched == 0 {
		warnings = append(warnings, "no enrolled host matches host_selector "+sc.HostSelector+" now: each run backs up the hosts that match when it fires")
	}
	sort.Strings(out)
	return out, warnings, nil
}
