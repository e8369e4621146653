package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"backupd/activities"
	"backupd/api"
	"backupd/codes"
	"backupd/jobs"
	"backupd/models"
	"backupd/workflows"
)

// WebSocket timing: pings keep idle connections (and proxies) alive and
// find dead peers; a client that cannot take its messages is dropped.
const (
	wsWriteWait  = 10 * time.Second
	wsPongWait   = 60 * time.Second
	wsPingPeriod = 25 * time.Second
	wsSendBuffer = 256
	pollInterval = 400 * time.Millisecond
)

// Hub fans messages out to WebSocket clients and follows running jobs.
type Hub struct {
	log     *slog.Logger
	mu      sync.Mutex
	clients map[*wsClient]struct{}
	tracked map[string]*tracked
	// seq orders a job's progress messages before its end
	seq    sync.Mutex
	closed bool
	// Dropped counts clients dropped for being too slow.
	Dropped int64
	// checkFailing: since when the sessions' tokens cannot be checked
	checkFailing time.Time
}

type tracked struct {
	key  string
	sent time.Time
	// announced: a progress message went out for the job (its first)
	announced bool
}

// announce marks the job's first progress message as sent; it reports
// whether this call did (false: one went out already, or the job is not
// followed).
func (h *Hub) announce(jobID, key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	tr := h.tracked[jobID]
	if tr == nil || tr.announced {
		return false
	}
	tr.announced, tr.key, tr.sent = true, key, time.Now()
	return true
}

type wsClient struct {
	conn  *websocket.Conn
	send  chan []byte
	jobID string
	types map[string]bool
	// host: only the jobs of this host (localHost: the server's own,
	// whose messages name no host)
	host, localHost string
	once            sync.Once
	tokenID         string
}

// NewHub makes an empty hub.
func NewHub(log *slog.Logger) *Hub {
	return &Hub{log: log, clients: map[*wsClient]struct{}{}, tracked: map[string]*tracked{}}
}

// Track follows a job's progress until it completes.
func (h *Hub) Track(jobID string) {
	h.mu.Lock()
	if h.tracked[jobID] == nil {
		h.tracked[jobID] = &tracked{}
	}
	h.mu.Unlock()
}

func (h *Hub) untrack(jobID string) {
	h.mu.Lock()
	delete(h.tracked, jobID)
	h.mu.Unlock()
}

// Clients is the number of connected clients.
func (h *Hub) Clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// Broadcast sends msg (one of api.Messages) to every client whose filter
// matches. A client whose buffer is full is dropped at once: it never
// slows the others.
func (h *Hub) Broadcast(msg any) {
	b, err := json.Marshal(msg)
	if err != nil {
		return
	}
	var head struct {
		Type  string `json:"type"`
		JobID string `json:"job_id"`
		Host  string `json:"host"`
	}
	json.Unmarshal(b, &head)
	typ, job := head.Type, head.JobID
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		if c.jobID != "" && c.jobID != job {
			continue
		}
		if c.types != nil && !c.types[typ] {
			continue
		}
		if c.host != "" && (job == "" || (head.Host != c.host && (head.Host != "" || c.host != c.localHost))) {
			continue // a host's client hears of that host's jobs only
		}
		select {
		case c.send <- b:
		default:
			h.Dropped++
			delete(h.clients, c)
			c.close()
		}
	}
}

func (c *wsClient) close() {
	c.once.Do(func() { close(c.send) })
}

// DropToken disconnects the clients that connected with a token (it was
// revoked: what they were allowed to see ends now).
func (h *Hub) DropToken(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		if c.tokenID == id {
			delete(h.clients, c)
			c.close()
		}
	}
}

// tokenIDs lists the tokens open sessions were authorised with.
func (h *Hub) tokenIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for c := range h.clients {
		if !seen[c.tokenID] {
			seen[c.tokenID] = true
			out = append(out, c.tokenID)
		}
	}
	return out
}

