package main

import (
	"context"
	"flag"
	"fmt"

	"backupd/repository"
)

func cmdGC(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo gc", flag.ContinueOnError)
	var rf repoFlags
	var dry bool
	var window = repository.DefaultSafetyWindow
	rf.register(fs)
	fs.BoolVar(&dry, "dry-run", false, "report what would be deleted, delete nothing")
	fs.DurationVar(&window, "safety-window", window, "only touch packs older than this, and delete them one window after condemning them; must exceed the longest backup (0: delete at once — only when no backup can be running)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if window < 0 {
		return &exitError{exitUsage, fmt.Errorf("--safety-window must not be negative")}
	}
	r, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	res, err := repository.GC(ctx, r, repository.GCOptions{DryRun: dry, SafetyWindow: window})
	if err != nil {
		return err
	}
	if rf.jsonOut {
		return printJSON(res)
	}
	verb := "deleted"
	if dry {
		verb = "would delete"
	}
	fmt.Printf("%d packs, %d unreferenced (%d younger than the safety window); %s %d packs (%s); %d newly condemned\n",
		res.Packs, res.Unreferenced, res.TooYoung, verb, res.Deleted, humanBytes(res.BytesFreed), res.Condemned)
	return nil
}
