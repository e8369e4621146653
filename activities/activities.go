// Package activities holds every piece of I/O a backupd job does, as
// Temporal activities wrapping the engine (backup, restore, repository).
// Long activities heartbeat a small checkpoint after each durably
// committed unit and pick it up again on retry; errors leave here as
// Temporal application errors whose type is the spec's BACKUP_0xx code,
// non-retryable where retrying cannot help.
package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"backupd/api"
	"backupd/backup"
	"backupd/codes"
	"backupd/config"
	"backupd/hostinfo"
	"backupd/repository"
	"backupd/restore"
	"backupd/sources"
	"backupd/storage"
)

// Activities is registered with the worker; its methods are the activities.
type Activities struct {
	Config *config.Config
	Stores *Stores
	// Central: an enrolled host's components configured by the server
	// (nil: none).
	Central *Central
}

// New returns the activities for cfg.
func New(cfg *config.Config) *Activities {
	return &Activities{Config: cfg, Stores: NewStores(cfg)}
}

// Checkpoint is what a long activity heartbeats: small (well under 1 KB),
// always whole, sent only after a unit is durably committed.
type Checkpoint struct {
	BackupID  string `json:"backup_id"`
	Component string `json:"component,omitempty"`
	// Location is a copy's destination; its BytesDone/BytesTotal are
	// then the copy's progress, not the source's.
	Location       string `json:"location,omitempty"`
	Phase          string `json:"phase"`
	FilesDone      int64  `json:"files_done"`
	BytesDone      int64  `json:"bytes_done"`
	BytesTotal     int64  `json:"bytes_total,omitempty"`
	FilesTotal     int64  `json:"files_total,omitempty"`
	BytesAdded     int64  `json:"bytes_added"`
	PacksCommitted int64  `json:"packs_committed"`
	Warnings       int64  `json:"warnings"`
	Resumed        int    `json:"resumed,omitempty"` // how many attempts came before
}

// toTemporal turns an engine or coded error into an application error
// whose Type is the BACKUP code.
func toTemporal(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return err
	}
	ce := codes.Classify(err)
	// a refusal (the server's host storage refusing a host) is final:
	// retrying asks the same
	return temporal.NewApplicationErrorWithOptions(ce.Error(), string(ce.Code),
		temporal.ApplicationErrorOptions{NonRetryable: !ce.Code.Retryable() || errors.Is(err, storage.ErrRefused), Cause: err})
}

// heartbeater records the checkpoint on a timer (the SDK throttles
// anyway) and when asked, so cancellation reaches the activity quickly.
type heartbeater struct {
	ctx  context.Context
	mu   sync.Mutex
	cp   Checkpoint
	stop chan struct{}
	done chan struct{}
}

