package api

import "backupd/retention"

// CreateBackupRequest is the body of POST /backup/create.
type CreateBackupRequest struct {
	Name                  string       `json:"name,omitempty" maxLength:"200" doc:"a name for the backup (default <type>-manual-<time>)" example:"\"pre-maintenance-backup\""`
	Type                  string       `json:"type,omitempty" enum:"backup_type" doc:"default full"`
	Components            ComponentSet `json:"components" required:"true" doc:"the components to back up: at least one, by their configured names"`
	StorageLocations      []string     `json:"storage_locations,omitempty" doc:"configured location names; default the primary, or every enabled location when auto-replication is on" example:"[\"local\",\"cloud\"]"`
	Encryption            *bool        `json:"encryption,omitempty" doc:"backupd always encrypts (AES-256-GCM); false is answered with a warning"`
	Compression           string       `json:"compression,omitempty" enum:"compression" doc:"default the policy's default algorithm"`
	Description           string       `json:"description,omitempty" maxLength:"2000" example:"\"Manual backup before system maintenance\""`
	Priority              string       `json:"priority,omitempty" enum:"priority" doc:"default normal"`
	VerifyAfterCompletion bool         `json:"verify_after_completion,omitempty" doc:"run a verification when the backup completes"`
	NotifyOnCompletion    *bool        `json:"notify_on_completion,omitempty" doc:"send job_complete on the WebSocket (default true)"`
	RetentionDays         *int         `json:"retention_days,omitempty" minimum:"1" maximum:"36500" doc:"keep at least this many days, whatever the retention policy says"`
	Protected             bool         `json:"protected,omitempty" doc:"protect the backup from cleanup (needs the admin role)"`
	Host                  string       `json:"host,omitempty" maxLength:"63" doc:"the host to back up, by name or id (GET /backup/hosts); default the server's own. An enrolled host's components are the ones it reports; the job waits while the host is offline" example:"\"gw-berlin-01\""`
}

// RestoreRequest is the body of POST /backup/restore.
type RestoreRequest struct {
	BackupID                 string       `json:"backup_id" required:"true" minLength:"1" example:"\"backup-20250315-0200\""`
	RestoreType              string       `json:"restore_type,omitempty" enum:"restore_type" doc:"default full, or partial when components or paths are given"`
	Components               ComponentSet `json:"components,omitempty" doc:"the components to restore (default all of the backup's)"`
	Paths                    []string     `json:"paths,omitempty" doc:"restore only these paths (absolute, as backed up)"`
	TargetLocation           string       `json:"target_location,omitempty" doc:"\"original\" (the default), an absolute directory, or database:<name> for a database component" example:"\"original\""`
	StorageLocation          string       `json:"storage_location,omitempty" doc:"read from this location (default the first healthy one holding the backup)"`
	VerifyBeforeRestore      *bool        `json:"verify_before_restore,omitempty" doc:"check the backup before writing anything (default true)"`
	VerifyAfterRestore       bool         `json:"verify_after_restore,omitempty" doc:"compare what was written with the backup"`
	CreatePreRestoreSnapshot bool         `json:"create_pre_restore_snapshot,omitempty" doc:"with target original: back up what will be overwritten first (POST /backup/restore/rollback undoes the restore)"`
	Overwrite                bool         `json:"overwrite,omitempty" doc:"allow writing into a non-empty target"`
	// Mirror also removes, inside the restored components' source paths,
	// what the backup does not hold (a rollback does).
	Mirror      bool   `json:"mirror,omitempty" doc:"also remove, inside the restored components' paths, what the backup does not hold"`
	Description string `json:"description,omitempty" maxLength:"2000" example:"\"Restoring data after corruption issue\""`
	// Host restores an enrolled host's backup on that host (the default)
	// or on another enrolled host (the replacement of a lost one).
	Host string `json:"host,omitempty" doc:"for an enrolled host's backup: the enrolled host that restores it (default: the backup's own host); another host reads the backup only under a grant made for this restore and ended with it"`
}

