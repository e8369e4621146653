package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"backupd/api"
	"backupd/repository"
	"backupd/storage"
)

func cmdGC(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo gc", flag.ContinueOnError)
	var rf repoFlags
	var dry, repack bool
	var window = repository.DefaultSafetyWindow
	unused := repository.DefaultRepackUnused * 100
	maxUnused := repository.DefaultRepackMaxUnused * 100
	budget := "2GiB"
	rf.register(fs)
	fs.BoolVar(&dry, "dry-run", false, "report what would be deleted (and, with --repack, moved), change nothing")
	fs.BoolVar(&repack, "repack", false, "also rewrite the live data of partly used packs into new packs, and merge small packs, so their unused space is freed")
	fs.Float64Var(&unused, "repack-unused", unused, "with --repack: rewrite packs with more unused space than this percentage (1 to 99)")
	fs.Float64Var(&maxUnused, "repack-max-unused", maxUnused, "with --repack: while more than this percentage of all packs' space is unused, rewrite the packs with the most unused space too (0: no such bound)")
	fs.StringVar(&budget, "repack-budget", budget, "with --repack: rewrite at most this much live data in this run (like 500MiB); the rest waits for the next")
	fs.DurationVar(&window, "safety-window", window, "only touch packs older than this, and delete them one window after condemning them; must exceed the longest backup (0: delete at once — only when no backup can be running)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if window < 0 {
		return &exitError{exitUsage, fmt.Errorf("--safety-window must not be negative")}
	}
	opts := repository.GCOptions{DryRun: dry, SafetyWindow: window}
	if repack {
		if unused < 1 || unused > 99 {
			return &exitError{exitUsage, fmt.Errorf("--repack-unused %v: give a percentage from 1 to 99 (default 10)", unused)}
		}
		b, err := api.ParseSize(budget)
		if err != nil || b < repository.TargetPackSize {
			return &exitError{exitUsage, fmt.Errorf("--repack-budget %q: give a size of at least 16MiB, like 2GiB", budget)}
		}
		if maxUnused < 0 || maxUnused > 99 {
			return &exitError{exitUsage, fmt.Errorf("--repack-max-unused %v: give a percentage from 0 to 99 (default %v; 0 turns the bound off)", maxUnused, repository.DefaultRepackMaxUnused*100)}
		}
		opts.Repack = &repository.RepackOptions{Unused: unused / 100, MaxUnused: maxUnused / 100, Budget: b}
		if maxUnused == 0 {
			opts.Repack.MaxUnused = -1
		}
	}
	r, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	res, err := repository.GC(ctx, r, opts)
	if errors.Is(err, storage.ErrLocked) && rf.objectLock == "" && !rf.appendOnly {
		return fmt.Errorf("%w; this location locks objects: give --object-lock MODE and --lock-period (as its object_lock), or --append-only, so gc waits for locks and extends them", err)
	}
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
	if rr := res.Repack; rr != nil {
		verb = "rewrote"
		if dry {
			verb = "would rewrite"
		}
		fmt.Printf("repack: %d packs qualify; %s %d (%d live blobs, %s copied out of %s), freeing %s",
			rr.Qualifying, verb, rr.Packs, rr.Blobs, humanBytes(rr.LiveBytes), humanBytes(rr.PackBytes), humanBytes(rr.Frees))
		if window > 0 && !dry && rr.Packs > 0 {
			fmt.Printf(" after the safety window (%v)", window)
		}
		if window > 0 {
			fmt.Printf("; packs younger than the safety window (%v) are not considered", window)
		}
		fmt.Println()
		if rr.OverBudget > 0 {
			fmt.Printf("repack: %d more packs qualify but are over the budget (--repack-budget %s); the next run takes them\n", rr.OverBudget, budget)
		}
		if rr.Skipped != "" {
			fmt.Printf("repack: nothing rewritten: %s\n", rr.Skipped)
		}
		if len(rr.Damaged) > 0 {
			fmt.Printf("repack: %d packs left as they were because a live blob in them did not read back (first %s); run 'backupd repo check --read-data'\n",
				len(rr.Damaged), rr.Damaged[0])
		}
	}
	if mc := res.Manifests; mc != nil && (mc.Folded+mc.SetsWritten+mc.SetsRemoved+mc.TombstonesRemoved > 0) {
		var did []string
		if mc.Folded > 0 {
			did = append(did, fmt.Sprintf("folded %d loose manifests into sets", mc.Folded))
		}
		if mc.SetsRemoved > 0 {
			did = append(did, fmt.Sprintf("rewrote %d sets (%d deleted backups taken out)", mc.SetsRemoved, mc.Dropped))
		}
		if mc.TombstonesRemoved > 0 {
			did = append(did, fmt.Sprintf("removed %d tombstones of deleted backups", mc.TombstonesRemoved))
		}
		fmt.Printf("manifests: %s; the repository has %d manifest sets\n", strings.Join(did, ", "), mc.Sets)
	}
	if lr := res.Locks; lr != nil {
		fmt.Printf("locks: objects are locked for %s; %d locks of what kept backups need extended", lr.Period, lr.Extended)
		if lr.LastPass != nil {
			fmt.Printf(" (last extended %s)", lr.LastPass.UTC().Format(time.RFC3339))
		}
		fmt.Println()
		if lr.WaitingPacks+lr.WaitingManifests > 0 {
			fmt.Printf("locks: %d unused packs (%s) and %d deleted backups' manifests stay until their locks end", lr.WaitingPacks, humanBytes(lr.WaitingBytes), lr.WaitingManifests)
			if lr.NextUnlock != nil {
				fmt.Printf(" (the first at %s)", lr.NextUnlock.UTC().Format(time.RFC3339))
			}
			fmt.Println("; a later gc deletes them")
		}
	}
	return nil
}
