package api

// The monitoring answers: GET /backup/status, /backup/health and
// /backup/statistics, and the parts they share (a location's address and
// usage, the workers, the replication state).

// SystemStatus answers GET /backup/status.
type SystemStatus struct {
	Status           string                    `json:"status" required:"true" enum:"system_status" doc:"degraded when Temporal has no worker or a location cannot be reached"`
	BackupSystem     BackupSystem              `json:"backup_system" required:"true"`
	Storage          map[string]StatusLocation `json:"storage" required:"true" doc:"each configured location, by name"`
	BackupStatistics BackupCounts              `json:"backup_statistics" required:"true"`
	Replication      ReplicationState          `json:"replication" doc:"how the backups meet the replication policy"`
}

// BackupSystem describes the service.
type BackupSystem struct {
	ID              string           `json:"id" required:"true" example:"\"backupd@gateway-01\""`
	Version         string           `json:"version" required:"true"`
	Host            string           `json:"host"`
	LastHealthCheck string           `json:"last_health_check" required:"true" format:"date-time"`
	UptimeSeconds   float64          `json:"uptime_seconds"`
	Components      SystemComponents `json:"components" required:"true"`
	TemporalUIURL   string           `json:"temporal_ui_url" doc:"empty when none is configured"`
	TaskQueue       string           `json:"task_queue"`
	Workers         []WorkerView     `json:"workers" nullable:"true" doc:"each host's task queue and the workers polling it"`
}

// SystemComponents are the service's parts and their states.
type SystemComponents struct {
	Scheduler      string `json:"scheduler" required:"true" enum:"scheduler_state"`
	Workers        int    `json:"workers" doc:"activity pollers on this host's task queue"`
	Compression    string `json:"compression" required:"true" example:"\"enabled\""`
	Encryption     string `json:"encryption" required:"true" example:"\"enabled\""`
	IntegrityCheck string `json:"integrity_check" required:"true" example:"\"enabled\""`
	Catalog        string `json:"catalog" doc:"the catalog's database: sqlite or postgres"`
}

// WorkerView is one host's task queue as Temporal sees it.
type WorkerView struct {
	Host            string           `json:"host" required:"true"`
	TaskQueue       string           `json:"task_queue" required:"true"`
	WorkflowPollers int              `json:"workflow_pollers" required:"true"`
	ActivityPollers int              `json:"activity_pollers" required:"true"`
	Identities      []string         `json:"identities" required:"true"`
	LastPoll        *string          `json:"last_poll" required:"true" nullable:"true" format:"date-time"`
	Status          string           `json:"status" required:"true" doc:"polling, no_worker, or unknown when Temporal cannot tell"`
	Error           string           `json:"error,omitempty" doc:"why Temporal cannot tell"`
	InProcess       *InProcessWorker `json:"in_process,omitempty" doc:"the worker this process runs (backupd all)"`
}

// InProcessWorker is how the worker running in the server's own process fares.
type InProcessWorker struct {
	Running       bool   `json:"running" required:"true"`
	Since         string `json:"since" required:"true" format:"date-time" doc:"of the current state"`
	StartAttempts int    `json:"start_attempts" required:"true"`
	Error         string `json:"error,omitempty" doc:"why it cannot start (it keeps retrying)"`
}

// LocationAddress says where a storage location is, without credentials.
type LocationAddress struct {
	Name        string `json:"name"`
	URL         string `json:"url" doc:"the configured URL, credentials redacted"`
	Offsite     bool   `json:"offsite"`
	StorageType string `json:"storage_type" doc:"local, S3 or SFTP"`
	*S3Address
	*SFTPAddress
	Path *string `json:"path,omitempty" doc:"local and SFTP locations"`
}

// S3Address is an S3 location's bucket and prefix.
type S3Address struct {
	Bucket   string `json:"bucket" example:"\"company-backups\""`
	Key      string `json:"key" doc:"the prefix in the bucket"`
	Provider string `json:"provider" doc:"AWS S3, or S3-compatible with an endpoint" example:"\"AWS S3\""`
	Endpoint string `json:"endpoint,omitempty"`
	Region   string `json:"region"`
}

