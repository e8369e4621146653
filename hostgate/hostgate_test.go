package hostgate

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// upstream stands in for Temporal: it records what reaches it.
type upstream struct {
	workflowservice.WorkflowServiceClient               // nil: any other call panics
	block                                 chan struct{} // set: polls wait for it
	mu                                    sync.Mutex
	calls                                 []string
	completed                             [][]byte
	identity                              string
}

func (u *upstream) note(m string) {
	u.mu.Lock()
	u.calls = append(u.calls, m)
	u.mu.Unlock()
}

func (u *upstream) PollActivityTaskQueue(ctx context.Context, r *workflowservice.PollActivityTaskQueueRequest, _ ...grpc.CallOption) (*workflowservice.PollActivityTaskQueueResponse, error) {
	u.note("poll")
	if u.block != nil {
		<-u.block
	}
	u.mu.Lock()
	u.identity = r.Identity
	u.mu.Unlock()
	return &workflowservice.PollActivityTaskQueueResponse{TaskToken: []byte("token-of-" + r.TaskQueue.Name),
		ActivityType: &commonpb.ActivityType{Name: "BackupComponent"}}, nil
}

func (u *upstream) RespondActivityTaskCompleted(ctx context.Context, r *workflowservice.RespondActivityTaskCompletedRequest, _ ...grpc.CallOption) (*workflowservice.RespondActivityTaskCompletedResponse, error) {
	u.note("completed")
	u.mu.Lock()
	u.completed = append(u.completed, r.TaskToken)
	u.mu.Unlock()
	return &workflowservice.RespondActivityTaskCompletedResponse{}, nil
}

func (u *upstream) RecordActivityTaskHeartbeat(ctx context.Context, r *workflowservice.RecordActivityTaskHeartbeatRequest, _ ...grpc.CallOption) (*workflowservice.RecordActivityTaskHeartbeatResponse, error) {
	u.note("heartbeat")
	return &workflowservice.RecordActivityTaskHeartbeatResponse{}, nil
}

func (u *upstream) GetSystemInfo(ctx context.Context, r *workflowservice.GetSystemInfoRequest, _ ...grpc.CallOption) (*workflowservice.GetSystemInfoResponse, error) {
	u.note("sysinfo")
	return &workflowservice.GetSystemInfoResponse{}, nil
}

type rig struct {
	up      *upstream
	conn    *grpc.ClientConn
	revoked map[string]bool
	mu      sync.Mutex
}

func newRig(t *testing.T) *rig {
	t.Helper()
	rg := &rig{up: &upstream{}, revoked: map[string]bool{}}
	hosts := map[string]Host{"cred-a": {ID: "host-a", Name: "gw-a"}, "cred-b": {ID: "host-b", Name: "gw-b"}}
	g := New(Options{Service: rg.up, Namespace: "default", Queue: func(h Host) string { return "backup@" + h.Name },
		Authenticate: func(ctx context.Context, cred string) (Host, error) {
			rg.mu.Lock()
			defer rg.mu.Unlock()
			h, ok := hosts[cred]
			if !ok || rg.revoked[cred] {
				return Host{}, ErrRefused
			}
			return h, nil
		}, Key: bytes.Repeat([]byte{7}, 32), CacheFor: 50 * time.Millisecond})
	ln := bufconn.Listen(1 << 20)
	go g.Server().Serve(ln)
	t.Cleanup(g.Server().Stop)
	conn, err := grpc.NewClient("passthrough:///gate", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return ln.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rg.conn = conn
	return rg
}

func as(cred string) context.Context {
	ctx := context.Background()
	if cred != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cred)
	}
	return ctx
}

func wantCode(t *testing.T, what string, err error, c codes.Code, text string) {
	t.Helper()
	if status.Code(err) != c || !strings.Contains(status.Convert(err).Message(), text) {
		t.Fatalf("%s: got %v, want %v containing %q", what, err, c, text)
	}
}

func poll(queue string) *workflowservice.PollActivityTaskQueueRequest {
	return &workflowservice.PollActivityTaskQueueRequest{Namespace: "default", Identity: "1234@gw",
		TaskQueue: &taskqueuepb.TaskQueue{Name: queue}}
}

