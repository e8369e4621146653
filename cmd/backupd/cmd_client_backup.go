package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"backupd/api"
	"backupd/apiclient"
)

const backupUsage = `Usage: backupd backup <command> [flags]   (through the API server; see 'backupd repo' for the server-less path)

  create   --components a,b [--type full] [--locations local,cloud] [--compression zstd] [--encryption=false]
           [--name N] [--description D] [--priority normal] [--verify] [--wait]
  list     [--type T] [--status S] [--since 7d] [--until T] [--schedule ID] [--limit 50] [--offset N | --page N]
  show     ID
  verify   ID [--location L] [--read-data-percent N] [--extract] [--wait]
  delete   ID [--force] [--locations a,b] [--yes]
  progress [--job ID] [--wait]

Every command: --server URL (BACKUPD_SERVER), --token (BACKUPD_TOKEN) or --token-file, --ca-file, --config, --json.
`

// backupCommands are backupd backup's commands.
var backupCommands = []string{"create", "list", "show", "verify", "delete", "progress"}

func cmdClientBackup(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, backupUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create":
		return backupCreate(ctx, args)
	case "list":
		return backupList(ctx, args)
	case "show":
		return backupShow(ctx, args)
	case "verify":
		return backupVerify(ctx, args)
	case "delete":
		return backupDelete(ctx, args)
	case "progress":
		return jobProgress(ctx, api.JobBackup, args)
	}
	fmt.Fprintf(os.Stderr, "backupd backup: unknown command %q\n\n%s", sub, backupUsage)
	return errUsage
}

func backupCreate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd backup create", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var comps, typ, locs, compression, name, desc, priority, host string
	var encryption optBool
	var verify, wait bool
	fs.StringVar(&comps, "components", "", "comma-separated component names (required)")
	fs.StringVar(&host, "host", "", "an enrolled host to back up (default: the server's own; backupd host list)")
	fs.StringVar(&typ, "type", "", "full | incremental | differential | snapshot (default full)")
	fs.StringVar(&locs, "locations", "", "comma-separated storage locations (default: the server's)")
	fs.StringVar(&compression, "compression", "", "zstd | gzip | bzip2 | lz4 | none (default: the policy's)")
	fs.Var(&encryption, "encryption", "backupd always encrypts; --encryption=false is answered with a warning")
	fs.StringVar(&name, "name", "", "the backup's name (default <type>-manual-<time>)")
	fs.StringVar(&desc, "description", "", "a description")
	fs.StringVar(&priority, "priority", "", "low | normal | high | critical")
	fs.BoolVar(&verify, "verify", false, "verify the backup when it completes")
	fs.BoolVar(&wait, "wait", false, "follow the job to its end, showing its progress")
	s, _, err := cf.open(fs, args)
	if err != nil {
		return err
	}
	if err := errors.Join(oneOfFlag("type", typ, api.BackupTypes), oneOfFlag("compression", compression, api.Compressions),
		oneOfFlag("priority", priority, api.Priorities)); err != nil {
		return err
	}
	names := splitList(comps)
	if len(names) == 0 {
		return usageErr("--components: name at least one component, e.g. --components data,configurations")
	}
	req := api.CreateBackupRequest{Name: name, Type: typ, Components: api.ComponentSet{}, StorageLocations: splitList(locs),
		Encryption: encryption.v, Compression: compression, Description: desc, Priority: priority, VerifyAfterCompletion: verify,
		Host: host}
	for _, n := range names {
		req.Components[n] = true
	}
	st, raw, err := s.c.CreateBackup(ctx, req)
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
	} else {
		fmt.Fprintf(s.out, "backup %s started: job %s (%s of %s, about %s)\n", st.BackupID, st.JobID, st.Type,
			strings.Join(st.Components, ", "), st.EstimatedDuration)
		for _, w := range st.Warnings {
			fmt.Fprintf(s.errw, "warning: %s\n", w)
		}
	}
	if !wait {
		return nil
	}
	return s.wait(ctx, apiclient.Watch{Kind: api.JobBackup, JobID: st.JobID}, "backupd backup progress --wait --job "+st.JobID)
}

