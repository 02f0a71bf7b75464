package node

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/site"
)

// The node's metrics, in the Prometheus text format at /_embassy/metrics
// (metrics.token_file's bearer token, or the loopback-only
// metrics.address): S3 requests by operation and status with their
// latency, bytes in and out, each site's operations, latency, errors and
// (where the driver knows it) free space, the engine's counters (objects at
// risk, repairs, corrupt and missing blocks…), jobs by kind and state and
// the progress of running ones, the seal state, and the Go runtime and
// process. The names documented before client_golang (embassy_sealed,
// embassy_objects_at_risk, …) are kept. docs/grafana-dashboard.json is a
// dashboard over them.

// nodeMetrics holds a node's instruments.
type nodeMetrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	bytesIn   prometheus.Counter
	bytesOut  prometheus.Counter
	siteOps   *prometheus.CounterVec
	siteLat   *prometheus.HistogramVec
	siteErrs  *prometheus.CounterVec
	adminReqs *prometheus.CounterVec
}

var metricsOnce sync.Mutex

// metricsFor returns the node's instruments, made on first use.
func (n *Node) metricsFor() *nodeMetrics {
	metricsOnce.Lock()
	defer metricsOnce.Unlock()
	if n.live.metrics != nil {
		return n.live.metrics
	}
	m := &nodeMetrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "embassy_s3_requests_total", Help: "S3 requests answered, by operation and HTTP status."}, []string{"operation", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "embassy_s3_request_duration_seconds", Help: "Time to answer an S3 request, by operation.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"operation"})
	m.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{Name: "embassy_s3_received_bytes_total", Help: "Request body bytes read from S3 clients."})
	m.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{Name: "embassy_s3_sent_bytes_total", Help: "Response body bytes written to S3 clients."})
	m.siteOps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "embassy_site_operations_total", Help: "Operations on a site, by site and operation."}, []string{"site", "operation"})
	m.siteLat = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "embassy_site_operation_duration_seconds", Help: "Time a site took to answer, by site and operation (get: until the blob starts to arrive).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)}, []string{"site", "operation"})
	m.siteErrs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "embassy_site_errors_total", Help: "Site operations that failed (a missing blob is not a failure), by site and operation."}, []string{"site", "operation"})
	m.adminReqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "embassy_admin_requests_total", Help: "Admin API requests, by endpoint and HTTP status."}, []string{"endpoint", "status"})
	m.reg.MustRegister(m.requests, m.latency, m.bytesIn, m.bytesOut, m.siteOps, m.siteLat, m.siteErrs, m.adminReqs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &nodeCollector{n: n}, &peerWitnessCollector{n: n})
	n.live.metrics = m
	return m
}

