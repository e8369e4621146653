package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"backupd/api"
	"backupd/models"
	"backupd/workflows"
)

// lateFactor: a component is late when its newest completed backup is
// older than this many intervals of its tightest schedule (the same rule
// as the Prometheus alert BackupdScheduledBackupLate).
const lateFactor = 1.5

// getComponents answers GET /backup/components: each configured
// component's newest completed backup, against its own schedules.
func (s *Server) getComponents(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	ctx := r.Context()
	scheds, err := s.Store.ListSchedules(ctx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(s.Cfg.Components))
	for n := range s.Cfg.Components {
		names = append(names, n)
	}
	sort.Strings(names)
	// the newest completed backup of each component: one indexed query
	// each, whatever the catalog's length
	newest := map[string]*models.Backup{}
	own := s.ownHosts(ctx) // enrolled hosts' backups do not make the server's components fresh
	for _, n := range names {
		b, err := s.Store.NewestWithComponent(ctx, own, workflows.StatusCompleted, n)
		if errors.Is(err, models.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		newest[n] = b
	}
	now := time.Now()
	out := freshness(names, newest, scheds, now)
	for i := range out {
		c := s.Cfg.Components[out[i].Component]
		if c.RPOSeconds > 0 {
			out[i].RPOObjectiveSeconds = ptr(c.RPOSeconds)
			out[i].RPOBreached = out[i].AgeSeconds == nil || *out[i].AgeSeconds > float64(c.RPOSeconds)
		}
		if c.RTOSeconds > 0 {
			out[i].RTOObjectiveSeconds = ptr(c.RTOSeconds)
		}
	}
	writeJSON(w, http.StatusOK, api.ComponentsFreshness{Components: out, CheckedAt: rfc3339(now)})
	return nil
}

// freshness judges each component's newest completed backup against the
// enabled schedules that back it up.
func freshness(names []string, newest map[string]*models.Backup, scheds []models.Schedule, now time.Time) []api.ComponentFreshness {
	out := []api.ComponentFreshness{}
	for _, name := range names {
		f := api.ComponentFreshness{Component: name, Locations: []string{}, Schedules: []string{}}
		var interval time.Duration
		var oldestSchedule time.Time // the earliest made of the schedules with the tightest interval
		for _, sc := range scheds {
			iv := scheduleInterval(sc.Frequency)
			if !sc.Enabled || iv == 0 || !contains(sc.Components, name) {
				continue
			}
			f.Schedules = append(f.Schedules, sc.ID)
			if interval == 0 || iv < interval {
				interval, oldestSchedule = iv, sc.CreatedAt
			} else if iv == interval && sc.CreatedAt.Before(oldestSchedule) {
				oldestSchedule = sc.CreatedAt
			}
		}
		if interval > 0 {
			f.ExpectedIntervalSeconds = ptr(interval.Seconds())
		}
		b := newest[name]
		if b != nil {
			f.LastSuccess, f.LastBackupID, f.Locations = ptr(rfc3339(b.Timestamp)), b.ID, nonNil(b.Locations)
			f.AgeSeconds = ptr(now.Sub(b.Timestamp).Seconds())
		}
		late := time.Duration(lateFactor * float64(interval))
		switch {
		case interval == 0:
			f.State = "unscheduled"
			if b == nil {
				f.Message = "never backed up, and no enabled schedule backs it up"
			} else {
				f.Message = fmt.Sprintf("last backed up %s ago; no enabled schedule backs it up", humanDuration(now.Sub(b.Timestamp)))
			}
		case b == nil && now.Sub(oldestSchedule) > late:
			f.State = "late"
			f.Message = fmt.Sprintf("never backed up, though %s (every %s) has had %s to run", strings.Join(f.Schedules, ", "), humanDuration(interval), humanDuration(now.Sub(oldestSchedule)))
		case b == nil:
			f.State = "waiting"
			f.Message = fmt.Sprintf("not backed up yet; %s runs every %s", strings.Join(f.Schedules, ", "), humanDuration(interval))
		case now.Sub(b.Timestamp) > late:
			f.State = "late"
			f.Message = fmt.Sprintf("last backed up %s ago, but %s runs every %s", humanDuration(now.Sub(b.Timestamp)), strings.Join(f.Schedules, ", "), humanDuration(interval))
		default:
			f.State = "ok"
			f.Message = fmt.Sprintf("last backed up %s ago; %s runs every %s", humanDuration(now.Sub(b.Timestamp)), strings.Join(f.Schedules, ", "), humanDuration(interval))
		}
		out = append(out, f)
	}
	return out
}
