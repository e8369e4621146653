package api

import "encoding/json"

// ApprovalStatuses: a held call's life.
var ApprovalStatuses = []string{"pending", "executed", "failed", "rejected", "expired"}

// ApprovalPending answers a destructive call that approvals hold (202).
type ApprovalPending struct {
	ApprovalID string `json:"approval_id" required:"true"`
	Status     string `json:"status" required:"true" enum:"approval_status"`
	Action     string `json:"action" required:"true" example:"\"backup.delete\""`
	ExpiresAt  string `json:"expires_at" required:"true" format:"date-time"`
	Message    string `json:"message" required:"true"`
}

// Approval is one held call as GET /backup/approvals shows it.
type Approval struct {
	ID           string          `json:"id" required:"true"`
	Action       string          `json:"action" required:"true"`
	Target       string          `json:"target" required:"true" doc:"what it acts on (a backup id, ...)"`
	Method       string          `json:"method" required:"true"`
	Path         string          `json:"path" required:"true"`
	Query        string          `json:"query" required:"true"`
	Body         json.RawMessage `json:"body,omitempty" doc:"the call's JSON body"`
	RequestedBy  string          `json:"requested_by" required:"true"`
	Status       string          `json:"status" required:"true" enum:"approval_status"`
	Created      string          `json:"created" required:"true" format:"date-time"`
	ExpiresAt    string          `json:"expires_at" required:"true" format:"date-time"`
	DecidedBy    string          `json:"decided_by,omitempty"`
	DecidedAt    *string         `json:"decided_at,omitempty" format:"date-time"`
	ResultStatus int             `json:"result_status,omitempty" doc:"the HTTP status the call answered when it ran"`
	Result       json.RawMessage `json:"result,omitempty" doc:"what it answered"`
}

// ApprovalList is GET /backup/approvals.
type ApprovalList struct {
	Approvals []Approval `json:"approvals" required:"true"`
}

// ApprovalDecision is the body of POST /backup/approvals/{id}/approve and
// /reject.
type ApprovalDecision struct {
	TOTPCode string `json:"totp_code,omitempty" pattern:"^[0-9]{6}$" doc:"a current code of the approver's authenticator (required when approvals.totp is on)"`
	Reason   string `json:"reason,omitempty" maxLength:"2000"`
}

// TOTPEnrolled answers POST /backup/tokens/self/totp: the secret, once.
type TOTPEnrolled struct {
	Secret     string `json:"secret" required:"true" doc:"base32; shown once"`
	OTPAuthURL string `json:"otpauth_url" required:"true" doc:"for an authenticator app (as a QR code)"`
	Message    string `json:"message" required:"true"`
}