// SFTPAddress is an SFTP location's server.
type SFTPAddress struct {
	Host     string `json:"host"`
	Location string `json:"location" doc:"host:port"`
}

// UsageFigures are a reachable location's usage, under the same names in
// status, health and storage: the repository's own bytes, the
// filesystem's (or bucket's) used and total bytes, and what utilization
// is measured on.
type UsageFigures struct {
	RepositoryBytes      int64    `json:"repository_bytes"`
	FilesystemUsedBytes  int64    `json:"filesystem_used_bytes"`
	FilesystemTotalBytes *int64   `json:"filesystem_total_bytes,omitempty" doc:"absent when the location has no total (a bucket)"`
	UtilizationBasis     string   `json:"utilization_basis" doc:"repository_bytes of quota_bytes, filesystem_used_bytes of filesystem_total_bytes, or none"`
	UtilizationPercent   *float64 `json:"utilization_percent,omitempty" doc:"absent when there is nothing to measure it on"`
}

// StatusLocation is one location in GET /backup/status.
type StatusLocation struct {
	Type     string `json:"type" doc:"local, S3 or SFTP"`
	Provider string `json:"provider,omitempty" example:"\"AWS S3\""`
	Location string `json:"location,omitempty" doc:"SFTP: host:port"`
	Path     string `json:"path,omitempty"`
	Bucket   string `json:"bucket,omitempty"`
	Health   string `json:"health" required:"true" doc:"good or unreachable"`
	Error    string `json:"error,omitempty" doc:"why the location cannot be reached"`
	*StatusSpace
}

// StatusSpace is a reachable location's space in GET /backup/status
// (absent when the location cannot be reached).
type StatusSpace struct {
	Space
	*UsageFigures
}

// BackupCounts are the catalog's backups by outcome.
type BackupCounts struct {
	TotalBackups int64   `json:"total_backups" required:"true"`
	Successful   int64   `json:"successful" required:"true" doc:"completed and partial"`
	Failed       int64   `json:"failed" required:"true"`
	Partial      int64   `json:"partial"`
	InProgress   int64   `json:"in_progress"`
	Cancelled    int64   `json:"cancelled"`
	SuccessRate  string  `json:"success_rate" required:"true" example:"\"98%\""`
	LastSuccess  *string `json:"last_success" required:"true" nullable:"true" format:"date-time"`
	LastFailure  *string `json:"last_failure" required:"true" nullable:"true" format:"date-time"`
}

// ReplicationState is how the completed backups meet the replication
// (3-2-1) policy.
type ReplicationState struct {
	Policy         string              `json:"policy" required:"true" example:"\"3-2-1\""`
	Enabled        bool                `json:"enabled" required:"true"`
	Required       ReplicationRequired `json:"required" required:"true"`
	BackupsChecked int                 `json:"backups_checked" required:"true"`
	Compliant      int                 `json:"compliant" required:"true"`
	Short          int                 `json:"short" required:"true"`
	ShortBackups   []Shortfall         `json:"short_backups" required:"true" doc:"the newest 20 backups that fall short"`
	Repair         string              `json:"repair" required:"true"`
}

// ReplicationRequired is what the policy asks of each backup.
type ReplicationRequired struct {
	Copies  int `json:"copies" required:"true"`
	Media   int `json:"media" required:"true"`
	Offsite int `json:"offsite" required:"true"`
}

// Shortfall is how one backup falls short of the replication policy.
type Shortfall struct {
	BackupID  string   `json:"backup_id" required:"true"`
	Copies    int      `json:"copies" required:"true"`
	Media     int      `json:"media" required:"true"`
	Offsite   int      `json:"offsite" required:"true"`
	Missing   []string `json:"missing_locations" required:"true" doc:"enabled locations that do not hold the backup"`
	Reasons   []string `json:"reasons" required:"true"`
	Timestamp string   `json:"timestamp" required:"true" format:"date-time"`
}

