package api

// Answers. A field the spec's example answer shows is required; a field
// backupd adds beside them is not (a client written against the spec
// ignores it), though the server always sends it unless omitempty says
// otherwise. Answers the spec shows no example of require every field
// they always carry.

// MaxPageSize is the most entries one page of any list holds (/list,
// /jobs, /audit): a list takes its page size as limit or page_size.
const MaxPageSize = 1000

// Pagination is every list's page description.
type Pagination struct {
	Total      int64 `json:"total" required:"true" minimum:"0" doc:"entries the filter selects, on all pages"`
	Page       int   `json:"page" required:"true" minimum:"1"`
	PageSize   int   `json:"page_size" required:"true" minimum:"1" maximum:"1000" doc:"as asked with limit or page_size"`
	TotalPages int64 `json:"total_pages" required:"true" minimum:"0"`
}

// NewPagination describes page (of size) of total entries.
func NewPagination(total int64, page, size int) Pagination {
	return Pagination{Total: total, Page: page, PageSize: size, TotalPages: (total + int64(size) - 1) / int64(size)}
}

// Token is an API token as listed: never its secret.
type Token struct {
	ID          string  `json:"id" required:"true"`
	Name        string  `json:"name" required:"true"`
	Role        string  `json:"role" required:"true" enum:"token_role" doc:"host: an enrolled host's credential"`
	CreatedBy   string  `json:"created_by" required:"true"`
	Created     string  `json:"created" required:"true" format:"date-time"`
	Expires     *string `json:"expires" required:"true" nullable:"true" format:"date-time" doc:"null: never expires"`
	LastUsed    *string `json:"last_used" required:"true" nullable:"true" format:"date-time"`
	Revoked     bool    `json:"revoked" required:"true"`
	TOTP        bool    `json:"totp" doc:"an authenticator is enrolled"`
	RequireTOTP bool    `json:"require_totp" doc:"its destructive calls need a TOTP code"`
}

// TokenList answers GET /backup/tokens.
type TokenList struct {
	Tokens []Token `json:"tokens" required:"true"`
}

// TokenCreated answers POST /backup/tokens: the only time the secret is shown.
type TokenCreated struct {
	Token
	Secret  string `json:"token" required:"true" doc:"the bearer token; only its hash is kept"`
	Message string `json:"message" required:"true"`
}

// TokenRevoked answers DELETE /backup/tokens/{token_id}.
type TokenRevoked struct {
	Status string `json:"status" required:"true" const:"revoked"`
	ID     string `json:"id" required:"true"`
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID        int64  `json:"id" required:"true"`
	Timestamp string `json:"timestamp" required:"true" format:"date-time"`
	Actor     string `json:"actor" required:"true" doc:"the token's name and id, or the source address of a refused attempt"`
	Role      string `json:"role" required:"true"`
	Method    string `json:"method" required:"true"`
	Path      string `json:"path" required:"true"`
	Action    string `json:"action" required:"true" example:"\"backup.create\""`
	Target    string `json:"target" required:"true" doc:"what the call acted on (a backup, job, schedule id)"`
	RequestID string `json:"request_id" required:"true"`
	Status    int    `json:"status" required:"true" doc:"the HTTP status answered (0 while started)"`
	Outcome   string `json:"outcome" required:"true" enum:"audit_outcome"`
	Detail    string `json:"detail" required:"true"`
	Remote    string `json:"remote" required:"true"`
	Count     int    `json:"count" required:"true" minimum:"1" doc:"refused attempts from one source in one minute, recorded once"`
	Host      string `json:"host,omitempty" doc:"the enrolled host the call concerned or came from"`
}

// AuditList answers GET /backup/audit.
type AuditList struct {
	Entries    []AuditEntry `json:"entries" required:"true"`
	Pagination Pagination   `json:"pagination" required:"true"`
}

// ProtectResponse answers POST /backup/{backup_id}/protect.
type ProtectResponse struct {
	Status    string `json:"status" required:"true" const:"updated"`
	BackupID  string `json:"backup_id" required:"true"`
	Protected bool   `json:"protected" required:"true"`
}

