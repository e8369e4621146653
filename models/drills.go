package models

import (
	"context"
	"time"
)

// Drill is a restore drill's definition (its Temporal schedule fires it).
// Select, Components, WithinDays, BackupIDs and Location choose what each
// run restores; Checks (JSON, api.DrillCheck) run after.
type Drill struct {
	ID          string  `gorm:"primaryKey;size:120"`
	Name        string  `gorm:"size:200"`
	Description string  `gorm:"size:2000"`
	Enabled     bool    `gorm:"not null"`
	Frequency   string  `gorm:"size:16"`
	Time        string  `gorm:"size:8"`
	Day         string  `gorm:"size:16"`
	Timezone    string  `gorm:"size:64"`
	Select      string  `gorm:"size:16"`
	Components  Strings `gorm:"type:text"`
	WithinDays  int
	BackupIDs   Strings `gorm:"type:text"`
	// select unverified: verified longer ago than this is due again, and
	// at most MaxBackups per run
	ReverifyAfterDays int
	MaxBackups        int
	Location          string `gorm:"size:120"`
	Checks            JSON   `gorm:"type:text"`
	// Notifications: on_success, on_failure, on_warning (as schedules')
	Notifications map[string]bool `gorm:"type:text;serializer:json"`
	CreatedBy     string          `gorm:"size:300"`
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// DrillRun is one run of a drill: its report (api.DrillReport) and what
// the metrics and the compliance report read without decoding it.
type DrillRun struct {
	ID       string    `gorm:"primaryKey;size:80"`
	DrillID  string    `gorm:"size:120;index:idx_drill_runs_drill,priority:1"`
	JobID    string    `gorm:"size:80;index"`
	Passed   bool      `gorm:"not null"`
	Started  time.Time `gorm:"index:idx_drill_runs_drill,priority:2"`
	Finished time.Time
	Body     JSON `gorm:"type:text"`
}

// PutDrill creates or replaces a drill.
func (s *Store) PutDrill(ctx context.Context, d *Drill) error {
	return s.wrote(s.DB.WithContext(ctx).Save(d).Error)
}

// GetDrill returns one drill.
func (s *Store) GetDrill(ctx context.Context, id string) (*Drill, error) {
	var d Drill
	if err := s.DB.WithContext(ctx).First(&d, "id = ?", id).Error; err != nil {
		return nil, notFound(err)
	}
	return &d, nil
}

// ListDrills returns every drill by id.
func (s *Store) ListDrills(ctx context.Context) ([]Drill, error) {
	var out []Drill
	err := s.DB.WithContext(ctx).Order("id").Find(&out).Error
	return out, err
}

// DeleteDrill removes a drill (its runs stay: they are the record).
func (s *Store) DeleteDrill(ctx context.Context, id string) error {
	return s.wrote(s.DB.WithContext(ctx).Delete(&Drill{}, "id = ?", id).Error)
}

// PutDrillRun records a run (again, when a retried record repeats it).
func (s *Store) PutDrillRun(ctx context.Context, r *DrillRun) error {
	return s.wrote(s.DB.WithContext(ctx).Save(r).Error)
}

// DrillRuns returns a drill's newest runs, newest first (every drill's
// when drillID is empty), at most limit.
func (s *Store) DrillRuns(ctx context.Context, drillID string, limit int) ([]DrillRun, error) {
	var out []DrillRun
	q := s.DB.WithContext(ctx).Order("started DESC, id DESC").Limit(limit)
	if drillID != "" {
		q = q.Where("drill_id = ?", drillID)
	}
	err := q.Find(&out).Error
	return out, err
}

// DrillRunsBetween returns the runs started in [from, to), oldest first.
func (s *Store) DrillRunsBetween(ctx context.Context, from, to time.Time) ([]DrillRun, error) {
	var out []DrillRun
	err := s.DB.WithContext(ctx).Where("started >= ? AND started < ?", from, to).Order("started, id").Find(&out).Error
	return out, err
}

// ReportsBetween returns the stored reports of a kind created in
// [from, to), oldest first.
func (s *Store) ReportsBetween(ctx context.Context, kind string, from, to time.Time) ([]Report, error) {
	var out []Report
	err := s.DB.WithContext(ctx).Where("kind = ? AND created_at >= ? AND created_at < ?", kind, from, to).
		Order("created_at, id").Find(&out).Error
	return out, err
}

// AuditGroup is a number of audited calls of one action, outcome and actor.
type AuditGroup struct {
	Action, Outcome, Actor string
	Calls                  int
}

// AuditGroups counts the audited calls of the given actions in [from, to)
// by action, outcome and actor.
func (s *Store) AuditGroups(ctx context.Context, actions []string, from, to time.Time) ([]AuditGroup, error) {
	var out []AuditGroup
	err := s.DB.WithContext(ctx).Model(&AuditEntry{}).
		Select("action, outcome, actor, SUM(CASE WHEN count > 1 THEN count ELSE 1 END) AS calls").
		Where("action IN ? AND time >= ? AND time < ?", actions, from.UTC(), to.UTC()).
		Group("action, outcome, actor").Order("action, outcome, actor").Scan(&out).Error
	return out, err
}

// Approvers are, by action, the admins who approved held calls that ran
// in [from, to).
func (s *Store) Approvers(ctx context.Context, from, to time.Time) (map[string][]string, error) {
	var rows []Approval
	err := s.DB.WithContext(ctx).Select("action", "decided_by").
		Where("status IN ? AND decided_at >= ? AND decided_at < ?", []string{"executed", "failed"}, from.UTC(), to.UTC()).
		Find(&rows).Error
	out := map[string][]string{}
	for _, r := range rows {
		out[r.Action] = append(out[r.Action], r.DecidedBy)
	}
	return out, err
}