func startHeartbeat(ctx context.Context, cp Checkpoint) *heartbeater {
	h := &heartbeater{ctx: ctx, cp: cp, stop: make(chan struct{}), done: make(chan struct{})}
	activity.RecordHeartbeat(ctx, cp)
	go func() {
		defer close(h.done)
		// twice a second: progress on the API's WebSocket is at most this
		// old (the worker's MaxHeartbeatThrottleInterval matches)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				h.beat()
			case <-h.stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return h
}

func (h *heartbeater) update(fn func(*Checkpoint)) {
	h.mu.Lock()
	fn(&h.cp)
	h.mu.Unlock()
}

func (h *heartbeater) beat() {
	h.mu.Lock()
	cp := h.cp
	h.mu.Unlock()
	activity.RecordHeartbeat(h.ctx, cp)
}

func (h *heartbeater) close() {
	close(h.stop)
	<-h.done
	h.beat()
}

// previous returns the checkpoint of an earlier attempt, if any.
func previous(ctx context.Context) (Checkpoint, bool) {
	var cp Checkpoint
	if !activity.HasHeartbeatDetails(ctx) {
		return cp, false
	}
	if err := activity.GetHeartbeatDetails(ctx, &cp); err != nil {
		return cp, false
	}
	return cp, true
}

// withWorkerStop cancels ctx when the worker shuts down, so a running
// activity checkpoints and returns instead of being cut off; the retry on
// another (or the restarted) worker resumes from the checkpoint.
func withWorkerStop(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := activity.GetWorkerStopChannel(ctx)
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// PrepareInput names a backup to plan.
type PrepareInput struct {
	BackupID    string            `json:"backup_id"`
	Type        string            `json:"type"`
	Components  []string          `json:"components"`
	Location    string            `json:"location"`
	Compression string            `json:"compression"`
	Tags        map[string]string `json:"tags,omitempty"`
	// ParentCandidates: the catalog's newest possible parents, tried
	// before the repository's manifests are listed
	ParentCandidates []string `json:"parent_candidates,omitempty"`
}

// components resolves component names; with mustExist, a source path
// that is not there is BACKUP_003 (checked when a backup is prepared; a
// path that disappears later fails only its component).
func (a *Activities) components(names []string, mustExist bool) ([]backup.Component, error) {
	var out []backup.Component
	for _, n := range names {
		c, ok := a.component(n)
		if !ok {
			return nil, codes.New(codes.InvalidConfiguration, "unknown component %q (configured: %v)", n, a.componentNames())
		}
		bc := backup.Component{Name: n, Paths: c.Paths, Include: c.Include, Exclude: c.Exclude}
		// sources that are not there now are a configuration error, not a
		// component that fails halfway
		for _, p := range c.Paths {
			if _, err := os.Lstat(p); err != nil && mustExist {
				return nil, codes.New(codes.InvalidConfiguration, "component %s: source %s does not exist on %s", n, p, a.Config.Host)
			}
		}
		for _, db := range c.Databases {
			bc.Streams = append(bc.Streams, db.Source().Streams()...)
		}
		out = append(out, bc)
	}
	return out, nil
}

// PrepareBackup validates the request against the configuration and
// chooses the parent backup.
func (a *Activities) PrepareBackup(ctx context.Context, in PrepareInput) (*backup.Plan, error) {
	comps, err := a.components(in.Components, true)
	if err != nil {
		return nil, toTemporal(err)
	}
	c, err := repository.ParseCompression(in.Compression)
	if err != nil {
		return nil, toTemporal(codes.Wrap(codes.InvalidConfiguration, err))
	}
	if err := backup.ValidType(in.Type); err != nil {
		return nil, toTemporal(codes.Wrap(codes.InvalidConfiguration, err))
	}
	repo, err := a.Stores.Open(ctx, in.Location)
	if err != nil {
		return nil, toTemporal(err)
	}
	// the host's description goes into the manifest, so a rebuilt
	// catalog shows it too
	tags := map[string]string{}
	for k, v := range in.Tags {
		tags[k] = v
	}
	hi := hostinfo.Get()
	tags["system_version"], tags["kernel_version"], tags["hardware_id"] = hi.SystemVersion, hi.KernelVersion, hi.HardwareID
	plan, err := backup.Prepare(ctx, repo, backup.Options{ID: in.BackupID, Type: in.Type, Components: comps,
		Compression: c, Host: a.Config.Host, Tags: tags, ParentCandidates: in.ParentCandidates})
	return plan, toTemporal(err)
}

// ComponentInput is one component of a planned backup.
type ComponentInput struct {
	Plan      backup.Plan `json:"plan"`
	Component string      `json:"component"`
	Location  string      `json:"location"`
}

// BackupComponent reads, chunks, compresses, encrypts and uploads one
// component. After each pack is stored and indexed it heartbeats; a retry
// (worker killed, storage down) deduplicates against everything already
// committed, so at most the packs in flight are uploaded again.
func (a *Activities) BackupComponent(ctx context.Context, in ComponentInput) (repository.ComponentManifest, error) {
	comps, err := a.components([]string{in.Component}, false)
	if err != nil {
		return repository.ComponentManifest{Name: in.Component}, toTemporal(err)
	}
	ctx, cancel := withWorkerStop(ctx)
	defer cancel()
	repo, err := a.Stores.Open(ctx, in.Location)
	if err != nil {
		return repository.ComponentManifest{Name: in.Component}, toTemporal(err)
	}
	cp := Checkpoint{BackupID: in.Plan.ID, Component: in.Component, Phase: "uploading"}
	if prev, ok := previous(ctx); ok {
		cp.Resumed = prev.Resumed + 1
		cp.PacksCommitted = prev.PacksCommitted
	}
	hb := startHeartbeat(ctx, cp)
	repo.OnPackCommitted = func(pc repository.PackCommit) {
		hb.update(func(c *Checkpoint) { c.PacksCommitted++ })
		hb.beat()
	}
	cm, err := backup.RunComponent(ctx, repo, &in.Plan, comps[0], backup.Options{
		Progress: func(p backup.Progress) {
			hb.update(func(c *Checkpoint) {
				c.FilesDone, c.BytesDone, c.BytesAdded, c.Warnings = p.FilesDone, p.BytesDone, p.BytesAdded, p.Warnings
			})
		}})
	hb.close()
	if errors.Is(err, backup.ErrComponentFailed) {
		// The component's own failure is a result, not a retryable error:
		// the workflow records it and the other components go on.
		return cm, nil
	}
	return cm, toTemporal(err)
}

// CommitInput completes a backup.
type CommitInput struct {
	Plan       backup.Plan                    `json:"plan"`
	Components []repository.ComponentManifest `json:"components"`
	Location   string                         `json:"location"`
}

// BackupSummary is what a job reports about a finished backup.
type BackupSummary struct {
	BackupID string           `json:"backup_id"`
	Status   string           `json:"status"`
	Stats    repository.Stats `json:"stats"`
	Started  time.Time        `json:"started"`
	Finished time.Time        `json:"finished"`
}

// CommitBackup writes the signed manifest. If an earlier attempt already
// wrote it (the worker died after the write), it is read back instead.
func (a *Activities) CommitBackup(ctx context.Context, in CommitInput) (BackupSummary, error) {
	repo, err := a.Stores.Open(ctx, in.Location)
	if err != nil {
		return BackupSummary{}, toTemporal(err)
	}
	// Commit reads back the manifest an earlier attempt wrote (the worker
	// died after the write), and refuses another backup's under the id.
	m, err := backup.Commit(ctx, repo, &in.Plan, in.Components)
	if err != nil {
		return BackupSummary{}, toTemporal(err)
	}
	return BackupSummary{BackupID: m.ID, Status: m.Status, Stats: m.Stats, Started: m.Started, Finished: m.Finished}, nil
}

// ReplicateInput copies a backup between locations.
type ReplicateInput struct {
	BackupID string `json:"backup_id"`
	From     string `json:"from"`
	To       string `json:"to"`
	// Dir: on the server, an enrolled host's repository (hosts/<id>) in
	// both locations; the host cannot read its backup to copy it.
	Dir string `json:"dir,omitempty"`
}

// Replicate copies a backup to another location (3-2-1); only blobs the
// destination lacks move. Already present there: nothing to do.
func (a *Activities) Replicate(ctx context.Context, in ReplicateInput) (repository.CopyStats, error) {
	ctx, cancel := withWorkerStop(ctx)
	defer cancel()
	src, err := a.Stores.OpenIn(ctx, in.From, in.Dir)
	if err != nil {
		return repository.CopyStats{}, toTemporal(err)
	}
	dst, err := a.Stores.OpenIn(ctx, in.To, in.Dir)
	if err != nil {
		return repository.CopyStats{}, toTemporal(err)
	}
	// Already there (an earlier attempt copied it): nothing to do, when it
	// is this backup and not another one under the same id.
	if have, err := dst.LoadManifest(ctx, in.BackupID); err == nil {
		m, err := src.LoadManifest(ctx, in.BackupID)
		if err != nil {
			return repository.CopyStats{}, toTemporal(err)
		}
		if !have.SameBackup(m) {
			return repository.CopyStats{}, toTemporal(have.Taken(in.To))
		}
		return repository.CopyStats{}, nil
	}
	hb := startHeartbeat(ctx, Checkpoint{BackupID: in.BackupID, Phase: "replicating", Location: in.To})
	_, st, err := repository.CopyBackupProgress(ctx, src, dst, in.BackupID, func(cs repository.CopyStats) {
		hb.update(func(c *Checkpoint) { c.BytesDone, c.BytesTotal = cs.BytesDone, cs.BytesTotal })
	})
	hb.close()
	return st, toTemporal(err)
}

// DiscardInput names a backup whose job was cancelled.
type DiscardInput struct {
	BackupID  string   `json:"backup_id"`
	Locations []string `json:"locations"`
	// Host and Started identify the backup (its plan's); only a manifest
	// of this backup is removed, never another one's under the same id.
	// Zero (no plan was made, or a job started before these existed):
	// no manifest is removed.
	Host    string    `json:"host,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// Dir: on the server, an enrolled host's repository (hosts/<id>): the
	// host cannot read or remove a manifest it wrote.
	Dir string `json:"dir,omitempty"`
}

// DiscardBackup removes what a cancelled backup left: its manifest, if it
// was written. Its packs are referenced by nothing and go at the next
// garbage collection (after the safety window, as any orphan).
func (a *Activities) DiscardBackup(ctx context.Context, in DiscardInput) error {
	var errs []error
	for _, loc := range in.Locations {
		repo, err := a.Stores.OpenIn(ctx, loc, in.Dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := discardManifest(ctx, repo, in); err != nil {
			errs = append(errs, err)
		}
		if err := repo.DeletePending(ctx, in.BackupID); err != nil {
			errs = append(errs, err)
		}
	}
	return toTemporal(errors.Join(errs...))
}

// discardManifest removes the cancelled backup's manifest when one was
// written and it is that backup's.
func discardManifest(ctx context.Context, repo *repository.Repository, in DiscardInput) error {
	if in.Started.IsZero() {
		return nil
	}
	have, err := repo.LoadManifest(ctx, in.BackupID)
	switch {
	case errors.Is(err, repository.ErrBackupNotFound):
		return nil
	case err != nil:
		return err
	case !have.SameBackup(&repository.Manifest{ID: in.BackupID, Host: in.Host, Started: in.Started}):
		return nil // another backup's: not this job's to remove
	}
	if err := repo.DeleteManifest(ctx, in.BackupID); err != nil && !errors.Is(err, repository.ErrBackupNotFound) {
		return err
	}
	return nil
}

// VerifyInput selects what to verify.
type VerifyInput struct {
	BackupID        string  `json:"backup_id"`
	Location        string  `json:"location"`
	ReadDataPercent float64 `json:"read_data_percent"`
	ExtractTest     bool    `json:"extract_test"`
	// Grant: on an enrolled host, the restore grant it reads under.
	Grant string `json:"grant,omitempty"`
	// Dir: on the server, the enrolled host's repository in the location
	// (hosts/<id>); its content is that host's word (an extract test
	// restores it as untrusted).
	Dir string `json:"dir,omitempty"`
}

// VerifyReport is the stored result of a verification.
type VerifyReport struct {
	BackupID      string                  `json:"backup_id"`
	Location      string                  `json:"location"`
	Passed        bool                    `json:"passed"`
	Check         *repository.CheckResult `json:"check"`
	ExtractTest   *ExtractResult          `json:"extract_test,omitempty"`
	Started       time.Time               `json:"started"`
	Finished      time.Time               `json:"finished"`
	ManifestValid bool                    `json:"manifest_valid"`
	Components    []string                `json:"components"`
}

// ExtractResult is the outcome of restoring into a scratch directory.
type ExtractResult = api.ExtractResult

// Verify checks the repository (structure, a share or all of the data) and
// optionally restores the backup into a scratch directory, verifying every
// file, then removes it.
func (a *Activities) Verify(ctx context.Context, in VerifyInput) (VerifyReport, error) {
	ctx, cancel := withWorkerStop(ctx)
	defer cancel()
	rep := VerifyReport{BackupID: in.BackupID, Location: in.Location, Started: time.Now().UTC()}
	var repo *repository.Repository
	var err error
	if in.Dir != "" {
		repo, err = a.Stores.OpenIn(ctx, in.Location, in.Dir)
	} else {
		repo, err = a.openRepo(ctx, in.Location, in.Grant)
	}
	if err != nil {
		return rep, toTemporal(err)
	}
	m, err := repo.LoadManifest(ctx, in.BackupID)
	if err != nil {
		return rep, toTemporal(err)
	}
	rep.ManifestValid = true
	rep.Components = m.ComponentNames()
	hb := startHeartbeat(ctx, Checkpoint{BackupID: in.BackupID, Phase: "checking"})
	defer hb.close()
	res, err := repository.Check(ctx, repo, repository.CheckOptions{ReadDataPercent: in.ReadDataPercent})
	if err != nil {
		return rep, toTemporal(err)
	}
	rep.Check = res
	rep.Passed = res.OK
	if in.ExtractTest {
		hb.update(func(c *Checkpoint) { c.Phase = "extract test" })
		dir, err := os.MkdirTemp(a.Config.VarDir, "verify-extract-*")
		if err != nil {
			return rep, toTemporal(err)
		}
		defer os.RemoveAll(dir)
		rr, err := restore.Run(ctx, repo, m, restore.Options{Target: filepath.Join(dir, "t"), Untrusted: in.Dir != "" || in.Grant != ""})
		ex := &ExtractResult{Passed: err == nil}
		if rr != nil {
			ex.FilesVerified, ex.Bytes = rr.Verified, rr.Bytes
		}
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			ex.Error = err.Error()
		}
		rep.ExtractTest = ex
		rep.Passed = rep.Passed && ex.Passed
	}
	rep.Finished = time.Now().UTC()
	return rep, nil
}

// RestoreInput is one restore job's work.
type RestoreInput struct {
	BackupID   string   `json:"backup_id"`
	Location   string   `json:"location"`
	Target     string   `json:"target"`
	Components []string `json:"components,omitempty"`
	Paths      []string `json:"paths,omitempty"`
	Overwrite  bool     `json:"overwrite"`
	// Original puts every component back at its original paths.
	Original bool `json:"original,omitempty"`
	// SkipDumps leaves the @dumps directory out (its dumps are loaded
	// into databases instead).
	SkipDumps bool `json:"skip_dumps,omitempty"`
	// Mirror removes what the backup does not hold inside the component's
	// source paths.
	Mirror bool `json:"mirror,omitempty"`
	// TargetChecked: the workflow found every target empty (or was told
	// to overwrite) before anything was written, so what a retry finds
	// there is what an earlier attempt of this restore wrote.
	TargetChecked bool `json:"target_checked,omitempty"`
	// Grant: on an enrolled host, the restore grant under which it reads
	// the backup's repository (through the server).
	Grant string `json:"grant,omitempty"`
	// Untrusted: another host's backup (restore.Options.Untrusted).
	Untrusted bool `json:"untrusted,omitempty"`
}

// RestoreResult reports a restore.
type RestoreResult struct {
	Files, Dirs, Bytes, Verified int64
	Warnings                     []string
	Components                   []string
	Databases                    []DatabaseRestoreResult `json:",omitempty"`
}

// options turns the input into restore options. A restore to the original
// location writes as root into /, so each component is confined to the
// source paths this worker's configuration gives it: a backup (from
// another host, or from an older configuration) can then never put files
// elsewhere. A component the worker does not configure is refused.
func (in RestoreInput) options(m *repository.Manifest, component func(string) (config.Component, bool)) (restore.Options, error) {
	o := restore.Options{Target: in.Target, Components: in.Components, Paths: in.Paths, Overwrite: in.Overwrite, Mirror: in.Mirror,
		Untrusted: in.Untrusted}
	if in.SkipDumps {
		o.SkipTop = []string{sources.DumpsDir}
	}
	if in.Original {
		o.ComponentTargets = map[string]string{}
		for _, c := range m.Components {
			o.ComponentTargets[c.Name] = "/"
		}
		o.Confine = map[string][]string{}
		for _, name := range restoredComponents(m, in.Components) {
			c, ok := component(name)
			if !ok {
				return o, codes.New(codes.InvalidConfiguration,
					"component %q is not configured on this worker, so it cannot be restored to its original location (restore it to a directory instead)", name)
			}
			o.Confine[name] = append([]string{}, c.Paths...)
		}
		o.Overwrite = true
	}
	return o, nil
}

func restoredComponents(m *repository.Manifest, sel []string) []string {
	if len(sel) > 0 {
		return sel
	}
	var out []string
	for _, c := range m.Components {
		if c.Error == "" {
			out = append(out, c.Name)
		}
	}
	return out
}

// openRepo opens a location's repository, under a restore grant when
// one is given (closed when ctx, the activity's, ends).
func (a *Activities) openRepo(ctx context.Context, loc, grant string) (*repository.Repository, error) {
	if grant == "" {
		return a.Stores.Open(ctx, loc)
	}
	repo, err := a.Stores.OpenGranted(ctx, loc, grant)
	if err == nil {
		context.AfterFunc(ctx, func() { repo.Backend().Close() })
	}
	return repo, err
}

// openBackup opens a location (under a restore grant, when one is
// given) and reads a backup's manifest; errors are ready for Temporal.
func (a *Activities) openBackup(ctx context.Context, loc, grant, id string) (*repository.Repository, *repository.Manifest, error) {
	repo, err := a.openRepo(ctx, loc, grant)
	if err != nil {
		return nil, nil, toTemporal(err)
	}
	m, err := repo.LoadManifest(ctx, id)
	if err != nil {
		return nil, nil, toTemporal(err)
	}
	return repo, m, nil
}

// VerifyRestore re-reads a finished restore and checks it against the
// backup's manifest; a mismatch is BACKUP_006 naming the files.
func (a *Activities) VerifyRestore(ctx context.Context, in RestoreInput) (RestoreResult, error) {
	repo, m, err := a.openBackup(ctx, in.Location, in.Grant, in.BackupID)
	if err != nil {
		return RestoreResult{}, err
	}
	opts, err := in.options(m, a.component)
	if err != nil {
		return RestoreResult{}, toTemporal(err)
	}
	hb := startHeartbeat(ctx, Checkpoint{BackupID: in.BackupID, Phase: "verifying restore"})
	opts.VerifyOnly = true
	opts.Progress = func(p restore.Progress) {
		hb.update(func(c *Checkpoint) {
			c.FilesDone, c.BytesDone, c.BytesTotal, c.FilesTotal = p.FilesDone, p.BytesDone, p.BytesTotal, p.FilesTotal
		})
	}
	res, err := restore.Run(ctx, repo, m, opts)
	hb.close()
	if err != nil {
		var fe *restore.FileError
		if errors.As(err, &fe) {
			err = codes.Wrap(codes.VerificationFailed, err)
		}
		return RestoreResult{}, toTemporal(err)
	}
	return RestoreResult{Files: res.Files, Dirs: res.Dirs, Bytes: res.Bytes, Verified: res.Verified,
		Components: restoredComponents(m, in.Components)}, nil
}

// CheckRestoreTarget refuses (BACKUP_008) a restore whose target
// directories are not empty, unless it overwrites. It runs once, before
// anything is written; the workflow keeps its answer (TargetChecked).
func (a *Activities) CheckRestoreTarget(ctx context.Context, in RestoreInput) error {
	return toTemporal(a.RestoreTargetProblem(ctx, in))
}

// RestoreTargetProblem is CheckRestoreTarget's check with the engine's
// error (restore.ErrTargetNotEmpty): the API server runs it before it
// starts a restore when the worker runs in its process.
func (a *Activities) RestoreTargetProblem(ctx context.Context, in RestoreInput) error {
	_, m, err := a.openBackup(ctx, in.Location, in.Grant, in.BackupID)
	if err != nil {
		return err
	}
	opts, err := in.options(m, a.component)
	if err != nil {
		return err
	}
	return restore.CheckTargets(m, opts)
}

// Restore writes a backup (or parts) into the target; see restore.Run.
func (a *Activities) Restore(ctx context.Context, in RestoreInput) (RestoreResult, error) {
	ctx, cancel := withWorkerStop(ctx)
	defer cancel()
	repo, m, err := a.openBackup(ctx, in.Location, in.Grant, in.BackupID)
	if err != nil {
		return RestoreResult{}, err
	}
	opts, err := in.options(m, a.component)
	if err != nil {
		return RestoreResult{}, toTemporal(err)
	}
	hb := startHeartbeat(ctx, Checkpoint{BackupID: in.BackupID, Phase: "restoring"})
	// The workflow decided once, before the first write, that the targets
	// were empty (CheckRestoreTarget): only then is what a retry finds
	// there this restore's own, to be overwritten. Without that decision
	// every attempt refuses a non-empty target.
	opts.Overwrite = opts.Overwrite || (in.TargetChecked && activity.GetInfo(ctx).Attempt > 1)
	opts.Progress = func(p restore.Progress) {
		hb.update(func(c *Checkpoint) {
			c.FilesDone, c.BytesDone, c.BytesTotal, c.FilesTotal = p.FilesDone, p.BytesDone, p.BytesTotal, p.FilesTotal
		})
	}
	res, err := restore.Run(ctx, repo, m, opts)
	hb.close()
	if err != nil {
		var fe *restore.FileError
		if errors.As(err, &fe) && errors.Is(fe.Err, repository.ErrCorrupt) {
			err = codes.Wrap(codes.CorruptionDetected, err)
		}
		return RestoreResult{}, toTemporal(err)
	}
	return RestoreResult{Files: res.Files, Dirs: res.Dirs, Bytes: res.Bytes, Verified: res.Verified, Warnings: res.Warnings,
		Components: restoredComponents(m, in.Components)}, nil
}

// GCInput runs garbage collection on a location.
type GCInput struct {
	Location     string        `json:"location"`
	DryRun       bool          `json:"dry_run"`
	SafetyWindow time.Duration `json:"safety_window"`
	Exclude      []string      `json:"exclude,omitempty"` // count these backups as removed
	// Dir: on the server, an enrolled host's repository (hosts/<id>),
	// collected as untrusted (its index files are the host's word).
	Dir string `json:"dir,omitempty"`
}

// GC collects a location's garbage.
func (a *Activities) GC(ctx context.Context, in GCInput) (*repository.GCResult, error) {
	repo, err := a.Stores.OpenIn(ctx, in.Location, in.Dir)
	if err != nil {
		return nil, toTemporal(err)
	}
	hb := startHeartbeat(ctx, Checkpoint{Phase: "garbage collection"})
	defer hb.close()
	res, err := repository.GC(ctx, repo, repository.GCOptions{DryRun: in.DryRun, SafetyWindow: in.SafetyWindow, Exclude: in.Exclude,
		Repack: a.Config.RepackOptions(), Untrusted: in.Dir != ""})
	if err == nil && in.Dir != "" && !in.DryRun {
		// what the host's repository holds now, for its quota
		res.RepositoryBytes = res.PackBytes
		for _, p := range []string{"index/", "manifests/", "manifest-sets/", "tombstones/"} {
			err = repo.Backend().List(ctx, p, func(oi storage.ObjectInfo) error {
				res.RepositoryBytes += oi.Size
				return nil
			})
			if err != nil {
				break
			}
		}
	}
	return res, toTemporal(err)
}

// ForgetInput removes backups' manifests from a location.
type ForgetInput struct {
	Location  string   `json:"location"`
	BackupIDs []string `json:"backup_ids"`
	Dir       string   `json:"dir,omitempty"` // as GCInput's
}

// Forget deletes manifests (their data goes at the next GC).
func (a *Activities) Forget(ctx context.Context, in ForgetInput) error {
	repo, err := a.Stores.OpenIn(ctx, in.Location, in.Dir)
	if err != nil {
		return toTemporal(err)
	}
	for _, id := range in.BackupIDs {
		if err := repo.DeleteManifest(ctx, id); err != nil && !errors.Is(err, repository.ErrBackupNotFound) {
			return toTemporal(fmt.Errorf("forget %s: %w", id, err))
		}
	}
	return nil
}
