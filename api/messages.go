package api

// The WebSocket messages (GET /ws/backup): the spec's five types. Sizes
// and durations keep the spec's human form; exact numbers sit beside them
// (*_bytes, *_seconds). Only the fields of the spec's examples are
// required; the others are additions a client may ignore.

// BackupProgressMessage is "backup_progress".
type BackupProgressMessage struct {
	Type     string `json:"type" required:"true" const:"backup_progress"`
	BackupID string `json:"backup_id" required:"true" example:"\"backup-20250315-1430\""`
	ProgressFields
	Details BackupProgressDetails `json:"details" required:"true"`
}

// ProgressFields are what backup_progress and restore_progress share.
type ProgressFields struct {
	JobID            string                      `json:"job_id" required:"true" example:"\"BACKUP-JOB-9921X\""`
	Host             string                      `json:"host,omitempty" doc:"the enrolled host the job runs on (absent: the server's own)"`
	Progress         float64                     `json:"progress" required:"true" minimum:"0" maximum:"100" doc:"percent done"`
	CurrentOperation string                      `json:"current_operation" required:"true" example:"\"uploading_to_cloud\""`
	CurrentComponent string                      `json:"current_component" required:"true" example:"\"databases\""`
	ETA              string                      `json:"eta" required:"true" doc:"HH:MM:SS" example:"\"00:05:00\""`
	ETASeconds       float64                     `json:"eta_seconds"`
	Status           string                      `json:"status" doc:"the job's status"`
	Timestamp        string                      `json:"timestamp" format:"date-time"`
	Waiting          string                      `json:"waiting,omitempty" doc:"what the job waits for, when it waits"`
	Locations        map[string]LocationProgress `json:"locations" doc:"each storage location's state in the job"`
}

// LocationProgress is one storage location's state in a job; a copy to
// it counts its bytes.
type LocationProgress struct {
	State      string `json:"state" required:"true" example:"\"writing\""`
	BytesDone  *int64 `json:"bytes_done,omitempty" doc:"a copy to the location: its bytes so far"`
	BytesTotal *int64 `json:"bytes_total,omitempty"`
}

// JobError is a failed job's error, in the spec's error format (without
// the request's id and time).
type JobError struct {
	Code             string         `json:"code" required:"true" example:"\"BACKUP_014\""`
	Message          string         `json:"message" required:"true"`
	Details          map[string]any `json:"details" required:"true"`
	SuggestedActions []string       `json:"suggested_actions" required:"true" minItems:"1"`
}

// BackupProgressDetails are a backup_progress message's figures.
type BackupProgressDetails struct {
	BytesProcessed string `json:"bytes_processed" required:"true" example:"\"42.5 GB\""`
	BytesTotal     string `json:"bytes_total" required:"true" example:"\"50 GB\""`
	TransferFigures
	FilesProcessed int64 `json:"files_processed"`
}

// TransferFigures are the bytes and speed of a progress message.
type TransferFigures struct {
	Speed               string  `json:"speed" required:"true" example:"\"25 MB/s\""`
	BytesProcessedBytes int64   `json:"bytes_processed_bytes"`
	BytesTotalBytes     int64   `json:"bytes_total_bytes"`
	SpeedBytesPerSecond float64 `json:"speed_bytes_per_second"`
}

// RestoreProgressMessage is "restore_progress".
type RestoreProgressMessage struct {
	Type      string `json:"type" required:"true" const:"restore_progress"`
	RestoreID string `json:"restore_id" required:"true" example:"\"RESTORE-5567\""`
	BackupID  string `json:"backup_id"`
	ProgressFields
	Details RestoreProgressDetails `json:"details" required:"true"`
}

// RestoreProgressDetails are a restore_progress message's figures.
type RestoreProgressDetails struct {
	FilesRestored int64 `json:"files_restored" required:"true" example:"13500"`
	FilesTotal    int64 `json:"files_total" required:"true" example:"18000"`
	TransferFigures
}

// JobCompleteMessage is "job_complete".
type JobCompleteMessage struct {
	Type      string             `json:"type" required:"true" const:"job_complete"`
	JobID     string             `json:"job_id" required:"true"`
	Host      string             `json:"host,omitempty" doc:"the enrolled host the job ran on (absent: the server's own)"`
	Status    string             `json:"status" required:"true" enum:"job_outcome"`
	Operation JobType            `json:"operation" required:"true" enum:"job_type" doc:"the job's type"`
	Message   string             `json:"message" required:"true" example:"\"Backup completed successfully\""`
	Details   JobCompleteDetails `json:"details" required:"true"`
	Error     *JobError          `json:"error,omitempty" doc:"why a failed or partial job failed"`
	Timestamp string             `json:"timestamp" format:"date-time"`
}

// JobCompleteDetails describe what a finished job did.
type JobCompleteDetails struct {
	Duration        string  `json:"duration" required:"true" example:"\"30m 15s\""`
	DurationSeconds float64 `json:"duration_seconds"`
	Error           string  `json:"error,omitempty"`
	ErrorCode       string  `json:"error_code,omitempty"`
	BackupID        string  `json:"backup_id,omitempty"`
	*BackupOutcome
	JobRefs
}

