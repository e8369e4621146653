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
				if fi, err := t.root.Lstat(rel); err == nil && !fi.IsDir() && !matcher.Included(childAbs) {
					continue
				}
				if err := t.root.RemoveAll(rel); err != nil {
					return removed, fmt.Errorf("mirror: removing %s: %w", childAbs, err)
				}
				removed = append(removed, childAbs)
			}
		}
	}
	return removed, nil
}