// wsRecheck: open sessions end within this long (plus a query) of their
// token's revocation or expiry; wsCheckGrace: how long they stay open
// while tokens cannot be checked (the catalog is down).
var (
	wsRecheck    = 4 * time.Second
	wsCheckGrace = 15 * time.Second
)

// checkSessions closes the sessions whose token was revoked or expired.
func (s *Server) checkSessions(ctx context.Context) {
	if ids := s.Hub.tokenIDs(); len(ids) > 0 {
		s.checkSessionsOf(ctx, ids)
	}
}

func (s *Server) checkSessionsOf(ctx context.Context, ids []string) {
	valid, err := s.Store.ValidTokenIDs(ctx, ids)
	s.Hub.mu.Lock()
	if err == nil {
		s.Hub.checkFailing = time.Time{}
	} else if s.Hub.checkFailing.IsZero() {
		s.Hub.checkFailing = time.Now()
	}
	failing := s.Hub.checkFailing
	s.Hub.mu.Unlock()
	if err != nil {
		// sessions whose tokens cannot be checked do not stay open long:
		// a revocation would not be seen
		if time.Since(failing) < wsCheckGrace {
			s.Log.Warn("websocket sessions: tokens could not be checked", "err", err)
			return
		}
		s.Log.Error("websocket sessions closed: their tokens could not be checked", "err", err, "since", failing)
		valid = map[string]bool{}
	}
	for _, id := range ids {
		if !valid[id] {
			s.Hub.DropToken(id)
		}
	}
}

// Close disconnects every client.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.clients {
		delete(h.clients, c)
		c.close()
	}
}

var wsTypes = []string{"backup_progress", "restore_progress", "job_complete", "storage_alert", "schedule_event", "drill_result"}

var upgrader = websocket.Upgrader{
	ReadBufferSize: 1024, WriteBufferSize: 4096,
	// a browser offering ["bearer", token] gets "bearer" back
	Subprotocols: []string{"bearer"},
	// tokens travel in headers, never in cookies, so a foreign page cannot
	// ride on a user's session: any origin may connect with a token
	CheckOrigin: func(*http.Request) bool { return true },
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "job_id", "types", "host", "access_token"); err != nil {
		return err
	}
	host := q.Get("host")
	if host != "" {
		local, name, err := s.hostFilter(r.Context(), host)
		if err != nil {
			return err
		}
		if host = name; local {
			host = s.Cfg.Host
		}
	}
	var types map[string]bool
	if t := q.Get("types"); t != "" {
		types = map[string]bool{}
		for _, x := range strings.Split(t, ",") {
			if err := oneOf("types", x, wsTypes...); err != nil {
				return err
			}
			types[x] = true
		}
	}
	if !websocket.IsWebSocketUpgrade(r) {
		return badRequest("", "this endpoint speaks WebSocket: send an Upgrade request")
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil // the upgrader has answered
	}
	c := &wsClient{conn: conn, send: make(chan []byte, wsSendBuffer), jobID: q.Get("job_id"), types: types,
		tokenID: stateOf(r).token.ID, host: host, localHost: s.Cfg.Host}
	s.Hub.mu.Lock()
	if s.Hub.closed {
		s.Hub.mu.Unlock()
		conn.Close()
		return nil
	}
	s.Hub.clients[c] = struct{}{}
	s.Hub.mu.Unlock()
	// a revocation that landed between the authorisation and the
	// registration above is seen here; later ones by checkSessions
	s.checkSessionsOf(r.Context(), []string{c.tokenID})
	go c.writeLoop()
	c.readLoop(s.Hub)
	return nil
}