// JobControlResponse answers POST /backup/jobs/pause and /resume.
type JobControlResponse struct {
	Status   string `json:"status" required:"true" enum:"job_control"`
	JobID    string `json:"job_id" required:"true"`
	BackupID string `json:"backup_id" required:"true"`
	Message  string `json:"message" required:"true"`
}

// BackupSummary is one backup in GET /backup/list.
type BackupSummary struct {
	ID                  string          `json:"id" required:"true" example:"\"backup-20250315-0200\""`
	Name                string          `json:"name" required:"true" example:"\"full-nightly-backup\""`
	Timestamp           string          `json:"timestamp" required:"true" doc:"UTC, the spec's form YYYY-MM-DD HH:MM:SS" example:"\"2025-03-15 02:00:00\""`
	TimestampRFC3339    string          `json:"timestamp_rfc3339" format:"date-time"`
	Type                string          `json:"type" required:"true" enum:"backup_type"`
	Status              string          `json:"status" required:"true" doc:"in_progress, completed, partial, failed or cancelled"`
	Size                string          `json:"size" required:"true" example:"\"45.2 GB\""`
	SizeBytes           int64           `json:"size_bytes"`
	CompressedSize      string          `json:"compressed_size" required:"true" example:"\"22.1 GB\""`
	CompressedSizeBytes int64           `json:"compressed_size_bytes"`
	AddedSize           string          `json:"added_size" doc:"new data the backup stored (after deduplication)"`
	AddedSizeBytes      int64           `json:"added_size_bytes"`
	Duration            string          `json:"duration" required:"true" example:"\"25m 30s\""`
	DurationSeconds     float64         `json:"duration_seconds"`
	Components          map[string]bool `json:"components" required:"true" doc:"every configured component, true when the backup holds it"`
	StorageLocations    []string        `json:"storage_locations" required:"true"`
	Encryption          string          `json:"encryption" required:"true" example:"\"AES-256\""`
	Compression         string          `json:"compression"`
	IntegrityCheck      string          `json:"integrity_check" required:"true" doc:"pending, passed, failed or not_run"`
	Protected           bool            `json:"protected"`
	RetentionDays       int             `json:"retention_days,omitempty"`
	MissingFrom         []string        `json:"missing_from,omitempty" doc:"locations the catalog lists whose manifest is gone"`
	ParentBackup        string          `json:"parent_backup,omitempty"`
	BaseBackup          string          `json:"base_backup,omitempty"`
	Error               string          `json:"error,omitempty"`
	ErrorCode           string          `json:"error_code,omitempty"`
}

// BackupListSummary totals the backups a list's filter selects.
type BackupListSummary struct {
	FullBackups         int64  `json:"full_backups" required:"true"`
	IncrementalBackups  int64  `json:"incremental_backups" required:"true"`
	DifferentialBackups int64  `json:"differential_backups" required:"true"`
	SnapshotBackups     int64  `json:"snapshot_backups"`
	TotalSize           string `json:"total_size" required:"true"`
	TotalSizeBytes      int64  `json:"total_size_bytes"`
	CompressedSize      string `json:"compressed_size" required:"true"`
	CompressedSizeBytes int64  `json:"compressed_size_bytes"`
	AddedSize           string `json:"added_size"`
	AddedSizeBytes      int64  `json:"added_size_bytes"`
}

// BackupList answers GET /backup/list.
type BackupList struct {
	Backups    []BackupSummary   `json:"backups" required:"true"`
	Pagination Pagination        `json:"pagination" required:"true"`
	Summary    BackupListSummary `json:"summary" required:"true"`
}

// VerifyStarted answers POST /backup/verify.
type VerifyStarted struct {
	Status                   string   `json:"status" required:"true" const:"verification_started"`
	VerificationID           string   `json:"verification_id" required:"true" example:"\"VERIFY-8899\""`
	JobID                    string   `json:"job_id"`
	BackupID                 string   `json:"backup_id" required:"true"`
	StorageLocation          string   `json:"storage_location" required:"true" example:"\"cloud\""`
	EstimatedDuration        string   `json:"estimated_duration" required:"true" example:"\"5 minutes\""`
	EstimatedDurationSeconds float64  `json:"estimated_duration_seconds"`
	Checks                   []string `json:"checks" required:"true"`
	ReadDataPercent          float64  `json:"read_data_percent" minimum:"0" maximum:"100"`
	ExtractTest              bool     `json:"extract_test"`
	ReportURL                string   `json:"report_url" required:"true"`
}

