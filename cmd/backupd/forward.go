package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
)

// serverBinaryName is the full build of backupd (`go build ./cmd/backupd`):
// every command, the API server, worker and development stack among
// them. make build also writes the command-line tool alone (`-tags lean`)
// as bin/backupd; it hands those commands to this binary.
const serverBinaryName = "backupd-server"

// leanBuild is set by the lean build (lean.go).
var leanBuild bool

// serverBinary is backupd-server beside this executable, never one found
// on PATH: root's shell may carry a user's directories in PATH, and what
// runs here runs with root's rights. It must belong to root or to this
// user and be writable by no one else (a file another user planted beside
// a binary in a shared directory such as /tmp is refused).
func serverBinary() (string, error) {
	self, err := os.Executable() // /proc/self/exe: symlinks already resolved
	if err != nil {
		return "", fmt.Errorf("cannot tell where this backupd lies: %v", err)
	}
	p := filepath.Join(filepath.Dir(self), serverBinaryName)
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return "", fmt.Errorf("%s: %v", p, err)
	}
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return "", fmt.Errorf("%s is not a regular file", p)
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return "", fmt.Errorf("%s belongs to user %d, neither root nor this user: refused", p, st.Uid)
	case st.Mode&0o022 != 0:
		return "", fmt.Errorf("%s is writable by its group or others (mode %o): refused (chmod go-w)", p, st.Mode&0o7777)
	case st.Mode&0o111 == 0:
		return "", fmt.Errorf("%s is not executable (chmod +x)", p)
	}
	return p, nil
}

// forwardedEnv marks a process execServer started, with its process id
// (exec keeps it, so a value inherited or set by hand never matches);
// main reads it into forwarded and removes it, so it reaches no further
// process.
const forwardedEnv = "BACKUPD_FORWARDED"

var forwarded bool

func takeForwarded() {
	forwarded = os.Getenv(forwardedEnv) == strconv.Itoa(os.Getpid())
	os.Unsetenv(forwardedEnv)
}

// execServer replaces this process by backupd-server running command
// name with args: same process id, arguments, environment, working
// directory and standard streams, so a service manager or a test sees no
// difference. It returns only on failure.
func execServer(ctx context.Context, name string, args []string) error {
	p, err := serverBinary()
	if err != nil {
		return &exitError{exitFail, fmt.Errorf("'backupd %s' runs in %s, the full build (API server, worker, development stack), which must lie beside this one: %v. Install both (make build writes bin/backupd and bin/backupd-server; the Docker image has both)",
			name, serverBinaryName, err)}
	}
	if forwarded {
		// backupd-server handed the command back: it is a lean build too
		// (exec'ing again would loop)
		return &exitError{exitFail, fmt.Errorf("'backupd %s' was handed to %s, which is the lean build as well: install the full build there (make build's bin/backupd-server, built without -tags lean)", name, p)}
	}
	// the new program installs its own handlers and profiler; a signal
	// that came before this point has ended ctx
	pprof.StopCPUProfile()
	signal.Reset()
	if err := ctx.Err(); err != nil {
		return err
	}
	argv := append([]string{p, name}, args...)
	env := append(os.Environ(), forwardedEnv+"="+strconv.Itoa(os.Getpid()))
	if err := syscall.Exec(p, argv, env); err != nil {
		return fmt.Errorf("running %s: %w", p, err)
	}
	return nil
}
