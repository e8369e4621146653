// Package apiclient is the client side of backupd's public REST and
// WebSocket API: typed calls that send and answer package api's types,
// errors decoded from the spec's error body, and a follower that watches a
// job to its end over the WebSocket. It imports package api and nothing
// of the server, the catalog or Temporal: the CLI's server commands and
// any other Go client use it alone.
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"backupd/tlspin"
)

// Prefix is where the API's routes are served (the spec's; /v1 serves the
// same routes).
const Prefix = "/cloud-integration"

// Client calls one server's API with one token.
type Client struct {
	base  string // scheme://host[:port], no trailing slash
	token string
	http  *http.Client
	tls   *tls.Config // nil: the system's roots
}

// Options are how a Client reaches its server.
type Options struct {
	// CAFile, for an https server: a PEM file of certificates to trust
	// beside the system's roots (a self-signed server certificate, or
	// the CA that issued it).
	CAFile string
	// Timeout bounds one call (default 2 minutes; the WebSocket is not
	// bounded by it).
	Timeout time.Duration
	// Pin, for an https server: "sha256:<hex>" of the certificate the
	// server must present (an enrolled host's pin). With a pin the
	// certificate is checked against it alone, not against any CA, and
	// a different one is refused, naming both fingerprints.
	Pin string
}

// ErrPinMismatch: the server presented another certificate than the
// pinned one.
var ErrPinMismatch = tlspin.ErrMismatch

// CertFingerprint is "sha256:<hex>" of a DER certificate.
func CertFingerprint(der []byte) string { return tlspin.Fingerprint(der) }

// ServerFingerprint connects to an https server without trusting
// anything and returns its certificate's fingerprint (what a host pins
// on first use when it was given none).
func ServerFingerprint(ctx context.Context, base string) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("server %q: a fingerprint needs https://HOST:PORT", base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr += ":443"
	}
	d := tls.Dialer{Config: &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", &UnreachableError{Base: base, Err: err}
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", fmt.Errorf("%s presented no certificate", base)
	}
	return CertFingerprint(certs[0].Raw), nil
}

// New is a client of the server at base (http://HOST:PORT or
// https://HOST:PORT) that sends token as its bearer token.
func New(base, token string, opt Options) (*Client, error) {
	base = strings.TrimRight(strings.TrimSpace(base), "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("server %q: want http://HOST:PORT or https://HOST:PORT", base)
	}
	c := &Client{base: base, token: token}
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Minute
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if opt.CAFile != "" {
		if u.Scheme != "https" {
			return nil, fmt.Errorf("a CA file (%s) is for an https server; %s is http", opt.CAFile, base)
		}
		pem, err := os.ReadFile(opt.CAFile)
		if err != nil {
			return nil, fmt.Errorf("the server's certificate: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the server's certificate: %s holds no PEM certificate", opt.CAFile)
		}
		c.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		tr.TLSClientConfig = c.tls
	}
	if opt.Pin != "" {
		if u.Scheme != "https" {
			return nil, fmt.Errorf("a certificate pin (%s) is for an https server; %s is http", opt.Pin, base)
		}
		if !tlspin.Valid(opt.Pin) {
			return nil, fmt.Errorf("certificate pin %q: want sha256: and 64 hex digits", opt.Pin)
		}
		c.tls = tlspin.Config(opt.Pin)
		tr.TLSClientConfig = c.tls
	}
	// A redirect is never followed: Go would send the token (and a POST's
	// body) on to another port or scheme of the same host. The caller is
	// told where the server points instead.
	c.http = &http.Client{Transport: tr, Timeout: opt.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c, nil
}

// MaxAnswer bounds an answer the client reads into memory (a list of
// 1,000 backups is about 2 MB): a hostile or broken server cannot make it
// allocate gigabytes.
const MaxAnswer = 64 << 20

// MaxMessage bounds one WebSocket message (progress messages are about
// 1 KB).
const MaxMessage = 1 << 20

// Base is the server's base URL.
func (c *Client) Base() string { return c.base }

// Error is an error answer of the API: its HTTP status and the spec's
// error body (code, message, details, suggested actions).
type Error struct {
	StatusCode int
	Method     string
	Path       string
	Body       ErrorBody
}

// ErrorBody is the spec's error format (api.Error's fields a client reads;
// api.Error itself is the document's schema).
type ErrorBody struct {
	Code             string         `json:"code"`
	Message          string         `json:"message"`
	Details          map[string]any `json:"details"`
	SuggestedActions []string       `json:"suggested_actions"`
	RequestID        string         `json:"request_id"`
}

func (e *Error) Error() string {
	if e.Body.Code == "" {
		return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.StatusCode, e.Body.Message)
	}
	return e.Body.Code + ": " + e.Body.Message
}

