// Package codes holds the spec's error codes (BACKUP_001…015) and the one
// typed error that carries a code from where a failure arises — activity,
// workflow, catalog — to the HTTP edge. Engine errors are sentinel values;
// Classify maps them to codes with errors.Is, never by their text.
package codes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"syscall"

	"backupd/backup"
	"backupd/repository"
	"backupd/restore"
	"backupd/storage"
)

// Code is one of the spec's error codes.
type Code string

const (
	InsufficientStorage  Code = "BACKUP_001"
	AlreadyInProgress    Code = "BACKUP_002"
	InvalidConfiguration Code = "BACKUP_003"
	StorageConnectivity  Code = "BACKUP_004"
	KeyUnavailable       Code = "BACKUP_005"
	VerificationFailed   Code = "BACKUP_006"
	BackupNotFound       Code = "BACKUP_007"
	RestoreConflict      Code = "BACKUP_008"
	InvalidFormat        Code = "BACKUP_009"
	CorruptionDetected   Code = "BACKUP_010"
	ScheduleError        Code = "BACKUP_011"
	RetentionViolation   Code = "BACKUP_012"
	CompressionFailure   Code = "BACKUP_013"
	ComponentFailure     Code = "BACKUP_014"
	JobNotFound          Code = "BACKUP_015"
)

// Info is what the system says about a code, in one place: the spec's
// description, whether retrying can help, the HTTP status an API call
// failing with it answers, and what a user can do.
type Info struct {
	Description      string
	Retryable        bool
	HTTPStatus       int
	SuggestedActions []string
}

// table is the one home of every code's facts. Only a storage location
// that cannot be reached or is full may get better by itself; the rest
// (configuration, keys, corruption, a conflicting job, a policy, a
// compressor that failed on this data) fail the same way again, so jobs
// fail fast on them.
var table = map[Code]Info{
	InsufficientStorage: {"Insufficient storage space", true, http.StatusInsufficientStorage,
		[]string{"Free up space on the storage location", "Run storage cleanup", "Choose another storage location", "Reduce the backup by excluding components"}},
	AlreadyInProgress: {"Backup already in progress", false, http.StatusConflict,
		[]string{"Wait for the running job to finish (GET /cloud-integration/backup/jobs)", "Cancel the running job first"}},
	InvalidConfiguration: {"Invalid backup configuration", false, http.StatusBadRequest,
		[]string{"Correct the named field and send the request again"}},
	StorageConnectivity: {"Storage connectivity issue", true, http.StatusServiceUnavailable,
		[]string{"Check that the storage location is reachable", "Check the credentials in the configuration", "Retry later"}},
	KeyUnavailable: {"Encryption key unavailable", false, http.StatusServiceUnavailable,
		[]string{"Check the repository password or key file in the configuration", "Restore the key entry from a copy"}},
	VerificationFailed: {"Backup verification failed", false, http.StatusUnprocessableEntity,
		[]string{"Read the verification report", "Repair from another copy of the backup", "Take a new backup"}},
	BackupNotFound: {"Backup not found", false, http.StatusNotFound,
		[]string{"List the backups (GET /cloud-integration/backup/list)", "Rebuild the catalog from storage (backupd catalog rebuild)"}},
	RestoreConflict: {"Restore operation conflict", false, http.StatusConflict,
		[]string{"Wait for the running restore to finish", "Choose an empty target or set overwrite"}},
	InvalidFormat: {"Invalid backup format", false, http.StatusUnprocessableEntity,
		[]string{"Check that the location holds a backupd repository of a supported version"}},
	CorruptionDetected: {"Backup corruption detected", false, http.StatusUnprocessableEntity,
		[]string{"Run a verification with verify_checksum", "Restore from another storage location", "Take a new backup"}},
	ScheduleError: {"Schedule configuration error", false, http.StatusBadRequest,
		[]string{"Correct the named schedule field"}},
	RetentionViolation: {"Retention policy violation", false, http.StatusConflict,
		[]string{"Unprotect the backup first, or wait until its retention ends", "Use force where the API offers it"}},
	CompressionFailure: {"Compression failure", false, http.StatusInternalServerError,
		[]string{"Retry with another compression algorithm"}},
	ComponentFailure: {"Component backup failure", false, http.StatusInternalServerError,
		[]string{"Read the failing paths in the details", "Fix permissions or the component's sources and back up again"}},
	JobNotFound: {"Backup job not found", false, http.StatusNotFound,
		[]string{"List the jobs (GET /cloud-integration/backup/jobs)"}},
}

