package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"backupd/models"
	"backupd/repository"
	"backupd/storage"
)

// RebuildResult says what a catalog rebuild found.
type RebuildResult struct {
	Backups    int            `json:"backups"`
	Added      int            `json:"added"`
	Updated    int            `json:"updated"`
	Locations  map[string]int `json:"locations"` // location -> manifests read
	Unreadable []string       `json:"unreadable,omitempty"`
	// Hosts: enrolled hosts' repositories read (hosts/<id> in each
	// location), by host name; Recovered: the hosts the catalog had no
	// row for, recorded again as revoked (enrol them anew, under another
	// name, and restore their backups onto them).
	Hosts     map[string]int `json:"hosts,omitempty"`
	Recovered []string       `json:"recovered_hosts,omitempty"`
}

// RebuildCatalog recreates the catalog's backup rows from the manifests of
// every location: the repositories are the truth, the catalog an index.
// Rows the catalog has keep what only it knows (protection, verification).
// Jobs, schedules and tokens are operational state and are not in storage.
func RebuildCatalog(ctx context.Context, store *models.Store, stores *Stores, locations []string) (*RebuildResult, error) {
	res := &RebuildResult{Locations: map[string]int{}}
	found := map[string]*models.Backup{}
	from := map[string]string{} // backup id -> the repository it was found in ("" a location's own)
	conflict := map[string]bool{}
	var order []string
	add := func(loc, dir string, repo *repository.Repository, ms []*repository.Manifest, host string) {
		for _, m := range ms {
			if conflict[m.ID] {
				continue
			}
			if b := found[m.ID]; b != nil {
				if from[m.ID] == dir {
					b.Locations = append(b.Locations, loc)
					continue
				}
				// the same id in another repository: a host's manifest
				// never takes the server's backup or another host's
				res.Unreadable = append(res.Unreadable, fmt.Sprintf("%s/%s: backup %s is also in %s; not filed from here (a host's repository cannot claim another's backup)",
					loc, dir, m.ID, orLocal(from[m.ID])))
				if from[m.ID] != "" {
					// between two hosts neither is believed
					conflict[m.ID] = true
					delete(found, m.ID)
				}
				continue
			}
			b := backupRow(m, repo.KeyEntry())
			if host != "" {
				b.Host = host // the host's word names no other host
			}
			b.Locations = models.Strings{loc}
			found[m.ID], from[m.ID] = b, dir
			order = append(order, m.ID)
		}
	}
	// the locations' own repositories first: the server's backups, and
	// the names its hosts have had (no lost host is recorded under one)
	own := []string{stores.cfg.Host}
	repos := map[string]*repository.Repository{}
	for _, loc := range locations {
		repo, err := stores.Open(ctx, loc)
		if err != nil {
			return nil, fmt.Errorf("location %s: %w", loc, err)
		}
		repos[loc] = repo
		ms, errs, err := repo.Manifests(ctx)
		if err != nil {
			return nil, fmt.Errorf("location %s: %w", loc, err)
		}
		for _, e := range errs {
			res.Unreadable = append(res.Unreadable, fmt.Sprintf("%s: %v", loc, e))
		}
		res.Locations[loc] = len(ms)
		add(loc, "", repo, ms, "")
		for _, m := range ms {
			if m.Host != "" && !slices.Contains(own, m.Host) {
				own = append(own, m.Host)
			}
		}
	}
	// then enrolled hosts' repositories, each under its own host
	for _, loc := range locations {
		ids, err := hostRepos(ctx, repos[loc])
		if err != nil {
			return nil, fmt.Errorf("location %s: listing hosts' repositories: %w", loc, err)
		}
		for _, id := range ids {
			dir := HostRepoDir(id)
			hrepo, err := stores.OpenIn(ctx, loc, dir)
			if err != nil {
				res.Unreadable = append(res.Unreadable, fmt.Sprintf("%s/%s: %v", loc, dir, err))
				continue
			}
			hms, errs, err := hrepo.Manifests(ctx)
			if err != nil {
				res.Unreadable = append(res.Unreadable, fmt.Sprintf("%s/%s: %v", loc, dir, err))
				continue
			}
			for _, e := range errs {
				res.Unreadable = append(res.Unreadable, fmt.Sprintf("%s/%s: %v", loc, dir, e))
			}
			name, recovered, err := hostOfRepo(ctx, store, id, loc, hms, own)
			if err != nil {
				return nil, err
			}
			if recovered {
				res.Recovered = append(res.Recovered, name)
			}
			if res.Hosts == nil {
				res.Hosts = map[string]int{}
			}
			res.Hosts[name] += len(hms)
			add(loc, dir, hrepo, hms, name)
		}
	}
	kept := order[:0]
	for _, id := range order {
		if found[id] != nil {
			kept = append(kept, id)
		}
	}
	order = kept
	sort.Strings(order)
	for _, id := range order {
		b := found[id]
		old, err := store.GetBackup(ctx, id)
		if err == nil {
			b.Protected, b.IntegrityCheck, b.VerifiedAt, b.JobID = old.Protected, old.IntegrityCheck, old.VerifiedAt, old.JobID
			b.CreatedAt = old.CreatedAt
			res.Updated++
		} else {
			res.Added++
		}
		if err := store.PutBackup(ctx, b); err != nil {
			return nil, err
		}
	}
	res.Backups = len(order)
	return res, nil
}

