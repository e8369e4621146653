package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/activity"

	"backupd/api"
	"backupd/models"
	"backupd/repository"
	"backupd/restore"
	"backupd/sources"
)

// DrillPlanInput asks the catalog what a drill run restores.
type DrillPlanInput struct {
	DrillID    string   `json:"drill_id"`
	Select     string   `json:"select"`
	Components []string `json:"components,omitempty"`
	WithinDays int      `json:"within_days,omitempty"`
	BackupIDs  []string `json:"backup_ids,omitempty"`
	Location   string   `json:"location,omitempty"`
	// select unverified
	ReverifyAfterDays int `json:"reverify_after_days,omitempty"`
	MaxBackups        int `json:"max_backups,omitempty"`
}

// DrillTarget is one backup a drill run restores, from Location.
type DrillTarget struct {
	BackupID   string    `json:"backup_id"`
	Location   string    `json:"location"`
	Taken      time.Time `json:"taken"`
	Components []string  `json:"components"`
	// Problem: why it cannot be restored (no location holds it)
	Problem string `json:"problem,omitempty"`
	// Whole: every component of the backup is restored, so the run
	// verifies the backup (its verification is recorded)
	Whole bool `json:"whole,omitempty"`
}

// DrillPlan is what a drill run restores, the recovery point of every
// drilled component when it was planned, and each component's RTO
// objective (seconds; absent: none).
type DrillPlan struct {
	Targets []DrillTarget      `json:"targets"`
	RPO     []api.ComponentRPO `json:"rpo"`
	RTO     map[string]int     `json:"rto,omitempty"`
	// Problem: why nothing can be drilled (no backup of the components)
	Problem string `json:"problem,omitempty"`
}

