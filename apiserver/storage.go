package apiserver

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"backupd/api"
	"backupd/config"
	"backupd/storage"
	"backupd/storage/location"
)

type capEntry struct {
	cap    storage.Capacity
	stored int64 // bytes of the repository's own objects
	err    error
	at     time.Time
	gen    int64 // the catalog's generation then: a finished job makes it stale
}

// capacity asks a location for its space and the repository for its
// size (the sum of its objects): again after every catalog change (a job
// that ends changes what is stored), else at most every 30 s.
func (s *Server) capacity(ctx context.Context, name string) (storage.Capacity, time.Time, error) {
	e := s.locationUsage(ctx, name)
	return e.cap, e.at, e.err
}

func (s *Server) locationUsage(ctx context.Context, name string) capEntry {
	s.capMu.Lock()
	e, ok := s.capCache[name]
	s.capMu.Unlock()
	gen := s.Store.Generation()
	// a failure is asked again soon: a location being set up, or back
	// from an outage, must not look broken for long
	ttl := 30 * time.Second
	if e.err != nil {
		ttl = 3 * time.Second
	}
	if ok && e.gen == gen && time.Since(e.at) < ttl {
		return e
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var c storage.Capacity
	var stored int64
	repo, err := s.Stores.Open(ctx, name)
	if err == nil {
		c, err = repo.Backend().Capacity(ctx)
	}
	if err == nil {
		err = repo.Backend().List(ctx, "", func(o storage.ObjectInfo) error {
			stored += o.Size
			return nil
		})
	}
	e = capEntry{cap: c, stored: stored, err: err, at: time.Now().UTC(), gen: gen}
	s.capMu.Lock()
	s.capCache[name] = e
	s.capMu.Unlock()
	return e
}

// usage is what a location's utilization is measured on: the
// repository's bytes against the quota when one is set, else the
// filesystem's (or bucket's) used bytes against its total.
func usage(e capEntry, quota int64) (used, total int64, util float64, known bool) {
	if quota > 0 {
		return e.stored, quota, 100 * float64(e.stored) / float64(quota), true
	}
	if e.cap.TotalBytes > 0 {
		return e.cap.UsedBytes, e.cap.TotalBytes, 100 * float64(e.cap.UsedBytes) / float64(e.cap.TotalBytes), true
	}
	return e.cap.UsedBytes, -1, 0, false
}

// usageFields are a location's figures under one name each, the same in
// /status, /health and /storage: the repository's own bytes, the
// filesystem's (or bucket's) used and total, and what utilization is
// measured on (README: "Sizes and ratios").
func usageFields(e capEntry, quota int64) *api.UsageFigures {
	out := &api.UsageFigures{RepositoryBytes: e.stored, FilesystemUsedBytes: e.cap.UsedBytes}
	if e.cap.TotalBytes >= 0 {
		out.FilesystemTotalBytes = ptr(e.cap.TotalBytes)
	}
	switch _, _, util, known := usage(e, quota); {
	case quota > 0:
		out.UtilizationBasis = "repository_bytes of quota_bytes"
		out.UtilizationPercent = ptr(math.Round(util*10) / 10)
	case known:
		out.UtilizationBasis = "filesystem_used_bytes of filesystem_total_bytes"
		out.UtilizationPercent = ptr(math.Round(util*10) / 10)
	default:
		out.UtilizationBasis = "none (no quota, no filesystem total)"
	}
	return out
}

// locationKind is local, cloud (S3) or remote (SFTP), from the URL.
func locationKind(raw string) string {
	switch {
	case strings.HasPrefix(raw, "s3://"):
		return "s3"
	case strings.HasPrefix(raw, "sftp://"):
		return "sftp"
	}
	return "local"
}

// describeLocation says where a location is, without credentials.
func (s *Server) describeLocation(name string) api.LocationAddress {
	loc := s.Cfg.Storage[name]
	out := api.LocationAddress{Name: name, URL: location.Redact(loc.URL), Offsite: loc.Offsite}
	u, err := url.Parse(loc.URL)
	switch locationKind(loc.URL) {
	case "s3":
		out.StorageType = "S3"
		if err == nil {
			a := &api.S3Address{Bucket: u.Host, Key: strings.Trim(u.Path, "/"), Provider: "AWS S3", Region: u.Query().Get("region")}
			if ep := u.Query().Get("endpoint"); ep != "" {
				a.Provider, a.Endpoint = "S3-compatible", ep
			}
			out.S3Address = a
		}
	case "sftp":
		out.StorageType = "SFTP"
		if err == nil {
			out.SFTPAddress = &api.SFTPAddress{Host: u.Hostname(), Location: u.Host}
			out.Path = ptr(u.Path)
		}
	default:
		out.StorageType = "local"
		p := loc.URL
		if err == nil && u.Scheme == "file" {
			p = u.Path
		}
		out.Path = ptr(p)
	}
	return out
}

// immutability describes an immutable location (nil for others).
func (s *Server) immutability(name string) *api.Immutability {
	loc := s.Cfg.Storage[name]
	switch {
	case loc.AppendOnly:
		return &api.Immutability{Mode: "append_only"}
	case loc.ObjectLock != nil:
		im := &api.Immutability{Mode: "object_lock", LockMode: "governance"}
		if loc.ObjectLock.Compliance() {
			im.LockMode = "compliance"
		}
		var d time.Duration
		if s.Stores != nil {
			d, _ = s.Stores.LockPeriod(name)
		} else {
			d = loc.ObjectLock.LockPeriod(0)
		}
		im.LockPeriod, im.LockPeriodSeconds = d.String(), int64(d.Seconds())
		im.MaxLockPeriod = loc.ObjectLock.MaxPeriod
		if im.MaxLockPeriod == "" {
			im.MaxLockPeriod = config.DefaultMaxLockPeriod.String()
		}
		return im
	}
	return nil
}

func (s *Server) getStorage(w http.ResponseWriter, r *http.Request) error {
	pol, err := s.policies(r.Context())
	if err != nil {
		return err
	}
	cfg := map[string]api.StorageLocation{}
	for _, name := range s.Cfg.LocationNames() {
		lp := pol.Locations[name]
		c, at, cerr := s.capacity(r.Context(), name)
		d := api.StorageLocation{LocationAddress: s.describeLocation(name), Enabled: lp.Enabled,
			Quota: quotaText(lp.QuotaBytes), QuotaBytes: lp.QuotaBytes,
			RetentionPolicy: daysText(lp.RetentionDays), RetentionDays: lp.RetentionDays,
			Compression: "enabled", Encryption: "enabled", LastCheck: rfc3339(at), Immutability: s.immutability(name)}
		if cerr != nil {
			d.Health, d.Error = "unreachable", cerr.Error()
		} else {
			e := s.locationUsage(r.Context(), name)
			sp := &api.StorageSpace{CurrentUsage: humanSize(e.stored), CurrentUsageBytes: e.stored,
				UsageFigures: usageFields(e, lp.QuotaBytes)}
			if _, _, util, ok := usage(e, lp.QuotaBytes); ok {
				sp.Utilization = fmt.Sprintf("%.0f%%", util)
			}
			if c.TotalBytes >= 0 {
				sp.Capacity, sp.CapacityBytes = humanSize(c.TotalBytes), ptr(c.TotalBytes)
				sp.Available, sp.AvailableBytes = humanSize(c.FreeBytes), ptr(c.FreeBytes)
			}
			d.StorageSpace = sp
			d.Health = "good"
		}
		if d.StorageType == "S3" {
			d.AccessMethod = "access key"
			d.TransferAcceleration = ptr(false)
		}
		if d.StorageType == "SFTP" {
			d.Type = "SFTP"
		}
		d.CompressionLevel = lp.CompressionLevel
		if pend := pendingAddress(lp); len(pend) > 0 {
			d.PendingChanges = pend
		}
		cfg[name] = d
	}
	writeJSON(w, http.StatusOK, api.StorageConfig{
		StorageConfig: cfg,
		Primary:       s.Cfg.Primary,
		Policies:      api.StoragePolicies{Replication: pol.Replication, Encryption: pol.Encryption, Compression: pol.Compression},
		Monitoring:    pol.Monitoring,
	})
	return nil
}

func pendingAddress(lp *LocationPolicy) map[string]string {
	out := map[string]string{}
	for k, v := range map[string]string{"bucket": lp.Bucket, "region": lp.Region, "path": lp.Path, "host": lp.Host} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

func quotaText(q int64) string {
	if q <= 0 {
		return "unlimited"
	}
	return humanSize(q)
}

func (s *Server) updateStorage(w http.ResponseWriter, r *http.Request) error {
	var raw map[string]jsonRaw
	if err := decode(w, r, &raw); err != nil {
		return err
	}
	up := api.StorageUpdateRequest{Locations: map[string]api.LocationUpdate{}}
	var topMonitoring *api.MonitoringUpdate
	for k, v := range raw {
		switch {
		case k == "policies":
			up.Policies = &api.PoliciesUpdate{}
			if err := strictUnmarshal(v, up.Policies, "policies"); err != nil {
				return err
			}
		case k == "monitoring":
			topMonitoring = &api.MonitoringUpdate{}
			if err := strictUnmarshal(v, topMonitoring, "monitoring"); err != nil {
				return err
			}
		default:
			if _, ok := s.Cfg.Storage[k]; !ok {
				return badRequest(k, "%s: unknown storage location (configured: %s)", k, strings.Join(s.Cfg.LocationNames(), ", "))
			}
			var lu api.LocationUpdate
			if err := strictUnmarshal(v, &lu, k); err != nil {
				return err
			}
			up.Locations[k] = lu
		}
	}
	pol, err := s.policies(r.Context())
	if err != nil {
		return err
	}
	changes := map[string]api.Change{}
	notApplied := map[string]string{}
	restart := false
	change := func(key string, old, new any) {
		if !reflect.DeepEqual(old, new) {
			changes[key] = api.Change{Old: old, New: new}
		}
	}
	// setInt and setBool apply one optional field, recording the change
	setInt := func(key string, v *int, dst *int, lo, hi int) error {
		if v == nil {
			return nil
		}
		if *v < lo || *v > hi {
			return badRequest(key, "%s: %d is outside %d..%d", key, *v, lo, hi)
		}
		change(key, *dst, *v)
		*dst = *v
		return nil
	}
	setBool := func(key string, v *bool, dst *bool) {
		if v != nil {
			change(key, *dst, *v)
			*dst = *v
		}
	}
	for name, lu := range up.Locations {
		lp := pol.Locations[name]
		kind := locationKind(s.Cfg.Storage[name].URL)
		if lu.Enabled != nil {
			if !*lu.Enabled && name == s.Cfg.Primary {
				return badRequest(name+".enabled", "%s.enabled: the primary location cannot be disabled", name)
			}
			change(name+".enabled", lp.Enabled, *lu.Enabled)
			lp.Enabled = *lu.Enabled
		}
		if lu.Quota != nil {
			q, err := api.ParseSize(*lu.Quota)
			if err != nil {
				return badRequest(name+".quota", "%s.quota: %v", name, err)
			}
			change(name+".quota", quotaText(lp.QuotaBytes), quotaText(q))
			lp.QuotaBytes = q
		}
		if lu.RetentionPolicy != nil {
			d, err := parseDays(*lu.RetentionPolicy)
			if err != nil || d < 1 || d > 36500 {
				return badRequest(name+".retention_policy", "%s.retention_policy: %q is not a number of days in 1..36500", name, *lu.RetentionPolicy)
			}
			change(name+".retention_policy", daysText(lp.RetentionDays), daysText(d))
			lp.RetentionDays = d
		}
		if err := setInt(name+".compression_level", lu.CompressionLevel, &lp.CompressionLevel, 1, 9); err != nil {
			return err
		}
		if lu.CompressionLevel != nil {
			notApplied[name+".compression_level"] = levelNote
		}
		// a location's address lives in the configuration file: the
		// change is recorded and takes effect when the file says so and
		// the service restarts (existing backups stay where they are)
		addr := func(field string, v *string, allowed string, dst *string, cur string) error {
			if v == nil {
				return nil
			}
			if kind != allowed {
				return badRequest(name+"."+field, "%s.%s: a %s location has no %s", name, field, kind, field)
			}
			if err := validText(name+"."+field, *v, 500); err != nil || *v == "" {
				return badRequest(name+"."+field, "%s.%s: %q is not valid", name, field, *v)
			}
			old := cur
			if *dst != "" {
				old = *dst
			}
			change(name+"."+field, old, *v)
			*dst = *v
			restart = true
			return nil
		}
		d := s.describeLocation(name)
		var cur api.S3Address
		if d.S3Address != nil {
			cur = *d.S3Address
		}
		var host string
		if d.SFTPAddress != nil {
			host = d.Host
		}
		for _, e := range []error{
			addr("bucket", lu.Bucket, "s3", &lp.Bucket, cur.Bucket),
			addr("region", lu.Region, "s3", &lp.Region, cur.Region),
			addr("host", lu.Host, "sftp", &lp.Host, host),
		} {
			if e != nil {
				return e
			}
		}
		if lu.Path != nil {
			if !strings.HasPrefix(*lu.Path, "/") || strings.Contains(*lu.Path+"/", "/../") {
				return badRequest(name+".path", "%s.path: %q must be an absolute path without \"..\"", name, *lu.Path)
			}
			old := deref(d.Path)
			if lp.Path != "" {
				old = lp.Path
			}
			change(name+".path", old, *lu.Path)
			lp.Path = *lu.Path
			restart = true
		}
	}
	if p := up.Policies; p != nil {
		if rp := p.Replication; rp != nil {
			setBool("policies.replication.enabled", rp.Enabled, &pol.Replication.Enabled)
			setBool("policies.replication.auto_replicate", rp.AutoReplicate, &pol.Replication.AutoReplicate)
			if err := setInt("policies.replication.copies", rp.Copies, &pol.Replication.Copies, 1, 10); err != nil {
				return err
			}
			if err := setInt("policies.replication.offsite", rp.Offsite, &pol.Replication.Offsite, 0, 10); err != nil {
				return err
			}
		}
		if p.Encryption != nil {
			if err := setInt("policies.encryption.key_rotation_days", p.Encryption.KeyRotationDays, &pol.Encryption.KeyRotationDays, 1, 3650); err != nil {
				return err
			}
		}
		if p.Compression != nil {
			if v := p.Compression.DefaultAlgorithm; v != nil {
				if err := oneOf("policies.compression.default_algorithm", *v, compressions...); err != nil {
					return err
				}
				change("policies.compression.default_algorithm", pol.Compression.DefaultAlgorithm, *v)
				pol.Compression.DefaultAlgorithm = *v
			}
			if err := setInt("policies.compression.level", p.Compression.Level, &pol.Compression.Level, 1, 9); err != nil {
				return err
			}
			if p.Compression.Level != nil {
				notApplied["policies.compression.level"] = levelNote
			}
		}
		if p.Monitoring != nil {
			topMonitoring = p.Monitoring
		}
	}
	if m := topMonitoring; m != nil {
		warn, crit := pol.Monitoring.ThresholdWarning, pol.Monitoring.ThresholdCritical
		if m.ThresholdWarning != nil {
			warn = *m.ThresholdWarning
		}
		if m.ThresholdCritical != nil {
			crit = *m.ThresholdCritical
		}
		if warn < 1 || warn > 100 {
			return badRequest("policies.monitoring.threshold_warning", "threshold_warning: %d is outside 1..100", warn)
		}
		if crit < 1 || crit > 100 || crit <= warn {
			return badRequest("policies.monitoring.threshold_critical", "threshold_critical: %d must be in 1..100 and above threshold_warning (%d)", crit, warn)
		}
		change("policies.monitoring.threshold_warning", pol.Monitoring.ThresholdWarning, warn)
		change("policies.monitoring.threshold_critical", pol.Monitoring.ThresholdCritical, crit)
		pol.Monitoring.ThresholdWarning, pol.Monitoring.ThresholdCritical = warn, crit
		setBool("policies.monitoring.usage_alerts", m.UsageAlerts, &pol.Monitoring.UsageAlerts)
		setBool("policies.monitoring.auto_cleanup", m.AutoCleanup, &pol.Monitoring.AutoCleanup)
	}
	if err := s.Store.PutSetting(r.Context(), "policies", pol); err != nil {
		return err
	}
	s.capMu.Lock()
	s.capCache = map[string]capEntry{}
	s.capMu.Unlock()
	// new quotas or thresholds may cross a line now, not at the next check
	go s.checkStorageAlerts(context.WithoutCancel(r.Context()))
	resp := api.StorageUpdated{Status: "updated", Message: "Storage configuration updated successfully",
		RestartRequired: restart, Changes: changes, NotApplied: notApplied}
	if restart {
		resp.EstimatedRestartTime = "00:00:10"
		resp.RestartInstructions = "the new address is recorded; set it in the storage section of the configuration file and restart backupd. Existing backups stay at the old address (copy them with backupd repo copy)."
	} else {
		resp.Message = "Storage configuration updated; the changes apply now"
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// daysText is a location's retention: "60 days", or "unlimited" (the
// retention policy alone decides).
func daysText(d int) string {
	if d <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%d days", d)
}

// levelNote says why a compression level is recorded but not used.
const levelNote = "recorded, not used: backupd picks the level per blob (zstd's default level for large chunks, a stronger one for small files and trees), measured in bench/README.md; choose the algorithm per backup or schedule"
