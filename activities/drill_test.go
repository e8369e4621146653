package activities

import (
	"context"
	"strings"
	"testing"
	"time"

	"backupd/config"
	"backupd/models"
	"backupd/models/modelstest"
)

// The catalog plans a drill from the server's own completed backups:
// the newest per component (read from the configured locations in their
// order), a random one within the window, or the ones named; an enrolled
// host's backups are never drilled, and the RPO is measured against the
// objective.
func TestPlanDrill(t *testing.T) {
	ctx := context.Background()
	store := modelstest.Open(t, "sqlite")
	now := time.Now().UTC()
	put := func(id, host string, age time.Duration, comps []string, locs ...string) {
		if err := store.PutBackup(ctx, &models.Backup{ID: id, Type: "full", Status: "completed", Host: host,
			Timestamp: now.Add(-age), Components: comps, Locations: locs}); err != nil {
			t.Fatal(err)
		}
	}
	put("b-old", "srv", 40*24*time.Hour, []string{"data"}, "local")
	put("b-data", "srv", 2*time.Hour, []string{"data", "conf"}, "cloud", "local")
	put("b-conf", "srv", time.Hour, []string{"conf"}, "remote")
	put("b-host", "gw", time.Minute, []string{"data"}, "local") // an enrolled host's: not the server's data
	cfg := &config.Config{Host: "srv", Primary: "local",
		Components: map[string]config.Component{"data": {RPOSeconds: 3600, RTOSeconds: 60}, "conf": {RPOSeconds: 7200}, "logs": {}},
		Storage:    map[string]config.Location{"local": {URL: "/x"}, "cloud": {URL: "/y"}, "remote": {URL: "/z"}}}
	c := &Catalog{Store: store, Config: cfg}

	p, err := c.PlanDrill(ctx, DrillPlanInput{Select: "latest", Components: []string{"conf", "data"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tg := range p.Targets {
		got[tg.BackupID] = tg.Location + ":" + strings.Join(tg.Components, ",")
	}
	if len(got) != 2 || got["b-data"] != "local:data" || got["b-conf"] != "remote:conf" {
		t.Fatalf("latest: %v", got)
	}
	for _, r := range p.RPO {
		switch r.Component {
		case "data": // 2 h old against 1 h
			if !r.Breached || *r.NewestBackupID != "b-data" {
				t.Errorf("data rpo %+v", r)
			}
		case "conf": // 1 h old against 2 h
			if r.Breached || *r.NewestBackupID != "b-conf" {
				t.Errorf("conf rpo %+v", r)
			}
		}
	}
	if p.RTO["data"] != 60 || p.RTO["conf"] != 0 {
		t.Errorf("rto objectives %v", p.RTO)
	}

	// random within 30 days never draws the 40-day-old backup
	for i := 0; i < 20; i++ {
		p, err = c.PlanDrill(ctx, DrillPlanInput{Select: "random", Components: []string{"data"}, WithinDays: 30})
		if err != nil || len(p.Targets) != 1 || p.Targets[0].BackupID != "b-data" {
			t.Fatalf("random: %+v %v", p.Targets, err)
		}
	}
	// named backups, from a location that does not hold one of them
	p, err = c.PlanDrill(ctx, DrillPlanInput{Select: "backups", BackupIDs: []string{"b-old", "b-conf", "b-nope"}, Location: "local"})
	if err != nil {
		t.Fatal(err)
	}
	problems := map[string]string{}
	for _, tg := range p.Targets {
		problems[tg.BackupID] = tg.Problem
	}
	if problems["b-old"] != "" || !strings.Contains(problems["b-conf"], `"local" does not hold`) || !strings.Contains(problems["b-nope"], "no backup b-nope") {
		t.Fatalf("named: %v", problems)
	}
	// nothing to drill
	p, err = c.PlanDrill(ctx, DrillPlanInput{Select: "random", Components: []string{"conf"}, WithinDays: 1})
	if err != nil || len(p.Targets) != 1 {
		t.Fatalf("%+v %v", p, err)
	}
	p, err = c.PlanDrill(ctx, DrillPlanInput{Select: "latest", Components: []string{"logs"}})
	if err != nil || p.Problem == "" || len(p.Targets) != 0 || p.RPO[0].AgeSeconds != nil || p.RPO[0].Breached {
		t.Fatalf("nothing to drill: %+v %v", p, err)
	}
	// incremental verification: never verified first, then verified
	// longest ago; a backup verified within the window is not due
	recent, long := now.Add(-time.Hour), now.Add(-20*24*time.Hour)
	store.UpdateBackup(ctx, "b-data", map[string]any{"verified_at": long, "integrity_check": "passed"})
	store.UpdateBackup(ctx, "b-conf", map[string]any{"verified_at": recent, "integrity_check": "passed"})
	p, err = c.PlanDrill(ctx, DrillPlanInput{Select: "unverified", ReverifyAfterDays: 7, MaxBackups: 2})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, tg := range p.Targets {
		order = append(order, tg.BackupID)
		if !tg.Whole {
			t.Errorf("%s not restored whole", tg.BackupID)
		}
	}
	if strings.Join(order, ",") != "b-data,b-old" || p.Problem != "" {
		t.Errorf("unverified: %v %q", order, p.Problem) // sorted by id; b-old (never) and b-data (20 days) are due
	}
	p, err = c.PlanDrill(ctx, DrillPlanInput{Select: "unverified", ReverifyAfterDays: 7, MaxBackups: 1})
	if err != nil || len(p.Targets) != 1 || p.Targets[0].BackupID != "b-old" {
		t.Errorf("the never-verified one first: %+v %v", p.Targets, err)
	}
}
