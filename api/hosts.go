package api

// HostNamePattern: a host's name is its task queue's suffix
// (backup@<name>) and appears in workflow ids: letters, digits, dots,
// dashes and underscores, starting with a letter or digit.
const HostNamePattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"

// HostRouteWords are the words of the routes beside
// /backup/hosts/{host_id}: no host is named so.
var HostRouteWords = []string{"enrolments", "enrol", "self"}

// EnrolmentRequest is the body of POST /backup/hosts/enrolments.
type EnrolmentRequest struct {
	Name       string            `json:"name,omitempty" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$" doc:"the name the host gets (default: the name it gives when it enrols)" example:"\"gw-berlin-01\""`
	Labels     map[string]string `json:"labels,omitempty" doc:"labels the host gets (schedules select hosts by label)" example:"{\"site\":\"berlin\"}"`
	ValidHours *int              `json:"valid_hours,omitempty" minimum:"1" maximum:"720" doc:"how long the token can be used (default 24)"`
}

// Enrolment is an enrolment token as listed (never its secret).
type Enrolment struct {
	ID        string            `json:"id" required:"true"`
	Name      string            `json:"name,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedBy string            `json:"created_by" required:"true"`
	Created   string            `json:"created" required:"true" format:"date-time"`
	Expires   string            `json:"expires" required:"true" format:"date-time"`
	State     string            `json:"state" required:"true" enum:"enrolment_state"`
	HostID    string            `json:"host_id,omitempty" doc:"the host that used it"`
}

// EnrolmentStates: unused (can still be used), used, expired, cancelled.
var EnrolmentStates = []string{"unused", "used", "expired", "cancelled"}

// EnrolmentCreated answers POST /backup/hosts/enrolments: the only time
// the token is shown.
type EnrolmentCreated struct {
	Enrolment
	Token   string `json:"token" required:"true" doc:"the one-time enrolment token; only its hash is kept"`
	Command string `json:"command" required:"true" doc:"what to run on the new host (with the server's certificate fingerprint when the API is served over TLS)"`
	// ServerFingerprint: the API's TLS certificate (sha256:<hex>), which
	// the enrolling worker pins
	ServerFingerprint string `json:"server_fingerprint,omitempty" doc:"sha256 of the API's TLS certificate, which the host pins"`
	Message           string `json:"message" required:"true"`
}

// EnrolmentList answers GET /backup/hosts/enrolments.
type EnrolmentList struct {
	Enrolments []Enrolment `json:"enrolments" required:"true"`
}

// EnrolmentCancelled answers DELETE /backup/hosts/enrolments/{enrolment_id}.
type EnrolmentCancelled struct {
	Status string `json:"status" required:"true" const:"cancelled"`
	ID     string `json:"id" required:"true"`
}

// HostComponent is one component a host reports it has.
type HostComponent struct {
	Name  string   `json:"name" required:"true" minLength:"1" maxLength:"100"`
	Kind  string   `json:"kind,omitempty" maxLength:"40" doc:"files, postgresql, mysql, ..."`
	Paths []string `json:"paths,omitempty"`
	// Source: where the host's worker got it: its own configuration, or
	// the server (PUT /backup/hosts/{id}/components).
	Source string `json:"source,omitempty" enum:"component_source" doc:"local (the host's configuration) or central (the server's)"`
	// Problems: what the host found wrong with it (a path that does not
	// exist); its backups may fail or miss files.
	Problems []string `json:"problems,omitempty" maxItems:"100"`
	// Databases: the component's database connections, as the host's
	// configuration names them (what a restore loads dumps into).
	Databases []HostDatabase `json:"databases,omitempty" maxItems:"20"`
}

// HostDatabase is one database connection of a host's component.
type HostDatabase struct {
	Label    string `json:"label" required:"true" maxLength:"200" doc:"the connection's name in the host's configuration (its dump is <label>.dump)"`
	Kind     string `json:"kind" required:"true" maxLength:"40" doc:"postgresql or mariadb"`
	Database string `json:"database" required:"true" maxLength:"200" doc:"the database's name"`
}

// CentralComponent is a files component the server configures for an
// enrolled host. Database components stay in the host's own
// configuration, beside their credentials.
type CentralComponent struct {
	Description string   `json:"description,omitempty" maxLength:"2000"`
	Paths       []string `json:"paths" required:"true" minItems:"1" maxItems:"100" doc:"absolute paths on the host" example:"[\"/etc/gateway\"]"`
	Include     []string `json:"include,omitempty" maxItems:"100" doc:"only what matches these patterns"`
	Exclude     []string `json:"exclude,omitempty" maxItems:"100" doc:"leave out what matches these patterns" example:"[\"*.tmp\"]"`
}

// HostComponentsRequest is the body of PUT /backup/hosts/{host_id}/components:
// the host's whole central set (an empty map clears it).
type HostComponentsRequest struct {
	Components map[string]CentralComponent `json:"components" required:"true" doc:"by name; a name the host's own configuration also has is replaced by this one"`
}

// EnrolRequest is the body of POST /backup/hosts/enrol, sent by a new
// host's worker (backupd worker --enrol).
type EnrolRequest struct {
	Token      string          `json:"token" required:"true" minLength:"1" maxLength:"200" doc:"the one-time enrolment token"`
	Name       string          `json:"name" required:"true" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$" doc:"the host's name, unless the enrolment gives one"`
	HardwareID string          `json:"hardware_id,omitempty" maxLength:"200"`
	OS         string          `json:"os,omitempty" maxLength:"200"`
	Version    string          `json:"version,omitempty" maxLength:"100" doc:"backupd's version on the host"`
	Components []HostComponent `json:"components,omitempty"`
	PublicKey  string          `json:"public_key" required:"true" maxLength:"20000" doc:"the host's RSA public key (PEM, 3072 bits or more): its repository key entries are wrapped to it"`
}