func orLocal(dir string) string {
	if dir == "" {
		return "the location's own repository"
	}
	return dir
}

// hostRepos lists the enrolled hosts' repositories below a location's
// own (hosts/<id>/config), by host id.
func hostRepos(ctx context.Context, repo *repository.Repository) ([]string, error) {
	var ids []string
	err := repo.Backend().List(ctx, hostRepoPrefix, func(oi storage.ObjectInfo) error {
		id, rest, ok := strings.Cut(strings.TrimPrefix(oi.Name, hostRepoPrefix), "/")
		if ok && rest == "config" && models.IsHostID(id) {
			ids = append(ids, id)
		}
		return nil
	})
	sort.Strings(ids)
	return ids, err
}

// hostOfRepo is the name of the host whose repository hosts/<id> is: the
// catalog's row, or, when the catalog has none (it was lost), a row made
// again, revoked, named as its backups say when that name is free (else
// recovered-<id>).
func hostOfRepo(ctx context.Context, store *models.Store, id, loc string, ms []*repository.Manifest, own []string) (string, bool, error) {
	h, err := store.GetHost(ctx, id)
	if err == nil {
		if h.Labels["recovered"] != "" && h.Repos[loc] == "" {
			// recovered from another location already: in this one too
			repos := map[string]string{loc: "recovered"}
			for l, k := range h.Repos {
				repos[l] = k
			}
			if err := store.SetHostRepos(ctx, id, repos); err != nil {
				return "", false, err
			}
		}
		return h.Name, false, nil
	}
	if !errors.Is(err, models.ErrNotFound) {
		return "", false, err
	}
	votes := map[string]int{}
	for _, m := range ms {
		votes[m.Host]++
	}
	name := ""
	for n, c := range votes {
		if c > votes[name] || c == votes[name] && n < name {
			name = n
		}
	}
	h = &models.Host{ID: id, Name: name, Status: models.HostRevoked, Repos: map[string]string{loc: "recovered"},
		Labels: map[string]string{"recovered": "catalog-rebuild"}}
	if err := store.RecoverHost(ctx, h, "recovered-"+strings.TrimPrefix(id, "host-"), own...); err != nil {
		return "", false, err
	}
	return h.Name, true, nil
}

