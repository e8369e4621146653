package api

import "backupd/retention"

// The configuration answers: GET and POST /backup/storage(/update), GET
// and POST /backup/retention.

// StorageConfig answers GET /backup/storage.
type StorageConfig struct {
	StorageConfig map[string]StorageLocation `json:"storage_config" required:"true" doc:"each configured location, by name"`
	Primary       string                     `json:"primary" doc:"the location every backup is written to first"`
	Policies      StoragePolicies            `json:"policies" required:"true"`
	Monitoring    MonitoringPolicy           `json:"monitoring" required:"true"`
}

// StorageLocation is one location's configuration and usage.
type StorageLocation struct {
	LocationAddress
	Enabled         bool   `json:"enabled" required:"true"`
	Quota           string `json:"quota" required:"true" doc:"unlimited, or a size" example:"\"1 TB\""`
	QuotaBytes      int64  `json:"quota_bytes" doc:"0: unlimited"`
	RetentionPolicy string `json:"retention_policy" required:"true" doc:"unlimited (the retention policy alone decides), or a number of days" example:"\"30 days\""`
	RetentionDays   int    `json:"retention_days"`
	Compression     string `json:"compression" example:"\"enabled\""`
	Encryption      string `json:"encryption" required:"true" example:"\"enabled\""`
	LastCheck       string `json:"last_check" format:"date-time"`
	Health          string `json:"health" doc:"good or unreachable"`
	Error           string `json:"error,omitempty" doc:"why the location cannot be reached"`
	*StorageSpace
	AccessMethod         string            `json:"access_method,omitempty" doc:"S3 locations"`
	TransferAcceleration *bool             `json:"transfer_acceleration,omitempty" doc:"S3 locations"`
	Type                 string            `json:"type,omitempty" doc:"SFTP locations: SFTP"`
	CompressionLevel     int               `json:"compression_level,omitempty" doc:"as set; recorded, not used (see POST /backup/storage/update)"`
	PendingChanges       map[string]string `json:"pending_changes,omitempty" doc:"address changes recorded that take effect when the configuration file says so"`
	Immutability         *Immutability     `json:"immutability,omitempty" doc:"an immutable location (object_lock or append_only in the configuration file)"`
}

// Immutability is how a location keeps what backups need from deletion.
type Immutability struct {
	Mode              string `json:"mode" required:"true" enum:"immutability" doc:"object_lock: the S3 server locks each object (S3 Object Lock); append_only: backupd only adds (the SFTP server should refuse this account's deletes too)"`
	LockMode          string `json:"lock_mode,omitempty" enum:"lock_mode" doc:"object_lock: compliance (nobody can remove a locked object) or governance (a user granted s3:BypassGovernanceRetention can)"`
	LockPeriod        string `json:"lock_period,omitempty" doc:"object_lock: how long new objects are locked now; cleanups extend what kept backups need" example:"\"720h0m0s\""`
	LockPeriodSeconds int64  `json:"lock_period_seconds,omitempty"`
	MaxLockPeriod     string `json:"max_lock_period,omitempty" doc:"object_lock: the cap on the period (a retention policy cannot lock storage longer)"`
}

// StorageSpace is a reachable location's space in GET /backup/storage
// (absent when the location cannot be reached).
type StorageSpace struct {
	CurrentUsage      string `json:"current_usage" doc:"the repository's bytes" example:"\"450 GB\""`
	CurrentUsageBytes int64  `json:"current_usage_bytes"`
	*UsageFigures
	Utilization    string `json:"utilization,omitempty" doc:"absent when there is nothing to measure it on" example:"\"45%\""`
	Capacity       string `json:"capacity,omitempty" doc:"absent when the location has no total (a bucket)"`
	CapacityBytes  *int64 `json:"capacity_bytes,omitempty"`
	Available      string `json:"available,omitempty"`
	AvailableBytes *int64 `json:"available_bytes,omitempty"`
}

// StoragePolicies are the live storage policies.
type StoragePolicies struct {
	Replication ReplicationPolicy `json:"replication" required:"true"`
	Encryption  EncryptionPolicy  `json:"encryption" required:"true"`
	Compression CompressionPolicy `json:"compression" required:"true"`
}

// ReplicationPolicy is the 3-2-1 policy: copies, distinct media, offsite copies.
type ReplicationPolicy struct {
	Enabled       bool   `json:"enabled" required:"true"`
	Strategy      string `json:"strategy" required:"true" example:"\"3-2-1\""`
	Copies        int    `json:"copies" required:"true"`
	Locations     int    `json:"locations" required:"true" doc:"distinct media"`
	Offsite       int    `json:"offsite" required:"true"`
	AutoReplicate bool   `json:"auto_replicate" required:"true" doc:"a backup without storage_locations goes to every enabled location"`
}

