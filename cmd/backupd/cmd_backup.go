package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"backupd/backup"
	"backupd/repository"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func cmdBackup(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backupd repo backup", flag.ContinueOnError)
	var rf repoFlags
	var comps, includes, excludes, tags multiFlag
	var typ, compression, host, parent string
	rf.register(fs)
	fs.StringVar(&typ, "type", "full", "full | incremental | differential | snapshot")
	fs.Var(&comps, "component", "NAME=PATH[,PATH...] (repeatable)")
	fs.Var(&includes, "include", "only take files matching this glob (repeatable; applies to every component)")
	fs.Var(&excludes, "exclude", "skip paths matching this glob (repeatable)")
	fs.StringVar(&compression, "compression", "zstd", "zstd | gzip | bzip2 | lz4 | none")
	fs.StringVar(&host, "host", "", "host name recorded in the backup (default: this host)")
	fs.StringVar(&parent, "parent", "", "backup id to compare with (default: chosen by --type)")
	fs.Var(&tags, "tag", "KEY=VALUE recorded in the manifest (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := backup.ValidType(typ); err != nil {
		return &exitError{exitUsage, err}
	}
	c, err := repository.ParseCompression(compression)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if len(comps) == 0 {
		return &exitError{exitUsage, fmt.Errorf("name at least one --component NAME=PATH")}
	}
	var components []backup.Component
	for _, spec := range comps {
		name, paths, ok := strings.Cut(spec, "=")
		if !ok || name == "" || paths == "" {
			return &exitError{exitUsage, fmt.Errorf("--component %q: want NAME=PATH[,PATH...]", spec)}
		}
		comp := backup.Component{Name: name, Include: includes, Exclude: excludes}
		for _, p := range strings.Split(paths, ",") {
			abs, err := filepath.Abs(p)
			if err != nil {
				return err
			}
			comp.Paths = append(comp.Paths, abs)
		}
		components = append(components, comp)
	}
	tagMap := map[string]string{}
	for _, t := range tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return &exitError{exitUsage, fmt.Errorf("--tag %q: want KEY=VALUE", t)}
		}
		tagMap[k] = v
	}
	if len(tagMap) == 0 {
		tagMap = nil
	}
	r, err := rf.open(ctx)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	pl := newProgressLine(rf.jsonOut)
	start := time.Now()
	m, err := backup.Run(ctx, r, backup.Options{Type: typ, Components: components, Compression: c,
		Host: host, Parent: parent, Tags: tagMap,
		Progress: func(p backup.Progress) {
			pl.show("[%s] %s: %d files, %s processed, %s new, %s", p.Elapsed.Round(time.Second), p.Component,
				p.FilesDone, humanBytes(p.BytesDone), humanBytes(p.BytesAdded), rate(p.BytesRead, p.Elapsed))
		}})
	pl.done()
	if err != nil {
		return err
	}
	dur := time.Since(start)
	var warnings []string
	for _, c := range m.Components {
		if c.Error != "" {
			warnings = append(warnings, fmt.Sprintf("component %s failed: %s", c.Name, c.Error))
		}
		for _, w := range c.Warnings {
			warnings = append(warnings, c.Name+": "+w)
		}
	}
	if rf.jsonOut {
		err = printJSON(map[string]any{
			"backup_id": m.ID, "type": m.Type, "parent": m.Parent, "status": m.Status,
			"files": m.Stats.Files, "dirs": m.Stats.Dirs, "bytes": m.Stats.Bytes,
			"bytes_read": m.Stats.BytesRead, "bytes_added": m.Stats.BytesAdded,
			"stored_added": m.Stats.StoredAdded, "files_unchanged": m.Stats.FilesUnread,
			"duration_seconds": dur.Seconds(), "warnings": warnings,
		})
	} else {
		fmt.Printf("backup %s (%s) %s: %d files, %s; read %s, added %s (%s stored) in %s\n",
			m.ID, m.Type, m.Status, m.Stats.Files, humanBytes(m.Stats.Bytes), humanBytes(m.Stats.BytesRead),
			humanBytes(m.Stats.BytesAdded), humanBytes(m.Stats.StoredAdded), dur.Round(time.Millisecond))
		for _, w := range warnings {
			fmt.Println("warning:", w)
		}
	}
	if err != nil {
		return err
	}
	if m.Status != "completed" || len(warnings) > 0 {
		return &exitError{exitPartial, fmt.Errorf("backup %s finished with %d warning(s)", m.ID, len(warnings))}
	}
	return nil
}
