// Package hostproxy is the storage backend of an enrolled host: its
// repository in one of the control plane's storage locations, reached
// through the server's host storage routes with the host's credential
// (the server holds the location's own credentials, and refuses what
// would destroy a stored backup). The URL is
//
//	backupd+https://SERVER:PORT/LOCATION
//
// and the server's certificate is pinned (package tlspin).
package hostproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"backupd/storage"
	"backupd/tlspin"
)

// Prefix is where the server serves the routes (the API's prefix).
const routePrefix = "/cloud-integration/backup/hosts/self/storage/"

// Backend is one location's repository of the host, through the server.
type Backend struct {
	base     string // https://SERVER:PORT
	location string
	token    string
	grant    string
	http     *http.Client
}

// GrantHeader names the grant under which a host reads another
// repository than its own (a restore the server granted).
const GrantHeader = "X-Backupd-Grant"

// Options say how to reach the server.
type Options struct {
	Token string // the host's credential
	Pin   string // the server's certificate, sha256:...; required for https
	// Grant, when set, reads the repository a restore grant opened to
	// this host (read-only) instead of the host's own.
	Grant string
}

// New opens the location named by a backupd+https:// (or, on a trusted
// network, backupd+http://) URL.
func New(u *url.URL, o Options) (*Backend, error) {
	scheme, ok := strings.CutPrefix(u.Scheme, "backupd+")
	loc := strings.Trim(u.Path, "/")
	if !ok || (scheme != "https" && scheme != "http") || u.Host == "" || loc == "" || strings.Contains(loc, "/") {
		return nil, fmt.Errorf("host storage URL %q: want backupd+https://SERVER:PORT/LOCATION", u.Redacted())
	}
	if o.Token == "" {
		return nil, errors.New("host storage: no host credential (is this host enrolled?)")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if scheme == "https" {
		if !tlspin.Valid(o.Pin) {
			return nil, fmt.Errorf("host storage %s: the server's certificate pin %q is not sha256:<64 hex digits>", u.Host, o.Pin)
		}
		tr.TLSClientConfig = tlspin.Config(o.Pin)
	}
	tr.MaxIdleConnsPerHost = 16
	return &Backend{base: scheme + "://" + u.Host, location: loc, token: o.Token, grant: o.Grant,
		http: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

func (b *Backend) url(op string, q url.Values) string {
	return b.base + routePrefix + url.PathEscape(b.location) + "/" + op + "?" + q.Encode()
}

// do sends one request; any answer but want becomes an error that says
// what the server said, mapped to the storage contract's errors.
func (b *Backend) do(ctx context.Context, method, op string, q url.Values, body io.Reader, size int64, want int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, b.url(op, q), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	if b.grant != "" {
		req.Header.Set(GrantHeader, b.grant)
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	res, err := b.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, tlspin.ErrMismatch) {
			return nil, storage.Permanent(fmt.Errorf("host storage %s: %w", b.base, err))
		}
		return nil, fmt.Errorf("host storage %s: %w", b.base, err)
	}
	if res.StatusCode == want {
		return res, nil
	}
	defer res.Body.Close()
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if json.Unmarshal(raw, &e) != nil || e.Message == "" {
		e.Message = strings.TrimSpace(string(raw))
	}
	err = fmt.Errorf("host storage %s (%s): %s %s: HTTP %d: %s", b.base, b.location, method, q.Get("name"), res.StatusCode, e.Message)
	switch {
	case res.StatusCode == http.StatusNotFound && e.Code == "NOT_FOUND" && q.Get("name") != "":
		return nil, fmt.Errorf("%w: %v", storage.ErrNotFound, err)
	case res.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return nil, fmt.Errorf("%w: %v", storage.ErrInvalidRange, err)
	case res.StatusCode == http.StatusBadRequest && strings.Contains(e.Message, "not a valid object name"):
		return nil, fmt.Errorf("%w: %v", storage.ErrInvalidName, err)
	case res.StatusCode == http.StatusInsufficientStorage:
		return nil, storage.Permanent(fmt.Errorf("%w: %w", storage.ErrQuotaExceeded, err)) // only an admin changes that
	case res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests:
		return nil, err // the server or its storage: worth retrying
	}
	return nil, storage.Permanent(fmt.Errorf("%w: %w", storage.ErrRefused, err)) // retrying asks the same
}

// Put stores an object through the server.
func (b *Backend) Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error {
	if err := storage.ValidName(name); err != nil {
		return err
	}
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	body := &exactReader{r: io.LimitReader(r, size+1), want: size}
	res, err := b.do(ctx, "PUT", "object", url.Values{"name": {name}}, body, size, http.StatusCreated)
	if body.err != nil {
		r.Seek(start, io.SeekStart)
		return storage.Permanent(fmt.Errorf("%w: %s", storage.ErrSizeMismatch, name))
	}
	if err != nil {
		r.Seek(start, io.SeekStart)
		return err
	}
	res.Body.Close()
	return nil
}

// exactReader fails when the reader yields other than want bytes.
type exactReader struct {
	r    io.Reader
	want int64
	n    int64
	err  error
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	if e.n > e.want || (err == io.EOF && e.n < e.want) {
		e.err = storage.ErrSizeMismatch
		return n, e.err
	}
	return n, err
}

// Get reads length bytes from offset (length < 0: to the end).
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := storage.ValidName(name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, storage.ErrInvalidRange
	}
	q := url.Values{"name": {name}, "offset": {strconv.FormatInt(offset, 10)}}
	if length >= 0 {
		q.Set("length", strconv.FormatInt(length, 10))
	}
	res, err := b.do(ctx, "GET", "object", q, nil, 0, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return res.Body, nil
}

// Stat describes an object.
func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if err := storage.ValidName(name); err != nil {
		return storage.ObjectInfo{}, err
	}
	res, err := b.do(ctx, "GET", "stat", url.Values{"name": {name}}, nil, 0, http.StatusOK)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	defer res.Body.Close()
	var o struct {
		Name    string `json:"name"`
		Size    int64  `json:"size"`
		ModTime string `json:"mod_time"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&o); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("host storage %s: stat %s: %w", b.base, name, err)
	}
	t, _ := time.Parse(time.RFC3339Nano, o.ModTime)
	return storage.ObjectInfo{Name: name, Size: o.Size, ModTime: t}, nil
}

// List calls fn for each object whose name starts with prefix. A
// listing the server cut short (no end line) is an error, never a
// shorter list.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	res, err := b.do(ctx, "GET", "list", url.Values{"prefix": {prefix}}, nil, 0, http.StatusOK)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var o struct {
			Name    string `json:"name"`
			Size    int64  `json:"size"`
			ModTime string `json:"mod_time"`
			End     bool   `json:"end"`
		}
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			return fmt.Errorf("host storage %s: listing %q: %w", b.base, prefix, err)
		}
		if o.End {
			return nil
		}
		if !strings.HasPrefix(o.Name, prefix) || storage.ValidName(o.Name) != nil {
			return fmt.Errorf("host storage %s: listing %q returned %q", b.base, prefix, o.Name)
		}
		t, _ := time.Parse(time.RFC3339Nano, o.ModTime)
		if err := fn(storage.ObjectInfo{Name: o.Name, Size: o.Size, ModTime: t}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("host storage %s: listing %q: %w", b.base, prefix, err)
	}
	return fmt.Errorf("host storage %s: listing %q was cut short", b.base, prefix)
}

// Delete removes an object (the server allows it only for a running
// backup's registrations).
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := storage.ValidName(name); err != nil {
		return err
	}
	res, err := b.do(ctx, "DELETE", "object", url.Values{"name": {name}}, nil, 0, http.StatusNoContent)
	if err != nil {
		return err
	}
	res.Body.Close()
	return nil
}

// Capacity is not known to a host: the server's location decides.
func (b *Backend) Capacity(context.Context) (storage.Capacity, error) {
	return storage.Capacity{TotalBytes: -1, FreeBytes: -1, UsedBytes: -1}, nil
}

// Location names the server and the location.
func (b *Backend) Location() string { return "backupd+" + b.base + "/" + b.location }

// Close releases idle connections.
func (b *Backend) Close() error {
	b.http.CloseIdleConnections()
	return nil
}