// EncryptionPolicy is the key policy.
type EncryptionPolicy struct {
	DefaultAlgorithm string `json:"default_algorithm" required:"true" example:"\"AES-256\""`
	KeyRotationDays  int    `json:"key_rotation_days" required:"true"`
	KeyManagement    string `json:"key_management" required:"true"`
}

// CompressionPolicy is the default compression.
type CompressionPolicy struct {
	DefaultAlgorithm string `json:"default_algorithm" required:"true" enum:"compression"`
	Level            int    `json:"level" required:"true"`
	Multithreaded    bool   `json:"multithreaded" required:"true"`
}

// MonitoringPolicy is how usage is watched (thresholds in percent).
type MonitoringPolicy struct {
	HealthChecks      string `json:"health_checks" required:"true" example:"\"hourly\""`
	UsageAlerts       bool   `json:"usage_alerts" required:"true"`
	ThresholdWarning  int    `json:"threshold_warning" required:"true"`
	ThresholdCritical int    `json:"threshold_critical" required:"true"`
	AutoCleanup       bool   `json:"auto_cleanup" required:"true"`
}

// StorageUpdated answers POST /backup/storage/update.
type StorageUpdated struct {
	Status               string            `json:"status" required:"true" const:"updated"`
	Message              string            `json:"message" required:"true"`
	RestartRequired      bool              `json:"restart_required" required:"true" doc:"an address changed: it takes effect when the configuration file says so"`
	Changes              map[string]Change `json:"changes" required:"true" doc:"by field path (local.quota, policies.encryption.key_rotation_days)"`
	NotApplied           map[string]string `json:"not_applied,omitempty" doc:"changes recorded but not used, and why"`
	EstimatedRestartTime string            `json:"estimated_restart_time,omitempty" doc:"when restart_required" example:"\"00:00:10\""`
	RestartInstructions  string            `json:"restart_instructions,omitempty" doc:"when restart_required"`
}

// Change is one setting's old and new value.
type Change struct {
	Old any `json:"old" required:"true"`
	New any `json:"new" required:"true"`
}

// RetentionConfig answers GET /backup/retention.
type RetentionConfig struct {
	RetentionPolicies retention.Policy       `json:"retention_policies" required:"true"`
	CleanupRules      retention.CleanupRules `json:"cleanup_rules" required:"true"`
	ProtectedBackups  []string               `json:"protected_backups" required:"true" doc:"the newest first"`
	NextCleanup       *string                `json:"next_cleanup" required:"true" nullable:"true" format:"date-time" doc:"null: no cleanup is scheduled"`
	LastCleanup       *LastCleanup           `json:"last_cleanup" required:"true" nullable:"true" doc:"null: no cleanup has run"`
}

// LastCleanup is the last cleanup's outcome.
type LastCleanup struct {
	Timestamp       string   `json:"timestamp" required:"true" format:"date-time"`
	CleanupID       string   `json:"cleanup_id"`
	Status          string   `json:"status" enum:"job_status"`
	DryRun          bool     `json:"dry_run"`
	BackupsRemoved  int      `json:"backups_removed" required:"true"`
	SpaceFreed      string   `json:"space_freed" required:"true" example:"\"450 GB\""`
	SpaceFreedBytes int64    `json:"space_freed_bytes"`
	Duration        string   `json:"duration,omitempty" doc:"absent while the job's end is not recorded yet" example:"\"15m 30s\""`
	DurationSeconds *float64 `json:"duration_seconds,omitempty"`
}

// RetentionUpdated answers POST /backup/retention.
type RetentionUpdated struct {
	Status          string           `json:"status" required:"true" const:"updated"`
	Changes         RetentionChanges `json:"changes" required:"true"`
	RestartRequired bool             `json:"restart_required" required:"true" const:"false"`
	NextCleanup     *string          `json:"next_cleanup" required:"true" nullable:"true" format:"date-time"`
}

// RetentionChanges are what a retention update changed.
type RetentionChanges struct {
	RetentionPolicies *RetentionPolicyChange `json:"retention_policies,omitempty"`
	CleanupRules      *CleanupRulesChange    `json:"cleanup_rules,omitempty"`
	ProtectedBackups  map[string]bool        `json:"protected_backups,omitempty" doc:"each backup whose protection was set: true protected, false unprotected"`
}

// RetentionPolicyChange is the retention policy before and after.
type RetentionPolicyChange struct {
	Old retention.Policy `json:"old" required:"true"`
	New retention.Policy `json:"new" required:"true"`
}

// CleanupRulesChange are the cleanup rules before and after.
type CleanupRulesChange struct {
	Old retention.CleanupRules `json:"old" required:"true"`
	New retention.CleanupRules `json:"new" required:"true"`
}
