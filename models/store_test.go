package models_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"backupd/api"
	"backupd/models"
	"backupd/models/modelstest"
)

func forEachDriver(t *testing.T, fn func(t *testing.T, s *models.Store)) {
	for _, d := range modelstest.Drivers(t) {
		t.Run(d, func(t *testing.T) { fn(t, modelstest.Open(t, d)) })
	}
}

func TestBackupsListFilterTotals(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		base := time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)
		types := []string{"full", "incremental", "incremental", "differential"}
		for i := 0; i < 40; i++ {
			st := "completed"
			if i%10 == 9 {
				st = "failed"
			}
			b := &models.Backup{ID: fmt.Sprintf("backup-%03d", i), Type: types[i%4], Status: st,
				Timestamp: base.Add(time.Duration(i) * time.Hour), SizeBytes: int64(i) * 100, CompressedBytes: int64(i) * 10,
				Components: models.Strings{"data", "logs"}, ComponentSizes: map[string]int64{"data": int64(i)}}
			if i > 0 {
				b.ParentBackup = fmt.Sprintf("backup-%03d", i-1)
			}
			if err := s.PutBackup(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		page, err := s.ListBackups(ctx, models.BackupFilter{Limit: 5, Page: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 5 || page[0].ID != "backup-034" || page[4].ID != "backup-030" {
			t.Fatalf("page 2: %v", ids(page))
		}
		if page[0].ComponentSizes["data"] != 34 || len(page[0].Components) != 2 {
			t.Fatalf("json columns: %+v", page[0])
		}
		since := base.Add(10 * time.Hour)
		until := base.Add(19 * time.Hour)
		f := models.BackupFilter{Type: "incremental", Since: &since, Until: &until}
		tot, err := s.BackupTotals(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		// hours 10..19 with i%4 in {1,2}: 10,13,14,17,18
		if tot.Total != 5 || tot.ByType["incremental"] != 5 || tot.SizeBytes != (10+13+14+17+18)*100 {
			t.Fatalf("totals: %+v", tot)
		}
		all, _ := s.BackupTotals(ctx, models.BackupFilter{})
		if all.Total != 40 || all.ByType["full"] != 10 || all.CompressedBytes != 7800 {
			t.Fatalf("all totals: %+v", all)
		}
		failed, _ := s.ListBackups(ctx, models.BackupFilter{Status: "failed"})
		if len(failed) != 4 {
			t.Fatalf("failed: %v", ids(failed))
		}
		kids, _ := s.ChildBackups(ctx, "backup-005")
		if len(kids) != 1 || kids[0] != "backup-006" {
			t.Fatalf("children: %v", kids)
		}
		lb, err := s.LatestBackup(ctx, nil, []string{"data", "logs"}, "completed", "full")
		if err != nil || lb.ID != "backup-036" {
			t.Fatalf("latest full: %v %v", lb, err)
		}
		if _, err := s.GetBackup(ctx, "nope"); err != models.ErrNotFound {
			t.Fatalf("missing: %v", err)
		}
		if err := s.UpdateBackup(ctx, "nope", map[string]any{"status": "x"}); err != models.ErrNotFound {
			t.Fatalf("update missing: %v", err)
		}
	})
}

func ids(bs []models.Backup) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func TestTokens(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		if _, _, err := s.CreateToken(ctx, "x", "root", "", 0); err == nil {
			t.Fatal("unknown role accepted")
		}
		plain, tok, err := s.CreateToken(ctx, "ops", "operator", "test", 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Authenticate(ctx, plain)
		if err != nil || got.ID != tok.ID || got.Role != "operator" {
			t.Fatalf("auth: %+v %v", got, err)
		}
		for _, bad := range []string{"", plain + "x", "bkd_", plain[:len(plain)-1]} {
			if _, err := s.Authenticate(ctx, bad); err == nil {
				t.Fatalf("token %q accepted", bad)
			}
		}
		list, _ := s.ListTokens(ctx)
		for _, l := range list {
			if l.Hash == plain {
				t.Fatal("plaintext stored")
			}
		}
		if err := s.RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, plain); err == nil {
			t.Fatal("revoked token accepted")
		}
		p2, _, _ := s.CreateToken(ctx, "short", "viewer", "", time.Nanosecond)
		time.Sleep(time.Millisecond)
		if _, err := s.Authenticate(ctx, p2); err == nil {
			t.Fatal("expired token accepted")
		}
	})
}

