// Package hostgate is the Temporal gateway of enrolled hosts. Their
// workers speak Temporal's gRPC API to the backupd server, with their host
// credential, and never to Temporal itself: the gateway lets through only
// what an activity worker of the host's own task queue needs, binds every
// task it hands out to that host (a MAC on the task token), and forwards
// the rest of the call to the server's Temporal.
//
// So a compromised host can take its own tasks and answer them, and nothing
// else: it cannot start, signal, cancel, terminate, query or list
// workflows, run workflow code, poll another host's queue, or answer a task
// it was not given. What it answers is still its own word; the workflows
// (which run on the server) treat it that way.
package hostgate

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Host is who a credential belongs to.
type Host struct {
	ID, Name string
}

// ErrRefused is what an Authenticate says of a credential it does not
// accept (unknown, revoked, not a host's).
var ErrRefused = errors.New("host credential refused")

// Options configure a gateway.
type Options struct {
	// Service is the server's own connection to Temporal.
	Service workflowservice.WorkflowServiceClient
	// Namespace is the only namespace a host may name.
	Namespace string
	// Queue is the task queue of a host's worker.
	Queue func(Host) string
	// Authenticate maps a bearer credential to its host, or ErrRefused.
	Authenticate func(ctx context.Context, credential string) (Host, error)
	// Key signs task tokens; the same on every server replica and across
	// restarts, so a task outlives the process that handed it out.
	Key []byte
	Log *slog.Logger
	// CacheFor is how long an accepted credential is believed without
	// asking Authenticate again (default 5 s: a revocation takes effect
	// within it).
	CacheFor time.Duration
	// Reserved are task queues no host may poll, whatever its name (the
	// server's own, the catalog's, the host jobs' workflows').
	Reserved []string
	// PollsPerHost bounds a host's long polls at once (default 2: its
	// worker keeps one); CallsPerSecond and Burst bound all its calls
	// (default 50 and 200). Together they keep one host from using up
	// Temporal's per-namespace limits, which the server's own workers need.
	PollsPerHost          int
	CallsPerSecond, Burst float64
}

// Gateway is the gRPC server; it serves the workflow service and gRPC's
// health service.
type Gateway struct {
	o     Options
	mu    sync.Mutex
	cache map[[32]byte]cached
	srv   *grpc.Server
	// per host: polls in flight and its call budget
	polls   map[string]int
	budgets map[string]*budget
	// answers that are the same for every host, kept a minute
	sysInfo *workflowservice.GetSystemInfoResponse
	nsInfo  *workflowservice.DescribeNamespaceResponse
	infoAt  time.Time
}

type budget struct {
	tokens float64
	last   time.Time
}

type cached struct {
	h  Host
	at time.Time
}

// allowed are the workflow service's methods an activity worker calls.
// Everything else is refused before it reaches Temporal.
var allowed = map[string]bool{
	"GetSystemInfo":                true,
	"DescribeNamespace":            true,
	"PollActivityTaskQueue":        true,
	"RecordActivityTaskHeartbeat":  true,
	"RespondActivityTaskCompleted": true,
	"RespondActivityTaskFailed":    true,
	"RespondActivityTaskCanceled":  true,
	"ShutdownWorker":               true,
	"RecordWorkerHeartbeat":        true,
}

const servicePrefix = "/temporal.api.workflowservice.v1.WorkflowService/"

// New builds the gateway.
func New(o Options) *Gateway {
	if o.CacheFor == 0 {
		o.CacheFor = 5 * time.Second
	}
	if o.PollsPerHost == 0 {
		o.PollsPerHost = 2
	}
	if o.CallsPerSecond == 0 {
		o.CallsPerSecond, o.Burst = 50, 200
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	g := &Gateway{o: o, cache: map[[32]byte]cached{}, polls: map[string]int{}, budgets: map[string]*budget{}}
	// Temporal refuses payloads past 2 MB; a request is read whole before
	// it is authenticated, so it is kept small
	g.srv = grpc.NewServer(grpc.ChainUnaryInterceptor(g.guard), grpc.MaxRecvMsgSize(4<<20), grpc.MaxConcurrentStreams(64))
	workflowservice.RegisterWorkflowServiceServer(g.srv, &service{g: g})
	healthpb.RegisterHealthServer(g.srv, healthCheck{})
	return g
}

// healthCheck answers Check only (no Watch streams to hold open).
type healthCheck struct {
	healthpb.UnimplementedHealthServer
}

func (healthCheck) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// Authenticate checks a bearer credential as the gateway does (cached):
// the server refuses a request with a bad one before gRPC reads it.
func (g *Gateway) Authenticate(ctx context.Context, authorization string) error {
	_, err := g.authenticate(metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authorization)))
	return err
}

