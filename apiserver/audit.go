package apiserver

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"backupd/models"
)

// The audit log: every mutating call and every read of backup contents
// (download) is recorded before it runs; if that record cannot be written
// the call is refused (503), so nothing happens unrecorded. Its outcome is
// filled in when it ends. Refused attempts (401, 403, 429) are aggregated
// per source, caller, action and minute into one entry with a count, so a
// flood of bad requests cannot flood the table; a source that keeps
// sending requests without a valid token is rate-limited (the token is
// looked up first, so a valid one always gets through). A source is an
// IPv4 address or an IPv6 /64 (one host can hold a whole /64).

// auditStart records a call about to run; nil error means it may run.
func (s *Server) auditStart(r *http.Request, rt route, st *reqState) (*models.AuditEntry, error) {
	e := &models.AuditEntry{Method: r.Method, Path: r.URL.Path, Action: rt.Action, Target: st.target,
		RequestID: st.id, Outcome: "started", Remote: remoteIP(r), Host: st.hostOfCall()}
	e.Actor, e.Role = st.actor()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := s.Store.Audit(ctx, e); err != nil {
		s.Log.Error("audit log write failed; the call was refused", "err", err, "action", rt.Action, "request_id", st.id)
		return nil, &apiError{Status: http.StatusServiceUnavailable, Code: "AUDIT_UNAVAILABLE",
			Message: "the audit log cannot be written, so the call was not carried out (request " + st.id + "); the server log has the cause"}
	}
	return e, nil
}

// auditFinish records how an audited call ended.
func (s *Server) auditFinish(r *http.Request, e *models.AuditEntry, st *reqState, status int) {
	e.Status, e.Outcome, e.Target, e.Detail, e.Host = status, outcomeOf(status), st.target, st.outcomeDetail, st.hostOfCall()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := s.Store.FinishAudit(ctx, e); err != nil {
		s.Log.Error("audit log: the outcome of a call could not be recorded", "err", err, "action", e.Action,
			"request_id", e.RequestID, "status", status)
	}
}

func outcomeOf(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests:
		return "denied"
	case status >= 400:
		return "failure"
	}
	return "success"
}

// refusalFlush is how often aggregated counts reach the table.
const refusalFlush = 5 * time.Second

type refusalKey struct {
	minute               int64
	remote, actor, route string
	status               int
}

type refusal struct {
	id      int64
	pending int
}

// refusals aggregates refused attempts: the first of a key in a minute is
// written at once, later ones as a count at most every refusalFlush.
type refusals struct {
	mu        sync.Mutex
	m         map[refusalKey]*refusal
	lastFlush time.Time
}

func (s *Server) auditRefusal(r *http.Request, rt route, st *reqState, status int) {
	now := time.Now().UTC()
	k := refusalKey{minute: now.Unix() / 60, remote: sourceOf(r), route: rt.Method + " " + rt.Path, status: status}
	e := &models.AuditEntry{Time: now.Truncate(time.Minute), Method: rt.Method, Path: rt.Path, Action: rt.Action,
		RequestID: st.id, Status: status, Outcome: "denied", Detail: st.outcomeDetail, Remote: remoteIP(r)}
	e.Actor, e.Role = st.actor()
	k.actor = e.Actor
	a := &s.refused
	a.mu.Lock()
	if a.m == nil {
		a.m = map[refusalKey]*refusal{}
	}
	if x, ok := a.m[k]; ok {
		x.pending++
		a.mu.Unlock()
		s.flushRefusals(false)
		return
	}
	x := &refusal{}
	a.m[k] = x
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := s.Store.Audit(ctx, e); err != nil {
		s.Log.Error("audit log write failed", "err", err, "action", rt.Action, "outcome", "denied")
		a.mu.Lock()
		delete(a.m, k)
		a.mu.Unlock()
		return
	}
	a.mu.Lock()
	x.id = e.ID
	a.mu.Unlock()
	s.flushRefusals(false)
}

// flushRefusals writes pending counts (all now when force) and forgets
// minutes that are over.
func (s *Server) flushRefusals(force bool) {
	a := &s.refused
	a.mu.Lock()
	if !force && time.Since(a.lastFlush) < refusalFlush {
		a.mu.Unlock()
		return
	}
	a.lastFlush = time.Now()
	type add struct {
		id int64
		n  int
	}
	var adds []add
	cur := time.Now().Unix() / 60
	for k, x := range a.m {
		if x.id != 0 && x.pending > 0 {
			adds = append(adds, add{x.id, x.pending})
			x.pending = 0
		}
		if k.minute < cur && x.id != 0 && x.pending == 0 {
			delete(a.m, k)
		}
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, ad := range adds {
		if err := s.Store.AddAuditCount(ctx, ad.id, ad.n); err != nil {
			s.Log.Error("audit log: refused attempts could not be counted", "err", err, "attempts", ad.n)
		}
	}
}

// authLimiter is a token bucket per source address for requests without
// a valid token: burst authBurst, refilled at authRate per second.
type authLimiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	burst   float64
	rate    float64
}

type bucket struct {
	tokens float64
	last   time.Time
}

const (
	authBurst = 30
	authRate  = 1.0
)

// allow reports whether src may try (another) unauthenticated request.
func (l *authLimiter) allow(src string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[src]
	now := time.Now()
	if b == nil {
		return true
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	return b.tokens >= 1
}

// spend takes one try from src's budget (a request that failed to
// authenticate).
func (l *authLimiter) spend(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	now := time.Now()
	b := l.buckets[src]
	if b == nil {
		if len(l.buckets) > 100000 { // forget full buckets rather than grow without bound
			for k, x := range l.buckets {
				if min(l.burst, x.tokens+now.Sub(x.last).Seconds()*l.rate) >= l.burst {
					delete(l.buckets, k)
				}
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[src] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	b.tokens--
}

// sourceOf is the source a request counts against: its IPv4 address, or
// the /64 of its IPv6 address.
func sourceOf(r *http.Request) string {
	ip := net.ParseIP(remoteIP(r))
	if ip == nil || ip.To4() != nil {
		return remoteIP(r)
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// actor names the caller in the audit log: the token's name and id.
func (st *reqState) actor() (actor, role string) {
	if st.token == nil {
		return "", ""
	}
	return st.token.Name + " (" + st.token.ID + ")", st.token.Role
}