// readLoop consumes pongs and close frames; clients send nothing else.
func (c *wsClient) readLoop(h *Hub) {
	defer func() {
		h.mu.Lock()
		if _, ok := h.clients[c]; ok {
			delete(h.clients, c)
			c.close()
		}
		h.mu.Unlock()
	}()
	c.conn.SetReadLimit(4096)
	c.conn.SetReadDeadline(time.Now().Add(wsPongWait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(wsPongWait)) })
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			return
		}
	}
}

func (c *wsClient) writeLoop() {
	ping := time.NewTicker(wsPingPeriod)
	defer func() {
		ping.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case msg, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
			if !ok {
				c.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "bye"))
				return
			}
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
		case <-ping.C:
			c.conn.SetWriteDeadline(time.Now().Add(wsWriteWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// Poll follows the tracked jobs until ctx ends: it sends a progress
// message when a job's progress changes (at least every 5 s while it
// runs), within pollInterval plus the workers' heartbeat interval. It
// works the same when the worker runs in another process: the progress
// comes from Temporal. Jobs running when the server starts are picked up
// from the catalog.
func (s *Server) Poll(ctx context.Context) {
	if running, err := s.Store.ListJobs(ctx, models.JobFilter{Statuses: []string{"queued", "running", "paused"}, Limit: 1000}); err == nil {
		for _, j := range running {
			s.Hub.Track(j.ID)
		}
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	// each check on its own clock: a slow answer from one never delays the others
	every := func(d time.Duration, fn func(context.Context)) {
		tk := time.NewTicker(d)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				fn(ctx)
			}
		}
	}
	go every(wsRecheck, s.checkSessions)
	go func() {
		select { // first soon after start, then on its interval
		case <-ctx.Done():
			return
		case <-time.After(reconcileFirst):
		}
		s.reconcile(ctx)
		every(reconcileInterval, s.reconcile)
	}()
	go every(time.Minute, s.checkStorageAlerts)
	go every(2*time.Second, s.checkSchedules)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.Hub.mu.Lock()
		ids := make([]string, 0, len(s.Hub.tracked))
		for id := range s.Hub.tracked {
			ids = append(ids, id)
		}
		anyone := len(s.Hub.clients) > 0
		s.Hub.mu.Unlock()
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.pollJob(ctx, id, anyone)
			}()
		}
		wg.Wait()
	}
}

func (s *Server) pollJob(ctx context.Context, id string, anyone bool) {
	j, err := s.Store.GetJob(ctx, id)
	if err != nil {
		s.Hub.untrack(id)
		return
	}
	if j.Finished != nil {
		s.Hub.untrack(id) // job_complete comes from the catalog record
		return
	}
	if !anyone || (j.Type != api.JobBackup && j.Type != api.JobRestore) {
		return
	}
	p := s.liveProgress(ctx, j)
	if p.Finished != nil {
		return
	}
	msg, key := progressMessage(j, p)
	// in order with the job's end (OnJobRecord): no progress after it
	s.Hub.seq.Lock()
	defer s.Hub.seq.Unlock()
	s.Hub.mu.Lock()
	tr := s.Hub.tracked[id]
	send := tr != nil && (tr.key != key || time.Since(tr.sent) > 5*time.Second)
	if send {
		tr.key, tr.sent, tr.announced = key, time.Now(), true
	}
	s.Hub.mu.Unlock()
	if send {
		s.Hub.Broadcast(msg)
	}
}

// recordProgress is the progress a catalog record carries: a finished
// job's from its result, a starting job's from the record itself.
func recordProgress(rec activities.JobRecord) *workflows.Progress {
	var res struct {
		Progress *workflows.Progress `json:"progress"`
	}
	if rec.Finished != nil && len(rec.Result) > 0 && json.Unmarshal(rec.Result, &res) == nil && res.Progress != nil {
		return res.Progress
	}
	st := workflows.WorkflowStatus(rec.Status)
	op := "starting"
	if rec.Finished != nil {
		op = st
	}
	return &workflows.Progress{Status: st, JobID: rec.JobID, JobType: rec.Type, BackupID: rec.BackupID, Percentage: rec.Percentage,
		CurrentOperation: op, Started: rec.Started, Finished: rec.Finished, ComponentsCompleted: []string{},
		ComponentsRemaining: []string{}, StorageStatus: map[string]string{}}
}

