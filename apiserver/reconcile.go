package apiserver

import (
	"context"
	"sync"
	"time"

	"backupd/activities"
	"backupd/api"
)

// reconcileInterval is how often the catalog is compared with each
// location's manifests (the first comparison runs soon after start).
var reconcileInterval = 10 * time.Minute

var reconcileFirst = 15 * time.Second

type reconcileState struct {
	mu   sync.Mutex
	rc   *activities.Reconciler
	last *activities.ReconcileResult
	err  string
}

// reconcile adopts backups the catalog never learnt of and flags those
// whose manifests vanished; health reports the last run.
func (s *Server) reconcile(ctx context.Context) {
	if s.Stores == nil {
		return
	}
	st := &s.recon
	st.mu.Lock()
	if st.rc == nil {
		st.rc = &activities.Reconciler{Store: s.Store, Stores: s.Stores, MinAge: 2 * time.Minute, OwnHost: s.Cfg.Host}
	}
	rc := st.rc
	st.mu.Unlock()
	res, err := rc.Run(ctx, s.Cfg.LocationNames())
	st.mu.Lock()
	defer st.mu.Unlock()
	if err != nil {
		st.err = err.Error()
		s.Log.Error("catalog reconciliation failed", "err", err)
		return
	}
	st.last, st.err = res, ""
	if len(res.Adopted) > 0 || len(res.Missing) > 0 {
		s.Log.Warn("catalog reconciled with storage", "adopted", len(res.Adopted), "missing", len(res.Missing))
	}
}

// reconcileView is the last reconciliation for health.
func (s *Server) reconcileView() (api.CatalogHealth, int) {
	st := &s.recon
	st.mu.Lock()
	defer st.mu.Unlock()
	v := api.CatalogHealth{Status: "pending", IntervalSeconds: reconcileInterval.Seconds()}
	if st.err != "" {
		v.Status, v.Error = "failed", st.err
		return v, 1
	}
	if st.last == nil {
		return v, 0
	}
	v.Status = "ok"
	v.CatalogRun = &api.CatalogRun{LastRun: rfc3339(st.last.At), Adopted: st.last.Adopted, Located: st.last.Located, Missing: st.last.Missing}
	if len(st.last.Unreachable) > 0 {
		v.Unreachable = st.last.Unreachable
	}
	if len(st.last.Unreadable) > 0 {
		v.Unreadable, v.UnreadableCount = st.last.Unreadable, st.last.UnreadableCount
	}
	if st.last.Deferred > 0 {
		v.DeferredToNextRun = st.last.Deferred
	}
	level := 0
	if len(st.last.Missing) > 0 || len(st.last.Unreadable) > 0 {
		v.Status, level = "inconsistent", 1
	}
	return v, level
}