func TestJobsReportsSettingsAudit(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		for i, st := range []string{"running", "completed", "failed", "queued"} {
			j := &models.Job{ID: fmt.Sprintf("J-%d", i), Type: "backup", Status: st, Started: now.Add(time.Duration(i) * time.Second),
				Request: models.ToJSON(map[string]int{"i": i})}
			if err := s.PutJob(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
		dup := &models.Job{ID: "J-0", Type: "backup", Status: "completed", Started: now}
		if err := s.CreateJobIfMissing(ctx, dup); err != nil {
			t.Fatal(err)
		}
		j0, _ := s.GetJob(ctx, "J-0")
		if j0.Status != "running" {
			t.Fatalf("CreateJobIfMissing overwrote: %s", j0.Status)
		}
		var req map[string]int
		if err := j0.Request.Decode(&req); err != nil || req["i"] != 0 {
			t.Fatalf("request: %v %v", req, err)
		}
		js, _ := s.ListJobs(ctx, models.JobFilter{Statuses: []string{"running", "queued"}})
		if len(js) != 2 || js[0].ID != "J-3" {
			t.Fatalf("jobs: %+v", js)
		}
		c, _ := s.JobCounts(ctx, nil)
		if c["failed"] != 1 || c["running"] != 1 {
			t.Fatalf("counts %v", c)
		}
		if err := s.PutReport(ctx, &models.Report{ID: "VERIFY-1", Kind: "verify", Body: models.ToJSON(map[string]bool{"passed": true})}); err != nil {
			t.Fatal(err)
		}
		r, err := s.GetReport(ctx, "VERIFY-1")
		if err != nil || string(r.Body) != `{"passed":true}` {
			t.Fatalf("report %v %v", r, err)
		}
		var v struct{ A int }
		if ok, err := s.GetSetting(ctx, "policies", &v); ok || err != nil {
			t.Fatal("absent setting found")
		}
		s.PutSetting(ctx, "policies", struct{ A int }{7})
		if ok, _ := s.GetSetting(ctx, "policies", &v); !ok || v.A != 7 {
			t.Fatal("setting lost")
		}
		for i := 0; i < 3; i++ {
			s.Audit(ctx, &models.AuditEntry{Actor: "ops", Action: fmt.Sprint("a", i), Outcome: "success"})
		}
		es, total, err := s.ListAudit(ctx, models.AuditFilter{Limit: 2})
		if err != nil || total != 3 || len(es) != 2 || es[0].Action != "a2" {
			t.Fatalf("audit %+v %d %v", es, total, err)
		}
	})
}

// Before added_bytes, compressed_bytes held what a backup added after
// deduplication; the migration moves it, once (a later backup that added
// nothing keeps its 0).
func TestMigrationMovesAddedBytes(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		if err := s.DB.Migrator().DropColumn(&models.Backup{}, "AddedBytes"); err != nil {
			t.Fatal(err)
		}
		if err := s.DB.Exec("INSERT INTO backups (id, type, status, timestamp, size_bytes, compressed_bytes) VALUES ('backup-old', 'full', 'completed', ?, 1000, 400)", time.Now().UTC()).Error; err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(); err != nil {
			t.Fatal(err)
		}
		if b, err := s.GetBackup(ctx, "backup-old"); err != nil || b.AddedBytes != 400 {
			t.Fatalf("old row after migration: %+v %v", b, err)
		}
		if err := s.PutBackup(ctx, &models.Backup{ID: "backup-new", Type: "incremental", Status: "completed", Timestamp: time.Now().UTC(),
			SizeBytes: 1000, CompressedBytes: 400, AddedBytes: 0}); err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(); err != nil {
			t.Fatal(err)
		}
		if b, err := s.GetBackup(ctx, "backup-new"); err != nil || b.AddedBytes != 0 {
			t.Fatalf("a backup that added nothing after a second start: %+v %v", b, err)
		}
	})
}

