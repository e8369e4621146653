package models

import (
	"context"
	"time"
)

// HostGrant lets one enrolled host read another's (or its own)
// repository in one location for one restore: the server added a key
// entry there wrapped to the reading host's RSA key, and its storage proxy
// serves that repository to the reader, read-only, until the grant ends
// (the restore finished) or expires.
type HostGrant struct {
	ID       string `gorm:"primaryKey;size:40"`
	Reader   string `gorm:"size:40;not null;index"` // the host that restores
	Source   string `gorm:"size:40;not null"`       // the host whose repository is read
	Location string `gorm:"size:100;not null"`
	// KeyEntry is the id of the key entry made for the reader in the
	// source repository (removed when the grant ends).
	KeyEntry  string `gorm:"size:40"`
	RestoreID string `gorm:"size:60;index"`
	BackupID  string `gorm:"size:80"`
	CreatedBy string `gorm:"size:300"`
	CreatedAt time.Time
	ExpiresAt time.Time
	EndedAt   *time.Time
}

// Live: the grant may be used now.
func (g *HostGrant) Live(now time.Time) bool { return g.EndedAt == nil && now.Before(g.ExpiresAt) }

// NewGrantID is a fresh grant id.
func NewGrantID() string { return newRowID("grant-") }

// PutGrant stores a grant.
func (s *Store) PutGrant(ctx context.Context, g *HostGrant) error {
	return s.wrote(s.DB.WithContext(ctx).Save(g).Error)
}

// GetGrant returns a grant by id.
func (s *Store) GetGrant(ctx context.Context, id string) (*HostGrant, error) {
	var g HostGrant
	if err := s.DB.WithContext(ctx).First(&g, "id = ?", id).Error; err != nil {
		return nil, notFound(err)
	}
	return &g, nil
}

// EndGrant marks a grant ended (from now on its reader is refused).
func (s *Store) EndGrant(ctx context.Context, id string) error {
	return s.wrote(s.DB.WithContext(ctx).Model(&HostGrant{}).Where("id = ? AND ended_at IS NULL", id).
		Update("ended_at", time.Now().UTC()).Error)
}

// OpenGrants are the grants not yet ended (live or expired): their key
// entries are still to be removed.
func (s *Store) OpenGrants(ctx context.Context) ([]HostGrant, error) {
	var gs []HostGrant
	err := s.DB.WithContext(ctx).Where("ended_at IS NULL").Order("created_at").Find(&gs).Error
	return gs, err
}