// Enrolled answers POST /backup/hosts/enrol: the host's credential,
// shown once.
type Enrolled struct {
	HostID     string `json:"host_id" required:"true"`
	Name       string `json:"name" required:"true"`
	Credential string `json:"credential" required:"true" doc:"the host's bearer token (role host); only its hash is kept"`
	TaskQueue  string `json:"task_queue" required:"true" doc:"the Temporal task queue the host's worker polls, through the server's host gateway (gRPC on the API's own address)"`
	Namespace  string `json:"temporal_namespace" required:"true"`
	// Locations: the storage locations the host writes to (its
	// repositories there are reached through the server)
	Locations []string `json:"storage_locations" required:"true"`
}

// AnnounceRequest is the body of POST /backup/hosts/self/announce: a
// host's worker says it is up, and what it has (at start, then every
// minute).
type AnnounceRequest struct {
	// Stopping: the worker is shutting down (it is offline from now on,
	// until its next announcement)
	Stopping   bool            `json:"stopping,omitempty" doc:"the worker is shutting down: the host is offline until it announces itself again"`
	HardwareID string          `json:"hardware_id,omitempty" maxLength:"200"`
	OS         string          `json:"os,omitempty" maxLength:"200"`
	Version    string          `json:"version,omitempty" maxLength:"100"`
	Components []HostComponent `json:"components,omitempty"`
	// CentralVersion: the version of the server's central components
	// the worker runs with (0: none).
	CentralVersion int `json:"central_version,omitempty" minimum:"0"`
}

// Announced answers POST /backup/hosts/self/announce.
type Announced struct {
	HostID    string   `json:"host_id" required:"true"`
	Name      string   `json:"name" required:"true"`
	TaskQueue string   `json:"task_queue" required:"true"`
	Locations []string `json:"storage_locations" required:"true" doc:"the locations where the host has a repository now"`
	// Central: the components the server configures for the host, at
	// CentralVersion; the worker applies them when the version changes.
	Central        map[string]CentralComponent `json:"central_components"`
	CentralVersion int                         `json:"central_version"`
}

// StoredObject is one object of a host's repository, as the host's
// storage routes list and describe it. A listing is one of these per
// line (NDJSON) and ends with {"end":true}: a listing cut short has no
// such line.
type StoredObject struct {
	Name    string `json:"name,omitempty"`
	Size    int64  `json:"size,omitempty"`
	ModTime string `json:"mod_time,omitempty" format:"date-time"`
	End     bool   `json:"end,omitempty"`
}

