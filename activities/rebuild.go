package activities

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"backupd/models"
	"backupd/repository"
)

// RebuildResult says what a catalog rebuild found.
type RebuildResult struct {
	Backups    int            `json:"backups"`
	Added      int            `json:"added"`
	Updated    int            `json:"updated"`
	Locations  map[string]int `json:"locations"` // location -> manifests read
	Unreadable []string       `json:"unreadable,omitempty"`
}

// RebuildCatalog recreates the catalog's backup rows from the manifests of
// every location: the repositories are the truth, the catalog an index.
// Rows the catalog has keep what only it knows (protection, verification).
// Jobs, schedules and tokens are operational state and are not in storage.
func RebuildCatalog(ctx context.Context, store *models.Store, stores *Stores, locations []string) (*RebuildResult, error) {
	res := &RebuildResult{Locations: map[string]int{}}
	found := map[string]*models.Backup{}
	var order []string
	for _, loc := range locations {
		repo, err := stores.Open(ctx, loc)
		if err != nil {
			return nil, fmt.Errorf("location %s: %w", loc, err)
		}
		ms, errs, err := repo.Manifests(ctx)
		if err != nil {
			return nil, fmt.Errorf("location %s: %w", loc, err)
		}
		for _, e := range errs {
			res.Unreadable = append(res.Unreadable, fmt.Sprintf("%s: %v", loc, e))
		}
		res.Locations[loc] = len(ms)
		for _, m := range ms {
			if b := found[m.ID]; b != nil {
				b.Locations = append(b.Locations, loc)
				continue
			}
			b := backupRow(m, repo.KeyEntry())
			b.Locations = models.Strings{loc}
			found[m.ID] = b
			order = append(order, m.ID)
		}
	}
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

// backupRow is what a manifest says about its backup.
func backupRow(m *repository.Manifest, key *repository.KeyEntry) *models.Backup {
	fin := m.Finished.UTC()
	b := &models.Backup{ID: m.ID, Type: m.Type, Status: m.Status, Timestamp: m.Started.UTC(), Finished: &fin,
		SizeBytes: m.Stats.Bytes, CompressedBytes: m.Stats.StoredAdded, Files: m.Stats.Files,
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
