package apiclient

import (
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"backupd/api"
)

// Endpoint is one route the client calls, as the OpenAPI document names
// it (below Prefix, with {parameters}).
type Endpoint struct{ Method, Path string }

// The routes the client calls. Endpoints lists them: every one is in the
// server's OpenAPI document (the end-to-end tests check it), so the
// client uses nothing the public API does not describe.
var (
	EpStatus          = Endpoint{"GET", "/backup/status"}
	EpHealth          = Endpoint{"GET", "/backup/health"}
	EpList            = Endpoint{"GET", "/backup/list"}
	EpDetails         = Endpoint{"GET", "/backup/details/{backup_id}"}
	EpCreate          = Endpoint{"POST", "/backup/create"}
	EpDelete          = Endpoint{"DELETE", "/backup/{backup_id}"}
	EpVerify          = Endpoint{"POST", "/backup/verify"}
	EpVerifyReport    = Endpoint{"GET", "/backup/verify/report/{verification_id}"}
	EpRestore         = Endpoint{"POST", "/backup/restore"}
	EpBackupProgress  = Endpoint{"GET", "/backup/progress"}
	EpRestoreProgress = Endpoint{"GET", "/backup/restore/progress"}
	EpSchedules       = Endpoint{"GET", "/backup/schedules"}
	EpPutSchedule     = Endpoint{"POST", "/backup/schedules"}
	EpDeleteSchedule  = Endpoint{"DELETE", "/backup/schedules/{schedule_id}"}
	EpTriggerSchedule = Endpoint{"POST", "/backup/schedules/{schedule_id}/trigger"}
	EpJobs            = Endpoint{"GET", "/backup/jobs"}
	EpCancelJob       = Endpoint{"POST", "/backup/jobs/cancel"}
	EpPauseJob        = Endpoint{"POST", "/backup/jobs/pause"}
	EpResumeJob       = Endpoint{"POST", "/backup/jobs/resume"}
	EpDebugBundle     = Endpoint{"GET", "/backup/debug-bundle"}
	EpWebSocket       = Endpoint{"GET", "/ws/backup"}
)

// Endpoints are all the routes the client calls.
var Endpoints = []Endpoint{EpStatus, EpHealth, EpList, EpDetails, EpCreate, EpDelete, EpVerify, EpVerifyReport,
	EpRestore, EpBackupProgress, EpRestoreProgress, EpSchedules, EpPutSchedule, EpDeleteSchedule, EpTriggerSchedule,
	EpJobs, EpCancelJob, EpPauseJob, EpResumeJob, EpDebugBundle, EpWebSocket}

var pathParam = regexp.MustCompile(`\{[a-z_]+\}`)

// path is the endpoint's path with its parameter filled in.
func (e Endpoint) path(arg ...string) string {
	i := 0
	return pathParam.ReplaceAllStringFunc(e.Path, func(string) string {
		v := ""
		if i < len(arg) {
			v = url.PathEscape(arg[i])
		}
		i++
		return v
	})
}

func (c *Client) get(ctx context.Context, ep Endpoint, query url.Values, out any, arg ...string) (json.RawMessage, error) {
	return c.call(ctx, ep.Method, ep.path(arg...), query, nil, out)
}

// Status is GET /backup/status.
func (c *Client) Status(ctx context.Context) (api.SystemStatus, json.RawMessage, error) {
	var v api.SystemStatus
	raw, err := c.get(ctx, EpStatus, nil, &v)
	return v, raw, err
}

// Health is GET /backup/health.
func (c *Client) Health(ctx context.Context) (api.Health, json.RawMessage, error) {
	var v api.Health
	raw, err := c.get(ctx, EpHealth, nil, &v)
	return v, raw, err
}

// BackupQuery filters GET /backup/list (empty fields are not sent).
type BackupQuery struct {
	Type, Status, Since, Until, ScheduleID, Host string
	Limit, Page                                  int
}

