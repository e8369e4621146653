//go:build lean

package main

import "context"

// The lean build (make build's bin/backupd) is the command-line tool:
// repository commands, the API's client and completion. It leaves out the
// API server, worker and development stack, whose dependencies (Temporal's
// SDK, gRPC, gorm and SQLite) make a binary three times the size: a cold
// start read 54 MB of the full one (about 67 ms here) against 25 ms for
// this one, and every repository command paid it. Their commands run
// backupd-server (see execServer).

func cmdDev(ctx context.Context, args []string) error     { return forward(ctx, "dev", args) }
func cmdAll(ctx context.Context, args []string) error     { return forward(ctx, "all", args) }
func cmdServer(ctx context.Context, args []string) error  { return forward(ctx, "server", args) }
func cmdWorker(ctx context.Context, args []string) error  { return forward(ctx, "worker", args) }
func cmdToken(ctx context.Context, args []string) error   { return forward(ctx, "token", args) }
func cmdCatalog(ctx context.Context, args []string) error { return forward(ctx, "catalog", args) }

// forward runs the command in backupd-server; probing a command's flags
// (completion) never does.
func forward(ctx context.Context, name string, args []string) error {
	if flagProbe != nil {
		return errProbed
	}
	return execServer(ctx, name, args)
}

func init() { leanBuild = true }
