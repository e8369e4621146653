package sources

import "testing"

func TestMatcher(t *testing.T) {
	m, err := NewMatcher([]string{"*.conf", "/srv/app/**/keep/*"}, []string{"*.gz", "/var/log/**/old", "/tmp/x/*"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path               string
		excluded, included bool
	}{
		{"/etc/nginx/nginx.conf", false, true},
		{"/etc/nginx/mime.types", false, false},
		{"/var/log/syslog.1.gz", true, false},
		{"/var/log/a/b/old", true, false},
		{"/var/log/old", true, false},
		{"/tmp/x/y", true, false},
		{"/tmp/x/y/z", false, false},
		{"/srv/app/keep/f", false, true},
		{"/srv/app/a/b/keep/f", false, true},
		{"/srv/app/a/b/keep/f.gz", true, false},
	}
	for _, c := range cases {
		if got := m.Excluded(c.path); got != c.excluded {
			t.Errorf("Excluded(%s) = %v", c.path, got)
		}
		if got := m.Included(c.path); got != c.included {
			t.Errorf("Included(%s) = %v", c.path, got)
		}
	}
	if _, err := NewMatcher(nil, []string{"[bad"}); err == nil {
		t.Error("bad pattern accepted")
	}
}
