package models_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"backupd/models"
)

func TestEnrolmentIsSpentOnceAndMakesAHostCredential(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		plain, e, err := s.CreateEnrolment(ctx, "", map[string]string{"site": "berlin"}, "admin", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if e.Hash == plain || len(plain) < 40 {
			t.Fatalf("enrolment token %q stored as %q", plain, e.Hash)
		}
		// two hosts present the same token at once: one gets it
		var wg sync.WaitGroup
		creds := make([]string, 2)
		errs := make([]error, 2)
		for i, name := range []string{"gw-1", "gw-2"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				creds[i], errs[i] = s.Enrol(ctx, plain, &models.Host{ID: models.NewHostID(), Name: name})
			}()
		}
		wg.Wait()
		won := -1
		for i := range errs {
			if errs[i] == nil {
				if won >= 0 {
					t.Fatal("one enrolment token enrolled two hosts")
				}
				won = i
			} else if !errors.Is(errs[i], models.ErrEnrolmentInvalid) && !isBusy(errs[i]) {
				t.Fatalf("second use: %v", errs[i])
			}
		}
		if won < 0 {
			t.Fatalf("neither enrolment went through: %v", errs)
		}
		tok, err := s.Authenticate(ctx, creds[won])
		if err != nil {
			t.Fatal(err)
		}
		if tok.Role != models.RoleHost || models.RoleRank(tok.Role) >= 0 {
			t.Fatalf("host credential has role %q (rank %d): it must rank below every person's role", tok.Role, models.RoleRank(tok.Role))
		}
		h, err := s.HostOfToken(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if h.Labels["site"] != "berlin" || h.Status != models.HostActive {
			t.Fatalf("host %+v", h)
		}
		if _, err := s.Enrol(ctx, plain, &models.Host{ID: models.NewHostID(), Name: "gw-3"}); !errors.Is(err, models.ErrEnrolmentInvalid) {
			t.Fatalf("a spent token enrolled again: %v", err)
		}

		// a name already taken is refused, and the token stays unspent
		p2, _, _ := s.CreateEnrolment(ctx, h.Name, nil, "admin", time.Hour)
		if _, err := s.Enrol(ctx, p2, &models.Host{ID: models.NewHostID(), Name: "other"}); !errors.Is(err, models.ErrHostNameTaken) {
			t.Fatalf("enrolment under a taken name: %v", err)
		}
		// expired and cancelled tokens are refused
		p3, _, _ := s.CreateEnrolment(ctx, "", nil, "admin", -time.Minute)
		if _, err := s.Enrol(ctx, p3, &models.Host{ID: models.NewHostID(), Name: "late"}); !errors.Is(err, models.ErrEnrolmentInvalid) {
			t.Fatalf("expired token: %v", err)
		}
		p4, e4, _ := s.CreateEnrolment(ctx, "", nil, "admin", time.Hour)
		if err := s.CancelEnrolment(ctx, e4.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Enrol(ctx, p4, &models.Host{ID: models.NewHostID(), Name: "cancelled"}); !errors.Is(err, models.ErrEnrolmentInvalid) {
			t.Fatalf("cancelled token: %v", err)
		}

		// rotation: the old credential stops, the new one works
		cred2, _, err := s.RotateHostCredential(ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, creds[won]); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("rotated-out credential still authenticates: %v", err)
		}
		tok2, err := s.Authenticate(ctx, cred2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.HostOfToken(ctx, tok2); err != nil {
			t.Fatal(err)
		}
		if err := s.Announce(ctx, h.ID, map[string]any{"version": "1.2.3"}); err != nil {
			t.Fatal(err)
		}

		// revocation: the credential and the host are both refused
		if _, err := s.RevokeHost(ctx, h.ID, "admin"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, cred2); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("revoked host's credential authenticates: %v", err)
		}
		if _, err := s.HostOfToken(ctx, tok2); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("revoked host found by its token: %v", err)
		}
		if err := s.Announce(ctx, h.ID, map[string]any{}); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("revoked host announced: %v", err)
		}
		if _, _, err := s.RotateHostCredential(ctx, h.ID); err == nil {
			t.Fatal("a revoked host rotated its credential")
		}

		// the server's own host: registered once, never revoked
		l1, err := s.EnsureLocalHost(ctx, "server-1")
		if err != nil {
			t.Fatal(err)
		}
		l2, _ := s.EnsureLocalHost(ctx, "server-1")
		if l1.ID != l2.ID || !l1.Local {
			t.Fatalf("local host %+v then %+v", l1, l2)
		}
		if _, err := s.RevokeHost(ctx, l1.ID, "admin"); err == nil {
			t.Fatal("the server's own host was revoked")
		}
		got, err := s.GetHost(ctx, "server-1")
		if err != nil || got.ID != l1.ID {
			t.Fatalf("GetHost by name: %v %v", got, err)
		}
	})
}

