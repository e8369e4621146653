package activities

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"backupd/config"
	"backupd/models"
)

// NotifyInput is one job outcome to deliver.
type NotifyInput struct {
	JobID   string          `json:"job_id"`
	Event   string          `json:"event"` // success | failure | warning
	Payload json.RawMessage `json:"payload"`
}

// Notify delivers a job's outcome to every configured webhook and to the
// SMTP recipients that take the event. Each target's outcome is recorded
// (models.Delivery); a target already delivered is skipped, so a retry
// sends only what failed. An error lists the failed targets (the workflow
// retries a few times, then lets it be: a notification never fails a job).
func (c *Catalog) Notify(ctx context.Context, in NotifyInput) error {
	attempt := 1
	if activity.IsActivity(ctx) {
		attempt = int(activity.GetInfo(ctx).Attempt)
	}
	var failed []string
	try := func(target string, send func() error) {
		id := in.JobID + ":" + in.Event + ":" + target
		if d, err := c.Store.GetDelivery(ctx, id); err == nil && d.Status == "delivered" {
			return
		}
		err := send()
		d := &models.Delivery{ID: id, JobID: in.JobID, Event: in.Event, Target: target, Status: "delivered", Attempts: attempt}
		if err != nil {
			d.Status, d.Error = "failed", err.Error()
			failed = append(failed, target+": "+err.Error())
		}
		if perr := c.Store.PutDelivery(ctx, d); perr != nil && err == nil {
			failed = append(failed, target+": recording the delivery: "+perr.Error())
		}
	}
	for i, w := range c.Notifications.Webhooks {
		if !takes(w.Events, in.Event) {
			continue
		}
		name := w.Name
		if name == "" {
			name = "webhook-" + strconv.Itoa(i)
		}
		w := w
		try("webhook:"+name, func() error { return postWebhook(ctx, w, in) })
	}
	if m := c.Notifications.SMTP; m != nil && takes(m.Events, in.Event) {
		try("smtp", func() error { return sendMail(ctx, *m, in) })
	}
	if len(failed) > 0 {
		return errors.New("notification not delivered: " + strings.Join(failed, "; "))
	}
	return nil
}

func takes(events []string, e string) bool {
	if len(events) == 0 {
		return true
	}
	for _, x := range events {
		if x == e {
			return true
		}
	}
	return false
}

// Sign is the webhook signature: HMAC-SHA-256 of the body with the secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func secretOf(w config.Webhook) (string, error) {
	if w.SecretFile == "" {
		return w.Secret, nil
	}
	b, err := os.ReadFile(w.SecretFile)
	if err != nil {
		return "", fmt.Errorf("secret_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func postWebhook(ctx context.Context, w config.Webhook, in NotifyInput) error {
	secret, err := secretOf(w)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", w.URL, bytes.NewReader(in.Payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "backupd")
	req.Header.Set("X-Backupd-Event", "backup."+in.Event)
	req.Header.Set("X-Backupd-Delivery", in.JobID+":"+in.Event)
	req.Header.Set("X-Backupd-Signature", Sign(secret, in.Payload))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		// never the URL in what is recorded: webhook URLs carry secrets
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook %s: %v", w.Name, err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s answered %s", w.Name, res.Status)
	}
	return nil
}

func sendMail(ctx context.Context, m config.SMTP, in NotifyInput) error {
	var p struct {
		JobID    string         `json:"job_id"`
		Status   string         `json:"status"`
		Message  string         `json:"message"`
		BackupID string         `json:"backup_id"`
		Details  map[string]any `json:"details"`
	}
	json.Unmarshal(in.Payload, &p)
	port := m.Port
	if port == 0 {
		port = 25
	}
	addr := net.JoinHostPort(m.Host, strconv.Itoa(port))
	var auth smtp.Auth
	if m.Username != "" {
		pw, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return fmt.Errorf("smtp password_file: %w", err)
		}
		auth = smtp.PlainAuth("", m.Username, strings.TrimSpace(string(pw)), m.Host)
	}
	var body strings.Builder
	fmt.Fprintf(&body, "From: %s\r\nTo: %s\r\nSubject: [backupd] backup %s: %s\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		m.From, strings.Join(m.To, ", "), in.Event, p.BackupID, time.Now().UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&body, "%s\r\n\r\njob: %s\r\nbackup: %s\r\nstatus: %s\r\n", p.Message, p.JobID, p.BackupID, p.Status)
	for k, v := range p.Details {
		fmt.Fprintf(&body, "%s: %v\r\n", k, v)
	}
	done := make(chan error, 1)
	go func() { done <- smtp.SendMail(addr, auth, m.From, m.To, []byte(body.String())) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return fmt.Errorf("smtp %s: timed out", addr)
	}
}