// CleanupStarted answers POST /backup/cleanup.
type CleanupStarted struct {
	Status                     string   `json:"status" required:"true" const:"cleanup_started"`
	CleanupID                  string   `json:"cleanup_id" required:"true" example:"\"CLEANUP-3322\""`
	JobID                      string   `json:"job_id"`
	DryRun                     bool     `json:"dry_run" required:"true"`
	EstimatedDuration          string   `json:"estimated_duration" required:"true"`
	EstimatedDurationSeconds   float64  `json:"estimated_duration_seconds"`
	BackupsAnalyzed            int      `json:"backups_analyzed" required:"true"`
	BackupsCandidateForRemoval int      `json:"backups_candidate_for_removal" required:"true"`
	EstimatedSpaceToFree       string   `json:"estimated_space_to_free" required:"true"`
	EstimatedSpaceToFreeBytes  int64    `json:"estimated_space_to_free_bytes"`
	EstimateBasis              string   `json:"estimate_basis"`
	ProtectedBackupsExcluded   int      `json:"protected_backups_excluded" required:"true"`
	IgnoreProtected            bool     `json:"ignore_protected"`
	BackupsLeavingALocation    int      `json:"backups_leaving_a_location" doc:"backups removed from some of their locations only"`
	TargetStorage              []string `json:"target_storage"`
	CleanupStrategy            string   `json:"cleanup_strategy" enum:"cleanup_strategy"`
	Reason                     string   `json:"reason"`
	ReportURL                  string   `json:"report_url" required:"true"`
}

// CancelResponse answers POST /backup/jobs/cancel.
type CancelResponse struct {
	Status             string      `json:"status" required:"true" doc:"cancelled, or the job's status when it ended first or is still cleaning up"`
	JobID              string      `json:"job_id" required:"true"`
	Message            string      `json:"message" required:"true"`
	Reason             string      `json:"reason"`
	CleanupPerformed   bool        `json:"cleanup_performed" required:"true"`
	PartialDataRemoved bool        `json:"partial_data_removed" required:"true"`
	CanRestart         bool        `json:"can_restart" required:"true"`
	RestartInfo        RestartInfo `json:"restart_info" required:"true"`
}

// RestartInfo says whether and how a cancelled job can run again.
type RestartInfo struct {
	Possible       bool   `json:"possible" required:"true"`
	Recommendation string `json:"recommendation" required:"true"`
}

// ScheduleSaved answers POST /backup/schedules.
type ScheduleSaved struct {
	Status             string             `json:"status" required:"true" enum:"schedule_saved"`
	ScheduleID         string             `json:"schedule_id" required:"true"`
	Name               string             `json:"name" required:"true"`
	Message            string             `json:"message" required:"true"`
	Enabled            bool               `json:"enabled"`
	NextExecution      *string            `json:"next_execution" required:"true" nullable:"true" format:"date-time"`
	Validation         ScheduleValidation `json:"validation" required:"true"`
	Warnings           []string           `json:"warnings" doc:"what the schedule does not meet (the replication policy), accepted all the same"`
	TemporalScheduleID string             `json:"temporal_schedule_id"`
}

// ScheduleValidation are a saved schedule's checks.
type ScheduleValidation struct {
	ComponentsValid      bool `json:"components_valid" required:"true"`
	StorageValid         bool `json:"storage_valid" required:"true"`
	ScheduleValid        bool `json:"schedule_valid" required:"true"`
	RetentionValid       bool `json:"retention_valid" required:"true"`
	ReplicationPolicyMet bool `json:"replication_policy_met" doc:"false: the schedule's locations do not meet the 3-2-1 policy (see warnings)"`
}

// ScheduleAction answers DELETE /backup/schedules/{id} and POST .../trigger.
type ScheduleAction struct {
	Status     string `json:"status" required:"true" enum:"schedule_action"`
	ScheduleID string `json:"schedule_id" required:"true"`
	Message    string `json:"message" required:"true"`
}

