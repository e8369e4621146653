package restore

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"backupd/repository"
	"backupd/sources"
)

// mirror removes, inside the component's source paths, what the backup
// does not hold but would have taken (the component's include/exclude
// rules decide): so a restore (a rollback to a pre-restore snapshot, say)
// leaves each source path exactly as it was backed up. Directories above
// the source paths, anything the rules exclude, and (in a confined
// restore) anything outside the confine paths are never touched.
//
// Every removal is an unlinkat from a held descriptor of the parent, and a
// directory is entered only by openat(O_NOFOLLOW|O_DIRECTORY) from its
// parent's descriptor, checked to be the inode listed: a directory swapped
// for a symlink to /etc while the removal runs is never entered.
func (r *restorer) mirror(comps []repository.ComponentManifest, targets []*compTarget) ([]string, error) {
	buf := make([]byte, 32<<10)
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
			if !under(abs) || t.place(d.rel) != placeAllowed {
				continue
			}
			fd, err := r.dirs.open(dirKey{t, d.rel}, unix.O_RDONLY)
			if err != nil {
				return removed, fmt.Errorf("mirror: %s: %w", abs, err)
			}
			names, err := sources.ReadNames(fd, buf)
			if err != nil {
				unix.Close(fd)
				return removed, fmt.Errorf("mirror: listing %s: %w", abs, err)
			}
			for _, n := range names {
				rel := path.Join(d.rel, n)
				childAbs := path.Join(abs, n)
				if r.kept[dirKey{t, rel}] || matcher.Excluded(childAbs) {
					continue
				}
				gone, err := removeUntracked(fd, n, rel, childAbs, matcher, buf)
				removed = append(removed, gone...)
				if err != nil {
					unix.Close(fd)
					return removed, err
				}
			}
			unix.Close(fd)
		}
	}
	return removed, nil
}

// removeUntracked removes the entry name in the directory open at dfd,
// which the backup does not hold, as far as the component's rules would
// have taken it: a file only if included, a directory by its contents
// (deepest first), and the directory itself only when nothing excluded is
// left in it. The directories being removed are held open one per level.
func removeUntracked(dfd int, name, rel, abs string, m *sources.Matcher, buf []byte) ([]string, error) {
	if m.Excluded(abs) {
		return nil, nil
	}
	if testHook != nil {
		testHook("mirror", rel)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, nil // gone already
	}
	if fileType(&st) != unix.S_IFDIR {
		if !m.Included(abs) {
			return nil, nil
		}
		// a symlink is removed itself, never what it points to
		if err := unix.Unlinkat(dfd, name, 0); err != nil && err != unix.ENOENT {
			return nil, fmt.Errorf("mirror: removing %s: %w", abs, err)
		}
		return []string{abs}, nil
	}
	fd, err := openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mirror: %s: %w", abs, dirError(rel, err))
	}
	defer unix.Close(fd)
	var dst unix.Stat_t
	if err := unix.Fstat(fd, &dst); err != nil {
		return nil, err
	}
	if idOf(&dst) != idOf(&st) {
		return nil, fmt.Errorf("mirror: %s: %w", abs, errReplaced)
	}
	names, err := sources.ReadNames(fd, buf)
	if err != nil {
		return nil, fmt.Errorf("mirror: listing %s: %w", abs, err)
	}
	var removed []string
	for _, n := range names {
		gone, err := removeUntracked(fd, n, path.Join(rel, n), path.Join(abs, n), m, buf)
		removed = append(removed, gone...)
		if err != nil {
			return removed, err
		}
	}
	if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err == nil { // fails when something stayed
		removed = append(removed, abs)
	}
	return removed, nil
}
