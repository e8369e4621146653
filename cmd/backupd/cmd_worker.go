//go:build !lean

package main

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"

	"backupd/activities"
	"backupd/config"
	"backupd/jobs"
	"backupd/worker"
)

// dialTemporal connects to Temporal; metrics, when set, receives the
// SDK's metrics (the API server's registry).
func dialTemporal(cfg *config.Config, metrics client.MetricsHandler) (client.Client, error) {
	tc, err := temporalTLS(cfg.Temporal)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(client.Options{HostPort: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace,
		ConnectionOptions: client.ConnectionOptions{TLS: tc}, MetricsHandler: metrics,
		Logger: sdkLogger(cfg)})
	if err != nil {
		return nil, fmt.Errorf("temporal at %s: %w", cfg.Temporal.Address, err)
	}
	return c, nil
}

func jobClient(cfg *config.Config, c client.Client) *jobs.Client {
	return &jobs.Client{C: c, TaskQueue: cfg.Temporal.TaskQueue, Host: cfg.Host}
}

// runWorker runs a worker until ctx ends; on the way out running
// activities see the worker stop, checkpoint and return. central, for an
// enrolled host, holds the components the server configures for it; its
// worker runs activities only (its jobs' workflows run on the server).
//
// horizon, when the worker runs beside the catalog, tells immutable
// locations the retention rules' horizon (Stores.LockHorizon).
func runWorker(ctx context.Context, cfg *config.Config, c client.Client, central *activities.Central, horizon func(context.Context, string) (time.Duration, error), started func()) error {
	acts := activities.New(cfg)
	acts.Central = central
	acts.Stores.LockHorizon = horizon
	defer acts.Stores.Close()
	if err := acts.Stores.EnsureInitialized(ctx); err != nil {
		return err
	}
	w := worker.New(c, acts, worker.Options{TaskQueue: cfg.Temporal.TaskQueue,
		MaxConcurrentActivities: cfg.Worker.MaxConcurrentActivities, ActivitiesOnly: central != nil})
	if err := w.Start(); err != nil {
		return err
	}
	if started != nil {
		started()
	}
	<-ctx.Done()
	w.Stop()
	return nil
}