// BackupStarted answers POST /backup/create.
type BackupStarted struct {
	Status                   string   `json:"status" required:"true" const:"started"`
	BackupID                 string   `json:"backup_id" required:"true" example:"\"backup-20250315-1430\""`
	Name                     string   `json:"name" required:"true"`
	JobID                    string   `json:"job_id" required:"true" example:"\"BACKUP-JOB-9921X\""`
	Type                     string   `json:"type" enum:"backup_type"`
	EstimatedSize            string   `json:"estimated_size" required:"true" example:"\"50 GB\""`
	EstimatedSizeBytes       int64    `json:"estimated_size_bytes"`
	EstimatedDuration        string   `json:"estimated_duration" required:"true" example:"\"30 minutes\""`
	EstimatedDurationSeconds float64  `json:"estimated_duration_seconds"`
	EstimateBasis            string   `json:"estimate_basis" doc:"what the estimate rests on"`
	Components               []string `json:"components" required:"true"`
	StorageLocations         []string `json:"storage_locations" required:"true"`
	Encryption               string   `json:"encryption" required:"true" example:"\"AES-256\""`
	Compression              string   `json:"compression" required:"true" enum:"compression"`
	Priority                 string   `json:"priority" enum:"priority"`
	ProgressURL              string   `json:"progress_url" required:"true"`
	Cancelable               bool     `json:"cancelable" required:"true"`
	Pausable                 bool     `json:"pausable" required:"true"`
	WorkflowID               string   `json:"workflow_id" doc:"the Temporal workflow"`
	TemporalUIURL            string   `json:"temporal_ui_url" doc:"the workflow in the Temporal Web UI (empty when none is configured)"`
	Warnings                 []string `json:"warnings,omitempty" doc:"what was asked and not done as asked, or breaks the replication policy; the backup runs"`
}

// RestoreStarted answers POST /backup/restore (and /restore/rollback).
type RestoreStarted struct {
	Status                    string    `json:"status" required:"true" const:"restore_started"`
	RestoreID                 string    `json:"restore_id" required:"true" example:"\"RESTORE-5567\""`
	BackupID                  string    `json:"backup_id" required:"true"`
	JobID                     string    `json:"job_id" required:"true" example:"\"RESTORE-JOB-7732Y\""`
	RestoreType               string    `json:"restore_type" enum:"restore_type"`
	Components                []string  `json:"components" required:"true"`
	StorageLocation           string    `json:"storage_location"`
	TargetLocation            string    `json:"target_location"`
	Host                      string    `json:"host,omitempty" doc:"the enrolled host that restores (for an enrolled host's backup)"`
	Databases                 int       `json:"databases" doc:"database dumps restored"`
	EstimatedSize             string    `json:"estimated_size" required:"true" example:"\"26.8 GB\""`
	EstimatedSizeBytes        int64     `json:"estimated_size_bytes"`
	EstimatedDuration         string    `json:"estimated_duration" required:"true" example:"\"15 minutes\""`
	EstimatedDurationSeconds  float64   `json:"estimated_duration_seconds"`
	Warning                   string    `json:"warning" required:"true"`
	PreRestoreSnapshotCreated bool      `json:"pre_restore_snapshot_created" required:"true"`
	SnapshotID                *string   `json:"snapshot_id" required:"true" nullable:"true" doc:"the pre-restore snapshot's backup id"`
	VerifyBeforeRestore       bool      `json:"verify_before_restore"`
	VerifyAfterRestore        bool      `json:"verify_after_restore"`
	ProgressURL               string    `json:"progress_url" required:"true"`
	TemporalUIURL             string    `json:"temporal_ui_url"`
	Rollback                  *Rollback `json:"rollback,omitempty" doc:"how to undo the restore, when a pre-restore snapshot is taken"`
	Warnings                  []string  `json:"warnings,omitempty"`
}

// Rollback says how to undo a restore.
type Rollback struct {
	BackupID       string `json:"backup_id" required:"true"`
	TargetLocation string `json:"target_location" required:"true"`
	How            string `json:"how" required:"true"`
}