// RollbackRequest is the body of POST /backup/restore/rollback: one of the ids.
type RollbackRequest struct {
	RestoreID string `json:"restore_id,omitempty" doc:"the restore to undo (or give job_id)"`
	JobID     string `json:"job_id,omitempty" doc:"the restore's job id (or give restore_id)"`
}

// VerifyRequest is the body of POST /backup/verify.
type VerifyRequest struct {
	BackupID        string   `json:"backup_id" required:"true" minLength:"1" example:"\"backup-20250315-0200\""`
	StorageLocation string   `json:"storage_location,omitempty" doc:"the copy to check (default the first location holding the backup)" example:"\"cloud\""`
	VerifyChecksum  *bool    `json:"verify_checksum,omitempty" doc:"read and check all data (default true)"`
	VerifySignature *bool    `json:"verify_signature,omitempty" doc:"always checked; accepted for the spec"`
	VerifyStructure *bool    `json:"verify_structure,omitempty" doc:"always checked; accepted for the spec"`
	ExtractTest     bool     `json:"extract_test,omitempty" doc:"also restore into a scratch directory and compare"`
	DetailedReport  *bool    `json:"detailed_report,omitempty" doc:"list every finding in the report (default true)"`
	ReadDataPercent *float64 `json:"read_data_percent,omitempty" minimum:"0" maximum:"100" doc:"read this share of the data (a sample) instead of all of it"`
}

// ScheduleRequest is the body of POST /backup/schedules: a new schedule
// gives frequency and components; an update gives only what changes.
type ScheduleRequest struct {
	ID               string          `json:"id" required:"true" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$" doc:"the schedule's id; an existing id updates that schedule" example:"\"schedule-custom-daily\""`
	Name             *string         `json:"name,omitempty" maxLength:"200" example:"\"Custom Daily Backup\""`
	Enabled          *bool           `json:"enabled,omitempty" doc:"default true"`
	Type             *string         `json:"type,omitempty" enum:"backup_type" doc:"default full"`
	Frequency        *string         `json:"frequency,omitempty" enum:"frequency" doc:"required for a new schedule"`
	Time             *string         `json:"time,omitempty" pattern:"^([01][0-9]|2[0-3]):[0-5][0-9]$" doc:"HH:MM in the schedule's time zone (daily, weekly, monthly); the minute for hourly" example:"\"01:00\""`
	Day              *string         `json:"day,omitempty" doc:"weekly: a weekday (Sunday..Saturday); monthly: a day of the month (1..31)"`
	Timezone         *string         `json:"timezone,omitempty" doc:"an IANA time zone (default UTC)" example:"\"UTC\""`
	Components       ComponentSet    `json:"components,omitempty" doc:"required for a new schedule"`
	StorageLocations []string        `json:"storage_locations,omitempty" example:"[\"local\",\"cloud\"]"`
	RetentionDays    *int            `json:"retention_days,omitempty" minimum:"1" maximum:"36500" example:"60"`
	Encryption       *bool           `json:"encryption,omitempty" doc:"backupd always encrypts; false is refused"`
	Compression      *string         `json:"compression,omitempty" enum:"compression"`
	Notifications    map[string]bool `json:"notifications,omitempty" keys:"notification" doc:"on_success, on_failure, on_warning" example:"{\"on_success\":true,\"on_failure\":true,\"on_warning\":false}"`
	Description      *string         `json:"description,omitempty" maxLength:"2000"`
	// Hosts or HostSelector make it a schedule of enrolled hosts.
	Hosts          []string `json:"hosts,omitempty" doc:"enrolled hosts (names or ids) the schedule backs up, each in a run of its own; [] turns it back into a schedule of the server's own host" example:"[\"gw-berlin-01\"]"`
	HostSelector   *string  `json:"host_selector,omitempty" maxLength:"500" doc:"or: the enrolled hosts whose labels match, resolved at each run (key=value,...); \"\" clears it" example:"\"site=berlin\""`
	CatchupMinutes *int     `json:"catchup_minutes,omitempty" minimum:"1" maximum:"10080" doc:"with hosts: how long a host's run waits for the host if it is offline; past it the run is recorded as missed (default 1440)"`
}

