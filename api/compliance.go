package api

// ComplianceFormats: what GET /backup/reports/compliance can answer in.
var ComplianceFormats = []string{"json", "csv", "html", "pdf"}

// ComplianceReport is GET /backup/reports/compliance: over a period, per
// host and component, whether backups were taken as scheduled and
// succeeded, the recovery point achieved against its objective, the
// drills run and their recovery times, 3-2-1; then encryption, retention,
// protection and the destructive actions of the audit log.
type ComplianceReport struct {
	GeneratedAt string                `json:"generated_at" required:"true" format:"date-time"`
	From        string                `json:"from" required:"true" format:"date-time"`
	To          string                `json:"to" required:"true" format:"date-time"`
	Period      string                `json:"period" required:"true" example:"\"30d\""`
	Summary     ComplianceSummary     `json:"summary" required:"true"`
	Components  []ComponentCompliance `json:"components" required:"true"`
	Encryption  ComplianceEncryption  `json:"encryption" required:"true"`
	Retention   ComplianceRetention   `json:"retention" required:"true"`
	Protected   []ProtectedBackup     `json:"protected_backups" required:"true"`
	Immutable   []ImmutableLocation   `json:"immutable_locations" required:"true" doc:"the locations that keep backups from deletion by anyone, backupd included, for a lock period (S3 Object Lock) or until maintenance (append-only)"`
	Audit       []AuditActionSummary  `json:"destructive_actions" required:"true" doc:"destructive calls in the period, by action"`
}

// ComplianceSummary is the report's first page.
type ComplianceSummary struct {
	Compliant    bool     `json:"compliant" required:"true" doc:"no finding below"`
	Findings     []string `json:"findings" required:"true" doc:"what an auditor should look at, one sentence each"`
	BackupsTaken int      `json:"backups_taken" required:"true"`
	SuccessRate  *float64 `json:"success_rate" required:"true" nullable:"true" doc:"completed / finished backups, 0..1; null without any"`
	RPOBreaches  int      `json:"rpo_breaches" required:"true" doc:"host/component pairs whose recovery point objective was missed at some time in the period"`
	DrillsRun    int      `json:"drills_run" required:"true"`
	DrillsPassed int      `json:"drills_passed" required:"true"`
}

// ComponentCompliance is one component of one host over the period.
type ComponentCompliance struct {
	Host                string   `json:"host" required:"true"`
	Component           string   `json:"component" required:"true"`
	Schedules           []string `json:"schedules" required:"true" doc:"the enabled schedules that back it up (the server's own host)"`
	BackupsExpected     *int     `json:"backups_expected" required:"true" nullable:"true" doc:"what its tightest schedule should have taken in the period; null when unscheduled"`
	BackupsTaken        int      `json:"backups_taken" required:"true"`
	Completed           int      `json:"completed" required:"true"`
	Partial             int      `json:"partial" required:"true"`
	Failed              int      `json:"failed" required:"true"`
	SuccessRate         *float64 `json:"success_rate" required:"true" nullable:"true"`
	RPOObjectiveSeconds *int     `json:"rpo_objective_seconds,omitempty"`
	WorstRPOSeconds     *float64 `json:"worst_rpo_seconds" required:"true" nullable:"true" doc:"the longest time in the period without a newer completed backup (the recovery point achieved at its worst); null: never backed up"`
	RPOBreached         bool     `json:"rpo_breached" required:"true"`
	RTOObjectiveSeconds *int     `json:"rto_objective_seconds,omitempty"`
	Drills              int      `json:"drills" required:"true" doc:"drill runs that restored this component"`
	DrillsPassed        int      `json:"drills_passed" required:"true"`
	LastRTOSeconds      *float64 `json:"last_rto_seconds" required:"true" nullable:"true" doc:"the newest drill's measured restore time"`
	WorstRTOSeconds     *float64 `json:"worst_rto_seconds" required:"true" nullable:"true"`
	RTOBreached         bool     `json:"rto_breached" required:"true"`
	Copies321           string   `json:"copies_321" required:"true" doc:"completed backups that meet the replication policy, of all: \"12/12\"; \"off\" when the policy is off"`
	ImmutableCopies     string   `json:"immutable_copies" required:"true" doc:"completed backups with a copy in an immutable location (object_lock or append_only), of all: \"12/12\"; \"none\" when no location is immutable"`
}

// ImmutableLocation is a location that keeps backups from deletion.
type ImmutableLocation struct {
	Location   string `json:"location" required:"true"`
	Mode       string `json:"mode" required:"true" enum:"immutability"`
	LockMode   string `json:"lock_mode,omitempty" enum:"lock_mode"`
	LockPeriod string `json:"lock_period,omitempty" doc:"how long new objects are locked now"`
}

// ComplianceEncryption is the state of the repository key.
type ComplianceEncryption struct {
	Algorithm    string  `json:"algorithm" required:"true" example:"\"AES-256-GCM\""`
	KeyCreated   *string `json:"key_created" required:"true" nullable:"true" format:"date-time" doc:"when the primary location's key entry was made (its last rotation)"`
	KeyAgeDays   *int    `json:"key_age_days" required:"true" nullable:"true"`
	RotationDays int     `json:"rotation_days" required:"true" doc:"the policy's rotation interval"`
	RotationDue  bool    `json:"rotation_due" required:"true"`
}

// ComplianceRetention is what cleanups removed in the period, and why.
type ComplianceRetention struct {
	Cleanups int             `json:"cleanups" required:"true" doc:"cleanups that removed backups (dry runs apart)"`
	Removed  []RemovedBackup `json:"removed" required:"true"`
}

// RemovedBackup is one backup a cleanup removed.
type RemovedBackup struct {
	BackupID  string `json:"backup_id" required:"true"`
	Host      string `json:"host,omitempty"`
	Taken     string `json:"taken" required:"true"`
	Reason    string `json:"reason" required:"true" doc:"the retention rule's decision"`
	CleanupID string `json:"cleanup_id" required:"true"`
	Removed   string `json:"removed" required:"true" format:"date-time"`
}

// ProtectedBackup is a backup no cleanup removes.
type ProtectedBackup struct {
	BackupID   string   `json:"backup_id" required:"true"`
	Host       string   `json:"host" required:"true"`
	Taken      string   `json:"taken" required:"true" format:"date-time"`
	Components []string `json:"components" required:"true"`
}

// AuditActionSummary is one destructive action's calls in the period.
type AuditActionSummary struct {
	Action     string   `json:"action" required:"true" example:"\"backup.delete\""`
	Calls      int      `json:"calls" required:"true"`
	Succeeded  int      `json:"succeeded" required:"true"`
	Refused    int      `json:"refused" required:"true" doc:"denied or failed"`
	Actors     []string `json:"actors" required:"true" doc:"the tokens that made them"`
	ApprovedBy []string `json:"approved_by" required:"true" doc:"second approvers, when approvals are on"`
}
