package apiserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"backupd/activities"
	"backupd/backup"
	"backupd/models"
)

// serverWithBackup is a test server (the worker in its process) with one
// real backup of the components in its local repository and the catalog.
func serverWithBackup(t *testing.T, comps ...backup.Component) (*Server, map[string]string, string) {
	t.Helper()
	t.Setenv("BACKUPD_PASSWORD", "pw")
	t.Setenv("BACKUPD_TEST_KDF", "1")
	s, toks := testServer(t, "sqlite")
	s.LocalWorker = true
	delete(s.Cfg.Storage, "cloud")
	s.Stores = activities.NewStores(s.Cfg)
	t.Cleanup(s.Stores.Close)
	ctx := context.Background()
	if err := s.Stores.EnsureInitialized(ctx); err != nil {
		t.Fatal(err)
	}
	repo, err := s.Stores.Open(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	m, err := backup.Run(ctx, repo, backup.Options{Type: backup.Full, Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	names := models.Strings{}
	for _, c := range comps {
		names = append(names, c.Name)
	}
	if err := s.Store.PutBackup(ctx, &models.Backup{ID: m.ID, Type: "full", Status: "completed", Timestamp: m.Started,
		Components: names, Locations: models.Strings{"local"}}); err != nil {
		t.Fatal(err)
	}
	return s, toks, m.ID
}

// browseServer backs up src as component data and src/logs as logs.
func browseServer(t *testing.T, src string) (*Server, map[string]string, string) {
	t.Helper()
	return serverWithBackup(t, backup.Component{Name: "data", Paths: []string{src}}, backup.Component{Name: "logs", Paths: []string{src + "/logs"}})
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func names(entries []any, key string) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.(map[string]any)[key].(string))
	}
	return out
}

// The tree endpoint lists one directory at a time, by absolute path as
// backed up (the string a restore request's paths take), paged.
func TestTreeListsOneDirectoryOfABackup(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{"etc/app.conf": "conf", "etc/nginx/nginx.conf": "nginx", "logs/a.log": "log a", "README": "hello"}
	for i := 0; i < 25; i++ {
		files[fmt.Sprintf("many/f%02d", i)] = "x"
	}
	writeFiles(t, src, files)
	s, toks, id := browseServer(t, src)
	base := "/cloud-integration/backup/tree/" + id + "?component=data&path="

	res, out := call(t, s, "GET", base+src, toks["operator"], nil)
	if res.StatusCode != 200 {
		t.Fatalf("%d %v", res.StatusCode, out)
	}
	got := names(out["entries"].([]any), "name")
	if strings.Join(got, ",") != "README,etc,logs,many" || out["path"] != src || out["storage_location"] != "local" {
		t.Fatalf("root listing: %v %v", got, out)
	}
	readme := out["entries"].([]any)[0].(map[string]any)
	if readme["path"] != src+"/README" || readme["type"] != "file" || readme["size"] != 5.0 || readme["mode"] != "-rw-r--r--" || readme["component"] != "data" {
		t.Fatalf("README entry: %v", readme)
	}
	// the path is cleaned; a subdirectory lists its own entries
	res, out = call(t, s, "GET", base+src+"/etc/./", toks["operator"], nil)
	if got := names(out["entries"].([]any), "path"); res.StatusCode != 200 || strings.Join(got, ",") != src+"/etc/app.conf,"+src+"/etc/nginx" {
		t.Fatalf("etc: %d %v", res.StatusCode, out)
	}
	// paging: 25 entries, 10 a page
	res, out = call(t, s, "GET", base+src+"/many&limit=10&page=3", toks["operator"], nil)
	if got := names(out["entries"].([]any), "name"); res.StatusCode != 200 || strings.Join(got, ",") != "f20,f21,f22,f23,f24" ||
		get(out, "pagination.total") != 25.0 || get(out, "pagination.total_pages") != 3.0 {
		t.Fatalf("page 3: %d %v", res.StatusCode, out)
	}
	// the directories above the component's paths are there too
	res, out = call(t, s, "GET", "/cloud-integration/backup/tree/"+id+"?component=data", toks["operator"], nil)
	if res.StatusCode != 200 || len(out["entries"].([]any)) != 1 || out["path"] != "/" {
		t.Fatalf("root: %d %v", res.StatusCode, out)
	}

	// mistakes, each named
	for q, want := range map[string]string{
		"?path=/":                                 "component is required",
		"?component=nope":                         `has no component "nope" (it has data, logs)`,
		"?component=data&path=relative":           "give an absolute path",
		"?component=data&path=" + src + "/no":     "holds no " + src + "/no",
		"?component=data&path=" + src + "/README": "is a file, not a directory",
		"?component=data&location=cloud":          `is not stored in "cloud"`,
		"?component=data&bogus=1":                 "bogus",
	} {
		res, out := call(t, s, "GET", "/cloud-integration/backup/tree/"+id+q, toks["operator"], nil)
		if res.StatusCode < 400 || res.StatusCode >= 500 || !strings.Contains(fmt.Sprint(out["message"]), want) {
			t.Errorf("%s: %d %v (want %q)", q, res.StatusCode, out["message"], want)
		}
	}
	if res, out := call(t, s, "GET", "/cloud-integration/backup/tree/backup-nope?component=data", toks["operator"], nil); res.StatusCode != 404 || out["code"] != "BACKUP_007" {
		t.Errorf("unknown backup: %d %v", res.StatusCode, out)
	}
	// names are not for viewers
	if res, _ := call(t, s, "GET", base+src, toks["viewer"], nil); res.StatusCode != 403 {
		t.Errorf("viewer: %d", res.StatusCode)
	}
}

// Search finds names in every component (or one, or below a path),
// case-insensitively, by part of a name or by a pattern, in path order.
func TestSearchFindsNamesAcrossComponents(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"etc/app.conf": "conf", "etc/nginx/NGINX.conf": "nginx", "logs/a.log": "log a", "logs/b.conf.log": "log b", "README": "hello"})
	s, toks, id := browseServer(t, src)
	search := func(q string) ([]string, map[string]any) {
		t.Helper()
		res, out := call(t, s, "GET", "/cloud-integration/backup/search/"+id+"?"+q, toks["operator"], nil)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d %v", q, res.StatusCode, out)
		}
		var got []string
		for _, m := range out["matches"].([]any) {
			e := m.(map[string]any)
			got = append(got, e["component"].(string)+":"+strings.TrimPrefix(e["path"].(string), src))
		}
		return got, out
	}
	got, out := search("q=CONF")
	want := []string{"data:/etc/app.conf", "data:/etc/nginx/NGINX.conf", "data:/logs/b.conf.log", "logs:/logs/b.conf.log"}
	if strings.Join(got, " ") != strings.Join(want, " ") || out["truncated"] != false || get(out, "pagination.total") != 4.0 {
		t.Fatalf("q=CONF: %v %v", got, out)
	}
	if got, _ := search("q=*.conf"); strings.Join(got, " ") != "data:/etc/app.conf data:/etc/nginx/NGINX.conf" {
		t.Errorf("*.conf: %v", got)
	}
	if got, _ := search("q=conf&component=logs"); strings.Join(got, " ") != "logs:/logs/b.conf.log" {
		t.Errorf("component=logs: %v", got)
	}
	if got, _ := search("q=conf&path=" + src + "/etc/nginx"); strings.Join(got, " ") != "data:/etc/nginx/NGINX.conf" {
		t.Errorf("path: %v", got)
	}
	// pages of 1: the same four, one at a time
	var paged []string
	for p := 1; p <= 4; p++ {
		got, _ := search(fmt.Sprintf("q=conf&limit=1&page=%d", p))
		paged = append(paged, got...)
	}
	if !sort.StringsAreSorted(paged) || strings.Join(paged, " ") != strings.Join(want, " ") {
		t.Errorf("paged: %v", paged)
	}
	for q, want := range map[string]string{"": "q is required", "q=[": "not a valid pattern"} {
		res, out := call(t, s, "GET", "/cloud-integration/backup/search/"+id+"?"+q, toks["operator"], nil)
		if res.StatusCode != 400 || !strings.Contains(out["message"].(string), want) {
			t.Errorf("%q: %d %v", q, res.StatusCode, out)
		}
	}
}

