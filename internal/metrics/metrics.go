// Package metrics exposes velohunt's Prometheus metrics. Packages that do
// the work declare the few recorder methods they call; this package
// implements them all, and reads the store's counts on each scrape.
package metrics

import (
	"context"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
)

// StoreStats is what the scrape reads from the store.
type StoreStats interface {
	Stats(ctx context.Context) (store.Stats, error)
	OutboxStats(ctx context.Context) (store.OutboxStats, error)
	Activity(ctx context.Context) (store.Activity, error)
	Fleets(ctx context.Context) ([]store.Fleet, error)
}

// Metrics holds the registry and every metric.
type Metrics struct {
	Registry *prometheus.Registry

	iocs         *prometheus.CounterVec
	webhooks     *prometheus.CounterVec
	huntsPlanned *prometheus.CounterVec
	huntsStarted *prometheus.CounterVec
	launchFailed *prometheus.CounterVec
	rowsRead     *prometheus.CounterVec
	hits         prometheus.Counter
	writes       *prometheus.CounterVec
	irisLatency  *prometheus.HistogramVec
	irisErrors   *prometheus.CounterVec
	vrLatency    *prometheus.HistogramVec
	vrErrors     *prometheus.CounterVec
	collections  *prometheus.CounterVec

	mu     sync.Mutex
	lastOK map[string]time.Time
}

// New registers every metric, plus Go and process collectors and the
// store's gauges (none when st is nil: commands that open no store).
func New(st StoreStats) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{Registry: r, lastOK: map[string]time.Time{},
		iocs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "velohunt_iocs_received_total",
			Help: "IOCs learned from IRIS, by source (webhook, reconcile, cli, manual) and outcome (queued, refused, changed, removed)."}, []string{"source", "outcome"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "velohunt_webhook_requests_total",
			Help: "Webhook requests by event and result."}, []string{"event", "result"}),
		huntsPlanned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "velohunt_hunts_planned_total",
			Help: "Hunts planned, by server and kind."}, []string{"server", "kind"}),
		huntsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "velohunt_hunts_started_total",
			Help: "Hunts created and started in Velociraptor, by server."}, []string{"server"}),
		launchFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "velohunt_hunt_launch_failures_total",
			Help: "Failed hunt launch attempts (retried), by server and error code."}, []string{"server", "code"}),
		rowsRead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "velohunt_result_rows_read_total",
			Help: "Hunt result rows read, by server."}, []string{"server"}),
		hits: prometheus.NewCounter(prometheus.CounterOpts{Name: "velohunt_hits_total", Help: "New hits recorded."}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "velohunt_iris_writes_total",
			Help: "Outbox writes by kind (asset, event, tab) and result (done, retry, parked)."}, []string{"kind", "result"}),
		irisLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "velohunt_iris_request_seconds",
			Help: "IRIS request latency by route and result.", Buckets: prometheus.DefBuckets}, []string{"route", "result"}),
		irisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "velohunt_iris_request_errors_total",
			Help: "Failed IRIS requests by kind (retryable, permanent, transport, canceled)."}, []string{"kind"}),
		vrLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "velohunt_velociraptor_request_seconds",
			Help:    "Velociraptor query latency by server, operation and result (streams last as long as they run).",
			Buckets: prometheus.DefBuckets}, []string{"server", "op", "result"}),
		collections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "velohunt_collections_total",
			Help: "Follow-up collections on hits by server and outcome: queued, started, collected, failed."}, []string{"server", "outcome"}),
		vrErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "velohunt_velociraptor_request_errors_total",
			Help: "Failed Velociraptor queries by server and error code."}, []string{"server", "code"}),
	}
	r.MustRegister(m.iocs, m.webhooks, m.huntsPlanned, m.huntsStarted, m.launchFailed, m.rowsRead, m.hits, m.writes,
		m.irisLatency, m.irisErrors, m.vrLatency, m.vrErrors, m.collections,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if st != nil {
		r.MustRegister(&storeCollector{st: st})
	}
	return m
}

// WriterConcurrency exports the writer's current bound on IRIS requests in
// flight and how many are in flight, read at each scrape.
func (m *Metrics) WriterConcurrency(f func() (limit, inflight int)) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "velohunt_writeback_concurrency",
			Help: "Current bound on IRIS write requests in flight (lowered while IRIS answers 429/503 or slows down)."},
			func() float64 { l, _ := f(); return float64(l) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "velohunt_writeback_in_flight",
			Help: "IRIS write requests in flight."},
			func() float64 { _, n := f(); return float64(n) }))
}

// BuildInfo exports velohunt_build_info{version,goversion} 1.
func (m *Metrics) BuildInfo(version string) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "velohunt_build_info",
		Help:        "Always 1; the labels name the velohunt version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}},
		func() float64 { return 1 }))
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// IOCsReceived counts IOCs learned by source and outcome.
func (m *Metrics) IOCsReceived(source, outcome string, n int) {
	if n > 0 {
		m.iocs.WithLabelValues(source, outcome).Add(float64(n))
	}
}

