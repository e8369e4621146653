// Command backupd is the backup service and its operator tools. The repo
// subcommands work on a storage location directly — no server, catalog or
// Temporal — and are the disaster-recovery path.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"backupd/buildinfo"
)

// Exit codes: 0 success; 1 failure; 2 bad usage; 3 finished with
// warnings or partially (some files or components could not be read).
const (
	exitOK      = 0
	exitFail    = 1
	exitUsage   = 2
	exitPartial = 3
)

var errUsage = errors.New("usage")

// exitError carries an exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

const usage = `backupd — backup and recovery

Usage:
  backupd dev [flags]              the whole development stack in one process (make run)
  backupd all [--config FILE]      API server and worker in one process (the embedded default)
  backupd server [--config FILE]   the REST/WebSocket API server (runs the catalog activities)
  backupd worker [--config FILE]   run the Temporal worker that executes jobs on this host
  backupd token create --role R    print a new API token (viewer, operator or admin)
  backupd catalog rebuild          recreate the catalog from the manifests in storage
  backupd job <command> [flags]    start and control durable jobs (see 'backupd job')
  backupd repo <command> [flags]   work on a repository directly (see 'backupd repo help')
  backupd version                  module version, commit and build time (also --version)

Environment:
  BACKUPD_PASSWORD       repository password (or --password-file)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// BACKUPD_CPUPROFILE=FILE writes a CPU profile, for benchmarks.
	if p := os.Getenv("BACKUPD_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
		}
	}
	// The heap of a backup is mostly short-lived buffers: collecting at 50%
	// growth instead of 100% cuts peak RSS by a quarter for a few percent
	// of CPU (GOGC overrides).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	code := run(ctx, os.Args[1:])
	pprof.StopCPUProfile()
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "repo":
		err = runRepo(ctx, args[1:])
	case "worker":
		err = cmdWorker(ctx, args[1:])
	case "dev":
		err = cmdDev(ctx, args[1:])
	case "server":
		err = cmdServer(ctx, args[1:])
	case "all":
		err = cmdAll(ctx, args[1:])
	case "token":
		err = cmdToken(ctx, args[1:])
	case "catalog":
		err = cmdCatalog(ctx, args[1:])
	case "job":
		err = cmdJob(ctx, args[1:])
	case "version", "--version":
		fmt.Print(buildinfo.Get())
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "backupd: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(os.Stderr, "backupd:", ee.err)
		}
		return ee.code
	}
	if errors.Is(err, errUsage) {
		return exitUsage
	}
	fmt.Fprintln(os.Stderr, "backupd:", err)
	return exitFail
}
