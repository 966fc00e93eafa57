package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"s3docs/chunkcache"
	"s3docs/fs"
	"s3docs/s3store"
)

// metrics are the daemon's Prometheus series, in a registry of their own
// (no process-wide default registry).
type metrics struct {
	reg        *prometheus.Registry
	gets       *prometheus.CounterVec
	getBytes   *prometheus.CounterVec
	getSeconds prometheus.Histogram
	splits     *prometheus.CounterVec
	splitSecs  *prometheus.HistogramVec
	fuseSecs   *prometheus.HistogramVec
	fuseErrors *prometheus.CounterVec
	// Every request sent to the store, throttled ones, and retries.
	s3Requests  *prometheus.CounterVec
	s3Throttled *prometheus.CounterVec
	s3Retries   *prometheus.CounterVec
}

// timedFUSEOps are the FUSE operations whose latency is kept as a
// histogram: what a reading program waits for. The others are only
// counted when they fail (fuseErrors), which keeps the series few.
var timedFUSEOps = []string{"lookup", "open", "read", "readdir"}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		gets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "s3docs_get_requests_total",
			Help: "Ranged GETs of chunks (one per chunk; retries and resumes included in it), by outcome.",
		}, []string{"outcome"}),
		getBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "s3docs_get_bytes_total",
			Help: "Bytes stored by chunk GETs, by outcome.",
		}, []string{"outcome"}),
		getSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "s3docs_get_duration_seconds",
			Help:    "Time to fetch one chunk into the cache.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		splits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "s3docs_split_requests_total",
			Help: "Page counts (op=pages) and parts (op=part) made by split workers, by outcome.",
		}, []string{"op", "outcome"}),
		splitSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "s3docs_split_duration_seconds",
			Help:    "Time a split worker took for a page count (parse included) or a part.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 12),
		}, []string{"op"}),
		fuseSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "s3docs_fuse_request_duration_seconds",
			Help: "Time the daemon took to answer a FUSE request, from its arrival to the answer, errors included: " +
				"what the reading program waits for (op: lookup, open, read, readdir).",
			// 100 µs (a cached read) to 53 s; a read that waits for S3
			// can take up to --read-timeout, which falls in +Inf beyond.
			Buckets: prometheus.ExponentialBuckets(0.0001, 3, 13),
		}, []string{"op"}),
		fuseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "s3docs_fuse_errors_total",
			Help: "FUSE requests answered with an error, by operation and errno (ENOENT for lookups of names that are not there, EIO for failures).",
		}, []string{"op", "errno"}),
	}
	m.s3Requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "s3docs_s3_requests_total",
		Help: "Every request sent to the store, retries and throttled ones included, by kind (get, head, list) and outcome: ok (an answer, a 404 or 412 included), throttled (503 SlowDown, 429), error (another 5xx, 403, no answer).",
	}, []string{"kind", "outcome"})
	m.s3Throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "s3docs_s3_throttled_total",
		Help: "Requests the store answered with throttling (503 SlowDown or ServiceUnavailable, 429), by kind.",
	}, []string{"kind"})
	m.s3Retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "s3docs_s3_retries_total",
		Help: "Requests sent again, by reason: throttled, server_error (a 5xx), network (no answer), resume (a body cut short or stalled).",
	}, []string{"reason"})
	// Every series from the start, at 0: a dashboard sees the daemon
	// before its first throttled answer.
	for _, kind := range []string{s3store.KindGet, s3store.KindHead, s3store.KindList} {
		for _, o := range []string{s3store.OutcomeOK, s3store.OutcomeThrottled, s3store.OutcomeError} {
			m.s3Requests.WithLabelValues(kind, o)
		}
		m.s3Throttled.WithLabelValues(kind)
	}
	for _, r := range []string{s3store.RetryThrottled, s3store.RetryServerError, s3store.RetryNetwork, s3store.RetryResume} {
		m.s3Retries.WithLabelValues(r)
	}
	// Series that alerts and dashboards divide by or take rates of exist
	// from the start at 0: a counter first seen at 1 hides its first
	// increase from rate() and increase().
	for _, o := range []string{"ok", "error"} {
		m.gets.WithLabelValues(o)
		m.getBytes.WithLabelValues(o)
		for _, op := range []string{"pages", "part"} {
			m.splits.WithLabelValues(op, o)
		}
	}
	for _, op := range timedFUSEOps {
		m.fuseSecs.WithLabelValues(op)
		m.fuseErrors.WithLabelValues(op, "EIO")
	}
	m.reg.MustRegister(m.gets, m.getBytes, m.getSeconds, m.splits, m.splitSecs, m.fuseSecs, m.fuseErrors,
		m.s3Requests, m.s3Throttled, m.s3Retries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Request is the file tree's fs.Observer.
func (m *metrics) Request(op string, d time.Duration, errno syscall.Errno) {
	if slices.Contains(timedFUSEOps, op) {
		m.fuseSecs.WithLabelValues(op).Observe(d.Seconds())
	}
	if errno != 0 {
		m.fuseErrors.WithLabelValues(op, errnoLabel(errno)).Inc()
	}
}

// errnoLabel is "EIO" for EIO: a small, fixed set of label values.
func errnoLabel(e syscall.Errno) string {
	if name := unix.ErrnoName(e); name != "" {
		return name
	}
	return strconv.Itoa(int(e))
}

// watchTree exports the file tree's gauge of open files, read when
// scraped.
func (m *metrics) watchTree(tree *fs.FS) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "s3docs_open_files",
		Help: "Files open through the mount now (directories not counted).",
	}, func() float64 { return float64(tree.OpenFiles()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "s3docs_passthrough_opens_total",
			Help: "Opens handed a backing file (FUSE passthrough): the kernel reads them without the daemon.",
		}, func() float64 { return float64(tree.PassthroughOpens()) }))
}

