package api

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

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

var sizeRe = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?I?B?)\s*$`)

// ParseSize reads "2TB", "500 GB", "10GiB", "1024".
func ParseSize(s string) (int64, error) {
	m := sizeRe.FindStringSubmatch(strings.ToUpper(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size (like 500GB or 2TB)", s)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := strings.TrimSuffix(m[2], "B")
	mult := 1.0
	base := 1000.0
	if strings.HasSuffix(unit, "I") {
		base = 1024
		unit = strings.TrimSuffix(unit, "I")
	}
	switch unit {
	case "K":
		mult = base
	case "M":
		mult = base * base
	case "G":
		mult = base * base * base
	case "T":
		mult = base * base * base * base
	case "P":
		mult = base * base * base * base * base
	}
	return int64(v * mult), nil
}
