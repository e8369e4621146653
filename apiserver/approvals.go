package apiserver

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/pquerna/otp/totp"

	"backupd/api"
	"backupd/jobs"
	"backupd/models"
)

// Four-eyes approval (config approvals.enabled). A destructive call is
// held as a pending approval; a second admin, not its requester, approves
// it (with a TOTP code when approvals.totp is on) before it expires, and
// it runs then, as its requester's call, through the same route.

// gatedActions are the audited actions approvals may hold; heldCall says
// which calls of them are held.
var gatedActions = map[string]bool{"backup.delete": true, "backup.protect": true, "cleanup.start": true, "retention.update": true,
	"storage.update": true, "restore.start": true, "restore.rollback": true}

// heldCall says whether a call of a gated action destroys or overwrites:
// a dry run, protecting a backup and a restore into a directory do not.
func heldCall(action string, body []byte) bool {
	var b struct {
		DryRun         *bool   `json:"dry_run"`
		Protected      *bool   `json:"protected"`
		TargetLocation *string `json:"target_location"`
	}
	json.Unmarshal(body, &b)
	switch action {
	case "cleanup.start":
		return b.DryRun != nil && !*b.DryRun
	case "backup.protect":
		return b.Protected == nil || !*b.Protected
	case "restore.start":
		return b.TargetLocation == nil || *b.TargetLocation == "" || *b.TargetLocation == "original"
	}
	return gatedActions[action]
}

// approvedKey marks the request an approval runs (a context value: no
// client can send it).
type approvedKey struct{}

type approvedRun struct {
	approval *models.Approval
	token    *models.Token // the requester's
}

func tokenOf(r *http.Request) *models.Token {
	if st := stateOf(r); st != nil {
		return st.token
	}
	return nil
}

func approvedRunOf(r *http.Request) *approvedRun {
	a, _ := r.Context().Value(approvedKey{}).(*approvedRun)
	return a
}

// requestRole is the role a route needs of its caller: with approvals on,
// an operator may ask for an admin's destructive call (held for a second
// admin), but nothing more (see holdForApproval).
func (s *Server) requestRole(rt route) string {
	if s.Cfg.Approvals.Enabled && gatedActions[rt.Action] && rt.Role == "admin" {
		return "operator"
	}
	return rt.Role
}

// maxHeldBody bounds what a held call's body may be.
const maxHeldBody = 1 << 20

// holdForApproval holds a destructive call for approval, or refuses what
// the relaxed role let through but is not held; true when it answered.
func (s *Server) holdForApproval(w http.ResponseWriter, r *http.Request, rt route, st *reqState) bool {
	if !gatedActions[rt.Action] || approvedRunOf(r) != nil || st.token == nil || (!s.Cfg.Approvals.Enabled && !st.token.RequireTOTP) {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxHeldBody+1))
	if err != nil {
		s.writeError(w, r, err)
		return true
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !heldCall(rt.Action, body) {
		if models.RoleRank(st.token.Role) < models.RoleRank(rt.Role) {
			s.writeError(w, r, &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN",
				Message: sprintf("%s %s needs the %s role; this token has %s (with approvals on, an operator may only ask for the destructive form of this call)", rt.Method, rt.Path, rt.Role, st.token.Role)})
			return true
		}
		return false
	}
	if st.token.RequireTOTP {
		// this token's destructive calls need its authenticator's code
		if err := s.checkTOTP(r.Context(), st.token, r.Header.Get("X-Backupd-TOTP")); err != nil {
			s.writeError(w, r, err)
			return true
		}
	}
	if !s.Cfg.Approvals.Enabled {
		return false
	}
	if len(body) > maxHeldBody {
		s.writeError(w, r, &apiError{Status: http.StatusRequestEntityTooLarge, Code: "REQUEST_TOO_LARGE", Message: "the request body is over 1 MiB"})
		return true
	}
	now := time.Now().UTC()
	var target []string
	for _, v := range mux.Vars(r) {
		target = append(target, v)
	}
	st.target = strings.Join(target, " ")
	a := &models.Approval{ID: jobs.NewID("APPROVAL-"), Action: rt.Action, Target: st.target, Method: r.Method,
		Path: strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/v1"), "/cloud-integration"), RawQuery: r.URL.RawQuery,
		Body: body, RequestedBy: user(r), TokenID: st.token.ID, Status: "pending", CreatedAt: now,
		ExpiresAt: now.Add(s.Cfg.Approvals.ExpiryDuration())}
	if err := s.Store.PutApproval(r.Context(), a); err != nil {
		s.writeError(w, r, err)
		return true
	}
	st.outcomeDetail = "held for approval " + a.ID
	writeJSON(w, http.StatusAccepted, api.ApprovalPending{ApprovalID: a.ID, Status: a.Status, Action: a.Action,
		ExpiresAt: rfc3339(a.ExpiresAt),
		Message:   fmt.Sprintf("held for approval: a second admin approves it (POST /backup/approvals/%s/approve) before %s, and it runs then", a.ID, rfc3339(a.ExpiresAt))})
	return true
}