// observeRequest is s3store's OnRequest.
func (m *metrics) observeRequest(kind, outcome string) {
	m.s3Requests.WithLabelValues(kind, outcome).Inc()
	if outcome == s3store.OutcomeThrottled {
		m.s3Throttled.WithLabelValues(kind).Inc()
	}
}

// observeRetry is s3store's OnRetry.
func (m *metrics) observeRetry(reason string) { m.s3Retries.WithLabelValues(reason).Inc() }

// watchStore exports the rate of requests the daemon allows itself now:
// +Inf while the store does not throttle (requests are not paced).
func (m *metrics) watchStore(s *s3store.Store) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "s3docs_s3_allowed_rate",
		Help: "Requests a second the daemon allows itself now, every kind together; +Inf while the store does not throttle."},
		s.AllowedRate))
}

func outcome(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// observeFetch is chunkcache's OnFetch.
func (m *metrics) observeFetch(bytes int64, d time.Duration, err error) {
	m.gets.WithLabelValues(outcome(err)).Inc()
	m.getBytes.WithLabelValues(outcome(err)).Add(float64(bytes))
	if err == nil {
		m.getSeconds.Observe(d.Seconds())
	}
}

// observeSplit is the splitter service's observer.
func (m *metrics) observeSplit(op string, d time.Duration, err error) {
	m.splits.WithLabelValues(op, outcome(err)).Inc()
	m.splitSecs.WithLabelValues(op).Observe(d.Seconds())
}

// watchCache exports the cache's own counters, read when scraped, and
// configured, its bound as configured (--cache-size).
func (m *metrics) watchCache(c *chunkcache.Cache, configured int64) {
	counter := func(name, help string, get func(chunkcache.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(get(c.Stats())) })
	}
	m.reg.MustRegister(
		counter("s3docs_cache_hits_total", "Chunk reads served from disk at once.", func(s chunkcache.Stats) int64 { return s.Hits }),
		counter("s3docs_cache_misses_total", "Chunk reads that waited for a fetch.", func(s chunkcache.Stats) int64 { return s.Misses }),
		counter("s3docs_cache_evictions_total", "Chunks and parts evicted to stay within the bound.", func(s chunkcache.Stats) int64 { return s.Evictions }),
		counter("s3docs_cache_dedup_joins_total", "Misses that joined a fetch already running for the same chunk.", func(s chunkcache.Stats) int64 { return s.Joins }),
		counter("s3docs_readahead_chunks_total", "Chunk fetches started by readahead.", func(s chunkcache.Stats) int64 { return s.Readaheads }),
		counter("s3docs_cache_bad_chunks_total", "Cached chunks dropped for a wrong size or checksum.", func(s chunkcache.Stats) int64 { return s.BadChunks }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "s3docs_gets_in_flight", Help: "Chunk GETs running now."},
			func() float64 { return float64(c.Stats().InFlight) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "s3docs_cache_bytes", Help: "Bytes in the cache."},
			func() float64 { return float64(c.Bytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "s3docs_cache_pinned_bytes",
			Help: "Bytes of the objects the kernel reads through passthrough now: never evicted meanwhile, at most half the bound."},
			func() float64 { return float64(c.PinnedBytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "s3docs_cache_max_bytes",
			Help: "The bound the cache keeps now: --cache-size, or less while its file system has no room for that much."},
			func() float64 { return float64(c.Limit()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "s3docs_cache_configured_max_bytes",
			Help: "The bound of the cache as configured (--cache-size); s3docs_cache_max_bytes is below it while the disk is full."},
			func() float64 { return float64(configured) }),
	)
}

// serve listens on addr and serves /metrics (and /debug/pprof/ when
// withPprof) until ctx ends. It returns once the listener is up, so that a
// bad address is a startup error; stopped closes when the server is done.
func (m *metrics) serve(ctx context.Context, addr string, withPprof bool, log *slog.Logger) (stopped <-chan struct{}, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		// No /debug/pprof/cmdline: the command line may hold a password
		// (in --endpoint-url), and the logs' redaction would not apply.
		mux.Handle("/debug/pprof/cmdline", http.NotFoundHandler())
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "pprof", withPprof)
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		what := "metrics"
		if withPprof {
			what = "metrics and profiles (--pprof)"
		}
		log.Warn("serving "+what+" to the network, without authentication: anyone who can reach the address can read them; use 127.0.0.1:PORT unless that is meant",
			"addr", ln.Addr().String())
	}
	return done, nil
}
