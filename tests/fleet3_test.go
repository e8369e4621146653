package tests

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"backupd/storage/s3"
)

// TestFleetThreeHosts is the fleet as the issue words it: three worker
// processes on one machine, each a host of its own (var directory, task
// queue, data); a schedule for two of them by label fires for both; a
// backup of a host whose worker is down waits and runs when it returns; a
// restore of one host's backup on another is byte for byte; a revoked
// host's worker is refused.
func TestFleetThreeHosts(t *testing.T) {
	s, certFile := startTLSStack(t)
	const v1 = "/cloud-integration/backup"
	var pin string
	enrol := func(name, label string) *fleetHost {
		r := s.cliOK(t, "admin", "host", "enrol-token", "--name", name, "--label", label, "--ca-file", certFile)
		if fp := regexp.MustCompile(`--server-fingerprint (sha256:[0-9a-f]{64})`).FindStringSubmatch(r.stderr); fp != nil {
			pin = fp[1]
		}
		h := newFleetHost(t, s, name)
		os.WriteFile(filepath.Join(h.dir, "data", "unique.bin"), bytes.Repeat([]byte(name), 40000), 0o644)
		h.start(s.bin, []string{"BACKUPD_ENROL_TOKEN=" + strings.TrimSpace(r.stdout)}, "--enrol", s.base, "--server-fingerprint", pin)
		return h
	}
	a, b, c := enrol("gw-a", "site=berlin"), enrol("gw-b", "site=berlin"), enrol("gw-c", "site=paris")
	waitFor(t, 60*time.Second, "three hosts online", func() bool {
		l := s.must(200, "GET", v1+"/hosts?state=online", "viewer", nil)
		return get(l, "total") == 4.0 // and the server's own
	})

	// a schedule for the hosts labelled site=berlin, run now: one run
	// each for gw-a and gw-b, none for gw-c
	sv := s.must(200, "POST", v1+"/schedules", "operator", map[string]any{"id": "berlin-nightly", "frequency": "daily", "time": "03:00",
		"components": map[string]bool{"data": true}, "storage_locations": []string{"local"}, "host_selector": "site=berlin"})
	if sv["status"] != "created" {
		t.Fatalf("schedule: %v", sv)
	}
	if st, body := s.do("POST", v1+"/schedules", "operator", map[string]any{"id": "bad", "frequency": "daily", "time": "03:00",
		"components": map[string]bool{"nope": true}, "host_selector": "site=berlin"}); st != 400 || !strings.Contains(jsonText(body), "they report: data") {
		t.Fatalf("a component the hosts lack: %d %v", st, body)
	}
	s.must(200, "POST", v1+"/schedules/berlin-nightly/trigger", "operator", nil)
	scheduled := map[string]string{}
	waitFor(t, 90*time.Second, "the schedule's runs on gw-a and gw-b", func() bool {
		for _, h := range []string{"gw-a", "gw-b"} {
			l := s.must(200, "GET", v1+"/list?host="+h, "viewer", nil)
			for _, bk := range l["backups"].([]any) {
				if m := bk.(map[string]any); m["status"] == "completed" {
					scheduled[h] = m["id"].(string)
				}
			}
		}
		return len(scheduled) == 2
	})
	if l := s.must(200, "GET", v1+"/list?host=gw-c", "viewer", nil); get(l, "pagination.total") != 0.0 {
		t.Fatalf("the berlin schedule backed up gw-c: %v", l)
	}
	sl := s.must(200, "GET", v1+"/schedules", "viewer", nil)
	if !strings.Contains(jsonText(sl), `"host_selector":"site=berlin"`) {
		t.Fatalf("schedules: %v", sl)
	}

	// gw-a's worker is down: its backup waits, and runs when it returns
	a.stop()
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"host": "gw-a", "components": map[string]bool{"data": true}, "storage_locations": []string{"local"}})
	time.Sleep(2 * time.Second)
	if pr := s.must(200, "GET", v1+"/progress?job_id="+cr["job_id"].(string), "viewer", nil); pr["status"] != "queued" || !strings.Contains(jsonText(pr), "host gw-a is offline") {
		t.Fatalf("a backup of an offline host: %v", pr)
	}
	a.start(s.bin, nil)
	if pr := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string)); pr["status"] != "completed" {
		t.Fatalf("gw-a's backup after its worker returned: %v\n%s", pr, a.output())
	}

	// gw-a's scheduled backup restored on gw-c (gw-a's replacement)
	target := filepath.Join(c.dir, "from-gw-a")
	rr := s.must(200, "POST", v1+"/restore", "admin", map[string]any{"backup_id": scheduled["gw-a"], "host": "gw-c", "target_location": target,
		"verify_after_restore": true})
	if pr := s.waitJob(t, v1+"/restore/progress?job_id="+rr["job_id"].(string)); pr["status"] != "completed" {
		t.Fatalf("gw-a's backup restored on gw-c: %v\n%s", pr, c.output())
	}
	for _, f := range []string{"hello.txt", "unique.bin"} {
		want, _ := os.ReadFile(filepath.Join(a.dir, "data", f))
		got, err := os.ReadFile(filepath.Join(target, "data", a.dir, "data", f))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s restored on gw-c: %d bytes %v, want %d", f, len(got), err, len(want))
		}
	}
	if js := s.must(200, "GET", v1+"/jobs?host=gw-c", "viewer", nil); !strings.Contains(jsonText(js), rr["job_id"].(string)) {
		t.Fatalf("gw-c's jobs do not show the restore: %v", js)
	}

	// gw-c's components configured centrally: its worker applies them at
	// its next announcement, reports what it finds, and backs them up
	conf := filepath.Join(c.dir, "etc-gw")
	os.MkdirAll(conf, 0o755)
	os.WriteFile(filepath.Join(conf, "gateway.conf"), []byte("mode=edge\n"), 0o644)
	hc := s.must(200, "PUT", v1+"/hosts/gw-c/components", "admin", map[string]any{"components": map[string]any{
		"gwconf": map[string]any{"paths": []string{conf}}, "ghost": map[string]any{"paths": []string{"/nonexistent/backupd-test"}}}})
	if hc["central_components_state"] != "pending" {
		t.Fatalf("central components: %v", hc)
	}
	waitFor(t, 30*time.Second, "gw-c applies its central components", func() bool {
		h := s.must(200, "GET", v1+"/hosts/gw-c", "viewer", nil)
		return h["central_components_state"] == "applied"
	})
	hv := s.must(200, "GET", v1+"/hosts/gw-c", "viewer", nil)
	if txt := jsonText(hv["components"]); !strings.Contains(txt, `"name":"gwconf"`) || !strings.Contains(txt, `"source":"central"`) ||
		!strings.Contains(txt, "/nonexistent/backupd-test: does not exist on this host") {
		t.Fatalf("gw-c's reported components: %s", txt)
	}
	cr = s.must(200, "POST", v1+"/create", "operator", map[string]any{"host": "gw-c", "components": map[string]bool{"gwconf": true}, "storage_locations": []string{"local"}})
	if pr := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string)); pr["status"] != "completed" {
		t.Fatalf("gw-c's central component backed up: %v\n%s", pr, c.output())
	}
	tree := s.must(200, "GET", v1+"/tree/"+cr["backup_id"].(string)+"?component=gwconf&path="+url.QueryEscape(conf), "operator", nil)
	if !strings.Contains(jsonText(tree), "gateway.conf") {
		t.Fatalf("gw-c's central component's backup: %v", tree)
	}

	// a host's backup asked for two locations: the host writes the first,
	// the server copies it to the second (S3); deleting it removes it
	// from both of the host's repositories
	cr = s.must(200, "POST", v1+"/create", "operator", map[string]any{"host": "gw-c", "components": map[string]bool{"data": true},
		"storage_locations": []string{"local", "cloud"}})
	if pr := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string)); pr["status"] != "completed" {
		t.Fatalf("gw-c's backup with a copy: %v\n%s", pr, c.output())
	}
	copied := cr["backup_id"].(string)
	if d := s.must(200, "GET", v1+"/details/"+copied, "viewer", nil); !strings.Contains(jsonText(get(d, "storage.locations")), `"type":"cloud"`) {
		t.Fatalf("gw-c's backup is not in cloud: %v", d)
	}
	gwc := s.must(200, "GET", v1+"/hosts/gw-c", "viewer", nil)
	cloudRepo := "hosts/" + gwc["id"].(string)
	inCloud := func(name string) bool {
		be, err := s3.New(context.Background(), s.s3.Config("apitest", "cloud/"+cloudRepo))
		if err != nil {
			t.Fatal(err)
		}
		_, err = be.Stat(context.Background(), name)
		return err == nil
	}
	if !inCloud("manifests/" + copied) {
		t.Fatalf("no manifest of %s in gw-c's cloud repository", copied)
	}
	dl := s.must(202, "DELETE", v1+"/"+copied+"?force=true", "admin", nil)
	if rep := s.waitJob(t, v1+"/cleanup/report/"+dl["cleanup_id"].(string)); rep["status"] != "completed" ||
		!strings.Contains(jsonText(rep), `"`+cloudRepo+`":{"cloud":`) {
		t.Fatalf("deleting gw-c's backup: %v", rep)
	}
	if st, _ := s.do("GET", v1+"/details/"+copied, "viewer", nil); st != 404 {
		t.Fatalf("deleted backup still answers %d", st)
	}
	if inCloud("manifests/" + copied) {
		t.Fatalf("the deleted backup's manifest is still in gw-c's cloud repository")
	}

	// gw-b revoked: its worker stops and is refused when it starts again
	s.cliOK(t, "admin", "host", "revoke", "gw-b", "--ca-file", certFile)
	if code, out := b.exited(30 * time.Second); code != 1 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoked gw-b's worker: exit %d\n%s", code, out)
	}
	b.start(s.bin, nil)
	if code, out := b.exited(30 * time.Second); code != 1 || !strings.Contains(out, "enrol the host again") {
		t.Fatalf("revoked gw-b's worker restarted: exit %d\n%s", code, out)
	}
	// the schedule's next run skips it, and says why; gw-a still runs
	s.must(200, "POST", v1+"/schedules/berlin-nightly/trigger", "operator", nil)
	waitFor(t, 60*time.Second, "the second run on gw-a", func() bool {
		js := s.must(200, "GET", v1+"/jobs?host=gw-a", "viewer", nil)
		n := 0
		for _, j := range js["jobs"].([]any) {
			if m := j.(map[string]any); m["schedule_id"] == "berlin-nightly" && m["status"] == "completed" {
				n++
			}
		}
		return n == 2
	})
	if js := s.must(200, "GET", v1+"/jobs?host=gw-b", "viewer", nil); strings.Count(jsonText(js), `"status":"completed"`) != 1 {
		t.Fatalf("revoked gw-b ran a scheduled backup: %v", js)
	}

	// a cleanup applies the policy to each host's backups on its own:
	// gw-a keeps its newest; its repository is collected (untrusted) and
	// what is kept still verifies, reading every pack
	before := s.must(200, "GET", v1+"/hosts/gw-a", "viewer", nil)
	had := get(s.must(200, "GET", v1+"/list?host=gw-a", "viewer", nil), "pagination.total").(float64)
	cl := s.must(200, "POST", v1+"/cleanup", "admin", map[string]any{"dry_run": false, "target_storage": []string{"local"}})
	rep := s.waitJob(t, v1+"/cleanup/report/"+cl["cleanup_id"].(string))
	if rep["status"] != "completed" || !strings.Contains(jsonText(rep), `"host":"gw-a"`) ||
		!strings.Contains(jsonText(get(rep, "outcome.hosts")), "hosts/"+before["id"].(string)) {
		t.Fatalf("cleanup: %v", rep)
	}
	kept := s.must(200, "GET", v1+"/list?host=gw-a", "viewer", nil)
	if n := get(kept, "pagination.total").(float64); n == 0 || n >= had {
		t.Fatalf("the cleanup left %v of gw-a's %v backups: %v", n, had, rep)
	}
	newest := kept["backups"].([]any)[0].(map[string]any)["id"].(string)
	vr := s.must(200, "POST", v1+"/verify", "operator", map[string]any{"backup_id": newest, "verify_checksum": true, "verify_structure": true})
	if pr := s.waitJob(t, vr["report_url"].(string)); pr["passed"] != true {
		t.Fatalf("gw-a's kept backup after the cleanup: %v", pr)
	}
	after := s.must(200, "GET", v1+"/hosts/gw-a", "viewer", nil)
	if get(after, "written_bytes").(float64) > get(before, "written_bytes").(float64) {
		t.Fatalf("gw-a's written bytes grew in a cleanup: %v -> %v", get(before, "written_bytes"), get(after, "written_bytes"))
	}
}