// WebhookEvent counts a webhook request.
func (m *Metrics) WebhookEvent(event, result string) { m.webhooks.WithLabelValues(event, result).Inc() }

// HuntPlanned counts a planned hunt.
func (m *Metrics) HuntPlanned(server string, kind ioc.Kind) {
	m.huntsPlanned.WithLabelValues(server, string(kind)).Inc()
}

// HuntStarted counts a started hunt.
func (m *Metrics) HuntStarted(server string) { m.huntsStarted.WithLabelValues(server).Inc() }

// HuntLaunchFailed counts a failed launch attempt.
func (m *Metrics) HuntLaunchFailed(server, code string) {
	m.launchFailed.WithLabelValues(server, code).Inc()
}

// RowsRead counts result rows read.
func (m *Metrics) RowsRead(server string, n int) {
	if n > 0 {
		m.rowsRead.WithLabelValues(server).Add(float64(n))
	}
}

// Hits counts new hits.
func (m *Metrics) Hits(n int) {
	if n > 0 {
		m.hits.Add(float64(n))
	}
}

// Collection counts a follow-up collection's step (server: a configured
// server name; outcome: queued, started, collected or failed).
func (m *Metrics) Collection(server, outcome string) {
	m.collections.WithLabelValues(server, outcome).Inc()
}

// Write counts an outbox write outcome.
func (m *Metrics) Write(kind, result string) { m.writes.WithLabelValues(kind, result).Inc() }

var ids = regexp.MustCompile(`/[0-9]+`)

// ObserveIRIS records one IRIS request. op is "METHOD /path"; numeric path
// parts become {id} so that labels stay few.
func (m *Metrics) ObserveIRIS(op string, status int, d time.Duration, err error, retryable bool) {
	route := ids.ReplaceAllString(op, "/{id}")
	result := "ok"
	switch {
	case err == nil:
		m.markOK("iris")
	case status == 0 && retryable:
		result = "transport"
	case retryable:
		result = "retryable"
	case status == 0:
		result = "canceled"
	default:
		result = "permanent"
	}
	if err != nil {
		m.irisErrors.WithLabelValues(result).Inc()
	}
	m.irisLatency.WithLabelValues(route, result).Observe(d.Seconds())
}

// VelociraptorObserver returns the observer of one server's client.
func (m *Metrics) VelociraptorObserver(server string) func(op string, d time.Duration, err error) {
	return func(op string, d time.Duration, err error) {
		result := "ok"
		if err != nil {
			result = ioc.ErrorCode(err)
			m.vrErrors.WithLabelValues(server, result).Inc()
		} else {
			m.markOK("velociraptor:" + server)
		}
		m.vrLatency.WithLabelValues(server, op, result).Observe(d.Seconds())
	}
}

func (m *Metrics) markOK(peer string) {
	m.mu.Lock()
	m.lastOK[peer] = time.Now()
	m.mu.Unlock()
}

// LastOK returns when a request to a peer ("iris", "velociraptor:NAME")
// last succeeded.
func (m *Metrics) LastOK(peer string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastOK[peer]
}

// storeCollector reads gauges from the store on each scrape.
type storeCollector struct{ st StoreStats }

