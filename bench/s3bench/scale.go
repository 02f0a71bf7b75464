package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/signer"
)

// scalePhases are the phases of `s3bench scale`, in the order they run.
var scalePhases = []string{"put", "list", "rebuild", "scrub", "drill"}

// scaleRecord is one measured phase of `s3bench scale`, written as one
// JSON line.
type scaleRecord struct {
	Phase   string  `json:"phase"`
	Count   int     `json:"count"` // objects, keys or versions done
	Unit    string  `json:"unit"`
	Seconds float64 `json:"seconds"`
	PerS    float64 `json:"per_s"`
	// PeakRSS is the server's VmHWM over the phase (reset at its start
	// through /proc/PID/clear_refs); 0 without -pid.
	PeakRSS int64 `json:"peak_rss_bytes"`
	// PeakHeap is the highest HeapInuse of the server's runtime.MemStats
	// among the samples taken during the phase (through the operator's
	// pprof endpoint, every -heap-every, and once at its start and end);
	// HeapSamples says how many there were.
	PeakHeap    int64 `json:"peak_heap_bytes"`
	HeapSamples int   `json:"heap_samples"`
	// BaseHeap is the server's HeapInuse just before the phase, after two
	// garbage collections: what the node held between phases, to tell a
	// phase's own growth from the node's.
	BaseHeap   int64   `json:"base_heap_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"` // the server's user+system CPU time; 0 without -pid
	// IndexBytes is the size of the node's index file (-index) after the
	// phase; 0 without -index.
	IndexBytes int64 `json:"index_bytes,omitempty"`
	// Report is the job's result (ScrubReport, DrillReport, RebuildStats)
	// for the phases run as admin-API jobs.
	Report json.RawMessage `json:"report,omitempty"`
}

