package main

import (
	"context"
	"flag"
	"fmt"

	"backupd/repository"
)

func cmdRepairIndex(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo repair-index", flag.ContinueOnError)
	var rf repoFlags
	rf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	r, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	res, err := repository.RepairIndex(ctx, r)
	if err != nil {
		return err
	}
	if rf.jsonOut {
		return printJSON(res)
	}
	fmt.Printf("%d packs, %d in no index file; indexed %d (%d blobs); %d condemned by garbage collection, left out\n",
		res.Packs, res.Unindexed, res.Indexed, res.Blobs, res.Condemned)
	for _, d := range res.Damaged {
		fmt.Printf("damaged, left alone: %s\n", d)
	}
	if len(res.Damaged) > 0 {
		return &exitError{1, fmt.Errorf("%d packs are damaged; run 'backupd repo check --read-data' to see which backups they affect", len(res.Damaged))}
	}
	return nil
}
