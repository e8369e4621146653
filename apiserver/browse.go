package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"backupd/api"
	"backupd/codes"
	"backupd/models"
	"backupd/repository"
)

// Browsing a backup's tree: GET /backup/tree/{id} lists one directory,
// GET /backup/search/{id} searches the names. Both read the trees from
// storage (never the files' contents), through one repository session per
// location kept between requests, so that a user expanding directories
// one after another hits its tree cache instead of storage.

// searchVisitMax bounds the entries one search looks at: a search of a
// tree of tens of millions of files answers (truncated) instead of
// holding a request for minutes.
const searchVisitMax = 2_000_000

// browseSessionTTL: a browse session unused this long is dropped (its
// tree cache with it).
const browseSessionTTL = 10 * time.Minute

// searchBudget bounds the time one search runs: past it, the answer is
// what it found so far (truncated), and the location's search session is
// free again.
var searchBudget = 20 * time.Second

// searchQueryMax bounds q: a name pattern needs no more, and a long glob
// makes every match costly.
const searchQueryMax = 256

type browseSession struct {
	sem  chan struct{} // one request at a time per location (and kind)
	repo *repository.Repository
	used time.Time
}

type browseSessions struct {
	mu sync.Mutex
	m  map[string]*browseSession
}

// browse runs fn with the location's browse session locked, its index
// brought up to date and the backup's manifest loaded. Searches have
// sessions of their own, so a long search never holds up a user opening
// directories; a request that is cancelled while it waits stops waiting.
func (s *Server) browse(ctx context.Context, loc, id string, search bool, fn func(repo *repository.Repository, m *repository.Manifest) error) error {
	dir, err := s.backupRepoDir(ctx, id)
	if err != nil {
		return err
	}
	key := loc
	if dir != "" {
		key += "\x00" + dir // an enrolled host's repository there
	}
	if search {
		key += "\x00search"
	}
	s.browsers.mu.Lock()
	if s.browsers.m == nil {
		s.browsers.m = map[string]*browseSession{}
	}
	for k, bs := range s.browsers.m {
		select {
		case bs.sem <- struct{}{}:
			if time.Since(bs.used) > browseSessionTTL {
				delete(s.browsers.m, k)
			}
			<-bs.sem
		default:
		}
	}
	bs := s.browsers.m[key]
	if bs == nil {
		bs = &browseSession{sem: make(chan struct{}, 1)}
		s.browsers.m[key] = bs
	}
	s.browsers.mu.Unlock()

	select {
	case bs.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-bs.sem }()
	bs.used = time.Now()
	if bs.repo == nil {
		repo, err := s.Stores.OpenIn(ctx, loc, dir)
		if err != nil {
			return err
		}
		bs.repo = repo
	}
	m, err := bs.repo.LoadManifest(ctx, id)
	if err != nil {
		return err
	}
	if err := bs.repo.LoadIndex(ctx); err != nil {
		if ctx.Err() == nil {
			bs.repo = nil // start afresh next time (a cancelled request is no reason to)
		}
		return err
	}
	return fn(bs.repo, m)
}

// browseTarget checks the request's backup, component and location. With
// no location given, the backup's locations are tried in order.
func (s *Server) browseTarget(r *http.Request, needComponent bool) (*models.Backup, string, []string, error) {
	id := mux.Vars(r)["backup_id"]
	q := r.URL.Query()
	b, err := s.backupOf(r.Context(), id)
	if err != nil {
		return nil, "", nil, err
	}
	comp := q.Get("component")
	switch {
	case comp == "" && needComponent:
		return nil, "", nil, badRequest("component", "component is required: one of the backup's components (%s)", strings.Join(b.Components, ", "))
	case comp != "" && !contains(b.Components, comp):
		return nil, "", nil, badRequest("component", "component: backup %s has no component %q (it has %s)", id, comp, strings.Join(b.Components, ", "))
	}
	locs := b.Locations
	if l := q.Get("location"); l != "" {
		if !contains(b.Locations, l) {
			return nil, "", nil, badRequest("location", "location: backup %s is not stored in %q (it is in %s)", id, l, strings.Join(b.Locations, ", "))
		}
		locs = []string{l}
	}
	if len(locs) == 0 {
		return nil, "", nil, conflict(codes.BackupNotFound, "backup %s is not stored in any location (status %s)", id, b.Status)
	}
	return b, comp, locs, nil
}

