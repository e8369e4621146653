package apiserver

import (
	"context"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"backupd/api"
	"backupd/models"
)

// WorkerState is how the worker running in this process (backupd all)
// fares: a worker that cannot start keeps retrying, and says why here.
type WorkerState struct {
	Running  bool
	Error    string
	Since    time.Time // of the current state
	Attempts int
}

// workerInfo is one host's task queue as Temporal sees it.
type workerInfo struct {
	Host            string     `json:"host"`
	TaskQueue       string     `json:"task_queue"`
	WorkflowPollers int        `json:"workflow_pollers"`
	ActivityPollers int        `json:"activity_pollers"`
	LastPoll        *time.Time `json:"-"`
	Identities      []string   `json:"identities"`
	Err             string     `json:"-"`
}

func (w workerInfo) view() api.WorkerView {
	v := api.WorkerView{Host: w.Host, TaskQueue: w.TaskQueue, WorkflowPollers: w.WorkflowPollers,
		ActivityPollers: w.ActivityPollers, Identities: nonNil(w.Identities), LastPoll: rfc3339ptr(w.LastPoll),
		Status: "polling"}
	if w.WorkflowPollers == 0 || w.ActivityPollers == 0 {
		v.Status = "no_worker"
	}
	if w.Err != "" {
		v.Status, v.Error = "unknown", w.Err
	}
	return v
}

// workerCache keeps the last answer for a moment: status, health and
// every progress poll ask.
type workerCache struct {
	mu   sync.Mutex
	at   time.Time
	info []workerInfo
}

// workers lists each host's task queue with the workers polling it (one
// host per server today: this configuration's).
func (s *Server) workers(ctx context.Context) []workerInfo {
	s.wcache.mu.Lock()
	defer s.wcache.mu.Unlock()
	if time.Since(s.wcache.at) < 2*time.Second && s.wcache.info != nil {
		return s.wcache.info
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	w := workerInfo{Host: s.Cfg.Host, TaskQueue: s.Cfg.Temporal.TaskQueue}
	seen := map[string]bool{}
	for _, tq := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
		d, err := s.Temporal.DescribeTaskQueue(ctx, w.TaskQueue, tq)
		if err != nil {
			w.Err = err.Error()
			continue
		}
		for _, p := range d.Pollers {
			if tq == enumspb.TASK_QUEUE_TYPE_WORKFLOW {
				w.WorkflowPollers++
			} else {
				w.ActivityPollers++
			}
			if t := p.GetLastAccessTime(); t != nil {
				at := t.AsTime().UTC()
				if w.LastPoll == nil || at.After(*w.LastPoll) {
					w.LastPoll = &at
				}
			}
			if id := p.GetIdentity(); id != "" && !seen[id] {
				seen[id] = true
				w.Identities = append(w.Identities, id)
			}
		}
	}
	s.wcache.info, s.wcache.at = []workerInfo{w}, time.Now()
	return s.wcache.info
}

// waitingForWorker says why a job cannot move when no worker polls its
// host's task queue ("" when one does, or Temporal cannot tell).
func (s *Server) waitingForWorker(ctx context.Context) string {
	for _, w := range s.workers(ctx) {
		if w.Err == "" && w.WorkflowPollers == 0 {
			msg := "no worker polls task queue " + w.TaskQueue + " (host " + w.Host + "): the job waits until one does; start 'backupd worker' on " + w.Host
			if s.LocalWorkerState != nil {
				if st := s.LocalWorkerState(); !st.Running && st.Error != "" {
					msg += "; this process's worker cannot start: " + st.Error
				}
			}
			return msg
		}
	}
	return ""
}

// hostQueues caches whether each enrolled host's task queue has an
// activity poller, for a moment (every progress poll asks).
type hostQueues struct {
	mu sync.Mutex
	m  map[string]hostQueueState
}

type hostQueueState struct {
	at      time.Time
	pollers int
	err     error
}

// waitingForHost says why a job of an enrolled host cannot move when no
// worker polls its queue ("" when one does, or Temporal cannot tell).
func (s *Server) waitingForHost(ctx context.Context, host string) string {
	q := HostTaskQueue(host)
	if h, err := s.Store.GetHost(ctx, host); err == nil && !hostOnline(h) {
		// stopped, silent or revoked: Temporal may list its last poller
		// for minutes yet
		if h.Status == models.HostRevoked {
			return "host " + host + " is revoked: its worker is refused, and the job waits until the host is enrolled again or the job is cancelled"
		}
		return "host " + host + " is offline (its worker stopped or stopped announcing itself): the job waits until it returns (backupd host show " + host + ")"
	}
	s.hq.mu.Lock()
	if s.hq.m == nil {
		s.hq.m = map[string]hostQueueState{}
	}
	st, ok := s.hq.m[q]
	s.hq.mu.Unlock()
	if !ok || time.Since(st.at) > 2*time.Second {
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		d, err := s.Temporal.DescribeTaskQueue(dctx, q, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
		cancel()
		st = hostQueueState{at: time.Now(), err: err}
		if err == nil {
			st.pollers = len(d.Pollers)
		}
		s.hq.mu.Lock()
		s.hq.m[q] = st
		s.hq.mu.Unlock()
	}
	if st.err != nil || st.pollers > 0 {
		return ""
	}
	return "host " + host + "'s worker is not polling task queue " + q + ": the job waits until it returns (backupd host show " + host + ")"
}