// All lists the codes in order.
func All() []Code {
	out := make([]Code, 0, len(table))
	for c := range table {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Info is c's entry of the table (zero for a code that is not the spec's).
func (c Code) Info() Info { return table[c] }

// Retryable tells whether retrying can help.
func (c Code) Retryable() bool { return table[c].Retryable }

// Description is the spec's wording.
func (c Code) Description() string { return table[c].Description }

// HTTPStatus is the status of an API answer failing with c (500 for a
// code that is not the spec's).
func (c Code) HTTPStatus() int {
	if s := table[c].HTTPStatus; s != 0 {
		return s
	}
	return http.StatusInternalServerError
}

// SuggestedActions are what a user can do about c.
func (c Code) SuggestedActions() []string { return table[c].SuggestedActions }

// NonRetryable lists the codes retrying cannot fix, as Temporal retry
// policies name them (NonRetryableErrorTypes: an activity's error type is
// its code).
func NonRetryable() []string {
	var out []string
	for _, c := range All() {
		if !c.Retryable() {
			out = append(out, string(c))
		}
	}
	return out
}

// Error is a failure with its code.
type Error struct {
	Code    Code
	Message string
	Details map[string]any
	Err     error
}

func (e *Error) Error() string {
	if e.Message != "" {
		return string(e.Code) + ": " + e.Message
	}
	return string(e.Code) + ": " + e.Code.Description()
}

func (e *Error) Unwrap() error { return e.Err }

// New makes a coded error.
func New(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// Wrap attaches a code to err, keeping err's message.
func Wrap(c Code, err error) *Error {
	return &Error{Code: c, Message: err.Error(), Err: err}
}

// Classify returns err's code: the one it carries, or the one its engine
// sentinel maps to. Unknown failures are storage connectivity (retryable),
// the most common cause of an unexpected I/O error.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	c, _ := match(err)
	return &Error{Code: c, Message: err.Error(), Err: err}
}

// Known reports whether err carries a code of its own or is one of the
// engine's sentinel errors: its text was written for users. Anything else
// (a database driver's error, a raw system call's) may name internals.
func Known(err error) bool {
	var ce *Error
	if errors.As(err, &ce) {
		return true
	}
	_, ok := match(err)
	return ok
}

func match(err error) (Code, bool) {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, storage.ErrQuotaExceeded):
		return InsufficientStorage, true
	case errors.Is(err, repository.ErrNoMatchingKey), errors.Is(err, repository.ErrWriteOnly):
		return KeyUnavailable, true
	case errors.Is(err, repository.ErrCorrupt), errors.Is(err, repository.ErrBlobNotFound),
		errors.Is(err, repository.ErrPacksMissing):
		return CorruptionDetected, true
	case errors.Is(err, repository.ErrBackupIDTaken):
		return AlreadyInProgress, true
	case errors.Is(err, repository.ErrBackupNotFound):
		return BackupNotFound, true
	case errors.Is(err, repository.ErrNotInitialized), errors.Is(err, storage.ErrInvalidName):
		return InvalidConfiguration, true
	case errors.Is(err, restore.ErrTargetNotEmpty), errors.Is(err, restore.ErrInTheWay):
		return RestoreConflict, true
	case errors.Is(err, restore.ErrInvalidSelection):
		return InvalidConfiguration, true
	case errors.Is(err, backup.ErrComponentFailed):
		return ComponentFailure, true
	case errors.Is(err, context.Canceled):
		return StorageConnectivity, true
	}
	return StorageConnectivity, false
}
