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
	// KeyRemoved: its key entry is gone from the source repository (an
	// ended grant whose entry could not be removed yet is swept again).
	KeyRemoved bool
	KeyError   string `gorm:"size:1000"`
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

// GrantKeyRemoved records that an ended grant's key entry is gone.
func (s *Store) GrantKeyRemoved(ctx context.Context, id string) error {
	return s.wrote(s.DB.WithContext(ctx).Model(&HostGrant{}).Where("id = ?", id).
		Updates(map[string]any{"key_removed": true, "key_error": ""}).Error)
}

// ReopenGrantKey records why an ended grant's key entry is still there
// (the sweep tries again) and returns that error.
func (s *Store) ReopenGrantKey(ctx context.Context, id string, cause error) error {
	msg := cause.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	s.DB.WithContext(ctx).Model(&HostGrant{}).Where("id = ?", id).Update("key_error", msg)
	return cause
}

// OpenGrants are the grants whose key entry may still be in a repository:
// not ended, or ended before their entry could be removed.
func (s *Store) OpenGrants(ctx context.Context) ([]HostGrant, error) {
	var gs []HostGrant
	err := s.DB.WithContext(ctx).Where("ended_at IS NULL OR key_removed = ?", false).Order("created_at").Find(&gs).Error
	return gs, err
}