// Health answers GET /backup/health.
type Health struct {
	OverallHealth   string           `json:"overall_health" required:"true" enum:"health_level"`
	Components      HealthComponents `json:"components" required:"true"`
	BackupHealth    BackupHealth     `json:"backup_health" required:"true"`
	Alerts          []HealthAlert    `json:"alerts" required:"true"`
	Recommendations []string         `json:"recommendations" required:"true"`
	CheckedAt       string           `json:"checked_at" format:"date-time"`
}

// HealthComponents are the health of each part, with each storage
// location under storage_<name> beside the named parts.
type HealthComponents struct {
	Scheduler   SchedulerHealth          `json:"scheduler" required:"true"`
	Catalog     CatalogHealth            `json:"catalog" doc:"the last comparison of the catalog with the locations' manifests"`
	Encryption  EncryptionHealth         `json:"encryption" required:"true"`
	Compression CompressionHealth        `json:"compression" required:"true"`
	Replication ReplicationState         `json:"replication"`
	Storage     map[string]StorageHealth `json:"-" additional:"true" doc:"storage_<location>: a storage location's health"`
}

// MarshalJSON writes Storage's entries beside the named parts.
func (c HealthComponents) MarshalJSON() ([]byte, error) {
	type plain HealthComponents
	return marshalInline(plain(c), c.Storage)
}

// UnmarshalJSON reads the keys that are no named part into Storage.
func (c *HealthComponents) UnmarshalJSON(b []byte) error {
	type plain HealthComponents
	return unmarshalInline(b, (*plain)(c), &c.Storage)
}

// SchedulerHealth is Temporal's and the workers' state.
type SchedulerHealth struct {
	Status      string       `json:"status" required:"true" enum:"scheduler_state"`
	Workers     int          `json:"workers"`
	Errors      int          `json:"errors" required:"true"`
	LastRun     *string      `json:"last_run" required:"true" nullable:"true" format:"date-time" doc:"the last backup's start"`
	NextRun     *string      `json:"next_run" required:"true" nullable:"true" format:"date-time" doc:"the soonest scheduled backup"`
	WorkerHosts []WorkerView `json:"worker_hosts" nullable:"true"`
}

// CatalogHealth is the last reconciliation of the catalog with storage.
type CatalogHealth struct {
	Status          string  `json:"status" required:"true" doc:"pending, ok, inconsistent or failed"`
	IntervalSeconds float64 `json:"interval_seconds" required:"true"`
	Error           string  `json:"error,omitempty" doc:"why the last run failed"`
	*CatalogRun
	Unreachable       map[string]string `json:"unreachable,omitempty" doc:"locations the run could not list, and why"`
	Unreadable        []string          `json:"unreadable,omitempty" doc:"manifests the run could not read (the first ones)"`
	UnreadableCount   int               `json:"unreadable_count,omitempty"`
	DeferredToNextRun int               `json:"deferred_to_next_run,omitempty" doc:"manifests left for the next run"`
}

// CatalogRun is what the last reconciliation found (once one has run).
type CatalogRun struct {
	LastRun string              `json:"last_run" format:"date-time"`
	Adopted []string            `json:"adopted" nullable:"true" doc:"backups found in storage and added to the catalog"`
	Located []string            `json:"located" nullable:"true" doc:"copies found in locations the catalog did not list"`
	Missing map[string][]string `json:"missing" nullable:"true" doc:"backups whose manifest is gone from locations the catalog lists: the locations, by backup"`
}

// EncryptionHealth is the repository key's state.
type EncryptionHealth struct {
	Status          string  `json:"status" required:"true" doc:"healthy or warning"`
	Algorithm       string  `json:"algorithm" required:"true" example:"\"AES-256\""`
	KeyStatus       string  `json:"key_status" required:"true" doc:"valid, rotation_due or unavailable"`
	LastKeyRotation *string `json:"last_key_rotation" required:"true" nullable:"true" format:"date-time"`
}