// progressMessage is the spec's backup_progress / restore_progress, and
// what makes it new (its key: a message whose key did not change is not
// sent again within 5 s).
func progressMessage(j *models.Job, p *workflows.Progress) (msg any, key string) {
	f := figures(j, p)
	locs := locationsOf(p)
	lj, _ := json.Marshal(locs) // by value (its counts are pointers)
	var files any               // a restore's files restored
	if j.Type == api.JobRestore {
		files = p.Files
	}
	key = fmt.Sprint(f.Percent, p.CurrentOperation, p.CurrentComponent, f.Processed, files, p.Paused, string(lj))
	head := api.ProgressFields{JobID: j.ID, Host: j.Host, Progress: f.Percent, CurrentOperation: p.CurrentOperation,
		CurrentComponent: p.CurrentComponent, ETA: hms(f.ETA), ETASeconds: math.Round(f.ETA.Seconds()),
		Status: jobStatus(p.Status), Timestamp: rfc3339(time.Now()), Waiting: p.Waiting, Locations: locs}
	transfer := api.TransferFigures{Speed: humanSize(int64(f.BytesPerSecond)) + "/s",
		BytesProcessedBytes: f.Processed, BytesTotalBytes: f.Total, SpeedBytesPerSecond: math.Round(f.BytesPerSecond)}
	if j.Type == api.JobRestore {
		return api.RestoreProgressMessage{Type: "restore_progress", RestoreID: j.RefID, BackupID: j.BackupID, ProgressFields: head,
			Details: api.RestoreProgressDetails{FilesRestored: p.Files, FilesTotal: max(p.FilesTotal, p.Files), TransferFigures: transfer},
		}, key
	}
	return api.BackupProgressMessage{Type: "backup_progress", BackupID: j.BackupID, ProgressFields: head,
		Details: api.BackupProgressDetails{BytesProcessed: humanSize(f.Processed), BytesTotal: humanSize(f.Total),
			TransferFigures: transfer, FilesProcessed: p.Files},
	}, key
}

// logJob writes a job's start and end lines (a job ending on a user's
// mistake or a failure is a warning: the system itself is fine).
func (s *Server) logJob(rec activities.JobRecord) {
	if s.Log == nil {
		return
	}
	args := []any{"job_id", rec.JobID, "type", rec.Type}
	for _, kv := range [][2]string{{"backup_id", rec.BackupID}, {"ref_id", rec.RefID}, {"schedule_id", rec.ScheduleID}, {"workflow_id", rec.WorkflowID}} {
		if kv[1] != "" {
			args = append(args, kv[0], kv[1])
		}
	}
	if rec.Finished == nil {
		s.Log.Info("job started", args...)
		return
	}
	args = append(args, "outcome", rec.Status, "duration_s", math.Round(rec.Finished.Sub(rec.Started).Seconds()*10)/10)
	if rec.Error != "" {
		args = append(args, "error_code", rec.ErrorCode, "error", rec.Error)
	}
	if rec.Status == "completed" {
		s.Log.Info("job finished", args...)
	} else {
		s.Log.Warn("job finished", args...)
	}
}

