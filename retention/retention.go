// Package retention decides which backups a retention policy keeps. It
// is a pure function of the backups, the policy and the time: every kept
// backup carries the rule that kept it, every candidate the reason it may
// go, so a cleanup report can show both.
package retention

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Policy is the spec's retention model.
type Policy struct {
	Full struct {
		Daily   int `json:"daily"`
		Weekly  int `json:"weekly"`
		Monthly int `json:"monthly"`
		Yearly  int `json:"yearly"`
	} `json:"full_backups"`
	Incremental  Window `json:"incremental_backups"`
	Differential Window `json:"differential_backups"`
	Snapshots    Window `json:"snapshots"`
}

// Window keeps everything for a while, then thins out.
type Window struct {
	KeepAllForDays      int `json:"keep_all_for_days"`
	KeepDailyForWeeks   int `json:"keep_daily_for_weeks,omitempty"`
	KeepWeeklyForMonths int `json:"keep_weekly_for_months,omitempty"`
}

// Default is the spec's example policy.
func Default() Policy {
	var p Policy
	p.Full.Daily, p.Full.Weekly, p.Full.Monthly, p.Full.Yearly = 7, 4, 12, 3
	p.Incremental = Window{KeepAllForDays: 7, KeepDailyForWeeks: 4, KeepWeeklyForMonths: 3}
	p.Differential = Window{KeepAllForDays: 14, KeepWeeklyForMonths: 6}
	p.Snapshots = Window{KeepAllForDays: 2, KeepDailyForWeeks: 1}
	return p
}

// Validate checks the counts.
func (p Policy) Validate() error {
	for name, v := range map[string]int{"full_backups.daily": p.Full.Daily, "full_backups.weekly": p.Full.Weekly,
		"full_backups.monthly": p.Full.Monthly, "full_backups.yearly": p.Full.Yearly} {
		if v < 0 || v > 10000 {
			return fmt.Errorf("%s: %d is outside 0..10000", name, v)
		}
	}
	for name, w := range map[string]Window{"incremental_backups": p.Incremental, "differential_backups": p.Differential, "snapshots": p.Snapshots} {
		if w.KeepAllForDays < 0 || w.KeepDailyForWeeks < 0 || w.KeepWeeklyForMonths < 0 ||
			w.KeepAllForDays > 36500 || w.KeepDailyForWeeks > 5200 || w.KeepWeeklyForMonths > 1200 {
			return fmt.Errorf("%s: values must be in 0..36500 days / 5200 weeks / 1200 months", name)
		}
	}
	return nil
}

// Horizon is the longest the policy keeps a backup: the oldest a full
// backup its yearly (monthly, weekly, daily) rule keeps can be, or the
// longest window of the other types.
// (Counts large enough to overflow a Duration, ~292 years, give that.)
func (p Policy) Horizon() time.Duration {
	days := max(p.Full.Daily, p.Full.Weekly*7, p.Full.Monthly*31, p.Full.Yearly*366)
	for _, w := range []Window{p.Incremental, p.Differential, p.Snapshots} {
		days = max(days, w.KeepAllForDays, w.KeepDailyForWeeks*7, w.KeepWeeklyForMonths*31)
	}
	return Days(days)
}

// Days is n days as a Duration, saturating at the largest one.
func Days(n int) time.Duration {
	const day = 24 * time.Hour
	if n <= 0 {
		return 0
	}
	if int64(n) > int64(math.MaxInt64/day) {
		return math.MaxInt64
	}
	return time.Duration(n) * day
}

// Backup is what a decision needs to know about one backup.
type Backup struct {
	ID            string
	Type          string
	Status        string // completed | partial | failed | cancelled | in_progress
	Time          time.Time
	Protected     bool
	RetentionDays int
	Parent, Base  string // how it was taken (informational)
	// Requires lists the backups this one cannot be restored without.
	// In backupd's format every manifest lists its whole tree, so this is
	// empty: a parent or base is how a backup was taken, not what it
	// needs, and removing it never breaks the child (GC keeps every blob
	// the child references). The rule stays for formats with real chains.
	Requires []string
	Bytes    int64 // what removing it could free (bytes it added)
}

// Decision is the verdict on one backup.
type Decision struct {
	ID     string `json:"backup_id"`
	Keep   bool   `json:"keep"`
	Reason string `json:"reason"`
}

