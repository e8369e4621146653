package api

// BackupDetails answers GET /backup/details/{backup_id}.
type BackupDetails struct {
	ID           string             `json:"id" required:"true" example:"\"backup-20250315-0200\""`
	Name         string             `json:"name" required:"true"`
	Description  string             `json:"description"`
	Timestamp    string             `json:"timestamp" required:"true" format:"date-time"`
	Type         string             `json:"type" required:"true" enum:"backup_type"`
	Status       string             `json:"status" required:"true" doc:"in_progress, completed, partial, failed or cancelled"`
	Protected    bool               `json:"protected"`
	JobID        string             `json:"job_id"`
	SizeDetails  BackupSizeDetails  `json:"size_details" required:"true"`
	Duration     BackupDuration     `json:"duration" required:"true"`
	Storage      BackupStorage      `json:"storage" required:"true"`
	Encryption   BackupEncryption   `json:"encryption" required:"true"`
	Integrity    BackupIntegrity    `json:"integrity" required:"true"`
	Metadata     BackupMetadata     `json:"metadata" required:"true"`
	Dependencies BackupDependencies `json:"dependencies" required:"true"`
	Error        *string            `json:"error" nullable:"true" doc:"why a failed or partial backup failed"`
	ErrorCode    *string            `json:"error_code" nullable:"true"`
}

// BackupSizeDetails are a backup's sizes (README: "Sizes and ratios").
type BackupSizeDetails struct {
	RawSize             string            `json:"raw_size" required:"true" doc:"the content the backup holds" example:"\"45.2 GB\""`
	RawSizeBytes        int64             `json:"raw_size_bytes"`
	CompressedSize      string            `json:"compressed_size" required:"true" doc:"what that content takes stored, compressed and encrypted, before deduplication" example:"\"22.1 GB\""`
	CompressedSizeBytes int64             `json:"compressed_size_bytes"`
	CompressionRatio    string            `json:"compression_ratio" required:"true" example:"\"2.04\""`
	ComponentsSize      map[string]string `json:"components_size" required:"true"`
	ComponentsSizeBytes map[string]int64  `json:"components_size_bytes"`
	AddedSize           string            `json:"added_size" doc:"new data the backup stored (after deduplication)"`
	AddedSizeBytes      int64             `json:"added_size_bytes"`
	DeduplicationRatio  string            `json:"deduplication_ratio"`
	Files               int64             `json:"files"`
}

// BackupDuration is when a backup ran.
type BackupDuration struct {
	Start        string  `json:"start" required:"true" format:"date-time"`
	End          *string `json:"end" required:"true" nullable:"true" format:"date-time" doc:"null while it runs"`
	TotalSeconds float64 `json:"total_seconds" required:"true"`
}

// BackupStorage is where a backup is stored.
type BackupStorage struct {
	Locations []BackupCopy `json:"locations" required:"true"`
	Requested []string     `json:"requested" doc:"the locations the request named"`
}

// BackupCopy is a backup's copy in one location: the location, and the
// manifest there.
type BackupCopy struct {
	LocationAddress
	Type          string  `json:"type" required:"true" doc:"the location's name" example:"\"local\""`
	Size          string  `json:"size" required:"true" example:"\"22.1 GB\""`
	SizeBytes     int64   `json:"size_bytes"`
	Verified      bool    `json:"verified" required:"true"`
	LastVerified  *string `json:"last_verified" required:"true" nullable:"true" format:"date-time"`
	Checksum      string  `json:"checksum,omitempty" doc:"the stored manifest's SHA-256 (absent when it cannot be read)" example:"\"sha256:abc123...\""`
	ManifestError string  `json:"manifest_error,omitempty" doc:"why the manifest cannot be read"`
}

// BackupEncryption is how a backup is encrypted.
type BackupEncryption struct {
	Algorithm  string `json:"algorithm" required:"true" example:"\"AES-256\""`
	KeyID      string `json:"key_id" required:"true"`
	KeyVersion string `json:"key_version" required:"true" example:"\"v1\""`
	Encrypted  bool   `json:"encrypted" required:"true" const:"true"`
}

// BackupIntegrity is what is known of a backup's integrity.
type BackupIntegrity struct {
	Checksum              string  `json:"checksum" required:"true" doc:"the first readable manifest's SHA-256 (empty when none is)"`
	Verified              bool    `json:"verified" required:"true"`
	Status                string  `json:"status" doc:"pending, passed, failed or not_run"`
	VerificationTimestamp *string `json:"verification_timestamp" required:"true" nullable:"true" format:"date-time"`
	Signature             string  `json:"signature" required:"true" doc:"verified, or unverified when no manifest can be read"`
	SignatureAlgorithm    string  `json:"signature_algorithm" example:"\"Ed25519\""`
	SignatureTimestamp    *string `json:"signature_timestamp" required:"true" nullable:"true" format:"date-time" doc:"when this answer checked it"`
}

// BackupMetadata is where and by whom a backup was made.
type BackupMetadata struct {
	SystemVersion string  `json:"system_version" required:"true"`
	KernelVersion string  `json:"kernel_version" required:"true"`
	HardwareID    string  `json:"hardware_id" required:"true"`
	Host          string  `json:"host"`
	CreatedBy     string  `json:"created_by" required:"true"`
	ScheduleID    *string `json:"schedule_id" required:"true" nullable:"true" doc:"null for a manual backup"`
	Compression   string  `json:"compression"`
	RetentionDays int     `json:"retention_days"`
	Warnings      int64   `json:"warnings"`
}

// BackupDependencies are a backup's relations to others.
type BackupDependencies struct {
	ParentBackup       *string  `json:"parent_backup" required:"true" nullable:"true"`
	BaseBackup         *string  `json:"base_backup" nullable:"true"`
	ChildBackups       []string `json:"child_backups" required:"true"`
	RequiredForRestore []string `json:"required_for_restore" required:"true" doc:"always empty: every backup's manifest lists its whole tree, so it restores alone"`
}