// OnJobRecord is the catalog's notification (in this process): a started
// job is followed, a finished one announced.
func (s *Server) OnJobRecord(rec activities.JobRecord) {
	s.Metrics.jobRecorded(rec)
	withProgress := rec.Type == api.JobBackup || rec.Type == api.JobRestore
	j := &models.Job{ID: rec.JobID, Type: rec.Type, RefID: rec.RefID, BackupID: rec.BackupID}
	s.logJob(rec)
	if rec.Finished == nil {
		s.Hub.Track(rec.JobID)
		// every job's first progress message, however soon it ends
		if withProgress {
			if msg, key := progressMessage(j, recordProgress(rec)); s.Hub.announce(rec.JobID, key) {
				s.Hub.Broadcast(msg)
			}
		}
		if rec.ScheduleID != "" && rec.Type == api.JobBackup {
			s.Hub.Broadcast(api.ScheduleEventMessage{Type: "schedule_event", Event: "backup_started", ScheduleID: rec.ScheduleID,
				Message: "Scheduled backup " + rec.BackupID + " started (job " + rec.JobID + ")", Timestamp: rfc3339(time.Now()),
				JobID: rec.JobID, BackupID: rec.BackupID})
		}
		return
	}
	s.Hub.seq.Lock()
	defer s.Hub.seq.Unlock()
	s.Hub.untrack(rec.JobID)
	// and its last, before job_complete: a progress bar ends at its end
	if withProgress {
		msg, _ := progressMessage(j, recordProgress(rec))
		s.Hub.Broadcast(msg)
	}
	status := completionStatus(rec.Status)
	d := rec.Finished.Sub(rec.Started)
	details := api.JobCompleteDetails{Duration: humanDuration(d), DurationSeconds: math.Round(d.Seconds()), BackupID: rec.BackupID}
	msg := fmt.Sprintf("%s %s", strings.ToUpper(string(rec.Type[:1]))+string(rec.Type[1:]), map[string]string{
		"success": "completed successfully", "partial": "completed with errors (partial)", "failed": "failed", "cancelled": "was cancelled",
		"missed": "was missed: its host stayed offline through the schedule's catch-up window", "skipped": "was skipped"}[status])
	var jerr *api.JobError
	if rec.Error != "" && status != "cancelled" {
		msg += ": " + rec.Error
		jerr = jobError(rec.ErrorCode, rec.Error, nil)
	}
	if b := rec.Backup; b != nil {
		details.BackupOutcome = &api.BackupOutcome{Size: humanSize(b.SizeBytes), SizeBytes: b.SizeBytes,
			CompressedSize: humanSize(b.CompressedBytes), CompressedSizeBytes: b.CompressedBytes,
			AddedSize: humanSize(b.AddedBytes), AddedSizeBytes: b.AddedBytes, StorageLocations: nonNil(b.Locations)}
	}
	details.JobRefs = jobRefs(rec.Type, rec.RefID, true)
	s.Hub.Broadcast(api.JobCompleteMessage{Type: "job_complete", JobID: rec.JobID, Host: rec.Host, Status: status, Operation: rec.Type,
		Message: msg, Details: details, Error: jerr, Timestamp: rfc3339(time.Now())})
	if rec.ScheduleID != "" {
		s.Hub.Broadcast(api.ScheduleEventMessage{Type: "schedule_event", Event: "backup_" + status, ScheduleID: rec.ScheduleID,
			Message: msg, Timestamp: rfc3339(time.Now()), JobID: rec.JobID})
	}
	if rec.Type == api.JobDrill {
		var rep api.DrillReport
		if json.Unmarshal(rec.Report, &rep) == nil && rep.RunID != "" {
			s.Hub.Broadcast(drillResult(rep))
		}
	}
}

