package codes

import (
	"fmt"

	"backupd/restore"
	"net/http"
	"slices"
	"testing"
)

// Every spec code (BACKUP_001..015) has its facts in the table.
func TestEveryCodeHasItsFacts(t *testing.T) {
	all := All()
	if len(all) != 15 || all[0] != "BACKUP_001" || all[14] != "BACKUP_015" {
		t.Fatalf("codes %v", all)
	}
	for _, c := range all {
		i := c.Info()
		if i.Description == "" || i.HTTPStatus < 400 || len(i.SuggestedActions) == 0 {
			t.Errorf("%s: %+v", c, i)
		}
	}
	if Code("NOPE").HTTPStatus() != http.StatusInternalServerError {
		t.Error("an unknown code is not a 500")
	}
}

// Only a location that is unreachable or full may get better by itself;
// the five codes the workflows' own list used to leave out (and so
// retried up to 20 times) are not retryable.
func TestOnlyStorageFailuresAreRetried(t *testing.T) {
	var retryable []Code
	for _, c := range All() {
		if c.Retryable() {
			retryable = append(retryable, c)
		}
	}
	if !slices.Equal(retryable, []Code{InsufficientStorage, StorageConnectivity}) {
		t.Fatalf("retryable %v", retryable)
	}
	nr := NonRetryable()
	for _, c := range []Code{AlreadyInProgress, ScheduleError, RetentionViolation, CompressionFailure, JobNotFound} {
		if !slices.Contains(nr, string(c)) {
			t.Errorf("%s is retried", c)
		}
	}
	if len(nr) != 13 {
		t.Errorf("non-retryable %v", nr)
	}
}

// What is in the way of a restore is a conflict for the user, not a
// storage failure to retry.
func TestSomethingInTheWayOfARestoreIsAConflict(t *testing.T) {
	e := Classify(fmt.Errorf("data/x is a directory: %w", restore.ErrInTheWay))
	if e.Code != RestoreConflict || e.Code.Retryable() {
		t.Fatalf("%v", e)
	}
}
