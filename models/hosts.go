package models

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"backupd/api"
)

// Host is one machine whose worker runs jobs on its own task queue
// (backup@<name>): the server's own host, and every host enrolled with a
// one-time token. Its credential is a Token of role RoleHost bound to it.
type Host struct {
	ID   string `gorm:"primaryKey;size:40"`
	Name string `gorm:"size:63;not null;uniqueIndex"`
	// Local: the server's own host (its worker runs beside the API, with
	// the server's configuration); never enrolled, never revoked.
	Local      bool
	HardwareID string            `gorm:"size:200"`
	OS         string            `gorm:"size:200"`
	Version    string            `gorm:"size:100"`
	Labels     map[string]string `gorm:"type:text;serializer:json"`
	// Components: what the host's worker reported it can back up.
	Components []HostComponent `gorm:"type:text;serializer:json"`
	// Central: the files components the server configures for the host,
	// at CentralVersion (bumped by each change); AppliedVersion is the one
	// its worker last said it runs with.
	Central        map[string]CentralComponent `gorm:"type:text;serializer:json"`
	CentralVersion int                         `gorm:"not null;default:0"`
	AppliedVersion int                         `gorm:"not null;default:0"`
	// PublicKey: the RSA public key (PEM) the host made at enrolment; its
	// private half never leaves the host.
	PublicKey string `gorm:"type:text"`
	TokenID   string `gorm:"size:40;index"`
	// Repos: per storage location, the id of the host's write-only key
	// entry in its repository there (the server made both)
	Repos map[string]string `gorm:"type:text;serializer:json"`
	// Status: active | revoked
	Status     string `gorm:"size:16;not null;index"`
	EnrolledBy string `gorm:"size:300"`
	EnrolledAt time.Time
	// LastSeen: the last announcement of its worker (start and every minute)
	LastSeen *time.Time
	// QuotaSoftBytes, QuotaHardBytes: what its backups may add to
	// storage (0: no limit); past the soft one its backups warn, past the
	// hard one new backups are refused
	QuotaSoftBytes int64
	QuotaHardBytes int64
	// WrittenBytes: what the host has added to its repositories through
	// the server, counted by the server as it stores each object (what
	// the catalog says of its backups is the host's own word; this is not)
	WrittenBytes int64 `gorm:"not null;default:0"`
	// LastBackups: per component, its newest completed (or partial)
	// backup, kept as backups are stored and deleted (LastKnown: since it
	// was first worked out), so listing hosts reads no backups.
	LastBackups map[string]LastBackup `gorm:"type:text;serializer:json"`
	LastKnown   bool                  `gorm:"not null;default:false"`
	// StoppedAt: its worker said it was shutting down (cleared by its
	// next announcement)
	StoppedAt *time.Time
	RevokedAt *time.Time
	RevokedBy string `gorm:"size:300"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// HostComponent is one component a host's worker says it has.
type HostComponent struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Paths    []string `json:"paths,omitempty"`
	Source   string   `json:"source,omitempty"`
	Problems []string `json:"problems,omitempty"`
	// Databases: the component's connections, as the host reported them.
	Databases []HostDatabase `json:"databases,omitempty"`
}

// HostDatabase is one database connection of a host's component.
type HostDatabase struct {
	Label    string `json:"label"`
	Kind     string `json:"kind"`
	Database string `json:"database"`
}

// LastBackup is a component's newest good backup on a host.
type LastBackup struct {
	ID        string    `json:"id"`
	Timestamp time.Time `json:"timestamp"`
}

// CentralComponent is a files component the server configures for a host.
type CentralComponent struct {
	Description string   `json:"description,omitempty"`
	Paths       []string `json:"paths"`
	Include     []string `json:"include,omitempty"`
	Exclude     []string `json:"exclude,omitempty"`
}

// Enrolment is a one-time token that lets one new host register itself.
// Only its SHA-256 is stored.
type Enrolment struct {
	ID        string            `gorm:"primaryKey;size:40"`
	Hash      string            `gorm:"size:64;not null;uniqueIndex"`
	Name      string            `gorm:"size:63"` // the name the host gets ("": it says its own)
	Labels    map[string]string `gorm:"type:text;serializer:json"`
	CreatedBy string            `gorm:"size:300"`
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
	HostID    string `gorm:"size:40"`
	Cancelled bool
}

// SelectorMatches: a label selector is key=value pairs separated by
// commas, all of which must hold (an empty one matches every host).
func SelectorMatches(sel string, labels map[string]string) bool {
	for _, term := range strings.Split(sel, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(term), "=")
		if k == "" {
			continue
		}
		if labels[k] != v {
			return false
		}
	}
	return true
}

// ValidSelector checks a label selector's form: key=value terms,
// separated by commas, none empty.
func ValidSelector(sel string) error {
	for _, term := range strings.Split(sel, ",") {
		k, _, ok := strings.Cut(strings.TrimSpace(term), "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("label selector %q: each term is key=value (like site=berlin,role=gateway)", sel)
		}
	}
	return nil
}

// Host statuses.
const (
	HostActive  = "active"
	HostRevoked = "revoked"
)

// RoleHost is a host's credential. It is outside Roles: no route for
// people accepts it, and a host route accepts nothing else.
const RoleHost = "host"

// EnrolmentPrefix starts every enrolment token.
const EnrolmentPrefix = "bke_"

// Errors of the host registry.
var (
	ErrHostNameTaken    = errors.New("a host of that name is already enrolled")
	ErrEnrolmentInvalid = errors.New("the enrolment token is unknown, expired, cancelled or already used")
)

func newSecret(prefix string) (plain, hash string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	plain = prefix + base64.RawURLEncoding.EncodeToString(b)
	return plain, HashToken(plain)
}

func newRowID(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// CreateEnrolment makes a one-time enrolment token valid for ttl and
// returns its plaintext (shown once).
func (s *Store) CreateEnrolment(ctx context.Context, name string, labels map[string]string, createdBy string, ttl time.Duration) (string, *Enrolment, error) {
	plain, hash := newSecret(EnrolmentPrefix)
	now := time.Now().UTC()
	e := &Enrolment{ID: newRowID("enr-"), Hash: hash, Name: name, Labels: labels, CreatedBy: createdBy,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.wrote(s.DB.WithContext(ctx).Create(e).Error); err != nil {
		return "", nil, err
	}
	return plain, e, nil
}

// ListEnrolments returns the enrolment tokens, newest first.
func (s *Store) ListEnrolments(ctx context.Context) ([]Enrolment, error) {
	var out []Enrolment
	err := s.DB.WithContext(ctx).Order("created_at DESC").Find(&out).Error
	return out, err
}

// CancelEnrolment makes an unused enrolment token worthless.
func (s *Store) CancelEnrolment(ctx context.Context, id string) error {
	r := s.DB.WithContext(ctx).Model(&Enrolment{}).Where("id = ?", id).Update("cancelled", true)
	if r.Error == nil && r.RowsAffected == 0 {
		return ErrNotFound
	}
	return s.wrote(r.Error)
}

// Enrol spends an enrolment token: in one transaction it marks the token
// used, registers h (named by the enrolment when it names one; never a
// reserved name) and makes the host's credential, whose plaintext it
// returns. A token is
// spent once even when two hosts present it at the same moment.
func (s *Store) Enrol(ctx context.Context, plain string, h *Host, reserved ...string) (string, error) {
	if !strings.HasPrefix(plain, EnrolmentPrefix) || len(plain) > 200 {
		return "", ErrEnrolmentInvalid
	}
	var cred string
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var e Enrolment
		if err := tx.First(&e, "hash = ?", HashToken(plain)).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrEnrolmentInvalid
			}
			return err
		}
		now := time.Now().UTC()
		if e.Cancelled || e.UsedAt != nil || now.After(e.ExpiresAt) {
			return ErrEnrolmentInvalid
		}
		if e.Name != "" {
			h.Name = e.Name
		}
		if len(e.Labels) > 0 {
			h.Labels = e.Labels
		}
		for _, r := range reserved {
			if h.Name == r {
				return fmt.Errorf("%w: %s is the server's own host", ErrHostNameTaken, h.Name)
			}
		}
		if hostIDShape.MatchString(h.Name) {
			return fmt.Errorf("%w: %s is shaped like a host id", ErrHostNameTaken, h.Name)
		}
		var n int64
		if err := tx.Model(&Host{}).Where("name = ?", h.Name).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %s", ErrHostNameTaken, h.Name)
		}
		// a name an admin gave another, still usable enrolment is that one's
		if e.Name == "" {
			if err := tx.Model(&Enrolment{}).Where("name = ? AND used_at IS NULL AND cancelled = ? AND expires_at > ?", h.Name, false, now).
				Count(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("%w: %s is reserved for another enrolment", ErrHostNameTaken, h.Name)
			}
		}
		// the token is spent first, and only if it is still unspent
		r := tx.Model(&Enrolment{}).Where("id = ? AND used_at IS NULL AND cancelled = ?", e.ID, false).
			Updates(map[string]any{"used_at": now, "host_id": h.ID})
		if r.Error != nil {
			return r.Error
		}
		if r.RowsAffected != 1 {
			return ErrEnrolmentInvalid
		}
		var hash string
		cred, hash = newSecret(TokenPrefix)
		t := &Token{ID: newRowID("tok-"), Name: "host " + h.Name, Role: RoleHost, Hash: hash,
			CreatedBy: "enrolment " + e.ID, CreatedAt: now, HostID: h.ID}
		if err := tx.Create(t).Error; err != nil {
			return err
		}
		h.TokenID, h.Status, h.EnrolledBy, h.EnrolledAt = t.ID, HostActive, e.CreatedBy, now
		return tx.Create(h).Error
	})
	if err != nil {
		return "", s.wrote(err)
	}
	return cred, s.wrote(nil)
}

// NewHostID is a new host's id.
func NewHostID() string { return newRowID("host-") }

// EnsureLocalHost registers the server's own host under name once (the
// hosts every job defaults to); a rename of the server's host makes a new
// row, the old one keeps its history.
func (s *Store) EnsureLocalHost(ctx context.Context, name string) (*Host, error) {
	var h Host
	err := s.DB.WithContext(ctx).First(&h, "name = ?", name).Error
	if err == nil {
		return &h, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, err
	}
	h = Host{ID: NewHostID(), Name: name, Local: true, Status: HostActive, EnrolledAt: time.Now().UTC(), EnrolledBy: "server"}
	if err := s.DB.WithContext(ctx).Create(&h).Error; err != nil {
		// another server process registered it first
		if err2 := s.DB.WithContext(ctx).First(&h, "name = ?", name).Error; err2 == nil {
			return &h, nil
		}
		return nil, s.wrote(err)
	}
	return &h, s.wrote(nil)
}

// ListHosts returns the hosts, by name.
func (s *Store) ListHosts(ctx context.Context) ([]Host, error) {
	var out []Host
	err := s.DB.WithContext(ctx).Order("name").Find(&out).Error
	return out, err
}

// IsHostID reports whether s is shaped like a host id.
func IsHostID(s string) bool { return hostIDShape.MatchString(s) }

var recoverableName = regexp.MustCompile(api.HostNamePattern)

// RecoverHost records again, revoked, an enrolled host the catalog lost
// (a catalog rebuilt from storage found its repository): under h.Name
// when that is a valid host name no other host or the server has, else
// under fallback (so too when it is one of reserved, the server's own).
// Its worker's credential is gone with the old catalog: the machine is
// enrolled anew, under another name.
func (s *Store) RecoverHost(ctx context.Context, h *Host, fallback string, reserved ...string) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Host{}).Where("name = ?", h.Name).Count(&n).Error; err != nil {
			return err
		}
		if slices.Contains(reserved, h.Name) || slices.Contains(api.HostRouteWords, h.Name) {
			n++
		}
		if n > 0 || !recoverableName.MatchString(h.Name) || hostIDShape.MatchString(h.Name) {
			h.Name = fallback
		}
		h.Local, h.Status = false, HostRevoked
		now := time.Now().UTC()
		h.EnrolledAt, h.RevokedAt = now, &now
		return s.wrote(tx.Create(h).Error)
	})
}

// hostIDShape is what host ids look like; no host is named so.
var hostIDShape = regexp.MustCompile(`^host-[0-9a-f]{12}$`)

// GetHost finds a host by id, else by name.
func (s *Store) GetHost(ctx context.Context, idOrName string) (*Host, error) {
	var h Host
	if hostIDShape.MatchString(idOrName) {
		err := s.DB.WithContext(ctx).First(&h, "id = ?", idOrName).Error
		if err == nil || !errors.Is(err, gorm.ErrRecordNotFound) {
			return &h, notFound(err)
		}
	}
	if err := s.DB.WithContext(ctx).First(&h, "name = ?", idOrName).Error; err != nil {
		return nil, notFound(err)
	}
	return &h, nil
}

// HostOfToken returns the active host a host credential belongs to.
func (s *Store) HostOfToken(ctx context.Context, t *Token) (*Host, error) {
	if t.Role != RoleHost || t.HostID == "" {
		return nil, ErrNotFound
	}
	var h Host
	if err := s.DB.WithContext(ctx).First(&h, "id = ? AND token_id = ? AND status = ?", t.HostID, t.ID, HostActive).Error; err != nil {
		return nil, notFound(err)
	}
	return &h, nil
}

// SetHostCentral replaces a host's central components and bumps their
// version; the host's worker applies them at its next announcement.
func (s *Store) SetHostCentral(ctx context.Context, id string, c map[string]CentralComponent) (*Host, error) {
	r := s.DB.WithContext(ctx).Model(&Host{}).Where("id = ? AND local = ?", id, false).
		Updates(map[string]any{"central": ToJSON(c), "central_version": gorm.Expr("central_version + 1")})
	if r.Error != nil {
		return nil, s.wrote(r.Error)
	}
	if r.RowsAffected == 0 {
		return nil, ErrNotFound
	}
	return s.GetHost(ctx, id)
}

// AddHostWritten counts n more bytes the host stored through the server.
func (s *Store) AddHostWritten(ctx context.Context, id string, n int64) error {
	return s.wrote(s.DB.WithContext(ctx).Model(&Host{}).Where("id = ?", id).
		UpdateColumn("written_bytes", gorm.Expr("written_bytes + ?", n)).Error)
}

// LowerHostWritten brings a host's written bytes down to n, what a
// cleanup measured its repositories to hold (never up: copies the server
// made are not the host's writing).
func (s *Store) LowerHostWritten(ctx context.Context, id string, n int64) error {
	return s.wrote(s.DB.WithContext(ctx).Model(&Host{}).Where("id = ? AND written_bytes > ?", id, n).
		UpdateColumn("written_bytes", n).Error)
}

// Announce records what a host's worker reports, and when.
func (s *Store) Announce(ctx context.Context, id string, fields map[string]any) error {
	fields["last_seen"] = time.Now().UTC()
	r := s.DB.WithContext(ctx).Model(&Host{}).Where("id = ? AND status = ?", id, HostActive).Updates(fields)
	if r.Error == nil && r.RowsAffected == 0 {
		return ErrNotFound
	}
	return s.wrote(r.Error)
}

// RotateHostCredential replaces an active host's credential: the new
// one's plaintext is returned, the old token is revoked in the same
// transaction.
func (s *Store) RotateHostCredential(ctx context.Context, id string) (string, *Token, error) {
	var cred string
	var tok *Token
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var h Host
		if err := tx.First(&h, "id = ? AND status = ?", id, HostActive).Error; err != nil {
			return notFound(err)
		}
		if h.Local {
			return errors.New("the server's own host has no credential")
		}
		var hash string
		cred, hash = newSecret(TokenPrefix)
		tok = &Token{ID: newRowID("tok-"), Name: "host " + h.Name, Role: RoleHost, Hash: hash,
			CreatedBy: "rotation", CreatedAt: time.Now().UTC(), HostID: h.ID}
		if err := tx.Create(tok).Error; err != nil {
			return err
		}
		if err := tx.Model(&Token{}).Where("id = ?", h.TokenID).Update("revoked", true).Error; err != nil {
			return err
		}
		return tx.Model(&Host{}).Where("id = ?", h.ID).Update("token_id", tok.ID).Error
	})
	if err != nil {
		return "", nil, s.wrote(err)
	}
	return cred, tok, s.wrote(nil)
}

// RevokeHost revokes a host: its credential stops working at once and
// its worker is refused from then on. Its backups stay.
func (s *Store) RevokeHost(ctx context.Context, id, by string) (*Host, error) {
	var h Host
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.First(&h, "id = ?", id).Error; err != nil {
			return notFound(err)
		}
		if h.Local {
			return errors.New("the server's own host cannot be revoked")
		}
		if h.Status == HostRevoked {
			return nil
		}
		now := time.Now().UTC()
		if err := tx.Model(&Token{}).Where("host_id = ?", h.ID).Update("revoked", true).Error; err != nil {
			return err
		}
		h.Status, h.RevokedAt, h.RevokedBy = HostRevoked, &now, by
		return tx.Model(&Host{}).Where("id = ?", h.ID).
			Updates(map[string]any{"status": HostRevoked, "revoked_at": now, "revoked_by": by}).Error
	})
	if err != nil {
		return nil, s.wrote(err)
	}
	return &h, s.wrote(nil)
}

// HostTotals is what one host's backups hold in the catalog.
type HostTotals struct {
	Host       string
	Backups    int64
	AddedBytes int64
}

// TotalsByHost sums the backups per host (one indexed pass).
func (s *Store) TotalsByHost(ctx context.Context) (map[string]HostTotals, error) {
	var rows []HostTotals
	err := s.DB.WithContext(ctx).Model(&Backup{}).
		Select("host, COUNT(*) AS backups, COALESCE(SUM(added_bytes), 0) AS added_bytes").
		Group("host").Scan(&rows).Error
	out := make(map[string]HostTotals, len(rows))
	for _, r := range rows {
		out[r.Host] = r
	}
	return out, err
}

// goodStatuses are the backups a host's last backups are taken from.
var goodStatuses = []string{"completed", "partial"}

// noteLastBackup keeps b's host's last backups up to date with b (just
// stored): a good backup newer than a component's last becomes it.
func (s *Store) noteLastBackup(ctx context.Context, b *Backup) error {
	if b.Host == "" || !slices.Contains(goodStatuses, b.Status) {
		return nil
	}
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var h Host
		q := tx
		if tx.Dialector.Name() == "postgres" {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Select("id, last_backups, last_known").First(&h, "name = ?", b.Host).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return nil // a host the catalog does not list
			}
			return err
		}
		if !h.LastKnown {
			return nil // worked out in full when first asked for
		}
		if h.LastBackups == nil {
			h.LastBackups = map[string]LastBackup{}
		}
		changed := false
		for _, c := range b.Components {
			if cur, ok := h.LastBackups[c]; !ok || cur.ID == b.ID || b.Timestamp.After(cur.Timestamp) {
				h.LastBackups[c], changed = LastBackup{ID: b.ID, Timestamp: b.Timestamp.UTC()}, true
			}
		}
		if !changed {
			return nil
		}
		return tx.Model(&Host{}).Where("id = ?", h.ID).Update("last_backups", ToJSON(h.LastBackups)).Error
	})
}

// forgetLastBackup works a host's last backups out again when a deleted
// backup was one of them.
func (s *Store) forgetLastBackup(ctx context.Context, host, id string) error {
	var h Host
	if err := s.DB.WithContext(ctx).Select("id, name, last_backups, last_known").First(&h, "name = ?", host).Error; err != nil {
		return nil
	}
	for _, lb := range h.LastBackups {
		if lb.ID == id {
			_, err := s.HostLastBackups(ctx, &Host{ID: h.ID, Name: h.Name})
			return err
		}
	}
	return nil
}

// HostLastBackups is h's last backup per component: as kept, or worked
// out from its backups (and kept from then on).
func (s *Store) HostLastBackups(ctx context.Context, h *Host) (map[string]LastBackup, error) {
	if h.LastKnown && h.LastBackups != nil {
		return h.LastBackups, nil
	}
	rows, err := s.LastBackupsOfHost(ctx, h.Name)
	if err != nil {
		return nil, err
	}
	out := make(map[string]LastBackup, len(rows))
	for c, b := range rows {
		out[c] = LastBackup{ID: b.ID, Timestamp: b.Timestamp.UTC()}
	}
	err = s.wrote(s.DB.WithContext(ctx).Model(&Host{}).Where("id = ?", h.ID).
		Updates(map[string]any{"last_backups": ToJSON(out), "last_known": true}).Error)
	return out, err
}

// RefreshHostLastBackups works every host's last backups out again (after
// backups were written around the store: a bulk import).
func (s *Store) RefreshHostLastBackups(ctx context.Context) error {
	hosts, err := s.ListHosts(ctx)
	if err != nil {
		return err
	}
	for i := range hosts {
		hosts[i].LastKnown = false
		if _, err := s.HostLastBackups(ctx, &hosts[i]); err != nil {
			return err
		}
	}
	return nil
}

// LastBackupsOfHost returns each component's newest completed (or
// partial) backup on a host, from its last 500 backups.
func (s *Store) LastBackupsOfHost(ctx context.Context, host string) (map[string]Backup, error) {
	var rows []Backup
	err := s.DB.WithContext(ctx).Select("id, timestamp, components").
		Where("host = ? AND status IN ?", host, goodStatuses).
		Order("timestamp DESC").Limit(500).Find(&rows).Error
	out := map[string]Backup{}
	for _, b := range rows {
		for _, c := range b.Components {
			if _, seen := out[c]; !seen {
				out[c] = b
			}
		}
	}
	return out, err
}

// SetHostRepos records the host's key entries per location.
func (s *Store) SetHostRepos(ctx context.Context, id string, repos map[string]string) error {
	return s.wrote(s.DB.WithContext(ctx).Model(&Host{}).Where("id = ?", id).Update("repos", ToJSON(repos)).Error)
}

// OwnHostNames are the names the server's own backups may carry: its
// host's (under any name it had) and "" (backups from before hosts were
// recorded).
func (s *Store) OwnHostNames(ctx context.Context) ([]string, error) {
	names := []string{""}
	var local []string
	err := s.DB.WithContext(ctx).Model(&Host{}).Where("local = ?", true).Pluck("name", &local).Error
	return append(names, local...), err
}

// EnrolledHostNames are the names of the enrolled (not local) hosts,
// revoked ones included.
func (s *Store) EnrolledHostNames(ctx context.Context) (map[string]bool, error) {
	var names []string
	err := s.DB.WithContext(ctx).Model(&Host{}).Where("local = ?", false).Pluck("name", &names).Error
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, err
}

// SetHostQuota sets a host's quota (0: none).
func (s *Store) SetHostQuota(ctx context.Context, id string, soft, hard int64) error {
	r := s.DB.WithContext(ctx).Model(&Host{}).Where("id = ?", id).
		Updates(map[string]any{"quota_soft_bytes": soft, "quota_hard_bytes": hard})
	if r.Error == nil && r.RowsAffected == 0 {
		return ErrNotFound
	}
	return s.wrote(r.Error)
}
