//go:build !lean

package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"backupd/config"
)

const unitDir = "../../deploy/systemd"

var units = []string{"backupd-server.service", "backupd-worker.service"}

// unitValues reads the key=value lines of a unit file's [Service]
// section (comments and other sections skipped; a key may repeat).
func unitValues(t *testing.T, name string) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(unitDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vals := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			section = l
		case section == "[Service]":
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: not key=value: %q", name, l)
			}
			vals[k] = append(vals[k], v)
		}
	}
	return vals
}

// The units start real commands with real flags: each ExecStart is
// /usr/local/bin/backupd, a command path of the command table and flags
// that command defines, and its --config names the example configuration's
// install path.
func TestSystemdUnitsStartRealCommands(t *testing.T) {
	for _, u := range units {
		v := unitValues(t, u)
		if len(v["ExecStart"]) != 1 {
			t.Fatalf("%s: %d ExecStart lines", u, len(v["ExecStart"]))
		}
		words := strings.Fields(v["ExecStart"][0])
		if words[0] != "/usr/local/bin/backupd-server" {
			t.Errorf("%s: ExecStart runs %s", u, words[0])
		}
		args := words[1:]
		i := 0
		for i < len(args) && !strings.HasPrefix(args[i], "-") {
			i++
		}
		flags, err := flagsOf(args[:i])
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		byName := map[string]bool{} // name → takes a value
		for _, f := range flags {
			bf, isBool := f.Value.(interface{ IsBoolFlag() bool })
			byName[f.Name] = !(isBool && bf.IsBoolFlag())
		}
		set := map[string]string{}
		for ; i < len(args); i++ {
			name := strings.TrimLeft(args[i], "-")
			name, val, hasVal := strings.Cut(name, "=")
			takes, ok := byName[name]
			if !ok {
				t.Errorf("%s: backupd %s has no flag %s", u, strings.Join(args, " "), args[i])
				continue
			}
			if takes && !hasVal {
				if i+1 >= len(args) {
					t.Errorf("%s: %s needs a value", u, args[i])
					break
				}
				i++
				val = args[i]
			}
			set[name] = val
		}
		if set["config"] != "/etc/backupd/backupd.yaml" {
			t.Errorf("%s: --config %q, want the documented /etc/backupd/backupd.yaml", u, set["config"])
		}
		if got := v["EnvironmentFile"]; len(got) != 1 || got[0] != "-/etc/backupd/backupd.env" {
			t.Errorf("%s: EnvironmentFile %v", u, got)
		}
	}
	// the server is unprivileged, the worker root with file capabilities only
	srv, wrk := unitValues(t, units[0]), unitValues(t, units[1])
	if srv["User"][0] != "backupd" || srv["CapabilityBoundingSet"][0] != "" || srv["ProtectSystem"][0] != "strict" {
		t.Errorf("server: User %v CapabilityBoundingSet %v ProtectSystem %v", srv["User"], srv["CapabilityBoundingSet"], srv["ProtectSystem"])
	}
	caps := strings.Fields(wrk["CapabilityBoundingSet"][0])
	for _, c := range []string{"CAP_DAC_READ_SEARCH", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_CHOWN", "CAP_FSETID", "CAP_MKNOD"} {
		if !contains(caps, c) {
			t.Errorf("worker: %s missing from CapabilityBoundingSet %v", c, caps)
		}
	}
	if len(caps) != 6 {
		t.Errorf("worker: CapabilityBoundingSet %v: a capability added needs its reason in the unit and here", caps)
	}
}

// The example configuration loads, and the example environment file names
// only variables backupd reads (or the AWS SDK's and libpq's).
func TestSystemdExamplesAreValid(t *testing.T) {
	t.Setenv("BACKUPD_VAR_DIR", "/var/lib/backupd")
	cfg, err := config.Load(filepath.Join(unitDir, "backupd.yaml.example"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PasswordFile != "/etc/backupd/repository-password" || cfg.Catalog.DSN != "/var/lib/backupd/catalog.db" {
		t.Errorf("password file %s, catalog %s", cfg.PasswordFile, cfg.Catalog.DSN)
	}
	b, err := os.ReadFile(filepath.Join(unitDir, "backupd.env.example"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"AWS_ACCESS_KEY_ID": true, "AWS_SECRET_ACCESS_KEY": true, "PGPASSFILE": true}
	for _, n := range config.EnvNames() {
		known[n] = true
	}
	names := regexp.MustCompile(`(?m)^#?([A-Z][A-Z0-9_]+)=`).FindAllStringSubmatch(string(b), -1)
	if len(names) < 5 {
		t.Fatalf("only %d variables in the example", len(names))
	}
	for _, m := range names {
		if !known[m[1]] {
			t.Errorf("backupd.env.example names %s, which nothing reads", m[1])
		}
	}
}

// systemd-analyze verify finds nothing to say about the units (it exits 0
// on unknown keys and bad values, so any output fails), and `security`
// rates their exposure no worse than when they were written.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze here (the parse tests above still run)")
	}
	root := t.TempDir()
	// an alternate root: the system's units (sysinit.target, ...), the units
	// under test, and an executable at ExecStart's path (this test binary:
	// verify checks only that it is executable; the flags are checked above)
	sysUnits := "/lib/systemd/system"
	if out, err := exec.Command("cp", "-r", sysUnits, filepath.Join(root, "usr-lib-systemd-system")).CombinedOutput(); err != nil {
		t.Skipf("cannot copy %s: %v %s", sysUnits, err, out)
	}
	os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755)
	os.Rename(filepath.Join(root, "usr-lib-systemd-system"), filepath.Join(root, "usr/lib/systemd/system"))
	os.MkdirAll(filepath.Join(root, "etc/systemd/system"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, self, filepath.Join(root, "usr/local/bin/backupd-server"), 0o755)
	var inRoot []string
	for _, u := range units {
		copyFile(t, filepath.Join(unitDir, u), filepath.Join(root, "etc/systemd/system", u), 0o644)
		inRoot = append(inRoot, "/etc/systemd/system/"+u)
	}
	out, err := exec.Command(sa, append([]string{"verify", "--root=" + root}, inRoot...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// exposure 0 (best) .. 10; measured when written: server 1.2, worker 3.3
	for u, most := range map[string]float64{units[0]: 1.5, units[1]: 3.5} {
		out, err := exec.Command(sa, "security", "--offline=yes", "--root="+root, "/etc/systemd/system/"+u).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze security %s: %v\n%s", u, err, out)
		}
		m := regexp.MustCompile(`Overall exposure level for ` + regexp.QuoteMeta(u) + `: ([0-9.]+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("no exposure level in:\n%s", out)
		}
		level, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("%s: exposure %.1f", u, level)
		if level > most {
			t.Errorf("%s: exposure %.1f, was at most %.1f: a hardening option was lost\n%s", u, level, most, out)
		}
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