// spend takes one call from h's budget.
func (g *Gateway) spend(h Host) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	b := g.budgets[h.ID]
	if b == nil {
		if len(g.budgets) > 100000 {
			clear(g.budgets)
		}
		b = &budget{tokens: g.o.Burst, last: now}
		g.budgets[h.ID] = b
	}
	b.tokens = min(g.o.Burst, b.tokens+now.Sub(b.last).Seconds()*g.o.CallsPerSecond)
	b.last = now
	if b.tokens < 1 {
		return status.Errorf(codes.ResourceExhausted, "backupd host gateway: host %s makes more than %.0f calls a second; slow down", h.Name, g.o.CallsPerSecond)
	}
	b.tokens--
	return nil
}

// pollStart takes one of h's poll slots; the func gives it back.
func (g *Gateway) pollStart(h Host) (func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.polls[h.ID] >= g.o.PollsPerHost {
		return nil, status.Errorf(codes.ResourceExhausted, "backupd host gateway: host %s holds %d polls already (at most %d at once)", h.Name, g.polls[h.ID], g.o.PollsPerHost)
	}
	g.polls[h.ID]++
	return func() {
		g.mu.Lock()
		if g.polls[h.ID]--; g.polls[h.ID] <= 0 {
			delete(g.polls, h.ID)
		}
		g.mu.Unlock()
	}, nil
}

// Server is the gRPC server, to be served on a listener or through
// ServeHTTP (HTTP/2 with content type application/grpc).
func (g *Gateway) Server() *grpc.Server { return g.srv }

// IsGRPC tells a gateway request among the API's.
func IsGRPC(protoMajor int, contentType string) bool {
	return protoMajor == 2 && strings.HasPrefix(contentType, "application/grpc")
}

type hostKey struct{}

// guard authenticates every call and refuses the methods a host has no
// business calling.
func (g *Gateway) guard(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, "/grpc.health.v1.Health/") {
		return handler(ctx, req)
	}
	h, err := g.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if err := g.spend(h); err != nil {
		return nil, err
	}
	method, ok := strings.CutPrefix(info.FullMethod, servicePrefix)
	if !ok || !allowed[method] {
		// a worker never calls these: a host that does is misbehaving
		g.o.Log.Warn("host gateway: call refused", "host", h.Name, "host_id", h.ID, "method", info.FullMethod)
		return nil, status.Errorf(codes.PermissionDenied, "backupd host gateway: %s is not open to hosts (a host's worker only takes and answers its own activity tasks)", info.FullMethod)
	}
	if ns, ok := req.(interface{ GetNamespace() string }); ok && ns.GetNamespace() != g.o.Namespace {
		if _, describe := req.(*workflowservice.DescribeNamespaceRequest); !describe || ns.GetNamespace() != "" {
			return nil, status.Errorf(codes.PermissionDenied, "backupd host gateway: namespace %q: hosts use namespace %q (the one the enrolment answer named)", ns.GetNamespace(), g.o.Namespace)
		}
	}
	return handler(context.WithValue(ctx, hostKey{}, h), req)
}

func (g *Gateway) authenticate(ctx context.Context) (Host, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var cred string
	for _, v := range md.Get("authorization") {
		if c, ok := strings.CutPrefix(v, "Bearer "); ok {
			cred = c
		}
	}
	if cred == "" {
		return Host{}, status.Error(codes.Unauthenticated, "backupd host gateway: no host credential (Authorization: Bearer); enrol the host: backupd worker --enrol URL TOKEN")
	}
	k := sha256.Sum256([]byte(cred))
	g.mu.Lock()
	c, ok := g.cache[k]
	g.mu.Unlock()
	if ok && time.Since(c.at) < g.o.CacheFor {
		return c.h, nil
	}
	h, err := g.o.Authenticate(ctx, cred)
	if errors.Is(err, ErrRefused) {
		g.forget(k)
		return Host{}, status.Error(codes.Unauthenticated, "backupd host gateway: the host credential is refused (revoked, rotated or unknown); enrol the host again")
	}
	if err != nil {
		return Host{}, status.Errorf(codes.Unavailable, "backupd host gateway: checking the host credential: %v", err)
	}
	g.mu.Lock()
	if len(g.cache) > 10000 {
		clear(g.cache)
	}
	g.cache[k] = cached{h: h, at: time.Now()}
	g.mu.Unlock()
	return h, nil
}

