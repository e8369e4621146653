package activities

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"backupd/api"
	"backupd/config"
	"backupd/models"
	"backupd/retention"
)

// CatalogTaskQueue is where the catalog activities run: in the API
// server's process (server or all), which owns the catalog. Workers on
// backed-up hosts need no database access.
const CatalogTaskQueue = "backupd-catalog"

// HostJobsTaskQueue is where the workflows of enrolled hosts' jobs run:
// in the API server's process too. A host's worker runs only the
// activities that touch its files (on its own queue, through the host
// gateway); it never runs workflow code, which decides what is recorded.
const HostJobsTaskQueue = "backupd-host-jobs"

// Catalog records jobs and backups in the SQL catalog: the last step of
// every job (and the first, for jobs the API did not start, like
// scheduled backups). OnRecord, when set, hears every recorded change (the
// API server's WebSocket hub).
type Catalog struct {
	Store         *models.Store
	OnRecord      func(JobRecord)
	Notifications config.Notifications
	// RevokeGrant ends a restore grant: its key entry leaves the source
	// repository and the reader is refused (the API server's).
	RevokeGrant func(ctx context.Context, id string) error
	// Config: the server's host, components (their recovery objectives)
	// and locations, for restore drills' plans.
	Config *config.Config
}

// HostQueue is the task queue of an enrolled host's worker.
func HostQueue(name string) string { return hostQueuePrefix + name }

// HostOfQueue is the host a HostQueue names, if q is one.
func HostOfQueue(q string) (string, bool) { return strings.CutPrefix(q, hostQueuePrefix) }

const hostQueuePrefix = "backup@"

// HostQuery selects the enrolled hosts of a scheduled run: by name or
// id, or by a label selector ("site=berlin,role=gw").
type HostQuery struct {
	Hosts      []string `json:"hosts,omitempty"`
	Selector   string   `json:"selector,omitempty"`
	Components []string `json:"components"`
}

// HostTarget is one host a scheduled run goes to; Problem, when set, is
// why it cannot (unknown, revoked, or lacking a component).
type HostTarget struct {
	Name    string `json:"name"`
	Queue   string `json:"queue"`
	Dir     string `json:"dir"` // its repository in each location
	Problem string `json:"problem,omitempty"`
}

// ResolveHosts lists the hosts a scheduled run goes to, as the catalog
// knows them at the run's time.
func (c *Catalog) ResolveHosts(ctx context.Context, q HostQuery) ([]HostTarget, error) {
	var hosts []models.Host
	var out []HostTarget
	if len(q.Hosts) > 0 {
		for _, n := range q.Hosts {
			h, err := c.Store.GetHost(ctx, n)
			if errors.Is(err, models.ErrNotFound) {
				out = append(out, HostTarget{Name: n, Problem: "no host " + n + " is enrolled"})
				continue
			}
			if err != nil {
				return nil, err
			}
			hosts = append(hosts, *h)
		}
	} else {
		all, err := c.Store.ListHosts(ctx)
		if err != nil {
			return nil, err
		}
		for _, h := range all {
			if !h.Local && h.Status == models.HostActive && models.SelectorMatches(q.Selector, h.Labels) {
				hosts = append(hosts, h)
			}
		}
	}
	for _, h := range hosts {
		t := HostTarget{Name: h.Name, Queue: HostQueue(h.Name), Dir: HostRepoDir(h.ID)}
		has := map[string]bool{}
		for _, hc := range h.Components {
			has[hc.Name] = true
		}
		var missing []string
		for _, n := range q.Components {
			if !has[n] {
				missing = append(missing, n)
			}
		}
		switch {
		case h.Local:
			t.Problem = h.Name + " is the server's own host: a schedule for it names no hosts"
		case h.Status != models.HostActive:
			t.Problem = "host " + h.Name + " is revoked"
		case len(missing) > 0:
			t.Problem = "host " + h.Name + " reports no component " + strings.Join(missing, ", ")
		}
		out = append(out, t)
	}
	return out, nil
}

// EndGrant ends the restore grant of a finished restore (whatever its
// outcome): the restoring host reads the repository no more.
func (c *Catalog) EndGrant(ctx context.Context, id string) error {
	if c.RevokeGrant == nil {
		return errors.New("this catalog worker cannot end restore grants")
	}
	return c.RevokeGrant(ctx, id)
}