func (r scaleRecord) text() string {
	s := fmt.Sprintf("%-8s %9d %-8s in %8.1fs: %9.1f %s/s", r.Phase, r.Count, r.Unit, r.Seconds, r.PerS, r.Unit)
	if r.PeakRSS > 0 {
		s += fmt.Sprintf("  server peak RSS %7.1f MiB", mib(r.PeakRSS))
	}
	if r.HeapSamples > 0 {
		s += fmt.Sprintf("  peak heap %6.1f MiB (%d samples; %.1f before)", mib(r.PeakHeap), r.HeapSamples, mib(r.BaseHeap))
	}
	if r.PeakRSS > 0 { // measured with -pid
		s += fmt.Sprintf("  cpu %7.1f s", r.CPUSeconds)
	}
	if r.IndexBytes > 0 {
		s += fmt.Sprintf("  index %d B", r.IndexBytes)
	}
	return s
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// scaleCmd puts -objects small objects into an embassy node through S3, then
// lists them (ListObjectsV2, paged), rebuilds the index from the sites,
// scrubs, and drills the loss of a jurisdiction, the last three as jobs of
// the admin API (docs/admin-api.md, "Jobs"), and reports each phase's rate,
// time, the server's peak RSS and its peak Go heap. It fails when a phase
// fails, when a count is not -objects, or when the scrub or the drill finds
// anything at risk or lost. bench/s3scale.sh runs it against a fresh
// `serve --dev` node.
func scaleCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "", "embassy's S3 endpoint as host:port (plain HTTP)")
	accessKey := fs.String("access-key", "", "S3 access key of a principal with the operator role")
	secretKey := fs.String("secret-key", "", "S3 secret key")
	bucket := fs.String("bucket", "scale", "bucket to fill; it must be new or empty")
	pid := fs.Int("pid", 0, "server process id: its peak RSS (VmHWM, reset per phase) and CPU time are measured (0: none)")
	clkTck := fs.Int("clk-tck", 100, "clock ticks per second of /proc/PID/stat (getconf CLK_TCK)")
	objects := fs.Int("objects", 100_000, "objects to put")
	size := fs.String("size", "4KiB", "size of each object")
	conc := fs.Int("concurrency", 32, "concurrent S3 clients putting")
	lose := fs.String("lose", "jurisdiction=EST", "what the drill loses (site=ID, provider=NAME, jurisdiction=CODE, control=CODE)")
	phases := fs.String("phases", strings.Join(scalePhases, ","), "phases after the puts, comma-separated, of list,rebuild,scrub,drill")
	heapEvery := fs.Duration("heap-every", time.Second, "how often the server's heap is sampled during a phase (0: only at its start and end)")
	out := fs.String("out", "", "append one JSON line per phase to this file")
	heapProfiles := fs.String("heap-profiles", "", "write the server's heap profile just before every phase, after its two collections, to DIR/PHASE-before.pb.gz (and DIR/end.pb.gz after the last)")
	indexFile := fs.String("index", "", "the node's index file (NODE/index.db), whose size is recorded after every phase")
	seed := fs.Uint64("seed", 1, "seed of the object contents")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("scale: unexpected argument %q", fs.Arg(0))
	}
	if *endpoint == "" || *accessKey == "" || *secretKey == "" {
		return errors.New("scale: -endpoint, -access-key and -secret-key are required")
	}
	if *objects < 1 || *objects > 100_000_000 {
		return fmt.Errorf("scale: -objects %d: want 1 to 100000000", *objects)
	}
	if *conc < 1 || *conc > 1024 {
		return fmt.Errorf("scale: -concurrency %d: want 1 to 1024", *conc)
	}
	sz, err := parseSize(*size)
	if err != nil {
		return fmt.Errorf("scale: -size: %w", err)
	}
	if sz < 1 || sz > 64<<20 {
		return fmt.Errorf("scale: -size %s: want 1 byte to 64 MiB", *size)
	}
	if *clkTck <= 0 {
		return fmt.Errorf("scale: -clk-tck %d: must be positive", *clkTck)
	}
	run, err := parsePhases(*phases)
	if err != nil {
		return fmt.Errorf("scale: -phases: %w", err)
	}

	var sink io.Writer = io.Discard
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("scale: %w", err)
		}
		defer f.Close()
		sink = f
	}
	client, err := minio.New(*endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(*accessKey, *secretKey, ""),
		Region:    "us-east-1",
		Transport: transport(*conc),
	})
	if err != nil {
		return fmt.Errorf("scale: client for %s: %w", *endpoint, err)
	}
	if err := ensureBucket(ctx, client, *bucket); err != nil {
		return err
	}
	// The counts are checked against -objects: the bucket must hold
	// nothing else.
	lctx, cancelList := context.WithCancel(ctx)
	o, held := <-client.ListObjects(lctx, *bucket, minio.ListObjectsOptions{Recursive: true, MaxKeys: 1})
	cancelList()
	if held && o.Err != nil {
		return fmt.Errorf("scale: list %s: %w", *bucket, o.Err)
	}
	if held {
		return fmt.Errorf("scale: bucket %s already holds objects (%s): give a new bucket", *bucket, o.Key)
	}

	s := &scaler{
		admin:  &adminClient{endpoint: *endpoint, accessKey: *accessKey, secretKey: *secretKey, region: "us-east-1", client: &http.Client{Transport: transport(2)}},
		pid:    *pid,
		clkTck: float64(*clkTck),
		every:  *heapEvery,
		profs:  *heapProfiles,
	}
	if s.profs != "" {
		if err := os.MkdirAll(s.profs, 0o755); err != nil {
			return fmt.Errorf("scale: -heap-profiles: %w", err)
		}
	}
	b := &bench{client: client, bucket: *bucket, server: "embassy", maxTime: 1<<63 - 1}
	b.data = newPayload(sz, *seed)
	n := *objects
	key := func(i int) string { return fmt.Sprintf("o/%08d", i) }
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true}

	enc := json.NewEncoder(sink)
	var recs []scaleRecord
	emit := func(r scaleRecord) error {
		if *indexFile != "" {
			fi, err := os.Stat(*indexFile)
			if err != nil {
				return fmt.Errorf("scale: -index: %w", err)
			}
			r.IndexBytes = fi.Size()
		}
		recs = append(recs, r)
		fmt.Fprintln(stdout, r.text())
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("scale: write %s: %w", *out, err)
		}
		return nil
	}

	// put: n objects at -concurrency, through S3.
	r, err := s.measure(ctx, "put", "objects", func(ctx context.Context) (int, json.RawMessage, error) {
		rec, err := b.phase(ctx, "put", caseSpec{Size: sz, Concurrency: *conc, Count: n}, n, func(ctx context.Context, _ int, i int) error {
			if _, err := client.PutObject(ctx, *bucket, key(i), bytes.NewReader(b.data.object(i, sz)), sz, opts); err != nil {
				return fmt.Errorf("put %s: %w", key(i), err)
			}
			return nil
		})
		if err == nil && rec.Count != n {
			err = fmt.Errorf("%d objects put of %d", rec.Count, n)
		}
		return rec.Count, nil, err
	})
	if err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	if err := emit(r); err != nil {
		return err
	}

	list := func(ctx context.Context) (int, json.RawMessage, error) {
		got, err := listAll(ctx, client, *bucket, key, n)
		return got, nil, err
	}
	for _, ph := range run {
		var r scaleRecord
		var err error
		switch ph {
		case "list":
			r, err = s.measure(ctx, "list", "keys", list)
		case "rebuild":
			r, err = s.measure(ctx, "rebuild", "versions", func(ctx context.Context) (int, json.RawMessage, error) {
				return s.job(ctx, "index/rebuild", "{}", checkRebuild(n))
			})
			if err == nil {
				// What the rebuilt index serves: every key, through S3.
				_, _, err = list(ctx)
				if err != nil {
					err = fmt.Errorf("list after the rebuild: %w", err)
				}
			}
		case "scrub":
			r, err = s.measure(ctx, "scrub", "versions", func(ctx context.Context) (int, json.RawMessage, error) {
				return s.job(ctx, "scrub", "{}", checkScrub(n))
			})
		case "drill":
			body, _ := json.Marshal(map[string]string{"lose": *lose})
			r, err = s.measure(ctx, "drill", "versions", func(ctx context.Context) (int, json.RawMessage, error) {
				return s.job(ctx, "drill", string(body), checkDrill(n))
			})
		}
		if err != nil {
			return fmt.Errorf("scale: %w", err)
		}
		if err := emit(r); err != nil {
			return err
		}
	}
	if s.profs != "" {
		if _, err := s.heapInuse(ctx, true); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
		if err := s.heapProfile(ctx, "end"); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
	}
	fmt.Fprintln(stdout)
	writeScaleTable(stdout, n, *conc, recs)
	if r := recs[0]; r.IndexBytes > 0 {
		last := recs[len(recs)-1]
		fmt.Fprintf(stdout, "\nindex: %d bytes after the puts, %.0f bytes/object; %d after %s (a bbolt file does not shrink)\n",
			r.IndexBytes, float64(r.IndexBytes)/float64(n), last.IndexBytes, last.Phase)
	}
	return nil
}