// CompressionHealth is the compression of the completed backups.
type CompressionHealth struct {
	Status       string `json:"status" required:"true"`
	Algorithm    string `json:"algorithm" required:"true" enum:"compression"`
	AverageRatio string `json:"average_ratio" required:"true" doc:"n/a before the first backup" example:"\"2.1\""`
}

// StorageHealth is one storage location's health.
type StorageHealth struct {
	Status       string `json:"status" required:"true" doc:"healthy, warning, critical or unreachable"`
	LastCheck    string `json:"last_check" required:"true" format:"date-time"`
	Connectivity string `json:"connectivity" doc:"good or failed"`
	Error        string `json:"error,omitempty" doc:"why the location cannot be reached"`
	*StorageHealthSpace
}

// StorageHealthSpace is a reachable location's space in GET
// /backup/health (absent when the location cannot be reached).
type StorageHealthSpace struct {
	Utilization         string `json:"utilization" doc:"n/a (no quota set) when there is nothing to measure it on" example:"\"69%\""`
	AvailableSpace      string `json:"available_space" doc:"unlimited when there is nothing to measure it on" example:"\"200 GB\""`
	AvailableSpaceBytes *int64 `json:"available_space_bytes,omitempty"`
	UsedBytes           int64  `json:"used_bytes"`
	*UsageFigures
}

// BackupHealth is the backups' recent success.
type BackupHealth struct {
	SuccessRate24h string  `json:"success_rate_24h" required:"true" example:"\"100%\""`
	SuccessRate7d  string  `json:"success_rate_7d" required:"true"`
	SuccessRate30d string  `json:"success_rate_30d" required:"true"`
	LastFailure    *string `json:"last_failure" required:"true" nullable:"true" format:"date-time"`
	FailureReason  *string `json:"failure_reason" required:"true" nullable:"true"`
}

// HealthAlert is one problem health found.
type HealthAlert struct {
	Level      string `json:"level" required:"true" enum:"alert_level"`
	Component  string `json:"component" required:"true" example:"\"storage_local\""`
	Message    string `json:"message" required:"true"`
	Suggestion string `json:"suggestion" required:"true"`
}

// Statistics answers GET /backup/statistics.
type Statistics struct {
	Period      string                         `json:"period" required:"true" example:"\"30d\""`
	TimeRange   TimeRange                      `json:"time_range" required:"true"`
	Summary     StatisticsSummary              `json:"summary" required:"true"`
	ByType      map[string]TypeStatistics      `json:"by_type,omitzero" doc:"by backup type (absent when group_by names another grouping)"`
	ByComponent map[string]ComponentStatistics `json:"by_component,omitzero" doc:"by component (absent when group_by names another grouping)"`
	BySchedule  map[string]ScheduleStatistics  `json:"by_schedule,omitzero" doc:"by schedule id (absent when group_by names another grouping)"`
	Trends      Trends                         `json:"trends" required:"true"`
}

// TimeRange is a period's bounds.
type TimeRange struct {
	From string `json:"from" required:"true" format:"date-time"`
	To   string `json:"to" required:"true" format:"date-time"`
}

// StatisticsSummary totals the period's backups.
type StatisticsSummary struct {
	TotalBackups            int64   `json:"total_backups" required:"true"`
	Successful              int64   `json:"successful" required:"true"`
	Failed                  int64   `json:"failed" required:"true"`
	SuccessRate             string  `json:"success_rate" required:"true" example:"\"98.3%\""`
	TotalSize               string  `json:"total_size" required:"true"`
	TotalSizeBytes          int64   `json:"total_size_bytes"`
	CompressedSize          string  `json:"compressed_size" required:"true"`
	CompressedSizeBytes     int64   `json:"compressed_size_bytes"`
	AverageCompressionRatio string  `json:"average_compression_ratio" required:"true" example:"\"2.08\""`
	DeduplicationRatio      string  `json:"deduplication_ratio"`
	AddedSize               string  `json:"added_size"`
	AddedSizeBytes          int64   `json:"added_size_bytes"`
	TotalDuration           string  `json:"total_duration" required:"true" example:"\"45h 30m\""`
	TotalDurationSeconds    float64 `json:"total_duration_seconds"`
	AverageDuration         string  `json:"average_duration" required:"true" example:"\"22m 45s\""`
	AverageDurationSeconds  float64 `json:"average_duration_seconds"`
}

