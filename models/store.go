package models

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"backupd/api"
)

// ErrNotFound is returned for a missing row.
var ErrNotFound = errors.New("not found")

// Store is the catalog.
type Store struct {
	DB     *gorm.DB
	Driver string
	// gen counts writes, so callers can cache reads between them.
	gen atomic.Int64
}

// Open connects to the catalog and runs the migrations. driver is sqlite
// (dsn: a file path) or postgres (dsn: a libpq keyword string or URL).
func Open(driverName, dsn string) (*Store, error) {
	cfg := &gorm.Config{Logger: logger.Default.LogMode(logger.Silent), SkipDefaultTransaction: true,
		NowFunc: func() time.Time { return time.Now().UTC() }}
	var dial gorm.Dialector
	switch driverName {
	case "sqlite":
		if dsn != ":memory:" && !strings.HasPrefix(dsn, "file:") {
			if err := os.MkdirAll(filepath.Dir(dsn), 0o700); err != nil {
				return nil, err
			}
		}
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dial = sqlite.Open(dsn + sep + "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)")
	case "postgres":
		dial = postgres.Open(dsn)
	default:
		return nil, fmt.Errorf("catalog driver %q (want sqlite or postgres)", driverName)
	}
	db, err := gorm.Open(dial, cfg)
	if err != nil {
		return nil, fmt.Errorf("catalog (%s): %w", driverName, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	if driverName == "sqlite" {
		// one connection: SQLite serialises writers anyway, and a single
		// connection never sees SQLITE_BUSY from its own pool
		sqlDB.SetMaxOpenConns(1)
	} else {
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetMaxIdleConns(10)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	s := &Store{DB: db, Driver: driverName}
	if err := s.Migrate(); err != nil {
		sqlDB.Close()
		return nil, err
	}
	return s, nil
}

// Migrate creates or updates the tables.
func (s *Store) Migrate() error {
	// before added_bytes existed, compressed_bytes held what a backup
	// added after deduplication: that value moves to its own column once
	addedIsNew := !s.DB.Migrator().HasColumn(&Backup{}, "AddedBytes") && s.DB.Migrator().HasTable(&Backup{})
	if err := s.DB.AutoMigrate(&Backup{}, &Job{}, &Report{}, &Schedule{}, &Setting{}, &Token{}, &AuditEntry{}, &Delivery{}, &Host{}, &Enrolment{}, &HostGrant{}, &Drill{}, &DrillRun{}, &Approval{}); err != nil {
		return fmt.Errorf("catalog migration: %w", err)
	}
	if addedIsNew {
		if err := s.DB.Exec("UPDATE backups SET added_bytes = compressed_bytes").Error; err != nil {
			return fmt.Errorf("catalog migration (added_bytes): %w", err)
		}
	}
	return nil
}

// Close closes the connections.
func (s *Store) Close() error {
	sqlDB, err := s.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Generation changes after every write through the Store.
func (s *Store) Generation() int64 { return s.gen.Load() }

func (s *Store) wrote(err error) error {
	s.gen.Add(1)
	return err
}

func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}

// ---- backups

// PutBackup inserts or replaces a backup row.
func (s *Store) PutBackup(ctx context.Context, b *Backup) error {
	if err := s.wrote(s.DB.WithContext(ctx).Save(b).Error); err != nil {
		return err
	}
	return s.noteLastBackup(ctx, b)
}

// InsertBackupIfAbsent stores b unless a backup with its id exists (which
// is then left untouched); it reports whether b was stored.
func (s *Store) InsertBackupIfAbsent(ctx context.Context, b *Backup) (bool, error) {
	r := s.DB.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(b)
	if err := s.wrote(r.Error); err != nil {
		return false, err
	}
	return r.RowsAffected == 1, nil
}

// AddBackupLocation adds loc to a backup's locations, reading the row
// fresh (a caller's copy may be stale); it reports whether it added it.
func (s *Store) AddBackupLocation(ctx context.Context, id, loc string) (bool, error) {
	added := false
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var b Backup
		if err := tx.First(&b, "id = ?", id).Error; err != nil {
			return notFound(err)
		}
		for _, l := range b.Locations {
			if l == loc {
				return nil
			}
		}
		added = true
		return tx.Model(&Backup{}).Where("id = ?", id).Update("locations", append(b.Locations, loc)).Error
	})
	return added, s.wrote(err)
}

// UpdateBackup sets the given columns of one backup.
func (s *Store) UpdateBackup(ctx context.Context, id string, fields map[string]any) error {
	r := s.DB.WithContext(ctx).Model(&Backup{}).Where("id = ?", id).Updates(fields)
	if r.Error == nil && r.RowsAffected == 0 {
		return ErrNotFound
	}
	return s.wrote(r.Error)
}

// GetBackup returns one backup.
func (s *Store) GetBackup(ctx context.Context, id string) (*Backup, error) {
	var b Backup
	if err := s.DB.WithContext(ctx).First(&b, "id = ?", id).Error; err != nil {
		return nil, notFound(err)
	}
	return &b, nil
}

// DeleteBackup removes a backup row.
func (s *Store) DeleteBackup(ctx context.Context, id string) error {
	var hosts []string
	s.DB.WithContext(ctx).Model(&Backup{}).Where("id = ?", id).Pluck("host", &hosts)
	if err := s.wrote(s.DB.WithContext(ctx).Delete(&Backup{}, "id = ?", id).Error); err != nil {
		return err
	}
	if len(hosts) == 1 && hosts[0] != "" {
		return s.forgetLastBackup(ctx, hosts[0], id)
	}
	return nil
}

// BackupFilter selects backups.
type BackupFilter struct {
	Type, Status, ScheduleID string
	Since, Until             *time.Time
	// Hosts: only backups recorded under one of these host names
	Hosts       []string
	Limit, Page int // Page is 1-based
}

func (f BackupFilter) apply(q *gorm.DB) *gorm.DB {
	if f.Hosts != nil {
		q = q.Where("host IN ?", f.Hosts)
	}
	if f.Type != "" {
		q = q.Where("type = ?", f.Type)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.ScheduleID != "" {
		q = q.Where("schedule_id = ?", f.ScheduleID)
	}
	if f.Since != nil {
		q = q.Where("timestamp >= ?", f.Since.UTC())
	}
	if f.Until != nil {
		q = q.Where("timestamp <= ?", f.Until.UTC())
	}
	return q
}

// BackupTotals are the list's summary, computed by the database.
type BackupTotals struct {
	Total           int64
	ByType          map[string]int64
	SizeBytes       int64
	CompressedBytes int64
	AddedBytes      int64
}

// ListBackups returns one page of backups, newest first.
func (s *Store) ListBackups(ctx context.Context, f BackupFilter) ([]Backup, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	if f.Page <= 0 {
		f.Page = 1
	}
	var out []Backup
	err := f.apply(s.DB.WithContext(ctx).Model(&Backup{})).Order("timestamp DESC, id DESC").
		Limit(f.Limit).Offset((f.Page - 1) * f.Limit).Find(&out).Error
	return out, err
}

// BackupTotals counts and sums the backups the filter selects (paging
// ignored), grouped by type, in one query.
func (s *Store) BackupTotals(ctx context.Context, f BackupFilter) (BackupTotals, error) {
	var rows []struct {
		Type       string
		N          int64
		Size       int64
		Compressed int64
		Added      int64
	}
	err := f.apply(s.DB.WithContext(ctx).Model(&Backup{})).
		Select("type, COUNT(*) AS n, COALESCE(SUM(size_bytes),0) AS size, COALESCE(SUM(compressed_bytes),0) AS compressed, COALESCE(SUM(added_bytes),0) AS added").
		Group("type").Scan(&rows).Error
	t := BackupTotals{ByType: map[string]int64{}}
	for _, r := range rows {
		t.Total += r.N
		t.ByType[r.Type] = r.N
		t.SizeBytes += r.Size
		t.CompressedBytes += r.Compressed
		t.AddedBytes += r.Added
	}
	return t, err
}

// ChildBackups lists the backups whose parent or base is id.
func (s *Store) ChildBackups(ctx context.Context, id string) ([]string, error) {
	var ids []string
	err := s.DB.WithContext(ctx).Model(&Backup{}).Where("parent_backup = ? OR base_backup = ?", id, id).
		Order("timestamp").Pluck("id", &ids).Error
	return ids, err
}

// LatestBackup is the newest backup with the given status whose
// components are exactly comps (sorted), of one of types (any if empty).
func (s *Store) LatestBackup(ctx context.Context, hosts []string, comps []string, status string, types ...string) (*Backup, error) {
	q := onHosts(s.DB.WithContext(ctx), hosts).Where("components = ?", Strings(comps)).Where("status = ?", status)
	if len(types) > 0 {
		q = q.Where("type IN ?", types)
	}
	var b Backup
	if err := q.Order("timestamp DESC").First(&b).Error; err != nil {
		return nil, notFound(err)
	}
	return &b, nil
}

// ParentCandidates lists, newest first, up to limit completed backups
// stored in location whose components are exactly comps, of one of types
// (any if empty): where a new backup's parent is looked for before any
// manifest is read.
func (s *Store) ParentCandidates(ctx context.Context, hosts []string, comps []string, location string, limit int, types ...string) ([]string, error) {
	sorted := append([]string(nil), comps...)
	sort.Strings(sorted)
	q := onHosts(s.DB.WithContext(ctx), hosts).Where("components = ? AND status = ?", Strings(sorted), "completed")
	if len(types) > 0 {
		q = q.Where("type IN ?", types)
	}
	var rows []Backup
	// a few more rows than wanted: some may not be in this location
	if err := q.Order("timestamp DESC").Limit(4 * limit).Find(&rows).Error; err != nil {
		return nil, err
	}
	var out []string
	for _, b := range rows {
		if slices.Contains(b.Locations, location) && !slices.Contains(b.MissingFrom, location) && len(out) < limit {
			out = append(out, b.ID)
		}
	}
	return out, nil
}

// StatusCounts counts backups by status, optionally since a time.
func (s *Store) StatusCounts(ctx context.Context, since *time.Time) (map[string]int64, error) {
	var rows []struct {
		Status string
		N      int64
	}
	q := s.DB.WithContext(ctx).Model(&Backup{})
	if since != nil {
		q = q.Where("timestamp >= ?", since.UTC())
	}
	err := q.Select("status, COUNT(*) AS n").Group("status").Scan(&rows).Error
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, err
}

// LastBackupWithStatus is the newest backup in one of the statuses.
func (s *Store) LastBackupWithStatus(ctx context.Context, hosts []string, statuses ...string) (*Backup, error) {
	var b Backup
	if err := onHosts(s.DB.WithContext(ctx), hosts).Where("status IN ?", statuses).Order("timestamp DESC").First(&b).Error; err != nil {
		return nil, notFound(err)
	}
	return &b, nil
}

// BackupsBetween returns backups started in [from, to], oldest first,
// at most limit rows.
func (s *Store) BackupsBetween(ctx context.Context, from, to time.Time, limit int) ([]Backup, error) {
	var out []Backup
	err := s.DB.WithContext(ctx).Where("timestamp >= ? AND timestamp <= ?", from.UTC(), to.UTC()).
		Order("timestamp").Limit(limit).Find(&out).Error
	return out, err
}

// AllBackups returns every backup row with one of the statuses, oldest
// first (retention and health decisions need the whole history).
func (s *Store) AllBackups(ctx context.Context, statuses ...string) ([]Backup, error) {
	return s.BackupsOfHosts(ctx, nil, statuses...)
}

// BackupsOfHosts is AllBackups of these hosts' backups alone (nil: all).
func (s *Store) BackupsOfHosts(ctx context.Context, hosts []string, statuses ...string) ([]Backup, error) {
	var out []Backup
	q := onHosts(s.DB.WithContext(ctx), hosts)
	if len(statuses) > 0 {
		q = q.Where("status IN ?", statuses)
	}
	err := q.Order("timestamp").Find(&out).Error
	return out, err
}

// ---- jobs

// PutJob inserts or replaces a job.
func (s *Store) PutJob(ctx context.Context, j *Job) error {
	return s.wrote(s.DB.WithContext(ctx).Save(j).Error)
}

// CreateJobIfMissing inserts a job unless one with its id exists.
func (s *Store) CreateJobIfMissing(ctx context.Context, j *Job) error {
	return s.wrote(s.DB.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(j).Error)
}

// UpdateJob sets columns of one job.
func (s *Store) UpdateJob(ctx context.Context, id string, fields map[string]any) error {
	r := s.DB.WithContext(ctx).Model(&Job{}).Where("id = ?", id).Updates(fields)
	if r.Error == nil && r.RowsAffected == 0 {
		return ErrNotFound
	}
	return s.wrote(r.Error)
}

// GetJob returns one job by its id.
func (s *Store) GetJob(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := s.DB.WithContext(ctx).First(&j, "id = ?", id).Error; err != nil {
		return nil, notFound(err)
	}
	return &j, nil
}

// GetJobByRun finds the job a workflow run belongs to.
func (s *Store) GetJobByRun(ctx context.Context, workflowID, runID string) (*Job, error) {
	var j Job
	if err := s.DB.WithContext(ctx).Where("workflow_id = ? AND run_id = ?", workflowID, runID).First(&j).Error; err != nil {
		return nil, notFound(err)
	}
	return &j, nil
}

// GetJobByRef returns the job of a restore, verification, cleanup or
// repair id, or the newest job of a backup id (kind api.JobBackup).
func (s *Store) GetJobByRef(ctx context.Context, kind api.JobType, ref string) (*Job, error) {
	var j Job
	q := s.DB.WithContext(ctx).Where("type = ?", string(kind))
	if kind == api.JobBackup {
		q = q.Where("backup_id = ?", ref)
	} else {
		q = q.Where("ref_id = ?", ref)
	}
	if err := q.Order("started DESC").First(&j).Error; err != nil {
		return nil, notFound(err)
	}
	return &j, nil
}

// JobFilter selects jobs.
type JobFilter struct {
	Type     api.JobType
	Statuses []string
	// Host: only this host's jobs ("" with HostSet: the server's own)
	Host    string
	HostSet bool
	Limit   int
	Page    int
}

// ListJobs returns jobs, newest first.
func (s *Store) ListJobs(ctx context.Context, f JobFilter) ([]Job, error) {
	q := s.jobQuery(ctx, f)
	if f.Limit <= 0 {
		f.Limit = 20
	}
	if f.Page <= 0 {
		f.Page = 1
	}
	var out []Job
	err := q.Order("started DESC, id DESC").Limit(f.Limit).Offset((f.Page - 1) * f.Limit).Find(&out).Error
	return out, err
}

// CountJobs counts the jobs a filter selects, on every page.
func (s *Store) CountJobs(ctx context.Context, f JobFilter) (int64, error) {
	var n int64
	err := s.jobQuery(ctx, f).Count(&n).Error
	return n, err
}

func (s *Store) jobQuery(ctx context.Context, f JobFilter) *gorm.DB {
	q := s.DB.WithContext(ctx).Model(&Job{})
	if f.Type != "" {
		q = q.Where("type = ?", string(f.Type))
	}
	if len(f.Statuses) > 0 {
		q = q.Where("status IN ?", f.Statuses)
	}
	if f.HostSet {
		q = q.Where("host = ?", f.Host)
	}
	return q
}

// JobCounts counts jobs by status, all of them or those started since.
func (s *Store) JobCounts(ctx context.Context, since *time.Time) (map[string]int64, error) {
	var rows []struct {
		Status string
		N      int64
	}
	q := s.DB.WithContext(ctx).Model(&Job{})
	if since != nil {
		q = q.Where("started >= ?", since.UTC())
	}
	err := q.Select("status, COUNT(*) AS n").Group("status").Scan(&rows).Error
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, err
}

// ---- reports

// PutReport inserts or replaces a report.
func (s *Store) PutReport(ctx context.Context, r *Report) error {
	return s.wrote(s.DB.WithContext(ctx).Save(r).Error)
}

// GetReport returns one report.
func (s *Store) GetReport(ctx context.Context, id string) (*Report, error) {
	var r Report
	if err := s.DB.WithContext(ctx).First(&r, "id = ?", id).Error; err != nil {
		return nil, notFound(err)
	}
	return &r, nil
}

// LatestReport is the newest report of a kind.
func (s *Store) LatestReport(ctx context.Context, kind api.JobType) (*Report, error) {
	var r Report
	if err := s.DB.WithContext(ctx).Where("kind = ?", string(kind)).Order("created_at DESC").First(&r).Error; err != nil {
		return nil, notFound(err)
	}
	return &r, nil
}

// ---- schedules

// PutSchedule inserts or replaces a schedule.
func (s *Store) PutSchedule(ctx context.Context, sc *Schedule) error {
	return s.wrote(s.DB.WithContext(ctx).Save(sc).Error)
}

// GetSchedule returns one schedule.
func (s *Store) GetSchedule(ctx context.Context, id string) (*Schedule, error) {
	var sc Schedule
	if err := s.DB.WithContext(ctx).First(&sc, "id = ?", id).Error; err != nil {
		return nil, notFound(err)
	}
	return &sc, nil
}

// ListSchedules returns every schedule by id.
func (s *Store) ListSchedules(ctx context.Context) ([]Schedule, error) {
	var out []Schedule
	err := s.DB.WithContext(ctx).Order("id").Find(&out).Error
	return out, err
}

// DeleteSchedule removes one schedule.
func (s *Store) DeleteSchedule(ctx context.Context, id string) error {
	return s.wrote(s.DB.WithContext(ctx).Delete(&Schedule{}, "id = ?", id).Error)
}

// ---- settings

// GetSetting decodes the named document into v; false if absent.
func (s *Store) GetSetting(ctx context.Context, name string, v any) (bool, error) {
	var st Setting
	err := s.DB.WithContext(ctx).First(&st, "name = ?", name).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, st.Body.Decode(v)
}

// PutSetting stores v under name.
func (s *Store) PutSetting(ctx context.Context, name string, v any) error {
	return s.wrote(s.DB.WithContext(ctx).Save(&Setting{Name: name, Body: ToJSON(v)}).Error)
}

// ServerSecret is the server's named 32-byte secret, made at first use
// and kept in the catalog, so every replica and every restart has the
// same (the host gateway signs the task tokens it hands out with one).
// It is not a setting: no endpoint shows it.
func (s *Store) ServerSecret(ctx context.Context, name string) ([]byte, error) {
	key := "secret:" + name
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	// whoever comes first makes it; the others read theirs
	if err := s.DB.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&Setting{Name: key, Body: ToJSON(hex.EncodeToString(fresh))}).Error; err != nil {
		return nil, s.wrote(err)
	}
	var h string
	if ok, err := s.GetSetting(ctx, key, &h); err != nil || !ok {
		return nil, fmt.Errorf("server secret %s: %v", name, err)
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("server secret %s in the catalog is damaged (not 32 bytes of hex): delete its row (settings, name %q) and restart to make a new one", name, key)
	}
	return b, nil
}

// ---- tokens

// Roles, weakest first.
var Roles = []string{"viewer", "operator", "admin"}

// RoleRank orders roles; -1 for an unknown one.
func RoleRank(role string) int {
	for i, r := range Roles {
		if r == role {
			return i
		}
	}
	return -1
}

// TokenPrefix starts every token, so secret scanners can find leaked ones.
const TokenPrefix = "bkd_"

// HashToken is the stored form of a token. Tokens are 256 random bits, so
// a plain SHA-256 is enough (no dictionary to slow down).
func HashToken(plain string) string {
	h := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(h[:])
}

// CreateToken makes a new token and returns its plaintext (shown once).
func (s *Store) CreateToken(ctx context.Context, name, role, createdBy string, ttl time.Duration) (string, *Token, error) {
	if RoleRank(role) < 0 {
		return "", nil, fmt.Errorf("role %q (want viewer, operator or admin)", role)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", nil, err
	}
	idb := make([]byte, 6)
	rand.Read(idb)
	plain := TokenPrefix + base64.RawURLEncoding.EncodeToString(secret)
	t := &Token{ID: "tok-" + hex.EncodeToString(idb), Name: name, Role: role, Hash: HashToken(plain),
		CreatedBy: createdBy, CreatedAt: time.Now().UTC()}
	if ttl > 0 {
		exp := t.CreatedAt.Add(ttl)
		t.ExpiresAt = &exp
	}
	if err := s.wrote(s.DB.WithContext(ctx).Create(t).Error); err != nil {
		return "", nil, err
	}
	return plain, t, nil
}

// Authenticate returns the live token with this plaintext.
func (s *Store) Authenticate(ctx context.Context, plain string) (*Token, error) {
	if !strings.HasPrefix(plain, TokenPrefix) || len(plain) > 200 {
		return nil, ErrNotFound
	}
	var t Token
	if err := s.DB.WithContext(ctx).First(&t, "hash = ?", HashToken(plain)).Error; err != nil {
		return nil, notFound(err)
	}
	now := time.Now().UTC()
	if t.Revoked || (t.ExpiresAt != nil && now.After(*t.ExpiresAt)) {
		return nil, ErrNotFound
	}
	// last use, at most once a minute per token (no write per request)
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute {
		s.DB.WithContext(ctx).Model(&Token{}).Where("id = ?", t.ID).Update("last_used_at", now)
		t.LastUsedAt = &now
	}
	return &t, nil
}

// ListTokens returns every token (without secrets; only hashes are kept).
func (s *Store) ListTokens(ctx context.Context) ([]Token, error) {
	var out []Token
	err := s.DB.WithContext(ctx).Order("created_at").Find(&out).Error
	return out, err
}

// ValidTokenIDs returns which of ids name tokens that are neither revoked
// nor expired now.
func (s *Store) ValidTokenIDs(ctx context.Context, ids []string) (map[string]bool, error) {
	var ts []Token
	if err := s.DB.WithContext(ctx).Where("id IN ?", ids).Find(&ts).Error; err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	out := map[string]bool{}
	for _, t := range ts {
		if !t.Revoked && (t.ExpiresAt == nil || now.Before(*t.ExpiresAt)) {
			out[t.ID] = true
		}
	}
	return out, nil
}

// RevokeToken disables a token.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	r := s.DB.WithContext(ctx).Model(&Token{}).Where("id = ?", id).Update("revoked", true)
	if r.Error == nil && r.RowsAffected == 0 {
		return ErrNotFound
	}
	return s.wrote(r.Error)
}