// whoami tells a client its token's role, so it offers only what the
// role may do.
func TestWhoAmI(t *testing.T) {
	s, toks := testServer(t, "sqlite")
	for _, role := range models.Roles {
		res, out := call(t, s, "GET", "/cloud-integration/backup/whoami", toks[role], nil)
		if res.StatusCode != 200 || out["role"] != role || out["name"] != role+"-user" || out["expires_at"] != nil {
			t.Errorf("%s: %d %v", role, res.StatusCode, out)
		}
	}
}

// A search is bounded: a long pattern is refused, a search past its time
// budget answers with what it found (truncated), and a search never holds
// up a user listing directories in the same location.
func TestSearchIsBoundedAndNeverBlocksBrowsing(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a/one.conf": "1", "b/two.conf": "2"})
	s, toks, id := browseServer(t, src)
	res, out := call(t, s, "GET", "/cloud-integration/backup/search/"+id+"?q="+strings.Repeat("*a", 200), toks["operator"], nil)
	if res.StatusCode != 400 || !strings.Contains(out["message"].(string), "at most 256") {
		t.Fatalf("a long pattern: %d %v", res.StatusCode, out)
	}
	old := searchBudget
	searchBudget = 0
	res, out = call(t, s, "GET", "/cloud-integration/backup/search/"+id+"?q=conf", toks["operator"], nil)
	searchBudget = old
	if res.StatusCode != 200 || out["truncated"] != true {
		t.Fatalf("past the budget: %d %v", res.StatusCode, out)
	}
	// a search holds the location's search session: listing still answers
	s.browsers.mu.Lock()
	busy := s.browsers.m["local\x00search"]
	s.browsers.mu.Unlock()
	busy.sem <- struct{}{}
	defer func() { <-busy.sem }()
	res, out = call(t, s, "GET", "/cloud-integration/backup/tree/"+id+"?component=data&path="+src, toks["operator"], nil)
	if res.StatusCode != 200 || len(out["entries"].([]any)) != 2 {
		t.Fatalf("listing beside a running search: %d %v", res.StatusCode, out)
	}
}
