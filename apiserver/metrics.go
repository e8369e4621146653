package apiserver

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"backupd/activities"
	"backupd/api"
	"backupd/models"
	"backupd/repository"
	"backupd/workflows"
)

// Metrics is what GET /metrics serves, in one Prometheus registry:
// counters and histograms moved as jobs are recorded and requests
// answered, the figures the server already computes for status, health
// and storage (read from the catalog, the locations and Temporal when a
// scrape asks), the Temporal SDK's own metrics (TemporalHandler) and the
// Go runtime's.
//
// Labels are bounded: job type, outcome, schedule id, component and
// location names (all from the configuration or the schedules), a route's
// template, never a backup, job or request id.
type Metrics struct {
	Registry *prometheus.Registry

	jobsStarted  *prometheus.CounterVec
	jobsFinished *prometheus.CounterVec
	jobDuration  *prometheus.HistogramVec
	backupBytes  map[string]*prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	temporal     *temporalMetrics
	handler      http.Handler

	// counted remembers which phase of a job was counted: a catalog
	// activity that is retried after writing reports the same record
	// again, and must not count twice
	mu      sync.Mutex
	counted map[string]string
	order   []string

	// catalog keeps the figures read from the whole catalog until it
	// changes (every write through this server's Store) or a minute
	// passes (writers in other processes): scrapes come every few seconds
	catalogMu  sync.Mutex
	catalogGen int64
	catalogAt  time.Time
	catalog    []prometheus.Metric
}

// catalogTTL bounds how long catalog figures are reused when this server
// wrote nothing (another process may have).
const catalogTTL = time.Minute

// countedJobs is how many job ids the de-duplication remembers.
const countedJobs = 10000

// Backup byte counters, each from the backup's manifest statistics
// (repository.Stats): source/compressed is the compression ratio,
// compressed/stored what deduplication saved.
var backupByteMetrics = []struct{ name, help string }{
	{"backupd_backup_read_bytes_total", "Content bytes read from the sources by finished backups (incrementals skip unchanged files)."},
	{"backupd_backup_source_bytes_total", "Content bytes the finished backups hold."},
	{"backupd_backup_compressed_bytes_total", "What the content of finished backups takes in storage, compressed and encrypted, before deduplication."},
	{"backupd_backup_added_bytes_total", "New content finished backups added to the repository (plaintext, after deduplication, trees apart: at most the source bytes)."},
	{"backupd_backup_stored_bytes_total", "Bytes finished backups wrote to storage: their new blobs, trees included, compressed and encrypted."},
	{"backupd_backup_deduplicated_bytes_total", "Stored bytes deduplication saved finished backups (compressed - stored, never below 0)."},
	{"backupd_backup_compression_saved_bytes_total", "Bytes compression saved on the content of finished backups, before deduplication (source - compressed, never below 0)."},
}

