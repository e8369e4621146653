package api

// Restore drills (/backup/drills): a scheduled proof that backups
// restore. Each run restores the chosen backups into a scratch directory
// on the worker, compares every file with its manifest, runs the drill's
// checks, measures how long each component took (its RTO) and how old the
// newest good backup of each component is (its RPO), then removes what it
// restored.

// DrillSelections: which backups a drill restores.
var DrillSelections = []string{"latest", "random", "backups", "unverified"}

// DrillCheckTypes: what a drill runs after the files are restored.
var DrillCheckTypes = []string{"command", "database"}

// DrillRequest is the body of POST /backup/drills.
type DrillRequest struct {
	ID          string  `json:"id" required:"true" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$" doc:"the drill's id; an existing id updates that drill" example:"\"monthly-restore-test\""`
	Name        *string `json:"name,omitempty" maxLength:"200" example:"\"Monthly restore test\""`
	Description *string `json:"description,omitempty" maxLength:"2000"`
	Enabled     *bool   `json:"enabled,omitempty" doc:"default true"`
	Frequency   *string `json:"frequency,omitempty" enum:"frequency" doc:"required for a new drill"`
	Time        *string `json:"time,omitempty" pattern:"^([01][0-9]|2[0-3]):[0-5][0-9]$" doc:"HH:MM in the drill's time zone (daily, weekly, monthly); the minute for hourly" example:"\"04:30\""`
	Day         *string `json:"day,omitempty" doc:"weekly: a weekday (Sunday..Saturday); monthly: a day of the month (1..31)"`
	Timezone    *string `json:"timezone,omitempty" doc:"an IANA time zone (default UTC)" example:"\"UTC\""`
	// What is restored.
	Select            *string         `json:"select,omitempty" enum:"drill_select" doc:"latest: the newest completed backup of each component; random: one completed backup of each component taken in the last within_days days, drawn at each run; backups: the backups named in backup_ids; unverified: incremental verification, up to max_backups backups that were never verified or were last verified more than reverify_after_days ago, never-verified first, each restored whole and its verification recorded (default latest)"`
	Components        []string        `json:"components,omitempty" doc:"the components drilled (default every configured component)" example:"[\"database\",\"configurations\"]"`
	WithinDays        *int            `json:"within_days,omitempty" minimum:"1" maximum:"36500" doc:"select random: how far back (default 30)"`
	BackupIDs         []string        `json:"backup_ids,omitempty" doc:"select backups: the backups restored"`
	ReverifyAfterDays *int            `json:"reverify_after_days,omitempty" minimum:"1" maximum:"36500" doc:"select unverified: a backup verified longer ago than this is verified again (default 30)"`
	MaxBackups        *int            `json:"max_backups,omitempty" minimum:"1" maximum:"1000" doc:"select unverified: at most this many backups per run (default 5)"`
	Location          *string         `json:"location,omitempty" doc:"restore from this storage location (default: the primary location if it holds the backup, else the first by name that does)" example:"\"cloud\""`
	Checks            []DrillCheck    `json:"checks,omitempty" doc:"run after the files are restored and compared; a check that fails fails the drill"`
	Notifications     map[string]bool `json:"notifications,omitempty" keys:"notification" doc:"on_failure: a run failed; on_warning: a run passed but found a recovery objective missed; on_success: a run passed (default on_failure and on_warning)" example:"{\"on_success\":false,\"on_failure\":true,\"on_warning\":true}"`
}

