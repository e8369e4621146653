package apiserver

import (
	"errors"
	"net/http"
	"time"

	"backupd/api"
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

// suggestions are the suggested_actions of the API's own codes; the
// spec's codes have theirs in package codes' table.
var suggestions = map[string][]string{
	"UNAUTHORIZED":      {"Send Authorization: Bearer <token>", "Create a token with backupd token create"},
	"FORBIDDEN":         {"Use a token with the required role"},
	"REQUEST_TOO_LARGE": {"Send a smaller request body"},
	"NOT_FOUND":         {"Check the path and method against the API reference (GET /cloud-integration/backup/openapi.json, no token needed)"},
	"TOO_MANY_REQUESTS": {"Wait for the time in the Retry-After header", "Send a valid bearer token"},
	"CONFLICT":          {"Read the message: the resource is not in a state that allows this call"},
	"AUDIT_UNAVAILABLE": {"Check the catalog database (the server log has the cause)", "Retry when the audit log can be written again"},
}

// actionsFor are a code's suggested actions: the API's own codes' here,
// the spec's from package codes' table.
func actionsFor(code string) []string {
	if a, ok := suggestions[code]; ok {
		return a
	}
	return codes.Code(code).SuggestedActions()
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
func jobError(code, message string, details map[string]any) *api.JobError {
	if code == "" {
		code = string(codes.ComponentFailure)
	}
	actions := actionsFor(code)
	if actions == nil {
		actions = []string{"Read the job's error and the worker's log", "Start the job again"}
	}
	if details == nil {
		details = map[string]any{}
	}
	return &api.JobError{Code: code, Message: message, Details: details, SuggestedActions: actions}
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
	e := &apiError{Status: c.Code.HTTPStatus(), Code: string(c.Code), Message: c.Message, Details: c.Details}
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
		actions = actionsFor(e.Code)
	}
	if len(actions) == 0 {
		actions = fallbackActions(e.Status)
	}
	writeJSON(w, e.Status, api.Error{IsError: true, Code: e.Code, Message: e.Message, Details: details,
		SuggestedActions: actions, RequestID: requestID(r), Timestamp: rfc3339(time.Now())})
}
