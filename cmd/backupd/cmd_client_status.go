package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"backupd/api"
	"backupd/apiclient"
)

const jobsUsage = `Usage: backupd jobs [list] [--status S] [--type T] [--limit 20] [--page N]
       backupd jobs cancel JOB [--reason R]   (a restore's or cleanup's needs an admin token)
       backupd jobs pause JOB                 (backups)
       backupd jobs resume JOB

Every command: --server URL (BACKUPD_SERVER), --token (BACKUPD_TOKEN) or --token-file, --ca-file, --config, --json.
`

// jobsCommands are backupd jobs' commands (jobs alone lists).
var jobsCommands = []string{"list", "cancel", "pause", "resume"}

func cmdClientJobs(ctx context.Context, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "list":
			return jobsList(ctx, args[1:])
		case "cancel", "pause", "resume":
			return jobControl(ctx, args[0], args[1:])
		case "help":
			fmt.Fprint(os.Stderr, jobsUsage)
			return nil
		}
		fmt.Fprintf(os.Stderr, "backupd jobs: unknown command %q\n\n%s", args[0], jobsUsage)
		return errUsage
	}
	return jobsList(ctx, args)
}

func jobControl(ctx context.Context, action string, args []string) error {
	fs := flag.NewFlagSet("backupd jobs "+action, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var reason string
	if action == "cancel" {
		fs.StringVar(&reason, "reason", "", "why (recorded with the job)")
	}
	s, pos, err := cf.open(fs, args, "job id")
	if err != nil {
		return err
	}
	var raw []byte
	var msg string
	switch action {
	case "cancel":
		var a api.CancelResponse
		a, raw, err = s.c.CancelJob(ctx, api.CancelRequest{JobID: pos[0], Reason: reason})
		msg = fmt.Sprintf("job %s: %s: %s", a.JobID, a.Status, a.Message)
	case "pause", "resume":
		do := s.c.PauseJob
		if action == "resume" {
			do = s.c.ResumeJob
		}
		var a api.JobControlResponse
		a, raw, err = do(ctx, pos[0])
		msg = fmt.Sprintf("job %s: %s: %s", a.JobID, a.Status, a.Message)
	}
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
	} else {
		fmt.Fprintln(s.out, msg)
	}
	return nil
}

func jobsList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd jobs list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var q apiclient.JobQuery
	fs.StringVar(&q.Status, "status", "", "only this status: "+strings.Join(api.JobStatuses, " | ")+" (completed includes partial)")
	fs.StringVar(&q.Type, "type", "", "only this type: "+strings.Join(api.JobTypes, " | "))
	fs.IntVar(&q.Limit, "limit", 20, fmt.Sprintf("entries per page (1..%d)", api.MaxPageSize))
	fs.IntVar(&q.Page, "page", 0, "the page (from 1)")
	s, _, err := cf.open(fs, args)
	if err != nil {
		return err
	}
	if err := errors.Join(oneOfFlag("status", q.Status, api.JobStatuses), oneOfFlag("type", q.Type, api.JobTypes)); err != nil {
		return err
	}
	if q.Page, err = pageOf(q.Limit, 0, q.Page); err != nil {
		return err
	}
	list, raw, err := s.c.Jobs(ctx, q)
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	rows := make([][]string, 0, len(list.Jobs))
	for _, j := range list.Jobs {
		started := j.Started
		if !s.tty && j.StartedRFC3339 != "" {
			started = j.StartedRFC3339
		}
		size := ""
		if j.SizeBytes != nil {
			size = s.size(*j.SizeBytes)
		}
		dur := j.Duration
		if !s.tty && j.DurationSeconds != nil {
			dur = fmt.Sprint(*j.DurationSeconds)
		}
		errText := ""
		if j.Error != nil {
			errText = j.Error.Code
		}
		rows = append(rows, []string{j.ID, string(j.Type), j.Subtype, j.Status, fmt.Sprintf("%d%%", j.Progress), started, dur, size,
			j.BackupID, errText})
	}
	s.table([]string{"JOB", "TYPE", "SUBTYPE", "STATUS", "PROGRESS", "STARTED", "DURATION", "SIZE", "BACKUP", "ERROR"}, rows)
	if s.tty {
		m := list.Summary
		fmt.Fprintf(s.errw, "running %d, queued %d, paused %d; today: %d completed, %d failed, %d cancelled\n",
			m.Running, m.Queued, m.Paused, m.CompletedToday, m.FailedToday, m.CancelledToday)
	}
	return nil
}