// CredentialRotated answers POST /backup/hosts/self/credential: the new
// credential, shown once; the old one no longer works.
type CredentialRotated struct {
	HostID     string `json:"host_id" required:"true"`
	Credential string `json:"credential" required:"true"`
}

// HostLastBackup is a component's newest completed backup on a host.
type HostLastBackup struct {
	BackupID  string `json:"backup_id" required:"true"`
	Timestamp string `json:"timestamp" required:"true" format:"date-time"`
}

// Host is one host of the fleet.
type Host struct {
	ID           string                      `json:"id" required:"true"`
	Name         string                      `json:"name" required:"true"`
	Local        bool                        `json:"local" required:"true" doc:"the server's own host"`
	State        string                      `json:"state" required:"true" enum:"host_state"`
	TaskQueue    string                      `json:"task_queue" required:"true"`
	LastSeen     *string                     `json:"last_seen" required:"true" nullable:"true" format:"date-time" doc:"the worker's last announcement or poll"`
	Enrolled     string                      `json:"enrolled" required:"true" format:"date-time"`
	EnrolledBy   string                      `json:"enrolled_by" required:"true"`
	Revoked      *string                     `json:"revoked,omitempty" format:"date-time"`
	Version      string                      `json:"version"`
	OS           string                      `json:"os"`
	HardwareID   string                      `json:"hardware_id"`
	Labels       map[string]string           `json:"labels" required:"true"`
	Components   []HostComponent             `json:"components" required:"true" doc:"what the host's worker reports it has (its own and the central ones it applied)"`
	Central      map[string]CentralComponent `json:"central_components" required:"true" doc:"what the server configures for it (PUT /backup/hosts/{host_id}/components)"`
	CentralState string                      `json:"central_components_state" required:"true" enum:"central_state" doc:"applied: the worker runs with the current central components; pending: it has not announced itself since they changed"`
	LastBackups  map[string]HostLastBackup   `json:"last_backups" required:"true" doc:"per component, its newest completed backup"`
	StorageBytes int64                       `json:"storage_bytes" required:"true" doc:"what the host's backups added to storage (after deduplication), as their manifests say"`
	WrittenBytes int64                       `json:"written_bytes" required:"true" doc:"what the host stored in its repositories through the server, counted by the server; quotas are checked against the larger of this and storage_bytes"`
	Quota        HostQuota                   `json:"quota" required:"true"`
	Backups      int64                       `json:"backups" required:"true"`
}

// HostList answers GET /backup/hosts.
type HostList struct {
	Hosts []Host `json:"hosts" required:"true"`
	Total int    `json:"total" required:"true"`
}

// HostRevoked answers DELETE /backup/hosts/{host_id}.
type HostRevoked struct {
	Status string `json:"status" required:"true" const:"revoked"`
	ID     string `json:"id" required:"true"`
	Name   string `json:"name" required:"true"`
}

// HostQuota is what a host's backups may add to storage.
type HostQuota struct {
	SoftBytes int64  `json:"soft_bytes" required:"true" minimum:"0" doc:"past it, the host's backups warn (0: none)"`
	HardBytes int64  `json:"hard_bytes" required:"true" minimum:"0" doc:"past it, new backups of the host are refused and its uploads stop (0: none)"`
	State     string `json:"state,omitempty" enum:"quota_state" doc:"ok, warning (past soft) or exceeded (past hard)"`
}

// HostQuotaRequest is the body of PUT /backup/hosts/{host_id}/quota.
type HostQuotaRequest struct {
	SoftBytes *int64 `json:"soft_bytes" required:"true" minimum:"0" doc:"past it, the host's backups warn (0: none)" example:"400000000000"`
	HardBytes *int64 `json:"hard_bytes" required:"true" minimum:"0" doc:"past it, new backups of the host are refused and its uploads stop (0: none)" example:"500000000000"`
}

// QuotaStates: a host's use against its quota.
var QuotaStates = []string{"ok", "warning", "exceeded"}

// HostQuotaSet answers PUT /backup/hosts/{host_id}/quota.
type HostQuotaSet struct {
	ID    string    `json:"id" required:"true"`
	Name  string    `json:"name" required:"true"`
	Quota HostQuota `json:"quota" required:"true"`
}
