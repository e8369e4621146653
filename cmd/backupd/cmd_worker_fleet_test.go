//go:build !lean

package main

import (
	"strings"
	"testing"
)

func TestCutEnrol(t *testing.T) {
	for _, c := range []struct {
		args       []string
		url, token string
		rest       []string
		bad        bool
	}{
		{[]string{"--enrol", "https://s:1", "bke_t", "--name", "gw"}, "https://s:1", "bke_t", []string{"--name", "gw"}, false},
		{[]string{"--config", "c.yaml", "-enrol=https://s:1"}, "https://s:1", "", []string{"--config", "c.yaml"}, false},
		{[]string{"--enrol", "https://s:1", "--name", "gw"}, "https://s:1", "", []string{"--name", "gw"}, false},
		{[]string{"--enrol"}, "", "", nil, true},
		{[]string{"--enrol", "--name", "gw"}, "", "", nil, true},
		{[]string{"--enrol", "a", "--enrol", "b"}, "", "", nil, true},
		{[]string{"--config", "c.yaml"}, "", "", []string{"--config", "c.yaml"}, false},
	} {
		url, token, rest, err := cutEnrol(c.args)
		if (err != nil) != c.bad || url != c.url || token != c.token || strings.Join(rest, " ") != strings.Join(c.rest, " ") {
			t.Errorf("cutEnrol(%q) = %q %q %q %v", c.args, url, token, rest, err)
		}
	}
}