// parsePhases parses -phases: names of scalePhases after the put, each at
// most once, returned in the order they run.
func parsePhases(s string) ([]string, error) {
	var want []string
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if p == "put" {
			continue // always run: the others need the objects
		}
		if !slices.Contains(scalePhases, p) {
			return nil, fmt.Errorf("unknown phase %q (want list, rebuild, scrub, drill)", p)
		}
		if slices.Contains(want, p) {
			return nil, fmt.Errorf("phase %q given twice", p)
		}
		want = append(want, p)
	}
	var out []string
	for _, p := range scalePhases {
		if slices.Contains(want, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// listAll lists the bucket through ListObjectsV2 in pages of 1,000 and
// checks that it holds exactly the n keys put, in order.
func listAll(ctx context.Context, c *minio.Client, bucket string, key func(int) string, n int) (int, error) {
	got := 0
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true, MaxKeys: 1000}) {
		if o.Err != nil {
			return got, fmt.Errorf("list %s after %d keys: %w", bucket, got, o.Err)
		}
		if got >= n {
			return got, fmt.Errorf("list %s: more than the %d keys put (%s)", bucket, n, o.Key)
		}
		if want := key(got); o.Key != want {
			return got, fmt.Errorf("list %s: key %d is %q, want %q", bucket, got, o.Key, want)
		}
		got++
	}
	if got != n {
		return got, fmt.Errorf("list %s: %d keys, %d were put", bucket, got, n)
	}
	return got, nil
}

