package main

import (
	"context"
	"flag"
	"fmt"

	"backupd/repository"
)

func cmdCopy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo copy", flag.ContinueOnError)
	var rf repoFlags
	var to, id string
	rf.register(fs)
	fs.StringVar(&to, "to", "", "destination repository URL (opened with the same credentials)")
	fs.StringVar(&id, "backup", "", "backup id, or latest")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if to == "" {
		return &exitError{exitUsage, fmt.Errorf("--to URL is required")}
	}
	src, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer src.Backend().Close()
	df := rf
	df.repo = to
	dst, err := df.open(ctx)
	if err != nil {
		return err
	}
	defer dst.Backend().Close()
	m, err := resolveBackup(ctx, src, id)
	if err != nil {
		return err
	}
	_, st, err := repository.CopyBackup(ctx, src, dst, m.ID)
	if err != nil {
		return err
	}
	if rf.jsonOut {
		return printJSON(map[string]any{"backup_id": m.ID, "stats": st})
	}
	fmt.Printf("copied %s: %d blobs (%s) moved, %d already present\n", m.ID, st.BlobsCopied, humanBytes(st.BytesCopied), st.BlobsSkipped)
	return nil
}

func cmdForget(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo forget", flag.ContinueOnError)
	var rf repoFlags
	var id string
	rf.register(fs)
	fs.StringVar(&id, "backup", "", "backup id to remove")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if id == "" {
		return &exitError{exitUsage, fmt.Errorf("--backup ID is required")}
	}
	r, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	if err := r.DeleteManifest(ctx, id); err != nil {
		return err
	}
	fmt.Printf("removed backup %s; run 'backupd repo gc' to free its data\n", id)
	return nil
}
