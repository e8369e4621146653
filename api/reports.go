package api

import (
	"time"

	"backupd/retention"
)

// The reports of verification, cleanup and repair jobs (GET
// /backup/{verify,cleanup,repair}/report/{id}): the document the job
// stored when it ended, under its head; before that, ReportPending.

// ReportHead is every stored report's head.
type ReportHead struct {
	ID      string `json:"id" required:"true" doc:"the verification, cleanup or repair id"`
	Status  string `json:"status" required:"true" enum:"job_status" doc:"how the job ended"`
	JobID   string `json:"job_id" required:"true"`
	Created string `json:"created" required:"true" format:"date-time"`
}

// ReportPending answers a report's route while the job has not stored
// its report: still running, or ended without one.
type ReportPending struct {
	ID       string    `json:"id" required:"true"`
	JobID    string    `json:"job_id" required:"true"`
	Status   string    `json:"status" required:"true" enum:"report_state" doc:"failed: the job ended without a report"`
	BackupID *string   `json:"backup_id" required:"true" nullable:"true"`
	Message  string    `json:"message" required:"true"`
	Progress float64   `json:"progress" required:"true" minimum:"0" maximum:"100"`
	Error    *JobError `json:"error,omitempty" doc:"why the job failed"`
}

// VerifyReport is a verification's report.
type VerifyReport struct {
	ReportHead
	BackupID string `json:"backup_id" required:"true"`
	Location string `json:"location" required:"true" doc:"the copy checked"`
	Passed   bool   `json:"passed" required:"true"`
	*VerifyChecks
	*ReportFailure
}

// VerifyChecks are what a verification that ran found.
type VerifyChecks struct {
	Check         *CheckResult   `json:"check" nullable:"true" doc:"the repository check"`
	ExtractTest   *ExtractResult `json:"extract_test,omitempty" doc:"when asked for"`
	Started       string         `json:"started" format:"date-time"`
	Finished      string         `json:"finished" format:"date-time"`
	ManifestValid bool           `json:"manifest_valid" doc:"the manifest loaded and its signature verified"`
	Components    []string       `json:"components" nullable:"true"`
}

// ReportFailure is why a job that stored its report failed before
// finding anything (a verification whose check could not run).
type ReportFailure struct {
	Error     string `json:"error"`
	ErrorCode string `json:"error_code" doc:"empty when the job was cancelled"`
}

// CheckResult is the repository check of a verification.
type CheckResult struct {
	OK            bool           `json:"ok" required:"true"`
	IndexFiles    int            `json:"index_files" required:"true"`
	Packs         int            `json:"packs" required:"true"`
	PacksRead     int            `json:"packs_read" required:"true"`
	Blobs         int            `json:"blobs" required:"true"`
	Manifests     int            `json:"manifests" required:"true"`
	Trees         int            `json:"trees" required:"true"`
	Errors        []CheckProblem `json:"errors" required:"true" nullable:"true"`
	Warnings      []CheckProblem `json:"warnings" required:"true" nullable:"true"`
	DamagedPacks  []string       `json:"damaged_packs" required:"true" nullable:"true"`
	AffectedFiles []string       `json:"affected_files" required:"true" nullable:"true" doc:"backup:component:/path"`
}

// CheckProblem is one problem the check found.
type CheckProblem struct {
	Kind    string `json:"kind" required:"true" doc:"index, pack, manifest, tree or blob"`
	Object  string `json:"object" required:"true"`
	Message string `json:"message" required:"true"`
}

// ExtractResult is the outcome of restoring into a scratch directory.
type ExtractResult struct {
	Passed        bool   `json:"passed" required:"true"`
	FilesVerified int64  `json:"files_verified" required:"true"`
	Bytes         int64  `json:"bytes" required:"true"`
	Error         string `json:"error,omitempty"`
}

