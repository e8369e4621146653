package apiserver

import (
	"context"
	"errors"
	"net/http"

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
	})
	return nil
}

// withGateway sends gRPC calls to the host gateway, the rest to the API.
func (s *Server) withGateway(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.gate != nil && hostgate.IsGRPC(r.ProtoMajor, r.Header.Get("Content-Type")) {
			s.gate.Server().ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
