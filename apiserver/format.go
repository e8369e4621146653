package apiserver

import (
	"backupd/api"
	"fmt"
	"math"
	"time"
)

// humanSize is the spec's "45.2 GB" form (api.HumanSize).
func humanSize(b int64) string { return api.HumanSize(b) }

// humanDuration is the spec's "25m 30s" form.
func humanDuration(d time.Duration) string {
	s := int64(math.Round(d.Seconds()))
	if s < 0 {
		s = 0
	}
	h, m, sec := s/3600, s/60%60, s%60
	switch {
	case h > 0 && sec == 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case h > 0:
		return fmt.Sprintf("%dh %dm %ds", h, m, sec)
	case m > 0:
		return fmt.Sprintf("%dm %ds", m, sec)
	}
	return fmt.Sprintf("%ds", sec)
}

// humanEstimate is the spec's "30 minutes" form of an estimate.
func humanEstimate(d time.Duration) string {
	switch {
	case d < time.Minute:
		if n := int(math.Max(1, math.Round(d.Seconds()))); n > 1 {
			return fmt.Sprintf("%d seconds", n)
		}
		return "1 second"
	case d < 90*time.Minute:
		n := int(math.Round(d.Minutes()))
		if n == 1 {
			return "1 minute"
		}
		return fmt.Sprintf("%d minutes", n)
	}
	return fmt.Sprintf("%.1f hours", d.Hours())
}

// hms is the spec's "00:12:30".
func hms(d time.Duration) string {
	s := int64(math.Round(d.Seconds()))
	if s < 0 {
		s = 0
	}
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// speed is "85 MB/s".
func speed(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "0 B/s"
	}
	return humanSize(int64(float64(bytes)/d.Seconds())) + "/s"
}

func percent(num, den int64) string {
	if den == 0 {
		return "n/a"
	}
	v := 100 * float64(num) / float64(den)
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f%%", v)
	}
	return fmt.Sprintf("%.1f%%", v)
}

// specTime is the list's "2025-03-15 02:00:00" form (UTC).
func specTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// rfc3339ptr is rfc3339 of a time that may be missing: nil (null) for
// none or the zero time.
func rfc3339ptr(t *time.Time) *string {
	if t == nil || t.IsZero() {
		return nil
	}
	v := rfc3339(*t)
	return &v
}
