// Command backupd is the backup service and its operator tools. The repo
// subcommands work on a storage location directly — no server, catalog or
// Temporal — and are the disaster-recovery path.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"
	"time"

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
                 [--enrol URL]    ... after enrolling this host with a server (token: BACKUPD_ENROL_TOKEN)
  backupd token create --role R    print a new API token (viewer, operator or admin)
  backupd catalog rebuild          recreate the catalog from the manifests in storage
  backupd repo <command> [flags]   work on a repository directly, without a server (see 'backupd repo help')
  backupd completion bash|zsh      print a shell completion script
  backupd version                  module version, commit and build time (also --version)

Through a running server's API (--server URL, --token; 'backupd backup help' and so on for flags):
  backupd backup create|list|show|verify|delete|progress    back up, list, inspect, check, delete
  backupd restore start|progress                            restore a backup (admin token)
  backupd schedule list|create|delete|trigger               scheduled backups
  backupd host list|show|enrol-token|revoke|...             the fleet: enrolled hosts (enrol-token, revoke: admin)
  backupd jobs [list|cancel|pause|resume]                   list jobs, or control one
  backupd status                                            workers, storage, backups
  backupd health                                            health checks (exit 0 healthy, 3 degraded, 1 critical)
  backupd debug-bundle                                      a tar.gz for support, secrets redacted (admin token)
  --wait follows a job over the WebSocket to its end (backup create, backup verify,
  restore start, progress); --json prints the API's answers and messages as JSON lines.

Exit codes: 0 success; 1 failure; 2 bad usage; 3 finished with warnings or partially.

Environment:
  BACKUPD_PASSWORD       repository password (or --password-file)
  BACKUPD_SERVER         the API server's URL (or --server; default api.listen of --config, else http://127.0.0.1:8080)
  BACKUPD_TOKEN          the API token (or --token, --token-file)