// CleanupRequest is the body of POST /backup/cleanup.
type CleanupRequest struct {
	DryRun             *bool    `json:"dry_run,omitempty" doc:"report what would be removed, remove nothing (default true)"`
	ForceCleanup       bool     `json:"force_cleanup,omitempty" doc:"remove even below the policy's minimum copies"`
	TargetStorage      []string `json:"target_storage,omitempty" doc:"locations to clean (default all)" example:"[\"local\",\"cloud\"]"`
	IgnoreProtected    *bool    `json:"ignore_protected,omitempty" doc:"true: protected backups become candidates like any other and may be removed (the choice is audited); default false: protected backups are never removed"`
	CleanupStrategy    string   `json:"cleanup_strategy,omitempty" enum:"cleanup_strategy" doc:"default oldest_first"`
	MaxBackupsToRemove *int     `json:"max_backups_to_remove,omitempty" minimum:"1" maximum:"100000" example:"50"`
	Reason             string   `json:"reason,omitempty" maxLength:"2000" example:"\"Manual cleanup before storage maintenance\""`
}

// StorageUpdateRequest is the body of POST /backup/storage/update: per
// location changes under the location's name, and the policies. The
// server decodes it key by key (a location name is checked against the
// configuration), so it has no unmarshaler of its own.
type StorageUpdateRequest struct {
	Policies   *PoliciesUpdate           `json:"policies,omitempty"`
	Monitoring *MonitoringUpdate         `json:"monitoring,omitempty" doc:"the same as policies.monitoring"`
	Locations  map[string]LocationUpdate `json:"-" additional:"true" doc:"changes to a location, under its configured name (local, cloud, remote, ...)"`
}

// LocationUpdate changes one storage location.
type LocationUpdate struct {
	Enabled          *bool   `json:"enabled,omitempty" doc:"the primary location cannot be disabled"`
	Quota            *string `json:"quota,omitempty" doc:"a size like 2TB, or unlimited" example:"\"2TB\""`
	RetentionPolicy  *string `json:"retention_policy,omitempty" doc:"a number of days, like \"60 days\"" example:"\"60 days\""`
	CompressionLevel *int    `json:"compression_level,omitempty" minimum:"1" maximum:"9" example:"9"`
	Bucket           *string `json:"bucket,omitempty" maxLength:"500" doc:"S3 locations; takes effect when the configuration file says so" example:"\"company-backups-new\""`
	Region           *string `json:"region,omitempty" maxLength:"500" doc:"S3 locations" example:"\"us-west-2\""`
	Path             *string `json:"path,omitempty" doc:"an absolute path without \"..\""`
	Host             *string `json:"host,omitempty" maxLength:"500" doc:"SFTP locations"`
}

// PoliciesUpdate changes the storage policies.
type PoliciesUpdate struct {
	Replication *ReplicationUpdate `json:"replication,omitempty"`
	Encryption  *EncryptionUpdate  `json:"encryption,omitempty"`
	Compression *CompressionUpdate `json:"compression,omitempty"`
	Monitoring  *MonitoringUpdate  `json:"monitoring,omitempty"`
}

// ReplicationUpdate changes the 3-2-1 policy.
type ReplicationUpdate struct {
	Enabled       *bool `json:"enabled,omitempty"`
	AutoReplicate *bool `json:"auto_replicate,omitempty"`
	Copies        *int  `json:"copies,omitempty" minimum:"1" maximum:"10"`
	Offsite       *int  `json:"offsite,omitempty" minimum:"0" maximum:"10"`
}

