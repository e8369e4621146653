package apiclient

import (
	"context"
	"encoding/json"
	"net/url"

	"backupd/api"
)

// The fleet's routes.
var (
	EpHosts            = Endpoint{"GET", "/backup/hosts"}
	EpHost             = Endpoint{"GET", "/backup/hosts/{host_id}"}
	EpRevokeHost       = Endpoint{"DELETE", "/backup/hosts/{host_id}"}
	EpCreateEnrolment  = Endpoint{"POST", "/backup/hosts/enrolments"}
	EpEnrolments       = Endpoint{"GET", "/backup/hosts/enrolments"}
	EpCancelEnrolment  = Endpoint{"DELETE", "/backup/hosts/enrolments/{enrolment_id}"}
	EpEnrol            = Endpoint{"POST", "/backup/hosts/enrol"}
	EpAnnounce         = Endpoint{"POST", "/backup/hosts/self/announce"}
	EpRotateCredential = Endpoint{"POST", "/backup/hosts/self/credential"}
	EpHostQuota        = Endpoint{"PUT", "/backup/hosts/{host_id}/quota"}
)

func init() {
	Endpoints = append(Endpoints, EpHosts, EpHost, EpRevokeHost, EpCreateEnrolment, EpEnrolments, EpCancelEnrolment,
		EpEnrol, EpAnnounce, EpRotateCredential, EpHostQuota)
}

// HostQuery filters GET /backup/hosts.
type HostQuery struct {
	State  string // online | offline | revoked
	Labels string // key=value[,key=value...]
}

// Hosts is GET /backup/hosts.
func (c *Client) Hosts(ctx context.Context, q HostQuery) (api.HostList, json.RawMessage, error) {
	v := url.Values{}
	set(v, "state", q.State)
	set(v, "labels", q.Labels)
	var out api.HostList
	raw, err := c.get(ctx, EpHosts, v, &out)
	return out, raw, err
}

// Host is GET /backup/hosts/{host_id} (an id or a name).
func (c *Client) Host(ctx context.Context, id string) (api.Host, json.RawMessage, error) {
	var out api.Host
	raw, err := c.get(ctx, EpHost, nil, &out, id)
	return out, raw, err
}

// RevokeHost is DELETE /backup/hosts/{host_id}.
func (c *Client) RevokeHost(ctx context.Context, id string) (api.HostRevoked, json.RawMessage, error) {
	var out api.HostRevoked
	raw, err := c.call(ctx, EpRevokeHost.Method, EpRevokeHost.path(id), nil, nil, &out)
	return out, raw, err
}

// CreateEnrolment is POST /backup/hosts/enrolments.
func (c *Client) CreateEnrolment(ctx context.Context, req api.EnrolmentRequest) (api.EnrolmentCreated, json.RawMessage, error) {
	var out api.EnrolmentCreated
	raw, err := c.call(ctx, EpCreateEnrolment.Method, EpCreateEnrolment.path(), nil, req, &out)
	return out, raw, err
}

// Enrolments is GET /backup/hosts/enrolments.
func (c *Client) Enrolments(ctx context.Context) (api.EnrolmentList, json.RawMessage, error) {
	var out api.EnrolmentList
	raw, err := c.get(ctx, EpEnrolments, nil, &out)
	return out, raw, err
}

// CancelEnrolment is DELETE /backup/hosts/enrolments/{enrolment_id}.
func (c *Client) CancelEnrolment(ctx context.Context, id string) (api.EnrolmentCancelled, json.RawMessage, error) {
	var out api.EnrolmentCancelled
	raw, err := c.call(ctx, EpCancelEnrolment.Method, EpCancelEnrolment.path(id), nil, nil, &out)
	return out, raw, err
}

// Enrol is POST /backup/hosts/enrol (the client needs no token).
func (c *Client) Enrol(ctx context.Context, req api.EnrolRequest) (api.Enrolled, error) {
	var out api.Enrolled
	_, err := c.call(ctx, EpEnrol.Method, EpEnrol.path(), nil, req, &out)
	return out, err
}

// Announce is POST /backup/hosts/self/announce (a host's credential).
func (c *Client) Announce(ctx context.Context, req api.AnnounceRequest) (api.Announced, error) {
	var out api.Announced
	_, err := c.call(ctx, EpAnnounce.Method, EpAnnounce.path(), nil, req, &out)
	return out, err
}

// RotateCredential is POST /backup/hosts/self/credential.
func (c *Client) RotateCredential(ctx context.Context) (api.CredentialRotated, error) {
	var out api.CredentialRotated
	_, err := c.call(ctx, EpRotateCredential.Method, EpRotateCredential.path(), nil, nil, &out)
	return out, err
}

// SetHostQuota is PUT /backup/hosts/{host_id}/quota.
func (c *Client) SetHostQuota(ctx context.Context, id string, soft, hard int64) (api.HostQuotaSet, json.RawMessage, error) {
	var out api.HostQuotaSet
	raw, err := c.call(ctx, EpHostQuota.Method, EpHostQuota.path(id), nil, api.HostQuotaRequest{SoftBytes: &soft, HardBytes: &hard}, &out)
	return out, raw, err
}