func backupList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd backup list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var q apiclient.BackupQuery
	var since, until string
	var offset int
	fs.StringVar(&q.Type, "type", "", "only this type: full | incremental | differential | snapshot")
	fs.StringVar(&q.Status, "status", "", "only this status: completed (with partial) | partial | failed | in_progress | cancelled")
	fs.StringVar(&since, "since", "", "taken at or after: a time (2025-03-15T02:00:00Z, 2025-03-15) or an age (36h, 7d)")
	fs.StringVar(&until, "until", "", "taken at or before (as --since)")
	fs.StringVar(&q.ScheduleID, "schedule", "", "taken by this schedule")
	fs.StringVar(&q.Host, "host", "", "of this host (a name or id; backupd host list)")
	fs.IntVar(&q.Limit, "limit", 50, fmt.Sprintf("entries per page (1..%d)", api.MaxPageSize))
	fs.IntVar(&offset, "offset", 0, "skip this many entries (a multiple of --limit)")
	fs.IntVar(&q.Page, "page", 0, "the page (from 1; or --offset)")
	s, _, err := cf.open(fs, args)
	if err != nil {
		return err
	}
	if err := oneOfFlag("type", q.Type, api.BackupTypes); err != nil {
		return err
	}
	if err := oneOfFlag("status", q.Status, []string{"completed", "partial", "failed", "in_progress", "cancelled"}); err != nil {
		return err
	}
	now := time.Now()
	if q.Since, err = timeFlag("since", since, now); err != nil {
		return err
	}
	if q.Until, err = timeFlag("until", until, now); err != nil {
		return err
	}
	if q.Page, err = pageOf(q.Limit, offset, q.Page); err != nil {
		return err
	}
	list, raw, err := s.c.Backups(ctx, q)
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	rows := make([][]string, 0, len(list.Backups))
	for _, b := range list.Backups {
		when := b.Timestamp
		if !s.tty && b.TimestampRFC3339 != "" {
			when = b.TimestampRFC3339
		}
		rows = append(rows, []string{b.ID, when, b.Type, b.Status, s.size(b.SizeBytes), s.size(b.CompressedSizeBytes),
			strings.Join(trueNames(b.Components), ","), strings.Join(b.StorageLocations, ",")})
	}
	s.table([]string{"ID", "TIME", "TYPE", "STATUS", "SIZE", "STORED", "COMPONENTS", "LOCATIONS"}, rows)
	if s.tty {
		p := list.Pagination
		fmt.Fprintf(s.errw, "%d of %d backups (page %d of %d); %s in all, %s stored\n", len(list.Backups), p.Total, p.Page,
			max(p.TotalPages, 1), humanSize(list.Summary.TotalSizeBytes), humanSize(list.Summary.CompressedSizeBytes))
	}
	return nil
}

// pageOf is the API's page for an offset (the API pages; it has no offset).
func pageOf(limit, offset, page int) (int, error) {
	if limit < 1 || limit > api.MaxPageSize {
		return 0, usageErr("--limit %d: want 1..%d", limit, api.MaxPageSize)
	}
	switch {
	case offset < 0 || page < 0:
		return 0, usageErr("--offset and --page cannot be negative")
	case offset > 0 && page > 0:
		return 0, usageErr("--offset and --page say the same thing: give one")
	case offset%limit != 0:
		return 0, usageErr("--offset %d: the API pages by --limit (%d): give a multiple of it, or --page", offset, limit)
	case offset > 0:
		return offset/limit + 1, nil
	}
	return page, nil
}