// NewMetrics builds the registry with the server's own collectors; the
// catalog's and the server's scrape-time figures are added by New.
func NewMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), counted: map[string]string{}, backupBytes: map[string]*prometheus.CounterVec{}}
	m.jobsStarted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backupd_jobs_started_total",
		Help: "Jobs started, by type, schedule (empty: not scheduled) and component (a backup of two components counts once in each; other jobs have none)."},
		[]string{"type", "schedule", "component"})
	m.jobsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backupd_jobs_finished_total",
		Help: "Jobs finished, by type, schedule, component and outcome (succeeded, partial, failed, cancelled)."},
		[]string{"type", "schedule", "component", "outcome"})
	m.jobDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "backupd_job_duration_seconds",
		Help:    "Duration of finished jobs, from start to end, by type and outcome.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 24 * 3600}},
		[]string{"type", "outcome"})
	for _, b := range backupByteMetrics {
		m.backupBytes[b.name] = prometheus.NewCounterVec(prometheus.CounterOpts{Name: b.name, Help: b.help + " By schedule (empty: manual)."}, []string{"schedule"})
		m.Registry.MustRegister(m.backupBytes[b.name])
	}
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "backupd_http_request_duration_seconds",
		Help:    "API request latency by method, route template (below the /cloud-integration prefixes) and status code.",
		Buckets: prometheus.DefBuckets}, []string{"method", "route", "status"})
	m.temporal = newTemporalMetrics()
	m.Registry.MustRegister(m.jobsStarted, m.jobsFinished, m.jobDuration, m.httpDuration, m.temporal,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// Handler serves the registry in the Prometheus text format. Figures
// that cannot be read (the catalog down) are left out, not a failed
// scrape: the rest still arrives (a location that cannot be reached is
// backupd_storage_up 0).
func (m *Metrics) Handler() http.Handler { return m.handler }

// outcomes maps a finished job's catalog status to the metrics' word.
var outcomes = map[string]string{workflows.StatusCompleted: "succeeded", workflows.StatusPartial: "partial",
	workflows.StatusFailed: "failed", workflows.StatusCancelled: "cancelled", workflows.StatusMissed: "missed"}

// jobRecorded counts a job's start or end, once each.
func (m *Metrics) jobRecorded(rec activities.JobRecord) {
	phase := "started"
	if rec.Finished != nil {
		phase = "finished"
	}
	if !m.firstTime(rec.JobID, phase) {
		return
	}
	comps := []string{""}
	if rec.Backup != nil && len(rec.Backup.Components) > 0 {
		comps = rec.Backup.Components
	}
	if rec.Finished == nil {
		for _, c := range comps {
			m.jobsStarted.WithLabelValues(string(rec.Type), rec.ScheduleID, c).Inc()
		}
		return
	}
	outcome := outcomes[rec.Status]
	if outcome == "" {
		outcome = rec.Status
	}
	for _, c := range comps {
		m.jobsFinished.WithLabelValues(string(rec.Type), rec.ScheduleID, c, outcome).Inc()
	}
	if !rec.Started.IsZero() {
		m.jobDuration.WithLabelValues(string(rec.Type), outcome).Observe(max(rec.Finished.Sub(rec.Started).Seconds(), 0))
	}
	if rec.Type != api.JobBackup || len(rec.Result) == 0 {
		return
	}
	var out struct {
		Summary struct {
			Stats repository.Stats `json:"stats"`
		} `json:"summary"`
	}
	if json.Unmarshal(rec.Result, &out) != nil {
		return
	}
	st := out.Summary.Stats
	add := func(name string, v int64) {
		m.backupBytes[name].WithLabelValues(rec.ScheduleID).Add(float64(max(v, 0)))
	}
	add("backupd_backup_read_bytes_total", st.BytesRead)
	add("backupd_backup_source_bytes_total", st.Bytes)
	add("backupd_backup_added_bytes_total", st.DataAdded)
	add("backupd_backup_stored_bytes_total", st.StoredAdded)
	if st.StoredBytes > 0 { // 0: a manifest written before it was measured
		add("backupd_backup_compressed_bytes_total", st.StoredBytes)
		add("backupd_backup_deduplicated_bytes_total", st.StoredBytes-st.StoredAdded)
		add("backupd_backup_compression_saved_bytes_total", st.Bytes-st.StoredBytes)
	}
}

// firstTime says whether a job's phase is counted now; it remembers the
// last countedJobs jobs.
func (m *Metrics) firstTime(jobID, phase string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, known := m.counted[jobID]
	if prev == phase || prev == "finished" {
		return false
	}
	m.counted[jobID] = phase
	if !known {
		m.order = append(m.order, jobID)
		if len(m.order) > countedJobs {
			delete(m.counted, m.order[0])
			m.order = m.order[1:]
		}
	}
	return true
}

// observeRequest is the request wrapper's hook: one latency sample under
// the route's template.
func (m *Metrics) observeRequest(rt route, status int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK // a handler that wrote nothing answered 200
	}
	m.httpDuration.WithLabelValues(rt.Method, rt.Path, strconv.Itoa(status)).Observe(d.Seconds())
}

// getMetrics is GET /metrics on the API listener (a viewer's token).
func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request) error {
	s.Metrics.Handler().ServeHTTP(w, r)
	return nil
}

