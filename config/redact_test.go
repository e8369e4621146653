package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// fill puts a distinct canary in every string of v (maps get one entry,
// slices one element, pointers a value) and records it under its path
// with map keys as *: "storage.*.secret_key".
func fill(v reflect.Value, path string, canaries map[string]string) {
	switch v.Kind() {
	case reflect.String:
		c := fmt.Sprintf("canary%03d", len(canaries))
		canaries[path] = c
		v.SetString(c)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "-" {
				continue // set in code, never in a file or a bundle
			}
			fill(v.Field(i), strings.TrimPrefix(path+"."+name, "."), canaries)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), path, canaries)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), path, canaries)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, path+".*", canaries)
		v.SetMapIndex(reflect.ValueOf("name"), e)
	}
}

// shown are the settings that are no secret and stay readable in a
// redacted configuration. A field added to Config that is not listed here
// must be hidden by Redact, so a new setting is either named like the
// secret it is or added here on purpose.
var shown = map[string]bool{
	"host": true, "var_dir": true, "password_file": true, "primary": true, "gc_safety_window": true,
	"repack.disabled": true, "repack.unused_percent": true, "repack.max_unused_percent": true, "repack.budget": true, "log.level": true, "log.format": true,
	"temporal.address": true, "temporal.namespace": true, "temporal.task_queue": true, "temporal.ui_url": true,
	"temporal.tls_cert": true, "temporal.tls_key": true, "temporal.tls_ca": true,
	"api.listen": true, "api.tls_cert": true, "api.tls_key": true, "api.metrics_listen": true,
	"catalog.driver": true, "catalog.dsn": true, // a DSN's password: TestRedactStringFindsSecretsInsideValues
	"components.*.description": true, "components.*.paths": true, "components.*.include": true, "components.*.exclude": true,
	"components.*.databases.name": true, "components.*.databases.kind": true, "components.*.databases.host": true,
	"components.*.databases.user": true, "components.*.databases.database": true, "components.*.databases.passfile": true,
	"storage.*.url": true, "storage.*.ssh_key": true, "storage.*.known_hosts": true, "storage.*.media": true,
	"storage.*.object_lock.mode": true, "storage.*.object_lock.period": true, "storage.*.object_lock.max_period": true, "storage.*.append_only": true,
	"notifications.webhooks.name": true, "notifications.webhooks.url": true, "notifications.webhooks.secret_file": true,
	"notifications.webhooks.events": true, "approvals.expiry": true,
	"notifications.smtp.host": true, "notifications.smtp.from": true, "notifications.smtp.to": true,
	"notifications.smtp.username": true, "notifications.smtp.password_file": true, "notifications.smtp.events": true,
}

func TestRedactHidesEverySecretField(t *testing.T) {
	var c Config
	canaries := map[string]string{}
	fill(reflect.ValueOf(&c).Elem(), "", canaries)
	before, _ := yaml.Marshal(&c)
	out, err := yaml.Marshal(Redact(&c))
	if err != nil {
		t.Fatal(err)
	}
	hidden := 0
	for path, canary := range canaries {
		appears := strings.Contains(string(out), canary)
		switch {
		case shown[path] && !appears:
			t.Errorf("%s is no secret but was hidden", path)
		case !shown[path] && appears:
			t.Errorf("%s (%s) appears in the redacted configuration", path, canary)
		case !shown[path]:
			hidden++
		}
	}
	// the secrets there are today: a database password, S3 keys, a
	// webhook's HMAC secret
	for _, p := range []string{"components.*.databases.password", "storage.*.access_key", "storage.*.secret_key", "notifications.webhooks.secret"} {
		if _, ok := canaries[p]; !ok {
			t.Errorf("no field %s: update this test", p)
		}
	}
	if hidden < 4 || strings.Count(string(out), Redacted) < hidden {
		t.Errorf("%d fields hidden, %d markers:\n%s", hidden, strings.Count(string(out), Redacted), out)
	}
	if after, _ := yaml.Marshal(&c); string(after) != string(before) {
		t.Error("Redact changed the configuration it copied")
	}
}

func TestRedactStringFindsSecretsInsideValues(t *testing.T) {
	const canary = "s3cr3t-CANARY"
	for _, in := range []string{
		"sftp://backupd:" + canary + "@host:22/srv/backups",
		"s3://bucket/prefix?endpoint=http://127.0.0.1:9000&secret_key=" + canary + "&region=us-east-1",
		"s3://bucket/prefix?access_key=AKIA&aws_secret_access_key=" + canary,
		"postgres://backupd:" + canary + "@db.example:5432/backupd?sslmode=disable",
		"host=127.0.0.1 port=5432 user=backupd password=" + canary + " dbname=backupd",
		"host=127.0.0.1 password='" + canary + " with spaces' dbname=backupd",
		"https://hooks.example/notify?token=" + canary,
		"user:" + canary + "@tcp(127.0.0.1:3306)/db", // not a URL Go parses
		"mysql://root:" + canary + "@[::1:3306/db",   // nor this
		"open s3: bad parameter in s3://b/p?endpoint=http://127.0.0.1:1&secret_key=" + canary + ": unknown",
		`{"user":"u","password":"` + canary + `"}`,
		"dial sftp backupd:" + canary + "@host: refused",
	} {
		got := RedactString(in)
		if strings.Contains(got, canary) || strings.Contains(got, "s3cr3t") {
			t.Errorf("%q → %q", in, got)
		}
	}
	for _, keep := range []string{"/var/backups/backupd", "s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1",
		"host=127.0.0.1 port=5432 user=backupd dbname=backupd", "*.[0-9]", "sftp://backupd@host:22/srv",
		"backup b-1 failed: read /srv/a=b: permission denied", `{"key":"prefix/x","token_count":0}`} {
		if got := RedactString(keep); got != keep {
			t.Errorf("%q changed to %q", keep, got)
		}
	}
	if !regexp.MustCompile(`password=` + regexp.QuoteMeta(Redacted)).MatchString(RedactString("password=x")) {
		t.Error("the marker does not say what was hidden")
	}
}
