package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"backupd/restore"
)

func cmdRestore(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo restore", flag.ContinueOnError)
	var rf repoFlags
	var id, target string
	var comps, paths multiFlag
	var overwrite, noVerify bool
	rf.register(fs)
	fs.StringVar(&id, "backup", "", "backup id, or latest")
	fs.StringVar(&target, "target", "", "directory to restore into; components go to TARGET/<component>/<source path>")
	fs.Var(&comps, "component", "restore only this component (repeatable)")
	fs.Var(&paths, "path", "restore only this source path (repeatable; a directory brings its subtree)")
	fs.BoolVar(&overwrite, "overwrite", false, "restore into a non-empty directory, replacing what is in the way")
	fs.BoolVar(&noVerify, "no-verify", false, "do not re-read restored files (blobs are verified before writing regardless)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if target == "" {
		return &exitError{exitUsage, fmt.Errorf("--target DIR is required")}
	}
	r, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	m, err := resolveBackup(ctx, r, id)
	if err != nil {
		return err
	}
	pl := newProgressLine(rf.jsonOut)
	start := time.Now()
	res, err := restore.Run(ctx, r, m, restore.Options{Target: target, Components: comps, Paths: paths,
		Overwrite: overwrite, NoVerify: noVerify, Progress: func(p restore.Progress) {
			pl.show("[%s] %d/%d files, %s/%s, %s", p.Elapsed.Round(time.Second), p.FilesDone, p.FilesTotal,
				humanBytes(p.BytesDone), humanBytes(p.BytesTotal), rate(p.BytesDone, p.Elapsed))
		}})
	pl.done()
	var fe *restore.FileError
	failed := errors.As(err, &fe)
	if res != nil {
		dur := time.Since(start)
		if rf.jsonOut {
			printJSON(map[string]any{"backup_id": m.ID, "target": target, "files": res.Files, "dirs": res.Dirs,
				"links": res.Links, "bytes": res.Bytes, "verified": res.Verified, "warnings": res.Warnings,
				"duration_seconds": dur.Seconds(), "error": errString(err), "not_restored": notRestored(fe)})
		} else {
			fmt.Printf("restored %s: %d files, %d dirs, %s in %s (%d files verified)\n", m.ID, res.Files, res.Dirs,
				humanBytes(res.Bytes), dur.Round(time.Millisecond), res.Verified)
			for _, w := range res.Warnings {
				fmt.Println("warning:", w)
			}
		}
	}
	if failed && !rf.jsonOut {
		// every one, not only the first the error would name (a damaged
		// bundle of small files can take hundreds with it)
		for _, f := range fe.Files {
			fmt.Fprintln(os.Stderr, "not restored:", f)
		}
		return fmt.Errorf("%d file(s) could not be restored (%w); they are listed above, and were removed rather than left with wrong content", len(fe.Files), fe.Err)
	}
	if err != nil {
		return err
	}
	if len(res.Warnings) > 0 {
		return &exitError{exitPartial, fmt.Errorf("restore finished with %d warning(s)", len(res.Warnings))}
	}
	return nil
}

// notRestored lists the files a restore removed as damaged (none: nil).
func notRestored(fe *restore.FileError) []string {
	if fe == nil {
		return nil
	}
	return fe.Files
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
