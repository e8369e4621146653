// Package temporalconfig holds the Temporal settings backupd's dev stack,
// tests and docker-compose.yml share: the custom search attributes and the
// dev server's dynamic config. The text files beside this one are the
// source; this package embeds them.
package temporalconfig

import (
	_ "embed"
	"strconv"
	"strings"
)

//go:embed search-attributes.txt
var searchAttributes string

//go:embed dynamic-config.txt
var dynamicConfig string

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// SearchAttributes returns NAME=TYPE lines.
func SearchAttributes() []string { return lines(searchAttributes) }

// DynamicConfig returns KEY=VALUE lines.
func DynamicConfig() []string { return lines(dynamicConfig) }

// DevServerArgs are the arguments of `temporal server start-dev` for a
// dev stack: SQLite file, loopback, the Web UI, the search attributes.
func DevServerArgs(dbFile, ip string, port, uiPort int, namespace string) []string {
	args := []string{"server", "start-dev", "--db-filename", dbFile, "--ip", ip,
		"--port", strconv.Itoa(port), "--ui-port", strconv.Itoa(uiPort), "--namespace", namespace, "--log-level", "warn"}
	for _, sa := range SearchAttributes() {
		args = append(args, "--search-attribute", sa)
	}
	for _, dc := range DynamicConfig() {
		args = append(args, "--dynamic-config-value", dc)
	}
	return args
}