// PlanDrill chooses the backups of a drill run from the catalog (the
// server's own backups, never an enrolled host's) and measures each
// drilled component's recovery point now.
func (c *Catalog) PlanDrill(ctx context.Context, in DrillPlanInput) (DrillPlan, error) {
	now := time.Now()
	var plan DrillPlan
	comps := in.Components
	if len(comps) == 0 {
		comps = c.Config.ComponentNames()
	}
	own, err := c.Store.OwnHostNames(ctx)
	if err != nil {
		return plan, err
	}
	if !slices.Contains(own, c.Config.Host) {
		own = append(own, c.Config.Host)
	}
	plan.RTO = map[string]int{}
	for _, name := range comps {
		obj := c.Config.Components[name]
		if obj.RTOSeconds > 0 {
			plan.RTO[name] = obj.RTOSeconds
		}
		r := api.ComponentRPO{Component: name}
		if obj.RPOSeconds > 0 {
			r.ObjectiveSeconds = &obj.RPOSeconds
		}
		b, err := c.Store.NewestWithComponent(ctx, own, "completed", name)
		switch {
		case errors.Is(err, models.ErrNotFound):
			r.Breached = r.ObjectiveSeconds != nil
		case err != nil:
			return plan, err
		default:
			age := now.Sub(b.Timestamp).Seconds()
			at := b.Timestamp.UTC().Format(time.RFC3339)
			r.NewestBackupID, r.NewestBackupAt, r.AgeSeconds = &b.ID, &at, &age
			r.Breached = r.ObjectiveSeconds != nil && age > float64(*r.ObjectiveSeconds)
		}
		plan.RPO = append(plan.RPO, r)
	}
	// which backups
	byBackup := map[string]*models.Backup{}
	want := map[string][]string{} // backup -> components drilled from it
	switch in.Select {
	case "backups":
		for _, id := range slices.Compact(slices.Sorted(slices.Values(in.BackupIDs))) {
			b, err := c.Store.GetBackup(ctx, id)
			if errors.Is(err, models.ErrNotFound) {
				plan.Targets = append(plan.Targets, DrillTarget{BackupID: id, Problem: "the catalog has no backup " + id})
				continue
			}
			if err != nil {
				return plan, err
			}
			if b.Host != "" && !slices.Contains(own, b.Host) {
				plan.Targets = append(plan.Targets, DrillTarget{BackupID: id, Problem: "backup " + id + " is enrolled host " + b.Host + "'s: drills restore the server's own backups"})
				continue
			}
			byBackup[id] = b
			for _, comp := range b.Components {
				if len(in.Components) == 0 || slices.Contains(in.Components, comp) {
					want[id] = append(want[id], comp)
				}
			}
		}
	case "random":
		days := in.WithinDays
		if days <= 0 {
			days = 30
		}
		all, err := c.Store.BackupsOfHosts(ctx, own, "completed")
		if err != nil {
			return plan, err
		}
		since := now.Add(-time.Duration(days) * 24 * time.Hour)
		for _, name := range comps {
			var pool []*models.Backup
			for i := range all {
				if all[i].Timestamp.After(since) && slices.Contains(all[i].Components, name) && all[i].Error == "" {
					pool = append(pool, &all[i])
				}
			}
			if len(pool) == 0 {
				continue
			}
			b := pool[rand.IntN(len(pool))]
			byBackup[b.ID] = b
			want[b.ID] = append(want[b.ID], name)
		}
	case "unverified":
		days := in.ReverifyAfterDays
		if days <= 0 {
			days = 30
		}
		limit := in.MaxBackups
		if limit <= 0 {
			limit = 5
		}
		all, err := c.Store.BackupsOfHosts(ctx, own, "completed")
		if err != nil {
			return plan, err
		}
		due := now.Add(-time.Duration(days) * 24 * time.Hour)
		var pool []*models.Backup
		for i := range all {
			b := &all[i]
			if b.VerifiedAt != nil && b.VerifiedAt.After(due) {
				continue
			}
			if slices.ContainsFunc(b.Components, func(c string) bool { return slices.Contains(comps, c) }) {
				pool = append(pool, b)
			}
		}
		// never verified first (oldest first), then the longest ago verified
		sort.SliceStable(pool, func(i, j int) bool {
			vi, vj := pool[i].VerifiedAt, pool[j].VerifiedAt
			switch {
			case (vi == nil) != (vj == nil):
				return vi == nil
			case vi == nil:
				return pool[i].Timestamp.Before(pool[j].Timestamp)
			default:
				return vi.Before(*vj)
			}
		})
		for _, b := range pool[:min(limit, len(pool))] {
			byBackup[b.ID] = b
			for _, comp := range b.Components {
				if slices.Contains(comps, comp) {
					want[b.ID] = append(want[b.ID], comp)
				}
			}
		}
	default: // latest
		for _, r := range plan.RPO {
			if r.NewestBackupID == nil {
				continue
			}
			b, err := c.Store.GetBackup(ctx, *r.NewestBackupID)
			if err != nil {
				return plan, err
			}
			byBackup[b.ID] = b
			want[b.ID] = append(want[b.ID], r.Component)
		}
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		b := byBackup[id]
		comps := slices.Compact(slices.Sorted(slices.Values(want[id])))
		t := DrillTarget{BackupID: id, Taken: b.Timestamp, Components: comps,
			Whole: slices.Equal(comps, slices.Compact(slices.Sorted(slices.Values(b.Components))))}
		t.Location = drillLocation(c.Config.LocationNames(), b.Locations, in.Location)
		if t.Location == "" {
			t.Problem = "no storage location holds backup " + id
			if in.Location != "" {
				t.Problem = fmt.Sprintf("storage location %q does not hold backup %s (it is in %s)", in.Location, id, strings.Join(b.Locations, ", "))
			}
		}
		plan.Targets = append(plan.Targets, t)
	}
	if len(plan.Targets) == 0 && in.Select == "unverified" {
		return plan, nil // nothing due: a run with nothing to do passes
	}
	if len(plan.Targets) == 0 {
		plan.Problem = fmt.Sprintf("no completed backup of %s to drill", strings.Join(comps, ", "))
		if in.Select == "random" {
			plan.Problem += fmt.Sprintf(" in the last %d days", max(in.WithinDays, 1))
		}
	}
	return plan, nil
}

// drillLocation is where a drill reads a backup: the one asked for if it
// holds it, else the first configured location that does.
func drillLocation(order, holding []string, asked string) string {
	if asked != "" {
		if slices.Contains(holding, asked) {
			return asked
		}
		return ""
	}
	for _, l := range order {
		if slices.Contains(holding, l) {
			return l
		}
	}
	return ""
}

