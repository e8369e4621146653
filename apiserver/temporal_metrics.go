package apiserver

import (
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// TemporalHandler is the Temporal SDK's metrics handler over this
// registry: give it to client.Options.MetricsHandler where the server's
// Temporal client is dialled, and the SDK's request, poll, task and
// cache figures arrive on /metrics beside backupd's own.
func (m *Metrics) TemporalHandler() client.MetricsHandler {
	return temporalHandler{m: m.temporal}
}

// temporalMetrics holds what the SDK reports. The SDK names a metric and
// gives it tags that differ from call to call (a client's and a worker's
// requests carry different ones), which a Prometheus vector with fixed
// label names cannot take; so each family keeps the union of the label
// names it has seen, and a series lacking one shows it empty (as
// Prometheus treats an absent label). Counters are exported with _total,
// timers as histograms in seconds.
type temporalMetrics struct {
	mu       sync.Mutex
	families map[string]*temporalFamily
}

type temporalFamily struct {
	kind   prometheus.ValueType // counter or gauge; untyped: a timer's histogram
	labels map[string]bool
	series map[string]*temporalSeries
}

type temporalSeries struct {
	tags    map[string]string
	value   float64
	count   uint64
	sum     float64
	buckets []uint64 // per bound, not cumulative
}

// temporalBuckets are the timers' bounds in seconds (the SDK times
// requests, polls and task executions: milliseconds to a poll's minute).
var temporalBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

func newTemporalMetrics() *temporalMetrics {
	return &temporalMetrics{families: map[string]*temporalFamily{}}
}

// series finds (or makes) the series for name and tags.
func (t *temporalMetrics) series(name string, kind prometheus.ValueType, tags map[string]string) *temporalSeries {
	name = promName(name)
	switch kind {
	case prometheus.CounterValue:
		if !strings.HasSuffix(name, "_total") {
			name += "_total"
		}
	case prometheus.UntypedValue:
		name += "_seconds"
	}
	f := t.families[name]
	if f == nil {
		f = &temporalFamily{kind: kind, labels: map[string]bool{}, series: map[string]*temporalSeries{}}
		t.families[name] = f
	}
	keys := slices.Sorted(maps.Keys(tags))
	var id strings.Builder
	for _, k := range keys {
		f.labels[promName(k)] = true
		id.WriteString(k + "\x00" + tags[k] + "\x00")
	}
	s := f.series[id.String()]
	if s == nil {
		s = &temporalSeries{tags: map[string]string{}}
		for k, v := range tags {
			s.tags[promName(k)] = v
		}
		if kind == prometheus.UntypedValue {
			s.buckets = make([]uint64, len(temporalBuckets))
		}
		f.series[id.String()] = s
	}
	return s
}

// promName makes an SDK name a valid Prometheus name.
func promName(n string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, n)
}

func (t *temporalMetrics) Describe(chan<- *prometheus.Desc) {} // unchecked: families appear as the SDK reports

func (t *temporalMetrics) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, f := range t.families {
		labels := slices.Sorted(maps.Keys(f.labels))
		d := prometheus.NewDesc(name, "Temporal SDK metric "+name+" (see Temporal's SDK metrics reference).", labels, nil)
		for _, s := range f.series {
			values := make([]string, len(labels))
			for i, l := range labels {
				values[i] = s.tags[l]
			}
			if f.kind != prometheus.UntypedValue {
				ch <- prometheus.MustNewConstMetric(d, f.kind, s.value, values...)
				continue
			}
			cum, acc := map[float64]uint64{}, uint64(0)
			for i, b := range temporalBuckets {
				acc += s.buckets[i]
				cum[b] = acc
			}
			ch <- prometheus.MustNewConstHistogram(d, s.count, s.sum, cum, values...)
		}
	}
}

// temporalHandler is client.MetricsHandler: tags accumulate with WithTags;
// each instrument writes into the shared families.
type temporalHandler struct {
	m    *temporalMetrics
	tags map[string]string
}

func (h temporalHandler) WithTags(tags map[string]string) client.MetricsHandler {
	all := maps.Clone(h.tags)
	if all == nil {
		all = map[string]string{}
	}
	maps.Copy(all, tags)
	return temporalHandler{m: h.m, tags: all}
}

func (h temporalHandler) instrument(name string, kind prometheus.ValueType) *temporalSeries {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return h.m.series(name, kind, h.tags)
}

func (h temporalHandler) Counter(name string) client.MetricsCounter {
	s := h.instrument(name, prometheus.CounterValue)
	return temporalCounter{h.m, s}
}

func (h temporalHandler) Gauge(name string) client.MetricsGauge {
	s := h.instrument(name, prometheus.GaugeValue)
	return temporalGauge{h.m, s}
}

func (h temporalHandler) Timer(name string) client.MetricsTimer {
	s := h.instrument(name, prometheus.UntypedValue)
	return temporalTimer{h.m, s}
}

type temporalCounter struct {
	m *temporalMetrics
	s *temporalSeries
}

func (c temporalCounter) Inc(d int64) {
	if d <= 0 {
		return // a counter only goes up
	}
	c.m.mu.Lock()
	c.s.value += float64(d)
	c.m.mu.Unlock()
}

type temporalGauge struct {
	m *temporalMetrics
	s *temporalSeries
}

func (g temporalGauge) Update(v float64) {
	g.m.mu.Lock()
	g.s.value = v
	g.m.mu.Unlock()
}

type temporalTimer struct {
	m *temporalMetrics
	s *temporalSeries
}

func (t temporalTimer) Record(d time.Duration) {
	sec := d.Seconds()
	if math.IsNaN(sec) || sec < 0 {
		return
	}
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	t.s.count++
	t.s.sum += sec
	for i, b := range temporalBuckets {
		if sec <= b {
			t.s.buckets[i]++
			break
		}
	}
}