// Decide applies p to backups at time now. The result has one decision per
// backup, in the input's order.
func Decide(backups []Backup, p Policy, now time.Time) []Decision {
	keep := map[string]string{}
	// 1. absolute rules
	for _, b := range backups {
		switch {
		case b.Protected:
			keep[b.ID] = "protected"
		case b.Status == "in_progress":
			keep[b.ID] = "still running"
		case b.RetentionDays > 0 && now.Sub(b.Time) < time.Duration(b.RetentionDays)*24*time.Hour:
			keep[b.ID] = fmt.Sprintf("retention_days: kept %d days (until %s)", b.RetentionDays,
				b.Time.Add(time.Duration(b.RetentionDays)*24*time.Hour).UTC().Format(time.RFC3339))
		}
	}
	good := func(b Backup) bool { return b.Status == "completed" || b.Status == "partial" }
	byType := map[string][]Backup{}
	for _, b := range backups {
		if good(b) {
			byType[b.Type] = append(byType[b.Type], b)
		}
	}
	for _, list := range byType {
		sort.Slice(list, func(i, j int) bool { return list[i].Time.After(list[j].Time) }) // newest first
	}
	mark := func(id, why string) {
		if _, ok := keep[id]; !ok {
			keep[id] = why
		}
	}
	// claims: per rule, per period, the backup that rule keeps for it
	// (what supersedes the others of that period)
	type claim struct{ rule, period, id string }
	var claims []claim
	// 2. GFS for full backups: the newest in each of the last N days,
	// weeks, months, years that have one
	bucket := func(list []Backup, n int, key func(time.Time) string, label string) {
		seen := map[string]bool{}
		for _, b := range list {
			if len(seen) >= n {
				return
			}
			k := key(b.Time.UTC())
			if seen[k] {
				continue
			}
			seen[k] = true
			claims = append(claims, claim{label, k, b.ID})
			mark(b.ID, fmt.Sprintf("%s: newest full backup of %s", label, k))
		}
	}
	day := func(t time.Time) string { return t.Format("2006-01-02") }
	week := func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }
	month := func(t time.Time) string { return t.Format("2006-01") }
	year := func(t time.Time) string { return t.Format("2006") }
	full := byType["full"]
	bucket(full, p.Full.Daily, day, "full_backups.daily")
	bucket(full, p.Full.Weekly, week, "full_backups.weekly")
	bucket(full, p.Full.Monthly, month, "full_backups.monthly")
	bucket(full, p.Full.Yearly, year, "full_backups.yearly")
	// 3. windows for the other types
	window := func(list []Backup, w Window, name string) {
		dailySeen, weeklySeen := map[string]bool{}, map[string]bool{}
		for _, b := range list {
			age := now.Sub(b.Time)
			switch {
			case age < time.Duration(w.KeepAllForDays)*24*time.Hour:
				mark(b.ID, fmt.Sprintf("%s.keep_all_for_days (%d)", name, w.KeepAllForDays))
			case age < time.Duration(w.KeepDailyForWeeks)*7*24*time.Hour:
				if k := day(b.Time.UTC()); !dailySeen[k] {
					dailySeen[k] = true
					claims = append(claims, claim{name + ".keep_daily_for_weeks", k, b.ID})
					mark(b.ID, fmt.Sprintf("%s.keep_daily_for_weeks (%d): newest of %s", name, w.KeepDailyForWeeks, k))
				}
			case age < time.Duration(w.KeepWeeklyForMonths)*30*24*time.Hour:
				if k := week(b.Time.UTC()); !weeklySeen[k] {
					weeklySeen[k] = true
					claims = append(claims, claim{name + ".keep_weekly_for_months", k, b.ID})
					mark(b.ID, fmt.Sprintf("%s.keep_weekly_for_months (%d): newest of %s", name, w.KeepWeeklyForMonths, k))
				}
			}
		}
	}
	window(byType["incremental"], p.Incremental, "incremental_backups")
	window(byType["differential"], p.Differential, "differential_backups")
	window(byType["snapshot"], p.Snapshots, "snapshots")
	// 4. what a kept backup needs to be restored stays
	byID := map[string]Backup{}
	for _, b := range backups {
		byID[b.ID] = b
	}
	for changed := true; changed; {
		changed = false
		for id := range keep {
			b := byID[id]
			for _, dep := range b.Requires {
				if _, known := byID[dep]; known && dep != "" {
					if _, kept := keep[dep]; !kept {
						keep[dep] = "dependency of kept backup " + id
						changed = true
					}
				}
			}
		}
	}
	out := make([]Decision, len(backups))
	for i, b := range backups {
		if why, ok := keep[b.ID]; ok {
			out[i] = Decision{ID: b.ID, Keep: true, Reason: why}
			continue
		}
		reason := ""
		// superseded: a rule keeps a newer backup for the same period
		for _, c := range claims {
			if c.id == b.ID || byID[c.id].Type != b.Type {
				continue
			}
			if periodOf(c.rule, b.Time.UTC()) == c.period {
				reason = fmt.Sprintf("superseded by %s, the newest %s backup of %s (kept by %s)", c.id, b.Type, c.period, c.rule)
				break
			}
		}
		if reason == "" {
			reason = "older than the " + b.Type + " policy keeps (" + policyTerms(p, b.Type) + ")"
			if newest := newestKept(byType[b.Type], keep); newest != nil {
				reason += "; the newest kept " + b.Type + " backup is " + newest.ID + " of " + day(newest.Time.UTC())
			}
		}
		if !good(b) {
			reason = "a " + b.Status + " backup"
		}
		out[i] = Decision{ID: b.ID, Keep: false, Reason: reason}
	}
	return out
}

