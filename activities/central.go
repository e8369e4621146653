package activities

import (
	"sort"
	"sync"

	"backupd/config"
)

// Central holds the components the server configures for an enrolled
// host, as its worker last applied them; they are looked up before the
// host's own configuration (a central component replaces a local one of
// the same name). Safe for the announcing loop and running activities.
type Central struct {
	mu      sync.RWMutex
	version int
	comps   map[string]config.Component
}

// Set replaces the components with those of version.
func (c *Central) Set(version int, comps map[string]config.Component) {
	c.mu.Lock()
	c.version, c.comps = version, comps
	c.mu.Unlock()
}

// Version is the version applied (0: none).
func (c *Central) Version() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.version
}

// Get returns a central component.
func (c *Central) Get(name string) (config.Component, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	comp, ok := c.comps[name]
	return comp, ok
}

// Names lists the central components, sorted.
func (c *Central) Names() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.comps))
	for n := range c.comps {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// component is a component by name: the central one, else the
// configuration's.
func (a *Activities) component(name string) (config.Component, bool) {
	if a.Central != nil {
		if c, ok := a.Central.Get(name); ok {
			return c, true
		}
	}
	if a.Config == nil {
		return config.Component{}, false
	}
	c, ok := a.Config.Components[name]
	return c, ok
}

// componentNames are every component's names, sorted.
func (a *Activities) componentNames() []string {
	names := a.Config.ComponentNames()
	if a.Central != nil {
		seen := map[string]bool{}
		for _, n := range names {
			seen[n] = true
		}
		for _, n := range a.Central.Names() {
			if !seen[n] {
				names = append(names, n)
			}
		}
		sort.Strings(names)
	}
	return names
}
