package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"backupd/api"
)

const scheduleUsage = `Usage: backupd schedule <command> [flags]   (through the API server)

  list
  create   --id ID --frequency hourly|daily|weekly|monthly --components a,b [--time 02:00] [--day Sunday|1..31]
           [--timezone UTC] [--name N] [--type full] [--locations a,b] [--retention-days N] [--compression zstd]
           [--enabled=false] [--notify on_success,on_failure,on_warning] [--description D]
           (an existing id is updated: give only what changes)
  delete   ID
  trigger  ID      run the schedule now

Every command: --server URL (BACKUPD_SERVER), --token (BACKUPD_TOKEN) or --token-file, --ca-file, --config, --json.
`

var scheduleCommands = []string{"list", "create", "delete", "trigger"}

func cmdClientSchedule(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, scheduleUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "list":
		return scheduleList(ctx, args[1:])
	case "create":
		return scheduleCreate(ctx, args[1:])
	case "delete", "trigger":
		return scheduleAction(ctx, args[0], args[1:])
	}
	fmt.Fprintf(os.Stderr, "backupd schedule: unknown command %q\n\n%s", args[0], scheduleUsage)
	return errUsage
}

func scheduleList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd schedule list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	s, _, err := cf.open(fs, args)
	if err != nil {
		return err
	}
	list, raw, err := s.c.Schedules(ctx)
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	rows := make([][]string, 0, len(list.Schedules))
	for _, sc := range list.Schedules {
		when := strings.Join(nonEmpty(sc.Frequency, sc.Day, sc.Time, sc.Timezone), " ")
		next, last := "-", "-"
		if sc.NextExecution != nil {
			next = *sc.NextExecution
		}
		if l := sc.LastExecution; l != nil {
			last = l.Status + " " + l.BackupID
		}
		rows = append(rows, []string{sc.ID, sc.Name, fmt.Sprint(sc.Enabled), sc.Type, when,
			strings.Join(trueNames(sc.Components), ","), strings.Join(sc.StorageLocations, ","), next, last})
	}
	s.table([]string{"ID", "NAME", "ENABLED", "TYPE", "WHEN", "COMPONENTS", "LOCATIONS", "NEXT", "LAST"}, rows)
	return nil
}

func scheduleCreate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd schedule create", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var id, name, typ, freq, at, day, tz, comps, locs, compression, notify, desc string
	var retention int
	var enabled optBool
	fs.StringVar(&id, "id", "", "the schedule's id (required; an existing id updates that schedule)")
	fs.StringVar(&name, "name", "", "a name")
	fs.StringVar(&freq, "frequency", "", "hourly | daily | weekly | monthly (required for a new schedule)")
	fs.StringVar(&at, "time", "", "HH:MM in the time zone (hourly: the minute, 00:MM)")
	fs.StringVar(&day, "day", "", "weekly: Sunday..Saturday; monthly: 1..31")
	fs.StringVar(&tz, "timezone", "", "an IANA time zone (default UTC)")
	fs.StringVar(&comps, "components", "", "comma-separated components (required for a new schedule)")
	fs.StringVar(&typ, "type", "", "full | incremental | differential | snapshot (default full)")
	fs.StringVar(&locs, "locations", "", "comma-separated storage locations")
	fs.IntVar(&retention, "retention-days", 0, "keep its backups at least this many days")
	fs.StringVar(&compression, "compression", "", "zstd | gzip | bzip2 | lz4 | none")
	fs.Var(&enabled, "enabled", "run it (default true; --enabled=false pauses it)")
	fs.StringVar(&notify, "notify", "", "comma-separated: on_success, on_failure, on_warning")
	fs.StringVar(&desc, "description", "", "a description")
	s, _, err := cf.open(fs, args)
	if err != nil {
		return err
	}
	if id == "" {
		return usageErr("--id: name the schedule (letters, digits, . _ -), e.g. --id nightly-full")
	}
	if err := errors.Join(oneOfFlag("frequency", freq, api.Frequencies), oneOfFlag("type", typ, api.BackupTypes),
		oneOfFlag("compression", compression, api.Compressions)); err != nil {
		return err
	}
	req := api.ScheduleRequest{ID: id, Name: optStr(name), Enabled: enabled.v, Type: optStr(typ), Frequency: optStr(freq),
		Time: optStr(at), Day: optStr(day), Timezone: optStr(tz), StorageLocations: splitList(locs),
		Compression: optStr(compression), Description: optStr(desc)}
	if retention != 0 {
		req.RetentionDays = &retention
	}
	if names := splitList(comps); len(names) > 0 {
		req.Components = api.ComponentSet{}
		for _, n := range names {
			req.Components[n] = true
		}
	}
	if n := splitList(notify); len(n) > 0 {
		req.Notifications = map[string]bool{}
		for _, e := range n {
			if err := oneOfFlag("notify", e, api.Notifications); err != nil {
				return err
			}
			req.Notifications[e] = true
		}
	}
	saved, raw, err := s.c.PutSchedule(ctx, req)
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	next := "none"
	if saved.NextExecution != nil {
		next = *saved.NextExecution
	}
	fmt.Fprintf(s.out, "schedule %s %s; next run %s\n", saved.ScheduleID, saved.Status, next)
	for _, w := range saved.Warnings {
		fmt.Fprintf(s.errw, "warning: %s\n", w)
	}
	return nil
}

func optStr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func scheduleAction(ctx context.Context, action string, args []string) error {
	fs := flag.NewFlagSet("backupd schedule "+action, flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	s, pos, err := cf.open(fs, args, "schedule id")
	if err != nil {
		return err
	}
	do := s.c.DeleteSchedule
	if action == "trigger" {
		do = s.c.TriggerSchedule
	}
	a, raw, err := do(ctx, pos[0])
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
		return nil
	}
	fmt.Fprintf(s.out, "schedule %s %s: %s\n", a.ScheduleID, a.Status, a.Message)
	return nil
}
