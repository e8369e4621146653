package restore

import (
	"fmt"
	"path"
	"strings"

	"backupd/repository"
	"backupd/sources"
)

// mirror removes, inside the component's source paths, what the backup
// does not hold but would have taken (the component's include/exclude
// rules decide): so a restore (a rollback to a pre-restore snapshot, say)
// leaves each source path exactly as it was backed up. Directories above
// the source paths, and anything the rules exclude, are never touched.
func (r *restorer) mirror(comps []repository.ComponentManifest, targets []*compTarget) ([]string, error) {
	have := map[*compTarget]map[string]bool{}
	add := func(e *entry) {
		m := have[e.ct]
		if m == nil {
			m = map[string]bool{}
			have[e.ct] = m
		}
		m[e.rel] = true
	}
	for _, list := range [][]*entry{r.plan.dirs, r.plan.files, r.plan.others, r.plan.links} {
		for _, e := range list {
			add(e)
		}
	}
	var removed []string
	for i, c := range comps {
		t := targets[i]
		matcher, err := sources.NewMatcher(c.Include, c.Exclude)
		if err != nil {
			return removed, err
		}
		under := func(abs string) bool {
			for _, p := range c.Paths {
				p = path.Clean(p)
				if abs == p || strings.HasPrefix(abs, strings.TrimSuffix(p, "/")+"/") {
					return true
				}
			}
			return false
		}
		for _, d := range r.plan.dirs {
			if d.ct != t {
				continue
			}
			abs := path.Clean("/" + d.rel)
			if !under(abs) {
				continue
			}
			f, err := t.root.Open(d.rel)
			if err != nil {
				return removed, err
			}
			names, err := f.Readdirnames(-1)
			f.Close()
			if err != nil {
				return removed, err
			}
			for _, n := range names {
				rel := path.Join(d.rel, n)
				childAbs := path.Join(abs, n)
				if have[t][rel] || matcher.Excluded(childAbs) {
					continue
				}
				gone, err := removeUntracked(t, rel, childAbs, matcher)
				removed = append(removed, gone...)
				if err != nil {
					return removed, err
				}
			}
		}
	}
	return removed, nil
}

// removeUntracked removes an entry the backup does not hold, as far as the
// component's rules would have taken it: a file only if included, a
// directory by its contents (deepest first), and the directory itself
// only when nothing excluded is left in it.
func removeUntracked(t *compTarget, rel, abs string, m *sources.Matcher) ([]string, error) {
	if m.Excluded(abs) {
		return nil, nil
	}
	fi, err := t.root.Lstat(rel)
	if err != nil {
		return nil, nil // gone already
	}
	if !fi.IsDir() {
		if !m.Included(abs) {
			return nil, nil
		}
		if err := t.root.Remove(rel); err != nil {
			return nil, fmt.Errorf("mirror: removing %s: %w", abs, err)
		}
		return []string{abs}, nil
	}
	f, err := t.root.Open(rel)
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range names {
		gone, err := removeUntracked(t, path.Join(rel, n), path.Join(abs, n), m)
		removed = append(removed, gone...)
		if err != nil {
			return removed, err
		}
	}
	if err := t.root.Remove(rel); err == nil { // fails when something stayed
		removed = append(removed, abs)
	}
	return removed, nil
}