// CountJobs counts what ListJobs pages through, under the same filter.
func TestCountJobsMatchesTheList(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		for i, st := range []string{"running", "completed", "completed", "failed", "queued"} {
			typ := api.JobBackup
			if i%2 == 1 {
				typ = api.JobRestore
			}
			if err := s.PutJob(ctx, &models.Job{ID: fmt.Sprintf("J-%d", i), Type: typ, Status: st, Started: now.Add(time.Duration(i) * time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []models.JobFilter{{}, {Type: api.JobBackup}, {Statuses: []string{"completed"}}, {Type: api.JobRestore, Statuses: []string{"completed", "failed"}}} {
			f.Limit = 1000
			list, err := s.ListJobs(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			n, err := s.CountJobs(ctx, models.JobFilter{Type: f.Type, Statuses: f.Statuses, Limit: 1, Page: 3})
			if err != nil || n != int64(len(list)) {
				t.Errorf("filter %+v: count %d, list %d (%v)", f, n, len(list), err)
			}
		}
	})
}

// The newest completed backup holding a component, found by one query:
// a name is matched whole (my_db is not myXdb, data is not data2), and a
// failed backup does not count.
func TestNewestWithComponent(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		base := time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)
		for i, b := range []models.Backup{
			{ID: "b1", Status: "completed", Components: models.Strings{"data", "my_db"}},
			{ID: "b2", Status: "completed", Components: models.Strings{"data2", "myXdb", `we"ird\%`}},
			{ID: "b3", Status: "failed", Components: models.Strings{"data", "my_db"}},
		} {
			b.Type, b.Timestamp = "full", base.Add(time.Duration(i)*time.Hour)
			if err := s.PutBackup(ctx, &b); err != nil {
				t.Fatal(err)
			}
		}
		for comp, want := range map[string]string{"data": "b1", "my_db": "b1", "myXdb": "b2", `we"ird\%`: "b2", "logs": "", "dat": ""} {
			b, err := s.NewestWithComponent(ctx, nil, "completed", comp)
			got := ""
			if err == nil {
				got = b.ID
			} else if err != models.ErrNotFound {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: %q, want %q", comp, got, want)
			}
		}
	})
}

func TestParentCandidates(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		base := time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)
		put := func(id, typ, status string, hour int, comps, locs, missing []string) {
			t.Helper()
			b := &models.Backup{ID: id, Type: typ, Status: status, Timestamp: base.Add(time.Duration(hour) * time.Hour),
				Components: comps, Locations: locs, MissingFrom: missing}
			if err := s.PutBackup(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		dl := []string{"data", "logs"}
		put("b-full-old", "full", "completed", 1, dl, []string{"local", "cloud"}, nil)
		put("b-incr", "incremental", "completed", 2, dl, []string{"local"}, nil)
		put("b-full", "full", "completed", 3, dl, []string{"local", "cloud"}, nil)
		put("b-failed", "incremental", "failed", 4, dl, []string{"local"}, nil)
		put("b-cloud-only", "incremental", "completed", 5, dl, []string{"cloud"}, nil)
		put("b-gone", "incremental", "completed", 6, dl, []string{"local"}, []string{"local"})
		put("b-data", "incremental", "completed", 7, []string{"data"}, []string{"local"}, nil)
		// components given in any order
		got, err := s.ParentCandidates(ctx, nil, []string{"logs", "data"}, "local", 3)
		if err != nil || fmt.Sprint(got) != "[b-full b-incr b-full-old]" {
			t.Fatalf("any type: %v %v", got, err)
		}
		got, _ = s.ParentCandidates(ctx, nil, dl, "local", 3, "full")
		if fmt.Sprint(got) != "[b-full b-full-old]" {
			t.Fatalf("full only: %v", got)
		}
		got, _ = s.ParentCandidates(ctx, nil, dl, "cloud", 1)
		if fmt.Sprint(got) != "[b-cloud-only]" {
			t.Fatalf("cloud: %v", got)
		}
		if got, _ = s.ParentCandidates(ctx, nil, []string{"system"}, "local", 3); len(got) != 0 {
			t.Fatalf("other components: %v", got)
		}
		// an enrolled host's backups are candidates for its own backups
		// alone, and the server's never include them
		b := &models.Backup{ID: "b-gw", Type: "full", Status: "completed", Timestamp: base.Add(9 * time.Hour),
			Components: dl, Locations: []string{"local"}, Host: "gw-a"}
		if err := s.PutBackup(ctx, b); err != nil {
			t.Fatal(err)
		}
		if got, _ = s.ParentCandidates(ctx, []string{"", "srv"}, dl, "local", 1); fmt.Sprint(got) != "[b-full]" {
			t.Fatalf("the server's own: %v", got)
		}
		if got, _ = s.ParentCandidates(ctx, []string{"gw-a"}, dl, "local", 3); fmt.Sprint(got) != "[b-gw]" {
			t.Fatalf("gw-a's: %v", got)
		}
	})
}
