package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"backupd/repository"
)

func cmdList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo list", flag.ContinueOnError)
	var rf repoFlags
	rf.register(fs)
	last := fs.Int("last", 0, "only the N newest backups (reads only what those need, however long the history)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *last < 0 {
		return &exitError{exitUsage, fmt.Errorf("--last %d: give a number of backups above 0 (or leave it out for all)", *last)}
	}
	r, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	var ms []*repository.Manifest
	var errs []error
	if *last > 0 {
		ms, errs, err = r.NewestManifests(ctx, *last, nil)
		slices.Reverse(ms) // oldest first, as the whole listing
	} else {
		ms, errs, err = r.Manifests(ctx)
	}
	if err != nil {
		return err
	}
	if rf.jsonOut {
		if ms == nil {
			ms = []*repository.Manifest{}
		}
		if err := printJSON(ms); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTYPE\tSTATUS\tSTARTED\tHOST\tCOMPONENTS\tFILES\tSIZE\tCOMPRESSED\tADDED")
		for _, m := range ms {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.ID, m.Type, m.Status,
				m.Started.Local().Format(time.DateTime), m.Host, strings.Join(m.ComponentNames(), ","),
				m.Stats.Files, humanBytes(m.Stats.Bytes), humanBytes(m.Stats.CompressedSize()), humanBytes(m.Stats.StoredAdded))
		}
		tw.Flush()
	}
	for _, e := range errs {
		fmt.Fprintln(os.Stderr, "warning:", e)
	}
	if len(errs) > 0 {
		return &exitError{exitPartial, fmt.Errorf("%d manifest(s) could not be read", len(errs))}
	}
	return nil
}

// resolveBackup accepts an id or "latest".
func resolveBackup(ctx context.Context, r *repository.Repository, id string) (*repository.Manifest, error) {
	if id == "" {
		return nil, &exitError{exitUsage, fmt.Errorf("name a backup: --backup ID (or latest)")}
	}
	if id != "latest" {
		return r.LoadManifest(ctx, id)
	}
	// the one started last (ids begin with the time a backup was asked
	// for, which a queued backup may start well after)
	ms, _, err := r.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("the repository holds no backups")
	}
	return ms[len(ms)-1], nil
}
