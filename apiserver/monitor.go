package apiserver

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"backupd/buildinfo"
	"backupd/models"
	"backupd/workflows"
)

// temporalState says whether Temporal answers and how many workers poll
// this host's task queue (for activities: the ones that do the work).
func (s *Server) temporalState(ctx context.Context) (status string, workers int) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := s.Temporal.CheckHealth(ctx, nil); err != nil {
		return "unreachable", 0
	}
	for _, w := range s.workers(ctx) {
		workers += w.ActivityPollers
	}
	if workers == 0 {
		return "no_workers", 0
	}
	return "running", workers
}

// workerViews are the workers per host for status and health, with this
// process's own worker when it runs one.
func (s *Server) workerViews(ctx context.Context) []map[string]any {
	var out []map[string]any
	for _, w := range s.workers(ctx) {
		v := w.view()
		if s.LocalWorkerState != nil && w.Host == s.Cfg.Host {
			st := s.LocalWorkerState()
			local := map[string]any{"running": st.Running, "since": rfc3339(st.Since), "start_attempts": st.Attempts}
			if st.Error != "" {
				local["error"] = st.Error
			}
			v["in_process"] = local
		}
		out = append(out, v)
	}
	return out
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	sched, workers := s.temporalState(ctx)
	storageOut := map[string]any{}
	healthy := sched == "running"
	quotas := map[string]int64{}
	if pol, err := s.policies(ctx); err == nil {
		for n, lp := range pol.Locations {
			quotas[n] = lp.QuotaBytes
		}
	}
	for _, name := range s.Cfg.LocationNames() {
		d := s.describeLocation(name)
		out := map[string]any{"type": d["storage_type"]}
		for _, k := range []string{"provider", "location", "path", "bucket"} {
			if v, ok := d[k]; ok && v != "" {
				out[k] = v
			}
		}
		c, _, err := s.capacity(ctx, name)
		if err != nil {
			out["health"], out["error"] = "unreachable", err.Error()
			healthy = false
		} else {
			out["used"], out["used_bytes"] = humanSize(c.UsedBytes), c.UsedBytes
			for k, v := range usageFields(s.locationUsage(ctx, name), quotas[name]) {
				out[k] = v
			}
			if c.TotalBytes >= 0 {
				out["total"], out["total_bytes"] = humanSize(c.TotalBytes), c.TotalBytes
				out["available"], out["available_bytes"] = humanSize(c.FreeBytes), c.FreeBytes
			} else {
				out["total"], out["available"] = "unlimited", "unlimited"
			}
			out["health"] = "good"
		}
		storageOut[name] = out
	}
	counts, err := s.Store.StatusCounts(ctx, nil)
	if err != nil {
		return err
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	ok := counts[workflows.StatusCompleted] + counts[workflows.StatusPartial]
	failed := counts[workflows.StatusFailed]
	stats := map[string]any{"total_backups": total, "successful": ok, "failed": failed,
		"partial": counts[workflows.StatusPartial], "in_progress": counts[workflows.StatusInProgress],
		"cancelled": counts[workflows.StatusCancelled], "success_rate": percent(ok, ok+failed),
		"last_success": nil, "last_failure": nil}
	if b, err := s.Store.LastBackupWithStatus(ctx, workflows.StatusCompleted, workflows.StatusPartial); err == nil {
		stats["last_success"] = rfc3339(b.Timestamp)
	}
	if b, err := s.Store.LastBackupWithStatus(ctx, workflows.StatusFailed); err == nil {
		stats["last_failure"] = rfc3339(b.Timestamp)
	}
	repl, _, err := s.replicationState(ctx)
	if err != nil {
		return err
	}
	status := "active"
	if !healthy {
		status = "degraded"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status": status,
		"backup_system": map[string]any{
			"id": "backupd@" + s.Cfg.Host, "version": buildinfo.Version(), "host": s.Cfg.Host,
			"last_health_check": rfc3339(time.Now()), "uptime_seconds": math.Round(time.Since(s.started).Seconds()),
			"components": map[string]any{"scheduler": sched, "workers": workers, "compression": "enabled",
				"encryption": "enabled", "integrity_check": "enabled", "catalog": s.Store.Driver},
			"temporal_ui_url": s.Cfg.Temporal.UIURL, "task_queue": s.Cfg.Temporal.TaskQueue,
			"workers": s.workerViews(ctx),
		},
		"storage":           storageOut,
		"backup_statistics": stats,
		"replication":       repl,
	})
	return nil
}