// A host takes and answers its own tasks; anything else is refused
// before it reaches Temporal.
func TestGatewayLetsAHostOnlyTakeAndAnswerItsOwnTasks(t *testing.T) {
	rg := newRig(t)
	ws := workflowservice.NewWorkflowServiceClient(rg.conn)

	_, err := ws.GetSystemInfo(as(""), &workflowservice.GetSystemInfoRequest{})
	wantCode(t, "no credential", err, codes.Unauthenticated, "no host credential")
	_, err = ws.GetSystemInfo(as("cred-x"), &workflowservice.GetSystemInfoRequest{})
	wantCode(t, "unknown credential", err, codes.Unauthenticated, "refused")

	// what a compromised host would try first: run server workflows
	_, err = ws.StartWorkflowExecution(as("cred-a"), &workflowservice.StartWorkflowExecutionRequest{Namespace: "default", WorkflowId: "cleanup"})
	wantCode(t, "start a workflow", err, codes.PermissionDenied, "not open to hosts")
	_, err = ws.SignalWorkflowExecution(as("cred-a"), &workflowservice.SignalWorkflowExecutionRequest{Namespace: "default"})
	wantCode(t, "signal", err, codes.PermissionDenied, "not open to hosts")
	_, err = ws.PollWorkflowTaskQueue(as("cred-a"), &workflowservice.PollWorkflowTaskQueueRequest{Namespace: "default",
		TaskQueue: &taskqueuepb.TaskQueue{Name: "backup@gw-a"}})
	wantCode(t, "workflow tasks", err, codes.PermissionDenied, "not open to hosts")
	_, err = ws.ListWorkflowExecutions(as("cred-a"), &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default"})
	wantCode(t, "list", err, codes.PermissionDenied, "not open to hosts")
	// another host's queue, another namespace
	_, err = ws.PollActivityTaskQueue(as("cred-a"), poll("backup@gw-b"))
	wantCode(t, "another host's queue", err, codes.PermissionDenied, `polls task queue "backup@gw-a" only`)
	_, err = ws.PollActivityTaskQueue(as("cred-a"), poll("backupd-catalog"))
	wantCode(t, "the catalog's queue", err, codes.PermissionDenied, "only")
	p := poll("backup@gw-a")
	p.Namespace = "other"
	_, err = ws.PollActivityTaskQueue(as("cred-a"), p)
	wantCode(t, "another namespace", err, codes.PermissionDenied, `hosts use namespace "default"`)

	// its own task: the token it gets is sealed to it
	task, err := ws.PollActivityTaskQueue(as("cred-a"), poll("backup@gw-a"))
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte("token-of-backup@gw-a")
	if bytes.Equal(task.TaskToken, raw) || !bytes.HasPrefix(task.TaskToken, raw) {
		t.Fatalf("the token is not sealed: %q", task.TaskToken)
	}
	if id := rg.up.identity; !strings.HasPrefix(id, "host gw-a (host-a) via backupd: 1234@gw") {
		t.Fatalf("identity upstream: %q", id)
	}
	if _, err := ws.RecordActivityTaskHeartbeat(as("cred-a"), &workflowservice.RecordActivityTaskHeartbeatRequest{Namespace: "default", TaskToken: task.TaskToken}); err != nil {
		t.Fatal(err)
	}
	// gw-b cannot answer gw-a's task, nor can anyone with the raw token
	// or a tampered one
	_, err = ws.RespondActivityTaskCompleted(as("cred-b"), &workflowservice.RespondActivityTaskCompletedRequest{Namespace: "default", TaskToken: task.TaskToken})
	wantCode(t, "another host's task", err, codes.PermissionDenied, "not handed to this host")
	_, err = ws.RespondActivityTaskCompleted(as("cred-a"), &workflowservice.RespondActivityTaskCompletedRequest{Namespace: "default", TaskToken: raw})
	wantCode(t, "a raw token", err, codes.PermissionDenied, "")
	bad := bytes.Clone(task.TaskToken)
	bad[0] ^= 1
	_, err = ws.RespondActivityTaskCompleted(as("cred-a"), &workflowservice.RespondActivityTaskCompletedRequest{Namespace: "default", TaskToken: bad})
	wantCode(t, "a tampered token", err, codes.PermissionDenied, "not handed to this host")
	_, err = ws.RespondActivityTaskCompleted(as("cred-a"), &workflowservice.RespondActivityTaskCompletedRequest{Namespace: "default", TaskToken: []byte("x")})
	wantCode(t, "a short token", err, codes.PermissionDenied, "not a task token")
	if _, err := ws.RespondActivityTaskCompleted(as("cred-a"), &workflowservice.RespondActivityTaskCompletedRequest{Namespace: "default", TaskToken: task.TaskToken}); err != nil {
		t.Fatal(err)
	}
	if len(rg.up.completed) != 1 || !bytes.Equal(rg.up.completed[0], raw) {
		t.Fatalf("upstream got %q", rg.up.completed)
	}
	if got := strings.Join(rg.up.calls, ","); got != "poll,heartbeat,completed" {
		t.Fatalf("what reached Temporal: %s", got)
	}

	// revoked: refused once the cache lapses
	rg.mu.Lock()
	rg.revoked["cred-a"] = true
	rg.mu.Unlock()
	time.Sleep(60 * time.Millisecond)
	_, err = ws.PollActivityTaskQueue(as("cred-a"), poll("backup@gw-a"))
	wantCode(t, "revoked", err, codes.Unauthenticated, "refused")
}

// One host cannot use up what Temporal allows the namespace: its polls
// at once and its calls a second are bounded, and a reserved queue is
// refused even when it is the host's by name.
func TestGatewayBoundsAHost(t *testing.T) {
	rg := newRig(t)
	rg.up.block = make(chan struct{})
	ws := workflowservice.NewWorkflowServiceClient(rg.conn)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := ws.PollActivityTaskQueue(as("cred-a"), poll("backup@gw-a"))
			errs <- err
		}()
	}
	err := <-errs
	wantCode(t, "a third poll at once", err, codes.ResourceExhausted, "at most 2 at once")
	// gw-b's polls are its own
	go func() {
		_, err := ws.PollActivityTaskQueue(as("cred-b"), poll("backup@gw-b"))
		errs <- err
	}()
	close(rg.up.block)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// past its burst, a host's calls are refused for a while
	var last error
	for range 300 {
		if _, last = ws.RecordActivityTaskHeartbeat(as("cred-b"), &workflowservice.RecordActivityTaskHeartbeatRequest{Namespace: "default"}); status.Code(last) == codes.ResourceExhausted {
			break
		}
	}
	wantCode(t, "a flood of calls", last, codes.ResourceExhausted, "calls a second")
}