// checkRebuild judges an index rebuild's RebuildStats: every version put
// indexed from the sites, none left out, every site listed.
func checkRebuild(n int) func([]byte) (int, error) {
	return func(raw []byte) (int, error) {
		var st struct {
			Sites      int      `json:"sites"`
			SiteErrors []string `json:"site_errors"`
			Versions   int      `json:"versions"`
			Corrupt    int      `json:"corrupt"`
			Unrestored int      `json:"unrestored"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			return 0, fmt.Errorf("rebuild report: %w", err)
		}
		if len(st.SiteErrors) > 0 || st.Corrupt != 0 || st.Unrestored != 0 {
			return st.Versions, fmt.Errorf("rebuild: %d site errors (%s), %d corrupt copies, %d versions not restored", len(st.SiteErrors), strings.Join(st.SiteErrors, "; "), st.Corrupt, st.Unrestored)
		}
		if st.Versions != n {
			return st.Versions, fmt.Errorf("rebuild: %d versions indexed from %d sites, %d were put", st.Versions, st.Sites, n)
		}
		return st.Versions, nil
	}
}

// checkScrub judges a scrub's ScrubReport: every version scrubbed, nothing
// at risk.
func checkScrub(n int) func([]byte) (int, error) {
	return func(raw []byte) (int, error) {
		var rep struct {
			Versions int      `json:"versions"`
			AtRisk   int      `json:"at_risk"`
			Lost     int      `json:"lost"`
			Errors   []string `json:"errors"`
		}
		if err := json.Unmarshal(raw, &rep); err != nil {
			return 0, fmt.Errorf("scrub report: %w", err)
		}
		if rep.AtRisk != 0 || rep.Lost != 0 || len(rep.Errors) > 0 {
			return rep.Versions, fmt.Errorf("scrub: %d versions at risk, %d lost, errors: %s", rep.AtRisk, rep.Lost, strings.Join(rep.Errors, "; "))
		}
		if rep.Versions != n {
			return rep.Versions, fmt.Errorf("scrub: %d versions scrubbed, %d were put", rep.Versions, n)
		}
		return rep.Versions, nil
	}
}

// checkDrill judges a drill's DrillReport: every version read from the
// surviving sites, none lost.
func checkDrill(n int) func([]byte) (int, error) {
	return func(raw []byte) (int, error) {
		var rep struct {
			LostSites  []string `json:"lost_sites"`
			Objects    int      `json:"objects"`
			Read       int      `json:"read"`
			RPOObjects int      `json:"rpo_objects"`
		}
		if err := json.Unmarshal(raw, &rep); err != nil {
			return 0, fmt.Errorf("drill report: %w", err)
		}
		if len(rep.LostSites) == 0 {
			return rep.Read, errors.New("drill: no site lost")
		}
		if rep.RPOObjects != 0 {
			return rep.Read, fmt.Errorf("drill: losing %s loses %d objects", strings.Join(rep.LostSites, ","), rep.RPOObjects)
		}
		if rep.Read != n || rep.Objects != n {
			return rep.Read, fmt.Errorf("drill: %d of %d objects read, %d were put", rep.Read, rep.Objects, n)
		}
		return rep.Read, nil
	}
}

// scaler measures the phases of `s3bench scale` on one server.
type scaler struct {
	admin  *adminClient
	pid    int
	clkTck float64
	every  time.Duration
	profs  string // directory of heap profiles ("": none)
}

// measure runs one phase and charges it the server's peak RSS, its peak
// Go heap and its CPU time. Before the phase the server collects garbage
// twice (the first moves pooled buffers to the pools' victim caches, the
// second frees them, as BenchmarkMillion does in-process), so that the
// heap a phase is charged with is its own, and its VmHWM is reset.
func (s *scaler) measure(ctx context.Context, phase, unit string, fn func(context.Context) (int, json.RawMessage, error)) (scaleRecord, error) {
	r := scaleRecord{Phase: phase, Unit: unit}
	for range 2 {
		h, err := s.heapInuse(ctx, true)
		if err != nil {
			return r, fmt.Errorf("%s: %w", phase, err)
		}
		r.BaseHeap = h
	}
	if err := s.heapProfile(ctx, phase+"-before"); err != nil {
		return r, fmt.Errorf("%s: %w", phase, err)
	}
	if s.pid != 0 {
		if err := resetPeakRSS(s.pid); err != nil {
			return r, fmt.Errorf("%s: %w", phase, err)
		}
	}
	cpu0, err := procCPU(s.pid)
	if err != nil {
		return r, fmt.Errorf("%s: %w", phase, err)
	}

	var (
		mu      sync.Mutex
		peak    int64
		samples int
		sampErr error
	)
	sample := func(ctx context.Context) {
		h, err := s.heapInuse(ctx, false)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if sampErr == nil && ctx.Err() == nil {
				sampErr = err
			}
			return
		}
		peak = max(peak, h)
		samples++
	}
	sample(ctx)
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if s.every > 0 {
		wg.Go(func() {
			t := time.NewTicker(s.every)
			defer t.Stop()
			for {
				select {
				case <-sctx.Done():
					return
				case <-t.C:
					sample(sctx)
				}
			}
		})
	}
	start := time.Now()
	count, report, err := fn(ctx)
	elapsed := time.Since(start)
	stop()
	wg.Wait()
	if err != nil {
		return r, fmt.Errorf("%s: %w", phase, err)
	}
	sample(ctx)
	if sampErr != nil {
		return r, fmt.Errorf("%s: heap sample: %w", phase, sampErr)
	}
	cpu1, err := procCPU(s.pid)
	if err != nil {
		return r, fmt.Errorf("%s: %w", phase, err)
	}
	if s.pid != 0 {
		if r.PeakRSS, err = peakRSS(s.pid); err != nil {
			return r, fmt.Errorf("%s: %w", phase, err)
		}
		r.CPUSeconds = float64(cpu1-cpu0) / s.clkTck
	}
	r.Count, r.Report = count, report
	r.Seconds = elapsed.Seconds()
	r.PerS = float64(count) / r.Seconds
	r.PeakHeap, r.HeapSamples = peak, samples
	return r, nil
}

// heapInuse reads HeapInuse from the server's runtime.MemStats, through
// GET /_embassy/v1/debug/pprof/heap?debug=1 (operator role), after a
// garbage collection if gc.
func (s *scaler) heapInuse(ctx context.Context, gc bool) (int64, error) {
	q := "debug=1"
	if gc {
		q += "&gc=1"
	}
	body, err := s.admin.do(ctx, http.MethodGet, "debug/pprof/heap?"+q, nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	return parseHeapInuse(body)
}

// heapProfile writes the server's heap profile to DIR/name.pb.gz (-heap-profiles).
func (s *scaler) heapProfile(ctx context.Context, name string) error {
	if s.profs == "" {
		return nil
	}
	body, err := s.admin.do(ctx, http.MethodGet, "debug/pprof/heap", nil, http.StatusOK)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.profs, name+".pb.gz"), body, 0o644)
}

// parseHeapInuse finds "# HeapInuse = N" in a heap profile written with
// debug=1 (runtime/pprof writes runtime.MemStats at its end).
func parseHeapInuse(profile []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(profile))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapInuse = "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("heap profile: HeapInuse %q is not a byte count", v)
			}
			return n, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("heap profile: %w", err)
	}
	return 0, errors.New("heap profile: no \"# HeapInuse = \" line (not a debug=1 heap profile?)")
}

// job starts an admin-API job (POST /_embassy/v1/PATH with body), follows
// it until it ends, and judges its result with check, which returns how
// many versions it covered.
func (s *scaler) job(ctx context.Context, path, body string, check func([]byte) (int, error)) (int, json.RawMessage, error) {
	raw, err := s.admin.do(ctx, http.MethodPost, path, []byte(body), http.StatusAccepted)
	if err != nil {
		return 0, nil, err
	}
	var j adminJob
	if err := json.Unmarshal(raw, &j); err != nil || j.ID == "" {
		return 0, nil, fmt.Errorf("POST %s: answer is not a job: %.200s", path, raw)
	}
	for !j.ended() {
		raw, err := s.admin.do(ctx, http.MethodGet, "jobs/"+j.ID+"?wait=30s", nil, http.StatusOK)
		if err != nil {
			return 0, nil, fmt.Errorf("follow job %s: %w", j.ID, err)
		}
		j = adminJob{}
		if err := json.Unmarshal(raw, &j); err != nil {
			return 0, nil, fmt.Errorf("follow job %s: %w", j.ID, err)
		}
	}
	if j.State != "done" {
		return 0, j.Result, fmt.Errorf("job %s (%s) %s: %s", j.ID, j.Kind, j.State, j.Error)
	}
	n, err := check(j.Result)
	return n, j.Result, err
}

// adminJob is what this client reads of the node's Job (docs/admin-api.md).
type adminJob struct {
	ID     string          `json:"id"`
	Kind   string          `json:"kind"`
	State  string          `json:"state"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
}

func (j adminJob) ended() bool {
	switch j.State {
	case "done", "failed", "cancelled", "interrupted":
		return true
	}
	return false
}

// adminClient sends SigV4-signed requests to a node's admin API.
type adminClient struct {
	endpoint  string // host:port
	accessKey string
	secretKey string
	region    string
	client    *http.Client
}

// do sends method /_embassy/v1/path with body and returns the answer's
// body, or an error when its status is not want.
func (a *adminClient) do(ctx context.Context, method, path string, body []byte, want int) ([]byte, error) {
	resp, err := a.send(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s: %.300s (the credential's principal needs the operator role)", method, path, resp.Status, raw)
	}
	return raw, nil
}

// send sends method /_embassy/v1/path with body, signed, and returns the
// answer, whatever its status, for the caller to read and close.
func (a *adminClient) send(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+a.endpoint+"/_embassy/v1/"+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	req = signer.SignV4(*req, a.accessKey, a.secretKey, "", a.region)
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, nil
}

// resetPeakRSS resets the process's VmHWM to its current RSS (proc(5),
// /proc/PID/clear_refs, value 5).
func resetPeakRSS(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5\n"), 0); err != nil {
		return fmt.Errorf("reset the server's peak RSS: %w", err)
	}
	return nil
}

// peakRSS reads the process's VmHWM from /proc/PID/status, in bytes.
func peakRSS(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("server peak RSS: %w", err)
	}
	n, err := parseStatusKB(raw, "VmHWM")
	if err != nil {
		return 0, fmt.Errorf("server peak RSS: /proc/%d/status: %w", pid, err)
	}
	return n, nil
}

// parseStatusKB returns field (e.g. "VmHWM") of /proc/PID/status, given in
// kB there, in bytes.
func parseStatusKB(raw []byte, field string) (int64, error) {
	for line := range strings.Lines(string(raw)) {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: %q is not a size in kB", field, strings.TrimSpace(v))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 || n > 1<<50 {
			return 0, fmt.Errorf("%s: %q is not a size in kB", field, f[0])
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("no %s line", field)
}

// procCPU is the process's user+system CPU time in clock ticks (0 for pid 0).
func procCPU(pid int) (uint64, error) {
	if pid == 0 {
		return 0, nil
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("server cpu time: %w", err)
	}
	t, err := parseProcStat(raw)
	if err != nil {
		return 0, fmt.Errorf("server cpu time: /proc/%d/stat: %w", pid, err)
	}
	return t, nil
}

// writeScaleTable prints the phases as a Markdown table, as docs/design.md
// records them.
func writeScaleTable(w io.Writer, n, conc int, recs []scaleRecord) {
	fmt.Fprintf(w, "| phase (%d objects, through S3) | rate | time | server peak RSS | peak heap, sampled (before) | server CPU |\n", n)
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	for _, r := range recs {
		name := r.Phase
		switch r.Phase {
		case "put":
			name = fmt.Sprintf("put, %d clients", conc)
		case "list":
			name = "list (ListObjectsV2, pages of 1,000)"
		case "rebuild":
			name = "index rebuild (admin job)"
		case "scrub":
			name = "scrub (admin job)"
		case "drill":
			name = "drill (admin job)"
		}
		rss, cpu := "", ""
		if r.PeakRSS > 0 {
			rss = fmt.Sprintf("%.1f MiB", mib(r.PeakRSS))
			cpu = fmt.Sprintf("%.1f s", r.CPUSeconds)
		}
		fmt.Fprintf(w, "| %s | %.0f %s/s | %.1f s | %s | %.1f MiB (%.1f) | %s |\n", name, r.PerS, r.Unit, r.Seconds, rss, mib(r.PeakHeap), mib(r.BaseHeap), cpu)
	}
}