// JobRefs is a job's own id under its type's name: a restore's
// restore_id, a verification's verification_id, a cleanup's cleanup_id,
// a repair's repair_id (a backup's is backup_id, beside).
type JobRefs struct {
	RestoreID      *string `json:"restore_id,omitempty"`
	VerificationID *string `json:"verification_id,omitempty"`
	CleanupID      *string `json:"cleanup_id,omitempty"`
	RepairID       *string `json:"repair_id,omitempty"`
	DrillRunID     *string `json:"drill_run_id,omitempty"`
}

// BackupOutcome is what a finished backup job stored (absent for other
// jobs).
type BackupOutcome struct {
	Size                string   `json:"size" example:"\"50 GB\""`
	SizeBytes           int64    `json:"size_bytes"`
	CompressedSize      string   `json:"compressed_size" example:"\"24 GB\""`
	CompressedSizeBytes int64    `json:"compressed_size_bytes"`
	AddedSize           string   `json:"added_size" doc:"new data the backup stored (after deduplication)"`
	AddedSizeBytes      int64    `json:"added_size_bytes"`
	StorageLocations    []string `json:"storage_locations" example:"[\"local\",\"cloud\"]"`
}

// StorageAlertMessage is "storage_alert".
type StorageAlertMessage struct {
	Type            string              `json:"type" required:"true" const:"storage_alert"`
	Level           string              `json:"level" required:"true" enum:"alert_level"`
	Storage         string              `json:"storage" required:"true" example:"\"local\""`
	Message         string              `json:"message" required:"true" example:"\"Local storage utilization at 75%\""`
	Details         StorageAlertDetails `json:"details" required:"true"`
	SuggestedAction string              `json:"suggested_action" required:"true"`
	Timestamp       string              `json:"timestamp" format:"date-time"`
}

// StorageAlertDetails are a location's figures when the alert was raised.
type StorageAlertDetails struct {
	Space
	Utilization string `json:"utilization" required:"true" example:"\"75%\""`
	Threshold   string `json:"threshold,omitempty" doc:"an emergency cleanup's threshold"`
	CleanupID   string `json:"cleanup_id,omitempty" doc:"the emergency cleanup started"`
}

// Space is a location's space in the spec's words, with the bytes beside.
type Space struct {
	Available      string `json:"available" required:"true" example:"\"250 GB\""`
	AvailableBytes *int64 `json:"available_bytes,omitempty" doc:"status: absent when the location has no total; storage_alert: an emergency cleanup's"`
	Used           string `json:"used" required:"true" example:"\"750 GB\""`
	UsedBytes      int64  `json:"used_bytes"`
	Total          string `json:"total" required:"true" doc:"status: unlimited when the location has no total" example:"\"1 TB\""`
	TotalBytes     *int64 `json:"total_bytes,omitempty" doc:"status: absent when the location has no total"`
}

// ScheduleEventMessage is "schedule_event".
type ScheduleEventMessage struct {
	Type          string  `json:"type" required:"true" const:"schedule_event"`
	Event         string  `json:"event" required:"true" example:"\"backup_scheduled\"" doc:"schedule_created, schedule_updated, schedule_deleted, backup_triggered, backup_started, backup_success, backup_partial, backup_failed, backup_cancelled, backup_skipped"`
	ScheduleID    string  `json:"schedule_id" required:"true" example:"\"schedule-nightly-full\""`
	Message       string  `json:"message" required:"true"`
	Timestamp     string  `json:"timestamp" required:"true" format:"date-time"`
	NextExecution *string `json:"next_execution" required:"true" nullable:"true" format:"date-time"`
	JobID         string  `json:"job_id,omitempty"`
	BackupID      string  `json:"backup_id,omitempty"`
	Code          string  `json:"code,omitempty" doc:"the error code of a skipped run (BACKUP_002)"`
}

// Messages are the WebSocket message types.
var Messages = []any{BackupProgressMessage{}, RestoreProgressMessage{}, JobCompleteMessage{}, StorageAlertMessage{}, ScheduleEventMessage{}, DrillResultMessage{}}

// Error is every error answer, in the spec's format.
type Error struct {
	IsError          bool           `json:"error" required:"true" const:"true"`
	Code             string         `json:"code" required:"true" doc:"the spec's BACKUP_001..BACKUP_015, or UNAUTHORIZED, FORBIDDEN, NOT_FOUND, METHOD_NOT_ALLOWED, TOO_MANY_REQUESTS, REQUEST_TOO_LARGE, CONFLICT, AUDIT_UNAVAILABLE" example:"\"BACKUP_001\""`
	Message          string         `json:"message" required:"true" example:"\"Backup failed due to insufficient storage space\""`
	Details          map[string]any `json:"details" required:"true" doc:"facts about the failure; details.field names the request field that is wrong"`
	SuggestedActions []string       `json:"suggested_actions" required:"true" minItems:"1"`
	RequestID        string         `json:"request_id" required:"true" example:"\"req_def456\""`
	Timestamp        string         `json:"timestamp" required:"true" format:"date-time"`
}