// JobView is one job in GET /backup/jobs.
type JobView struct {
	ID             string  `json:"id" required:"true" example:"\"BACKUP-JOB-9921X\""`
	Type           JobType `json:"type" required:"true" enum:"job_type"`
	Subtype        string  `json:"subtype" required:"true" example:"\"manual_full\""`
	Status         string  `json:"status" required:"true" enum:"job_status"`
	Progress       int     `json:"progress" required:"true" minimum:"0" maximum:"100"`
	Started        string  `json:"started" example:"\"2025-03-15 14:30:00\""`
	StartedRFC3339 string  `json:"started_rfc3339" format:"date-time"`
	User           string  `json:"user" required:"true"`
	Name           string  `json:"name"`
	BackupID       string  `json:"backup_id,omitempty"`
	JobRefs
	ScheduleID          string    `json:"schedule_id,omitempty"`
	Cancelable          bool      `json:"cancelable"`
	Pausable            *bool     `json:"pausable,omitempty" doc:"running jobs: backups can be paused"`
	EstimatedCompletion string    `json:"estimated_completion,omitempty"`
	EstimatedSize       string    `json:"estimated_size,omitempty"`
	EstimatedSizeBytes  int64     `json:"estimated_size_bytes,omitempty"`
	Completed           string    `json:"completed,omitempty" doc:"finished jobs"`
	CompletedRFC3339    string    `json:"completed_rfc3339,omitempty" format:"date-time"`
	Duration            string    `json:"duration,omitempty"`
	DurationSeconds     *float64  `json:"duration_seconds,omitempty"`
	Size                string    `json:"size,omitempty"`
	SizeBytes           *int64    `json:"size_bytes,omitempty"`
	Error               *JobError `json:"error,omitempty"`
	TemporalUIURL       string    `json:"temporal_ui_url,omitempty" doc:"the job's workflow in the Temporal Web UI"`
}

// JobSummary counts jobs by state.
type JobSummary struct {
	Running        int64 `json:"running" required:"true"`
	Paused         int64 `json:"paused"`
	Queued         int64 `json:"queued" required:"true"`
	CompletedToday int64 `json:"completed_today" required:"true"`
	FailedToday    int64 `json:"failed_today" required:"true"`
	CancelledToday int64 `json:"cancelled_today"`
}

// JobList answers GET /backup/jobs.
type JobList struct {
	Jobs       []JobView  `json:"jobs" required:"true"`
	Pagination Pagination `json:"pagination"`
	Summary    JobSummary `json:"summary" required:"true"`
}

// JobProgress answers GET /backup/progress and /backup/restore/progress.
type JobProgress struct {
	Status        string                      `json:"status" required:"true" enum:"progress_status"`
	Outcome       string                      `json:"outcome" enum:"progress_outcome" doc:"completed, partial, failed, cancelled when the job ended"`
	JobID         string                      `json:"job_id" required:"true"`
	BackupID      string                      `json:"backup_id" required:"true"`
	RestoreID     string                      `json:"restore_id,omitempty" doc:"restores"`
	Progress      ProgressFigures             `json:"progress" required:"true"`
	Details       ProgressDetails             `json:"details" required:"true"`
	StorageStatus map[string]string           `json:"storage_status" doc:"each location's state (backups; the spec's form)"`
	Locations     map[string]LocationProgress `json:"locations" doc:"each location's state, a copy's bytes"`
	Paused        bool                        `json:"paused"`
	Started       string                      `json:"started" format:"date-time"`
	Finished      *string                     `json:"finished" nullable:"true" format:"date-time"`
	Waiting       string                      `json:"waiting,omitempty" doc:"why the job cannot move on"`
	ErrorMessages []string                    `json:"error_messages,omitempty"`
	Error         *JobError                   `json:"error,omitempty"`
	TemporalUIURL string                      `json:"temporal_ui_url,omitempty"`
	Notifications []Delivery                  `json:"notifications,omitempty" doc:"the job's notification deliveries"`
	Verification  map[string]string           `json:"verification,omitempty" doc:"restores: pre_restore and post_restore"`
	SnapshotID    string                      `json:"snapshot_id,omitempty" doc:"restores: the pre-restore snapshot"`
	Rollback      *Rollback                   `json:"rollback,omitempty" doc:"a failed restore with a snapshot: how to undo it"`
}

