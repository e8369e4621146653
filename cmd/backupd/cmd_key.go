package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"backupd/repository"
)

// keyCommands are the commands of `backupd repo key`.
var keyCommands = []string{"add", "rotate", "list", "remove"}

func cmdKey(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return &exitError{exitUsage, fmt.Errorf("usage: backupd repo key add|rotate|list|remove --repo URL ...")}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("backupd repo key "+sub, flag.ContinueOnError)
	var rf repoFlags
	var wf wrapFlags
	var id string
	rf.register(fs)
	switch sub {
	case "add", "rotate":
		wf.register(fs, "password file for the new key (default: env BACKUPD_NEW_PASSWORD)")
	case "remove":
		fs.StringVar(&id, "id", "", "key id to remove")
	case "list":
	default:
		return &exitError{exitUsage, fmt.Errorf("unknown key command %q (want add, rotate, list or remove)", sub)}
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	r, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	switch sub {
	case "add", "rotate":
		var np []byte
		if v := os.Getenv("BACKUPD_NEW_PASSWORD"); v != "" {
			np = []byte(v)
		}
		w, err := wf.wrapping(np)
		if err != nil {
			return err
		}
		if sub == "rotate" && w.WriteOnly {
			return &exitError{exitUsage, fmt.Errorf("rotate keeps the access of the key in use; --write-only applies to add")}
		}
		old := r.KeyEntry()
		if sub == "add" {
			e, err := r.AddKey(ctx, w)
			if err != nil {
				return err
			}
			if rf.jsonOut {
				return printJSON(e)
			}
			fmt.Printf("added key %s (%s, %s)\n", e.ID, e.Kind, e.Access)
			return nil
		}
		e, err := r.RotateKey(ctx, w)
		if errors.Is(err, repository.ErrKeyLocked) {
			fmt.Fprintf(os.Stderr, "the old key's entry stays in the locked location until its lock ends: %v\n", err)
		} else if err != nil {
			return err
		}
		if rf.jsonOut {
			return printJSON(map[string]any{"old_key_id": old.ID, "key_id": e.ID, "key_version": e.Version})
		}
		fmt.Printf("rotated key %s (v%d) to %s (v%d); the data was not re-encrypted\n", old.ID, old.Version, e.ID, e.Version)
	case "list":
		keys, err := r.ListKeys(ctx)
		if err != nil {
			return err
		}
		if rf.jsonOut {
			for _, k := range keys {
				k.Data, k.WrappedKEK = nil, nil
			}
			return printJSON(keys)
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, " \tID\tKIND\tACCESS\tVERSION\tCREATED\tHOST\tLABEL")
		for _, k := range keys {
			cur := " "
			if k.ID == r.KeyEntry().ID {
				cur = "*"
			}
			label := k.Label
			if r.KeyRevoked(ctx, k.ID) {
				label = strings.TrimSpace(label + " (revoked: locked until its lock ends)")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\tv%d\t%s\t%s\t%s\n", cur, k.ID, k.Kind, k.Access, k.Version,
				k.Created.Local().Format(time.DateTime), k.Host, label)
		}
		tw.Flush()
	case "remove":
		if id == "" {
			return &exitError{exitUsage, fmt.Errorf("--id KEY is required")}
		}
		if err := r.RemoveKey(ctx, id); errors.Is(err, repository.ErrKeyLocked) {
			fmt.Printf("revoked key %s: it opens nothing from now on; its entry is locked, and the first gc after its lock ends removes it (%v)\n", id, err)
			return nil
		} else if err != nil {
			return err
		}
		fmt.Printf("removed key %s\n", id)
	}
	return nil
}
