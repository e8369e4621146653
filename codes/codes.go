// Package codes holds the spec's error codes (BACKUP_001…015) and the one
// typed error that carries a code from where a failure arises — activity,
// workflow, catalog — to the HTTP edge. Engine errors are sentinel values;
// Classify maps them to codes with errors.Is, never by their text.
package codes

import (
	"context"
	"errors"
	"fmt"
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

// Retryable tells whether retrying can help: configuration, keys and
// corruption do not get better by trying again, so jobs fail fast on them.
func (c Code) Retryable() bool {
	switch c {
	case StorageConnectivity, InsufficientStorage:
		return true
	}
	return false
}

// Description is the spec's wording.
func (c Code) Description() string {
	return descriptions[c]
}

var descriptions = map[Code]string{
	InsufficientStorage: "Insufficient storage space", AlreadyInProgress: "Backup already in progress",
	InvalidConfiguration: "Invalid backup configuration", StorageConnectivity: "Storage connectivity issue",
	KeyUnavailable: "Encryption key unavailable", VerificationFailed: "Backup verification failed",
	BackupNotFound: "Backup not found", RestoreConflict: "Restore operation conflict",
	InvalidFormat: "Invalid backup format", CorruptionDetected: "Backup corruption detected",
	ScheduleError: "Schedule configuration error", RetentionViolation: "Retention policy violation",
	CompressionFailure: "Compression failure", ComponentFailure: "Component backup failure",
	JobNotFound: "Backup job not found",
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
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return InsufficientStorage, true
	case errors.Is(err, repository.ErrNoMatchingKey), errors.Is(err, repository.ErrWriteOnly):
		return KeyUnavailable, true
	case errors.Is(err, repository.ErrCorrupt), errors.Is(err, repository.ErrBlobNotFound),
		errors.Is(err, repository.ErrPacksMissing):
		return CorruptionDetected, true
	case errors.Is(err, repository.ErrBackupNotFound):
		return BackupNotFound, true
	case errors.Is(err, repository.ErrNotInitialized), errors.Is(err, storage.ErrInvalidName):
		return InvalidConfiguration, true
	case errors.Is(err, restore.ErrTargetNotEmpty):
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