// backupRow is what a manifest says about its backup.
func backupRow(m *repository.Manifest, key *repository.KeyEntry) *models.Backup {
	fin := m.Finished.UTC()
	b := &models.Backup{ID: m.ID, Type: m.Type, Status: m.Status, Timestamp: m.Started.UTC(), Finished: &fin,
		SizeBytes: m.Stats.Bytes, CompressedBytes: m.Stats.CompressedSize(), AddedBytes: m.Stats.StoredAdded, Files: m.Stats.Files,
		DurationSeconds: m.Finished.Sub(m.Started).Seconds(), Encryption: "AES-256", Compression: m.Compression,
		IntegrityCheck: "not_run", ParentBackup: m.Parent, BaseBackup: m.Base, Host: m.Host, Warnings: m.Stats.Warnings,
		ComponentSizes: map[string]int64{}, Requested: models.Strings{}}
	if b.Status == "" {
		b.Status = "completed"
	}
	t := m.Tags
	b.Name, b.Description, b.ScheduleID, b.CreatedBy = t["name"], t["description"], t["schedule_id"], t["created_by"]
	b.SystemVersion, b.KernelVersion, b.HardwareID = t["system_version"], t["kernel_version"], t["hardware_id"]
	b.RetentionDays, _ = strconv.Atoi(t["retention_days"])
	if key != nil {
		b.KeyID, b.KeyVersion = key.ID, "v"+strconv.Itoa(key.Version)
	}
	var comps []string
	for _, c := range m.Components {
		comps = append(comps, c.Name)
		b.ComponentSizes[c.Name] = c.Stats.Bytes
		if c.Error != "" {
			if b.Error != "" {
				b.Error += "; "
			}
			b.Error += c.Name + ": " + c.Error
			b.ErrorCode = "BACKUP_014"
		}
	}
	sort.Strings(comps)
	b.Components = comps
	b.CreatedAt = time.Now().UTC()
	return b
}

// ReconcileResult is one reconciliation of the catalog with storage.
type ReconcileResult struct {
	At      time.Time `json:"at"`
	Adopted []string  `json:"adopted"` // backups found in storage, added to the catalog
	Located []string  `json:"located"` // copies found in locations the catalog did not list
	// Missing: backups whose manifest is gone from locations the catalog
	// lists (seen twice in a row, so a deletion in flight is not one).
	Missing     map[string][]string `json:"missing"`
	Unreachable map[string]string   `json:"unreachable,omitempty"`
	Unreadable  []string            `json:"unreadable,omitempty"` // the first maxUnreadable
	// UnreadableCount counts them all; Deferred counts manifests left for
	// the next run (maxAdoptPerRun).
	UnreadableCount int `json:"unreadable_count,omitempty"`
	Deferred        int `json:"deferred,omitempty"`
}

// Reconciler keeps the catalog in step with the manifests in storage: a
// backup made without the server (backupd repo backup into a location, a
// catalog restored from an old copy) is adopted, and a catalog
// entry whose manifest vanished is flagged. Only names are listed on each
// run; only unknown manifests are read.
type Reconciler struct {
	Store  *models.Store
	Stores *Stores
	// MinAge: catalog entries younger than this are left alone (their
	// manifest may be being written or copied).
	MinAge time.Duration
	// OwnHost: the server's own host. Backups of other (enrolled) hosts
	// live in their own repositories (hosts/<id>/ in each location), not
	// in the ones listed here, and are not judged missing from them.
	OwnHost string
	prev    map[string]bool // "<id>\x00<location>" missing at the last run
}

