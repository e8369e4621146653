package apiserver

import (
	"backupd/api"
	"errors"
	"net/http"
	"time"

	"backupd/codes"
	"backupd/models"
)

// apiError is every error the API returns, in the spec's format.
type apiError struct {
	Status  int
	Code    string
	Message string
	Details map[string]any
	Actions []string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// badRequest names the offending field (BACKUP_003 unless code says otherwise).
func badRequest(field, format string, args ...any) *apiError {
	return invalid(codes.InvalidConfiguration, field, format, args...)
}

func invalid(code codes.Code, field, format string, args ...any) *apiError {
	e := &apiError{Status: http.StatusBadRequest, Code: string(code), Message: sprintf(format, args...),
		Details: map[string]any{}}
	if field != "" {
		e.Details["field"] = field
	}
	return e
}

func notFound(code codes.Code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: string(code), Message: sprintf(format, args...)}
}

func conflict(code codes.Code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusConflict, Code: string(code), Message: sprintf(format, args...)}
}

// statusOf gives each spec code its HTTP status.
func statusOf(c codes.Code) int {
	switch c {
	case codes.InsufficientStorage:
		return http.StatusInsufficientStorage
	case codes.AlreadyInProgress, codes.RestoreConflict, codes.RetentionViolation:
		return http.StatusConflict
	case codes.InvalidConfiguration, codes.ScheduleError:
		return http.StatusBadRequest
	case codes.StorageConnectivity, codes.KeyUnavailable:
		return http.StatusServiceUnavailable
	case codes.BackupNotFound, codes.JobNotFound:
		return http.StatusNotFound
	case codes.VerificationFailed, codes.InvalidFormat, codes.CorruptionDetected:
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// suggestions are the spec's suggested_actions, per code.
var suggestions = map[string][]string{
	string(codes.InsufficientStorage):  {"Free up space on the storage location", "Run storage cleanup", "Choose another storage location", "Reduce the backup by excluding components"},
	string(codes.AlreadyInProgress):    {"Wait for the running job to finish (GET /cloud-integration/backup/jobs)", "Cancel the running job first"},
	string(codes.InvalidConfiguration): {"Correct the named field and send the request again"},
	string(codes.StorageConnectivity):  {"Check that the storage location is reachable", "Check the credentials in the configuration", "Retry later"},
	string(codes.KeyUnavailable):       {"Check the repository password or key file in the configuration", "Restore the key entry from a copy"},
	string(codes.VerificationFailed):   {"Read the verification report", "Repair from another copy of the backup", "Take a new backup"},
	string(codes.BackupNotFound):       {"List the backups (GET /cloud-integration/backup/list)", "Rebuild the catalog from storage (backupd catalog rebuild)"},
	string(codes.RestoreConflict):      {"Wait for the running restore to finish", "Choose an empty target or set overwrite"},
	string(codes.InvalidFormat):        {"Check that the location holds a backupd repository of a supported version"},
	string(codes.CorruptionDetected):   {"Run a verification with verify_checksum", "Restore from another storage location", "Take a new backup"},
	string(codes.ScheduleError):        {"Correct the named schedule field"},
	string(codes.RetentionViolation):   {"Unprotect the backup first, or wait until its retention ends", "Use force where the API offers it"},
	string(codes.CompressionFailure):   {"Retry with another compression algorithm"},
	string(codes.ComponentFailure):     {"Read the failing paths in the details", "Fix permissions or the component's sources and back up again"},
	string(codes.JobNotFound):          {"List the jobs (GET /cloud-integration/backup/jobs)"},
	"UNAUTHORIZED":                     {"Send Authorization: Bearer <token>", "Create a token with backupd token create"},
	"FORBIDDEN":                        {"Use a token with the required role"},
	"REQUEST_TOO_LARGE":                {"Send a smaller request body"},
	"NOT_FOUND":                        {"Check the path and method against the API reference (GET /cloud-integration/backup/openapi.json, no token needed)"},
	"TOO_MANY_REQUESTS":                {"Wait for the time in the Retry-After header", "Send a valid bearer token"},
	"CONFLICT":                         {"Read the message: the resource is not in a state that allows this call"},
	"AUDIT_UNAVAILABLE":                {"Check the catalog database (the server log has the cause)", "Retry when the audit log can be written again"},
}

// fallbackActions answer an error whose code has no suggestions of its
// own: suggested_actions is never empty.
func fallbackActions(status int) []string {
	if status >= 500 {
		return []string{"Retry later", "If it persists, report the request_id to the administrator (the server log has the details)"}
	}
	return []string{"Correct the request as the message says and send it again"}
}

// jobError is the spec's error object for a job that failed (progress,
// job lists, reports, job_complete): its code, message and what to do.
func jobError(code, message string, details map[string]any) map[string]any {
	if code == "" {
		code = string(codes.ComponentFailure)
	}
	actions := suggestions[code]
	if actions == nil {
		actions = []string{"Read the job's error and the worker's log", "Start the job again"}
	}
	if details == nil {
		details = map[string]any{}
	}
	return map[string]any{"code": code, "message": message, "details": details, "suggested_actions": actions}
}

// userFacing reports whether an error's text was written for clients.
func userFacing(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) || errors.Is(err, models.ErrNotFound) || codes.Known(err)
}

// toAPIError turns any error into the API's error.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, models.ErrNotFound) {
		return &apiError{Status: http.StatusNotFound, Code: string(codes.BackupNotFound), Message: err.Error()}
	}
	c := codes.Classify(err)
	e := &apiError{Status: statusOf(c.Code), Code: string(c.Code), Message: c.Message, Details: c.Details}
	if e.Message == "" {
		e.Message = c.Code.Description()
	}
	return e
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := toAPIError(err)
	if e.Status >= 500 || !userFacing(err) {
		args := []any{"method", r.Method, "path", r.URL.Path, "request_id", requestID(r), "err", err}
		if st := stateOf(r); st != nil && st.clientID != "" {
			args = append(args, "client_request_id", st.clientID)
		}
		s.Log.Error("request failed", args...)
	}
	if !userFacing(err) {
		// a database's or the system's own words may name internals
		// (paths, SQL, addresses): the client gets the kind and the
		// request id, the log has the rest
		e = &apiError{Status: e.Status, Code: e.Code, Details: map[string]any{"request_id": requestID(r)},
			Message: sprintf("%s: an internal error occurred (request %s; the server log has the details)",
				codes.Code(e.Code).Description(), requestID(r))}
	}
	if rs := stateOf(r); rs != nil {
		rs.outcomeDetail = e.Code + ": " + e.Message
	}
	details := e.Details
	if details == nil {
		details = map[string]any{}
	}
	actions := e.Actions
	if actions == nil {
		actions = suggestions[e.Code]
	}
	if len(actions) == 0 {
		actions = fallbackActions(e.Status)
	}
	writeJSON(w, e.Status, api.Error{IsError: true, Code: e.Code, Message: e.Message, Details: details,
		SuggestedActions: actions, RequestID: requestID(r), Timestamp: rfc3339(time.Now())})
}
