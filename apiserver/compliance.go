package apiserver

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"backupd/api"
	"backupd/models"
	"backupd/workflows"
)

// destructiveActions are the audited actions a compliance report lists:
// what removes backups or data, weakens retention or protection, replaces
// what is on the host, or takes away access.
var destructiveActions = []string{"backup.delete", "backup.protect", "cleanup.start", "retention.update", "storage.update",
	"restore.start", "restore.rollback", "token.revoke", "host.revoke", "drill.delete", "schedule.delete"}

// getCompliance answers GET /backup/reports/compliance.
func (s *Server) getCompliance(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "period", "format"); err != nil {
		return err
	}
	period := q.Get("period")
	if period == "" {
		period = "30d"
	}
	d, ok := periods[period]
	if !ok {
		return badRequest("period", "period: %q is not one of %s", period, strings.Join(periodNames(), ", "))
	}
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if err := oneOf("format", format, api.ComplianceFormats...); err != nil {
		return badRequest("format", "format: %q is not one of %s", format, strings.Join(api.ComplianceFormats, ", "))
	}
	now := time.Now().UTC()
	rep, err := s.compliance(r.Context(), period, now.Add(-d), now)
	if err != nil {
		return err
	}
	name := "backupd-compliance-" + now.Format("20060102") + "-" + period
	switch format {
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
		return complianceCSV(w, rep)
	case "html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		return complianceHTML(w, rep)
	case "pdf":
		b, err := compliancePDF(rep)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.pdf"`)
		_, err = w.Write(b)
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

type pairKey struct{ host, comp string }

// compliance works the report out of the catalog, the schedules, the
// drills, the stored cleanup reports and the audit log.
func (s *Server) compliance(ctx context.Context, period string, from, to time.Time) (*api.ComplianceReport, error) {
	rep := &api.ComplianceReport{GeneratedAt: rfc3339(to), From: rfc3339(from), To: rfc3339(to), Period: period,
		Components: []api.ComponentCompliance{}, Protected: []api.ProtectedBackup{}, Audit: []api.AuditActionSummary{},
		Retention: api.ComplianceRetention{Removed: []api.RemovedBackup{}}, Summary: api.ComplianceSummary{Findings: []string{}}}
	pol, err := s.policies(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.Store.AllBackups(ctx)
	if err != nil {
		return nil, err
	}
	scheds, err := s.Store.ListSchedules(ctx)
	if err != nil {
		return nil, err
	}
	own := s.ownHosts(ctx)
	hostOf := func(b *models.Backup) string {
		if b.Host == "" || slices.Contains(own, b.Host) {
			return s.Cfg.Host
		}
		return b.Host
	}
	// the pairs: the server's configured components, and every pair a
	// backup in the period names
	pairs := map[pairKey]*api.ComponentCompliance{}
	pair := func(k pairKey) *api.ComponentCompliance {
		c := pairs[k]
		if c == nil {
			c = &api.ComponentCompliance{Host: k.host, Component: k.comp, Schedules: []string{}}
			pairs[k] = c
		}
		return c
	}
	for _, name := range s.Cfg.ComponentNames() {
		pair(pairKey{s.Cfg.Host, name})
	}
	completed := map[pairKey][]time.Time{} // every completed backup, all time
	taken := 0                             // backups finished in the period, each once
	copies := map[pairKey][2]int{}
	immut := map[pairKey][2]int{} // completed backups with an immutable copy, of all
	rep.Immutable = []api.ImmutableLocation{}
	for _, name := range s.Cfg.LocationNames() {
		if im := s.immutability(name); im != nil {
			rep.Immutable = append(rep.Immutable, api.ImmutableLocation{Location: name, Mode: im.Mode, LockMode: im.LockMode, LockPeriod: im.LockPeriod})
		}
	}
	for i := range rows {
		b := &rows[i]
		h := hostOf(b)
		for _, comp := range b.Components {
			k := pairKey{h, comp}
			if b.Status == workflows.StatusCompleted {
				completed[k] = append(completed[k], b.Timestamp)
			}
			if b.Timestamp.Before(from) || !b.Timestamp.Before(to) {
				continue
			}
			c := pair(k)
			switch b.Status {
			case workflows.StatusCompleted:
				c.Completed++
				cp := copies[k]
				cp[1]++
				if s.check321(b, pol) == nil {
					cp[0]++
				}
				copies[k] = cp
				ic := immut[k]
				ic[1]++
				for _, l := range b.Locations {
					if s.immutability(l) != nil {
						ic[0]++
						break
					}
				}
				immut[k] = ic
			case workflows.StatusPartial:
				c.Partial++
			case workflows.StatusFailed:
				c.Failed++
			default:
				continue
			}
			c.BackupsTaken++
		}
		if !b.Timestamp.Before(from) && b.Timestamp.Before(to) &&
			(b.Status == workflows.StatusCompleted || b.Status == workflows.StatusPartial || b.Status == workflows.StatusFailed) {
			taken++
		}
		if b.Protected {
			rep.Protected = append(rep.Protected, api.ProtectedBackup{BackupID: b.ID, Host: h, Taken: rfc3339(b.Timestamp),
				Components: nonNil(b.Components)})
		}
	}
	drills, err := s.drillFigures(ctx, from, to, &rep.Summary)
	if err != nil {
		return nil, err
	}
	keys := make([]pairKey, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].host != keys[j].host {
			return keys[i].host == s.Cfg.Host || (keys[j].host != s.Cfg.Host && keys[i].host < keys[j].host)
		}
		return keys[i].comp < keys[j].comp
	})
	sum := &rep.Summary
	finished, ok := 0, 0
	for _, k := range keys {
		c := pairs[k]
		s.scheduleFigures(c, k, scheds, from, to)
		if n := c.Completed + c.Partial + c.Failed; n > 0 {
			c.SuccessRate = ptr(float64(c.Completed) / float64(n))
			finished, ok = finished+n, ok+c.Completed
		}
		if k.host == s.Cfg.Host {
			comp := s.Cfg.Components[k.comp]
			if comp.RPOSeconds > 0 {
				c.RPOObjectiveSeconds = ptr(comp.RPOSeconds)
			}
			if comp.RTOSeconds > 0 {
				c.RTOObjectiveSeconds = ptr(comp.RTOSeconds)
			}
		}
		c.WorstRPOSeconds = worstGap(completed[k], from, to)
		c.RPOBreached = c.RPOObjectiveSeconds != nil && (c.WorstRPOSeconds == nil || *c.WorstRPOSeconds > float64(*c.RPOObjectiveSeconds))
		if df, ok := drills[k.comp]; ok && k.host == s.Cfg.Host {
			c.Drills, c.DrillsPassed, c.LastRTOSeconds, c.WorstRTOSeconds = df.runs, df.passed, df.last, df.worst
		}
		c.RTOBreached = c.RTOObjectiveSeconds != nil && c.WorstRTOSeconds != nil && *c.WorstRTOSeconds > float64(*c.RTOObjectiveSeconds)
		c.Copies321 = "off"
		if pol.Replication.Enabled {
			c.Copies321 = fmt.Sprintf("%d/%d", copies[k][0], copies[k][1])
		}
		c.ImmutableCopies = "none"
		if len(rep.Immutable) > 0 {
			c.ImmutableCopies = fmt.Sprintf("%d/%d", immut[k][0], immut[k][1])
		}
		rep.Components = append(rep.Components, *c)
		who := c.Component
		if k.host != s.Cfg.Host {
			who = c.Component + " on " + c.Host
		}
		if c.RPOBreached {
			sum.RPOBreaches++
			if c.WorstRPOSeconds == nil {
				sum.Findings = append(sum.Findings, fmt.Sprintf("%s: no completed backup, against a recovery point objective of %s", who, secondsWords(float64(*c.RPOObjectiveSeconds))))
			} else {
				sum.Findings = append(sum.Findings, fmt.Sprintf("%s: the recovery point reached %s, past its objective of %s", who,
					secondsWords(*c.WorstRPOSeconds), secondsWords(float64(*c.RPOObjectiveSeconds))))
			}
		}
		if c.RTOBreached {
			sum.Findings = append(sum.Findings, fmt.Sprintf("%s: a restore drill took %s, past its recovery time objective of %s", who,
				secondsWords(*c.WorstRTOSeconds), secondsWords(float64(*c.RTOObjectiveSeconds))))
		}
		if c.RTOObjectiveSeconds != nil && c.Drills == 0 {
			sum.Findings = append(sum.Findings, fmt.Sprintf("%s: no restore drill in the period, so its recovery time objective is unproven", who))
		}
		if c.Drills > c.DrillsPassed {
			sum.Findings = append(sum.Findings, fmt.Sprintf("%s: %d of %d restore drills failed", who, c.Drills-c.DrillsPassed, c.Drills))
		}
		if c.Failed+c.Partial > 0 {
			sum.Findings = append(sum.Findings, fmt.Sprintf("%s: %d of %d backups did not complete", who, c.Failed+c.Partial, c.BackupsTaken))
		}
		if c.BackupsExpected != nil && c.Completed < *c.BackupsExpected {
			sum.Findings = append(sum.Findings, fmt.Sprintf("%s: %d completed backups, its schedules expected %d", who, c.Completed, *c.BackupsExpected))
		}
		if cp := copies[k]; pol.Replication.Enabled && cp[0] < cp[1] {
			sum.Findings = append(sum.Findings, fmt.Sprintf("%s: %d of %d completed backups miss the 3-2-1 policy's copies", who, cp[1]-cp[0], cp[1]))
		}
	}
	sum.BackupsTaken = taken
	if finished > 0 {
		sum.SuccessRate = ptr(float64(ok) / float64(finished))
	}
	if err := s.encryptionFigures(ctx, rep, pol); err != nil {
		return nil, err
	}
	if rep.Encryption.RotationDue {
		sum.Findings = append(sum.Findings, fmt.Sprintf("the repository key is %d days old; the policy rotates it every %d days",
			*rep.Encryption.KeyAgeDays, rep.Encryption.RotationDays))
	}
	if err := s.retentionFigures(ctx, rep, from, to); err != nil {
		return nil, err
	}
	if err := s.auditFigures(ctx, rep, from, to); err != nil {
		return nil, err
	}
	sum.Compliant = len(sum.Findings) == 0
	return rep, nil
}

