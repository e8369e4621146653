// Package api holds the wire types of backupd's REST and WebSocket API:
// every request body, with struct tags that carry what the OpenAPI
// document needs (names, required fields, enums, limits, the spec's
// examples). The API server decodes into these types, the OpenAPI document
// is reflected from them (Schema), and tests and clients share them.
//
// It imports nothing from the server, Temporal or the catalog: a client
// can use it alone.
//
// Tags read by the reflector (schema.go), beside encoding/json's:
//
//	required:"true"      the field must be present (not within an embedded
//	                     pointer: such a group of fields may be absent)
//	enum:"name"          one of Enums[name]
//	minimum, maximum     numeric limits (inclusive)
//	minLength, maxLength string length limits
//	pattern              a regular expression the string matches
//	format               a JSON Schema format (date-time, ...)
//	doc                  the field's description
//	example              one example value, as JSON
//	const                the one value allowed (JSON for non-strings: const:"true" on a bool)
//	nullable:"true"      null is a valid value too
package api

import (
	"encoding/json"
	"sort"
)

// The API's enumerations, by the name the enum tag uses. Each list is the
// one home of its words: the server checks requests against the same list.
var (
	BackupTypes     = []string{"full", "incremental", "differential", "snapshot"}
	Compressions    = []string{"zstd", "gzip", "bzip2", "lz4", "none"}
	Priorities      = []string{"low", "normal", "high", "critical"}
	RestoreTypes    = []string{"full", "partial"}
	Frequencies     = []string{"hourly", "daily", "weekly", "monthly"}
	Weekdays        = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	CleanupStrategy = []string{"oldest_first", "largest_first"}
	CleanupSchedule = []string{"daily", "weekly", "disabled"}
	Roles           = []string{"viewer", "operator", "admin"}
	// TokenRoles: a listed token may also be a host's credential
	TokenRoles = []string{"viewer", "operator", "admin", "host"}
	// HostStates: online (its worker polls its task queue), offline,
	// revoked (its credential refused)
	HostStates      = []string{"online", "offline", "revoked"}
	ComponentSource = []string{"local", "central"}
	CentralStates   = []string{"applied", "pending"}
	Notifications   = []string{"on_success", "on_failure", "on_warning"}
	JobOutcomes     = []string{"success", "partial", "failed", "cancelled", "missed", "skipped"}
	AlertLevels     = []string{"warning", "critical"}
	AuditOutcomes   = []string{"success", "failure", "denied", "started"}
	JobControls     = []string{"paused", "resumed"}
	ScheduleSaves   = []string{"created", "updated"}
	ScheduleActions = []string{"deleted", "triggered"}
	JobTypes        = []string{string(JobBackup), string(JobRestore), string(JobVerify), string(JobCleanup), string(JobRepair), string(JobDrill)}
	JobStatuses     = []string{"running", "completed", "failed", "queued", "paused", "partial", "cancelled", "skipped", "missed"}
	// the progress endpoints' status, and how an ended job ended
	ProgressStatuses = []string{"queued", "in_progress", "paused", "completed", "failed"}
	ProgressOutcomes = []string{"queued", "in_progress", "paused", "completed", "partial", "failed", "cancelled", "missed"}
	// status, health (the overall level, gravest last), statistics' trends,
	// and the delete, repair and pending report answers
	SystemStatuses   = []string{"active", "degraded"}
	SchedulerStates  = []string{"running", "no_workers", "unreachable"}
	HealthLevels     = []string{"healthy", "degraded", "critical"}
	TrendWords       = []string{"increasing", "decreasing", "stable", "insufficient_data"}
	DeletionStatuses = []string{"deleted", "deletion_started"}
	RepairStatuses   = []string{"dry_run", "nothing_to_do", "repair_started"}
	ReportStates     = []string{"in_progress", "failed"}
	// NodeTypes are a backup tree entry's types (repository's node types).
	FreshnessStates = []string{"ok", "late", "waiting", "unscheduled"}
	NodeTypes       = []string{"file", "dir", "symlink", "dev", "chardev", "fifo", "socket"}
)

// JobType is what a job does: the jobs list's type, a job_complete's
// operation, a job row's and a report's kind in the catalog, the Temporal
// search attribute BackupdJobType. Its words are the constants below (the
// one place they are written) and JobTypes lists them.
type JobType string

// The job types.
const (
	JobBackup  JobType = "backup"
	JobRestore JobType = "restore"
	JobVerify  JobType = "verify"
	JobCleanup JobType = "cleanup"
	JobRepair  JobType = "repair"
	JobDrill   JobType = "drill"
)

// Enums names the lists for the enum tag.
var Enums = map[string][]string{
	"immutability":     {"object_lock", "append_only"},
	"lock_mode":        {"governance", "compliance"},
	"backup_type":      BackupTypes,
	"compression":      Compressions,
	"priority":         Priorities,
	"restore_type":     RestoreTypes,
	"frequency":        Frequencies,
	"cleanup_strategy": CleanupStrategy,
	"cleanup_schedule": CleanupSchedule,
	"role":             Roles,
	"token_role":       TokenRoles,
	"host_state":       HostStates,
	"component_source": ComponentSource,
	"central_state":    CentralStates,
	"enrolment_state":  EnrolmentStates,
	"quota_state":      QuotaStates,
	"notification":     Notifications,
	"job_outcome":      JobOutcomes,
	"alert_level":      AlertLevels,
	"audit_outcome":    AuditOutcomes,
	"job_control":      JobControls,
	"schedule_saved":   ScheduleSaves,
	"schedule_action":  ScheduleActions,
	"job_type":         JobTypes,
	"job_status":       JobStatuses,
	"progress_status":  ProgressStatuses,
	"progress_outcome": ProgressOutcomes,
	"system_status":    SystemStatuses,
	"scheduler_state":  SchedulerStates,
	"health_level":     HealthLevels,
	"trend":            TrendWords,
	"deletion_status":  DeletionStatuses,
	"repair_status":    RepairStatuses,
	"report_state":     ReportStates,
	"node_type":        NodeTypes,
	"freshness":        FreshnessStates,
	"drill_select":     DrillSelections,
	"drill_check_type": DrillCheckTypes,
	"objective":        Objectives,
	"approval_status":  ApprovalStatuses,
}

// FieldError is returned by the types' own unmarshalers to name the field
// that is wrong; the server answers it as a 400 with details.field.
type FieldError struct{ Field, Msg string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ComponentSet is the spec's {"system": true, "data": true, ...}; a list
// of names is accepted too.
type ComponentSet map[string]bool

// UnmarshalJSON takes the object or a list of names.
func (c *ComponentSet) UnmarshalJSON(b []byte) error {
	var list []string
	if json.Unmarshal(b, &list) == nil {
		*c = ComponentSet{}
		for _, n := range list {
			(*c)[n] = true
		}
		return nil
	}
	var m map[string]bool
	if err := json.Unmarshal(b, &m); err != nil {
		return &FieldError{"components", `expected an object like {"data": true} or a list of names`}
	}
	*c = m
	return nil
}

// Names lists the components set to true, sorted.
func (c ComponentSet) Names() []string {
	var out []string
	for n, on := range c {
		if on {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// JSONSchema describes both forms.
func (ComponentSet) JSONSchema() map[string]any {
	return map[string]any{
		"description": `components by name: {"data": true, "logs": false}, or a list of names ["data"]`,
		"oneOf": []any{
			map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "boolean"}},
			map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		},
		"examples": []any{map[string]any{"system": true, "data": true, "configurations": true, "databases": true, "logs": true}},
	}
}