// DrillCheck is one check of a drill.
type DrillCheck struct {
	Type           string   `json:"type" required:"true" enum:"drill_check_type" doc:"command: a program run in the restored component's directory; its exit status decides. database: the component's database dump is loaded into a scratch database and a query run"`
	Component      string   `json:"component,omitempty" doc:"the component the check is about (default: the drill's first)"`
	Command        []string `json:"command,omitempty" doc:"command: the program (an absolute path) and its arguments (no shell). It runs in the component's restored directory, which mirrors the absolute source paths (/etc/app/app.conf is at etc/app/app.conf there), with BACKUPD_DRILL_TARGET set to that directory and BACKUPD_DRILL_BACKUP_ID to the backup's id" example:"[\"/usr/bin/test\",\"-s\",\"etc/app/app.conf\"]"`
	Database       string   `json:"database,omitempty" doc:"database: the connection's name in the component's configuration (default: its only one). Its restored dump is loaded into a scratch database on that server (backupd_drill_<run>), the query runs there, and the scratch database is dropped" example:"\"app\""`
	Query          string   `json:"query,omitempty" maxLength:"4000" doc:"database: the SQL run in the scratch database (default: a count of its tables, which must be above 0)" example:"\"SELECT count(*) FROM orders\""`
	Expect         *string  `json:"expect,omitempty" maxLength:"4000" doc:"database: the query's output, exactly (rows one per line, PostgreSQL columns separated by |, MariaDB's by a tab); absent: any output that is not empty or 0 passes" example:"\"1200\""`
	TimeoutSeconds int      `json:"timeout_seconds,omitempty" minimum:"1" maximum:"86400" doc:"default 300"`
}

// Drill is one drill as GET /backup/drills shows it.
type Drill struct {
	ID                string          `json:"id" required:"true"`
	Name              string          `json:"name" required:"true"`
	Description       string          `json:"description"`
	Enabled           bool            `json:"enabled" required:"true"`
	Frequency         string          `json:"frequency" required:"true" enum:"frequency"`
	Time              string          `json:"time"`
	Day               string          `json:"day,omitempty"`
	Timezone          string          `json:"timezone"`
	Select            string          `json:"select" required:"true" enum:"drill_select"`
	Components        []string        `json:"components" required:"true"`
	WithinDays        int             `json:"within_days,omitempty"`
	BackupIDs         []string        `json:"backup_ids,omitempty"`
	ReverifyAfterDays int             `json:"reverify_after_days,omitempty"`
	MaxBackups        int             `json:"max_backups,omitempty"`
	Location          string          `json:"location,omitempty"`
	Checks            []DrillCheck    `json:"checks" required:"true"`
	Notifications     map[string]bool `json:"notifications" required:"true" keys:"notification"`
	CreatedBy         string          `json:"created_by"`
	CreatedAt         string          `json:"created_at" format:"date-time"`
	NextRun           *string         `json:"next_run" nullable:"true" format:"date-time" doc:"from the Temporal schedule; null when disabled"`
	LastRun           *DrillReport    `json:"last_run" nullable:"true" doc:"the newest run's report"`
}

// DrillList is GET /backup/drills.
type DrillList struct {
	Drills []Drill `json:"drills" required:"true"`
}

// DrillDetails is GET /backup/drills/{drill_id}: the drill and its
// newest runs, newest first.
type DrillDetails struct {
	Drill
	Runs []DrillReport `json:"runs" required:"true"`
}

// DrillSaved answers POST /backup/drills.
type DrillSaved struct {
	ID      string  `json:"id" required:"true"`
	Status  string  `json:"status" required:"true" enum:"schedule_saved"`
	NextRun *string `json:"next_run" nullable:"true" format:"date-time"`
	Message string  `json:"message" required:"true"`
}

// DrillAction answers DELETE /backup/drills/{drill_id} and its trigger.
type DrillAction struct {
	ID      string `json:"id" required:"true"`
	Status  string `json:"status" required:"true" enum:"schedule_action"`
	Message string `json:"message" required:"true"`
}

// DrillReport is one drill run: what was restored, how fast, whether it
// was whole and passed its checks, and the recovery point at that moment.
type DrillReport struct {
	RunID    string `json:"run_id" required:"true"`
	DrillID  string `json:"drill_id" required:"true"`
	JobID    string `json:"job_id" required:"true"`
	Passed   bool   `json:"passed" required:"true"`
	Started  string `json:"started" required:"true" format:"date-time"`
	Finished string `json:"finished" required:"true" format:"date-time"`
	// Error: why the run could not restore at all (no backup to drill, no
	// location holding it); the backups' own failures are in Backups.
	Error    string            `json:"error,omitempty"`
	Backups  []DrillBackup     `json:"backups" required:"true"`
	RPO      []ComponentRPO    `json:"rpo" required:"true" doc:"per component: the newest completed backup's age when the run started, against the objective"`
	Breaches []ObjectiveBreach `json:"breaches" required:"true" doc:"objectives this run found missed"`
}