var (
	descIOCs    = prometheus.NewDesc("velohunt_iocs", "IOC rows by state; hit counts the hunting and hunted rows with at least one hit.", []string{"state"}, nil)
	descHunts   = prometheus.NewDesc("velohunt_hunts", "Hunts by state.", []string{"state"}, nil)
	descCases   = prometheus.NewDesc("velohunt_open_cases", "Open cases velohunt follows.", nil, nil)
	descIncompl = prometheus.NewDesc("velohunt_hunts_incomplete", "Hunts in which at least one host's collection failed, timed out or could not search everything (never reported clean).", nil, nil)
	descGaps    = prometheus.NewDesc("velohunt_coverage_gaps", "Hosts of running hunts where a source of velohunt's artifact searched nothing or reported a problem, by source.", []string{"source"}, nil)
	descInbox   = prometheus.NewDesc("velohunt_webhook_events_pending", "Webhook events stored and not handled yet.", nil, nil)
	descPending = prometheus.NewDesc("velohunt_outbox_pending", "IRIS writes waiting, by kind.", []string{"kind"}, nil)
	descOldest  = prometheus.NewDesc("velohunt_outbox_oldest_seconds", "Age of the oldest waiting IRIS write.", nil, nil)
	descParked  = prometheus.NewDesc("velohunt_outbox_parked", "IRIS writes IRIS refused, waiting for an operator.", nil, nil)
	descWaiting = prometheus.NewDesc("velohunt_hits_waiting", "Hits whose asset or timeline event is not in IRIS yet.", nil, nil)
	descRate    = prometheus.NewDesc("velohunt_writeback_writes_per_second", "Asset and event writes done per second over the last minute.", nil, nil)
	descDrain   = prometheus.NewDesc("velohunt_writeback_drain_seconds", "Estimated time to write the waiting assets and events at the last minute's rate (-1: none written in the last minute).", nil, nil)
	descUp      = prometheus.NewDesc("velohunt_store_up", "1 when the store answered this scrape.", nil, nil)
	descSync    = prometheus.NewDesc("velohunt_last_sync_timestamp_seconds", "When a sync of IRIS's case list (reconcile or webhook) last finished (0: never).", nil, nil)
	descWatch   = prometheus.NewDesc("velohunt_last_watcher_pass_timestamp_seconds", "When a watcher pass last finished (0: never).", nil, nil)
	descWrite   = prometheus.NewDesc("velohunt_last_write_timestamp_seconds", "When an asset, event or tab was last written to IRIS (0: never).", nil, nil)
	descFleet   = prometheus.NewDesc("velohunt_fleet_clients", "Velociraptor clients by server, org, release (a release of velohunt's table, else \"other\") and how well velohunt hunts there (full, partial, unchecked), as serve last read them.",
		[]string{"server", "org", "version", "support"}, nil)
	descFleetAt = prometheus.NewDesc("velohunt_fleet_checked_timestamp_seconds", "When serve last read a server's and org's client versions (0: never).", []string{"server", "org"}, nil)
)

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMilli()) / 1000
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIOCs, descHunts, descIncompl, descGaps, descCases, descInbox, descPending, descOldest, descParked, descWaiting, descRate, descDrain, descUp, descSync, descWatch, descWrite, descFleet, descFleetAt} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.st.Stats(ctx)
	ob, err2 := c.st.OutboxStats(ctx)
	act, err3 := c.st.Activity(ctx)
	fleets, err4 := c.st.Fleets(ctx)
	if err != nil || err2 != nil || err3 != nil || err4 != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	for _, s := range []string{store.StateQueued, store.StateHunting, store.StateHunted, store.StateHit, store.StateRefused, store.StateRemoved} {
		ch <- prometheus.MustNewConstMetric(descIOCs, prometheus.GaugeValue, float64(st.IOCs[s]), s)
	}
	for _, s := range []string{store.HuntPlanned, store.HuntCreated, store.HuntRunning, store.HuntFinished, store.HuntStopped, store.HuntExpired} {
		ch <- prometheus.MustNewConstMetric(descHunts, prometheus.GaugeValue, float64(st.Hunts[s]), s)
	}
	ch <- prometheus.MustNewConstMetric(descIncompl, prometheus.GaugeValue, float64(st.IncompleteHunts))
	for src, n := range st.Gaps {
		// The watcher stores only the source names of velohunt's artifacts
		// (any other is "other"): an endpoint cannot add series.
		ch <- prometheus.MustNewConstMetric(descGaps, prometheus.GaugeValue, float64(n), src)
	}
	ch <- prometheus.MustNewConstMetric(descCases, prometheus.GaugeValue, float64(st.OpenCases))
	ch <- prometheus.MustNewConstMetric(descInbox, prometheus.GaugeValue, float64(st.InboxDepth))
	for _, k := range []string{"asset", "event", "tab"} {
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(ob.ByKind[k]), k)
	}
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, ob.OldestAge.Seconds())
	ch <- prometheus.MustNewConstMetric(descParked, prometheus.GaugeValue, float64(ob.Parked))
	ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(ob.HitsWaiting))
	ch <- prometheus.MustNewConstMetric(descRate, prometheus.GaugeValue, ob.WritesPerSecond())
	ch <- prometheus.MustNewConstMetric(descDrain, prometheus.GaugeValue, ob.DrainSeconds())
	ch <- prometheus.MustNewConstMetric(descSync, prometheus.GaugeValue, unixSeconds(act.LastSync))
	ch <- prometheus.MustNewConstMetric(descWatch, prometheus.GaugeValue, unixSeconds(act.LastWatch))
	ch <- prometheus.MustNewConstMetric(descWrite, prometheus.GaugeValue, unixSeconds(act.LastWrite))
	collectFleets(ch, fleets)
}

// collectFleets exports the fleets' clients. Clients report their own
// version, so the label is the release of velohunt's table a version is
// (a bounded set) or "other", never the reported text.
func collectFleets(ch chan<- prometheus.Metric, fleets []store.Fleet) {
	type key struct{ version, support string }
	for _, f := range fleets {
		org := f.Org
		if org == "" {
			org = "root"
		}
		ch <- prometheus.MustNewConstMetric(descFleetAt, prometheus.GaugeValue, unixSeconds(f.CheckedAt), f.Server, org)
		sums := map[key]int64{}
		for _, v := range f.Versions {
			k := key{"other", v.Support}
			if v.Release != "" {
				k.version = strings.TrimPrefix(v.Release, "v")
			}
			sums[k] += v.Clients
		}
		for k, n := range sums {
			ch <- prometheus.MustNewConstMetric(descFleet, prometheus.GaugeValue, float64(n), f.Server, org, k.version, k.support)
		}
	}
}
