package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/websocket"

	"backupd/api"
)

// Event is one thing learnt about a followed job: a WebSocket message
// (Backup, Restore or Complete), or an answer of the job's progress or
// report endpoint (Polled, Report or Pending), asked when the socket
// cannot tell: just after subscribing (the job may have ended before),
// after the socket dropped, and now and then while it is quiet. Raw is
// the message or answer as it came.
type Event struct {
	Raw      json.RawMessage
	Backup   *api.BackupProgressMessage
	Restore  *api.RestoreProgressMessage
	Complete *api.JobCompleteMessage
	Polled   *api.JobProgress
	Report   *api.VerifyReport
	Pending  *api.ReportPending
}

// Ended tells whether the event says the job ended.
func (e Event) Ended() bool {
	switch {
	case e.Complete != nil, e.Report != nil:
		return true
	case e.Polled != nil:
		return e.Polled.Status == "completed" || e.Polled.Status == "failed"
	case e.Pending != nil:
		return e.Pending.Status == "failed" // ended without a report
	}
	return false
}

// Watch names the job to follow.
type Watch struct {
	Kind  api.JobType // backup, restore or verify
	JobID string
	// VerificationID is a verify job's id for its report, which is
	// where a verification's end is read when the socket cannot tell.
	VerificationID string
}

// FollowOptions tune Follow; zero fields take the defaults.
type FollowOptions struct {
	// PollEvery: while the socket is open and quiet, ask the endpoint
	// this often too, so a job_complete the socket lost cannot hang the
	// wait (default 15 s).
	PollEvery time.Duration
	// MinBackoff, MaxBackoff bound the wait before reconnecting a
	// dropped socket (default 250 ms, doubling to 5 s).
	MinBackoff, MaxBackoff time.Duration
	// GiveUpAfter: neither the socket nor the endpoint has answered for
	// this long (default 2 minutes).
	GiveUpAfter time.Duration
}

func (o *FollowOptions) defaults() {
	if o.PollEvery <= 0 {
		o.PollEvery = 15 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Second, o.MinBackoff)
	}
	if o.GiveUpAfter <= 0 {
		o.GiveUpAfter = 2 * time.Minute
	}
}

// wsTypes are the messages a follower subscribes to.
const wsTypes = "backup_progress,restore_progress,job_complete"

// Follow watches a job until it ends and returns the event that says so
// (a job_complete, or the endpoint's answer when the end was learnt by
// asking). Each event on the way, the last one too, goes to on (if not
// nil). It subscribes to the job's WebSocket messages, then asks the
// job's endpoint once, so a job that ended before the socket opened is
// not missed; a dropped socket is reconnected with backoff, asking the
// endpoint each time. The server refusing the socket or the question
// (a token, a role, an unknown job) ends it with that *Error; ctx ending
// ends it with ctx's error.
func (c *Client) Follow(ctx context.Context, w Watch, opt FollowOptions, on func(Event)) (Event, error) {
	opt.defaults()
	if on == nil {
		on = func(Event) {}
	}
	switch w.Kind {
	case api.JobBackup, api.JobRestore:
	case api.JobVerify:
		if w.VerificationID == "" {
			return Event{}, errors.New("following a verify job needs its verification id")
		}
	default:
		return Event{}, fmt.Errorf("cannot follow a %q job: backup, restore and verify jobs only", w.Kind)
	}
	if w.JobID == "" {
		return Event{}, errors.New("no job id to follow")
	}
	q := url.Values{"job_id": {w.JobID}, "types": {wsTypes}}
	backoff := opt.MinBackoff
	lastContact := time.Now()
	for {
		conn, err := c.dialWS(ctx, q)
		if err == nil {
			lastContact = time.Now()
			ev, ended, serr := c.session(ctx, conn, w, opt, on)
			conn.Close()
			if ended || serr != nil {
				return ev, serr
			}
			if time.Since(lastContact) > 5*time.Second {
				backoff = opt.MinBackoff // it had been up a while: a fresh drop
			}
			lastContact = time.Now()
		} else {
			if ctx.Err() != nil {
				return Event{}, ctx.Err()
			}
			if refused(err) {
				return Event{}, err
			}
			// the socket does not open: the endpoint may still tell
			ev, perr := c.check(ctx, w)
			switch {
			case perr == nil:
				lastContact = time.Now()
				on(ev)
				if ev.Ended() {
					return ev, nil
				}
			case refused(perr), ctx.Err() != nil:
				return Event{}, perr
			}
			if time.Since(lastContact) > opt.GiveUpAfter {
				return Event{}, fmt.Errorf("lost the job %s: nothing answered for %v: %w", w.JobID, opt.GiveUpAfter.Round(time.Second), err)
			}
		}
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, opt.MaxBackoff)
	}
}