// ProgressFigures are a job's progress in the spec's words.
type ProgressFigures struct {
	Percentage          float64  `json:"percentage" required:"true" minimum:"0" maximum:"100" example:"65.5"`
	CurrentOperation    string   `json:"current_operation" required:"true" example:"\"compressing_data\""`
	CurrentComponent    string   `json:"current_component" required:"true"`
	ComponentsCompleted []string `json:"components_completed" required:"true"`
	ComponentsRemaining []string `json:"components_remaining" required:"true"`
	ComponentsFailed    []string `json:"components_failed"`
	Speed               string   `json:"speed" required:"true" example:"\"85 MB/s\""`
	SpeedBytesPerSecond float64  `json:"speed_bytes_per_second"`
	Processed           string   `json:"processed" required:"true" example:"\"32.7 GB\""`
	EstimatedTotal      string   `json:"estimated_total" required:"true" example:"\"50 GB\""`
	ETA                 string   `json:"eta" required:"true" example:"\"00:12:30\""`
	ETASeconds          float64  `json:"eta_seconds"`
	Elapsed             string   `json:"elapsed" required:"true" example:"\"00:17:45\""`
	ElapsedSeconds      float64  `json:"elapsed_seconds"`
}

// ProgressDetails are a job's exact figures.
type ProgressDetails struct {
	BytesProcessed int64  `json:"bytes_processed" required:"true"`
	BytesTotal     int64  `json:"bytes_total" required:"true"`
	BytesAdded     int64  `json:"bytes_added" doc:"new data the backup stored"`
	Components     int    `json:"components" required:"true"`
	ComponentsDone int    `json:"components_done" required:"true"`
	FilesProcessed int64  `json:"files_processed"`
	Errors         int    `json:"errors" required:"true"`
	Warnings       int64  `json:"warnings" required:"true"`
	FilesRestored  *int64 `json:"files_restored,omitempty" doc:"restores"`
	FilesTotal     *int64 `json:"files_total,omitempty" doc:"restores"`
}

// Delivery is one notification's delivery to one target.
type Delivery struct {
	Target   string  `json:"target" required:"true"`
	Event    string  `json:"event" required:"true"`
	Status   string  `json:"status" required:"true" doc:"delivered or failed"`
	Attempts int     `json:"attempts" required:"true"`
	Error    *string `json:"error" required:"true" nullable:"true"`
	At       string  `json:"at" required:"true" format:"date-time"`
}

// BackupDeletion answers DELETE /backup/{backup_id}.
type BackupDeletion struct {
	Status    string   `json:"status" required:"true" enum:"deletion_status" doc:"deleted (200): the backup was stored nowhere, only its entry went; deletion_started (202): a cleanup job removes it"`
	BackupID  string   `json:"backup_id" required:"true"`
	Locations []string `json:"locations" required:"true" doc:"the locations it is deleted from"`
	JobID     string   `json:"job_id,omitempty"`
	CleanupID string   `json:"cleanup_id,omitempty"`
	ReportURL string   `json:"report_url,omitempty"`
}

// ScheduleList answers GET /backup/schedules.
type ScheduleList struct {
	Schedules []ScheduleView  `json:"schedules" required:"true"`
	Summary   ScheduleSummary `json:"summary" required:"true"`
}