// DrillBackup is one backup a drill restored.
type DrillBackup struct {
	BackupID   string           `json:"backup_id" required:"true"`
	Location   string           `json:"location" required:"true"`
	Taken      string           `json:"taken" format:"date-time" doc:"when the backup started"`
	Passed     bool             `json:"passed" required:"true"`
	Error      string           `json:"error,omitempty"`
	Components []DrillComponent `json:"components" required:"true"`
	Checks     []DrillCheckRun  `json:"checks" required:"true"`
}

// DrillComponent is one component's restore in a drill: its measured
// recovery time.
type DrillComponent struct {
	Component        string   `json:"component" required:"true"`
	Passed           bool     `json:"passed" required:"true"`
	Files            int64    `json:"files" required:"true"`
	Bytes            int64    `json:"bytes" required:"true"`
	FilesVerified    int64    `json:"files_verified" required:"true" doc:"files read back after writing and found equal to the manifest"`
	RTOSeconds       float64  `json:"rto_seconds" required:"true" doc:"the measured time to restore and verify this component"`
	SecondsPerGB     *float64 `json:"seconds_per_gb" nullable:"true" doc:"rto_seconds per 10^9 bytes restored (null below 1 MB restored)"`
	ObjectiveSeconds *int     `json:"rto_objective_seconds,omitempty" doc:"the component's rto_seconds"`
	Damaged          []string `json:"damaged,omitempty" doc:"files that could not be restored whole (their data is damaged or missing)"`
	Error            string   `json:"error,omitempty"`
}

// DrillCheckRun is one check's outcome.
type DrillCheckRun struct {
	Type      string  `json:"type" required:"true" enum:"drill_check_type"`
	Component string  `json:"component" required:"true"`
	Passed    bool    `json:"passed" required:"true"`
	Seconds   float64 `json:"seconds" required:"true"`
	Output    string  `json:"output,omitempty" doc:"the end of what the check printed (at most 4 KB)"`
	Error     string  `json:"error,omitempty"`
}

// ComponentRPO is a component's recovery point at one moment.
type ComponentRPO struct {
	Component        string   `json:"component" required:"true"`
	NewestBackupID   *string  `json:"newest_backup_id" nullable:"true" required:"true"`
	NewestBackupAt   *string  `json:"newest_backup_at" nullable:"true" format:"date-time"`
	AgeSeconds       *float64 `json:"age_seconds" nullable:"true" required:"true" doc:"null: the component has no completed backup"`
	ObjectiveSeconds *int     `json:"rpo_objective_seconds,omitempty" doc:"the component's rpo_seconds"`
	Breached         bool     `json:"breached" required:"true"`
}

// ObjectiveBreach is an objective found missed.
type ObjectiveBreach struct {
	Component        string  `json:"component" required:"true"`
	Objective        string  `json:"objective" required:"true" enum:"objective" doc:"rto or rpo"`
	ObjectiveSeconds int     `json:"objective_seconds" required:"true"`
	MeasuredSeconds  float64 `json:"measured_seconds" required:"true" doc:"for rpo, -1 when the component has no backup at all"`
	Message          string  `json:"message" required:"true"`
}

// Objectives: the kinds of ObjectiveBreach.
var Objectives = []string{"rto", "rpo"}

// DrillResultMessage is the WebSocket message "drill_result": a drill run
// ended (passed or not), with its breaches.
type DrillResultMessage struct {
	Type         string            `json:"type" required:"true" const:"drill_result"`
	DrillID      string            `json:"drill_id" required:"true"`
	RunID        string            `json:"run_id" required:"true"`
	JobID        string            `json:"job_id" required:"true"`
	Passed       bool              `json:"passed" required:"true"`
	Level        string            `json:"level,omitempty" enum:"alert_level" doc:"critical when the drill failed, warning when it passed with an objective missed; absent when all is well"`
	Message      string            `json:"message" required:"true"`
	DamagedFiles int               `json:"damaged_files,omitempty" doc:"how many files were found damaged (their names are in the drill's report, GET /backup/drills/{drill_id}: operators)"`
	Breaches     []ObjectiveBreach `json:"breaches,omitempty"`
	Timestamp    string            `json:"timestamp" format:"date-time"`
}