// refused: the server answered, and no retry changes its answer (the
// token, the role, an unknown job, a bad request).
func refused(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode >= 400 && e.StatusCode < 500 && e.StatusCode != http.StatusTooManyRequests
}

// session reads one socket until the job ends (ended), the socket drops
// (neither ended nor err), or the server refuses (err).
func (c *Client) session(ctx context.Context, conn *websocket.Conn, w Watch, opt FollowOptions, on func(Event)) (Event, bool, error) {
	msgs := make(chan []byte)
	dropped := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(dropped)
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				return
			}
			select {
			case msgs <- b:
			case <-stop:
				return
			}
		}
	}()
	// subscribed: what happened before is the endpoint's to say
	ask := func() (Event, bool, error) {
		ev, err := c.check(ctx, w)
		if err != nil {
			if refused(err) || ctx.Err() != nil {
				return Event{}, true, err
			}
			return Event{}, false, nil // the socket still tells
		}
		on(ev)
		return ev, ev.Ended(), nil
	}
	if ev, ended, err := ask(); ended || err != nil {
		return ev, true, err
	}
	tick := time.NewTicker(opt.PollEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return Event{}, true, ctx.Err()
		case b := <-msgs:
			ev, ok := decodeMessage(b, w.JobID)
			if !ok {
				continue
			}
			tick.Reset(opt.PollEvery)
			on(ev)
			if ev.Ended() {
				return ev, true, nil
			}
		case <-dropped:
			return Event{}, false, nil
		case <-tick.C:
			if ev, ended, err := ask(); ended || err != nil {
				return ev, true, err
			}
		}
	}
}

// decodeMessage reads a WebSocket message about the job (ok false: not a
// message of the job's, or not one a follower reads).
func decodeMessage(b []byte, jobID string) (Event, bool) {
	var head struct {
		Type  string `json:"type"`
		JobID string `json:"job_id"`
	}
	if json.Unmarshal(b, &head) != nil || head.JobID != jobID {
		return Event{}, false
	}
	ev := Event{Raw: b}
	var err error
	switch head.Type {
	case "backup_progress":
		ev.Backup = &api.BackupProgressMessage{}
		err = json.Unmarshal(b, ev.Backup)
	case "restore_progress":
		ev.Restore = &api.RestoreProgressMessage{}
		err = json.Unmarshal(b, ev.Restore)
	case "job_complete":
		ev.Complete = &api.JobCompleteMessage{}
		err = json.Unmarshal(b, ev.Complete)
	default:
		return Event{}, false
	}
	return ev, err == nil
}

// check asks the job's endpoint where the job is.
func (c *Client) check(ctx context.Context, w Watch) (Event, error) {
	switch w.Kind {
	case api.JobVerify:
		a, raw, err := c.VerifyReport(ctx, w.VerificationID)
		return Event{Raw: raw, Report: a.Report, Pending: a.Pending}, err
	case api.JobRestore:
		p, raw, err := c.RestoreProgress(ctx, w.JobID)
		return Event{Raw: raw, Polled: &p}, err
	default:
		p, raw, err := c.BackupProgress(ctx, w.JobID)
		return Event{Raw: raw, Polled: &p}, err
	}
}