// ScheduleView is one schedule in GET /backup/schedules.
type ScheduleView struct {
	ID               string          `json:"id" required:"true" example:"\"schedule-nightly-full\""`
	Name             string          `json:"name" required:"true"`
	Enabled          bool            `json:"enabled" required:"true"`
	Type             string          `json:"type" required:"true" enum:"backup_type"`
	Frequency        string          `json:"frequency" required:"true" enum:"frequency"`
	Time             string          `json:"time,omitempty" doc:"HH:MM (the minute for hourly)" example:"\"02:00\""`
	Day              string          `json:"day,omitempty" doc:"weekly: a weekday; monthly: a day of the month"`
	Timezone         string          `json:"timezone" example:"\"UTC\""`
	Components       map[string]bool `json:"components" required:"true" doc:"every configured component, true when the schedule backs it up"`
	StorageLocations []string        `json:"storage_locations" required:"true"`
	RetentionDays    int             `json:"retention_days" required:"true"`
	Encryption       bool            `json:"encryption" required:"true"`
	Compression      string          `json:"compression" required:"true"`
	Notifications    map[string]bool `json:"notifications" nullable:"true" keys:"notification"`
	Description      string          `json:"description"`
	Hosts            []string        `json:"hosts,omitempty" doc:"the enrolled hosts it backs up"`
	HostSelector     string          `json:"host_selector,omitempty" doc:"the label selector of the enrolled hosts it backs up"`
	CatchupMinutes   int             `json:"catchup_minutes,omitempty" doc:"how long a host's run waits for an offline host"`
	LastExecution    *LastExecution  `json:"last_execution" required:"true" nullable:"true" doc:"the newest backup the schedule took"`
	NextExecution    *string         `json:"next_execution" required:"true" nullable:"true" format:"date-time"`
	*ScheduleRuns
	TemporalError string `json:"temporal_error,omitempty" doc:"why Temporal could not describe the schedule"`
}

// LastExecution is a schedule's newest backup.
type LastExecution struct {
	Timestamp       string  `json:"timestamp" required:"true" format:"date-time"`
	Status          string  `json:"status" required:"true" doc:"success, warning (partial), failed, cancelled or running"`
	BackupID        string  `json:"backup_id" required:"true"`
	Size            string  `json:"size" required:"true" example:"\"45.2 GB\""`
	SizeBytes       int64   `json:"size_bytes"`
	Duration        string  `json:"duration" required:"true" example:"\"25m 30s\""`
	DurationSeconds float64 `json:"duration_seconds"`
}

// ScheduleRuns are Temporal's counts of a schedule's runs (absent when
// Temporal cannot describe the schedule).
type ScheduleRuns struct {
	Executions          int           `json:"executions"`
	SkippedOverlap      int           `json:"skipped_overlap" doc:"runs skipped because the previous backup was still running"`
	MissedCatchupWindow int           `json:"missed_catchup_window"`
	NextExecutions      []string      `json:"next_executions,omitempty" format:"date-time" doc:"the next runs as Temporal computes them (up to 5), in the schedule's time zone: daylight saving time shows in their offsets"`
	RecentExecutions    []ScheduleRun `json:"recent_executions,omitempty" doc:"the latest runs Temporal started, newest first"`
}

// ScheduleRun is one run a schedule started.
type ScheduleRun struct {
	ScheduledAt   string `json:"scheduled_at" required:"true" format:"date-time"`
	StartedAt     string `json:"started_at" required:"true" format:"date-time"`
	WorkflowID    string `json:"workflow_id" required:"true"`
	TemporalUIURL string `json:"temporal_ui_url,omitempty"`
}

// ScheduleSummary counts the schedules.
type ScheduleSummary struct {
	TotalSchedules int            `json:"total_schedules" required:"true"`
	Enabled        int            `json:"enabled" required:"true"`
	Disabled       int            `json:"disabled" required:"true"`
	ByFrequency    map[string]int `json:"by_frequency" required:"true" doc:"hourly, daily, weekly and monthly, always"`
}

// RepairPlan answers POST /backup/repair: the plan, and the job that
// carries it out unless it is a dry run or there is nothing to do.
type RepairPlan struct {
	Status          string       `json:"status" required:"true" enum:"repair_status"`
	BackupsShort    int          `json:"backups_short" required:"true" doc:"backups that fall short of the replication policy"`
	BackupsToRepair int          `json:"backups_to_repair" required:"true" doc:"those a copy can be added for"`
	Plan            []RepairItem `json:"plan" required:"true"`
	RepairID        string       `json:"repair_id,omitempty" example:"\"REPAIR-1A2B3C\""`
	JobID           string       `json:"job_id,omitempty"`
	ReportURL       string       `json:"report_url,omitempty"`
}