func cmdClientStatus(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd status", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	s, _, err := cf.open(fs, args)
	if err != nil {
		return err
	}
	st, raw, err := s.c.Status(ctx)
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	w, bs := s.out, st.BackupSystem
	fmt.Fprintf(w, "%s: %s (version %s, up %s)\n", bs.ID, st.Status, bs.Version, humanDuration(bs.UptimeSeconds))
	c := bs.Components
	fmt.Fprintf(w, "scheduler %s; task queue %s, workers polling: %d; catalog %s\n", c.Scheduler, bs.TaskQueue, c.Workers, c.Catalog)
	for _, wk := range bs.Workers {
		line := fmt.Sprintf("  worker %s  %s  %s", wk.Host, wk.TaskQueue, wk.Status)
		if wk.InProcess != nil && wk.InProcess.Error != "" {
			line += ": " + wk.InProcess.Error
		} else if wk.Error != "" {
			line += ": " + wk.Error
		}
		fmt.Fprintln(w, line)
	}
	names := make([]string, 0, len(st.Storage))
	for n := range st.Storage {
		names = append(names, n)
	}
	sort.Strings(names)
	rows := make([][]string, 0, len(names))
	for _, n := range names {
		l := st.Storage[n]
		used, total, util := "", "", ""
		if l.StatusSpace != nil {
			used = s.size(l.UsedBytes)
			total = l.Total
			if l.TotalBytes != nil {
				total = s.size(*l.TotalBytes)
			}
			if l.UsageFigures != nil && l.UtilizationPercent != nil {
				util = fmt.Sprintf("%.0f%%", *l.UtilizationPercent)
			}
		}
		health := l.Health
		if l.Error != "" {
			health += ": " + l.Error
		}
		rows = append(rows, []string{n, l.Type, health, used, total, util})
	}
	fmt.Fprintln(w)
	s.table([]string{"LOCATION", "TYPE", "HEALTH", "USED", "TOTAL", "UTILIZATION"}, rows)
	b := st.BackupStatistics
	fmt.Fprintf(w, "\nbackups: %d (%d successful, %d failed, %d running), success rate %s\n", b.TotalBackups, b.Successful,
		b.Failed, b.InProgress, b.SuccessRate)
	if b.LastSuccess != nil {
		fmt.Fprintf(w, "last success: %s\n", *b.LastSuccess)
	}
	if b.LastFailure != nil {
		fmt.Fprintf(w, "last failure: %s\n", *b.LastFailure)
	}
	if r := st.Replication; r.Policy != "" {
		fmt.Fprintf(w, "replication %s: %d of %d backups comply, %d short\n", r.Policy, r.Compliant, r.BackupsChecked, r.Short)
	}
	return nil
}

// cmdClientHealth prints the server's health; its exit code says it: 0
// healthy, 3 degraded, 1 critical (for scripts and monitors).
func cmdClientHealth(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd health", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	s, _, err := cf.open(fs, args)
	if err != nil {
		return err
	}
	h, raw, err := s.c.Health(ctx)
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
	} else {
		w := s.out
		fmt.Fprintf(w, "overall: %s\n", h.OverallHealth)
		c := h.Components
		rows := [][]string{
			{"scheduler", c.Scheduler.Status, fmt.Sprintf("workers polling: %d, errors: %d", c.Scheduler.Workers, c.Scheduler.Errors)},
			{"catalog", c.Catalog.Status, c.Catalog.Error},
			{"encryption", c.Encryption.Status, "key " + c.Encryption.KeyStatus},
			{"compression", c.Compression.Status, c.Compression.Algorithm + ", ratio " + c.Compression.AverageRatio},
		}
		names := make([]string, 0, len(c.Storage))
		for n := range c.Storage {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			st := c.Storage[n]
			detail := st.Error
			if st.StorageHealthSpace != nil {
				detail = joinNonEmpty("utilization "+st.Utilization, "available "+st.AvailableSpace)
			}
			rows = append(rows, []string{n, st.Status, detail})
		}
		s.table([]string{"COMPONENT", "STATUS", "DETAIL"}, rows)
		bh := h.BackupHealth
		fmt.Fprintf(w, "backups succeeded: %s (24h), %s (7d), %s (30d)\n", bh.SuccessRate24h, bh.SuccessRate7d, bh.SuccessRate30d)
		for _, a := range h.Alerts {
			fmt.Fprintf(w, "%s: %s: %s (%s)\n", a.Level, a.Component, a.Message, a.Suggestion)
		}
		for _, r := range h.Recommendations {
			fmt.Fprintf(w, "recommendation: %s\n", r)
		}
	}
	switch h.OverallHealth {
	case "healthy":
		return nil
	case "degraded":
		return &exitError{exitPartial, errors.New("")}
	}
	return &exitError{exitFail, errors.New("")}
}