// periodOf is t's period under a rule's name (day, ISO week, month, year).
func periodOf(rule string, t time.Time) string {
	switch {
	case strings.HasSuffix(rule, ".daily"), strings.HasSuffix(rule, ".keep_daily_for_weeks"):
		return t.Format("2006-01-02")
	case strings.HasSuffix(rule, ".weekly"), strings.HasSuffix(rule, ".keep_weekly_for_months"):
		y, w := t.ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, w)
	case strings.HasSuffix(rule, ".monthly"):
		return t.Format("2006-01")
	case strings.HasSuffix(rule, ".yearly"):
		return t.Format("2006")
	}
	return ""
}

// policyTerms is a type's policy in words, for reasons.
func policyTerms(p Policy, typ string) string {
	w := map[string]Window{"incremental": p.Incremental, "differential": p.Differential, "snapshot": p.Snapshots}
	if typ == "full" {
		return fmt.Sprintf("full_backups: daily %d, weekly %d, monthly %d, yearly %d", p.Full.Daily, p.Full.Weekly, p.Full.Monthly, p.Full.Yearly)
	}
	x, ok := w[typ]
	if !ok {
		return "no rule for type " + typ
	}
	return fmt.Sprintf("all for %d days, daily for %d weeks, weekly for %d months", x.KeepAllForDays, x.KeepDailyForWeeks, x.KeepWeeklyForMonths)
}

// newestKept is the newest backup of list (newest first) that is kept.
func newestKept(list []Backup, keep map[string]string) *Backup {
	for i := range list {
		if _, ok := keep[list[i].ID]; ok {
			return &list[i]
		}
	}
	return nil
}

// CleanupRules are the spec's cleanup_rules.
// The enum, pattern and doc tags describe the API (package api reflects
// them into the OpenAPI document).
type CleanupRules struct {
	AutoCleanup               bool   `json:"auto_cleanup"`
	CleanupSchedule           string `json:"cleanup_schedule" enum:"cleanup_schedule"` // daily | weekly | disabled
	CleanupTime               string `json:"cleanup_time" pattern:"^([01][0-9]|2[0-3]):[0-5][0-9]$" doc:"HH:MM, UTC"`
	MinimumFreeSpace          string `json:"minimum_free_space" doc:"a size like 50GB"`
	EmergencyCleanupThreshold string `json:"emergency_cleanup_threshold" doc:"a size like 10GB"`
	CleanupStrategy           string `json:"cleanup_strategy" enum:"cleanup_strategy"` // oldest_first | largest_first
}

// Settings are the retention policies and cleanup rules as stored.
type Settings struct {
	Policy Policy       `json:"retention_policies"`
	Rules  CleanupRules `json:"cleanup_rules"`
}

// DefaultSettings are the spec's example values.
func DefaultSettings() Settings {
	return Settings{Policy: Default(), Rules: CleanupRules{AutoCleanup: true, CleanupSchedule: "daily",
		CleanupTime: "03:00", MinimumFreeSpace: "50GB", EmergencyCleanupThreshold: "10GB", CleanupStrategy: "oldest_first"}}
}

// Item is one backup with where it is stored.
type Item struct {
	Backup
	Locations []string
	// Group: the policy is applied to each group on its own (an enrolled
	// host's backups: one host's do not make another's go).
	Group string
}

// Line is one backup's line in a cleanup plan.
type Line struct {
	ID        string   `json:"backup_id"`
	Type      string   `json:"type"`
	Timestamp string   `json:"timestamp"`
	Decision  string   `json:"decision"` // keep | remove | would_remove | skipped
	Reason    string   `json:"reason"`
	Bytes     int64    `json:"bytes"` // what the backup added when written
	Locations []string `json:"locations"`
	// Host: the enrolled host whose backups the policy was applied to
	// (empty: the server's own).
	Host string `json:"host,omitempty"`
	// RemoveFrom lists the locations a kept backup leaves because it is
	// older than their retention (it stays in the others).
	RemoveFrom []string `json:"remove_from,omitempty"`
}