// metrics writes the node's metrics in the Prometheus text format.
func (n *Node) metrics(w http.ResponseWriter, r *http.Request) {
	promhttp.HandlerFor(n.metricsFor().reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
}

// nodeCollector reports, at each scrape, the node's state: seal, the
// engine's counters, sites' free space, jobs.
type nodeCollector struct{ n *Node }

var (
	descSealed   = prometheus.NewDesc("embassy_sealed", "1 while the node waits for custodians.", nil, nil)
	descFree     = prometheus.NewDesc("embassy_site_free_bytes", "Bytes free for a site's blobs, where its driver knows (directory sites).", []string{"site"}, nil)
	descSize     = prometheus.NewDesc("embassy_site_size_bytes", "Total size of the store holding a site, where its driver knows.", []string{"site"}, nil)
	descDraining = prometheus.NewDesc("embassy_site_draining", "1 while a site is being drained.", []string{"site"}, nil)
	descJobs     = prometheus.NewDesc("embassy_jobs", "Jobs kept by the node, by kind and state.", []string{"kind", "state"}, nil)
	descJobDone  = prometheus.NewDesc("embassy_job_progress_versions", "Versions a running job has done.", []string{"job_id", "kind"}, nil)
	descJobTotal = prometheus.NewDesc("embassy_job_total_versions", "Versions a running job has to do (0 if unknown).", []string{"job_id", "kind"}, nil)
	// The index's commits: writes wait for a shared transaction and its
	// flushes (a put waits for one before it is acknowledged).
	descIndexWrites = prometheus.NewDesc("embassy_index_writes_total", "Index writes answered (committed or refused).", nil, nil)
	descIndexWait   = prometheus.NewDesc("embassy_index_write_wait_seconds_total", "Time index writes waited until durable, summed: divided by embassy_index_writes_total, the mean wait.", nil, nil)
	descIndexTxns   = prometheus.NewDesc("embassy_index_transactions_total", "Index transactions (each shared by the writes queued when it began, and flushed).", nil, nil)
	descIndexBusy   = prometheus.NewDesc("embassy_index_transaction_seconds_total", "Time index transactions took with their flushes, summed.", nil, nil)
	// Encryptions under each key with random GCM nonces (seals.go): an
	// upper bound, never lower than the encryptions made.
	descKeyEncryptions = prometheus.NewDesc("embassy_key_encryptions", "Messages encrypted under a key with random 96-bit GCM nonces (the manifest key: vault empty; a vault key: its vault and generation), counted as an upper bound; rotate the key before embassy_key_encryption_limit.", []string{"key_id", "vault", "generation"}, nil)
	descKeyLimit       = prometheus.NewDesc("embassy_key_encryption_limit", "Encryptions after which a key encrypts nothing more until it is rotated (key_use.limit; NIST SP 800-38D's 2^32 by default).", nil, nil)
	engineDescs        = []struct {
		name, help string
		counter    bool
	}{
		{"embassy_objects_at_risk", "Versions below full redundancy or off policy at the last scrub.", false},
		{"embassy_repaired_bytes_total", "Shard bytes written by repairs.", true},
		{"embassy_corrupt_blocks_total", "Shard blocks that failed their checksum on read.", true},
		{"embassy_missing_blocks_total", "Shard blocks that could not be fetched on read.", true},
		{"embassy_reconstructed_stripes_total", "Stripes rebuilt from parity on read.", true},
		{"embassy_write_retries_total", "Puts retried on other sites after a site failed.", true},
		{"embassy_manifest_errors_total", "Manifest copies that failed verification.", true},
		{"embassy_label_binding_errors_total", "Label bindings that failed verification.", true},
		{"embassy_writes_reconfigured_total", "Writes placed before a configuration change their placement did not survive, refused at commit (503 SlowDown) or placed again.", true},
	}
)

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSealed
	ch <- descFree
	ch <- descSize
	ch <- descDraining
	ch <- descJobs
	ch <- descJobDone
	ch <- descJobTotal
	ch <- descIndexWrites
	ch <- descIndexWait
	ch <- descIndexTxns
	ch <- descIndexBusy
	ch <- descKeyEncryptions
	ch <- descKeyLimit
	for _, d := range engineDescs {
		ch <- prometheus.NewDesc(d.name, d.help, nil, nil)
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	sealed := 0.0
	if n.Sealed() {
		sealed = 1
	}
	ch <- prometheus.MustNewConstMetric(descSealed, prometheus.GaugeValue, sealed)
	if c := n.seals.counter.Load(); c != nil {
		ch <- prometheus.MustNewConstMetric(descKeyLimit, prometheus.GaugeValue, float64(c.Limits().Limit))
		for _, s := range c.States() {
			gen := ""
			if s.Vault != "" {
				gen = strconv.Itoa(s.Generation)
			}
			ch <- prometheus.MustNewConstMetric(descKeyEncryptions, prometheus.GaugeValue, float64(s.Seals), s.KeyID, s.Vault, gen)
		}
	}
	if n.Ready() != nil || n.Engine == nil {
		return
	}
	ev := &n.Engine.Events
	vals := []int64{ev.AtRisk.Load(), ev.BytesRepaired.Load(), ev.CorruptBlocks.Load(), ev.MissingBlocks.Load(), ev.Reconstructed.Load(),
		ev.WriteRetries.Load(), ev.ManifestErrors.Load(), ev.BindingErrors.Load(), ev.Reconfigured.Load()}
	for i, d := range engineDescs {
		t := prometheus.GaugeValue
		if d.counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(d.name, d.help, nil, nil), t, float64(vals[i]))
	}
	if c, ok := n.Engine.Index().(index.Committer); ok {
		st := c.CommitStats()
		ch <- prometheus.MustNewConstMetric(descIndexWrites, prometheus.CounterValue, float64(st.Writes))
		ch <- prometheus.MustNewConstMetric(descIndexWait, prometheus.CounterValue, st.Wait.Seconds())
		ch <- prometheus.MustNewConstMetric(descIndexTxns, prometheus.CounterValue, float64(st.Batches))
		ch <- prometheus.MustNewConstMetric(descIndexBusy, prometheus.CounterValue, st.Busy.Seconds())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range n.Engine.Sites() {
		d := 0.0
		if n.Engine.IsDraining(s.ID) {
			d = 1
		}
		ch <- prometheus.MustNewConstMetric(descDraining, prometheus.GaugeValue, d, s.ID)
		if sr, ok := n.live.spaceOf(s.ID); ok {
			if free, total, err := sr.Space(ctx); err == nil {
				ch <- prometheus.MustNewConstMetric(descFree, prometheus.GaugeValue, float64(free), s.ID)
				ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(total), s.ID)
			}
		}
	}
	t := &n.jobTable
	t.mu.Lock()
	counts := map[[2]string]int{}
	for _, kind := range []string{"drain", "scrub", "drill", "index-rebuild", "key-rotate"} {
		for _, st := range []JobState{JobQueued, JobRunning, JobDone, JobFailed, JobCancelled, JobInterrupted} {
			counts[[2]string{kind, string(st)}] = 0
		}
	}
	type running struct {
		id, kind    string
		done, total int64
	}
	var runs []running
	for _, j := range t.jobs {
		counts[[2]string{j.Kind, string(j.State)}]++
		if j.State == JobRunning {
			runs = append(runs, running{j.ID, j.Kind, j.Progress.Done, j.Progress.Total})
		}
	}
	t.mu.Unlock()
	for k, v := range counts {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(v), k[0], k[1])
	}
	for _, r := range runs {
		ch <- prometheus.MustNewConstMetric(descJobDone, prometheus.GaugeValue, float64(r.done), r.id, r.kind)
		ch <- prometheus.MustNewConstMetric(descJobTotal, prometheus.GaugeValue, float64(r.total), r.id, r.kind)
	}
}