// ---- audit

// Audit appends an entry.
func (s *Store) Audit(ctx context.Context, e *AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Count == 0 {
		e.Count = 1
	}
	clipAudit(e)
	return s.DB.WithContext(ctx).Create(e).Error
}

// FinishAudit records the outcome of a call audited before it ran.
func (s *Store) FinishAudit(ctx context.Context, e *AuditEntry) error {
	clipAudit(e)
	return s.DB.WithContext(ctx).Model(&AuditEntry{}).Where("id = ?", e.ID).
		Updates(map[string]any{"status": e.Status, "outcome": e.Outcome, "target": e.Target, "detail": e.Detail, "host": e.Host}).Error
}

// AddAuditCount adds n more attempts to an aggregated entry.
func (s *Store) AddAuditCount(ctx context.Context, id int64, n int) error {
	return s.DB.WithContext(ctx).Model(&AuditEntry{}).Where("id = ?", id).
		Update("count", gorm.Expr("count + ?", n)).Error
}

// clipAudit fits every field into its column (PostgreSQL refuses longer
// values, and a refused audit record fails the call it records): cut
// values end in "…".
func clipAudit(e *AuditEntry) {
	for _, f := range []struct {
		v *string
		n int
	}{{&e.Actor, ActorSize}, {&e.Role, 16}, {&e.Method, 8}, {&e.Path, 2000}, {&e.Action, 80}, {&e.Target, 500},
		{&e.RequestID, 64}, {&e.Outcome, 16}, {&e.Detail, 2000}, {&e.Remote, 100}} {
		*f.v = clip(*f.v, f.n)
	}
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// AuditFilter selects audit entries.
type AuditFilter struct {
	Actor, Action, Outcome string
	// HostSet: only the calls about Host ("": none in particular)
	Host         string
	HostSet      bool
	Since, Until *time.Time
	Limit, Page  int
}

// ListAudit returns entries newest first, and the total.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, int64, error) {
	q := s.DB.WithContext(ctx).Model(&AuditEntry{})
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.Outcome != "" {
		q = q.Where("outcome = ?", f.Outcome)
	}
	if f.HostSet {
		q = q.Where("host = ?", f.Host)
	}
	if f.Since != nil {
		q = q.Where("time >= ?", f.Since.UTC())
	}
	if f.Until != nil {
		q = q.Where("time <= ?", f.Until.UTC())
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, err
	}
	if f.Limit <= 0 {
		f.Limit = 50
	}
	if f.Page <= 0 {
		f.Page = 1
	}
	var out []AuditEntry
	err := q.Order("id DESC").Limit(f.Limit).Offset((f.Page - 1) * f.Limit).Find(&out).Error
	return out, total, err
}