// EncryptionUpdate changes the key policy.
type EncryptionUpdate struct {
	KeyRotationDays *int `json:"key_rotation_days,omitempty" minimum:"1" maximum:"3650" example:"30"`
}

// CompressionUpdate changes the default compression.
type CompressionUpdate struct {
	DefaultAlgorithm *string `json:"default_algorithm,omitempty" enum:"compression"`
	Level            *int    `json:"level,omitempty" minimum:"1" maximum:"9"`
}

// MonitoringUpdate changes the usage alert thresholds (percent).
type MonitoringUpdate struct {
	ThresholdWarning  *int  `json:"threshold_warning,omitempty" minimum:"1" maximum:"100" example:"75"`
	ThresholdCritical *int  `json:"threshold_critical,omitempty" minimum:"1" maximum:"100" doc:"above threshold_warning" example:"90"`
	UsageAlerts       *bool `json:"usage_alerts,omitempty"`
	AutoCleanup       *bool `json:"auto_cleanup,omitempty"`
}

// RetentionUpdateRequest is the body of POST /backup/retention.
type RetentionUpdateRequest struct {
	Policies  *retention.Policy       `json:"retention_policies,omitempty" doc:"replaces the retention policies"`
	Rules     *retention.CleanupRules `json:"cleanup_rules,omitempty" doc:"replaces the cleanup rules"`
	Protected *[]string               `json:"protected_backups,omitempty" doc:"the full list of protected backups (others are unprotected)"`
	Protect   []string                `json:"protect,omitempty" doc:"backups to protect"`
	Unprotect []string                `json:"unprotect,omitempty" doc:"backups to unprotect"`
}

// CancelRequest is the body of POST /backup/jobs/cancel.
type CancelRequest struct {
	JobID   string `json:"job_id" required:"true" minLength:"1" example:"\"BACKUP-JOB-9921X\""`
	Reason  string `json:"reason,omitempty" maxLength:"2000" example:"\"User requested cancellation due to system maintenance\""`
	Cleanup *bool  `json:"cleanup,omitempty" doc:"a cancelled job always removes its partial data; false is refused"`
}

// JobRequest is the body of POST /backup/jobs/pause and /resume.
type JobRequest struct {
	JobID string `json:"job_id" required:"true" minLength:"1"`
}

// RepairRequest is the body of POST /backup/repair.
type RepairRequest struct {
	BackupIDs []string `json:"backup_ids,omitempty" doc:"the backups to repair (default every backup the 3-2-1 policy says is short)"`
	DryRun    bool     `json:"dry_run,omitempty" doc:"only answer the plan"`
}

// ProtectRequest is the body of POST /backup/{backup_id}/protect.
type ProtectRequest struct {
	Protected bool `json:"protected" doc:"true protects the backup from cleanup, false (the default) lifts the protection"`
}

// TokenRequest is the body of POST /backup/tokens.
type TokenRequest struct {
	Name         string `json:"name" required:"true" minLength:"1" maxLength:"200" doc:"who or what uses the token" example:"\"nightly-report\""`
	Role         string `json:"role" required:"true" enum:"role"`
	ExpiresHours *int   `json:"expires_in_hours,omitempty" minimum:"1" maximum:"87600" doc:"default: never expires"`
	RequireTOTP  bool   `json:"require_totp,omitempty" doc:"the token's destructive calls (the ones approvals hold) need a current code of its authenticator in X-Backupd-TOTP; enrol it with POST /backup/tokens/self/totp"`
}

// Requests are the request body types, for the reflector and the tests.
var Requests = []any{CreateBackupRequest{}, RestoreRequest{}, RollbackRequest{}, VerifyRequest{}, ScheduleRequest{},
	CleanupRequest{}, StorageUpdateRequest{}, RetentionUpdateRequest{}, CancelRequest{}, JobRequest{}, RepairRequest{},
	ProtectRequest{}, TokenRequest{}, EnrolmentRequest{}, EnrolRequest{}, AnnounceRequest{}, HostQuotaRequest{}}