// observeS3 records one S3 request (s3.Config.Observe).
func (n *Node) observeS3(op string, status int, d time.Duration) {
	m := n.metricsFor()
	if op == "" {
		op = "unknown"
	}
	m.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

// countingS3 counts the bytes S3 clients send and receive.
func (n *Node) countingS3(h http.Handler) http.Handler {
	m := n.metricsFor()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = &countingBody{ReadCloser: r.Body, c: m.bytesIn}
		}
		h.ServeHTTP(&countingWriter{ResponseWriter: w, c: m.bytesOut}, r)
	})
}

type countingBody struct {
	io.ReadCloser
	c prometheus.Counter
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.Add(float64(n))
	return n, err
}

type countingWriter struct {
	http.ResponseWriter
	c prometheus.Counter
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.c.Add(float64(n))
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines).
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrumentSite wraps a site's store to time and count its operations;
// it remembers whether the driver reports free space.
func (n *Node) instrumentSite(id string, st site.Site) site.Site {
	if sr, ok := st.(site.SpaceReporter); ok {
		n.live.setSpace(id, sr)
	}
	m := n.metricsFor()
	for _, op := range []string{"put", "get", "stat", "delete", "list"} {
		m.siteErrs.WithLabelValues(id, op) // present, at 0, before the first error
	}
	return &timedSite{Site: st, id: id, m: m}
}

type timedSite struct {
	site.Site
	id string
	m  *nodeMetrics
}

func (s *timedSite) done(op string, start time.Time, err error) {
	s.m.siteOps.WithLabelValues(s.id, op).Inc()
	s.m.siteLat.WithLabelValues(s.id, op).Observe(time.Since(start).Seconds())
	if err != nil && !isNotFound(err) {
		s.m.siteErrs.WithLabelValues(s.id, op).Inc()
	}
}

func isNotFound(err error) bool { return errors.Is(err, site.ErrNotFound) }

// errNoSuchProfile: not a Go profile name.
var errNoSuchProfile = errors.New("no such profile: heap, goroutine, allocs, block, mutex, threadcreate, profile, trace, cmdline, symbol or index")

func (s *timedSite) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	start := time.Now()
	err := s.Site.Put(ctx, name, r, size)
	s.done("put", start, err)
	return err
}

func (s *timedSite) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := s.Site.Get(ctx, name, off, length)
	s.done("get", start, err)
	return rc, err
}

func (s *timedSite) Stat(ctx context.Context, name string) (site.Info, error) {
	start := time.Now()
	i, err := s.Site.Stat(ctx, name)
	s.done("stat", start, err)
	return i, err
}

func (s *timedSite) Delete(ctx context.Context, name string) error {
	start := time.Now()
	err := s.Site.Delete(ctx, name)
	s.done("delete", start, err)
	return err
}

func (s *timedSite) List(ctx context.Context, prefix string, fn func(site.Info) error) error {
	start := time.Now()
	err := s.Site.List(ctx, prefix, fn)
	s.done("list", start, err)
	return err
}

// Unwrap returns the driver's store.
func (s *timedSite) Unwrap() site.Site { return s.Site }

// pprofRoute serves the Go profiles (net/http/pprof) to operators:
// GET /_embassy/v1/debug/pprof/{profile}.
func (n *Node) adminPprof(w http.ResponseWriter, r *http.Request, c *adminCall) {
	switch c.id {
	case "profile":
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "index":
		pprof.Index(w, r)
	case "heap", "goroutine", "allocs", "block", "mutex", "threadcreate":
		pprof.Handler(c.id).ServeHTTP(w, r)
	default:
		opFail(w, errNoSuchProfile)
	}
}

// countAdmin counts admin API requests by endpoint (the route's path, not
// the request's: ids are not labels) and status.
func (n *Node) countAdmin(h http.Handler) http.Handler {
	m := n.metricsFor()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		endpoint := "unknown"
		path := strings.TrimPrefix(r.URL.Path, AdminPrefix)
		for i := range adminRoutes {
			if _, ok := adminRoutes[i].match(r.Method, path); ok {
				endpoint = r.Method + " " + AdminPrefix + adminRoutes[i].path
				break
			}
		}
		m.adminReqs.WithLabelValues(endpoint, strconv.Itoa(sw.status)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