// isBusy: SQLite may refuse the loser of two concurrent write
// transactions outright instead of letting it wait.
func isBusy(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "database is locked") || strings.Contains(err.Error(), "SQLITE_BUSY"))
}

// A name an admin gave a pending enrolment, or shaped like a host id,
// cannot be taken by another enrolment; lookups take an id as an id.
func TestHostNamesCannotBeSquatted(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		_, _, _ = s.CreateEnrolment(ctx, "gw-reserved", nil, "admin", time.Hour)
		other, _, _ := s.CreateEnrolment(ctx, "", nil, "admin", time.Hour)
		if _, err := s.Enrol(ctx, other, &models.Host{ID: models.NewHostID(), Name: "gw-reserved"}); !errors.Is(err, models.ErrHostNameTaken) {
			t.Fatalf("a reserved name was taken: %v", err)
		}
		first := &models.Host{ID: models.NewHostID(), Name: "gw-1"}
		if _, err := s.Enrol(ctx, other, first); err != nil {
			t.Fatal(err)
		}
		third, _, _ := s.CreateEnrolment(ctx, "", nil, "admin", time.Hour)
		if _, err := s.Enrol(ctx, third, &models.Host{ID: models.NewHostID(), Name: first.ID}); !errors.Is(err, models.ErrHostNameTaken) {
			t.Fatalf("a name shaped like a host id: %v", err)
		}
		got, err := s.GetHost(ctx, first.ID)
		if err != nil || got.Name != "gw-1" {
			t.Fatalf("by id: %v %v", got, err)
		}
	})
}

// The server's secrets are made once and read the same after.
func TestServerSecretIsMadeOnceAndKept(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		a, err := s.ServerSecret(ctx, "host-gateway")
		if err != nil || len(a) != 32 {
			t.Fatalf("%x %v", a, err)
		}
		b, err := s.ServerSecret(ctx, "host-gateway")
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("the secret changed: %x %x %v", a, b, err)
		}
		if c, _ := s.ServerSecret(ctx, "other"); bytes.Equal(a, c) {
			t.Fatal("two secrets are one")
		}
	})
}

// A host's last backup per component is kept as backups are stored and
// deleted: listing hosts reads no backups.
func TestHostLastBackupsAreKept(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		h := &models.Host{ID: "host-lastbackups", Name: "gw-l", Status: models.HostActive}
		if err := s.DB.Create(h).Error; err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		put := func(id, status string, hour int, comps ...string) {
			t.Helper()
			if err := s.PutBackup(ctx, &models.Backup{ID: id, Type: "full", Status: status, Timestamp: t0.Add(time.Duration(hour) * time.Hour),
				Components: comps, Host: "gw-l"}); err != nil {
				t.Fatal(err)
			}
		}
		last := func() string {
			h, _ := s.GetHost(ctx, "gw-l")
			m, err := s.HostLastBackups(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			return m["data"].ID + "," + m["etc"].ID
		}
		put("b1", "completed", 1, "data", "etc")
		if got := last(); got != "b1,b1" { // worked out the first time
			t.Fatalf("first: %s", got)
		}
		put("b2", "completed", 2, "data")
		put("b3", "failed", 3, "data", "etc")
		put("b0", "completed", 0, "etc") // older: not the last
		if got := last(); got != "b2,b1" {
			t.Fatalf("kept: %s", got)
		}
		if err := s.DeleteBackup(ctx, "b2"); err != nil {
			t.Fatal(err)
		}
		if got := last(); got != "b1,b1" {
			t.Fatalf("after deleting the last: %s", got)
		}
	})
}
