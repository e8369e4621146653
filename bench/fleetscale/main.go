// Command fleetscale measures one control plane serving a fleet (make
// bench-fleet): N simulated enrolled hosts, each enrolled through the API
// with its own credential, announcing itself every minute and holding a
// long poll through the host gateway as its worker would, and a
// PostgreSQL catalog holding B backups across them. Under that, GET
// /backup/hosts and GET /backup/list?host= are requested at a fixed rate
// (open loop) and their latencies reported. It starts its own Temporal
// dev server and `backupd server`; PostgreSQL is the machine's (a scratch
// schema, dropped at the end).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"backupd/bench/benchstack"
	"backupd/config"
	"backupd/models"
)

func main() {
	pgDSN := flag.String("pg", "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable", "PostgreSQL DSN")
	hosts := flag.Int("hosts", 500, "simulated enrolled hosts")
	n := flag.Int("backups", 100000, "backups in the catalog, spread over the hosts")
	rps := flag.Int("rps", 200, "requests per second (half GET /backup/hosts, half GET /backup/list?host=)")
	dur := flag.Duration("duration", 30*time.Second, "load duration")
	announce := flag.Duration("announce", time.Minute, "how often each host announces itself")
	bin := flag.String("bin", "bin", "directory with backupd-server and temporal")
	flag.Parse()
	if err := run(*pgDSN, *hosts, *n, *rps, *dur, *announce, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "fleetscale:", err)
		os.Exit(1)
	}
}

type client struct {
	base string
	hc   *http.Client
}

func (c *client) do(method, path, token string, body any) (int, []byte, time.Duration, error) {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	var buf bytes.Buffer
	buf.ReadFrom(res.Body)
	res.Body.Close()
	return res.StatusCode, buf.Bytes(), time.Since(start), nil
}

