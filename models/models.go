// Package models is backupd's SQL catalog: an index of what the storage
// locations hold (backups) plus operational state (jobs, reports,
// schedules' metadata, storage settings, retention policies, API tokens,
// the audit log). The repositories stay the truth: `backupd catalog
// rebuild` recreates the backup rows from their manifests.
//
// The same code runs on SQLite (the embedded default, pure Go) and
// PostgreSQL; migrations run on Open.
package models

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"backupd/api"
)

// Backup is one backup as the catalog knows it.
type Backup struct {
	ID          string `gorm:"primaryKey;size:80"`
	Name        string `gorm:"size:200"`
	Description string `gorm:"size:2000"`
	Type        string `gorm:"size:16;not null;index:idx_backups_type_ts,priority:1"`
	Status      string `gorm:"size:16;not null;index:idx_backups_status_ts,priority:1"`
	// Timestamp is when the backup started (the spec's "timestamp").
	Timestamp time.Time `gorm:"not null;index;index:idx_backups_type_ts,priority:2;index:idx_backups_status_ts,priority:2;index:idx_backups_host_ts,priority:2"`
	Finished  *time.Time
	// SizeBytes is the content the backup holds; CompressedBytes what
	// that content takes in storage, compressed and encrypted, before
	// deduplication (SizeBytes/CompressedBytes is the compression ratio);
	// AddedBytes what the backup added to storage after deduplication
	// (CompressedBytes/AddedBytes what deduplication saved). README:
	// "Sizes and ratios".
	SizeBytes       int64
	CompressedBytes int64
	AddedBytes      int64
	Files           int64
	DurationSeconds float64
	Components      Strings          `gorm:"type:text"`
	ComponentSizes  map[string]int64 `gorm:"type:text;serializer:json"`
	// Locations holds the locations the backup is stored in (written or
	// copied); Requested the ones the request named.
	Locations Strings `gorm:"type:text"`
	// MissingFrom: locations the catalog lists but whose manifest is gone
	// (found by the server's reconciliation; shown in health).
	MissingFrom    Strings `gorm:"type:text"`
	Requested      Strings `gorm:"type:text"`
	Encryption     string  `gorm:"size:32"`
	Compression    string  `gorm:"size:16"`
	IntegrityCheck string  `gorm:"size:16"` // pending | passed | failed | not_run
	VerifiedAt     *time.Time
	RetentionDays  int
	ParentBackup   string `gorm:"size:80;index"`
	BaseBackup     string `gorm:"size:80"`
	ScheduleID     string `gorm:"size:120;index"`
	CreatedBy      string `gorm:"size:300"`
	JobID          string `gorm:"size:80;index"`
	Protected      bool
	KeyID          string `gorm:"size:80"`
	KeyVersion     string `gorm:"size:16"`
	ManifestHash   string `gorm:"size:100"`
	Host           string `gorm:"size:200;index:idx_backups_host_ts,priority:1"`
	SystemVersion  string `gorm:"size:200"`
	KernelVersion  string `gorm:"size:200"`
	HardwareID     string `gorm:"size:200"`
	Warnings       int64
	Error          string `gorm:"size:4000"`
	ErrorCode      string `gorm:"size:16"`
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Job is one durable job (a Temporal workflow run) as the API shows it.
type Job struct {
	ID      string      `gorm:"primaryKey;size:80"`
	Type    api.JobType `gorm:"size:16;not null;index:idx_jobs_type_started,priority:1"`
	Subtype string      `gorm:"size:40"`
	// Status: queued | running | paused | completed | partial | failed | cancelled
	Status string `gorm:"size:16;not null;index:idx_jobs_status_started,priority:1"`
	// RefID is the id the spec gives the job's object: restore_id,
	// verification_id or cleanup_id (backups use BackupID).
	RefID            string    `gorm:"size:80;index"`
	BackupID         string    `gorm:"size:80;index"`
	Host             string    `gorm:"size:63;index"` // the host it runs on ("": the server's own)
	Name             string    `gorm:"size:200"`
	User             string    `gorm:"size:300"`
	ScheduleID       string    `gorm:"size:120"`
	WorkflowID       string    `gorm:"size:300"`
	RunID            string    `gorm:"size:80"`
	Progress         float64   `gorm:"not null;default:0"`
	Started          time.Time `gorm:"not null;index;index:idx_jobs_type_started,priority:2;index:idx_jobs_status_started,priority:2"`
	Finished         *time.Time
	EstimatedBytes   int64
	EstimatedSeconds float64
	SizeBytes        int64
	Request          JSON   `gorm:"type:text"`
	Result           JSON   `gorm:"type:text"`
	Error            string `gorm:"size:4000"`
	ErrorCode        string `gorm:"size:16"`
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Report is a stored verification or cleanup report.
type Report struct {
	ID        string      `gorm:"primaryKey;size:80"`
	Kind      api.JobType `gorm:"size:16;not null"` // verify, cleanup or repair
	JobID     string      `gorm:"size:80;index"`
	BackupID  string      `gorm:"size:80;index"`
	Status    string      `gorm:"size:16"`
	Body      JSON        `gorm:"type:text"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Schedule keeps the user's schedule fields (Temporal keeps only calendar
// specs, not the frequency/time/day the user gave).
type Schedule struct {
	ID            string  `gorm:"primaryKey;size:120"`
	Name          string  `gorm:"size:200"`
	Description   string  `gorm:"size:2000"`
	Enabled       bool    `gorm:"not null"`
	Type          string  `gorm:"size:16"`
	Frequency     string  `gorm:"size:16"`
	Time          string  `gorm:"size:8"`
	Day           string  `gorm:"size:16"`
	Timezone      string  `gorm:"size:64"`
	Components    Strings `gorm:"type:text"`
	Locations     Strings `gorm:"type:text"`
	RetentionDays int
	Encryption    bool
	Compression   string          `gorm:"size:16"`
	Notifications map[string]bool `gorm:"type:text;serializer:json"`
	// Hosts or HostSelector: the schedule backs up enrolled hosts (each
	// its own run), not the server's own; CatchupMinutes is how long a
	// run waits for a host that is offline before it is missed.
	Hosts          Strings `gorm:"type:text"`
	HostSelector   string  `gorm:"size:500"`
	CatchupMinutes int
	CreatedBy      string `gorm:"size:300"`
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Setting is one named JSON document of live configuration: storage
// location overrides, policies, retention.
type Setting struct {
	Name      string `gorm:"primaryKey;size:80"`
	Body      JSON   `gorm:"type:text"`
	UpdatedAt time.Time
}

// Token is an API bearer token; only its SHA-256 is stored.
type Token struct {
	ID         string `gorm:"primaryKey;size:40"`
	Name       string `gorm:"size:200"`
	Role       string `gorm:"size:16;not null"`
	Hash       string `gorm:"size:64;not null;uniqueIndex"`
	CreatedBy  string `gorm:"size:300"`
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	Revoked    bool
	// HostID: a host credential's host (role host)
	HostID string `gorm:"size:40;index"`
	// TOTPSecret: the authenticator the token's holder enrolled, sealed
	// with a server secret; RequireTOTP: this token's destructive calls
	// need a current code (X-Backupd-TOTP).
	TOTPSecret  string `gorm:"size:300"`
	RequireTOTP bool
}

// ActorSize holds a token's name (at most 200 characters) with its id:
// every column naming who did something has room for it.
const ActorSize = 300

// AuditEntry records one mutating call, or one read of backup contents.
type AuditEntry struct {
	ID        int64     `gorm:"primaryKey;autoIncrement"`
	Time      time.Time `gorm:"not null;index"`
	Actor     string    `gorm:"size:300"` // token name (200) and id (40)
	Role      string    `gorm:"size:16"`
	Method    string    `gorm:"size:8"`
	Path      string    `gorm:"size:2000"`
	Action    string    `gorm:"size:80"`
	Target    string    `gorm:"size:500"`
	RequestID string    `gorm:"size:64;index"`
	Status    int
	Outcome   string `gorm:"size:16"` // success | failure | denied
	Detail    string `gorm:"size:2000"`
	Remote    string `gorm:"size:100"`
	// Host: the enrolled host the call concerned or came from ("": none,
	// or the server's own)
	Host string `gorm:"size:63;index"`
	// Count > 1: refused attempts from one source in one minute, recorded
	// as one entry (Time is the minute's first).
	Count int `gorm:"not null;default:1"`
}

// Delivery is one notification's delivery to one target.
type Delivery struct {
	ID        string `gorm:"primaryKey;size:200"` // job:event:target
	JobID     string `gorm:"size:80;index"`
	Event     string `gorm:"size:16"`
	Target    string `gorm:"size:120"`
	Status    string `gorm:"size:16"` // delivered | failed
	Attempts  int
	Error     string `gorm:"size:2000"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Strings is a string list stored as JSON text.
type Strings []string

// Value implements driver.Valuer.
func (s Strings) Value() (driver.Value, error) {
	if s == nil {
		return "[]", nil
	}
	b, err := json.Marshal([]string(s))
	return string(b), err
}

// Scan implements sql.Scanner.
func (s *Strings) Scan(v any) error {
	b, err := bytesOf(v)
	if err != nil || len(b) == 0 {
		*s = Strings{}
		return err
	}
	return json.Unmarshal(b, (*[]string)(s))
}

// JSON is a raw JSON document stored as text.
type JSON json.RawMessage

// Value implements driver.Valuer.
func (j JSON) Value() (driver.Value, error) {
	if len(j) == 0 {
		return "null", nil
	}
	return string(j), nil
}

// Scan implements sql.Scanner.
func (j *JSON) Scan(v any) error {
	b, err := bytesOf(v)
	if err != nil {
		return err
	}
	*j = append((*j)[:0], b...)
	return nil
}

// MarshalJSON keeps the document as it is.
func (j JSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return j, nil
}

// ToJSON marshals v for a JSON column.
func ToJSON(v any) JSON {
	b, err := json.Marshal(v)
	if err != nil {
		return JSON("null")
	}
	return JSON(b)
}

// Decode unmarshals the document into v.
func (j JSON) Decode(v any) error {
	if len(j) == 0 {
		return errors.New("empty document")
	}
	return json.Unmarshal(j, v)
}

func bytesOf(v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return x, nil
	case string:
		return []byte(x), nil
	}
	return nil, fmt.Errorf("cannot scan %T into a JSON column", v)
}