func (q BackupQuery) values() url.Values {
	v := url.Values{}
	set(v, "type", q.Type)
	set(v, "status", q.Status)
	set(v, "since", q.Since)
	set(v, "until", q.Until)
	set(v, "schedule_id", q.ScheduleID)
	set(v, "host", q.Host)
	setInt(v, "limit", q.Limit)
	setInt(v, "page", q.Page)
	return v
}

func set(v url.Values, k, s string) {
	if s != "" {
		v.Set(k, s)
	}
}

func setInt(v url.Values, k string, n int) {
	if n > 0 {
		v.Set(k, strconv.Itoa(n))
	}
}

// Backups is GET /backup/list.
func (c *Client) Backups(ctx context.Context, q BackupQuery) (api.BackupList, json.RawMessage, error) {
	var v api.BackupList
	raw, err := c.get(ctx, EpList, q.values(), &v)
	return v, raw, err
}

// Backup is GET /backup/details/{backup_id}.
func (c *Client) Backup(ctx context.Context, id string) (api.BackupDetails, json.RawMessage, error) {
	var v api.BackupDetails
	raw, err := c.get(ctx, EpDetails, nil, &v, id)
	return v, raw, err
}

// CreateBackup is POST /backup/create.
func (c *Client) CreateBackup(ctx context.Context, req api.CreateBackupRequest) (api.BackupStarted, json.RawMessage, error) {
	var v api.BackupStarted
	raw, err := c.call(ctx, EpCreate.Method, EpCreate.path(), nil, req, &v)
	return v, raw, err
}

// DeleteBackup is DELETE /backup/{backup_id}: force deletes even a
// protected backup or one retention keeps; locations (default all) are
// the locations to delete it from.
func (c *Client) DeleteBackup(ctx context.Context, id string, force bool, locations []string) (api.BackupDeletion, json.RawMessage, error) {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	set(q, "locations", strings.Join(locations, ","))
	var v api.BackupDeletion
	raw, err := c.call(ctx, EpDelete.Method, EpDelete.path(id), q, nil, &v)
	return v, raw, err
}

// Verify is POST /backup/verify.
func (c *Client) Verify(ctx context.Context, req api.VerifyRequest) (api.VerifyStarted, json.RawMessage, error) {
	var v api.VerifyStarted
	raw, err := c.call(ctx, EpVerify.Method, EpVerify.path(), nil, req, &v)
	return v, raw, err
}

// VerifyReportAnswer is GET /backup/verify/report/{id}'s answer: the
// report once the job stored it, Pending before (or when the job ended
// without one).
type VerifyReportAnswer struct {
	Report  *api.VerifyReport
	Pending *api.ReportPending
}

// VerifyReport is GET /backup/verify/report/{verification_id}.
func (c *Client) VerifyReport(ctx context.Context, id string) (VerifyReportAnswer, json.RawMessage, error) {
	var head struct {
		Created *string `json:"created"` // only a stored report has it (api.ReportHead)
	}
	raw, err := c.get(ctx, EpVerifyReport, nil, &head, id)
	if err != nil {
		return VerifyReportAnswer{}, nil, err
	}
	var a VerifyReportAnswer
	if head.Created != nil {
		a.Report = &api.VerifyReport{}
		err = json.Unmarshal(raw, a.Report)
	} else {
		a.Pending = &api.ReportPending{}
		err = json.Unmarshal(raw, a.Pending)
	}
	return a, raw, err
}

// Restore is POST /backup/restore.
func (c *Client) Restore(ctx context.Context, req api.RestoreRequest) (api.RestoreStarted, json.RawMessage, error) {
	var v api.RestoreStarted
	raw, err := c.call(ctx, EpRestore.Method, EpRestore.path(), nil, req, &v)
	return v, raw, err
}

