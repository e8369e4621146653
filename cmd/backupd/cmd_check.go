package main

import (
	"context"
	"flag"
	"fmt"

	"backupd/repository"
)

func cmdCheck(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo check", flag.ContinueOnError)
	var rf repoFlags
	var readData bool
	var percent float64
	rf.register(fs)
	fs.BoolVar(&readData, "read-data", false, "download every pack and verify every blob")
	fs.Float64Var(&percent, "read-data-percent", 0, "download this percentage of the packs (chosen at random) and verify their blobs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if percent < 0 || percent > 100 {
		return &exitError{exitUsage, fmt.Errorf("--read-data-percent %v: want 0 to 100", percent)}
	}
	if readData {
		if percent != 0 {
			return &exitError{exitUsage, fmt.Errorf("--read-data and --read-data-percent exclude each other")}
		}
		percent = 100
	}
	r, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	pl := newProgressLine(rf.jsonOut)
	res, err := repository.Check(ctx, r, repository.CheckOptions{ReadDataPercent: percent,
		Progress: func(stage string, done, total int) { pl.show("%s %d/%d", stage, done, total) }})
	pl.done()
	if err != nil {
		return err
	}
	if rf.jsonOut {
		printJSON(res)
	} else {
		fmt.Printf("checked %d index files, %d packs (%d read), %d blobs, %d backups, %d trees\n",
			res.IndexFiles, res.Packs, res.PacksRead, res.Blobs, res.Manifests, res.Trees)
		for _, w := range res.Warnings {
			fmt.Printf("warning: %s %s: %s\n", w.Kind, w.Object, w.Message)
		}
		for _, e := range res.Errors {
			fmt.Printf("error: %s %s: %s\n", e.Kind, e.Object, e.Message)
		}
		for _, f := range res.AffectedFiles {
			fmt.Println("affected:", f)
		}
	}
	if !res.OK {
		return &exitError{exitFail, fmt.Errorf("repository check found %d error(s): %d damaged pack(s), %d file(s) affected",
			len(res.Errors), len(res.DamagedPacks), len(res.AffectedFiles))}
	}
	if !rf.jsonOut {
		fmt.Println("no errors found")
	}
	return nil
}