func run(pgDSN string, nHosts, n, rps int, dur, every time.Duration, bin string) error {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "fleetscale")
	defer os.RemoveAll(dir)
	dsn, drop, err := benchstack.Schema(pgDSN, "fleetscale")
	if err != nil {
		return err
	}
	defer drop()
	store, err := models.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer store.Close()
	adminTok, _, err := store.CreateToken(ctx, "fleetscale-admin", "admin", "fleetscale", 0)
	if err != nil {
		return err
	}
	viewerTok, _, err := store.CreateToken(ctx, "fleetscale-viewer", "viewer", "fleetscale", 0)
	if err != nil {
		return err
	}

	// Temporal and backupd (the hosts are simulated; the server's
	// repositories for them are made with the test KDF: setting up 500 of
	// them is not what is measured)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("fleetscale\n"), 0o600)
	st, err := benchstack.Start(bin, "backupd-server", "all", dir, config.Config{Host: "control", VarDir: dir, PasswordFile: pw, Primary: "local",
		Catalog:    config.Catalog{Driver: "postgres", DSN: dsn},
		Components: map[string]config.Component{"data": {Paths: []string{dir}}},
		Storage:    map[string]config.Location{"local": {URL: filepath.Join(dir, "repo")}}}, []string{"BACKUPD_TEST_KDF=1"}, viewerTok)
	if err != nil {
		return err
	}
	defer st.Stop()
	addr := st.Addr
	c := &client{base: "http://" + addr + "/cloud-integration/backup",
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}, Timeout: 30 * time.Second}}

	// 1. enrolment through the API: a token each, one RSA key shared by
	// the simulated hosts (making 500 keys is not what is measured)
	t0 := time.Now()
	key, _ := rsa.GenerateKey(rand.Reader, 3072)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	names := make([]string, nHosts)
	creds := make([]string, nHosts)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i := range nHosts {
		names[i] = fmt.Sprintf("gw-%04d", i)
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			code, body, _, err := c.do("POST", "/hosts/enrolments", adminTok, map[string]any{"name": names[i],
				"labels": map[string]string{"site": []string{"berlin", "paris", "oslo", "lyon"}[i%4]}})
			if err != nil || code != 201 {
				firstErr.CompareAndSwap(nil, fmt.Errorf("enrolment token %d: %d %s %v", i, code, body, err))
				return
			}
			var e struct{ Token string }
			json.Unmarshal(body, &e)
			code, body, _, err = c.do("POST", "/hosts/enrol", "", map[string]any{"token": e.Token, "name": names[i], "public_key": pub,
				"os": "Debian 12", "version": "bench", "components": []map[string]any{{"name": "data", "kind": "files", "paths": []string{"/srv/data"}},
					{"name": "config", "kind": "files", "paths": []string{"/etc/gw"}}}})
			if err != nil || code != 201 {
				firstErr.CompareAndSwap(nil, fmt.Errorf("enrol %d: %d %s %v", i, code, body, err))
				return
			}
			var en struct{ Credential string }
			json.Unmarshal(body, &en)
			creds[i] = en.Credential
		}(i)
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	fmt.Printf("enrolment: %d hosts enrolled through the API in %s\n", nHosts, time.Since(t0).Round(time.Millisecond))

	// 2. heartbeats: each host announces itself (the first makes its
	// repository) and holds a long poll through the gateway
	stop := make(chan struct{})
	var announces, announceErrs, polls, pollErrs atomic.Int64
	var hwg sync.WaitGroup
	t0 = time.Now()
	for i := range nHosts {
		sem <- struct{}{}
		code, body, _, err := c.do("POST", "/hosts/self/announce", creds[i], map[string]any{"os": "Debian 12", "version": "bench",
			"components": []map[string]any{{"name": "data", "kind": "files"}, {"name": "config", "kind": "files"}}})
		<-sem
		if err != nil || code != 200 {
			return fmt.Errorf("first announcement of %s: %d %s %v", names[i], code, body, err)
		}
	}
	fmt.Printf("announcements: %d hosts announced (repositories made) in %s\n", nHosts, time.Since(t0).Round(time.Millisecond))
	for i := range nHosts {
		hwg.Add(2)
		go func(i int) { // announce every interval, spread over it
			defer hwg.Done()
			time.Sleep(time.Duration(i) * every / time.Duration(nHosts))
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				code, _, _, err := c.do("POST", "/hosts/self/announce", creds[i], map[string]any{"version": "bench"})
				announces.Add(1)
				if err != nil || code != 200 {
					announceErrs.Add(1)
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}(i)
		go func(i int) { // a worker's long poll, through the gateway
			defer hwg.Done()
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				pollErrs.Add(1)
				return
			}
			defer conn.Close()
			ws := workflowservice.NewWorkflowServiceClient(conn)
			pctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+creds[i]))
			go func() { <-stop; cancel() }()
			for {
				// as the SDK's pollers do: a poll lasts up to 70 s
				tctx, tcancel := context.WithTimeout(pctx, 70*time.Second)
				_, err := ws.PollActivityTaskQueue(tctx, &workflowservice.PollActivityTaskQueueRequest{Namespace: "default",
					Identity: names[i], TaskQueue: &taskqueuepb.TaskQueue{Name: "backup@" + names[i]}})
				tcancel()
				if pctx.Err() != nil {
					return
				}
				polls.Add(1)
				if err != nil {
					if pollErrs.Add(1) == 1 {
						fmt.Println("first gateway poll error:", err)
					}
					time.Sleep(time.Second)
				}
			}
		}(i)
	}

	// 3. the catalog: n backups across the hosts, a year of them each
	t0 = time.Now()
	types := []string{"full", "incremental", "incremental", "incremental", "differential"}
	per := max(1, n/nHosts)
	base := time.Now().Add(-time.Duration(per) * 24 * time.Hour)
	batch := make([]models.Backup, 0, 1000)
	for i := range n {
		h := i % nHosts
		st := "completed"
		if i%50 == 0 {
			st = "failed"
		}
		batch = append(batch, models.Backup{ID: fmt.Sprintf("backup-fleet-%07d", i), Name: "scheduled", Type: types[(i/nHosts)%len(types)],
			Status: st, Timestamp: base.Add(time.Duration(i/nHosts) * 24 * time.Hour).Add(time.Duration(h) * time.Second),
			SizeBytes: int64(1e8 + i), CompressedBytes: int64(4e7 + i), AddedBytes: int64(1e6 + i), DurationSeconds: 30,
			Components: models.Strings{"config", "data"}, Locations: models.Strings{"local"}, Requested: models.Strings{"local"},
			Encryption: "AES-256", Compression: "zstd", IntegrityCheck: "not_run", Host: names[h], ScheduleID: "fleet-nightly",
			ComponentSizes: map[string]int64{"data": 9e7, "config": 1e7}})
		if len(batch) == cap(batch) {
			if err := store.DB.CreateInBatches(batch, 1000).Error; err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		if err := store.DB.CreateInBatches(batch, 1000).Error; err != nil {
			return err
		}
	}
	store.DB.Exec("ANALYZE backups")
	if err := store.RefreshHostLastBackups(ctx); err != nil {
		return err
	}
	fmt.Printf("catalog: %d backups inserted across %d hosts in %s\n", n, nHosts, time.Since(t0).Round(time.Millisecond))

	// 4. load, open loop: requests start on the clock
	for i := range 40 { // warm-up
		c.do("GET", "/hosts", viewerTok, nil)
		c.do("GET", "/list?limit=50&host="+names[i%nHosts], viewerTok, nil)
	}
	type sample struct {
		hosts bool
		d     time.Duration
	}
	var mu sync.Mutex
	var samples []sample
	var errs atomic.Int64
	var lwg sync.WaitGroup
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	tick := time.NewTicker(time.Second / time.Duration(rps))
	end := time.Now().Add(dur)
	k := 0
	for now := range tick.C {
		if now.After(end) {
			break
		}
		k++
		isHosts := k%2 == 0
		path := "/hosts"
		if !isHosts {
			path = "/list?limit=50&host=" + names[(k*7919)%nHosts]
		}
		lwg.Add(1)
		go func(p string, isHosts bool) {
			defer lwg.Done()
			code, body, d, err := c.do("GET", p, viewerTok, nil)
			if err != nil || code != 200 || len(body) < 500 {
				errs.Add(1)
				return
			}
			mu.Lock()
			samples = append(samples, sample{isHosts, d})
			mu.Unlock()
		}(path, isHosts)
	}
	tick.Stop()
	lwg.Wait()
	close(stop)
	hwg.Wait()
	report := func(name string, hosts bool) {
		var l []time.Duration
		for _, s := range samples {
			if s.hosts == hosts {
				l = append(l, s.d)
			}
		}
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		pct := func(p float64) time.Duration {
			if len(l) == 0 {
				return 0
			}
			return l[min(len(l)-1, int(p*float64(len(l))))].Round(10 * time.Microsecond)
		}
		fmt.Printf("%s: %d requests: p50 %s p90 %s p99 %s max %s\n", name, len(l), pct(0.5), pct(0.9), pct(0.99), pct(1))
	}
	fmt.Printf("load: %d requests/s for %s (half each), errors %d; meanwhile %d announcements (%d failed), %d gateway polls answered (%d failed)\n",
		rps, dur, errs.Load(), announces.Load(), announceErrs.Load(), polls.Load(), pollErrs.Load())
	report("GET /backup/hosts ("+strconv.Itoa(nHosts)+" hosts)", true)
	report("GET /backup/list?host=&limit=50", false)
	return nil
}
