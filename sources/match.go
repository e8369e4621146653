// Package sources reads what a component backs up from the host: files
// under path sets with include/exclude globs, with their metadata. It has
// no knowledge of storage, Temporal or HTTP.
package sources

import (
	"fmt"
	"path"
	"strings"
)

// Matcher decides which paths a path set takes.
//
// Pattern syntax: path.Match globs plus "**", which matches any number of
// path elements. A pattern without "/" matches a file's base name anywhere
// ("*.log"); a pattern with "/" matches the whole absolute path
// ("/var/log/**/*.gz").
//
// Exclude wins over include. Directories are descended unless excluded;
// when Include is non-empty, only non-directories matching it are taken.
type Matcher struct {
	include, exclude []pattern
}

type pattern struct {
	raw   string
	base  bool     // match the base name only
	parts []string // split on "/", for full-path patterns
}

// NewMatcher compiles include and exclude patterns, naming any bad one.
func NewMatcher(include, exclude []string) (*Matcher, error) {
	m := &Matcher{}
	for _, p := range include {
		c, err := compile(p)
		if err != nil {
			return nil, fmt.Errorf("include pattern %q: %w", p, err)
		}
		m.include = append(m.include, c)
	}
	for _, p := range exclude {
		c, err := compile(p)
		if err != nil {
			return nil, fmt.Errorf("exclude pattern %q: %w", p, err)
		}
		m.exclude = append(m.exclude, c)
	}
	return m, nil
}

func compile(p string) (pattern, error) {
	if p == "" {
		return pattern{}, fmt.Errorf("empty pattern")
	}
	// path.Match reports syntax errors only when it gets to them; test
	// each element against itself to surface them now.
	for _, el := range strings.Split(p, "/") {
		if el == "**" {
			continue
		}
		if _, err := path.Match(el, el); err != nil {
			return pattern{}, err
		}
	}
	if !strings.Contains(p, "/") {
		return pattern{raw: p, base: true}, nil
	}
	return pattern{raw: p, parts: strings.Split(strings.TrimPrefix(p, "/"), "/")}, nil
}

func (p pattern) match(abs string) bool {
	if p.base {
		ok, _ := path.Match(p.raw, path.Base(abs))
		return ok
	}
	return matchParts(p.parts, strings.Split(strings.TrimPrefix(abs, "/"), "/"))
}

func matchParts(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			for i := 0; i <= len(name); i++ {
				if matchParts(rest, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// Excluded reports whether abs (a cleaned absolute path) is excluded.
func (m *Matcher) Excluded(abs string) bool {
	for _, p := range m.exclude {
		if p.match(abs) {
			return true
		}
	}
	return false
}

// Included reports whether a non-directory at abs is taken.
func (m *Matcher) Included(abs string) bool {
	if m.Excluded(abs) {
		return false
	}
	if len(m.include) == 0 {
		return true
	}
	for _, p := range m.include {
		if p.match(abs) {
			return true
		}
	}
	return false
}