// Field is the request field the error names (details.field), if any.
func (e *Error) Field() string {
	f, _ := e.Body.Details["field"].(string)
	return f
}

// decodeError reads an error answer. A body that is not the spec's error
// (a proxy's page, say) becomes the message, cut short.
func decodeError(res *http.Response, method, path string) *Error {
	e := &Error{StatusCode: res.StatusCode, Method: method, Path: path}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if json.Unmarshal(b, &e.Body) != nil || e.Body.Message == "" {
		msg := strings.TrimSpace(string(b))
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		if msg == "" {
			msg = http.StatusText(res.StatusCode)
		}
		e.Body = ErrorBody{Message: msg}
	}
	return e
}

// UnreachableError says no server answered at the address.
type UnreachableError struct {
	Base string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("no server answers at %s (%v)", e.Base, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// unreachable wraps a transport error; a cancelled context stays itself.
func (c *Client) unreachable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, ErrPinMismatch) {
		return fmt.Errorf("refusing %s: %w. The server's identity changed: if its certificate was replaced on purpose, enrol this host again; otherwise something is impersonating it", c.base, err)
	}
	var tlsErr *tls.CertificateVerificationError
	if errors.As(err, &tlsErr) {
		return fmt.Errorf("the certificate of %s is not trusted (%v): name the CA or the server's certificate with a CA file", c.base, tlsErr.Err)
	}
	return &UnreachableError{Base: c.base, Err: err}
}

// call sends one request: body (if not nil) as JSON; the answer, when the
// status is 2xx, decoded into out (if not nil). It returns the answer's
// bytes, for a caller that shows them as they came.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any) (json.RawMessage, error) {
	res, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, MaxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: the answer was cut short: %w", method, path, c.unreachable(ctx, err))
	}
	if len(raw) > MaxAnswer {
		return nil, fmt.Errorf("%s %s: the answer is larger than %d MiB: is %s a backupd server? (ask for fewer entries with --limit)", method, path, MaxAnswer>>20, c.base)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: the answer is not the expected JSON (%v): is %s a backupd server?", method, path, err, c.base)
		}
	}
	return raw, nil
}

// send sends one request and returns a 2xx answer for the caller to read
// and close; any other status is an *Error.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	u := c.base + Prefix + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return nil, c.unreachable(ctx, err)
	}
	if res.StatusCode/100 == 3 {
		res.Body.Close()
		return nil, fmt.Errorf("%s %s: the server at %s redirects to %q, which this client does not follow (the token would go along): if that is the server, give it with --server or BACKUPD_SERVER",
			method, path, c.base, res.Header.Get("Location"))
	}
	if res.StatusCode/100 != 2 {
		defer res.Body.Close()
		return nil, decodeError(res, method, Prefix+path)
	}
	return res, nil
}

// Download starts a GET whose answer is not JSON (a debug bundle, an
// export): the caller reads and closes the body.
func (c *Client) Download(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	return c.send(ctx, "GET", path, query, nil)
}

// wsURL is the WebSocket's address for the query.
func (c *Client) wsURL(query url.Values) string {
	u := "ws" + strings.TrimPrefix(c.base, "http") + Prefix + "/ws/backup"
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// dialWS opens the WebSocket; a refused handshake is the server's *Error.
func (c *Client) dialWS(ctx context.Context, query url.Values) (*websocket.Conn, error) {
	d := websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 30 * time.Second, TLSClientConfig: c.tls,
		NetDialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext}
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	conn, res, err := d.DialContext(ctx, c.wsURL(query), h)
	if err != nil {
		if res != nil && res.StatusCode != http.StatusSwitchingProtocols {
			return nil, decodeError(res, "GET", Prefix+"/ws/backup")
		}
		return nil, c.unreachable(ctx, err)
	}
	conn.SetReadLimit(MaxMessage)
	return conn, nil
}