// browsePath cleans the path parameter: absolute, as backed up.
func browsePath(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	if !strings.HasPrefix(p, "/") {
		return "", badRequest("path", "path %q: give an absolute path, as backed up (like /etc/nginx)", p)
	}
	return path.Clean(p), nil
}

// firstLocation runs fn on each location in turn until one answers; a
// storage failure of one is not the answer while another may hold a copy.
func (s *Server) firstLocation(ctx context.Context, id string, locs []string, search bool, fn func(loc string, repo *repository.Repository, m *repository.Manifest) error) error {
	var errs []error
	for _, loc := range locs {
		err := s.browse(ctx, loc, id, search, func(repo *repository.Repository, m *repository.Manifest) error { return fn(loc, repo, m) })
		var ae *apiError
		if err == nil || errors.As(err, &ae) || ctx.Err() != nil {
			return err
		}
		errs = append(errs, fmt.Errorf("%s: %w", loc, err))
	}
	return errors.Join(errs...)
}

func (s *Server) listTree(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "component", "path", "location", "limit", "page_size", "page"); err != nil {
		return err
	}
	size, page, err := paging(q, 200)
	if err != nil {
		return err
	}
	dir, err := browsePath(q.Get("path"))
	if err != nil {
		return err
	}
	b, comp, locs, err := s.browseTarget(r, true)
	if err != nil {
		return err
	}
	var out api.TreeListing
	err = s.firstLocation(r.Context(), b.ID, locs, false, func(loc string, repo *repository.Repository, m *repository.Manifest) error {
		c, err := manifestComponent(m, comp)
		if err != nil {
			return err
		}
		tree, err := treeAt(r.Context(), repo, c, dir)
		if err != nil {
			return err
		}
		entries := []api.TreeEntry{}
		from := (page - 1) * size
		for i := from; i < len(tree.Nodes) && i < from+size; i++ {
			entries = append(entries, treeEntry(comp, path.Join(dir, tree.Nodes[i].Name), tree.Nodes[i]))
		}
		out = api.TreeListing{BackupID: b.ID, Component: comp, Path: dir, StorageLocation: loc, Entries: entries,
			Pagination: api.NewPagination(int64(len(tree.Nodes)), page, size)}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) searchTree(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "q", "component", "path", "location", "limit", "page_size", "page"); err != nil {
		return err
	}
	size, page, err := paging(q, 100)
	if err != nil {
		return err
	}
	query := strings.TrimSpace(q.Get("q"))
	if query == "" {
		return badRequest("q", "q is required: part of a file name (case-insensitive), or a pattern like *.conf")
	}
	if len(query) > searchQueryMax {
		return badRequest("q", "q is %d bytes long: give at most %d (part of a name, or a pattern like *.conf)", len(query), searchQueryMax)
	}
	match, err := nameMatcher(query)
	if err != nil {
		return err
	}
	under, err := browsePath(q.Get("path"))
	if err != nil {
		return err
	}
	b, comp, locs, err := s.browseTarget(r, false)
	if err != nil {
		return err
	}
	comps := b.Components
	if comp != "" {
		comps = []string{comp}
	}
	var out api.TreeSearch
	ctx, cancel := context.WithTimeout(r.Context(), searchBudget)
	defer cancel()
	err = s.firstLocation(r.Context(), b.ID, locs, true, func(loc string, repo *repository.Repository, m *repository.Manifest) error {
		matches := []api.TreeEntry{}
		var total, visited int64
		from, to := int64((page-1)*size), int64(page*size)
		truncated := false
		for _, name := range comps {
			if truncated {
				break
			}
			c, err := manifestComponent(m, name)
			if err != nil {
				return err
			}
			if c.Error != "" && c.Tree == (repository.ID{}) {
				continue // a failed component holds nothing
			}
			start, err := treeAt(ctx, repo, c, under)
			if err != nil && ctx.Err() != nil && r.Context().Err() == nil {
				truncated = true // the budget is spent
				break
			}
			var ae *apiError
			if errors.As(err, &ae) && comp == "" {
				continue // searching every component: one without the path holds no match
			}
			if err != nil {
				return err
			}
			// depth first, in name order: pages are stable
			type frame struct {
				dir   string
				nodes []*repository.Node
			}
			stack := []frame{{under, start.Nodes}}
			for len(stack) > 0 && !truncated {
				top := &stack[len(stack)-1]
				if len(top.nodes) == 0 {
					stack = stack[:len(stack)-1]
					continue
				}
				n := top.nodes[0]
				top.nodes = top.nodes[1:]
				p := path.Join(top.dir, n.Name)
				if visited++; visited >= searchVisitMax || visited%1024 == 0 && ctx.Err() != nil {
					if r.Context().Err() != nil {
						return r.Context().Err() // the caller is gone
					}
					truncated = true // the budget is spent: what was found so far
				}
				if match(n.Name) {
					if total >= from && total < to {
						matches = append(matches, treeEntry(name, p, n))
					}
					total++
				}
				if n.Type == repository.NodeDir && n.Subtree != nil {
					sub, err := repo.LoadTree(ctx, *n.Subtree)
					if err != nil && ctx.Err() != nil && r.Context().Err() == nil {
						truncated = true
						break
					}
					if err != nil {
						return fmt.Errorf("component %s, %s: %w", name, p, err)
					}
					stack = append(stack, frame{p, sub.Nodes})
				}
			}
		}
		out = api.TreeSearch{BackupID: b.ID, Query: query, StorageLocation: loc, Matches: matches,
			Pagination: api.NewPagination(total, page, size), Truncated: truncated, Visited: visited}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// nameMatcher: a pattern with * ? or [ is a glob on the whole name;
// anything else matches names that contain it. Both ignore case.
func nameMatcher(q string) (func(string) bool, error) {
	lq := strings.ToLower(q)
	if strings.ContainsAny(q, "*?[") {
		if _, err := path.Match(lq, ""); err != nil {
			return nil, badRequest("q", "q %q is not a valid pattern (%v): use * ? and [a-z] on a file name", q, err)
		}
		return func(name string) bool {
			ok, _ := path.Match(lq, strings.ToLower(name))
			return ok
		}, nil
	}
	return func(name string) bool { return strings.Contains(strings.ToLower(name), lq) }, nil
}

func manifestComponent(m *repository.Manifest, name string) (*repository.ComponentManifest, error) {
	for i := range m.Components {
		if m.Components[i].Name == name {
			return &m.Components[i], nil
		}
	}
	return nil, notFound(codes.BackupNotFound, "backup %s's manifest has no component %q", m.ID, name)
}

// treeAt walks from a component's root to the directory dir.
func treeAt(ctx context.Context, repo *repository.Repository, c *repository.ComponentManifest, dir string) (*repository.Tree, error) {
	if c.Tree == (repository.ID{}) {
		return &repository.Tree{}, nil
	}
	tree, err := repo.LoadTree(ctx, c.Tree)
	if err != nil {
		return nil, fmt.Errorf("component %s: %w", c.Name, err)
	}
	walked := "/"
	for _, el := range strings.Split(strings.Trim(dir, "/"), "/") {
		if el == "" {
			continue
		}
		var n *repository.Node
		for _, x := range tree.Nodes {
			if x.Name == el {
				n = x
				break
			}
		}
		walked = path.Join(walked, el)
		if n == nil {
			return nil, &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND",
				Message: fmt.Sprintf("component %s of this backup holds no %s (list %s to see what it holds)", c.Name, walked, path.Dir(walked))}
		}
		if n.Type != repository.NodeDir || n.Subtree == nil {
			return nil, badRequest("path", "path %s is a %s, not a directory: list its directory %s", walked, n.Type, path.Dir(walked))
		}
		if tree, err = repo.LoadTree(ctx, *n.Subtree); err != nil {
			return nil, fmt.Errorf("component %s, %s: %w", c.Name, walked, err)
		}
	}
	return tree, nil
}

func treeEntry(comp, p string, n *repository.Node) api.TreeEntry {
	e := api.TreeEntry{Component: comp, Name: n.Name, Path: p, Type: n.Type, Mode: n.Mode.String(),
		Modified: time.Unix(0, n.ModTime).UTC().Format(time.RFC3339), User: n.User, Group: n.Group,
		UID: n.UID, GID: n.GID, LinkTarget: n.LinkTarget}
	if n.Type == repository.NodeFile {
		e.Size = int64(n.Size)
	}
	return e
}

func (s *Server) whoAmI(w http.ResponseWriter, r *http.Request) error {
	t := stateOf(r).token
	out := api.WhoAmI{TokenID: t.ID, Name: t.Name, Role: t.Role}
	if t.ExpiresAt != nil {
		e := t.ExpiresAt.UTC().Format(time.RFC3339)
		out.ExpiresAt = &e
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
