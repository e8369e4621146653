package apiserver

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"backupd/api"
	"backupd/models"
)

func tokenView(t *models.Token) api.Token {
	return api.Token{ID: t.ID, Name: t.Name, Role: t.Role, CreatedBy: t.CreatedBy, Created: rfc3339(t.CreatedAt),
		Expires: rfc3339ptr(t.ExpiresAt), LastUsed: rfc3339ptr(t.LastUsedAt), Revoked: t.Revoked,
		TOTP: t.TOTPSecret != "", RequireTOTP: t.RequireTOTP}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	list, err := s.Store.ListTokens(r.Context())
	if err != nil {
		return err
	}
	out := api.TokenList{Tokens: make([]api.Token, 0, len(list))}
	for i := range list {
		out.Tokens = append(out.Tokens, tokenView(&list[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req api.TokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := oneOf("role", req.Role, models.Roles...); err != nil {
		return err
	}
	if req.Name == "" {
		return badRequest("name", "name is required (who or what uses the token)")
	}
	if err := validText("name", req.Name, 200); err != nil {
		return err
	}
	var ttl time.Duration
	if req.ExpiresHours != nil {
		if *req.ExpiresHours < 1 || *req.ExpiresHours > 24*3650 {
			return badRequest("expires_in_hours", "expires_in_hours: %d is outside 1..87600", *req.ExpiresHours)
		}
		ttl = time.Duration(*req.ExpiresHours) * time.Hour
	}
	plain, t, err := s.Store.CreateToken(r.Context(), req.Name, req.Role, user(r), ttl)
	if err != nil {
		return err
	}
	setTarget(r, t.ID)
	if req.RequireTOTP {
		if err := s.Store.RequireTOTP(r.Context(), t.ID); err != nil {
			return err
		}
		t.RequireTOTP = true
	}
	writeJSON(w, http.StatusCreated, api.TokenCreated{Token: tokenView(t), Secret: plain,
		Message: "store the token now: only its hash is kept"})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["token_id"]
	setTarget(r, id)
	if st := stateOf(r); st.token.ID == id {
		return conflictPlain("a token cannot revoke itself; use another admin token")
	}
	err := s.Store.RevokeToken(r.Context(), id)
	if errors.Is(err, models.ErrNotFound) {
		return &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "no token " + id}
	}
	if err != nil {
		return err
	}
	s.Hub.DropToken(id)
	writeJSON(w, http.StatusOK, api.TokenRevoked{Status: "revoked", ID: id})
	return nil
}

func conflictPlain(msg string) error {
	return &apiError{Status: http.StatusConflict, Code: "CONFLICT", Message: msg}
}

// auditOutcomes filter /backup/audit.
var auditOutcomes = api.AuditOutcomes

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "actor", "action", "outcome", "host", "since", "until", "limit", "page_size", "page"); err != nil {
		return err
	}
	s.flushRefusals(true)
	f := models.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Outcome: q.Get("outcome")}
	if h := q.Get("host"); h != "" {
		local, name, err := s.hostFilter(r.Context(), h)
		if err != nil {
			return err
		}
		f.HostSet = true
		if !local {
			f.Host = name // calls about the server's own host name none
		}
	}
	if f.Outcome != "" {
		if err := oneOf("outcome", f.Outcome, auditOutcomes...); err != nil {
			return err
		}
	}
	var err error
	if f.Limit, f.Page, f.Since, f.Until, err = pageParams(q); err != nil {
		return err
	}
	list, total, err := s.Store.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	out := api.AuditList{Entries: make([]api.AuditEntry, 0, len(list)), Pagination: api.NewPagination(total, f.Page, f.Limit)}
	for _, e := range list {
		out.Entries = append(out.Entries, api.AuditEntry{ID: e.ID, Timestamp: rfc3339(e.Time), Actor: e.Actor, Role: e.Role,
			Method: e.Method, Path: e.Path, Action: e.Action, Target: e.Target, RequestID: e.RequestID,
			Status: e.Status, Outcome: e.Outcome, Detail: e.Detail, Remote: e.Remote, Count: e.Count, Host: e.Host})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
