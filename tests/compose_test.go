package tests

// docker-compose.yml cannot run here (no Docker), so this test keeps it
// honest: it parses the file and checks it against the code and settings
// it relies on — the services, loopback ports, backupd's subcommands and
// environment variables, the search attributes and dynamic config the dev
// stack uses, the S3 server version the Makefile pins, and the
// configuration file it mounts.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"backupd/config"
	temporalconfig "backupd/temporal-config"
)

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Entrypoint  []string          `yaml:"entrypoint"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		DependsOn   any               `yaml:"depends_on"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

func TestDockerComposeMatchesTheCode(t *testing.T) {
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	var names []string
	for n := range c.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	want := "backupd-server backupd-worker fleet-setup host-a host-b postgresql s3 temporal temporal-setup temporal-ui"
	if strings.Join(names, " ") != want {
		t.Fatalf("services %v, want %s", names, want)
	}
	envNames := map[string]bool{"BACKUPD_CONFIG": true}
	for _, n := range config.EnvNames() {
		envNames[n] = true
	}
	for name, s := range c.Services {
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %s beyond loopback", name, p)
			}
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, "BACKUPD_") && !envNames[k] {
				t.Errorf("%s sets %s, which backupd does not read", name, k)
			}
		}
		if s.Image != "" && !regexp.MustCompile(`:[0-9v][^:]*$`).MatchString(s.Image) {
			t.Errorf("%s: image %s is not pinned to a version", name, s.Image)
		}
		// every dependency is a service
		deps := []string{}
		switch d := s.DependsOn.(type) {
		case []any:
			for _, x := range d {
				deps = append(deps, x.(string))
			}
		case map[string]any:
			for k := range d {
				deps = append(deps, k)
			}
		}
		for _, d := range deps {
			if _, ok := c.Services[d]; !ok {
				t.Errorf("%s depends on unknown service %s", name, d)
			}
		}
		for _, v := range s.Volumes {
			if strings.HasPrefix(v, "./") {
				if _, err := os.Stat(filepath.Join("..", strings.SplitN(v, ":", 2)[0])); err != nil {
					t.Errorf("%s mounts %s, which is not in the repository", name, v)
				}
			}
		}
	}
	for name, sec := range c.Secrets {
		if _, err := os.Stat(filepath.Join("..", sec.File)); err != nil {
			t.Errorf("secret %s: %v", name, err)
		}
	}
	// backupd's halves run the subcommands that exist, on the same settings
	srv, wrk := c.Services["backupd-server"], c.Services["backupd-worker"]
	if strings.Join(srv.Command, " ") != "server" || strings.Join(wrk.Command, " ") != "worker" {
		t.Fatalf("backupd commands: %v %v", srv.Command, wrk.Command)
	}
	for _, s := range []string{"server", "worker"} {
		out, _ := exec.Command(backupdBinary(t), "help").CombinedOutput()
		if !strings.Contains(string(out), "backupd "+s+" ") {
			t.Fatalf("backupd has no %s subcommand:\n%s", s, out)
		}
	}
	for _, k := range []string{"BACKUPD_TEMPORAL_ADDRESS", "BACKUPD_CATALOG_DRIVER", "BACKUPD_CATALOG_DSN"} {
		if srv.Environment[k] == "" || srv.Environment[k] != wrk.Environment[k] {
			t.Errorf("%s differs between server (%q) and worker (%q)", k, srv.Environment[k], wrk.Environment[k])
		}
	}
	if srv.Environment["BACKUPD_CATALOG_DRIVER"] != "postgres" || !strings.HasPrefix(srv.Environment["BACKUPD_TEMPORAL_ADDRESS"], "temporal:") {
		t.Errorf("server environment: %v", srv.Environment)
	}
	// the mounted configuration loads, with the compose environment on top
	for k, v := range srv.Environment {
		if strings.HasPrefix(k, "BACKUPD_") && k != "BACKUPD_CONFIG" {
			t.Setenv(k, v)
		}
	}
	cfg, err := config.Load("../deploy/backupd.yaml")
	if err != nil {
		t.Fatalf("deploy/backupd.yaml: %v", err)
	}
	if cfg.Catalog.Driver != "postgres" || cfg.Temporal.Address != "temporal:7233" || cfg.API.Listen != "0.0.0.0:8080" {
		t.Fatalf("compose configuration: %+v", cfg)
	}
	// the fleet: fleet-setup leaves an enrolment token per host; each host
	// enrols itself with its own and keeps its own var directory
	fs := c.Services["fleet-setup"]
	if !strings.Contains(strings.Join(fs.Entrypoint, " "), "/deploy/fleet/setup.sh") {
		t.Fatalf("fleet-setup: %+v", fs)
	}
	vars := map[string]bool{}
	for _, h := range []string{"host-a", "host-b"} {
		s := c.Services[h]
		ep := strings.Join(s.Entrypoint, " ")
		if !strings.Contains(ep, "/deploy/fleet/host-worker.sh gw-") {
			t.Errorf("%s: entrypoint %q", h, ep)
		}
		for _, v := range s.Volumes {
			if strings.HasSuffix(v, ":/var/lib/backupd") {
				vars[v] = true
			}
		}
	}
	if len(vars) != 2 {
		t.Errorf("the hosts do not each have their own var directory: %v", vars)
	}
	setupSh, _ := os.ReadFile("../deploy/fleet/setup.sh")
	workerSh, _ := os.ReadFile("../deploy/fleet/host-worker.sh")
	for _, want := range []string{"token create --role admin", "host enrol-token --name", "BACKUPD_SERVER=http://backupd-server:8080"} {
		if !strings.Contains(string(setupSh), want) {
			t.Errorf("setup.sh lacks %q", want)
		}
	}
	for _, want := range []string{"worker --config /etc/backupd/host.yaml --enrol http://backupd-server:8080 --insecure-http", "BACKUPD_ENROL_TOKEN", "enrolment.json"} {
		if !strings.Contains(string(workerSh), want) {
			t.Errorf("host-worker.sh lacks %q", want)
		}
	}
	for _, sh := range []string{"setup.sh", "host-worker.sh"} {
		if out, err := exec.Command("sh", "-n", "../deploy/fleet/"+sh).CombinedOutput(); err != nil {
			t.Errorf("%s: %v %s", sh, err, out)
		}
	}
	help, _ := exec.Command(backupdBinary(t), "worker", "--help").CombinedOutput()
	for _, f := range []string{"-enrol", "-insecure-http", "-name"} {
		if !strings.Contains(string(help), f) {
			t.Errorf("backupd worker has no %s:\n%s", f, help)
		}
	}
	if hc, err := config.Load("../deploy/fleet/host.yaml"); err != nil || len(hc.Components) == 0 {
		t.Errorf("deploy/fleet/host.yaml: %v", err)
	}
	// Temporal: the search attributes come from temporal-config (the same
	// file the dev server reads) through the registration script
	setup := c.Services["temporal-setup"]
	if !strings.Contains(strings.Join(setup.Entrypoint, " "), "/temporal-config/register-search-attributes.sh") ||
		!strings.Contains(strings.Join(setup.Volumes, " "), "./temporal-config:/temporal-config") {
		t.Fatalf("temporal-setup does not register temporal-config's search attributes: %+v", setup)
	}
	script, _ := os.ReadFile("../temporal-config/register-search-attributes.sh")
	if !strings.Contains(string(script), "search-attributes.txt") || len(temporalconfig.SearchAttributes()) < 6 {
		t.Fatal("the registration script does not read search-attributes.txt")
	}
	// the production dynamic config has the dev server's settings
	var dyn map[string][]struct {
		Value any `yaml:"value"`
	}
	b, _ := os.ReadFile("../temporal-config/dynamicconfig/production.yaml")
	if err := yaml.Unmarshal(b, &dyn); err != nil {
		t.Fatal(err)
	}
	for _, kv := range temporalconfig.DynamicConfig() {
		k, v, _ := strings.Cut(kv, "=")
		if len(dyn[k]) != 1 || strings.TrimSpace(yamlScalar(dyn[k][0].Value)) != v {
			t.Errorf("dynamic config %s: dev server %s, production %v", k, v, dyn[k])
		}
	}
	if tmp := c.Services["temporal"]; tmp.Environment["DYNAMIC_CONFIG_FILE_PATH"] != "config/dynamicconfig/production.yaml" {
		t.Errorf("temporal does not load production.yaml: %v", tmp.Environment)
	}
	// the S3 server is the one the Makefile pins
	mk, _ := os.ReadFile("../Makefile")
	m := regexp.MustCompile(`VERSITYGW_VERSION := (\S+)`).FindSubmatch(mk)
	if m == nil || c.Services["s3"].Image != "versity/versitygw:"+string(m[1]) {
		t.Errorf("s3 image %s, Makefile pins %s", c.Services["s3"].Image, m)
	}
}

func yamlScalar(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}
