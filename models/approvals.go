package models

import (
	"context"
	"time"
)

// Approval is a destructive call held until a second admin approves it:
// the call as it was made (method, path, query, body) and by whom, and
// what became of it.
type Approval struct {
	ID          string `gorm:"primaryKey;size:40"`
	Action      string `gorm:"size:80"`
	Target      string `gorm:"size:500"`
	Method      string `gorm:"size:8"`
	Path        string `gorm:"size:2000"`
	RawQuery    string `gorm:"size:2000"`
	Body        []byte
	RequestedBy string `gorm:"size:300"` // actor: token name and id
	TokenID     string `gorm:"size:40"`
	Reason      string `gorm:"size:2000"`
	// Status: pending | executed | failed | rejected | expired
	Status       string    `gorm:"size:16;index"`
	CreatedAt    time.Time `gorm:"index"`
	ExpiresAt    time.Time
	DecidedBy    string `gorm:"size:300"`
	DecidedAt    *time.Time
	ResultStatus int
	Result       JSON `gorm:"type:text"`
}

// PutApproval creates or updates an approval.
func (s *Store) PutApproval(ctx context.Context, a *Approval) error {
	return s.wrote(s.DB.WithContext(ctx).Save(a).Error)
}

// GetApproval returns one approval.
func (s *Store) GetApproval(ctx context.Context, id string) (*Approval, error) {
	var a Approval
	if err := s.DB.WithContext(ctx).First(&a, "id = ?", id).Error; err != nil {
		return nil, notFound(err)
	}
	return &a, nil
}

// DecideApproval moves a pending approval to status, once: false when
// another decision came first.
func (s *Store) DecideApproval(ctx context.Context, id, status, by string, at time.Time) (bool, error) {
	res := s.DB.WithContext(ctx).Model(&Approval{}).Where("id = ? AND status = ?", id, "pending").
		Updates(map[string]any{"status": status, "decided_by": by, "decided_at": at})
	if res.Error != nil {
		return false, s.wrote(res.Error)
	}
	s.wrote(nil)
	return res.RowsAffected == 1, nil
}

// ListApprovals returns approvals newest first (status "" for all).
func (s *Store) ListApprovals(ctx context.Context, status string, limit int) ([]Approval, error) {
	var out []Approval
	q := s.DB.WithContext(ctx).Order("created_at DESC, id DESC").Limit(limit)
	if status != "" {
		q = q.Where("status = ?", status)
	}
	return out, q.Find(&out).Error
}

// SetTOTP stores a token's TOTP secret (sealed by the caller).
func (s *Store) SetTOTP(ctx context.Context, tokenID, sealed string) error {
	return s.wrote(s.DB.WithContext(ctx).Model(&Token{}).Where("id = ?", tokenID).Update("totp_secret", sealed).Error)
}

// TokenByID returns a token that is still valid (not revoked or expired).
func (s *Store) TokenByID(ctx context.Context, id string) (*Token, error) {
	var t Token
	if err := s.DB.WithContext(ctx).First(&t, "id = ?", id).Error; err != nil {
		return nil, notFound(err)
	}
	if t.Revoked || (t.ExpiresAt != nil && time.Now().After(*t.ExpiresAt)) {
		return nil, ErrNotFound
	}
	return &t, nil
}

// RequireTOTP makes a token's destructive calls need a TOTP code.
func (s *Store) RequireTOTP(ctx context.Context, tokenID string) error {
	return s.wrote(s.DB.WithContext(ctx).Model(&Token{}).Where("id = ?", tokenID).Update("require_totp", true).Error)
}
