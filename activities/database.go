package activities

import (
	"context"
	"errors"
	"fmt"
	"io"

	"backupd/codes"
	"backupd/repository"
	"backupd/sources"
)

// DatabaseRestoreInput loads one database dump of a backup into a database.
type DatabaseRestoreInput struct {
	BackupID  string `json:"backup_id"`
	Location  string `json:"location"`
	Component string `json:"component"`
	Database  string `json:"database"` // the connection's label in the configuration
	Target    string `json:"target"`   // database name; empty: the original
	Overwrite bool   `json:"overwrite"`
	// Grant: on an enrolled host, the restore grant it reads under.
	Grant string `json:"grant,omitempty"`
}

// DatabaseRestoreResult reports one database restore.
type DatabaseRestoreResult struct {
	Database string `json:"database"`
	Target   string `json:"target"`
	Bytes    int64  `json:"bytes"`
}

// RestoreDatabase streams a dump from the repository into the database's
// restore tool (pg_restore in one transaction, or the mariadb client).
// A target that has tables is BACKUP_008 unless Overwrite.
func (a *Activities) RestoreDatabase(ctx context.Context, in DatabaseRestoreInput) (DatabaseRestoreResult, error) {
	comp, ok := a.component(in.Component)
	if !ok {
		return DatabaseRestoreResult{}, toTemporal(codes.New(codes.InvalidConfiguration, "no component %q on %s", in.Component, a.Config.Host))
	}
	var db *sources.Database
	for _, d := range comp.Databases {
		if s := d.Source(); s.Label() == in.Database {
			db = &s
		}
	}
	if db == nil {
		return DatabaseRestoreResult{}, toTemporal(codes.New(codes.InvalidConfiguration,
			"component %s has no database %q in the configuration of %s", in.Component, in.Database, a.Config.Host))
	}
	repo, m, err := a.openBackup(ctx, in.Location, in.Grant, in.BackupID)
	if err != nil {
		return DatabaseRestoreResult{}, err
	}
	if err := repo.LoadIndex(ctx); err != nil {
		return DatabaseRestoreResult{}, toTemporal(err)
	}
	node, err := dumpNode(ctx, repo, m, in.Component, db.DumpFile())
	if err != nil {
		return DatabaseRestoreResult{}, toTemporal(err)
	}
	hb := startHeartbeat(ctx, Checkpoint{BackupID: in.BackupID, Component: in.Component, Phase: "restoring database " + in.Database,
		BytesTotal: int64(node.Size)})
	defer hb.close()
	pr, pw := io.Pipe()
	go func() {
		var n int64
		for _, id := range node.Content {
			b, err := repo.LoadBlob(ctx, repository.DataBlob, id)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := pw.Write(b); err != nil {
				return
			}
			n += int64(len(b))
			hb.update(func(c *Checkpoint) { c.BytesDone = n })
		}
		pw.Close()
	}()
	err = db.Restore(ctx, pr, in.Target, in.Overwrite)
	pr.CloseWithError(errors.New("restore finished"))
	if errors.Is(err, sources.ErrTargetNotEmpty) {
		return DatabaseRestoreResult{}, toTemporal(codes.Wrap(codes.RestoreConflict, err))
	}
	if err != nil {
		return DatabaseRestoreResult{}, toTemporal(codes.Wrap(codes.ComponentFailure, fmt.Errorf("database %s: %w", in.Database, err)))
	}
	target := in.Target
	if target == "" {
		target = db.DBName
	}
	return DatabaseRestoreResult{Database: in.Database, Target: target, Bytes: int64(node.Size)}, nil
}

// dumpNode finds a dump file in a component's @dumps directory.
func dumpNode(ctx context.Context, repo *repository.Repository, m *repository.Manifest, comp, file string) (*repository.Node, error) {
	for _, c := range m.Components {
		if c.Name != comp {
			continue
		}
		if c.Error != "" {
			return nil, codes.New(codes.ComponentFailure, "component %s failed in backup %s: %s", comp, m.ID, c.Error)
		}
		root, err := repo.LoadTree(ctx, c.Tree)
		if err != nil {
			return nil, err
		}
		for _, n := range root.Nodes {
			if n.Name == sources.DumpsDir && n.Subtree != nil {
				dumps, err := repo.LoadTree(ctx, *n.Subtree)
				if err != nil {
					return nil, err
				}
				for _, d := range dumps.Nodes {
					if d.Name == file {
						return d, nil
					}
				}
			}
		}
		return nil, codes.New(codes.InvalidConfiguration, "backup %s has no dump %s in component %s", m.ID, file, comp)
	}
	return nil, codes.New(codes.InvalidConfiguration, "backup %s has no component %s", m.ID, comp)
}