// JobRecord is a job's state for the catalog.
type JobRecord struct {
	JobID      string          `json:"job_id"`
	Type       api.JobType     `json:"type"`
	Subtype    string          `json:"subtype,omitempty"`
	Status     string          `json:"status"`
	RefID      string          `json:"ref_id,omitempty"`
	BackupID   string          `json:"backup_id,omitempty"`
	Name       string          `json:"name,omitempty"`
	ScheduleID string          `json:"schedule_id,omitempty"`
	Host       string          `json:"host,omitempty"` // an enrolled host's job
	WorkflowID string          `json:"workflow_id,omitempty"`
	RunID      string          `json:"run_id,omitempty"`
	Started    time.Time       `json:"started"`
	Finished   *time.Time      `json:"finished,omitempty"`
	Percentage float64         `json:"percentage"`
	SizeBytes  int64           `json:"size_bytes,omitempty"`
	Error      string          `json:"error,omitempty"`
	ErrorCode  string          `json:"error_code,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	// Backup is the backup row a backup job writes (or a verify updates).
	Backup *models.Backup `json:"backup,omitempty"`
	// Report is stored under the job's RefID (verify and cleanup).
	Report json.RawMessage `json:"report,omitempty"`
	// Removed lists, per location, the backups a cleanup removed.
	Removed map[string][]string `json:"removed,omitempty"`
	// HostStored: after a cleanup collected enrolled hosts' repositories,
	// what each holds (by host repository, hosts/<id>, then location): a
	// host's written bytes come down to the largest, when every location
	// it has a repository in was collected.
	HostStored map[string]map[string]int64 `json:"host_stored,omitempty"`
	// Added lists, per backup, the locations a repair copied it to.
	Added map[string][]string `json:"added,omitempty"`
}

// checkParents drops the parent and base an enrolled host's plan named
// when they are not that host's own backups: its plan is its word, and a
// link to another host's backup would hold that backup (a parent is not
// deleted while its children live) or mislead a restore.
func (c *Catalog) checkParents(ctx context.Context, b *models.Backup) error {
	if b.ParentBackup == "" && b.BaseBackup == "" {
		return nil
	}
	enrolled, err := c.Store.EnrolledHostNames(ctx)
	if err != nil {
		return err
	}
	for _, id := range []*string{&b.ParentBackup, &b.BaseBackup} {
		if *id == "" {
			continue
		}
		p, err := c.Store.GetBackup(ctx, *id)
		if errors.Is(err, models.ErrNotFound) {
			if enrolled[b.Host] {
				*id = ""
			}
			continue
		}
		if err != nil {
			return err
		}
		if p.Host != b.Host && (enrolled[b.Host] || enrolled[p.Host]) {
			*id = ""
		}
	}
	return nil
}

// RecordJob writes a job's state (and its backup row and report) to the
// catalog. It is idempotent: a retry writes the same rows.
func (c *Catalog) RecordJob(ctx context.Context, rec JobRecord) error {
	s := c.Store
	j, err := s.GetJob(ctx, rec.JobID)
	if errors.Is(err, models.ErrNotFound) {
		j = &models.Job{ID: rec.JobID, Type: rec.Type, Started: rec.Started, User: "scheduler"}
	} else if err != nil {
		return err
	}
	if j.Finished != nil && rec.Finished == nil {
		return nil // a late start record must not reopen a finished job
	}
	j.Status = rec.Status
	setIf(&j.Subtype, rec.Subtype)
	setIf(&j.RefID, rec.RefID)
	setIf(&j.BackupID, rec.BackupID)
	setIf(&j.Name, rec.Name)
	setIf(&j.ScheduleID, rec.ScheduleID)
	setIf(&j.Host, rec.Host)
	setIf(&j.WorkflowID, rec.WorkflowID)
	setIf(&j.RunID, rec.RunID)
	if !rec.Started.IsZero() {
		j.Started = rec.Started
	}
	j.Finished = rec.Finished
	j.Progress = rec.Percentage
	if rec.SizeBytes > 0 {
		j.SizeBytes = rec.SizeBytes
	}
	j.Error, j.ErrorCode = rec.Error, rec.ErrorCode
	if len(rec.Result) > 0 {
		j.Result = models.JSON(rec.Result)
	}
	// a finished job's row is written last: a client that sees the job
	// over finds its backups, its report and its verification in place
	// (the report endpoint called a cleanup failed in between)
	if rec.Finished == nil {
		if err := s.PutJob(ctx, j); err != nil {
			return err
		}
	}
	if rec.Backup != nil {
		b := *rec.Backup
		if old, err := s.GetBackup(ctx, b.ID); err == nil {
			// what the API knew at creation that the workflow may not
			setIf(&b.Name, old.Name)
			setIf(&b.Description, old.Description)
			setIf(&b.CreatedBy, old.CreatedBy)
			if b.RetentionDays == 0 {
				b.RetentionDays = old.RetentionDays
			}
			b.Protected = b.Protected || old.Protected
			b.CreatedAt = old.CreatedAt
			if b.IntegrityCheck == "" {
				b.IntegrityCheck = old.IntegrityCheck
				b.VerifiedAt = old.VerifiedAt
			}
		}
		if err := c.checkParents(ctx, &b); err != nil {
			return err
		}
		if err := s.PutBackup(ctx, &b); err != nil {
			return err
		}
	}
	for id, locs := range rec.Added {
		if err := c.addLocations(ctx, id, locs); err != nil {
			return err
		}
	}
	// the backups' rows change before the report appears: a client that
	// sees the report sees the catalog as the cleanup left it
	for loc, ids := range rec.Removed {
		for _, id := range ids {
			if err := c.removeLocation(ctx, id, loc); err != nil {
				return err
			}
		}
	}
	for dir, locs := range rec.HostStored {
		if err := c.lowerWritten(ctx, dir, locs); err != nil {
			return err
		}
	}
	if rec.Type == api.JobDrill && len(rec.Report) > 0 && rec.RefID != "" {
		if err := c.recordDrillRun(ctx, rec); err != nil {
			return err
		}
	} else if len(rec.Report) > 0 && rec.RefID != "" {
		if err := s.PutReport(ctx, &models.Report{ID: rec.RefID, Kind: rec.Type, JobID: rec.JobID,
			BackupID: rec.BackupID, Status: rec.Status, Body: models.JSON(rec.Report)}); err != nil {
			return err
		}
	}
	if rec.Type == api.JobVerify && rec.Finished != nil && rec.BackupID != "" {
		var v struct {
			Passed   bool      `json:"passed"`
			Finished time.Time `json:"finished"`
		}
		if json.Unmarshal(rec.Report, &v) == nil {
			if err := c.RecordVerification(ctx, VerifyResult{BackupID: rec.BackupID, Passed: v.Passed, At: *rec.Finished}); err != nil {
				return err
			}
		}
	}
	if rec.Finished != nil {
		if err := s.PutJob(ctx, j); err != nil {
			return err
		}
	}
	if c.OnRecord != nil {
		c.OnRecord(rec)
	}
	return nil
}

// lowerWritten brings a host's written bytes down to what a cleanup
// measured its repositories to hold: the largest of them (the server's
// copies are not the host's writing), and only when every location the
// host has a repository in was measured (a partial view would forgive
// what the others hold). What the host wrote between the measurement and
// now is counted again at the next cleanup.
func (c *Catalog) lowerWritten(ctx context.Context, dir string, locs map[string]int64) error {
	id, ok := HostOfRepoDir(dir)
	if !ok {
		return nil
	}
	h, err := c.Store.GetHost(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var most int64
	for loc := range h.Repos {
		n, measured := locs[loc]
		if !measured {
			return nil
		}
		most = max(most, n)
	}
	if len(h.Repos) == 0 {
		return nil
	}
	return c.Store.LowerHostWritten(ctx, h.ID, most)
}

// removeLocation drops loc from a backup's locations; a backup left in
// no location leaves the catalog.
func (c *Catalog) removeLocation(ctx context.Context, id, loc string) error {
	b, err := c.Store.GetBackup(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep models.Strings
	for _, l := range b.Locations {
		if l != loc {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		return c.Store.DeleteBackup(ctx, id)
	}
	return c.Store.UpdateBackup(ctx, id, map[string]any{"locations": keep})
}

// VerifyResult is what a verification job records on the verified backup.
type VerifyResult struct {
	BackupID string    `json:"backup_id"`
	Location string    `json:"location"`
	Passed   bool      `json:"passed"`
	At       time.Time `json:"at"`
}

// ParentQuery asks the catalog where a new backup's parent may be.
type ParentQuery struct {
	Type       string   `json:"type"`
	Components []string `json:"components"`
	Location   string   `json:"location"`
	// Host: the enrolled host whose backup it is ("": the server's own);
	// candidates are that host's backups only.
	Host string `json:"host,omitempty"`
}

// ParentCandidates names the newest completed backups that could be a new
// backup's parent by its type's rule (differential: full backups only),
// so preparing it reads one manifest instead of listing them all. The
// worker checks each candidate's manifest (host, component paths) and
// falls back to the listing when none fits.
func (c *Catalog) ParentCandidates(ctx context.Context, q ParentQuery) ([]string, error) {
	var types []string
	if q.Type == "differential" {
		types = []string{"full"}
	}
	hosts := []string{q.Host}
	if q.Host == "" {
		own, err := c.Store.OwnHostNames(ctx)
		if err != nil {
			return nil, err
		}
		hosts = own
	}
	return c.Store.ParentCandidates(ctx, hosts, q.Components, q.Location, 3, types...)
}

// RecordVerification marks a backup verified (or failed) at a location.
func (c *Catalog) RecordVerification(ctx context.Context, v VerifyResult) error {
	st := "failed"
	if v.Passed {
		st = "passed"
	}
	err := c.Store.UpdateBackup(ctx, v.BackupID, map[string]any{"integrity_check": st, "verified_at": v.At})
	if errors.Is(err, models.ErrNotFound) {
		return nil // a backup the catalog does not know (yet): nothing to mark
	}
	return err
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// RetentionSettings reads the stored retention policies and cleanup rules
// (the spec's defaults until someone changes them).
func RetentionSettings(ctx context.Context, store *models.Store) (retention.Settings, error) {
	rs := retention.DefaultSettings()
	_, err := store.GetSetting(ctx, "retention", &rs)
	return rs, err
}

// PlanInput asks for a cleanup plan.
type PlanInput struct {
	Targets  []string `json:"targets"`
	Strategy string   `json:"strategy"`
	Max      int      `json:"max"`
	DryRun   bool     `json:"dry_run"`
	Force    bool     `json:"force"`
	// IgnoreProtected treats protected backups like any other (an admin's
	// explicit, audited choice; never for scheduled or emergency cleanups).
	IgnoreProtected bool `json:"ignore_protected,omitempty"`
	// MaxAgeDays: each location's own retention (storage policies).
	MaxAgeDays map[string]int `json:"max_age_days,omitempty"`
}

// PlanOutput is a cleanup plan over the whole catalog.
type PlanOutput struct {
	IDs         []string            `json:"ids"`
	PerLocation map[string][]string `json:"per_location"`
	Lines       []retention.Line    `json:"lines"`
	Protected   int                 `json:"protected"`
	// HostDirs: the enrolled hosts' backups, each with its host's
	// repository; CollectDirs: per location, every enrolled host's
	// repository there (as CleanupRequest's).
	HostDirs    map[string]string   `json:"host_dirs,omitempty"`
	CollectDirs map[string][]string `json:"collect_dirs,omitempty"`
}

// HostRepoDir is an enrolled host's repository in each location;
// HostOfRepoDir the host id a HostRepoDir names, if dir is one.
func HostRepoDir(id string) string { return hostRepoPrefix + id }

func HostOfRepoDir(dir string) (string, bool) { return strings.CutPrefix(dir, hostRepoPrefix) }

const hostRepoPrefix = "hosts/"

// PlanCleanup applies the retention policy to every backup in the catalog.
func (c *Catalog) PlanCleanup(ctx context.Context, in PlanInput) (PlanOutput, error) {
	rs, err := RetentionSettings(ctx, c.Store)
	if err != nil {
		return PlanOutput{}, err
	}
	if in.Strategy == "" {
		in.Strategy = rs.Rules.CleanupStrategy
	}
	rows, err := c.Store.AllBackups(ctx)
	if err != nil {
		return PlanOutput{}, err
	}
	// enrolled hosts' backups live in repositories of their own
	// (hosts/<id>), and the policy is applied to each host's on its own
	hosts, err := c.Store.ListHosts(ctx)
	if err != nil {
		return PlanOutput{}, err
	}
	enrolled := map[string]*models.Host{}
	for i := range hosts {
		if !hosts[i].Local {
			enrolled[hosts[i].Name] = &hosts[i]
		}
	}
	items := make([]retention.Item, len(rows))
	out := PlanOutput{}
	for i, b := range rows {
		items[i] = retention.Item{Backup: retention.Backup{ID: b.ID, Type: b.Type, Status: b.Status, Time: b.Timestamp,
			Protected: b.Protected && !in.IgnoreProtected, RetentionDays: b.RetentionDays, Parent: b.ParentBackup, Base: b.BaseBackup,
			Bytes: b.AddedBytes}, Locations: b.Locations}
		if h := enrolled[b.Host]; h != nil {
			items[i].Group = h.Name
			if out.HostDirs == nil {
				out.HostDirs = map[string]string{}
			}
			out.HostDirs[b.ID] = HostRepoDir(h.ID)
		}
		if b.Protected {
			out.Protected++
		}
	}
	if in.MaxAgeDays == nil {
		in.MaxAgeDays, err = LocationRetention(ctx, c.Store)
		if err != nil {
			return PlanOutput{}, err
		}
	}
	out.Lines, out.IDs, out.PerLocation = retention.Plan(items, rs.Policy, time.Now().UTC(), retention.PlanOptions{Targets: in.Targets,
		Strategy: in.Strategy, Max: in.Max, DryRun: in.DryRun, Force: in.Force, MaxAgeDays: in.MaxAgeDays})
	// each host's repositories are collected where they exist, whether
	// or not a backup of it goes (what an earlier cleanup condemned goes)
	for _, h := range enrolled {
		for _, loc := range in.Targets {
			if h.Repos[loc] != "" {
				if out.CollectDirs == nil {
					out.CollectDirs = map[string][]string{}
				}
				out.CollectDirs[loc] = append(out.CollectDirs[loc], HostRepoDir(h.ID))
			}
		}
	}
	for _, dirs := range out.CollectDirs {
		sort.Strings(dirs)
	}
	return out, nil
}

// addLocations records that a backup is now also stored in locs.
func (c *Catalog) addLocations(ctx context.Context, id string, locs []string) error {
	b, err := c.Store.GetBackup(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	have := b.Locations
	for _, l := range locs {
		found := false
		for _, h := range have {
			found = found || h == l
		}
		if !found {
			have = append(have, l)
		}
	}
	return c.Store.UpdateBackup(ctx, id, map[string]any{"locations": have})
}

// LockHorizon tells an immutable location how long the retention rules
// keep a backup there: the policy's horizon, or the location's own
// retention if shorter (Stores.LockHorizon).
func LockHorizon(store *models.Store) func(context.Context, string) (time.Duration, error) {
	return func(ctx context.Context, location string) (time.Duration, error) {
		rs, err := RetentionSettings(ctx, store)
		if err != nil {
			return 0, err
		}
		h := rs.Policy.Horizon()
		days, err := LocationRetention(ctx, store)
		if err != nil {
			return 0, err
		}
		if d := retention.Days(days[location]); d > 0 && d < h {
			h = d
		}
		return h, nil
	}
}

// LocationRetention reads each location's own retention (days) from the
// stored storage policies.
func LocationRetention(ctx context.Context, store *models.Store) (map[string]int, error) {
	var pol struct {
		Locations map[string]struct {
			RetentionDays int `json:"retention_days"`
		} `json:"locations"`
	}
	out := map[string]int{}
	if _, err := store.GetSetting(ctx, "policies", &pol); err != nil {
		return nil, err
	}
	for name, l := range pol.Locations {
		out[name] = l.RetentionDays
	}
	return out, nil
}