func (g *Gateway) forget(k [32]byte) {
	g.mu.Lock()
	delete(g.cache, k)
	g.mu.Unlock()
}

func hostOf(ctx context.Context) Host {
	h, _ := ctx.Value(hostKey{}).(Host)
	return h
}

// macSize is the length of the MAC appended to the task tokens handed
// to hosts.
const macSize = 32

func (g *Gateway) mac(h Host, token []byte) []byte {
	m := hmac.New(sha256.New, g.o.Key)
	m.Write([]byte("backupd host task token\x00"))
	m.Write([]byte(h.ID))
	m.Write([]byte{0})
	m.Write(token)
	return m.Sum(nil)
}

// seal binds a task token to the host it is handed to.
func (g *Gateway) seal(h Host, token []byte) []byte {
	out := make([]byte, 0, len(token)+macSize)
	out = append(out, token...)
	return append(out, g.mac(h, token)...)
}

// open returns the task token sealed for h, or refuses it.
func (g *Gateway) open(h Host, sealed []byte) ([]byte, error) {
	if len(sealed) <= macSize {
		return nil, status.Error(codes.PermissionDenied, "backupd host gateway: not a task token this gateway handed out")
	}
	token, sum := sealed[:len(sealed)-macSize], sealed[len(sealed)-macSize:]
	if !hmac.Equal(sum, g.mac(h, token)) {
		return nil, status.Error(codes.PermissionDenied, "backupd host gateway: the task token was not handed to this host")
	}
	return token, nil
}

// identity names the host in what Temporal records of its worker (the
// Web UI's "worker identity"), whatever the worker calls itself.
func identity(h Host, given string) string {
	if len(given) > 80 {
		given = given[:80]
	}
	return "host " + h.Name + " (" + h.ID + ") via backupd: " + given
}

// service implements the workflow service's allowed methods; the rest
// never get past guard.
type service struct {
	workflowservice.UnimplementedWorkflowServiceServer
	g *Gateway
}

// info answers GetSystemInfo and DescribeNamespace from what Temporal
// said in the last minute: the same for every host.
func (s *service) info(ctx context.Context) (*workflowservice.GetSystemInfoResponse, *workflowservice.DescribeNamespaceResponse, error) {
	g := s.g
	g.mu.Lock()
	si, ns, at := g.sysInfo, g.nsInfo, g.infoAt
	g.mu.Unlock()
	if si != nil && time.Since(at) < time.Minute {
		return si, ns, nil
	}
	si, err := g.o.Service.GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{})
	if err != nil {
		return nil, nil, err
	}
	ns, err = g.o.Service.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: g.o.Namespace})
	if err != nil {
		return nil, nil, err
	}
	g.mu.Lock()
	g.sysInfo, g.nsInfo, g.infoAt = si, ns, time.Now()
	g.mu.Unlock()
	return si, ns, nil
}

func (s *service) GetSystemInfo(ctx context.Context, r *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	si, _, err := s.info(ctx)
	return si, err
}

func (s *service) DescribeNamespace(ctx context.Context, r *workflowservice.DescribeNamespaceRequest) (*workflowservice.DescribeNamespaceResponse, error) {
	_, ns, err := s.info(ctx)
	return ns, err
}

// The calls that go on to Temporal are rebuilt from the fields an
// activity worker needs: nothing else a host puts in them reaches it.