// successRate over backups started since.
func (s *Server) successRate(ctx context.Context, since time.Time) (string, int64, int64, error) {
	c, err := s.Store.StatusCounts(ctx, &since)
	if err != nil {
		return "", 0, 0, err
	}
	ok := c[workflows.StatusCompleted] + c[workflows.StatusPartial]
	return percent(ok, ok+c[workflows.StatusFailed]), ok, c[workflows.StatusFailed], nil
}

func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	pol, err := s.policies(ctx)
	if err != nil {
		return err
	}
	var alerts []map[string]any
	var recs []string
	overall := 0 // 0 healthy, 1 degraded, 2 critical
	worse := func(l int) {
		if l > overall {
			overall = l
		}
	}
	comps := map[string]any{}
	sched, workers := s.temporalState(ctx)
	sc := map[string]any{"status": sched, "workers": workers, "errors": 0, "last_run": nil, "next_run": nil,
		"worker_hosts": s.workerViews(ctx)}
	if last, err := s.Store.LastBackupWithStatus(ctx, workflows.StatusCompleted, workflows.StatusPartial, workflows.StatusFailed); err == nil {
		sc["last_run"] = rfc3339(last.Timestamp)
	}
	if next := s.nextScheduledRun(ctx); next != nil {
		sc["next_run"] = rfc3339(*next)
	}
	if sched != "running" {
		worse(2)
		msg, hint := "Temporal is "+sched+": no backup job can run", "Start a worker (backupd worker) and check Temporal at "+s.Cfg.Temporal.Address
		if sched == "no_workers" {
			msg = "No worker polls task queue " + s.Cfg.Temporal.TaskQueue + " (host " + s.Cfg.Host + "): jobs for this host wait"
		}
		if s.LocalWorkerState != nil {
			if st := s.LocalWorkerState(); !st.Running && st.Error != "" {
				msg += "; this process's worker cannot start (" + st.Error + ")"
				hint = "Fix the cause named in the message; the worker retries on its own"
			}
		}
		alerts = append(alerts, map[string]any{"level": "critical", "component": "scheduler", "message": msg, "suggestion": hint})
	}
	comps["scheduler"] = sc
	cv, level := s.reconcileView()
	comps["catalog"] = cv
	if level > 0 {
		worse(level)
		msg := "The catalog and storage disagree"
		if m, ok := cv["missing"].(map[string][]string); ok && len(m) > 0 {
			msg = sprintf("%d backup(s) in the catalog have no manifest in a location the catalog lists", len(m))
		} else if e, ok := cv["error"].(string); ok {
			msg = "Catalog reconciliation failed: " + e
		}
		alerts = append(alerts, map[string]any{"level": "warning", "component": "catalog", "message": msg,
			"suggestion": "See components.catalog; repair from another copy (POST /backup/repair) or delete the entries, or run 'backupd catalog rebuild'"})
	}
	for _, name := range s.Cfg.LocationNames() {
		c, at, err := s.capacity(ctx, name)
		st := map[string]any{"status": "healthy", "last_check": rfc3339(at), "connectivity": "good"}
		if err != nil {
			st["status"], st["connectivity"], st["error"] = "unreachable", "failed", err.Error()
			worse(2)
			alerts = append(alerts, map[string]any{"level": "critical", "component": "storage_" + name,
				"message": "Storage location " + name + " cannot be reached: " + err.Error(), "suggestion": "Check the location's address and credentials"})
		} else {
			_, _, util, known := usage(s.locationUsage(ctx, name), pol.Locations[name].QuotaBytes)
			if known {
				st["utilization"] = fmt.Sprintf("%.0f%%", util)
				st["available_space"] = humanSize(max(c.FreeBytes, 0))
				st["available_space_bytes"] = c.FreeBytes
				level := ""
				switch {
				case util >= float64(pol.Monitoring.ThresholdCritical):
					level = "critical"
					worse(2)
				case util >= float64(pol.Monitoring.ThresholdWarning):
					level = "warning"
					worse(1)
				}
				if level != "" {
					st["status"] = level
					alerts = append(alerts, map[string]any{"level": level, "component": "storage_" + name,
						"message":    fmt.Sprintf("Storage %s utilization at %.0f%%", name, util),
						"suggestion": "Run cleanup or increase the quota"})
				}
			} else {
				st["utilization"] = "n/a (no quota set)"
				st["available_space"] = "unlimited"
			}
			st["used_bytes"] = c.UsedBytes
			for k, v := range usageFields(s.locationUsage(ctx, name), pol.Locations[name].QuotaBytes) {
				st[k] = v
			}
		}
		comps["storage_"+name] = st
	}
	keyStatus, lastRotation := "unknown", any(nil)
	if repo, err := s.Stores.Open(ctx, s.Cfg.Primary); err == nil {
		k := repo.KeyEntry()
		lastRotation = rfc3339(k.Created)
		age := time.Since(k.Created)
		keyStatus = "valid"
		if age > time.Duration(pol.Encryption.KeyRotationDays)*24*time.Hour {
			keyStatus = "rotation_due"
			worse(1)
			alerts = append(alerts, map[string]any{"level": "warning", "component": "encryption",
				"message":    fmt.Sprintf("The key entry is %d days old; the policy rotates every %d days", int(age.Hours()/24), pol.Encryption.KeyRotationDays),
				"suggestion": "Rotate the key: backupd repo key rotate"})
			recs = append(recs, "Rotate the repository key (the policy says every "+strconv.Itoa(pol.Encryption.KeyRotationDays)+" days)")
		}
	} else {
		keyStatus = "unavailable"
		worse(2)
	}
	comps["encryption"] = map[string]any{"status": map[bool]string{true: "healthy", false: "warning"}[keyStatus == "valid"],
		"algorithm": "AES-256", "key_status": keyStatus, "last_key_rotation": lastRotation}
	tot, err := s.Store.BackupTotals(ctx, models.BackupFilter{Status: workflows.StatusCompleted})
	if err != nil {
		return err
	}
	ratio, _ := sizeRatios(tot.SizeBytes, tot.CompressedBytes, tot.AddedBytes)
	comps["compression"] = map[string]any{"status": "healthy", "algorithm": pol.Compression.DefaultAlgorithm, "average_ratio": ratio}
	now := time.Now()
	bh := map[string]any{"last_failure": nil, "failure_reason": nil}
	for _, p := range []struct {
		key string
		d   time.Duration
	}{{"success_rate_24h", 24 * time.Hour}, {"success_rate_7d", 7 * 24 * time.Hour}, {"success_rate_30d", 30 * 24 * time.Hour}} {
		rate, _, failed, err := s.successRate(ctx, now.Add(-p.d))
		if err != nil {
			return err
		}
		bh[p.key] = rate
		if p.key == "success_rate_24h" && failed > 0 {
			worse(1)
			alerts = append(alerts, map[string]any{"level": "warning", "component": "backups",
				"message": fmt.Sprintf("%d backups failed in the last 24 hours", failed), "suggestion": "Read the failed jobs' errors (GET /backup/jobs?status=failed)"})
		}
	}
	if b, err := s.Store.LastBackupWithStatus(ctx, workflows.StatusFailed); err == nil {
		bh["last_failure"], bh["failure_reason"] = rfc3339(b.Timestamp), b.Error
	}
	// recommendations from the state
	if last, err := s.Store.LastBackupWithStatus(ctx, workflows.StatusCompleted, workflows.StatusPartial); err != nil {
		recs = append(recs, "Take a first backup (POST /backup/create)")
		worse(1)
	} else if time.Since(last.Timestamp) > 48*time.Hour {
		recs = append(recs, fmt.Sprintf("The last successful backup is %d hours old: check the schedules", int(time.Since(last.Timestamp).Hours())))
		worse(1)
	}
	if scheds, err := s.Store.ListSchedules(ctx); err == nil && len(scheds) == 0 {
		recs = append(recs, "Create a backup schedule (POST /backup/schedules)")
	}
	if unverified, err := s.Store.BackupTotals(ctx, models.BackupFilter{Status: workflows.StatusCompleted}); err == nil && unverified.Total > 0 {
		if last, err := s.Store.LatestReport(ctx, "verify"); err != nil || time.Since(last.CreatedAt) > 30*24*time.Hour {
			recs = append(recs, "Verify a backup with verify_checksum and extract_test: none was verified in the last 30 days")
		}
	}
	if len(s.Cfg.Storage) < 3 || !pol.Replication.Enabled {
		recs = append(recs, "Configure three storage locations with replication on, one offsite (3-2-1)")
	}
	repl, short, err := s.replicationState(ctx)
	if err != nil {
		return err
	}
	if len(short) > 0 {
		worse(1)
		alerts = append(alerts, map[string]any{"level": "warning", "component": "replication",
			"message":    fmt.Sprintf("%d backups fall short of the %s policy (e.g. %s: %s)", len(short), pol.Replication.Strategy, short[0].BackupID, strings.Join(short[0].Reasons, ", ")),
			"suggestion": "Repair them: POST /cloud-integration/backup/repair"})
		recs = append(recs, fmt.Sprintf("Repair %d backups that miss copies (POST /backup/repair)", len(short)))
	}
	comps["replication"] = repl
	if alerts == nil {
		alerts = []map[string]any{}
	}
	if recs == nil {
		recs = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"overall_health": []string{"healthy", "degraded", "critical"}[overall],
		"components":     comps, "backup_health": bh, "alerts": alerts, "recommendations": recs,
		"checked_at": rfc3339(now),
	})
	return nil
}