// trueNames are the names set to true, sorted.
func trueNames(m map[string]bool) []string {
	var out []string
	for n, on := range m {
		if on {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func backupShow(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd backup show", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	s, pos, err := cf.open(fs, args, "backup id")
	if err != nil {
		return err
	}
	d, raw, err := s.c.Backup(ctx, pos[0])
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	w := s.out
	fmt.Fprintf(w, "backup      %s (%s)\n", d.ID, d.Name)
	if d.Description != "" {
		fmt.Fprintf(w, "description %s\n", d.Description)
	}
	fmt.Fprintf(w, "type        %s\nstatus      %s\n", d.Type, d.Status)
	end := "running"
	if d.Duration.End != nil {
		end = *d.Duration.End
	}
	fmt.Fprintf(w, "time        %s .. %s (%s)\n", d.Duration.Start, end, humanDuration(d.Duration.TotalSeconds))
	sz := d.SizeDetails
	fmt.Fprintf(w, "size        %s, stored %s compressed (ratio %s), %s new; %d files\n", humanSize(sz.RawSizeBytes),
		humanSize(sz.CompressedSizeBytes), sz.CompressionRatio, humanSize(sz.AddedSizeBytes), sz.Files)
	comps := make([]string, 0, len(sz.ComponentsSizeBytes))
	for n, b := range sz.ComponentsSizeBytes {
		comps = append(comps, n+" "+humanSize(b))
	}
	sort.Strings(comps)
	fmt.Fprintf(w, "components  %s\n", strings.Join(comps, ", "))
	for _, l := range d.Storage.Locations {
		state := "not verified"
		if l.Verified {
			state = "verified"
		}
		if l.ManifestError != "" {
			state = "manifest unreadable: " + l.ManifestError
		}
		fmt.Fprintf(w, "location    %-8s %8s  %s\n", l.Type, humanSize(l.SizeBytes), state)
	}
	fmt.Fprintf(w, "integrity   %s\n", d.Integrity.Status)
	fmt.Fprintf(w, "protected   %v\n", d.Protected)
	if d.Dependencies.ParentBackup != nil {
		fmt.Fprintf(w, "parent      %s\n", *d.Dependencies.ParentBackup)
	}
	if d.Metadata.Warnings > 0 {
		fmt.Fprintf(w, "warnings    %d\n", d.Metadata.Warnings)
	}
	if d.Error != nil {
		code := ""
		if d.ErrorCode != nil {
			code = *d.ErrorCode + ": "
		}
		fmt.Fprintf(w, "error       %s%s\n", code, *d.Error)
	}
	return nil
}

func backupVerify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd backup verify", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var location string
	var percent float64
	var extract, wait bool
	fs.StringVar(&location, "location", "", "the copy to check (default: the first location holding it)")
	fs.Float64Var(&percent, "read-data-percent", 100, "read this share of the data (a sample), 0..100")
	fs.BoolVar(&extract, "extract", false, "also restore into a scratch directory and compare")
	fs.BoolVar(&wait, "wait", false, "follow the verification to its end")
	s, pos, err := cf.open(fs, args, "backup id")
	if err != nil {
		return err
	}
	if percent < 0 || percent > 100 {
		return usageErr("--read-data-percent %v: want 0..100", percent)
	}
	req := api.VerifyRequest{BackupID: pos[0], StorageLocation: location, ExtractTest: extract}
	if percent != 100 {
		req.ReadDataPercent = &percent
	}
	st, raw, err := s.c.Verify(ctx, req)
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
	} else {
		fmt.Fprintf(s.out, "verification %s of %s (%s) started: job %s\n", st.VerificationID, st.BackupID, st.StorageLocation, st.JobID)
	}
	if !wait {
		return nil
	}
	return s.wait(ctx, apiclient.Watch{Kind: api.JobVerify, JobID: st.JobID, VerificationID: st.VerificationID},
		"backupd jobs --type verify (its report: GET "+st.ReportURL+")")
}

func backupDelete(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd backup delete", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var force, yes bool
	var locs string
	fs.BoolVar(&force, "force", false, "delete even a protected backup, or one the retention policy keeps")
	fs.StringVar(&locs, "locations", "", "comma-separated locations to delete it from (default: all)")
	fs.BoolVar(&yes, "yes", false, "do not ask for confirmation (needed when stdin is not a terminal)")
	s, pos, err := cf.open(fs, args, "backup id")
	if err != nil {
		return err
	}
	id := pos[0]
	if !yes {
		if !stdinIsTerminal() {
			return usageErr("deleting backup %s needs confirmation: stdin is not a terminal, so give --yes", id)
		}
		where := "from every location"
		if locs != "" {
			where = "from " + locs
		}
		if !confirm(ctx, os.Stdin, s.errw, fmt.Sprintf("delete backup %s %s?", id, where)) {
			return &exitError{exitFail, errors.New("not deleted")}
		}
	}
	d, raw, err := s.c.DeleteBackup(ctx, id, force, splitList(locs))
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	if d.Status == "deleted" {
		fmt.Fprintf(s.out, "backup %s deleted (it was stored nowhere)\n", d.BackupID)
		return nil
	}
	fmt.Fprintf(s.out, "backup %s: deletion from %s started: cleanup %s (job %s)\n", d.BackupID, strings.Join(d.Locations, ", "), d.CleanupID, d.JobID)
	return nil
}

// jobProgress is backup progress and restore progress: the job's
// progress answer, or with --wait the job followed to its end.
func jobProgress(ctx context.Context, kind api.JobType, args []string) error {
	fs := flag.NewFlagSet("backupd "+string(kind)+" progress", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var jobID string
	var wait bool
	fs.StringVar(&jobID, "job", "", "the job id (default: the latest running "+string(kind)+", else the latest)")
	fs.BoolVar(&wait, "wait", false, "follow the job to its end")
	s, _, err := cf.open(fs, args)
	if err != nil {
		return err
	}
	get := s.c.BackupProgress
	if kind == api.JobRestore {
		get = s.c.RestoreProgress
	}
	p, raw, err := get(ctx, jobID)
	if err != nil {
		return clientError(err)
	}
	follow := fmt.Sprintf("backupd %s progress --wait --job %s", kind, p.JobID)
	ended := p.Status == "completed" || p.Status == "failed"
	if wait && !ended {
		if s.json {
			s.raw(raw)
		}
		return s.wait(ctx, apiclient.Watch{Kind: kind, JobID: p.JobID}, follow)
	}
	if s.json {
		s.raw(raw)
	} else {
		printProgress(s, kind, p)
	}
	if ended {
		return jobEndExit(p)
	}
	return nil
}

// printProgress is a progress answer for people.
func printProgress(s *clientSession, kind api.JobType, p api.JobProgress) {
	w := s.out
	id := p.BackupID
	if kind == api.JobRestore {
		id = p.RestoreID + " of backup " + p.BackupID
	}
	fmt.Fprintf(w, "%s %s, job %s: %s", kind, id, p.JobID, p.Status)
	if p.Outcome != "" && p.Outcome != p.Status {
		fmt.Fprintf(w, " (%s)", p.Outcome)
	}
	fmt.Fprintln(w)
	st := progressState{Percent: p.Progress.Percentage, Component: p.Progress.CurrentComponent, Operation: p.Progress.CurrentOperation,
		Waiting: p.Waiting, Done: p.Details.BytesProcessed, Total: p.Details.BytesTotal, Speed: p.Progress.SpeedBytesPerSecond, ETA: p.Progress.ETASeconds}
	fmt.Fprintf(w, "  %s  (elapsed %s)\n", plainLine(st), p.Progress.Elapsed)
	if p.Waiting != "" {
		fmt.Fprintf(w, "  waiting: %s\n", p.Waiting)
	}
	if p.Details.Warnings > 0 {
		fmt.Fprintf(w, "  warnings: %d\n", p.Details.Warnings)
	}
	if p.Error != nil {
		fmt.Fprintf(w, "  error: %s: %s\n", p.Error.Code, p.Error.Message)
	}
}

// jobEndExit is an ended job's exit code, from its progress answer.
func jobEndExit(p api.JobProgress) error {
	r := jobResult{Status: outcomeStatus(p.Outcome, p.Status), Warnings: p.Details.Warnings, Err: p.Error}
	if code := r.exitCode(); code != exitOK {
		_, failure := r.summary()
		return &exitError{code, errors.New(failure)}
	}
	return nil
}
