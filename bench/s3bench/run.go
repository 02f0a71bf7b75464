package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/embassy-dev/embassy/internal/benchutil"
)

// caseSpec is one workload: Count objects of Size bytes, Concurrency at a time.
type caseSpec struct {
	Size        int64
	Concurrency int
	Count       int
}

// record is one measured phase (the put or the get of a case), written as
// one JSON line.
type record struct {
	Server      string  `json:"server"`
	Op          string  `json:"op"` // "put" or "get"
	Size        int64   `json:"size"`
	Concurrency int     `json:"concurrency"`
	Count       int     `json:"count"` // operations completed
	Bytes       int64   `json:"bytes"`
	Seconds     float64 `json:"seconds"`
	MBPerS      float64 `json:"mb_per_s"` // 10^6 bytes per second
	OpsPerS     float64 `json:"ops_per_s"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	// CPUSeconds is the server's user+system CPU time during the phase;
	// CPUPerGB divides it by the gigabytes (10^9 bytes) moved. Both are
	// absent when no -pid was given.
	CPUSeconds *float64 `json:"cpu_seconds,omitempty"`
	CPUPerGB   *float64 `json:"cpu_s_per_gb,omitempty"`
	// Truncated is set when -max-time stopped the phase before Count.
	Truncated bool `json:"truncated,omitempty"`
	// Disk is what the -disk device did during the phase (absent without
	// -disk); StartUnixMs is when the phase began.
	Disk        *diskPhase `json:"disk,omitempty"`
	StartUnixMs int64      `json:"start_unix_ms"`
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "", "S3 endpoint as host:port (plain HTTP)")
	accessKey := fs.String("access-key", "", "S3 access key")
	secretKey := fs.String("secret-key", "", "S3 secret key")
	bucket := fs.String("bucket", "s3bench", "bucket to use (created if missing)")
	server := fs.String("server", "", "name of the server under test, written into every record")
	pid := fs.Int("pid", 0, "server process id whose CPU time is measured (0: none)")
	clkTck := fs.Int("clk-tck", 100, "clock ticks per second of /proc/PID/stat (getconf CLK_TCK)")
	cases := fs.String("case", "", "comma-separated SIZE:CONCURRENCY:COUNT, e.g. 64MiB:1:16,4KiB:16:4000")
	out := fs.String("out", "", "append JSON lines to this file (default: stdout only as text)")
	seed := fs.Uint64("seed", 1, "seed of the object contents")
	partSize := fs.String("part-size", "0", "multipart part size for puts (0: one PUT per object)")
	unsigned := fs.Bool("unsigned-payload", false, "send UNSIGNED-PAYLOAD instead of the client's default streaming SigV4 (aws-chunked) bodies")
	dropCaches := fs.Bool("drop-caches", false, "sync and drop the page cache before each phase (needs root)")
	maxTime := fs.Duration("max-time", 10*time.Minute, "stop a phase after this long and report what was done")
	putOnly := fs.Bool("put-only", false, "only put the objects, get nothing back (bench/s3.sh AUDIT_COST=1: the audit log's cost is on the put)")
	pprofDir := fs.String("pprof", "", "capture the server's CPU and allocation profiles of every phase into this directory (embassy only: /_embassy/v1/debug/pprof/, operator role)")
	diskOf := fs.String("disk-of", "", "record, for every phase, the reads, busy time and requests in flight of the block device holding this directory (none recorded, with a warning, where it is on no block device)")
	perfDir := fs.String("perf", "", "sample the server's threads (user and kernel stacks) with Linux perf during every phase into this directory, for `s3bench perfsum` (needs -pid and perf)")
	perfFreq := fs.Int("perf-freq", 999, "perf's samples a second of each CPU (-perf)")
	pprofChunk := fs.Duration("pprof-chunk", time.Second, "length of each CPU profile taken back to back during a phase (whole seconds)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("run: unexpected argument %q", fs.Arg(0))
	}
	if *endpoint == "" || *accessKey == "" || *secretKey == "" || *server == "" {
		return errors.New("run: -endpoint, -access-key, -secret-key and -server are required")
	}
	specs, err := parseCases(*cases)
	if err != nil {
		return fmt.Errorf("run: -case: %w", err)
	}
	ps, err := parseSize(*partSize)
	if err != nil {
		return fmt.Errorf("run: -part-size: %w", err)
	}
	if ps != 0 && ps < 5<<20 {
		return fmt.Errorf("run: -part-size %d: S3 parts are at least 5 MiB", ps)
	}
	if *clkTck <= 0 {
		return fmt.Errorf("run: -clk-tck %d: must be positive", *clkTck)
	}

	var sink io.Writer = io.Discard
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		defer f.Close()
		sink = f
	}

	maxConc := 1
	for _, s := range specs {
		maxConc = max(maxConc, s.Concurrency)
	}
	client, err := minio.New(*endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(*accessKey, *secretKey, ""),
		Region:    "us-east-1",
		Transport: transport(maxConc),
	})
	if err != nil {
		return fmt.Errorf("run: client for %s: %w", *endpoint, err)
	}
	if err := ensureBucket(ctx, client, *bucket); err != nil {
		return err
	}

	b := &bench{
		client:   client,
		bucket:   *bucket,
		server:   *server,
		pid:      *pid,
		clkTck:   float64(*clkTck),
		partSize: uint64(ps),
		unsigned: *unsigned,
		maxTime:  *maxTime,
		drop:     *dropCaches,
		putOnly:  *putOnly,
		runID:    strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	if *diskOf != "" {
		if b.disk, err = benchutil.DiskOf(*diskOf); err != nil {
			fmt.Fprintf(stderr, "s3bench run: -disk-of: no disk counters: %v\n", err)
			b.disk = nil
		}
	}
	if *pprofDir != "" {
		if *pprofChunk < time.Second {
			return fmt.Errorf("run: -pprof-chunk %s: at least 1s", *pprofChunk)
		}
		b.prof = &profiler{admin: &adminClient{endpoint: *endpoint, accessKey: *accessKey, secretKey: *secretKey, region: "us-east-1",
			client: &http.Client{Transport: transport(1)}}, dir: *pprofDir, chunk: *pprofChunk}
	}
	if *perfDir != "" {
		if *pid == 0 {
			return errors.New("run: -perf needs -pid, the server's process")
		}
		if *perfFreq <= 0 {
			return fmt.Errorf("run: -perf-freq %d: must be positive", *perfFreq)
		}
		b.perf = &perfRecorder{dir: *perfDir, freq: *perfFreq, pid: *pid}
	}
	var largest int64
	for _, s := range specs {
		largest = max(largest, s.Size)
	}
	b.data = newPayload(largest, *seed)

	enc := json.NewEncoder(sink)
	for _, s := range specs {
		recs, err := b.runCase(ctx, s)
		for _, r := range recs {
			fmt.Fprintln(stdout, r.text())
			if err := enc.Encode(r); err != nil {
				return fmt.Errorf("run: write %s: %w", *out, err)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// transport is a plain keep-alive HTTP transport sized for conc parallel
// requests, the same for every server measured.
func transport(conc int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * conc,
		MaxIdleConnsPerHost: 2 * conc,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      64 << 10,
	}
}

func ensureBucket(ctx context.Context, c *minio.Client, bucket string) error {
	ok, err := c.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("run: bucket %s: %w", bucket, err)
	}
	if ok {
		return nil
	}
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		return fmt.Errorf("run: create bucket %s: %w", bucket, err)
	}
	return nil
}

type bench struct {
	client   *minio.Client
	bucket   string
	server   string
	pid      int
	clkTck   float64
	partSize uint64
	unsigned bool
	maxTime  time.Duration
	drop     bool
	putOnly  bool // no get phase
	runID    string
	data     *payload
	prof     *profiler       // nil: no profiles
	perf     *perfRecorder   // nil: no perf samples
	disk     *benchutil.Disk // nil: no disk counters
}

// runCase puts s.Count objects, then gets back every one that was put
// (unless putOnly).
func (b *bench) runCase(ctx context.Context, s caseSpec) ([]record, error) {
	prefix := fmt.Sprintf("s3bench/%s/%s-c%d/", b.runID, formatSize(s.Size), s.Concurrency)
	key := func(i int) string { return prefix + fmt.Sprintf("%08d", i) }

	opts := minio.PutObjectOptions{
		ContentType:          "application/octet-stream",
		DisableMultipart:     b.partSize == 0,
		PartSize:             b.partSize,
		DisableContentSha256: b.unsigned,
	}
	put, err := b.phase(ctx, "put", s, s.Count, func(ctx context.Context, _ int, i int) error {
		data := b.data.object(i, s.Size)
		if _, err := b.client.PutObject(ctx, b.bucket, key(i), bytes.NewReader(data), s.Size, opts); err != nil {
			return fmt.Errorf("put %s: %w", key(i), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if b.putOnly {
		return []record{put}, nil
	}

	bufs := make([][]byte, s.Concurrency)
	for w := range bufs {
		bufs[w] = make([]byte, min(s.Size+1, 1<<20))
	}
	get, err := b.phase(ctx, "get", s, put.Count, func(ctx context.Context, w int, i int) error {
		obj, err := b.client.GetObject(ctx, b.bucket, key(i), minio.GetObjectOptions{})
		if err != nil {
			return fmt.Errorf("get %s: %w", key(i), err)
		}
		defer obj.Close()
		if err := verify(obj, b.data.object(i, s.Size), bufs[w]); err != nil {
			return fmt.Errorf("get %s: %w", key(i), err)
		}
		return nil
	})
	return []record{put, get}, err
}

// verify reads r to its end and checks that it yields exactly want.
func verify(r io.Reader, want, buf []byte) error {
	var off int
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if off+n > len(want) {
				return fmt.Errorf("body longer than the %d bytes put", len(want))
			}
			if !bytes.Equal(buf[:n], want[off:off+n]) {
				return fmt.Errorf("body differs from what was put within bytes %d-%d", off, off+n-1)
			}
			off += n
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != len(want) {
		return fmt.Errorf("body has %d bytes, %d were put", off, len(want))
	}
	return nil
}

// phase runs do for indexes 0..n-1 on s.Concurrency workers and measures
// it. do gets the worker number and the index.
func (b *bench) phase(ctx context.Context, op string, s caseSpec, n int, do func(ctx context.Context, w, i int) error) (record, error) {
	r := record{Server: b.server, Op: op, Size: s.Size, Concurrency: s.Concurrency}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next    atomic.Int64
		stopped atomic.Bool
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	lat := make([][]time.Duration, s.Concurrency)

	if b.drop {
		if err := dropCaches(); err != nil {
			return r, err
		}
	}

	var endProfiles func() error
	if b.prof != nil {
		var err error
		if endProfiles, err = b.prof.start(ctx, b.server, op, s); err != nil {
			return r, fmt.Errorf("%s %s: %w", b.server, op, err)
		}
	}
	var pr *perfRun
	if b.perf != nil {
		var err error
		if pr, err = b.perf.start(ctx, b.server, op, s); err != nil {
			return r, fmt.Errorf("%s %s: %w", b.server, op, err)
		}
		defer func() {
			if pr != nil {
				pr.stop()
			}
		}()
	}
	cpu0, err := b.cpu()
	if err != nil {
		return r, err
	}
	var disk0 benchutil.DiskStat
	if b.disk != nil {
		if disk0, err = b.disk.Stat(); err != nil {
			return r, err
		}
	}
	start := time.Now()
	r.StartUnixMs = start.UnixMilli()
	deadline := start.Add(b.maxTime)
	for w := range s.Concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t := time.Now()
				if t.After(deadline) {
					stopped.Store(true)
					return
				}
				if err := do(ctx, w, i); err != nil {
					errOnce.Do(func() { first = err; cancel() })
					return
				}
				lat[w] = append(lat[w], time.Since(t))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var (
		perfErr  error
		perfDone *perfRun
	)
	if pr != nil {
		perfErr = pr.stop()
		perfDone, pr = pr, nil
	}
	if b.disk != nil {
		disk1, err := b.disk.Stat()
		if err == nil {
			r.Disk, err = diskDelta(b.disk.Name, disk0, disk1, elapsed)
		}
		if err != nil {
			return r, err
		}
	}
	cpu1, err := b.cpu()
	if err != nil {
		return r, err
	}
	if endProfiles != nil {
		if err := endProfiles(); err != nil && first == nil {
			return r, fmt.Errorf("%s %s: %w", b.server, op, err)
		}
	}
	if first != nil {
		return r, fmt.Errorf("%s %s: %w", b.server, op, first)
	}

	all := slices.Concat(lat...)
	slices.Sort(all)
	r.Count = len(all)
	r.Bytes = int64(r.Count) * s.Size
	r.Seconds = elapsed.Seconds()
	r.MBPerS = float64(r.Bytes) / 1e6 / r.Seconds
	r.OpsPerS = float64(r.Count) / r.Seconds
	r.P50Ms = percentile(all, 0.50)
	r.P99Ms = percentile(all, 0.99)
	r.Truncated = stopped.Load() || r.Count < n
	if perfDone != nil {
		if perfErr == nil {
			perfErr = perfDone.finish(r.Bytes)
		}
		if perfErr != nil {
			return r, fmt.Errorf("%s %s: %w", b.server, op, perfErr)
		}
	}
	if b.pid != 0 {
		sec := float64(cpu1-cpu0) / b.clkTck
		r.CPUSeconds = &sec
		if r.Bytes > 0 {
			per := sec / (float64(r.Bytes) / 1e9)
			r.CPUPerGB = &per
		}
	}
	return r, nil
}

func (b *bench) cpu() (uint64, error) { return procCPU(b.pid) }

// percentile of sorted durations, in milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(p*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

func (r record) text() string {
	s := fmt.Sprintf("%-8s %-3s %6s c%-3d %6d ops %9.1f MB/s %9.1f ops/s  p50 %7.2f ms  p99 %7.2f ms",
		r.Server, r.Op, formatSize(r.Size), r.Concurrency, r.Count, r.MBPerS, r.OpsPerS, r.P50Ms, r.P99Ms)
	if r.CPUPerGB != nil {
		s += fmt.Sprintf("  cpu %6.2f s = %7.2f CPU-s/GB", *r.CPUSeconds, *r.CPUPerGB)
	}
	if r.Truncated {
		s += "  (stopped by -max-time)"
	}
	if r.Disk != nil {
		s += r.Disk.text()
	}
	return s
}

// payload holds pseudo-random bytes from which every object is cut.
// Object i starts at a different offset, so no two objects of a case are
// the same bytes.
type payload struct{ buf []byte }

const payloadWindow = 1 << 20

func newPayload(largest int64, seed uint64) *payload {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	buf := make([]byte, largest+payloadWindow)
	rand.NewChaCha8(key).Read(buf)
	return &payload{buf: buf}
}

func (p *payload) object(i int, size int64) []byte {
	off := int64(i) * 4093 % payloadWindow
	return p.buf[off : off+size]
}

// parseCases parses a comma-separated list of SIZE:CONCURRENCY:COUNT.
func parseCases(s string) ([]caseSpec, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no case given")
	}
	var out []caseSpec
	for c := range strings.SplitSeq(s, ",") {
		f := strings.Split(strings.TrimSpace(c), ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("case %q: want SIZE:CONCURRENCY:COUNT", c)
		}
		size, err := parseSize(f[0])
		if err != nil {
			return nil, fmt.Errorf("case %q: %w", c, err)
		}
		if size <= 0 || size > 5<<30 {
			return nil, fmt.Errorf("case %q: size must be between 1 byte and 5 GiB", c)
		}
		conc, err := strconv.Atoi(f[1])
		if err != nil || conc < 1 || conc > 1024 {
			return nil, fmt.Errorf("case %q: concurrency %q must be a whole number from 1 to 1024", c, f[1])
		}
		count, err := strconv.Atoi(f[2])
		if err != nil || count < 1 || count > 10_000_000 {
			return nil, fmt.Errorf("case %q: count %q must be a whole number from 1 to 10000000", c, f[2])
		}
		out = append(out, caseSpec{Size: size, Concurrency: conc, Count: count})
	}
	return out, nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// parseSize parses a byte count: a whole number with an optional KiB, MiB
// or GiB (or B) suffix.
func parseSize(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a whole number of bytes, KiB, MiB or GiB", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}

// formatSize writes a size in the largest unit that divides it exactly.
func formatSize(n int64) string {
	for _, u := range sizeUnits {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// parseProcStat returns utime+stime, in clock ticks, from the contents of
// /proc/PID/stat (proc(5): fields 14 and 15, counted after the command name
// in parentheses, which may itself hold spaces and parentheses).
func parseProcStat(raw []byte) (uint64, error) {
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("no ')' closing the command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field N is f[N-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime %q: %w", f[11], err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime %q: %w", f[12], err)
	}
	return utime + stime, nil
}

// dropCaches writes dirty pages out and empties the page cache, so that a
// phase starts from cold storage.
func dropCaches() error {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop caches: %w", err)
	}
	return nil
}
