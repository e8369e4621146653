// Package hostinfo describes the machine a backup is taken on: operating
// system, kernel and a stable hardware id. Backups record it in their
// manifests, so the catalog (and a rebuilt catalog) can show it.
package hostinfo

import (
	"bufio"
	"os"
	"strings"
)

// Info is what a backup records about its host.
type Info struct {
	Hostname      string `json:"hostname"`
	SystemVersion string `json:"system_version"`
	KernelVersion string `json:"kernel_version"`
	HardwareID    string `json:"hardware_id"`
}

// Get reads the running machine's info; fields it cannot read stay empty.
func Get() Info {
	i := Info{}
	i.Hostname, _ = os.Hostname()
	i.SystemVersion = osRelease("/etc/os-release")
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		i.KernelVersion = strings.TrimSpace(string(b))
	}
	for _, p := range []string{"/sys/class/dmi/id/product_uuid", "/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(p); err == nil {
			if s := strings.TrimSpace(string(b)); s != "" {
				i.HardwareID = s
				break
			}
		}
	}
	return i
}

func osRelease(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			vals[k] = strings.Trim(v, `"'`)
		}
	}
	if v := vals["PRETTY_NAME"]; v != "" {
		return v
	}
	return strings.TrimSpace(vals["NAME"] + " " + vals["VERSION_ID"])
}