// listApprovals answers GET /backup/approvals.
func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := onlyParams(q, "status"); err != nil {
		return err
	}
	st := q.Get("status")
	if st != "" {
		if err := oneOf("status", st, api.ApprovalStatuses...); err != nil {
			return err
		}
	}
	s.expireApprovals(r.Context())
	rows, err := s.Store.ListApprovals(r.Context(), st, 200)
	if err != nil {
		return err
	}
	out := api.ApprovalList{Approvals: []api.Approval{}}
	for i := range rows {
		out.Approvals = append(out.Approvals, approvalOut(&rows[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getApproval answers GET /backup/approvals/{approval_id}.
func (s *Server) getApproval(w http.ResponseWriter, r *http.Request) error {
	s.expireApprovals(r.Context())
	a, err := s.approvalOf(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, approvalOut(a))
	return nil
}

// expireApprovals marks pending approvals past their time expired.
func (s *Server) expireApprovals(ctx context.Context) {
	rows, err := s.Store.ListApprovals(ctx, "pending", 1000)
	if err != nil {
		return
	}
	now := time.Now().UTC()
	for _, a := range rows {
		if now.After(a.ExpiresAt) {
			s.Store.DecideApproval(ctx, a.ID, "expired", "", now)
		}
	}
}

func (s *Server) approvalOf(r *http.Request) (*models.Approval, error) {
	id := mux.Vars(r)["approval_id"]
	setTarget(r, id)
	a, err := s.Store.GetApproval(r.Context(), id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: sprintf("no approval %q (GET /backup/approvals lists them)", id)}
	}
	return a, err
}

// decideApproval answers approve and reject.
func (s *Server) decideApproval(approve bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req api.ApprovalDecision
		if err := decode(w, r, &req); err != nil {
			return err
		}
		ctx := r.Context()
		a, err := s.approvalOf(r)
		if err != nil {
			return err
		}
		me := tokenOf(r)
		if me == nil || me.ID == a.TokenID {
			return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN",
				Message: "the requester cannot decide their own request: a second admin (another token) must"}
		}
		if approve && (s.Cfg.Approvals.TOTP || me.RequireTOTP) {
			if err := s.checkTOTP(ctx, me, req.TOTPCode); err != nil {
				return err
			}
		}
		now := time.Now().UTC()
		if a.Status == "pending" && now.After(a.ExpiresAt) {
			s.Store.DecideApproval(ctx, a.ID, "expired", "", now)
			a.Status = "expired"
		}
		if a.Status != "pending" {
			return conflictErr("approval %s is %s: only a pending request can be decided (ask again)", a.ID, a.Status)
		}
		status := "rejected"
		if approve {
			status = "executed"
		}
		ok, err := s.Store.DecideApproval(ctx, a.ID, status, user(r), now)
		if err != nil {
			return err
		}
		if !ok {
			return conflictErr("approval %s was decided meanwhile", a.ID)
		}
		if !approve {
			a.Status, a.DecidedBy, a.DecidedAt = status, user(r), &now
			writeJSON(w, http.StatusOK, approvalOut(a))
			return nil
		}
		// the call runs now, as its requester's, through its own route
		// (audited there, with the approver in the detail)
		requester, err := s.Store.TokenByID(ctx, a.TokenID)
		if err != nil {
			return err
		}
		rctx := context.WithValue(context.WithoutCancel(ctx), approvedKey{}, &approvedRun{approval: a, token: requester})
		target := "/cloud-integration" + a.Path
		if a.RawQuery != "" {
			target += "?" + a.RawQuery
		}
		call, _ := http.NewRequestWithContext(rctx, a.Method, target, bytes.NewReader(a.Body))
		call.Header.Set("Content-Type", "application/json")
		call.RemoteAddr = r.RemoteAddr
		rec := httptest.NewRecorder()
		s.router.ServeHTTP(rec, call)
		a.Status, a.DecidedBy, a.DecidedAt, a.ResultStatus = status, user(r), &now, rec.Code
		if rec.Code >= 300 {
			a.Status = "failed"
		}
		if json.Valid(rec.Body.Bytes()) {
			a.Result = models.JSON(rec.Body.Bytes())
		}
		if err := s.Store.PutApproval(ctx, a); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, approvalOut(a))
		return nil
	}
}

