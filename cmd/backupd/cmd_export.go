package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"backupd/restore"
)

func cmdExport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo export", flag.ContinueOnError)
	var rf repoFlags
	var id, format, output string
	var comps, paths multiFlag
	rf.register(fs)
	fs.StringVar(&id, "backup", "", "backup id, or latest")
	fs.StringVar(&format, "format", "tar.gz", "tar | tar.gz | tar.bz2 | tar.zst")
	fs.StringVar(&output, "output", "-", "file to write (default stdout)")
	fs.Var(&comps, "component", "export only this component (repeatable)")
	fs.Var(&paths, "path", "export only this source path (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	out := os.Stdout
	if output == "-" {
		if term.IsTerminal(int(os.Stdout.Fd())) {
			return &exitError{exitUsage, fmt.Errorf("refusing to write an archive to a terminal: redirect stdout or pass --output FILE")}
		}
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
	// The file is written under a temporary name and renamed when complete,
	// so a failed export leaves no archive that looks whole.
	var tmp string
	if output != "-" {
		f, err := os.CreateTemp(filepath.Dir(output), ".backupd-export-*")
		if err != nil {
			return err
		}
		tmp, out = f.Name(), f
		defer os.Remove(tmp)
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	err = restore.Export(ctx, r, m, bw, restore.ExportOptions{Format: format, Components: comps, Paths: paths})
	if err == nil {
		err = bw.Flush()
	}
	if tmp != "" {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp, output)
		}
	}
	return err
}
