package apiserver

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Probes for orchestrators and load balancers, served without a token
// (they say ok or not ok, nothing more):
//
//	GET /healthz  the process serves HTTP
//	GET /readyz   the catalog answers, Temporal answers, and a worker
//	              polls this host's task queue
const (
	HealthzPath = "/healthz"
	ReadyzPath  = "/readyz"
)

// readiness caches the last check for a second: probes are frequent and
// unauthenticated, and each check asks the database and Temporal.
type readiness struct {
	mu sync.Mutex
	at time.Time
	ok bool
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.ready(r.Context()) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
}

func (s *Server) ready(ctx context.Context) bool {
	s.readyState.mu.Lock()
	defer s.readyState.mu.Unlock()
	if time.Since(s.readyState.at) < time.Second {
		return s.readyState.ok
	}
	ok := s.checkReady(ctx)
	if !ok {
		s.Log.Debug("not ready") // the reasons are in /backup/health (viewer token)
	}
	s.readyState.at, s.readyState.ok = time.Now(), ok
	return ok
}

func (s *Server) checkReady(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if db, err := s.Store.DB.DB(); err != nil || db.PingContext(ctx) != nil {
		return false
	}
	if s.Temporal == nil {
		return false
	}
	if _, err := s.Temporal.CheckHealth(ctx, nil); err != nil {
		return false
	}
	return s.waitingForWorker(ctx) == "" && len(s.workers(ctx)) > 0 && s.workers(ctx)[0].Err == ""
}
