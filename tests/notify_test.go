package tests

// Notifications for real: a webhook receiver on loopback gets a correctly
// signed POST for a successful and for a failed backup, and an SMTP
// server on loopback gets the mails; a receiver that is down never fails
// a backup, and the failed delivery is recorded.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"backupd/activities"
	"backupd/config"
)

type received struct {
	mu    sync.Mutex
	hooks []map[string]any
	bad   int
	mails []string
}

// smtpServer is a minimal SMTP receiver (enough for net/smtp).
func smtpServer(t *testing.T, got *received) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				r := bufio.NewReader(c)
				say := func(s string) { c.Write([]byte(s + "\r\n")) }
				say("220 test")
				var data strings.Builder
				inData := false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if inData {
						if line == ".\r\n" {
							inData = false
							got.mu.Lock()
							got.mails = append(got.mails, data.String())
							got.mu.Unlock()
							say("250 ok")
							continue
						}
						data.WriteString(line)
						continue
					}
					switch cmd := strings.ToUpper(strings.Fields(line + " x")[0]); cmd {
					case "EHLO", "HELO":
						say("250 test")
					case "DATA":
						inData = true
						say("354 go on")
					case "QUIT":
						say("221 bye")
						return
					default:
						say("250 ok")
					}
				}
			}(c)
		}
	}()
	return ln.Addr().String()
}

func TestNotificationsWebhookAndEmail(t *testing.T) {
	got := &received{}
	const secret = "webhook-secret"
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got.mu.Lock()
		defer got.mu.Unlock()
		if r.Header.Get("X-Backupd-Signature") != activities.Sign(secret, body) {
			got.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m map[string]any
		json.Unmarshal(body, &m)
		m["header_event"] = r.Header.Get("X-Backupd-Event")
		got.hooks = append(got.hooks, m)
	}))
	defer hook.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	smtpAddr := smtpServer(t, got)
	host, port, _ := net.SplitHostPort(smtpAddr)
	// server and worker apart: the API cannot check the worker's paths, so
	// the backup of a missing path is accepted and fails as a job
	s := startAPIStackWith(t, "sqlite", func(s *apiStack) { s.split = true }, func(c *config.Config) {
		c.Components["gone"] = config.Component{Paths: []string{"/nonexistent/backupd-test-path"}}
		p := 0
		for _, ch := range port {
			p = p*10 + int(ch-'0')
		}
		c.Notifications = config.Notifications{
			Webhooks: []config.Webhook{{Name: "ops", URL: hook.URL, Secret: secret},
				{Name: "down", URL: down.URL, Secret: "x", Events: []string{"failure"}}},
			SMTP: &config.SMTP{Host: host, Port: p, From: "backupd@test", To: []string{"ops@test"}, Events: []string{"failure"}},
		}
	})
	const v1 = "/v1/cloud-integration/backup"
	ok := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full", "notify_on_completion": true,
		"components": map[string]bool{"configurations": true}, "storage_locations": []string{"local"}})
	s.waitJob(t, v1+"/progress?job_id="+ok["job_id"].(string))
	bad := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full", "notify_on_completion": true,
		"components": map[string]bool{"gone": true}, "storage_locations": []string{"local"}})
	if p := s.waitJob(t, v1+"/progress?job_id="+bad["job_id"].(string)); p["status"] != "failed" || get(p, "error.code") != "BACKUP_003" {
		t.Fatalf("the failing backup: %v", p)
	}
	// without notify_on_completion nothing is sent
	quiet := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"configurations": true}, "storage_locations": []string{"local"}})
	s.waitJob(t, v1+"/progress?job_id="+quiet["job_id"].(string))

	deadline := time.Now().Add(60 * time.Second)
	for {
		got.mu.Lock()
		n, m := len(got.hooks), len(got.mails)
		got.mu.Unlock()
		if n >= 2 && m >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries: %d webhooks, %d mails", n, m)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	got.mu.Lock()
	defer got.mu.Unlock()
	if got.bad != 0 || len(got.hooks) != 2 {
		t.Fatalf("webhooks: %d badly signed, %v", got.bad, got.hooks)
	}
	byJob := map[string]map[string]any{}
	for _, h := range got.hooks {
		byJob[h["job_id"].(string)] = h
	}
	if h := byJob[ok["job_id"].(string)]; h == nil || h["event"] != "backup.success" || h["header_event"] != "backup.success" || h["backup_id"] != ok["backup_id"] {
		t.Fatalf("success notification: %v", h)
	}
	if h := byJob[bad["job_id"].(string)]; h == nil || h["event"] != "backup.failure" ||
		!strings.Contains(h["details"].(map[string]any)["error"].(string), "does not exist") {
		t.Fatalf("failure notification: %v", h)
	}
	if len(got.mails) != 1 || !strings.Contains(got.mails[0], "Subject: [backupd] backup failure") {
		t.Fatalf("mails: %q", got.mails)
	}
	got.mu.Unlock()
	// the receiver that is down: recorded as failed, the backup is not
	// affected, and the job (its workflow) is over, so the same backup
	// can run again at once
	var p obj
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		p = s.must(200, "GET", v1+"/progress?job_id="+bad["job_id"].(string), "viewer", nil)
		if strings.Contains(fmt.Sprint(p["notifications"]), "webhook:down") {
			break
		}
	}
	ns := fmt.Sprint(p["notifications"])
	if !strings.Contains(ns, "target:webhook:down") || !strings.Contains(ns, "status:failed") || !strings.Contains(ns, "503") ||
		!strings.Contains(ns, "target:webhook:ops") || !strings.Contains(ns, "status:delivered") {
		t.Fatalf("recorded deliveries: %v", p["notifications"])
	}
	again := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full",
		"components": map[string]bool{"gone": true}, "storage_locations": []string{"local"}})
	s.waitJob(t, v1+"/progress?job_id="+again["job_id"].(string))
	got.mu.Lock()
}
