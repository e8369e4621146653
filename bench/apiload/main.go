// Command apiload measures the API under load (make bench-api): GET
// /backup/list?limit=50 at a fixed request rate against a PostgreSQL
// catalog holding 100k backups, and WebSocket fan-out of a real backup's
// progress to many clients. It starts its own Temporal dev server and
// `backupd all`; PostgreSQL is the machine's (a scratch schema is dropped
// at the end).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"backupd/bench/benchstack"
	"backupd/config"
	"backupd/models"
)

func main() {
	pgDSN := flag.String("pg", "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable", "PostgreSQL DSN")
	n := flag.Int("backups", 100000, "backups in the catalog")
	rps := flag.Int("rps", 200, "list requests per second")
	dur := flag.Duration("duration", 30*time.Second, "load duration")
	clients := flag.Int("ws", 500, "WebSocket clients")
	src := flag.String("src", "/usr/local/go", "directory the fan-out backup reads")
	bin := flag.String("bin", "bin", "directory with backupd and temporal")
	flag.Parse()
	if err := run(*pgDSN, *n, *rps, *dur, *clients, *src, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "apiload:", err)
		os.Exit(1)
	}
}

func run(pgDSN string, n, rps int, dur time.Duration, nClients int, src, bin string) error {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "apiload")
	defer os.RemoveAll(dir)
	dsn, drop, err := benchstack.Schema(pgDSN, "apiload")
	if err != nil {
		return err
	}
	defer drop()
	store, err := models.Open("postgres", dsn)
	if err != nil {
		return err
	}
	t0 := time.Now()
	types := []string{"full", "incremental", "incremental", "incremental", "differential"}
	base := time.Now().Add(-time.Duration(n) * time.Hour)
	batch := make([]models.Backup, 0, 1000)
	for i := 0; i < n; i++ {
		st := "completed"
		if i%50 == 0 {
			st = "failed"
		}
		batch = append(batch, models.Backup{ID: fmt.Sprintf("backup-load-%07d", i), Name: "load", Type: types[i%len(types)],
			Status: st, Timestamp: base.Add(time.Duration(i) * time.Hour), SizeBytes: int64(1e9 + i), CompressedBytes: int64(4e8 + i),
			DurationSeconds: 90, Components: models.Strings{"configurations", "data"}, Locations: models.Strings{"local", "cloud"},
			Requested: models.Strings{"local", "cloud"}, Encryption: "AES-256", Compression: "zstd", IntegrityCheck: "passed",
			ComponentSizes: map[string]int64{"data": 9e8, "configurations": 1e8}})
		if len(batch) == cap(batch) {
			if err := store.DB.CreateInBatches(batch, 1000).Error; err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		store.DB.CreateInBatches(batch, 1000)
	}
	store.DB.Exec("ANALYZE backups")
	tok, _, err := store.CreateToken(ctx, "apiload", "admin", "apiload", 0)
	if err != nil {
		return err
	}
	store.Close()
	fmt.Printf("catalog: %d backups inserted in %s\n", n, time.Since(t0).Round(time.Millisecond))

	// Temporal and backupd
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("apiload\n"), 0o600)
	st, err := benchstack.Start(bin, "backupd", "all", dir, config.Config{Host: "apiload", VarDir: dir, PasswordFile: pw, Primary: "local",
		Catalog:    config.Catalog{Driver: "postgres", DSN: dsn},
		Components: map[string]config.Component{"data": {Paths: []string{src}}},
		Storage:    map[string]config.Location{"local": {URL: filepath.Join(dir, "repo")}}}, nil, tok)
	if err != nil {
		return err
	}
	defer st.Stop()
	api := "http://" + st.Addr + "/cloud-integration/backup"
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}, Timeout: 10 * time.Second}
	get := func(path string) (int, []byte, time.Duration, error) {
		req, _ := http.NewRequest("GET", api+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		res, err := hc.Do(req)
		if err != nil {
			return 0, nil, 0, err
		}
		var buf bytes.Buffer
		buf.ReadFrom(res.Body)
		res.Body.Close()
		return res.StatusCode, buf.Bytes(), time.Since(start), nil
	}

	// 1. list at a fixed rate (open loop: requests start on the clock,
	// whatever the previous ones do)
	for i := 0; i < 50; i++ { // warm-up
		get("/list?limit=50")
	}
	var mu sync.Mutex
	var lats []time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rps))
	end := time.Now().Add(dur)
	page := 0
	for now := range tick.C {
		if now.After(end) {
			break
		}
		page++
		path := "/list?limit=50"
		switch page % 4 {
		case 1:
			path += "&type=incremental"
		case 2:
			path += "&page=" + strconv.Itoa(1+page%20)
		case 3:
			path += "&status=completed&since=" + time.Now().Add(-24*30*time.Hour).UTC().Format(time.RFC3339)
		}
		wg.Add(1)
		go func(p string) {
			defer wg.Done()
			code, body, d, err := get(p)
			if err != nil || code != 200 || len(body) < 1000 {
				errs.Add(1)
				return
			}
			mu.Lock()
			lats = append(lats, d)
			mu.Unlock()
		}(path)
	}
	tick.Stop()
	wg.Wait()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[min(len(lats)-1, int(p*float64(len(lats))))]
	}
	fmt.Printf("list: %d requests at %d/s for %s: p50 %s p90 %s p99 %s max %s, errors %d\n", len(lats), rps, dur,
		pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond),
		pct(1).Round(10*time.Microsecond), errs.Load())

	// 2. WebSocket fan-out of a real backup's progress
	wsURL := "ws://" + st.Addr + "/cloud-integration/ws/backup"
	type counts struct {
		progress map[string]bool
		complete atomic.Bool
	}
	cs := make([]*counts, nClients)
	conns := make([]*websocket.Conn, nClients)
	for i := range cs {
		c, _, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Authorization": {"Bearer " + tok}})
		if err != nil {
			return fmt.Errorf("websocket client %d: %w", i, err)
		}
		conns[i] = c
		cs[i] = &counts{progress: map[string]bool{}}
	}
	var jobID atomic.Value
	jobID.Store("")
	var rwg sync.WaitGroup
	for i, c := range conns {
		rwg.Add(1)
		go func(i int, c *websocket.Conn) {
			defer rwg.Done()
			for {
				var m map[string]any
				if err := c.ReadJSON(&m); err != nil {
					return
				}
				if m["job_id"] != jobID.Load() {
					continue
				}
				switch m["type"] {
				case "backup_progress":
					d, _ := m["details"].(map[string]any)
					cs[i].progress[fmt.Sprint(m["progress"], "/", d["bytes_processed_bytes"], "/", m["current_operation"])] = true
				case "job_complete":
					cs[i].complete.Store(true)
					return
				}
			}
		}(i, c)
	}
	body, _ := json.Marshal(map[string]any{"type": "full", "components": map[string]bool{"data": true}})
	req, _ := http.NewRequest("POST", api+"/create", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	var cr map[string]any
	json.NewDecoder(res.Body).Decode(&cr)
	res.Body.Close()
	jid, _ := cr["job_id"].(string)
	if jid == "" {
		return fmt.Errorf("create: %v", cr)
	}
	jobID.Store(jid)
	start := time.Now()
	done := make(chan struct{})
	go func() { rwg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("the backup did not complete")
	}
	minP, maxP, complete := 1<<30, 0, 0
	union := map[string]bool{}
	for _, c := range cs {
		minP, maxP = min(minP, len(c.progress)), max(maxP, len(c.progress))
		for k := range c.progress {
			union[k] = true
		}
		if c.complete.Load() {
			complete++
		}
	}
	fmt.Printf("websocket: %d clients, backup of %s took %s: distinct progress messages per client min %d max %d (union %d), job_complete received by %d/%d\n",
		nClients, src, time.Since(start).Round(time.Millisecond), minP, maxP, len(union), complete, nClients)
	for _, c := range conns {
		c.Close()
	}
	return nil
}
