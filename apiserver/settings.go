package apiserver

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"backupd/api"
)

// Policies are the live storage policies and monitoring thresholds
// (GET/POST /backup/storage); they are kept in the catalog.
type Policies struct {
	Replication api.ReplicationPolicy `json:"replication"`
	Encryption  api.EncryptionPolicy  `json:"encryption"`
	Compression api.CompressionPolicy `json:"compression"`
	Monitoring  api.MonitoringPolicy  `json:"monitoring"`
	// Per location: quota and retention as the operator set them.
	Locations map[string]*LocationPolicy `json:"locations"`
}

// LocationPolicy is what the API may change about a location live.
type LocationPolicy struct {
	Enabled          bool   `json:"enabled"`
	QuotaBytes       int64  `json:"quota_bytes"`
	RetentionDays    int    `json:"retention_days"`
	CompressionLevel int    `json:"compression_level,omitempty"`
	Bucket           string `json:"bucket,omitempty"`
	Region           string `json:"region,omitempty"`
	Path             string `json:"path,omitempty"`
	Host             string `json:"host,omitempty"`
}

func defaultPolicies() *Policies {
	p := &Policies{Locations: map[string]*LocationPolicy{}}
	p.Replication.Enabled, p.Replication.Strategy = true, "3-2-1"
	p.Replication.Copies, p.Replication.Locations, p.Replication.Offsite = 3, 2, 1
	p.Replication.AutoReplicate = true
	p.Encryption.DefaultAlgorithm, p.Encryption.KeyRotationDays, p.Encryption.KeyManagement = "AES-256", 90, "repository key file (passphrase-wrapped)"
	p.Compression.DefaultAlgorithm, p.Compression.Level, p.Compression.Multithreaded = "zstd", 3, true
	p.Monitoring.HealthChecks, p.Monitoring.UsageAlerts = "hourly", true
	p.Monitoring.ThresholdWarning, p.Monitoring.ThresholdCritical, p.Monitoring.AutoCleanup = 80, 95, true
	return p
}

func (s *Server) policies(ctx context.Context) (*Policies, error) {
	p := defaultPolicies()
	if _, err := s.Store.GetSetting(ctx, "policies", p); err != nil {
		return nil, err
	}
	if p.Locations == nil {
		p.Locations = map[string]*LocationPolicy{}
	}
	for name, loc := range s.Cfg.Storage {
		lp := p.Locations[name]
		if lp == nil {
			// no per-location age limit until one is set: the retention
			// policy alone decides, and copies stay everywhere
			lp = &LocationPolicy{Enabled: true, QuotaBytes: loc.QuotaBytes}
			p.Locations[name] = lp
		}
	}
	return p, nil
}

var daysRe = regexp.MustCompile(`^\s*([0-9]+)\s*(days?|d)?\s*$`)

// parseDays reads "60 days", "60d", "60".
func parseDays(s string) (int, error) {
	m := daysRe.FindStringSubmatch(strings.ToLower(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a number of days (like \"60 days\")", s)
	}
	n, _ := strconv.Atoi(m[1])
	return n, nil
}
