package apiserver

import "testing"

func TestTrendRule(t *testing.T) {
	for _, c := range []struct {
		first, second float64
		points        bool
		want          string
	}{
		{100, 111, false, "increasing"}, {100, 109, false, "stable"}, {100, 89, false, "decreasing"},
		{0, 0, false, "stable"}, {0, 5, false, "increasing"},
		{98, 100.5, true, "increasing"}, {98, 99, true, "stable"}, {99, 96, true, "decreasing"},
	} {
		if got := trend(c.first, c.second, c.points); got != c.want {
			t.Errorf("trend(%v, %v, %v) = %s, want %s", c.first, c.second, c.points, got, c.want)
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
	for in, want := range map[string]int64{"2TB": 2e12, "500 GB": 5e11, "10GiB": 10 << 30, "1024": 1024, "1.5MB": 1.5e6} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"lots", "-1GB", "1XB", ""} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}