// drillResult is a drill run's drill_result message: an alert (critical)
// when it failed, a warning when it passed with an objective missed.
func drillResult(rep api.DrillReport) api.DrillResultMessage {
	m := api.DrillResultMessage{Type: "drill_result", DrillID: rep.DrillID, RunID: rep.RunID, JobID: rep.JobID, Passed: rep.Passed,
		Breaches: rep.Breaches, Timestamp: rfc3339(time.Now())}
	// the files' names stay in the report (operators): viewers see the count
	for _, b := range rep.Backups {
		for _, c := range b.Components {
			m.DamagedFiles += len(c.Damaged)
		}
	}
	switch {
	case !rep.Passed:
		m.Level = "critical"
		m.Message = "Restore drill " + rep.DrillID + " failed"
		if rep.Error != "" {
			m.Message += ": " + rep.Error
		} else if m.DamagedFiles > 0 {
			m.Message += fmt.Sprintf(": %d damaged file(s)", m.DamagedFiles)
		} else {
			m.Message += ": a restore or a check failed (GET /backup/drills/" + rep.DrillID + ")"
		}
	case len(rep.Breaches) > 0:
		m.Level = "warning"
		m.Message = fmt.Sprintf("Restore drill %s passed; %d recovery objective(s) missed: %s", rep.DrillID, len(rep.Breaches), rep.Breaches[0].Message)
	default:
		m.Message = "Restore drill " + rep.DrillID + " passed"
	}
	return m
}

// checkStorageAlerts pushes storage_alert messages for locations above
// the thresholds (once per level change).
func (s *Server) checkStorageAlerts(ctx context.Context) {
	pol, err := s.policies(ctx)
	if err != nil || !pol.Monitoring.UsageAlerts {
		return
	}
	for _, name := range s.Cfg.LocationNames() {
		e := s.locationUsage(ctx, name)
		level, text := "", ""
		used, total, util, known := usage(e, pol.Locations[name].QuotaBytes)
		if e.err != nil {
			level, text = "critical", "Storage "+name+" cannot be reached: "+e.err.Error()
		} else {
			switch {
			case !known:
			case util >= float64(pol.Monitoring.ThresholdCritical):
				level = "critical"
			case util >= float64(pol.Monitoring.ThresholdWarning):
				level = "warning"
			}
			text = fmt.Sprintf("Storage %s utilization at %.0f%%", name, util)
		}
		if e.err == nil {
			s.emergencyCleanup(ctx, name, e, pol)
		}
		s.capMu.Lock()
		prev := s.alertLevel[name]
		s.alertLevel[name] = level
		s.capMu.Unlock()
		if level == "" || level == prev {
			continue
		}
		s.Hub.Broadcast(api.StorageAlertMessage{Type: "storage_alert", Level: level, Storage: name, Message: text,
			Details: api.StorageAlertDetails{Space: api.Space{Available: humanSize(max(total-used, 0)), Used: humanSize(used),
				Total: humanSize(total), UsedBytes: used, TotalBytes: ptr(total)}, Utilization: fmt.Sprintf("%.0f%%", util)},
			SuggestedAction: "Run cleanup or increase storage quota", Timestamp: rfc3339(time.Now())})
	}
}

