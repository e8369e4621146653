package apiserver

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"backupd/api"
	"backupd/models"
)

func tokenView(t *models.Token) map[string]any {
	return map[string]any{"id": t.ID, "name": t.Name, "role": t.Role, "created_by": t.CreatedBy,
		"created": rfc3339(t.CreatedAt), "expires": rfc3339p(t.ExpiresAt), "last_used": rfc3339p(t.LastUsedAt), "revoked": t.Revoked}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	list, err := s.Store.ListTokens(r.Context())
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(list))
	for i := range list {
		out = append(out, tokenView(&list[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
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
	v := tokenView(t)
	v["token"] = plain
	v["message"] = "store the token now: only its hash is kept"
	writeJSON(w, http.StatusCreated, v)
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
	writeJSON(w, http.StatusOK, map[string]any{"status": "revoked", "id": id})
	return nil
}

func conflictPlain(msg string) error {
	return &apiError{Status: http.StatusConflict, Code: "CONFLICT", Message: msg}
}

// auditOutcomes filter /backup/audit.
var auditOutcomes = []string{"success", "failure", "denied", "started"}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "actor", "action", "outcome", "since", "until", "limit", "page_size", "page"); err != nil {
		return err
	}
	s.flushRefusals(true)
	f := models.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Outcome: q.Get("outcome")}
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
	out := make([]map[string]any, 0, len(list))
	for _, e := range list {
		out = append(out, map[string]any{"id": e.ID, "timestamp": rfc3339(e.Time), "actor": e.Actor, "role": e.Role,
			"method": e.Method, "path": e.Path, "action": e.Action, "target": e.Target, "request_id": e.RequestID,
			"status": e.Status, "outcome": e.Outcome, "detail": e.Detail, "remote": e.Remote, "count": e.Count})
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out, "pagination": api.NewPagination(total, f.Page, f.Limit)})
	return nil
}