// CleanupReport is a cleanup's report.
type CleanupReport struct {
	ReportHead
	CleanupID         string           `json:"cleanup_id" required:"true"`
	DryRun            bool             `json:"dry_run" required:"true"`
	SpaceFreedBytes   int64            `json:"space_freed_bytes" required:"true" doc:"storage freed now, net of the packs repack wrote (negative when what they replace waits for the safety window)"`
	UnreferencedBytes int64            `json:"unreferenced_bytes" required:"true" doc:"what the cleanup frees in all (a dry run: would free), now or after the safety window, net of repack's new packs"`
	Locations         []string         `json:"locations" required:"true" nullable:"true"`
	BackupIDs         []string         `json:"backup_ids" required:"true" nullable:"true" doc:"the backups chosen for removal"`
	Outcome           *CleanupOutcome  `json:"outcome" required:"true" nullable:"true" doc:"null when the job failed before it"`
	Decisions         []retention.Line `json:"decisions" required:"true" nullable:"true" doc:"the retention decision on each backup"`
	Error             string           `json:"error" required:"true"`
}

// CleanupOutcome is a cleanup's work per location.
type CleanupOutcome struct {
	Removed map[string][]string          `json:"removed" required:"true" nullable:"true" doc:"the backups removed, by location"`
	GC      map[string]GCLocationOutcome `json:"gc" required:"true" nullable:"true" doc:"garbage collection, by location"`
	// Hosts: enrolled hosts' repositories, each collected on its own.
	Hosts map[string]map[string]GCLocationOutcome `json:"hosts,omitempty" doc:"garbage collection of enrolled hosts' repositories: by repository (hosts/<host id>), then location"`
}

// Each calls f with every collection: the locations' own repositories',
// then enrolled hosts'.
func (o *CleanupOutcome) Each(f func(GCLocationOutcome)) {
	for _, g := range o.GC {
		f(g)
	}
	for _, locs := range o.Hosts {
		for _, g := range locs {
			f(g)
		}
	}
}

// GCLocationOutcome is one location's garbage collection.
type GCLocationOutcome struct {
	Packs      int   `json:"packs" required:"true"`
	Deleted    int   `json:"deleted" required:"true"`
	BytesFreed int64 `json:"bytes_freed" required:"true"`
	Condemned  int   `json:"condemned" required:"true"`
	// UnreferencedBytes: what the removed backups free in all (a dry run:
	// would free), now or after the safety window.
	UnreferencedBytes int64 `json:"unreferenced_bytes" required:"true"`
	// Repack: what rewriting partly used packs did (null when disabled).
	Repack *RepackOutcome `json:"repack" required:"true" nullable:"true" doc:"rewriting of partly used packs; null when repacking is disabled"`
	// PackBytes: the packs' size after the collection.
	PackBytes int64 `json:"pack_bytes,omitempty" doc:"the size of the packs left in the repository"`
	// RepositoryBytes: an enrolled host's repository's size after it.
	RepositoryBytes int64 `json:"repository_bytes,omitempty" doc:"an enrolled host's repository there after the collection: packs, index, manifests"`
	// Unconfirmed: an enrolled host's packs kept because the other copy
	// of a blob they hold did not read back whole.
	Unconfirmed int `json:"unconfirmed,omitempty" doc:"packs kept because the other copy of a blob they hold did not read back whole (enrolled hosts' repositories)"`
	// Error: why an enrolled host's repository was not collected (the
	// cleanup went on with the others).
	Error string `json:"error,omitempty" doc:"why an enrolled host's repository could not be cleaned; the cleanup went on with the others"`
	// Locks: an immutable location's (object_lock) locks.
	Locks *LockOutcome `json:"locks,omitempty" doc:"an immutable (object_lock) location: locks extended, and what waits for its lock to end before it is deleted"`
}