// ServeMetrics serves GET /metrics alone, without a token, on ln (the
// --metrics-listen address) until ctx ends.
func (s *Server) ServeMetrics(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.Metrics.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// scheduleInterval is the longest a schedule's frequency leaves between
// two runs (a month: 31 days); 0 for a frequency it does not know.
func scheduleInterval(frequency string) time.Duration {
	return map[string]time.Duration{"hourly": time.Hour, "daily": 24 * time.Hour, "weekly": 7 * 24 * time.Hour,
		"monthly": 31 * 24 * time.Hour}[frequency]
}

// serverCollector reads, at each scrape, what status, health and storage
// show: the catalog's backups and schedules, each location's usage, the
// replication policy, the workers and the WebSocket clients.
type serverCollector struct{ s *Server }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descBackups           = desc("backupd_backups", "Backups in the catalog, by status.", "status")
	descBackupsLogical    = desc("backupd_backups_logical_bytes", "Content bytes the completed and partial backups in the catalog hold.")
	descBackupsStored     = desc("backupd_backups_stored_bytes", "Bytes the completed and partial backups in the catalog added to storage.")
	descLastSuccess       = desc("backupd_last_success_timestamp_seconds", "When the newest completed backup of a component, by schedule (empty: manual) and location holding it, started (a partial backup counts for none of its components).", "component", "schedule", "location")
	descSchedInterval     = desc("backupd_schedule_interval_seconds", "The longest an enabled schedule's frequency leaves between two runs (hourly 3600, daily 86400, weekly 604800, monthly 31 days).", "schedule")
	descSchedCreated      = desc("backupd_schedule_created_timestamp_seconds", "When an enabled schedule was created (for a schedule that has never succeeded).", "schedule")
	descVerifyTime        = desc("backupd_last_verification_timestamp_seconds", "When the newest verification of a backup in the catalog ended.")
	descVerifyOK          = desc("backupd_last_verification_success", "Whether the newest verification passed (1) or failed (0).")
	descStorageUp         = desc("backupd_storage_up", "Whether a storage location answered its last capacity check.", "location")
	descStorageRepo       = desc("backupd_storage_repository_bytes", "Bytes of the repository's own objects in a location.", "location")
	descStorageFSUsed     = desc("backupd_storage_filesystem_used_bytes", "Bytes used on the filesystem that holds a location, by anything (absent for a bucket).", "location")
	descStorageFSTotal    = desc("backupd_storage_filesystem_size_bytes", "Size of the filesystem that holds a location (absent when it has none, like a bucket).", "location")
	descStorageQuota      = desc("backupd_storage_quota_bytes", "A location's quota for the repository (absent when none is set).", "location")
	descStorageFree       = desc("backupd_storage_free_bytes", "Room left in a location: the quota less the repository's bytes, else the filesystem's free bytes (absent when neither is known).", "location")
	descStorageUtil       = desc("backupd_storage_utilization_ratio", "A location's utilization (0-1): the repository's bytes over the quota, else the filesystem's used over its size, as health computes it.", "location")
	descStorageThreshold  = desc("backupd_storage_utilization_threshold_ratio", "The monitoring policy's utilization thresholds (0-1).", "level")
	descReplEnabled       = desc("backupd_replication_policy_enabled", "Whether the replication (3-2-1) policy is on.")
	descReplChecked       = desc("backupd_replication_backups_checked", "Completed and partial backups checked against the replication policy.")
	descReplShort         = desc("backupd_replication_backups_short", "Backups that fall short of the replication policy (copies, media or offsite).")
	descReplCompliant     = desc("backupd_replication_compliant", "1 when every completed backup meets the replication policy (or the policy is off), else 0.")
	descTemporalUp        = desc("backupd_temporal_up", "Whether Temporal answered the server's health check.")
	descWorkerPollers     = desc("backupd_worker_pollers", "Workers polling a host's task queue, by kind (workflow, activity); 0 when Temporal cannot tell.", "host", "task_queue", "kind")
	descWebSocketClients  = desc("backupd_websocket_clients", "Connected WebSocket clients.")
	descServerStart       = desc("backupd_server_start_timestamp_seconds", "When this API server started.")
	descDrillRun          = desc("backupd_drill_last_run_timestamp_seconds", "When a restore drill's newest run started.", "drill")
	descDrillPassed       = desc("backupd_drill_last_passed", "1 when a restore drill's newest run passed (every file restored whole, every check passed), else 0.", "drill")
	descDrillRTO          = desc("backupd_drill_rto_seconds", "The time a restore drill's newest run took to restore and verify a component (its measured RTO).", "drill", "component")
	descDrillBreaches     = desc("backupd_drill_objective_breaches", "Recovery objectives (RTO, RPO) a restore drill's newest run found missed.", "drill")
	descObjective         = desc("backupd_component_objective_seconds", "A component's configured recovery objective (rto: longest restore, rpo: oldest newest backup); absent when none is set.", "component", "objective")
	serverCollectorDescs  = []*prometheus.Desc{descDrillRun, descDrillPassed, descDrillRTO, descDrillBreaches, descObjective, descBackups, descBackupsLogical, descBackupsStored, descLastSuccess, descSchedInterval, descSchedCreated, descVerifyTime, descVerifyOK, descStorageUp, descStorageRepo, descStorageFSUsed, descStorageFSTotal, descStorageQuota, descStorageFree, descStorageUtil, descStorageThreshold, descReplEnabled, descReplChecked, descReplShort, descReplCompliant, descTemporalUp, descWorkerPollers, descWebSocketClients, descServerStart}
	scrapeTimeout         = 25 * time.Second
	backupStatusesCounted = []string{workflows.StatusCompleted, workflows.StatusPartial, workflows.StatusFailed, workflows.StatusInProgress, workflows.StatusCancelled}
)