// scheduleFigures fills a pair's schedules and what they expected.
func (s *Server) scheduleFigures(c *api.ComponentCompliance, k pairKey, scheds []models.Schedule, from, to time.Time) {
	var interval time.Duration
	var since time.Time
	for _, sc := range scheds {
		iv := scheduleInterval(sc.Frequency)
		if !sc.Enabled || iv == 0 || !contains(sc.Components, k.comp) {
			continue
		}
		fleet := len(sc.Hosts) > 0 || sc.HostSelector != ""
		if (k.host == s.Cfg.Host) == fleet || (fleet && !contains(sc.Hosts, k.host)) {
			continue
		}
		c.Schedules = append(c.Schedules, sc.ID)
		start := laterOf(from, sc.CreatedAt)
		if interval == 0 || iv < interval {
			interval, since = iv, start
		}
	}
	if interval > 0 {
		c.BackupsExpected = ptr(int(to.Sub(since) / interval))
	}
}

// worstGap is the recovery point at its worst in [from, to]: the longest
// age the newest completed backup reached (counted from the first backup
// ever: before it there was nothing to lose yet); nil when there was
// never one. Backups retention removed are no longer in the catalog, so
// a past gap between them reads longer than it was.
func worstGap(times []time.Time, from, to time.Time) *float64 {
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	var cur *time.Time
	worst := 0.0
	for i := range times {
		t := times[i]
		if t.After(to) {
			break
		}
		// before the first backup ever there was nothing to lose yet
		// (the component may not have existed): no gap is counted
		// the age of the recovery point is counted from the last backup,
		// even when that was before the period
		if t.After(from) && cur != nil {
			worst = max(worst, t.Sub(*cur).Seconds())
		}
		cur = &times[i]
	}
	if cur == nil {
		return nil
	}
	worst = max(worst, to.Sub(*cur).Seconds())
	return &worst
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

type drillFigure struct {
	runs, passed int
	last, worst  *float64
}

// drillFigures are the drills' runs in the period by component: how many
// restored it, how many of those passed, its newest and worst RTO; the
// runs in all, and those that passed, go into sum.
func (s *Server) drillFigures(ctx context.Context, from, to time.Time, sum *api.ComplianceSummary) (map[string]*drillFigure, error) {
	runs, err := s.Store.DrillRunsBetween(ctx, from, to)
	if err != nil {
		return nil, err
	}
	out := map[string]*drillFigure{}
	for _, row := range runs {
		var rep api.DrillReport
		if err := json.Unmarshal(row.Body, &rep); err != nil {
			return nil, fmt.Errorf("drill run %s: %w", row.ID, err)
		}
		sum.DrillsRun++
		if rep.Passed {
			sum.DrillsPassed++
		}
		for _, b := range rep.Backups {
			for _, c := range b.Components {
				f := out[c.Component]
				if f == nil {
					f = &drillFigure{}
					out[c.Component] = f
				}
				f.runs++
				if c.Passed && rep.Passed {
					f.passed++
				}
				v := c.RTOSeconds
				f.last = &v
				if f.worst == nil || v > *f.worst {
					f.worst = &v
				}
			}
		}
	}
	return out, nil
}

func (s *Server) encryptionFigures(ctx context.Context, rep *api.ComplianceReport, pol *Policies) error {
	e := &rep.Encryption
	e.Algorithm, e.RotationDays = "AES-256-GCM", pol.Encryption.KeyRotationDays
	if repo, err := s.Stores.Open(ctx, s.Cfg.Primary); err == nil {
		k := repo.KeyEntry()
		e.KeyCreated = ptr(rfc3339(k.Created))
		age := int(time.Since(k.Created).Hours() / 24)
		e.KeyAgeDays = &age
		e.RotationDue = e.RotationDays > 0 && age > e.RotationDays
	}
	return nil
}

// retentionFigures lists what the period's cleanups removed, and why.
func (s *Server) retentionFigures(ctx context.Context, rep *api.ComplianceReport, from, to time.Time) error {
	reports, err := s.Store.ReportsBetween(ctx, string(api.JobCleanup), from, to)
	if err != nil {
		return err
	}
	for _, r := range reports {
		var cr api.CleanupReport
		if json.Unmarshal(r.Body, &cr) != nil || cr.DryRun {
			continue
		}
		removed := map[string]bool{}
		if cr.Outcome != nil {
			for _, ids := range cr.Outcome.Removed {
				for _, id := range ids {
					removed[id] = true
				}
			}
		}
		if len(removed) == 0 {
			continue
		}
		rep.Retention.Cleanups++
		for _, l := range cr.Decisions {
			if removed[l.ID] {
				rep.Retention.Removed = append(rep.Retention.Removed, api.RemovedBackup{BackupID: l.ID, Host: l.Host, Taken: l.Timestamp,
					Reason: l.Reason, CleanupID: r.ID, Removed: rfc3339(r.CreatedAt)})
				delete(removed, l.ID)
			}
		}
		for id := range removed { // a delete: no retention decision
			rep.Retention.Removed = append(rep.Retention.Removed, api.RemovedBackup{BackupID: id, Reason: "deleted on request",
				CleanupID: r.ID, Removed: rfc3339(r.CreatedAt)})
		}
	}
	return nil
}

// auditFigures sums up the period's destructive calls by action (grouped
// by the database: no number of calls can push one out), and who
// approved the ones approvals held.
func (s *Server) auditFigures(ctx context.Context, rep *api.ComplianceReport, from, to time.Time) error {
	groups, err := s.Store.AuditGroups(ctx, destructiveActions, from, to)
	if err != nil {
		return err
	}
	approvers, err := s.Store.Approvers(ctx, from, to)
	if err != nil {
		return err
	}
	by := map[string]*api.AuditActionSummary{}
	for _, g := range groups {
		a := by[g.Action]
		if a == nil {
			a = &api.AuditActionSummary{Action: g.Action, Actors: []string{}, ApprovedBy: []string{}}
			by[g.Action] = a
		}
		a.Calls += g.Calls
		switch g.Outcome {
		case "success":
			a.Succeeded += g.Calls
		case "denied", "failure":
			a.Refused += g.Calls
		}
		actor, _, _ := strings.Cut(g.Actor, " (")
		if actor != "" && !slices.Contains(a.Actors, actor) {
			a.Actors = append(a.Actors, actor)
		}
	}
	for _, name := range destructiveActions {
		a := by[name]
		if a == nil {
			continue
		}
		for _, who := range approvers[name] {
			if !slices.Contains(a.ApprovedBy, who) {
				a.ApprovedBy = append(a.ApprovedBy, who)
			}
		}
		sort.Strings(a.Actors)
		sort.Strings(a.ApprovedBy)
		rep.Audit = append(rep.Audit, *a)
	}
	return nil
}

// secondsWords says a duration for a reader: "3 days 4 h", "2 h 5 min".
func secondsWords(sec float64) string {
	d := time.Duration(sec) * time.Second
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days %d h", int(d.Hours())/24, int(d.Hours())%24)
	case d >= time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%.1f s", sec)
}

// complianceCSV is one row per host and component.
func complianceCSV(w http.ResponseWriter, rep *api.ComplianceReport) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"host", "component", "schedules", "backups_expected", "backups_taken", "completed", "partial", "failed",
		"success_rate", "rpo_objective_seconds", "worst_rpo_seconds", "rpo_breached", "rto_objective_seconds", "drills",
		"drills_passed", "last_rto_seconds", "worst_rto_seconds", "rto_breached", "copies_321", "immutable_copies"})
	fi := func(p *int) string {
		if p == nil {
			return ""
		}
		return strconv.Itoa(*p)
	}
	ff := func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'f', -1, 64)
	}
	for _, c := range rep.Components {
		cw.Write([]string{csvSafe(c.Host), csvSafe(c.Component), strings.Join(c.Schedules, " "), fi(c.BackupsExpected),
			strconv.Itoa(c.BackupsTaken), strconv.Itoa(c.Completed), strconv.Itoa(c.Partial), strconv.Itoa(c.Failed),
			ff(c.SuccessRate), fi(c.RPOObjectiveSeconds), ff(c.WorstRPOSeconds), strconv.FormatBool(c.RPOBreached),
			fi(c.RTOObjectiveSeconds), strconv.Itoa(c.Drills), strconv.Itoa(c.DrillsPassed), ff(c.LastRTOSeconds),
			ff(c.WorstRTOSeconds), strconv.FormatBool(c.RTOBreached), c.Copies321, c.ImmutableCopies})
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe keeps a cell from being read as a formula by a spreadsheet (an
// enrolled host names itself and its components).
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