// DrillRestoreInput is one backup of a drill run, restored on this worker.
type DrillRestoreInput struct {
	RunID      string           `json:"run_id"`
	BackupID   string           `json:"backup_id"`
	Location   string           `json:"location"`
	Components []string         `json:"components"`
	Checks     []api.DrillCheck `json:"checks,omitempty"`
	RTO        map[string]int   `json:"rto,omitempty"`
}

// drillOutputMax bounds how much of a check's output the report keeps.
const drillOutputMax = 4 << 10

// DrillRestore restores the components of one backup, one after the
// other, into a scratch directory under the worker's var directory,
// re-reading every file against the manifest; times each; runs the
// checks of the components in their restored directories; and removes
// the scratch directory, whatever happened. A damaged backup is a failed
// drill (its files named), not a failed activity.
func (a *Activities) DrillRestore(ctx context.Context, in DrillRestoreInput) (api.DrillBackup, error) {
	ctx, cancel := withWorkerStop(ctx)
	defer cancel()
	out := api.DrillBackup{BackupID: in.BackupID, Location: in.Location, Components: []api.DrillComponent{}, Checks: []api.DrillCheckRun{}}
	repo, m, err := a.openBackup(ctx, in.Location, "", in.BackupID)
	if err != nil {
		if ctx.Err() != nil {
			return out, err
		}
		out.Error = err.Error()
		return out, nil
	}
	out.Taken = m.Started.UTC().Format(time.RFC3339)
	hb := startHeartbeat(ctx, Checkpoint{BackupID: in.BackupID, Phase: "drill"})
	// (closed after the scratch directory is gone: removing a large tree
	// outlasts a heartbeat's timeout)
	defer hb.close()
	base, err := drillBase(a.Config.VarDir)
	if err != nil {
		return out, toTemporal(err)
	}
	// what a crashed worker or an earlier attempt left goes first: a
	// drill's copy of the data never outlives its run
	if olds, err := os.ReadDir(base); err == nil {
		for _, o := range olds {
			os.RemoveAll(filepath.Join(base, o.Name()))
		}
	}
	scratch := filepath.Join(base, in.RunID+"-"+in.BackupID)
	defer os.RemoveAll(scratch)
	out.Passed = true
	for _, comp := range in.Components {
		dc := api.DrillComponent{Component: comp}
		if obj := in.RTO[comp]; obj > 0 {
			dc.ObjectiveSeconds = &obj
		}
		if m.Component(comp) == nil {
			dc.Error = fmt.Sprintf("backup %s has no component %s", in.BackupID, comp)
			out.Components, out.Passed = append(out.Components, dc), false
			continue
		}
		hb.update(func(c *Checkpoint) { c.Phase = "drill: restoring " + comp })
		start := time.Now()
		// Untrusted: nothing restored for a drill raises privileges on
		// this host (no set-id bits, device nodes, FIFOs or owners), since
		// checks run over it
		res, err := restore.Run(ctx, repo, m, restore.Options{Target: scratch, Components: []string{comp}, Untrusted: true,
			Progress: func(p restore.Progress) {
				hb.update(func(c *Checkpoint) {
					c.FilesDone, c.BytesDone, c.BytesTotal, c.FilesTotal = p.FilesDone, p.BytesDone, p.BytesTotal, p.FilesTotal
				})
			}})
		dc.RTOSeconds = time.Since(start).Seconds()
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		if res != nil {
			dc.Files, dc.Bytes, dc.FilesVerified = res.Files, res.Bytes, res.Verified
		}
		if dc.Bytes >= 1e6 {
			per := dc.RTOSeconds / (float64(dc.Bytes) / 1e9)
			dc.SecondsPerGB = &per
		}
		dc.Passed = err == nil
		if err != nil {
			var fe *restore.FileError
			// damaged: the data read back wrong (a local write error, a
			// full scratch disk, is the drill's failure, not the backup's)
			if errors.As(err, &fe) && (errors.Is(fe.Err, repository.ErrCorrupt) || errors.Is(fe.Err, repository.ErrBlobNotFound)) {
				// named as backed up (the restore names them in its target,
				// below the component's directory)
				for _, f := range fe.Files {
					if rest, ok := strings.CutPrefix(filepath.ToSlash(f), comp+"/"); ok {
						f = "/" + rest
					}
					dc.Damaged = append(dc.Damaged, f)
				}
			}
			dc.Error = err.Error()
			out.Passed = false
		}
		out.Components = append(out.Components, dc)
	}
	for _, ch := range in.Checks {
		comp := ch.Component
		if comp == "" && len(in.Components) > 0 {
			comp = in.Components[0]
		}
		if !slices.Contains(in.Components, comp) {
			continue // a check of a component this backup does not drill
		}
		hb.update(func(c *Checkpoint) { c.Phase = "drill: checking " + comp })
		var cr api.DrillCheckRun
		if ch.Type == "database" {
			cr = a.runDatabaseCheck(ctx, ch, comp, filepath.Join(scratch, comp), in.RunID)
		} else {
			cr = runDrillCheck(ctx, ch, comp, filepath.Join(scratch, comp), in.BackupID)
		}
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		out.Checks = append(out.Checks, cr)
		out.Passed = out.Passed && cr.Passed
	}
	return out, nil
}