// emergencyCleanup starts a retention cleanup of a location whose free
// space fell under emergency_cleanup_threshold (at most one an hour per
// location). It collects at once (no safety window), so the space comes
// back now, except packs that running jobs may need.
func (s *Server) emergencyCleanup(ctx context.Context, name string, e capEntry, pol *Policies) {
	rs, err := s.retentionSettings(ctx)
	if err != nil || !rs.Rules.AutoCleanup || !pol.Monitoring.AutoCleanup {
		return
	}
	limit, err := api.ParseSize(rs.Rules.EmergencyCleanupThreshold)
	if err != nil || limit <= 0 {
		return
	}
	var free int64
	switch quota := pol.Locations[name].QuotaBytes; {
	case quota > 0:
		free = quota - e.stored
	case e.cap.FreeBytes >= 0 && e.cap.TotalBytes > 0:
		free = e.cap.FreeBytes
	default:
		return // a bucket without a quota has no free space to run out of
	}
	if free >= limit {
		return
	}
	s.capMu.Lock()
	last := s.lastEmergency[name]
	if time.Since(last) < time.Hour {
		s.capMu.Unlock()
		return
	}
	s.lastEmergency[name] = time.Now()
	s.capMu.Unlock()
	// No safety window: the collection itself reads, when it deletes, which
	// jobs are writing to the location (their writer registrations), and
	// keeps every pack they may need (repository/writers.go).
	id := jobs.NewID("CLEANUP-")
	_, err = s.launchCleanup(ctx, "emergency", id, workflows.CleanupRequest{Locations: []string{name}, Subtype: "emergency",
		Immediate: true, Plan: &activities.PlanInput{Targets: []string{name}}}, nil)
	msg := fmt.Sprintf("Storage %s has %s free, under the emergency threshold %s: ", name, humanSize(max(free, 0)), rs.Rules.EmergencyCleanupThreshold)
	if err != nil {
		s.Log.Error("emergency cleanup did not start", "location", name, "err", err)
		msg += "the emergency cleanup could not start: " + err.Error()
	} else {
		msg += "emergency cleanup " + id + " started"
	}
	used, total, util, _ := usage(e, pol.Locations[name].QuotaBytes)
	s.Hub.Broadcast(api.StorageAlertMessage{Type: "storage_alert", Level: "critical", Storage: name, Message: msg,
		Details: api.StorageAlertDetails{Space: api.Space{Available: humanSize(max(free, 0)), AvailableBytes: ptr(free), Used: humanSize(used),
			UsedBytes: used, Total: humanSize(total), TotalBytes: ptr(total)}, Utilization: fmt.Sprintf("%.0f%%", util),
			Threshold: rs.Rules.EmergencyCleanupThreshold, CleanupID: id},
		SuggestedAction: "Free space or raise the quota; the cleanup removes what the retention policy lets go",
		Timestamp:       rfc3339(time.Now())})
}

// checkSchedules notices runs Temporal skipped because the schedule's
// previous backup was still running (overlap policy SKIP): each is
// recorded as a skipped job (BACKUP_002) and announced as a
// schedule_event.
func (s *Server) checkSchedules(ctx context.Context) {
	list, err := s.Store.ListSchedules(ctx)
	if err != nil {
		return
	}
	for _, sc := range list {
		d, err := s.Temporal.ScheduleClient().GetHandle(ctx, temporalScheduleID(sc.ID)).Describe(ctx)
		if err != nil {
			continue
		}
		n := int64(d.Info.NumActionsSkippedOverlap)
		s.capMu.Lock()
		prev, seen := s.skipped[sc.ID]
		s.capMu.Unlock()
		if !seen {
			// what the catalog has recorded already (skips while no server
			// ran are recorded now)
			if err := s.Store.DB.WithContext(ctx).Model(&models.Job{}).Where("schedule_id = ? AND status = ?", sc.ID, "skipped").
				Count(&prev).Error; err != nil {
				continue
			}
		}
		s.capMu.Lock()
		s.skipped[sc.ID] = max(n, prev)
		s.capMu.Unlock()
		if n <= prev {
			continue
		}
		now := time.Now().UTC()
		var next *time.Time
		if len(d.Info.NextActionTimes) > 0 {
			next = &d.Info.NextActionTimes[0]
		}
		for i := prev; i < n; i++ {
			msg := "A run of schedule " + sc.ID + " was skipped: its previous backup was still running (BACKUP_002)"
			s.Store.PutJob(ctx, &models.Job{ID: fmt.Sprintf("SKIPPED-%s-%d", sc.ID, i+1), Type: api.JobBackup,
				Subtype: "scheduled_" + sc.Type, Status: "skipped", ScheduleID: sc.ID, Name: sc.Name, User: "scheduler",
				Started: now, Finished: &now, Error: msg, ErrorCode: string(codes.AlreadyInProgress)})
			s.Hub.Broadcast(api.ScheduleEventMessage{Type: "schedule_event", Event: "backup_skipped", ScheduleID: sc.ID,
				Message: msg, Code: string(codes.AlreadyInProgress), Timestamp: rfc3339(now), NextExecution: rfc3339ptr(next)})
		}
	}
}