func (c serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range serverCollectorDescs {
		ch <- d
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c serverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	gauge(ch, descServerStart, float64(s.started.Unix()))
	gauge(ch, descWebSocketClients, float64(s.Hub.Clients()))
	pol, err := s.policies(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descStorageUp, err)
		return
	}
	c.collectCatalogCached(ctx, ch, pol)
	c.collectStorage(ctx, ch, pol)
	hctx, hcancel := context.WithTimeout(ctx, 3*time.Second) // as status and health wait
	_, herr := s.Temporal.CheckHealth(hctx, nil)
	hcancel()
	gauge(ch, descTemporalUp, boolValue(herr == nil))
	for _, w := range s.workers(ctx) {
		gauge(ch, descWorkerPollers, float64(w.WorkflowPollers), w.Host, w.TaskQueue, "workflow")
		gauge(ch, descWorkerPollers, float64(w.ActivityPollers), w.Host, w.TaskQueue, "activity")
	}
}

// collectCatalogCached sends the catalog's figures, read again only when
// the catalog changed or catalogTTL passed.
func (c serverCollector) collectCatalogCached(ctx context.Context, ch chan<- prometheus.Metric, pol *Policies) {
	m := c.s.Metrics
	m.catalogMu.Lock()
	defer m.catalogMu.Unlock()
	gen := c.s.Store.Generation()
	if m.catalog == nil || gen != m.catalogGen || time.Since(m.catalogAt) > catalogTTL {
		buf := make(chan prometheus.Metric, 64)
		var out []prometheus.Metric
		done := make(chan struct{})
		go func() {
			for x := range buf {
				out = append(out, x)
			}
			close(done)
		}()
		ok := c.collectCatalog(ctx, buf, pol)
		close(buf)
		<-done
		if !ok {
			m.catalog = nil // an error is not kept: the next scrape asks again
			for _, x := range out {
				ch <- x
			}
			return
		}
		m.catalog, m.catalogGen, m.catalogAt = out, gen, time.Now()
	}
	for _, x := range m.catalog {
		ch <- x
	}
}

// collectCatalog reads the catalog's figures; false when it could not.
func (c serverCollector) collectCatalog(ctx context.Context, ch chan<- prometheus.Metric, pol *Policies) bool {
	s := c.s
	// the generation is read before the catalog: a write in between
	// makes the next scrape read again
	rows, err := s.Store.AllBackups(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descBackups, err)
		return false
	}
	scheds, err := s.Store.ListSchedules(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descSchedInterval, err)
		return false
	}
	// a schedule's series cover the components and locations it backs up
	// now: one it no longer names must not look late for ever
	enabled := map[string]*models.Schedule{}
	for i := range scheds {
		sc := &scheds[i]
		iv := scheduleInterval(sc.Frequency)
		if !sc.Enabled || iv == 0 {
			continue
		}
		enabled[sc.ID] = sc
		gauge(ch, descSchedInterval, iv.Seconds(), sc.ID)
		gauge(ch, descSchedCreated, float64(sc.CreatedAt.Unix()), sc.ID)
	}
	counts := map[string]int{}
	for _, st := range backupStatusesCounted {
		counts[st] = 0
	}
	type key struct{ comp, sched, loc string }
	last := map[key]time.Time{}
	var logical, stored int64
	var verified *models.Backup
	checked, short := 0, 0
	for i := range rows {
		b := &rows[i]
		counts[b.Status]++
		if b.VerifiedAt != nil && (b.IntegrityCheck == "passed" || b.IntegrityCheck == "failed") &&
			(verified == nil || b.VerifiedAt.After(*verified.VerifiedAt)) {
			verified = b
		}
		if b.Status != workflows.StatusCompleted && b.Status != workflows.StatusPartial {
			continue
		}
		logical += b.SizeBytes
		stored += b.CompressedBytes
		checked++
		if s.check321(b, pol) != nil {
			short++
		}
		if b.Status != workflows.StatusCompleted {
			continue
		}
		sc := enabled[b.ScheduleID]
		if b.ScheduleID != "" && sc == nil {
			continue // a deleted or disabled schedule is not expected to run
		}
		for _, comp := range b.Components {
			if sc != nil && !contains(sc.Components, comp) {
				continue
			}
			for _, loc := range b.Locations {
				if sc != nil && len(sc.Locations) > 0 && !contains(sc.Locations, loc) {
					continue
				}
				k := key{comp, b.ScheduleID, loc}
				if b.Timestamp.After(last[k]) {
					last[k] = b.Timestamp
				}
			}
		}
	}
	for st, n := range counts {
		gauge(ch, descBackups, float64(n), st)
	}
	gauge(ch, descBackupsLogical, float64(logical))
	gauge(ch, descBackupsStored, float64(stored))
	for k, t := range last {
		gauge(ch, descLastSuccess, float64(t.Unix()), k.comp, k.sched, k.loc)
	}
	if verified != nil {
		gauge(ch, descVerifyTime, float64(verified.VerifiedAt.Unix()))
		gauge(ch, descVerifyOK, boolValue(verified.IntegrityCheck == "passed"))
	}
	gauge(ch, descReplEnabled, boolValue(pol.Replication.Enabled))
	gauge(ch, descReplChecked, float64(checked))
	gauge(ch, descReplShort, float64(short))
	gauge(ch, descReplCompliant, boolValue(short == 0))
	return c.collectDrills(ctx, ch)
}