`

func main() {
	takeForwarded()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// BACKUPD_CPUPROFILE=FILE writes a CPU profile, for benchmarks.
	if p := os.Getenv("BACKUPD_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
		}
	}
	// BACKUPD_TRACE=FILE writes an execution trace (go tool trace): where
	// a run waits, on the disk or on another goroutine, which a CPU
	// profile does not show.
	if p := os.Getenv("BACKUPD_TRACE"); p != "" {
		if f, err := os.Create(p); err == nil {
			trace.Start(f)
		}
	}
	// BACKUPD_MEMPROFILE=FILE writes a heap profile whenever the heap
	// reaches a new peak (checked twice a second): the profile left is
	// the largest heap's, for finding what memory grows with.
	if p := os.Getenv("BACKUPD_MEMPROFILE"); p != "" {
		go peakHeapProfile(ctx, p)
	}
	// The heap of a backup is mostly short-lived buffers: collecting at 50%
	// growth instead of 100% cuts a long-running server's or worker's peak
	// RSS by a quarter for a few percent of CPU (GOGC overrides).
	//
	// A repository command is one job in its own process, and gets a limit
	// instead: past 160 MiB of Go memory the collector runs more often
	// instead of letting the heap grow again. At 1M files an incremental
	// backup's peak RSS was 315 MB with 127 MB live, and is 236 MB with the
	// limit, for about 10% more time there. It is a soft limit: a job that
	// needs more gets more (GOMEMLIMIT overrides). Below it, Go's default
	// 100% growth: a cold unchanged re-backup of the Go tree (15k files,
	// a 45 MB process) collected about twice as often at 50%, for 5% of
	// its time.
	repoCommand := len(os.Args) > 1 && os.Args[1] == "repo"
	if os.Getenv("GOGC") == "" && !repoCommand {
		debug.SetGCPercent(50)
	}
	if os.Getenv("GOMEMLIMIT") == "" && repoCommand {
		debug.SetMemoryLimit(160 << 20)
	}
	code := run(ctx, os.Args[1:])
	pprof.StopCPUProfile()
	trace.Stop()
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitUsage
	}
	err := dispatch(ctx, args)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(os.Stderr, "backupd:", termSafe(ee.err.Error(), "\n\t"))
		}
		return ee.code
	}
	if errors.Is(err, errUsage) {
		return exitUsage
	}
	fmt.Fprintln(os.Stderr, "backupd:", termSafe(err.Error(), "\n\t"))
	return exitFail
}

// command is one line of the CLI's command table: run dispatches from it,
// and `backupd completion` and the systemd units' test take the command
// names from it (and each command's flags by probing it: flagsOf).
type command struct {
	name string
	run  func(ctx context.Context, args []string) error
	// subs are the command paths below this one ("key add" is two
	// levels); run dispatches on them itself.
	subs []string
	// noFlags: the command parses no flags, so probing it would run it.
	noFlags bool
}

func commandTable() []command {
	return []command{
		{name: "dev", run: cmdDev},
		{name: "all", run: cmdAll},
		{name: "server", run: cmdServer},
		{name: "worker", run: cmdWorker},
		{name: "token", run: cmdToken, subs: []string{"create"}},
		{name: "catalog", run: cmdCatalog, subs: []string{"rebuild"}},
		{name: "repo", run: runRepo, subs: repoCommandPaths()},
		{name: "backup", run: cmdClientBackup, subs: backupCommands},
		{name: "restore", run: cmdClientRestore, subs: restoreCommands},
		{name: "schedule", run: cmdClientSchedule, subs: scheduleCommands},
		{name: "host", run: cmdClientHost, subs: hostCommands},
		{name: "jobs", run: cmdClientJobs, subs: jobsCommands},
		{name: "status", run: cmdClientStatus},
		{name: "health", run: cmdClientHealth},
		{name: "debug-bundle", run: cmdDebugBundle},
		{name: "completion", run: cmdCompletion, subs: []string{"bash", "zsh"}, noFlags: true},
		{name: "version", run: cmdVersion, noFlags: true},
		{name: "help", run: cmdHelp, noFlags: true},
	}
}

var commandAliases = map[string]string{"--version": "version", "-h": "help", "--help": "help"}

func dispatch(ctx context.Context, args []string) error {
	name := args[0]
	if a, ok := commandAliases[name]; ok {
		name = a
	}
	for _, c := range commandTable() {
		if c.name == name {
			return c.run(ctx, args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "backupd: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

func cmdVersion(ctx context.Context, args []string) error {
	fmt.Print(buildinfo.Get())
	if leanBuild {
		fmt.Println("build:       lean (dev, all, server, worker, token and catalog run backupd-server)")
	}
	return nil
}

func cmdHelp(ctx context.Context, args []string) error {
	fmt.Print(usage)
	return nil
}

// flagProbe, when set, is handed the flag set of the command that runs
// and parseFlags returns errProbed: the command stops before it acts.
var (
	flagProbe func(*flag.FlagSet)
	errProbed = errors.New("flags probed")
)

// flagsOf is the flags of the command at path (["repo", "key", "add"]),
// learnt by running it up to its flag parsing, so completion and the
// units' test see exactly the flags the command defines.
func flagsOf(path []string) ([]*flag.Flag, error) {
	var got []*flag.Flag
	flagProbe = func(fs *flag.FlagSet) { fs.VisitAll(func(f *flag.Flag) { got = append(got, f) }) }
	defer func() { flagProbe = nil }()
	// a cancelled context: should a command ever act before parsing its
	// flags, it stops at once
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := dispatch(ctx, path); !errors.Is(err, errProbed) {
		return nil, fmt.Errorf("backupd %s does not parse flags: %v", strings.Join(path, " "), err)
	}
	return got, nil
}

func peakHeapProfile(ctx context.Context, path string) {
	var peak uint64
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > peak+peak/20 {
			peak = v
			if f, err := os.Create(path); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}
}