func conflictErr(format string, args ...any) error {
	return &apiError{Status: http.StatusConflict, Code: "CONFLICT", Message: sprintf(format, args...)}
}

func approvalOut(a *models.Approval) api.Approval {
	out := api.Approval{ID: a.ID, Action: a.Action, Target: a.Target, Method: a.Method, Path: a.Path, Query: a.RawQuery,
		RequestedBy: a.RequestedBy, Status: a.Status, Created: rfc3339(a.CreatedAt), ExpiresAt: rfc3339(a.ExpiresAt),
		DecidedBy: a.DecidedBy, ResultStatus: a.ResultStatus}
	if json.Valid(a.Body) && len(a.Body) > 0 {
		out.Body = a.Body
	}
	if a.DecidedAt != nil {
		out.DecidedAt = ptr(rfc3339(*a.DecidedAt))
	}
	if len(a.Result) > 0 {
		out.Result = json.RawMessage(a.Result)
	}
	return out
}

// enrolTOTP answers POST /backup/tokens/self/totp: the calling token gets
// an authenticator secret, once (a second enrolment would let whoever
// holds the token replace the authenticator).
func (s *Server) enrolTOTP(w http.ResponseWriter, r *http.Request) error {
	me := tokenOf(r)
	if me.TOTPSecret != "" {
		return conflictErr("this token already has an authenticator; to replace it, create a new token and revoke this one")
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "backupd " + s.Cfg.Host, AccountName: me.Name})
	if err != nil {
		return err
	}
	sealed, err := s.sealTOTP(r.Context(), key.Secret())
	if err != nil {
		return err
	}
	if err := s.Store.SetTOTP(r.Context(), me.ID, sealed); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.TOTPEnrolled{Secret: key.Secret(), OTPAuthURL: key.URL(),
		Message: "Add it to an authenticator app now: the secret is not shown again"})
	return nil
}

// checkTOTP checks a code against the token's authenticator.
func (s *Server) checkTOTP(ctx context.Context, tok *models.Token, code string) error {
	if tok.TOTPSecret == "" {
		return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN",
			Message: "this call needs a TOTP code, and this token has no authenticator: enrol one with POST /backup/tokens/self/totp"}
	}
	secret, err := s.openTOTP(ctx, tok.TOTPSecret)
	if err != nil {
		return err
	}
	if code == "" || !totp.Validate(code, secret) {
		return &apiError{Status: http.StatusForbidden, Code: "FORBIDDEN",
			Message: "the TOTP code is missing or wrong: give the current 6-digit code of this token's authenticator (totp_code)"}
	}
	return nil
}

func (s *Server) totpAEAD(ctx context.Context) (cipher.AEAD, error) {
	key, err := s.Store.ServerSecret(ctx, "totp")
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func (s *Server) sealTOTP(ctx context.Context, secret string) (string, error) {
	g, err := s.totpAEAD(ctx)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, g.NonceSize())
	rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(g.Seal(nonce, nonce, []byte(secret), nil)), nil
}

func (s *Server) openTOTP(ctx context.Context, sealed string) (string, error) {
	g, err := s.totpAEAD(ctx)
	if err != nil {
		return "", err
	}
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < g.NonceSize() {
		return "", errors.New("a token's stored authenticator is damaged")
	}
	p, err := g.Open(nil, b[:g.NonceSize()], b[g.NonceSize():], nil)
	if err != nil {
		return "", errors.New("a token's stored authenticator cannot be opened (the server secret changed?)")
	}
	return string(p), nil
}