// collectDrills sends each drill's newest run and the components'
// objectives.
func (c serverCollector) collectDrills(ctx context.Context, ch chan<- prometheus.Metric) bool {
	s := c.s
	for _, name := range s.Cfg.ComponentNames() {
		comp := s.Cfg.Components[name]
		if comp.RTOSeconds > 0 {
			gauge(ch, descObjective, float64(comp.RTOSeconds), name, "rto")
		}
		if comp.RPOSeconds > 0 {
			gauge(ch, descObjective, float64(comp.RPOSeconds), name, "rpo")
		}
	}
	drills, err := s.Store.ListDrills(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descDrillRun, err)
		return false
	}
	for _, d := range drills {
		runs, err := s.drillRuns(ctx, d.ID, 1)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(descDrillRun, err)
			return false
		}
		if len(runs) == 0 {
			continue
		}
		r := runs[0]
		if t, err := time.Parse(time.RFC3339Nano, r.Started); err == nil {
			gauge(ch, descDrillRun, float64(t.Unix()), d.ID)
		}
		gauge(ch, descDrillPassed, boolValue(r.Passed), d.ID)
		gauge(ch, descDrillBreaches, float64(len(r.Breaches)), d.ID)
		rto := map[string]float64{}
		for _, b := range r.Backups {
			for _, comp := range b.Components {
				rto[comp.Component] = max(rto[comp.Component], comp.RTOSeconds)
			}
		}
		for comp, v := range rto {
			gauge(ch, descDrillRTO, v, d.ID, comp)
		}
	}
	return true
}

func (c serverCollector) collectStorage(ctx context.Context, ch chan<- prometheus.Metric, pol *Policies) {
	s := c.s
	gauge(ch, descStorageThreshold, float64(pol.Monitoring.ThresholdWarning)/100, "warning")
	gauge(ch, descStorageThreshold, float64(pol.Monitoring.ThresholdCritical)/100, "critical")
	for _, name := range s.Cfg.LocationNames() {
		e := s.locationUsage(ctx, name)
		gauge(ch, descStorageUp, boolValue(e.err == nil), name)
		if e.err != nil {
			continue
		}
		quota := int64(0)
		if lp := pol.Locations[name]; lp != nil {
			quota = lp.QuotaBytes
		}
		gauge(ch, descStorageRepo, float64(e.stored), name)
		// a bucket has no filesystem: what it reports used is the
		// repository's own objects, already above
		if e.cap.TotalBytes > 0 {
			gauge(ch, descStorageFSUsed, float64(e.cap.UsedBytes), name)
			gauge(ch, descStorageFSTotal, float64(e.cap.TotalBytes), name)
		}
		if quota > 0 {
			gauge(ch, descStorageQuota, float64(quota), name)
			gauge(ch, descStorageFree, float64(max(quota-e.stored, 0)), name)
		} else if e.cap.TotalBytes > 0 && e.cap.FreeBytes >= 0 {
			gauge(ch, descStorageFree, float64(e.cap.FreeBytes), name)
		}
		if _, _, util, known := usage(e, quota); known {
			gauge(ch, descStorageUtil, util/100, name)
		}
	}
}
