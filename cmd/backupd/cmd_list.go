package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"backupd/repository"
)

// defaultListed is how many backups `repo list` shows without --all or
// --last: the API's default page (limit 50). A listing of the newest N
// reads what those need, so its time does not grow with the history.
const defaultListed = 50

func cmdList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo list", flag.ContinueOnError)
	var rf repoFlags
	rf.register(fs)
	last := fs.Int("last", defaultListed, "only the N newest backups (reads only what those need, however long the history)")
	all := fs.Bool("all", false, "every backup (reads every manifest: its time grows with the history)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	lastSet := false
	fs.Visit(func(f *flag.Flag) { lastSet = lastSet || f.Name == "last" })
	switch {
	case *all && lastSet:
		return &exitError{exitUsage, fmt.Errorf("--all and --last %d: give one (--all lists every backup, --last N the newest N)", *last)}
	case *last <= 0:
		return &exitError{exitUsage, fmt.Errorf("--last %d: give a number of backups above 0 (or --all for every one)", *last)}
	}
	r, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	var ms []*repository.Manifest
	var errs []error
	more := false
	if *all {
		ms, errs, err = r.Manifests(ctx)
	} else {
		// one more than shown tells whether older backups were left out
		ms, errs, err = r.NewestManifests(ctx, min(*last, math.MaxInt-1)+1, nil)
		if more = len(ms) > *last; more {
			ms = ms[:*last]
		}
		slices.Reverse(ms) // oldest first, as the whole listing
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
	if more {
		fmt.Fprintf(os.Stderr, "the newest %d backups; older ones are not shown: --all lists every backup, --last N the newest N\n", *last)
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
