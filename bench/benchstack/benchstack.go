// Package benchstack starts what the API benchmarks (bench/apiload,
// bench/fleetscale) run against: a scratch schema in the machine's
// PostgreSQL, a Temporal dev server and a backupd process on them.
package benchstack

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"backupd/config"
	temporalconfig "backupd/temporal-config"
)

// FreePort is a loopback port free now.
func FreePort() int {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Schema makes a scratch schema named prefix_<random> and returns the
// DSN that uses it and the func that drops it.
func Schema(pgDSN, prefix string) (string, func(), error) {
	b := make([]byte, 4)
	rand.Read(b)
	schema := prefix + "_" + hex.EncodeToString(b)
	admin, err := gorm.Open(postgres.Open(pgDSN), &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
	if err != nil {
		return "", nil, err
	}
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		return "", nil, err
	}
	return pgDSN + " search_path=" + schema, func() { admin.Exec("DROP SCHEMA " + schema + " CASCADE") }, nil
}

// Stack is a Temporal dev server and a backupd process.
type Stack struct {
	Addr string // the API's host:port
	Log  string // backupd's log file
	stop []func()
}

// Stop ends the processes, backupd first.
func (s *Stack) Stop() {
	for i := len(s.stop) - 1; i >= 0; i-- {
		s.stop[i]()
	}
}

// Start runs Temporal and `<bin>/<backupd> <mode>` (all or server) with
// cfg (its API and Temporal addresses filled in) in dir, and waits for
// the API to answer GET /backup/status with token.
func Start(bin, backupd, mode, dir string, cfg config.Config, env []string, token string) (*Stack, error) {
	s := &Stack{}
	tport, uiport, apiPort := FreePort(), FreePort(), FreePort()
	tcmd := exec.Command(filepath.Join(bin, "temporal"), temporalconfig.DevServerArgs(filepath.Join(dir, "t.db"), "127.0.0.1", tport, uiport, "default")...)
	tcmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := tcmd.Start(); err != nil {
		return nil, err
	}
	s.stop = append(s.stop, func() { tcmd.Process.Signal(os.Interrupt); tcmd.Wait() })
	s.Addr = "127.0.0.1:" + strconv.Itoa(apiPort)
	cfg.API.Listen = s.Addr
	cfg.Temporal = config.Temporal{Address: "127.0.0.1:" + strconv.Itoa(tport), Namespace: "default"}
	yb, _ := yaml.Marshal(&cfg)
	cfgPath := filepath.Join(dir, "backupd.yaml")
	os.WriteFile(cfgPath, yb, 0o600)
	bcmd := exec.Command(filepath.Join(bin, backupd), mode, "--config", cfgPath)
	bcmd.Env = append(os.Environ(), env...)
	s.Log = filepath.Join(dir, "backupd.log")
	logf, _ := os.Create(s.Log)
	bcmd.Stdout, bcmd.Stderr = logf, logf
	bcmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := bcmd.Start(); err != nil {
		s.Stop()
		return nil, err
	}
	s.stop = append(s.stop, func() { bcmd.Process.Signal(os.Interrupt); bcmd.Wait() })
	for deadline := time.Now().Add(60 * time.Second); ; {
		req, _ := http.NewRequest("GET", "http://"+s.Addr+"/cloud-integration/backup/status", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("backupd did not come up (log in %s)", s.Log)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
