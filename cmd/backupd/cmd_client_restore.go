package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"backupd/api"
	"backupd/apiclient"
)

const restoreUsage = `Usage: backupd restore <command> [flags]   (through the API server; needs an admin token)

  start    --backup ID (--target DIR | --original) [--component C]... [--path P]... [--location L]
           [--overwrite] [--snapshot] [--wait]
  progress [--job ID] [--wait]

Every command: --server URL (BACKUPD_SERVER), --token (BACKUPD_TOKEN) or --token-file, --ca-file, --config, --json.
`

var restoreCommands = []string{"start", "progress"}

func cmdClientRestore(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, restoreUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "start":
		return restoreStart(ctx, args[1:])
	case "progress":
		return jobProgress(ctx, api.JobRestore, args[1:])
	}
	fmt.Fprintf(os.Stderr, "backupd restore: unknown command %q\n\n%s", args[0], restoreUsage)
	return errUsage
}

func restoreStart(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd restore start", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	var backupID, target, location, desc string
	var comps, paths multiFlag
	var original, overwrite, snapshot, wait bool
	fs.StringVar(&backupID, "backup", "", "the backup to restore (required)")
	fs.StringVar(&target, "target", "", "restore into this directory on the worker's host (each component under DIR/<component>)")
	fs.BoolVar(&original, "original", false, "restore to the original paths (and databases)")
	fs.Var(&comps, "component", "restore only this component (repeatable)")
	fs.Var(&paths, "path", "restore only this path, absolute as backed up (repeatable)")
	fs.StringVar(&location, "location", "", "read from this storage location (default: the first healthy one holding it)")
	fs.BoolVar(&overwrite, "overwrite", false, "allow writing into a non-empty target")
	fs.BoolVar(&snapshot, "snapshot", false, "with --original: back up what will be overwritten first (a rollback can undo the restore)")
	fs.StringVar(&desc, "description", "", "a description")
	fs.BoolVar(&wait, "wait", false, "follow the restore to its end, showing its progress")
	s, _, err := cf.open(fs, args)
	if err != nil {
		return err
	}
	if backupID == "" {
		return usageErr("--backup: name the backup to restore (backupd backup list shows them)")
	}
	switch {
	case original && target != "":
		return usageErr("--target and --original: give one")
	case !original && target == "":
		return usageErr("where to restore: --target DIR, or --original for the original paths")
	case snapshot && !original:
		return usageErr("--snapshot is for --original (a restore into a directory overwrites nothing of the system's)")
	}
	if target != "" {
		abs, err := filepath.Abs(target)
		if err != nil {
			return usageErr("--target %q: %v", target, err)
		}
		target = abs
	} else {
		target = "original"
	}
	req := api.RestoreRequest{BackupID: backupID, Paths: paths, TargetLocation: target, StorageLocation: location,
		Overwrite: overwrite, CreatePreRestoreSnapshot: snapshot, Description: desc}
	if len(comps) > 0 {
		req.Components = api.ComponentSet{}
		for _, c := range comps {
			req.Components[c] = true
		}
	}
	st, raw, err := s.c.Restore(ctx, req)
	if err != nil {
		return clientError(err)
	}
	if s.json {
		s.raw(raw)
	} else {
		fmt.Fprintf(s.out, "restore %s of backup %s into %s started: job %s (%s, about %s)\n", st.RestoreID, st.BackupID,
			st.TargetLocation, st.JobID, strings.Join(st.Components, ", "), st.EstimatedDuration)
		if st.SnapshotID != nil {
			fmt.Fprintf(s.out, "pre-restore snapshot: %s\n", *st.SnapshotID)
		}
		for _, w := range st.Warnings {
			fmt.Fprintf(s.errw, "warning: %s\n", w)
		}
	}
	if !wait {
		return nil
	}
	return s.wait(ctx, apiclient.Watch{Kind: api.JobRestore, JobID: st.JobID}, "backupd restore progress --wait --job "+st.JobID)
}
