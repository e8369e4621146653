package api

import "fmt"

// HumanSize is the spec's "45.2 GB" form of a byte count (decimal units,
// as in the spec's examples); answers carry the exact count beside it.
func HumanSize(b int64) string {
	if b < 0 {
		return "unknown"
	}
	units := []string{"B", "KB", "MB", "GB", "TB", "PB"}
	v := float64(b)
	i := 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", b)
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f %s", v, units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