// BackupProgress is GET /backup/progress: of the job, or (jobID empty)
// the latest running backup's.
func (c *Client) BackupProgress(ctx context.Context, jobID string) (api.JobProgress, json.RawMessage, error) {
	q := url.Values{}
	set(q, "job_id", jobID)
	var v api.JobProgress
	raw, err := c.get(ctx, EpBackupProgress, q, &v)
	return v, raw, err
}

// RestoreProgress is GET /backup/restore/progress: of the job, or (jobID
// empty) the latest running restore's.
func (c *Client) RestoreProgress(ctx context.Context, jobID string) (api.JobProgress, json.RawMessage, error) {
	q := url.Values{}
	set(q, "job_id", jobID)
	var v api.JobProgress
	raw, err := c.get(ctx, EpRestoreProgress, q, &v)
	return v, raw, err
}

// Schedules is GET /backup/schedules.
func (c *Client) Schedules(ctx context.Context) (api.ScheduleList, json.RawMessage, error) {
	var v api.ScheduleList
	raw, err := c.get(ctx, EpSchedules, nil, &v)
	return v, raw, err
}

// PutSchedule is POST /backup/schedules (creates, or updates an existing id).
func (c *Client) PutSchedule(ctx context.Context, req api.ScheduleRequest) (api.ScheduleSaved, json.RawMessage, error) {
	var v api.ScheduleSaved
	raw, err := c.call(ctx, EpPutSchedule.Method, EpPutSchedule.path(), nil, req, &v)
	return v, raw, err
}

// DeleteSchedule is DELETE /backup/schedules/{schedule_id}.
func (c *Client) DeleteSchedule(ctx context.Context, id string) (api.ScheduleAction, json.RawMessage, error) {
	var v api.ScheduleAction
	raw, err := c.call(ctx, EpDeleteSchedule.Method, EpDeleteSchedule.path(id), nil, nil, &v)
	return v, raw, err
}

// TriggerSchedule is POST /backup/schedules/{schedule_id}/trigger.
func (c *Client) TriggerSchedule(ctx context.Context, id string) (api.ScheduleAction, json.RawMessage, error) {
	var v api.ScheduleAction
	raw, err := c.call(ctx, EpTriggerSchedule.Method, EpTriggerSchedule.path(id), nil, nil, &v)
	return v, raw, err
}

// JobQuery filters GET /backup/jobs (empty fields are not sent).
type JobQuery struct {
	Status, Type string
	Limit, Page  int
}

// Jobs is GET /backup/jobs.
func (c *Client) Jobs(ctx context.Context, q JobQuery) (api.JobList, json.RawMessage, error) {
	v := url.Values{}
	set(v, "status", q.Status)
	set(v, "type", q.Type)
	setInt(v, "limit", q.Limit)
	setInt(v, "page", q.Page)
	var out api.JobList
	raw, err := c.get(ctx, EpJobs, v, &out)
	return out, raw, err
}

// CancelJob is POST /backup/jobs/cancel.
func (c *Client) CancelJob(ctx context.Context, req api.CancelRequest) (api.CancelResponse, json.RawMessage, error) {
	var v api.CancelResponse
	raw, err := c.call(ctx, EpCancelJob.Method, EpCancelJob.path(), nil, req, &v)
	return v, raw, err
}

// PauseJob is POST /backup/jobs/pause (backups only).
func (c *Client) PauseJob(ctx context.Context, jobID string) (api.JobControlResponse, json.RawMessage, error) {
	var v api.JobControlResponse
	raw, err := c.call(ctx, EpPauseJob.Method, EpPauseJob.path(), nil, api.JobRequest{JobID: jobID}, &v)
	return v, raw, err
}

// ResumeJob is POST /backup/jobs/resume.
func (c *Client) ResumeJob(ctx context.Context, jobID string) (api.JobControlResponse, json.RawMessage, error) {
	var v api.JobControlResponse
	raw, err := c.call(ctx, EpResumeJob.Method, EpResumeJob.path(), nil, api.JobRequest{JobID: jobID}, &v)
	return v, raw, err
}