func (s *service) PollActivityTaskQueue(ctx context.Context, r *workflowservice.PollActivityTaskQueueRequest) (*workflowservice.PollActivityTaskQueueResponse, error) {
	h := hostOf(ctx)
	q := s.g.o.Queue(h)
	if r.GetTaskQueue().GetName() != q || r.GetTaskQueue().GetKind() == enumspb.TASK_QUEUE_KIND_STICKY || slices.Contains(s.g.o.Reserved, q) {
		return nil, status.Errorf(codes.PermissionDenied, "backupd host gateway: host %s polls task queue %q only, not %q", h.Name, q, r.GetTaskQueue().GetName())
	}
	done, err := s.g.pollStart(h)
	if err != nil {
		return nil, err
	}
	defer done()
	if _, ok := ctx.Deadline(); !ok {
		// Temporal wants one; a worker's SDK sets about this much
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 70*time.Second)
		defer cancel()
	}
	resp, err := s.g.o.Service.PollActivityTaskQueue(ctx, &workflowservice.PollActivityTaskQueueRequest{Namespace: s.g.o.Namespace,
		TaskQueue: &taskqueuepb.TaskQueue{Name: q, Kind: enumspb.TASK_QUEUE_KIND_NORMAL}, Identity: identity(h, r.Identity)})
	if err != nil || len(resp.GetTaskToken()) == 0 {
		return resp, err
	}
	resp.TaskToken = s.g.seal(h, resp.TaskToken)
	return resp, nil
}

func (s *service) RecordActivityTaskHeartbeat(ctx context.Context, r *workflowservice.RecordActivityTaskHeartbeatRequest) (*workflowservice.RecordActivityTaskHeartbeatResponse, error) {
	h := hostOf(ctx)
	t, err := s.g.open(h, r.TaskToken)
	if err != nil {
		return nil, err
	}
	return s.g.o.Service.RecordActivityTaskHeartbeat(ctx, &workflowservice.RecordActivityTaskHeartbeatRequest{Namespace: s.g.o.Namespace,
		TaskToken: t, Details: r.Details, Identity: identity(h, r.Identity)})
}

func (s *service) RespondActivityTaskCompleted(ctx context.Context, r *workflowservice.RespondActivityTaskCompletedRequest) (*workflowservice.RespondActivityTaskCompletedResponse, error) {
	h := hostOf(ctx)
	t, err := s.g.open(h, r.TaskToken)
	if err != nil {
		return nil, err
	}
	return s.g.o.Service.RespondActivityTaskCompleted(ctx, &workflowservice.RespondActivityTaskCompletedRequest{Namespace: s.g.o.Namespace,
		TaskToken: t, Result: r.Result, Identity: identity(h, r.Identity)})
}

func (s *service) RespondActivityTaskFailed(ctx context.Context, r *workflowservice.RespondActivityTaskFailedRequest) (*workflowservice.RespondActivityTaskFailedResponse, error) {
	h := hostOf(ctx)
	t, err := s.g.open(h, r.TaskToken)
	if err != nil {
		return nil, err
	}
	return s.g.o.Service.RespondActivityTaskFailed(ctx, &workflowservice.RespondActivityTaskFailedRequest{Namespace: s.g.o.Namespace,
		TaskToken: t, Failure: r.Failure, LastHeartbeatDetails: r.LastHeartbeatDetails, Identity: identity(h, r.Identity)})
}

func (s *service) RespondActivityTaskCanceled(ctx context.Context, r *workflowservice.RespondActivityTaskCanceledRequest) (*workflowservice.RespondActivityTaskCanceledResponse, error) {
	h := hostOf(ctx)
	t, err := s.g.open(h, r.TaskToken)
	if err != nil {
		return nil, err
	}
	return s.g.o.Service.RespondActivityTaskCanceled(ctx, &workflowservice.RespondActivityTaskCanceledRequest{Namespace: s.g.o.Namespace,
		TaskToken: t, Details: r.Details, Identity: identity(h, r.Identity)})
}

// ShutdownWorker is answered here: it is about a workflow worker's sticky
// queue, which a host has none of.
func (s *service) ShutdownWorker(ctx context.Context, r *workflowservice.ShutdownWorkerRequest) (*workflowservice.ShutdownWorkerResponse, error) {
	return &workflowservice.ShutdownWorkerResponse{}, nil
}

// RecordWorkerHeartbeat is answered here too: what a worker says of itself
// there (its queues, its load) is not passed on from a host.
func (s *service) RecordWorkerHeartbeat(ctx context.Context, r *workflowservice.RecordWorkerHeartbeatRequest) (*workflowservice.RecordWorkerHeartbeatResponse, error) {
	return &workflowservice.RecordWorkerHeartbeatResponse{}, nil
}