// runDrillCheck runs one check in a component's restored directory.
func runDrillCheck(ctx context.Context, ch api.DrillCheck, comp, dir, backupID string) (cr api.DrillCheckRun) {
	cr = api.DrillCheckRun{Type: ch.Type, Component: comp}
	start := time.Now()
	defer func() { cr.Seconds = time.Since(start).Seconds() }()
	switch ch.Type {
	case "command":
		if len(ch.Command) == 0 {
			cr.Error = "the check names no command"
			return cr
		}
		timeout := time.Duration(ch.TimeoutSeconds) * time.Second
		if timeout <= 0 {
			timeout = 5 * time.Minute
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cmd := exec.CommandContext(cctx, ch.Command[0], ch.Command[1:]...)
		// its own process group, killed whole at the timeout; output
		// held open by a child that outlives it is given up 5 s later
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		defer func() {
			if cmd.Process != nil {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what it left running
			}
		}()
		cmd.Dir = dir
		// what a program needs to run, never backupd's secrets
		// (BACKUPD_PASSWORD, cloud keys)
		cmd.Env = append(checkEnv(os.Environ()), "BACKUPD_DRILL_TARGET="+dir, "BACKUPD_DRILL_BACKUP_ID="+backupID)
		var buf tailBuffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		cr.Output = buf.String()
		switch {
		case cctx.Err() == context.DeadlineExceeded:
			cr.Error = fmt.Sprintf("the command did not finish in %s", timeout)
		case err != nil:
			cr.Error = err.Error()
		default:
			cr.Passed = true
		}
		if cr.Passed {
			cr.Output = strings.TrimSpace(cr.Output)
		}
	default:
		cr.Error = fmt.Sprintf("unknown check type %q (command is the one there is)", ch.Type)
	}
	return cr
}

// checkEnv is the environment of a drill's command: backupd's own
// without its secrets.
func checkEnv(all []string) []string {
	var out []string
	for _, kv := range all {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH", name == "HOME", name == "USER", name == "LOGNAME", name == "LANG", name == "LANGUAGE",
			name == "TZ", name == "TMPDIR", strings.HasPrefix(name, "LC_"):
			out = append(out, kv)
		}
	}
	return out
}

