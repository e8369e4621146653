package main

import (
	"context"
	"flag"
	"fmt"
)

func cmdUpgrade(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo upgrade", flag.ContinueOnError)
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
	from, to, err := r.Upgrade(ctx)
	if err != nil {
		return err
	}
	if rf.jsonOut {
		return printJSON(map[string]int{"from": from, "to": to})
	}
	if from == to {
		fmt.Printf("%s: already in format %d\n", rf.repo, to)
		return nil
	}
	fmt.Printf("%s: format %d -> %d: small files are stored in bundles from now on; backupd versions that know only format %d refuse this repository\n",
		rf.repo, from, to, from)
	return nil
}
