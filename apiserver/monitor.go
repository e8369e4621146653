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

	"backupd/api"
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
func (s *Server) workerViews(ctx context.Context) []api.WorkerView {
	var out []api.WorkerView
	for _, w := range s.workers(ctx) {
		v := w.view()
		if s.LocalWorkerState != nil && w.Host == s.Cfg.Host {
			st := s.LocalWorkerState()
			v.InProcess = &api.InProcessWorker{Running: st.Running, Since: rfc3339(st.Since), StartAttempts: st.Attempts, Error: st.Error}
		}
		out = append(out, v)
	}
	return out
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	sched, workers := s.temporalState(ctx)
	storageOut := map[string]api.StatusLocation{}
	healthy := sched == "running"
	quotas := map[string]int64{}
	if pol, err := s.policies(ctx); err == nil {
		for n, lp := range pol.Locations {
			quotas[n] = lp.QuotaBytes
		}
	}
	for _, name := range s.Cfg.LocationNames() {
		d := s.describeLocation(name)
		out := api.StatusLocation{Type: d.StorageType, Path: deref(d.Path)}
		if d.S3Address != nil {
			out.Provider, out.Bucket = d.Provider, d.Bucket
		}
		if d.SFTPAddress != nil {
			out.Location = d.Location
		}
		c, _, err := s.capacity(ctx, name)
		if err != nil {
			out.Health, out.Error = "unreachable", err.Error()
			healthy = false
		} else {
			sp := api.Space{Used: humanSize(c.UsedBytes), UsedBytes: c.UsedBytes}
			if c.TotalBytes >= 0 {
				sp.Total, sp.TotalBytes = humanSize(c.TotalBytes), ptr(c.TotalBytes)
				sp.Available, sp.AvailableBytes = humanSize(c.FreeBytes), ptr(c.FreeBytes)
			} else {
				sp.Total, sp.Available = "unlimited", "unlimited"
			}
			out.StatusSpace = &api.StatusSpace{Space: sp, UsageFigures: usageFields(s.locationUsage(ctx, name), quotas[name])}
			out.Health = "good"
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
	stats := api.BackupCounts{TotalBackups: total, Successful: ok, Failed: failed,
		Partial: counts[workflows.StatusPartial], InProgress: counts[workflows.StatusInProgress],
		Cancelled: counts[workflows.StatusCancelled], SuccessRate: percent(ok, ok+failed)}
	own := s.ownHosts(ctx)
	if b, err := s.Store.LastBackupWithStatus(ctx, own, workflows.StatusCompleted, workflows.StatusPartial); err == nil {
		stats.LastSuccess = ptr(rfc3339(b.Timestamp))
	}
	if b, err := s.Store.LastBackupWithStatus(ctx, own, workflows.StatusFailed); err == nil {
		stats.LastFailure = ptr(rfc3339(b.Timestamp))
	}
	repl, _, err := s.replicationState(ctx)
	if err != nil {
		return err
	}
	status := "active"
	if !healthy {
		status = "degraded"
	}
	writeJSON(w, http.StatusOK, api.SystemStatus{
		Status: status,
		BackupSystem: api.BackupSystem{
			ID: "backupd@" + s.Cfg.Host, Version: buildinfo.Version(), Host: s.Cfg.Host,
			LastHealthCheck: rfc3339(time.Now()), UptimeSeconds: math.Round(time.Since(s.started).Seconds()),
			Components: api.SystemComponents{Scheduler: sched, Workers: workers, Compression: "enabled",
				Encryption: "enabled", IntegrityCheck: "enabled", Catalog: s.Store.Driver},
			TemporalUIURL: s.Cfg.Temporal.UIURL, TaskQueue: s.Cfg.Temporal.TaskQueue,
			Workers: s.workerViews(ctx),
		},
		Storage:          storageOut,
		BackupStatistics: stats,
		Replication:      repl,
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
	alerts := []api.HealthAlert{}
	recs := []string{}
	overall := 0 // an index into api.HealthLevels: healthy, degraded, critical
	worse := func(l int) {
		if l > overall {
			overall = l
		}
	}
	alert := func(level, component, msg, suggestion string) {
		alerts = append(alerts, api.HealthAlert{Level: level, Component: component, Message: msg, Suggestion: suggestion})
	}
	comps := api.HealthComponents{Storage: map[string]api.StorageHealth{}}
	sched, workers := s.temporalState(ctx)
	sc := api.SchedulerHealth{Status: sched, Workers: workers, WorkerHosts: s.workerViews(ctx)}
	if last, err := s.Store.LastBackupWithStatus(ctx, s.ownHosts(ctx), workflows.StatusCompleted, workflows.StatusPartial, workflows.StatusFailed); err == nil {
		sc.LastRun = ptr(rfc3339(last.Timestamp))
	}
	if next := s.nextScheduledRun(ctx); next != nil {
		sc.NextRun = ptr(rfc3339(*next))
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
		alert("critical", "scheduler", msg, hint)
	}
	comps.Scheduler = sc
	cv, level := s.reconcileView()
	comps.Catalog = cv
	if level > 0 {
		worse(level)
		msg := "The catalog and storage disagree"
		if cv.CatalogRun != nil && len(cv.Missing) > 0 {
			msg = sprintf("%d backup(s) in the catalog have no manifest in a location the catalog lists", len(cv.Missing))
		} else if cv.Error != "" {
			msg = "Catalog reconciliation failed: " + cv.Error
		}
		alert("warning", "catalog", msg,
			"See components.catalog; repair from another copy (POST /backup/repair) or delete the entries, or run 'backupd catalog rebuild'")
	}
	for _, name := range s.Cfg.LocationNames() {
		c, at, err := s.capacity(ctx, name)
		st := api.StorageHealth{Status: "healthy", LastCheck: rfc3339(at), Connectivity: "good"}
		if err != nil {
			st.Status, st.Connectivity, st.Error = "unreachable", "failed", err.Error()
			worse(2)
			alert("critical", "storage_"+name, "Storage location "+name+" cannot be reached: "+err.Error(), "Check the location's address and credentials")
		} else {
			sp := &api.StorageHealthSpace{}
			_, _, util, known := usage(s.locationUsage(ctx, name), pol.Locations[name].QuotaBytes)
			if known {
				sp.Utilization = fmt.Sprintf("%.0f%%", util)
				sp.AvailableSpace = humanSize(max(c.FreeBytes, 0))
				sp.AvailableSpaceBytes = ptr(c.FreeBytes)
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
					st.Status = level
					alert(level, "storage_"+name, fmt.Sprintf("Storage %s utilization at %.0f%%", name, util), "Run cleanup or increase the quota")
				}
			} else {
				sp.Utilization = "n/a (no quota set)"
				sp.AvailableSpace = "unlimited"
			}
			sp.UsedBytes = c.UsedBytes
			sp.UsageFigures = usageFields(s.locationUsage(ctx, name), pol.Locations[name].QuotaBytes)
			st.StorageHealthSpace = sp
		}
		comps.Storage["storage_"+name] = st
	}
	keyStatus, lastRotation := "unknown", (*string)(nil)
	if repo, err := s.Stores.Open(ctx, s.Cfg.Primary); err == nil {
		k := repo.KeyEntry()
		lastRotation = ptr(rfc3339(k.Created))
		age := time.Since(k.Created)
		keyStatus = "valid"
		if age > time.Duration(pol.Encryption.KeyRotationDays)*24*time.Hour {
			keyStatus = "rotation_due"
			worse(1)
			alert("warning", "encryption",
				fmt.Sprintf("The key entry is %d days old; the policy rotates every %d days", int(age.Hours()/24), pol.Encryption.KeyRotationDays),
				"Rotate the key: backupd repo key rotate")
			recs = append(recs, "Rotate the repository key (the policy says every "+strconv.Itoa(pol.Encryption.KeyRotationDays)+" days)")
		}
	} else {
		keyStatus = "unavailable"
		worse(2)
	}
	comps.Encryption = api.EncryptionHealth{Status: map[bool]string{true: "healthy", false: "warning"}[keyStatus == "valid"],
		Algorithm: "AES-256", KeyStatus: keyStatus, LastKeyRotation: lastRotation}
	tot, err := s.Store.BackupTotals(ctx, models.BackupFilter{Status: workflows.StatusCompleted})
	if err != nil {
		return err
	}
	ratio, _ := sizeRatios(tot.SizeBytes, tot.CompressedBytes, tot.AddedBytes)
	comps.Compression = api.CompressionHealth{Status: "healthy", Algorithm: pol.Compression.DefaultAlgorithm, AverageRatio: ratio}
	now := time.Now()
	var bh api.BackupHealth
	for i, p := range []struct {
		rate *string
		d    time.Duration
	}{{&bh.SuccessRate24h, 24 * time.Hour}, {&bh.SuccessRate7d, 7 * 24 * time.Hour}, {&bh.SuccessRate30d, 30 * 24 * time.Hour}} {
		rate, _, failed, err := s.successRate(ctx, now.Add(-p.d))
		if err != nil {
			return err
		}
		*p.rate = rate
		if i == 0 && failed > 0 { // the last 24 hours
			worse(1)
			alert("warning", "backups", fmt.Sprintf("%d backups failed in the last 24 hours", failed), "Read the failed jobs' errors (GET /backup/jobs?status=failed)")
		}
	}
	own := s.ownHosts(ctx)
	if b, err := s.Store.LastBackupWithStatus(ctx, own, workflows.StatusFailed); err == nil {
		bh.LastFailure, bh.FailureReason = ptr(rfc3339(b.Timestamp)), ptr(b.Error)
	}
	// recommendations from the state
	if last, err := s.Store.LastBackupWithStatus(ctx, own, workflows.StatusCompleted, workflows.StatusPartial); err != nil {
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
		if last, err := s.Store.LatestReport(ctx, api.JobVerify); err != nil || time.Since(last.CreatedAt) > 30*24*time.Hour {
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
		alert("warning", "replication",
			fmt.Sprintf("%d backups fall short of the %s policy (e.g. %s: %s)", len(short), pol.Replication.Strategy, short[0].BackupID, strings.Join(short[0].Reasons, ", ")),
			"Repair them: POST /cloud-integration/backup/repair")
		recs = append(recs, fmt.Sprintf("Repair %d backups that miss copies (POST /backup/repair)", len(short)))
	}
	comps.Replication = repl
	writeJSON(w, http.StatusOK, api.Health{
		OverallHealth: api.HealthLevels[overall],
		Components:    comps, BackupHealth: bh, Alerts: alerts, Recommendations: recs,
		CheckedAt: rfc3339(now),
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
	if err := onlyParams(q, "period", "group_by", "host"); err != nil {
		return err
	}
	var hostOK func(*models.Backup) bool
	if hq := q.Get("host"); hq != "" {
		local, name, err := s.hostFilter(r.Context(), hq)
		if err != nil {
			return err
		}
		hostOK = func(b *models.Backup) bool { return b.Host == name || (local && b.Host == "") }
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
		if hostOK != nil && !hostOK(b) {
			continue
		}
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
	out := api.Statistics{
		Period:    period,
		TimeRange: api.TimeRange{From: rfc3339(from), To: rfc3339(to)},
		Summary: api.StatisticsSummary{TotalBackups: all.n, Successful: all.ok, Failed: all.failed,
			SuccessRate: rate(&all), TotalSize: humanSize(all.size), TotalSizeBytes: all.size,
			CompressedSize: humanSize(all.comp), CompressedSizeBytes: all.comp,
			AverageCompressionRatio: ratio, DeduplicationRatio: dedup,
			AddedSize: humanSize(all.added), AddedSizeBytes: all.added,
			TotalDuration: humanDuration(time.Duration(all.dur * float64(time.Second))), TotalDurationSeconds: math.Round(all.dur),
			AverageDuration: humanDuration(all.avgDur()), AverageDurationSeconds: math.Round(all.avgDur().Seconds())},
	}
	bt := map[string]api.TypeStatistics{}
	for k, a := range byType {
		bt[k] = api.TypeStatistics{Count: a.n, SuccessRate: rate(a), AverageSize: humanSize(a.avgSize()),
			AverageSizeBytes: a.avgSize(), AverageDuration: humanDuration(a.avgDur()), AverageDurationSeconds: math.Round(a.avgDur().Seconds())}
	}
	bc := map[string]api.ComponentStatistics{}
	for k, a := range byComp {
		avg := int64(0)
		if a.n > 0 {
			avg = a.componentsBytes / a.n
		}
		bc[k] = api.ComponentStatistics{BackupsIncluded: a.n, AverageSize: humanSize(avg), AverageSizeBytes: avg}
	}
	bs := map[string]api.ScheduleStatistics{}
	for k, a := range bySched {
		bs[k] = api.ScheduleStatistics{Executions: a.n, SuccessRate: rate(a), AverageSize: humanSize(a.avgSize()), AverageSizeBytes: a.avgSize()}
	}
	switch groupBy {
	case "type":
		out.ByType = bt
	case "component":
		out.ByComponent = bc
	case "schedule":
		out.BySchedule = bs
	default:
		out.ByType, out.ByComponent, out.BySchedule = bt, bc, bs
	}
	rateNum := func(a *agg) float64 {
		if a.ok+a.failed == 0 {
			return 100
		}
		return 100 * float64(a.ok) / float64(a.ok+a.failed)
	}
	out.Trends = api.Trends{
		SuccessRate:  trend(&firstHalf, &secondHalf, rateNum, true, 0),
		BackupSize:   trend(&firstHalf, &secondHalf, func(a *agg) float64 { return float64(a.avgSize()) }, false, 1024),
		Duration:     trend(&firstHalf, &secondHalf, func(a *agg) float64 { return a.avgDur().Seconds() }, false, 1),
		StorageUsage: trend(&firstHalf, &secondHalf, func(a *agg) float64 { return float64(a.added) }, false, 1024),
		Rule: "second half of the period against the first: more than +10% (and more than 1 s or 1 KiB) increasing, more than -10% decreasing " +
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

// ptr is a pointer to v: an answer's field that is present (or not null)
// even at its zero value.
func ptr[T any](v T) *T { return &v }

// deref is the string p points to, or "".
func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