// TypeStatistics are one backup type's figures.
type TypeStatistics struct {
	Count                  int64   `json:"count" required:"true"`
	SuccessRate            string  `json:"success_rate" required:"true"`
	AverageSize            string  `json:"average_size" required:"true"`
	AverageSizeBytes       int64   `json:"average_size_bytes"`
	AverageDuration        string  `json:"average_duration" required:"true"`
	AverageDurationSeconds float64 `json:"average_duration_seconds"`
}

// ComponentStatistics are one component's figures.
type ComponentStatistics struct {
	BackupsIncluded  int64  `json:"backups_included" required:"true"`
	AverageSize      string `json:"average_size" required:"true"`
	AverageSizeBytes int64  `json:"average_size_bytes"`
}

// ScheduleStatistics are one schedule's figures.
type ScheduleStatistics struct {
	Executions       int64  `json:"executions" required:"true"`
	SuccessRate      string `json:"success_rate" required:"true"`
	AverageSize      string `json:"average_size" required:"true"`
	AverageSizeBytes int64  `json:"average_size_bytes"`
}

// Trends compare the second half of the period with the first.
type Trends struct {
	SuccessRate  string `json:"success_rate" required:"true" enum:"trend"`
	BackupSize   string `json:"backup_size" required:"true" enum:"trend"`
	Duration     string `json:"duration" required:"true" enum:"trend"`
	StorageUsage string `json:"storage_usage" required:"true" enum:"trend" doc:"the bytes the backups added"`
	Rule         string `json:"rule" doc:"how a trend is decided"`
}

// ComponentsFreshness answers GET /backup/components: how recent each
// configured component's protection is, against its own schedules.
type ComponentsFreshness struct {
	Components []ComponentFreshness `json:"components" required:"true" doc:"every configured component, by name"`
	CheckedAt  string               `json:"checked_at" required:"true" format:"date-time"`
}

// ComponentFreshness is one component's newest completed backup and its
// age against the tightest enabled schedule that backs it up. A backup is
// late when it is older than 1.5 of that schedule's intervals (the
// Prometheus alert BackupdScheduledBackupLate's rule).
type ComponentFreshness struct {
	Component               string   `json:"component" required:"true"`
	LastSuccess             *string  `json:"last_success" required:"true" nullable:"true" format:"date-time" doc:"the newest completed backup holding it (a partial backup counts for none of its components)"`
	LastBackupID            string   `json:"last_backup_id,omitempty"`
	Locations               []string `json:"locations" required:"true" doc:"where that backup is stored"`
	AgeSeconds              *float64 `json:"age_seconds" required:"true" nullable:"true"`
	Schedules               []string `json:"schedules" required:"true" doc:"the enabled schedules that back it up"`
	ExpectedIntervalSeconds *float64 `json:"expected_interval_seconds" required:"true" nullable:"true" doc:"the shortest interval of those schedules; null when none"`
	State                   string   `json:"state" required:"true" enum:"freshness" doc:"ok; late (older than 1.5 intervals, or never done 1.5 intervals after its schedule was made); waiting (its schedule has not had time to run); unscheduled (no enabled schedule backs it up)"`
	Message                 string   `json:"message" required:"true"`
	// the component's recovery objectives (rto_seconds, rpo_seconds in
	// its configuration)
	RPOObjectiveSeconds *int `json:"rpo_objective_seconds,omitempty" doc:"the configured recovery point objective"`
	RPOBreached         bool `json:"rpo_breached" doc:"true when the newest completed backup is older than the RPO objective (or there is none)"`
	RTOObjectiveSeconds *int `json:"rto_objective_seconds,omitempty" doc:"the configured recovery time objective; restore drills measure it (GET /backup/drills)"`
}