// ---- deliveries

// GetDelivery returns one delivery record.
func (s *Store) GetDelivery(ctx context.Context, id string) (*Delivery, error) {
	var d Delivery
	if err := s.DB.WithContext(ctx).First(&d, "id = ?", id).Error; err != nil {
		return nil, notFound(err)
	}
	return &d, nil
}

// PutDelivery inserts or replaces a delivery record.
func (s *Store) PutDelivery(ctx context.Context, d *Delivery) error {
	return s.DB.WithContext(ctx).Save(d).Error
}

// Deliveries lists a job's deliveries.
func (s *Store) Deliveries(ctx context.Context, jobID string) ([]Delivery, error) {
	var out []Delivery
	err := s.DB.WithContext(ctx).Where("job_id = ?", jobID).Order("id").Find(&out).Error
	return out, err
}

// NewestWithComponent is the newest backup of the given status that holds
// the component (ErrNotFound when none does): one indexed query, however
// long the catalog.
func (s *Store) NewestWithComponent(ctx context.Context, hosts []string, status, component string) (*Backup, error) {
	name, _ := json.Marshal(component) // the column holds a JSON list: match the quoted name
	pattern := "%" + likeEscaper.Replace(string(name)) + "%"
	var out []Backup
	err := onHosts(s.DB.WithContext(ctx), hosts).Where("status = ? AND components LIKE ? ESCAPE '\\'", status, pattern).
		Order("timestamp DESC, id DESC").Limit(1).Find(&out).Error
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || !slices.Contains(out[0].Components, component) {
		return nil, ErrNotFound
	}
	return &out[0], nil
}

// onHosts keeps q to the backups of hosts (nil: every host's). An
// enrolled host's backups say only what that host claims: what the server
// decides about its own host (freshness, health, parents) is read from
// its own backups alone.
func onHosts(q *gorm.DB, hosts []string) *gorm.DB {
	if hosts == nil {
		return q
	}
	return q.Where("host IN ?", hosts)
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
