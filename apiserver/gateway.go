package apiserver

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"backupd/activities"
	"backupd/hostgate"
	"backupd/models"
)

// StartHostGateway opens the Temporal gateway of enrolled hosts on the
// API's own port (gRPC over HTTP/2): hosts need to reach only the server,
// never Temporal. Without a Temporal client (tests) there is none.
func (s *Server) StartHostGateway(ctx context.Context) error {
	if s.Temporal == nil {
		return nil
	}
	key, err := s.Store.ServerSecret(ctx, "host-gateway")
	if err != nil {
		return err
	}
	s.gate = hostgate.New(hostgate.Options{
		Service:   s.Temporal.WorkflowService(),
		Namespace: s.Cfg.Temporal.Namespace,
		Queue:     func(h hostgate.Host) string { return HostTaskQueue(h.Name) },
		Authenticate: func(ctx context.Context, cred string) (hostgate.Host, error) {
			t, err := s.Store.Authenticate(ctx, cred)
			if errors.Is(err, models.ErrNotFound) {
				return hostgate.Host{}, hostgate.ErrRefused
			}
			if err != nil {
				return hostgate.Host{}, err
			}
			h, err := s.Store.HostOfToken(ctx, t)
			if errors.Is(err, models.ErrNotFound) {
				return hostgate.Host{}, hostgate.ErrRefused
			}
			if err != nil {
				return hostgate.Host{}, err
			}
			return hostgate.Host{ID: h.ID, Name: h.Name}, nil
		},
		Key: key, Log: s.Log,
		Reserved: []string{s.Cfg.Temporal.TaskQueue, activities.CatalogTaskQueue, activities.HostJobsTaskQueue},
	})
	return nil
}

// withGateway sends gRPC calls to the host gateway, the rest to the API.
// A call without a good host credential is refused before gRPC reads its
// body, and costs its source as a bad bearer token does on the API.
func (s *Server) withGateway(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.gate == nil || !hostgate.IsGRPC(r.ProtoMajor, r.Header.Get("Content-Type")) {
			api.ServeHTTP(w, r)
			return
		}
		src := sourceOf(r)
		if !s.limiter.allow(src) {
			http.Error(w, "too many failed attempts from this source; wait a minute", http.StatusTooManyRequests)
			return
		}
		if err := s.gate.Authenticate(r.Context(), r.Header.Get("Authorization")); err != nil {
			if status.Code(err) == codes.Unauthenticated {
				s.limiter.spend(src)
				s.Log.Warn("host gateway: credential refused", "remote", remoteIP(r))
				http.Error(w, status.Convert(err).Message(), http.StatusUnauthorized)
				return
			}
			http.Error(w, status.Convert(err).Message(), http.StatusServiceUnavailable)
			return
		}
		s.gate.Server().ServeHTTP(w, r)
	})
}