// PlanOptions shape a cleanup.
type PlanOptions struct {
	Targets  []string // locations to clean
	Strategy string   // oldest_first | largest_first: which candidates go first
	Max      int      // at most this many removals; 0: no limit
	DryRun   bool
	// Force lets per-backup retention_days lapse (protection still holds).
	Force bool
	// MaxAgeDays is each location's own retention: a backup older than it
	// leaves that location if a copy stays in another one. 0: no limit.
	MaxAgeDays map[string]int
}

// Plan decides every backup's fate for a cleanup: the policy's decision,
// then the targets, the strategy and the limit, then each location's own
// retention. It returns the lines (in the items' order), the ids to
// remove, and per location the ids to remove there (removals and
// age-outs together).
func Plan(items []Item, p Policy, now time.Time, o PlanOptions) ([]Line, []string, map[string][]string) {
	in := make([]Backup, len(items))
	for i, it := range items {
		in[i] = it.Backup
		if o.Force && !it.Protected {
			in[i].RetentionDays = 0
		}
	}
	// the policy per group, each decision in the input's place
	dec := make([]Decision, len(items))
	groups := map[string][]int{}
	for i, it := range items {
		groups[it.Group] = append(groups[it.Group], i)
	}
	for _, at := range groups {
		sub := make([]Backup, len(at))
		for j, i := range at {
			sub[j] = in[i]
		}
		for j, d := range Decide(sub, p, now) {
			dec[at[j]] = d
		}
	}
	target := map[string]bool{}
	for _, t := range o.Targets {
		target[t] = true
	}
	lines := make([]Line, len(items))
	var cands []int
	for i, d := range dec {
		it := items[i]
		locs := it.Locations
		if locs == nil {
			locs = []string{}
		}
		l := Line{ID: it.ID, Type: it.Type, Timestamp: it.Time.UTC().Format(time.RFC3339), Reason: d.Reason, Bytes: it.Bytes, Locations: locs, Host: it.Group}
		inTarget := len(locs) == 0
		for _, loc := range locs {
			inTarget = inTarget || target[loc]
		}
		switch {
		case d.Keep:
			l.Decision = "keep"
		case !inTarget:
			l.Decision, l.Reason = "skipped", "not stored in the cleaned locations"
		default:
			l.Decision = "remove"
			cands = append(cands, i)
		}
		lines[i] = l
	}
	sort.SliceStable(cands, func(a, b int) bool {
		if o.Strategy == "largest_first" {
			return lines[cands[a]].Bytes > lines[cands[b]].Bytes
		}
		return items[cands[a]].Time.Before(items[cands[b]].Time)
	})
	var ids []string
	for n, i := range cands {
		if o.Max > 0 && n >= o.Max {
			lines[i].Decision, lines[i].Reason = "skipped", fmt.Sprintf("max_backups_to_remove (%d) reached; %s", o.Max, lines[i].Reason)
			continue
		}
		if o.DryRun {
			lines[i].Decision = "would_remove"
		}
		ids = append(ids, lines[i].ID)
	}
	per := map[string][]string{}
	removed := map[string]bool{}
	for _, id := range ids {
		removed[id] = true
	}
	for i, it := range items {
		if removed[it.ID] {
			for _, loc := range it.Locations {
				if target[loc] {
					per[loc] = append(per[loc], it.ID)
				}
			}
			continue
		}
		if lines[i].Decision != "keep" || it.Protected || it.Status == "in_progress" {
			continue
		}
		// age-outs: the locations whose own retention this copy outlived,
		// as long as one copy stays (the one kept longest, if all outlived)
		age := now.Sub(it.Time)
		var out, stay []string
		for _, loc := range it.Locations {
			if d := o.MaxAgeDays[loc]; target[loc] && d > 0 && age > time.Duration(d)*24*time.Hour {
				out = append(out, loc)
			} else {
				stay = append(stay, loc)
			}
		}
		if len(stay) == 0 && len(out) > 0 {
			longest := 0
			for j, loc := range out {
				if o.MaxAgeDays[loc] > o.MaxAgeDays[out[longest]] {
					longest = j
				}
			}
			out = append(out[:longest], out[longest+1:]...)
		}
		if len(out) == 0 {
			continue
		}
		lines[i].RemoveFrom = out
		lines[i].Reason += fmt.Sprintf("; older than the retention of %v, it leaves them", out)
		for _, loc := range out {
			per[loc] = append(per[loc], it.ID)
		}
	}
	return lines, ids, per
}
