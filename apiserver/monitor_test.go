package apiserver

import "testing"

// Trends: ±10% beyond what rounding hides; "duration: increasing" was
// reported when every duration showed as 0 s; a half without backups is
// insufficient data, not growth from zero.
func TestTrendRule(t *testing.T) {
	v := func(a *agg) float64 { return a.dur }
	one := func(x float64) *agg { return &agg{sizeN: 1, dur: x} }
	for _, c := range []struct {
		first, second *agg
		points        bool
		floor         float64
		want          string
	}{
		{one(100), one(111), false, 1, "increasing"}, {one(100), one(109), false, 1, "stable"}, {one(100), one(89), false, 1, "decreasing"},
		{one(0), one(0), false, 1, "stable"}, {one(0), one(5), false, 1, "increasing"},
		{one(0), one(0.4), false, 1, "stable"}, {one(0.2), one(0.6), false, 1, "stable"},
		{&agg{}, one(5), false, 1, "insufficient_data"}, {one(5), &agg{}, false, 1, "insufficient_data"},
		{one(98), one(100.5), true, 0, "increasing"}, {one(98), one(99), true, 0, "stable"}, {one(99), one(96), true, 0, "decreasing"},
	} {
		if got := trend(c.first, c.second, v, c.points, c.floor); got != c.want {
			t.Errorf("trend(%v, %v, %v) = %s, want %s", c.first.dur, c.second.dur, c.points, got, c.want)
		}
	}
}

func TestHumanForms(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{humanSize(45_200_000_000), "45.2 GB"}, {humanSize(999), "999 B"}, {humanSize(2_000_000_000_000), "2.0 TB"},
		{humanDuration(1530e9), "25m 30s"}, {humanDuration(45*3600e9 + 30*60e9), "45h 30m"}, {humanDuration(5e9), "5s"},
		{hms(750e9), "00:12:30"}, {humanEstimate(1800e9), "30 minutes"}, {humanEstimate(1e9), "1 second"},
		{percent(118, 120), "98.3%"}, {percent(5, 5), "100%"}, {percent(0, 0), "n/a"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