// LockOutcome is what a collection of an immutable location did about
// its locks.
type LockOutcome struct {
	Period           string     `json:"period" required:"true" doc:"how long a new object is locked (Go duration), or append-only"`
	AppendOnly       bool       `json:"append_only,omitempty" doc:"an append-only location: nothing it keeps is deleted; what waits goes at a maintenance run with a credential that may delete"`
	Extended         int        `json:"extended" required:"true" doc:"locks extended now: every half period, the objects kept backups need are locked for another period"`
	LastPass         *time.Time `json:"last_pass,omitempty" doc:"when the locks of everything kept backups need were last extended"`
	WaitingPacks     int        `json:"waiting_packs" required:"true" doc:"packs no backup uses that stay, condemned, until their locks end (the server refuses to delete them before)"`
	WaitingBytes     int64      `json:"waiting_bytes" required:"true" doc:"their size"`
	WaitingManifests int        `json:"waiting_manifests" required:"true" doc:"deleted backups' manifests that stay until their locks end (the backups are gone from every list already)"`
	WaitingKeys      int        `json:"waiting_keys,omitempty" doc:"revoked key entries that stay until their locks end (they open nothing)"`
	Late             bool       `json:"late,omitempty" doc:"the previous extension was more than three quarters of a period before this one: locks may have ended meanwhile; cleanups must run at least every half period"`
	NextUnlock       *time.Time `json:"next_unlock,omitempty" doc:"the earliest end of a waiting object's lock, as far as known: a cleanup after it deletes what waits"`
}

// Freed is what the collection freed in storage now: the packs it deleted
// less the new packs repack wrote (negative when the packs those replace
// wait for the safety window).
func (g GCLocationOutcome) Freed() int64 {
	n := g.BytesFreed
	if g.Repack != nil {
		n -= g.Repack.Written
	}
	return n
}

// ToFree is what the collection frees in all, now or after the safety
// window: the unreferenced packs, net of repack's copies (a dry run: the
// packs the removal leaves unreferenced, and what repack would free).
func (g GCLocationOutcome) ToFree() int64 {
	n := g.UnreferencedBytes
	if r := g.Repack; r != nil {
		if r.NewPacks > 0 {
			n -= r.Written // the rewritten packs are among the unreferenced
		} else {
			n += r.Frees
		}
	}
	return n
}

// RepackOutcome is what one location's repack did (a dry run: would do).
type RepackOutcome struct {
	Qualifying int      `json:"qualifying_packs" required:"true" doc:"packs over the unused-space threshold or too small, old enough to touch"`
	Packs      int      `json:"packs" required:"true" doc:"packs rewritten (dry run: that would be)"`
	Blobs      int      `json:"blobs" required:"true" doc:"live blobs copied"`
	LiveBytes  int64    `json:"live_bytes" required:"true" doc:"stored bytes of the live blobs copied"`
	PackBytes  int64    `json:"pack_bytes" required:"true" doc:"size of the packs they came from"`
	Frees      int64    `json:"frees_bytes" required:"true" doc:"what deleting the rewritten packs frees, net of the new packs (now, or after the safety window)"`
	NewPacks   int      `json:"new_packs" required:"true"`
	Written    int64    `json:"written_bytes" required:"true" doc:"size of the new packs"`
	OverBudget int      `json:"over_budget" required:"true" doc:"qualifying packs left for the next cleanup by the budget"`
	Damaged    []string `json:"damaged" required:"true" nullable:"true" doc:"packs left as they were because a live blob in them did not read back; run a verification"`
	Skipped    string   `json:"skipped" required:"true" doc:"why nothing was rewritten although packs qualified, or empty"`
}

// RepairReport is a repair's report.
type RepairReport struct {
	ReportHead
	RepairID string        `json:"repair_id" required:"true"`
	Items    []RepairItem  `json:"items" required:"true"`
	Outcome  RepairOutcome `json:"outcome" required:"true"`
}

// RepairItem is one backup to repair: where it is (healthy copies first)
// and where it is missing.
type RepairItem struct {
	BackupID string   `json:"backup_id" required:"true"`
	Sources  []string `json:"sources" required:"true"`
	Missing  []string `json:"missing" required:"true"`
	// Repository: an enrolled host's backup is in its repository there.
	Repository string `json:"repository,omitempty" doc:"an enrolled host's backup: its repository in each location (hosts/<host id>)"`
}

// RepairOutcome says what was copied where, and what could not be.
type RepairOutcome struct {
	Copied map[string][]string `json:"copied" required:"true" doc:"backup -> the locations it was copied to"`
	Failed map[string]string   `json:"failed" required:"true" doc:"\"backup -> location\" -> why"`
}
