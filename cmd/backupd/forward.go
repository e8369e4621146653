package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// serverBinaryName is the full build of backupd (`go build ./cmd/backupd`):
// every command, the API server, worker and development stack among
// them. make build also writes the command-line tool alone (`-tags lean`)
// as bin/backupd; it hands those commands to this binary.
const serverBinaryName = "backupd-server"

// serverBinary finds backupd-server: beside this executable first (both
// are installed together), then on PATH.
func serverBinary() (string, error) {
	var tried []string
	if self, err := os.Executable(); err == nil {
		if self, err = filepath.EvalSymlinks(self); err == nil {
			p := filepath.Join(filepath.Dir(self), serverBinaryName)
			if isExecutable(p) {
				return p, nil
			}
			tried = append(tried, p)
		}
	}
	if p, err := exec.LookPath(serverBinaryName); err == nil {
		return p, nil
	}
	tried = append(tried, "PATH")
	return "", fmt.Errorf("%s was not found (looked at %s)", serverBinaryName, strings.Join(tried, " and "))
}

// forwardedEnv marks a process execServer started; main reads it into
// forwarded and removes it, so it reaches no further process.
const forwardedEnv = "BACKUPD_FORWARDED"

var forwarded bool

func takeForwarded() {
	forwarded = os.Getenv(forwardedEnv) != ""
	os.Unsetenv(forwardedEnv)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// execServer replaces this process by backupd-server running command
// name with args: same process id, environment, standard streams and
// signals, so a service manager or a test sees no difference.
func execServer(name string, args []string) error {
	p, err := serverBinary()
	if err != nil {
		return &exitError{exitFail, fmt.Errorf("'backupd %s' runs in %s, the build with the API server, worker and development stack: %v. Install it beside backupd (make build writes both to bin/; the Docker image has both), or run %s %s directly",
			name, serverBinaryName, err, serverBinaryName, name)}
	}
	if forwarded {
		// backupd-server handed the command back: it is a lean build too
		// (exec'ing again would loop)
		return &exitError{exitFail, fmt.Errorf("'backupd %s' was handed to %s, which is the lean build as well: install the full build there (make build's bin/backupd-server, built without -tags lean)", name, p)}
	}
	argv := append([]string{p, name}, args...)
	err = syscall.Exec(p, argv, append(os.Environ(), forwardedEnv+"=1"))
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("running %s: %w (it must be executable by this user)", p, err)
	}
	return fmt.Errorf("running %s: %w", p, err)
}