// Run reconciles every location once.
func (rc *Reconciler) Run(ctx context.Context, locations []string) (*ReconcileResult, error) {
	res := &ReconcileResult{At: time.Now().UTC(), Adopted: []string{}, Located: []string{}, Missing: map[string][]string{},
		Unreachable: map[string]string{}}
	// the server's own backups: an enrolled host's live in its own
	// repositories, which are not reconciled here (a fleet's catalog is
	// mostly theirs)
	var hosts []string
	if rc.OwnHost != "" {
		own, err := rc.Store.OwnHostNames(ctx)
		if err != nil {
			return nil, err
		}
		hosts = append(own, rc.OwnHost)
	}
	rows, err := rc.Store.BackupsOfHosts(ctx, hosts)
	if err != nil {
		return nil, err
	}
	byID := map[string]*models.Backup{}
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	stored := map[string]map[string]bool{} // location -> manifest ids
	for _, loc := range locations {
		lctx, cancel := context.WithTimeout(ctx, locationDeadline)
		err := rc.location(lctx, res, loc, byID, stored)
		cancel()
		if err != nil {
			res.Unreachable[loc] = err.Error()
		}
	}
	for loc := range res.Unreachable {
		delete(stored, loc) // half listed: judge nothing missing there
	}
	now := map[string]bool{}
	for _, b := range byID {
		if (b.Status != "completed" && b.Status != "partial") || time.Since(b.CreatedAt) < rc.MinAge {
			continue
		}
		if rc.OwnHost != "" && b.Host != "" && b.Host != rc.OwnHost {
			continue
		}
		var missing []string
		for _, loc := range b.Locations {
			set, ok := stored[loc]
			if !ok || set[b.ID] {
				continue // unreachable now, or there
			}
			k := b.ID + "\x00" + loc
			now[k] = true
			if rc.prev[k] {
				missing = append(missing, loc)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			res.Missing[b.ID] = missing
		}
		if strings.Join(missing, ",") != strings.Join(b.MissingFrom, ",") {
			if err := rc.Store.UpdateBackup(ctx, b.ID, map[string]any{"missing_from": models.Strings(missing)}); err != nil {
				return nil, err
			}
		}
	}
	rc.prev = now
	return res, nil
}

// location lists one location's manifests and adopts what the catalog lacks.
func (rc *Reconciler) location(ctx context.Context, res *ReconcileResult, loc string, byID map[string]*models.Backup, stored map[string]map[string]bool) error {
	repo, err := rc.Stores.Open(ctx, loc)
	if err != nil {
		return err
	}
	ids, err := repo.ManifestIDs(ctx)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	for _, id := range ids {
		set[id] = true
	}
	stored[loc] = set
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rc.adopt(ctx, res, repo, loc, id, byID)
	}
	return nil
}

// adopt records a manifest the catalog lacks, or a location it did not
// list. The catalog may have changed since this run read it (a backup
// committed meanwhile): a row that exists now is never overwritten, and
// locations are added to the row as it is now.
func (rc *Reconciler) adopt(ctx context.Context, res *ReconcileResult, repo *repository.Repository, loc, id string, byID map[string]*models.Backup) {
	if b := byID[id]; b != nil {
		for _, l := range b.Locations {
			if l == loc {
				return
			}
		}
		if b.Status != "completed" && b.Status != "partial" {
			return // being written: the job records its locations itself
		}
		if added, err := rc.Store.AddBackupLocation(ctx, id, loc); err == nil && added {
			res.Located = append(res.Located, id+"@"+loc)
		}
		return
	}
	if len(res.Adopted) >= maxAdoptPerRun {
		res.Deferred++
		return
	}
	m, err := repo.LoadManifest(ctx, id)
	if err != nil {
		res.unreadable(fmt.Sprintf("%s: %s: %v", loc, id, err))
		return
	}
	b := backupRow(m, repo.KeyEntry())
	b.Locations = models.Strings{loc}
	inserted, err := rc.Store.InsertBackupIfAbsent(ctx, b)
	if err != nil {
		res.unreadable(fmt.Sprintf("%s: %s: catalog: %v", loc, id, err))
		return
	}
	if inserted {
		byID[id] = b
		res.Adopted = append(res.Adopted, id)
	}
}

// Bounds: a storage that lists millions of names costs a bounded amount
// per run (the rest waits for the next), and health stays small.
const (
	maxAdoptPerRun   = 1000
	maxUnreadable    = 50
	locationDeadline = 5 * time.Minute
)

func (res *ReconcileResult) unreadable(s string) {
	if len(res.Unreadable) < maxUnreadable {
		res.Unreadable = append(res.Unreadable, s)
	}
	res.UnreadableCount++
}