var periods = map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour,
	"90d": 90 * 24 * time.Hour, "1y": 365 * 24 * time.Hour}

// periodNames are the periods' names, shortest first.
func periodNames() []string {
	names := make([]string, 0, len(periods))
	for n := range periods {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return periods[names[i]] < periods[names[j]] })
	return names
}

// groupBys are the groupings of /backup/statistics.
var groupBys = []string{"type", "component", "schedule"}

type agg struct {
	n, ok, failed   int64
	size, comp      int64
	added           int64
	dur             float64
	sizeN           int64
	componentsBytes int64
}

func (a *agg) add(b *models.Backup) {
	a.n++
	switch b.Status {
	case workflows.StatusCompleted, workflows.StatusPartial:
		a.ok++
		a.size += b.SizeBytes
		a.comp += b.CompressedBytes
		a.added += b.AddedBytes
		a.dur += b.DurationSeconds
		a.sizeN++
	case workflows.StatusFailed:
		a.failed++
	}
}

func (a *agg) avgSize() int64 {
	if a.sizeN == 0 {
		return 0
	}
	return a.size / a.sizeN
}

func (a *agg) avgDur() time.Duration {
	if a.sizeN == 0 {
		return 0
	}
	return time.Duration(a.dur / float64(a.sizeN) * float64(time.Second))
}

