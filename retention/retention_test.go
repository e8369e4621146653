package retention

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2025, 3, 15, 12, 0, 0, 0, time.UTC)

func ago(h float64) time.Time { return now.Add(-time.Duration(h * float64(time.Hour))) }

func decide(bs []Backup, p Policy) map[string]Decision {
	out := map[string]Decision{}
	for _, d := range Decide(bs, p, now) {
		out[d.ID] = d
	}
	return out
}

func TestDecide(t *testing.T) {
	onlyFull := func(daily, weekly, monthly, yearly int) Policy {
		var p Policy
		p.Full.Daily, p.Full.Weekly, p.Full.Monthly, p.Full.Yearly = daily, weekly, monthly, yearly
		return p
	}
	cases := []struct {
		name    string
		backups []Backup
		policy  Policy
		keep    map[string]string // id -> substring of the reason; others must go
	}{
		{
			name: "daily keeps the newest full of each of the last N days that have one",
			backups: []Backup{
				{ID: "f1", Type: "full", Status: "completed", Time: ago(1)},
				{ID: "f2", Type: "full", Status: "completed", Time: ago(3)}, // same day as f1: older
				{ID: "f3", Type: "full", Status: "completed", Time: ago(25)},
				{ID: "f4", Type: "full", Status: "completed", Time: ago(49)},
			},
			policy: onlyFull(2, 0, 0, 0),
			keep:   map[string]string{"f1": "daily: newest full backup of 2025-03-15", "f3": "2025-03-14"},
		},
		{
			name: "weekly, monthly and yearly buckets",
			backups: []Backup{
				{ID: "a", Type: "full", Status: "completed", Time: time.Date(2025, 3, 14, 2, 0, 0, 0, time.UTC)},
				{ID: "b", Type: "full", Status: "completed", Time: time.Date(2025, 3, 3, 2, 0, 0, 0, time.UTC)},
				{ID: "c", Type: "full", Status: "completed", Time: time.Date(2025, 2, 10, 2, 0, 0, 0, time.UTC)},
				{ID: "d", Type: "full", Status: "completed", Time: time.Date(2024, 12, 1, 2, 0, 0, 0, time.UTC)},
				{ID: "e", Type: "full", Status: "completed", Time: time.Date(2024, 11, 1, 2, 0, 0, 0, time.UTC)},
			},
			policy: onlyFull(0, 2, 0, 2),
			keep:   map[string]string{"a": "weekly", "b": "weekly", "d": "yearly: newest full backup of 2024"},
		},
		{
			name: "protected, running and retention_days always stay",
			backups: []Backup{
				{ID: "p", Type: "full", Status: "completed", Time: ago(24 * 400), Protected: true},
				{ID: "r", Type: "incremental", Status: "in_progress", Time: ago(1)},
				{ID: "d", Type: "full", Status: "completed", Time: ago(24 * 10), RetentionDays: 30},
				{ID: "x", Type: "full", Status: "completed", Time: ago(24 * 40), RetentionDays: 30},
			},
			policy: onlyFull(0, 0, 0, 0),
			keep:   map[string]string{"p": "protected", "r": "still running", "d": "retention_days"},
		},
		{
			name: "incrementals: all for N days, then daily, then weekly",
			backups: []Backup{
				{ID: "i1", Type: "incremental", Status: "completed", Time: ago(2)},
				{ID: "i2", Type: "incremental", Status: "completed", Time: ago(3)},
				{ID: "i3", Type: "incremental", Status: "completed", Time: ago(24*3 + 1)},  // day 3: newest of that day
				{ID: "i4", Type: "incremental", Status: "completed", Time: ago(24*3 + 2)},  // same day, older: goes
				{ID: "i5", Type: "incremental", Status: "completed", Time: ago(24 * 20)},   // weekly window
				{ID: "i6", Type: "incremental", Status: "completed", Time: ago(24 * 21.5)}, // Fri of the same ISO week as i5 (Sun): older, goes
				{ID: "i7", Type: "incremental", Status: "completed", Time: ago(24 * 200)},  // beyond everything
			},
			policy: Policy{Incremental: Window{KeepAllForDays: 1, KeepDailyForWeeks: 1, KeepWeeklyForMonths: 1}},
			keep:   map[string]string{"i1": "keep_all_for_days", "i2": "keep_all_for_days", "i3": "keep_daily_for_weeks", "i5": "keep_weekly_for_months"},
		},
		{
			name: "what a kept backup requires stays, transitively",
			backups: []Backup{
				{ID: "base", Type: "full", Status: "completed", Time: ago(24 * 60)},
				{ID: "inc1", Type: "incremental", Status: "completed", Time: ago(24 * 59), Requires: []string{"base"}},
				{ID: "inc2", Type: "incremental", Status: "completed", Time: ago(1), Requires: []string{"inc1"}},
				{ID: "other", Type: "full", Status: "completed", Time: ago(24 * 61)},
			},
			policy: Policy{Incremental: Window{KeepAllForDays: 7}},
			keep:   map[string]string{"inc2": "keep_all_for_days", "inc1": "dependency of kept backup inc2", "base": "dependency of kept backup inc1"},
		},
		{
			// in backupd's format a parent is not a requirement: every
			// manifest lists its whole tree
			name: "a parent or base alone does not keep a backup",
			backups: []Backup{
				{ID: "old-full", Type: "full", Status: "completed", Time: ago(24 * 60)},
				{ID: "inc", Type: "incremental", Status: "completed", Time: ago(1), Parent: "old-full"},
				{ID: "diff", Type: "differential", Status: "completed", Time: ago(2), Base: "old-full"},
			},
			policy: Policy{Incremental: Window{KeepAllForDays: 7}, Differential: Window{KeepAllForDays: 7}},
			keep:   map[string]string{"inc": "keep_all_for_days", "diff": "keep_all_for_days"},
		},
		{
			name: "failed and cancelled backups go; they never count for a bucket",
			backups: []Backup{
				{ID: "bad", Type: "full", Status: "failed", Time: ago(1)},
				{ID: "cx", Type: "full", Status: "cancelled", Time: ago(2)},
				{ID: "ok", Type: "full", Status: "completed", Time: ago(3)},
			},
			policy: onlyFull(1, 0, 0, 0),
			keep:   map[string]string{"ok": "daily"},
		},
		{
			name: "snapshots: the default keeps two days",
			backups: []Backup{
				{ID: "s1", Type: "snapshot", Status: "completed", Time: ago(20)},
				{ID: "s2", Type: "snapshot", Status: "completed", Time: ago(24 * 30)},
			},
			policy: Default(),
			keep:   map[string]string{"s1": "snapshots.keep_all_for_days"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := decide(c.backups, c.policy)
			if len(got) != len(c.backups) {
				t.Fatalf("%d decisions for %d backups", len(got), len(c.backups))
			}
			for _, b := range c.backups {
				d := got[b.ID]
				want, keep := c.keep[b.ID]
				if d.Keep != keep {
					t.Errorf("%s: keep=%v (%s), want keep=%v", b.ID, d.Keep, d.Reason, keep)
					continue
				}
				if keep && !strings.Contains(d.Reason, want) {
					t.Errorf("%s: kept because %q, want %q", b.ID, d.Reason, want)
				}
				if !keep && d.Reason == "" {
					t.Errorf("%s: removed without a reason", b.ID)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	p := Default()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	p.Full.Daily = -1
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "full_backups.daily") {
		t.Fatalf("negative count: %v", err)
	}
}

// A kept backup leaves the locations whose own retention it outlived,
// while one copy always stays.
func TestPlanAgesOutOfLocations(t *testing.T) {
	items := []Item{
		{Backup: Backup{ID: "young", Type: "full", Status: "completed", Time: ago(24 * 10)}, Locations: []string{"local", "cloud"}},
		{Backup: Backup{ID: "mid", Type: "full", Status: "completed", Time: ago(24 * 40)}, Locations: []string{"local", "cloud"}},
		{Backup: Backup{ID: "old", Type: "full", Status: "completed", Time: ago(24 * 100)}, Locations: []string{"local", "cloud"}},
		{Backup: Backup{ID: "prot", Type: "full", Status: "completed", Time: ago(24 * 100), Protected: true}, Locations: []string{"local", "cloud"}},
	}
	var p Policy
	p.Full.Monthly = 12 // keeps all four (one per month)
	lines, ids, per := Plan(items, p, now, PlanOptions{Targets: []string{"local", "cloud"},
		MaxAgeDays: map[string]int{"local": 30, "cloud": 90}})
	if len(ids) != 0 {
		t.Fatalf("removed %v", ids)
	}
	got := map[string]string{}
	for _, l := range lines {
		got[l.ID] = strings.Join(l.RemoveFrom, ",")
	}
	// mid leaves local; old outlived both and stays where it is kept longest
	if got["young"] != "" || got["mid"] != "local" || got["old"] != "local" || got["prot"] != "" {
		t.Fatalf("age-outs: %v", got)
	}
	if strings.Join(per["local"], ",") != "mid,old" || len(per["cloud"]) != 0 {
		t.Fatalf("per location: %v", per)
	}
	// a removed backup is removed from every target location it is in
	_, ids, per = Plan(items[:2], Policy{}, now, PlanOptions{Targets: []string{"local"}})
	if strings.Join(ids, ",") != "mid,young" || strings.Join(per["local"], ",") != "young,mid" || per["cloud"] != nil {
		t.Fatalf("removal: %v %v", ids, per)
	}
}

// A month of simulated backups: a full every Sunday at 01:00, a
// differential every other day at 02:00, an incremental every hour. The
// default policy keeps exactly what its rules say.
func TestDecideOverAMonth(t *testing.T) {
	end := time.Date(2025, 3, 31, 23, 30, 0, 0, time.UTC)
	start := end.AddDate(0, 0, -31)
	var bs []Backup
	lastFull, lastAny := "", ""
	for h := start; h.Before(end); h = h.Add(time.Hour) {
		id := h.Format("2006-01-02T15")
		switch {
		case h.Weekday() == time.Sunday && h.Hour() == 1:
			bs = append(bs, Backup{ID: "full-" + id, Type: "full", Status: "completed", Time: h})
			lastFull, lastAny = "full-"+id, "full-"+id
		case h.YearDay()%2 == 0 && h.Hour() == 2 && lastFull != "":
			bs = append(bs, Backup{ID: "diff-" + id, Type: "differential", Status: "completed", Time: h, Base: lastFull})
			lastAny = "diff-" + id
		case lastAny != "":
			bs = append(bs, Backup{ID: "inc-" + id, Type: "incremental", Status: "completed", Time: h, Parent: lastAny})
			lastAny = "inc-" + id
		}
	}
	p := Default() // full 7/4/12/3; incrementals all 7 d, daily 4 w, weekly 3 m; differentials all 14 d, weekly 6 m
	dec := Decide(bs, p, end)
	kept := map[string]int{}
	reasons := map[string]int{}
	for i, d := range dec {
		if d.Keep {
			kept[bs[i].Type]++
			reasons[strings.SplitN(d.Reason, " ", 2)[0]]++
		}
	}
	// every full of the month: 5 Sundays, each the newest full of its day (daily: 7)
	if kept["full"] != 5 {
		t.Errorf("fulls kept: %d", kept["full"])
	}
	// incrementals: every one of the last 7 days (7*24 minus the hours
	// taken by fulls and differentials), then the newest of each day: 24
	// more days in the month
	all7 := 0
	for _, b := range bs {
		if b.Type == "incremental" && end.Sub(b.Time) < 7*24*time.Hour {
			all7++
		}
	}
	if kept["incremental"] < all7+20 || kept["incremental"] > all7+25 {
		t.Errorf("incrementals kept: %d (all of the last week: %d)", kept["incremental"], all7)
	}
	// differentials: all of the last 14 days (one every other day: 7),
	// then the newest of each week for 6 months
	if kept["differential"] < 9 || kept["differential"] > 11 {
		t.Errorf("differentials kept: %d", kept["differential"])
	}
	if reasons["dependency"] != 0 {
		t.Error("parents were kept as dependencies: every backup restores alone")
	}
	t.Logf("kept %v of %d; reasons %v", kept, len(bs), reasons)
}

// A removed backup's reason names what replaces it: the backup a rule
// keeps for its period, or how far the policy reaches and the newest kept
// one ("not kept by any rule of the full policy" named nothing).
func TestReasonsNameWhatSupersedes(t *testing.T) {
	var p Policy
	p.Full.Daily = 2
	d := decide([]Backup{
		{ID: "new", Type: "full", Status: "completed", Time: ago(1)},
		{ID: "same-day", Type: "full", Status: "completed", Time: ago(1.5)},
		{ID: "yesterday", Type: "full", Status: "completed", Time: ago(25)},
		{ID: "old", Type: "full", Status: "completed", Time: ago(24 * 10)},
	}, p)
	if r := d["same-day"].Reason; d["same-day"].Keep || !strings.Contains(r, "superseded by new") || !strings.Contains(r, "full_backups.daily") {
		t.Fatalf("same day: %+v", d["same-day"])
	}
	if r := d["old"].Reason; d["old"].Keep || !strings.Contains(r, "older than the full policy keeps (full_backups: daily 2") ||
		!strings.Contains(r, "newest kept full backup is new") {
		t.Fatalf("old: %+v", d["old"])
	}
}

// Each group (an enrolled host) keeps what the policy keeps of its own
// backups: many hosts' backups do not make one host's go.
func TestPlanAppliesThePolicyPerGroup(t *testing.T) {
	var items []Item
	for _, host := range []string{"gw-a", "gw-b", ""} {
		for d := 0; d < 3; d++ {
			items = append(items, Item{Backup: Backup{ID: fmt.Sprintf("%s-%d", host, d), Type: "full", Status: "completed",
				Time: ago(float64(24 * (d + 1)))}, Locations: []string{"local"}, Group: host})
		}
	}
	var p Policy
	p.Full.Daily = 2 // the newest two days of each group
	lines, ids, _ := Plan(items, p, now, PlanOptions{Targets: []string{"local"}})
	sort.Strings(ids)
	if strings.Join(ids, ",") != "-2,gw-a-2,gw-b-2" {
		t.Fatalf("removed %v", ids)
	}
	for _, l := range lines {
		if l.ID == "gw-a-0" && (l.Host != "gw-a" || l.Decision != "keep") {
			t.Fatalf("line %+v", l)
		}
	}
}

func TestHorizon(t *testing.T) {
	p := Default()
	if got := p.Horizon(); got != 3*366*24*time.Hour {
		t.Fatalf("default policy's horizon %v, want three years (yearly: 3)", got)
	}
	big := Default()
	big.Full.Yearly = 10000
	if got := big.Horizon(); got < 290*365*24*time.Hour {
		t.Fatalf("10000 yearly backups: horizon %v (overflowed)", got)
	}
	var q Policy
	q.Full.Daily = 7
	q.Incremental = Window{KeepAllForDays: 3, KeepDailyForWeeks: 2}
	if got := q.Horizon(); got != 14*24*time.Hour {
		t.Fatalf("horizon %v, want 14 days (incrementals kept daily for two weeks)", got)
	}
}