// runDatabaseCheck loads a component's restored dump into a scratch
// database on the server its configuration names, runs the query and
// drops the scratch database, whatever happened.
func (a *Activities) runDatabaseCheck(ctx context.Context, ch api.DrillCheck, comp, dir, runID string) (cr api.DrillCheckRun) {
	cr = api.DrillCheckRun{Type: ch.Type, Component: comp}
	start := time.Now()
	defer func() { cr.Seconds = time.Since(start).Seconds() }()
	c, ok := a.component(comp)
	if !ok {
		cr.Error = fmt.Sprintf("component %s is not configured on %s", comp, a.Config.Host)
		return cr
	}
	var db *sources.Database
	var labels []string
	for _, d := range c.Databases {
		src := d.Source()
		labels = append(labels, src.Label())
		if src.Label() == ch.Database || (ch.Database == "" && len(c.Databases) == 1) {
			db = &src
		}
	}
	if db == nil {
		cr.Error = fmt.Sprintf("component %s has no database %q (it has: %s)", comp, ch.Database, strings.Join(labels, ", "))
		return cr
	}
	if db.Kind != "postgresql" {
		// a MariaDB dump names its database inside: loading it anywhere
		// but a separate scratch server could touch the real one
		cr.Error = fmt.Sprintf("database checks load PostgreSQL dumps only; %s is %s", db.Label(), db.Kind)
		return cr
	}
	f, err := os.Open(filepath.Join(dir, sources.DumpsDir, db.DumpFile()))
	if err != nil {
		cr.Error = fmt.Sprintf("the backup holds no dump of %s: %v", db.Label(), err)
		return cr
	}
	defer f.Close()
	timeout := time.Duration(ch.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	scratch := "backupd_drill_" + strings.ToLower(strings.TrimPrefix(runID, "DRILL-"))
	if !sources.ValidDBName(scratch) {
		scratch = "backupd_drill"
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer dcancel()
		if err := db.Drop(dctx, scratch); err != nil {
			// a copy of the data left on the database server is a failure
			// whatever the query said
			msg := "the scratch database " + scratch + " could not be dropped (drop it by hand): " + err.Error()
			if cr.Error != "" {
				msg = cr.Error + "; " + msg
			}
			cr.Passed, cr.Error = false, msg
		}
	}()
	// a scratch database left by an earlier attempt is replaced
	if err := db.Restore(cctx, f, scratch, true); err != nil {
		cr.Error = "loading the dump into " + scratch + " failed (its tool's messages are in the worker's log)"
		activity.GetLogger(ctx).Error("drill: loading a dump into its scratch database failed", "run", runID, "database", db.Label(), "scratch", scratch, "error", err)
		return cr
	}
	query, expect := ch.Query, ch.Expect
	if query == "" { // (PostgreSQL only, above)
		query = "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
	}
	out, err := db.Query(cctx, scratch, query, drillOutputMax)
	cr.Output = tail(out, drillOutputMax)
	switch {
	case cctx.Err() == context.DeadlineExceeded:
		cr.Error = fmt.Sprintf("the check did not finish in %s", timeout)
	case err != nil:
		cr.Error = "the query failed (its tool's messages are in the worker's log)"
		activity.GetLogger(ctx).Error("drill: the check's query failed", "run", runID, "scratch", scratch, "error", err)
	case expect != nil && strings.TrimSpace(out) != strings.TrimSpace(*expect):
		// what it printed is in output (operators' eyes only), not in the
		// error that jobs and notifications carry
		cr.Error = fmt.Sprintf("the query's output is not the expected %q", *expect)
	case expect == nil && (strings.TrimSpace(out) == "" || strings.TrimSpace(out) == "0"):
		cr.Error = "the query printed nothing (or 0): the restored database looks empty"
	default:
		cr.Passed = true
	}
	return cr
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// tailBuffer keeps the last drillOutputMax bytes written to it.
type tailBuffer struct{ b bytes.Buffer }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b.Write(p)
	if over := t.b.Len() - drillOutputMax; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return t.b.String() }

// recordDrillRun keeps a drill run's report, by run id.
func (c *Catalog) recordDrillRun(ctx context.Context, rec JobRecord) error {
	var rep api.DrillReport
	if err := json.Unmarshal(rec.Report, &rep); err != nil {
		return fmt.Errorf("drill report of job %s: %w", rec.JobID, err)
	}
	run := &models.DrillRun{ID: rec.RefID, DrillID: rep.DrillID, JobID: rec.JobID, Passed: rep.Passed,
		Body: models.JSON(rec.Report)}
	run.Started, _ = time.Parse(time.RFC3339Nano, rep.Started)
	run.Finished, _ = time.Parse(time.RFC3339Nano, rep.Finished)
	return c.Store.PutDrillRun(ctx, run)
}

// drillBase is the drills' scratch directory under the var directory:
// root's own, mode 0700, never a symlink, so no other user can reach or
// redirect what a drill restores.
func drillBase(varDir string) (string, error) {
	base := filepath.Join(varDir, "drills")
	if err := os.Mkdir(base, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	fi, err := os.Lstat(base)
	if err != nil {
		return "", err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || (st != nil && int(st.Uid) != os.Geteuid()) {
		return "", fmt.Errorf("%s is not a directory of this user's (a symlink, or someone else's): remove it; drills make it afresh", base)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(base, 0o700); err != nil {
			return "", err
		}
	}
	return base, nil
}