// trend compares the second half of the period with the first: a
// change of more than 10% (success rate: 2 points) and more than floor
// (what rounding hides: a second, a kilobyte) is increasing or
// decreasing, else stable; a half without backups says so.
func trend(first, second *agg, value func(*agg) float64, points bool, floor float64) string {
	if first.sizeN+first.failed == 0 || second.sizeN+second.failed == 0 {
		return "insufficient_data"
	}
	a, b := value(first), value(second)
	if points {
		switch {
		case b-a > 2:
			return "increasing"
		case a-b > 2:
			return "decreasing"
		}
		return "stable"
	}
	if math.Abs(b-a) <= floor {
		return "stable"
	}
	if a == 0 {
		return "increasing"
	}
	switch ch := (b - a) / a; {
	case ch > 0.10:
		return "increasing"
	case ch < -0.10:
		return "decreasing"
	}
	return "stable"
}

func (s *Server) getStatistics(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "period", "group_by"); err != nil {
		return err
	}
	period := q.Get("period")
	if period == "" {
		period = "30d"
	}
	d, ok := periods[period]
	if !ok {
		return badRequest("period", "period: %q is not one of 24h, 7d, 30d, 90d, 1y", period)
	}
	groupBy := q.Get("group_by")
	if groupBy != "" {
		if err := oneOf("group_by", groupBy, groupBys...); err != nil {
			return err
		}
	}
	to := time.Now().UTC()
	from := to.Add(-d)
	rows, err := s.Store.BackupsBetween(r.Context(), from, to, 200000)
	if err != nil {
		return err
	}
	var all, firstHalf, secondHalf agg
	byType, bySched := map[string]*agg{}, map[string]*agg{}
	byComp := map[string]*agg{}
	mid := from.Add(d / 2)
	for i := range rows {
		b := &rows[i]
		all.add(b)
		if b.Timestamp.Before(mid) {
			firstHalf.add(b)
		} else {
			secondHalf.add(b)
		}
		get := func(m map[string]*agg, k string) *agg {
			if m[k] == nil {
				m[k] = &agg{}
			}
			return m[k]
		}
		get(byType, b.Type).add(b)
		if b.ScheduleID != "" {
			get(bySched, b.ScheduleID).add(b)
		}
		for _, c := range b.Components {
			a := get(byComp, c)
			a.n++
			a.componentsBytes += b.ComponentSizes[c]
		}
	}
	rate := func(a *agg) string { return percent(a.ok, a.ok+a.failed) }
	ratio, dedup := sizeRatios(all.size, all.comp, all.added)
	out := map[string]any{
		"period":     period,
		"time_range": map[string]any{"from": rfc3339(from), "to": rfc3339(to)},
		"summary": map[string]any{"total_backups": all.n, "successful": all.ok, "failed": all.failed,
			"success_rate": rate(&all), "total_size": humanSize(all.size), "total_size_bytes": all.size,
			"compressed_size": humanSize(all.comp), "compressed_size_bytes": all.comp,
			"average_compression_ratio": ratio, "deduplication_ratio": dedup,
			"added_size": humanSize(all.added), "added_size_bytes": all.added,
			"total_duration": humanDuration(time.Duration(all.dur * float64(time.Second))), "total_duration_seconds": math.Round(all.dur),
			"average_duration": humanDuration(all.avgDur()), "average_duration_seconds": math.Round(all.avgDur().Seconds())},
	}
	bt := map[string]any{}
	for _, k := range sortedKeys(byType) {
		a := byType[k]
		bt[k] = map[string]any{"count": a.n, "success_rate": rate(a), "average_size": humanSize(a.avgSize()),
			"average_size_bytes": a.avgSize(), "average_duration": humanDuration(a.avgDur()), "average_duration_seconds": math.Round(a.avgDur().Seconds())}
	}
	bc := map[string]any{}
	for _, k := range sortedKeys(byComp) {
		a := byComp[k]
		avg := int64(0)
		if a.n > 0 {
			avg = a.componentsBytes / a.n
		}
		bc[k] = map[string]any{"backups_included": a.n, "average_size": humanSize(avg), "average_size_bytes": avg}
	}
	bs := map[string]any{}
	for _, k := range sortedKeys(bySched) {
		a := bySched[k]
		bs[k] = map[string]any{"executions": a.n, "success_rate": rate(a), "average_size": humanSize(a.avgSize()), "average_size_bytes": a.avgSize()}
	}
	switch groupBy {
	case "type":
		out["by_type"] = bt
	case "component":
		out["by_component"] = bc
	case "schedule":
		out["by_schedule"] = bs
	default:
		out["by_type"], out["by_component"], out["by_schedule"] = bt, bc, bs
	}
	rateNum := func(a *agg) float64 {
		if a.ok+a.failed == 0 {
			return 100
		}
		return 100 * float64(a.ok) / float64(a.ok+a.failed)
	}
	out["trends"] = map[string]any{
		"success_rate":  trend(&firstHalf, &secondHalf, rateNum, true, 0),
		"backup_size":   trend(&firstHalf, &secondHalf, func(a *agg) float64 { return float64(a.avgSize()) }, false, 1024),
		"duration":      trend(&firstHalf, &secondHalf, func(a *agg) float64 { return a.avgDur().Seconds() }, false, 1),
		"storage_usage": trend(&firstHalf, &secondHalf, func(a *agg) float64 { return float64(a.added) }, false, 1024),
		"rule": "second half of the period against the first: more than +10% (and more than 1 s or 1 KiB) increasing, more than -10% decreasing " +
			"(success rate: 2 points), else stable; insufficient_data when a half has no backups. storage_usage is the bytes the backups added",
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
