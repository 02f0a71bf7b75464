package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// The calibration probe (s3bench probe): a fixed piece of each kind of
// work the machine does for a large GET, timed every -interval on one OS
// thread, by that thread's CPU time as well as the wall clock. Run beside
// a benchmark, it tells "the host gave this guest slower CPU or memory at
// that moment" (the probe's CPU time for the same work rises too) from
// "the servers' own path cost more" (the probe steady). On a guest whose
// host does not report steal, a vCPU the host takes away still counts as
// the running thread's CPU time, so the probe's CPU time for fixed work is
// the measure of what a CPU-second bought.
//
// The pieces, in this order each round:
//
//	cpu     a dependent integer loop of -cpu-iters iterations (ns a million)
//	mem     copy of a -mem byte buffer into another, both touched once at the
//	        start (GB/s of CPU time: memory bandwidth)
//	fault   mmap of -fault fresh anonymous bytes, one write a 4 KiB page,
//	        munmap (µs a page: the kernel's page fault and zeroing, and the
//	        host's work behind a page the guest has not touched lately)
//	pcache  pread of a -pcache byte file held in the page cache, 256 KiB at a
//	        time (GB/s of CPU time: the kernel's cached-read path, the same
//	        path a large GET's shard reads take once the data is in memory)
//	cold    the same read of another -cold byte file after dropping it from
//	        the page cache (posix_fadvise DONTNEED): read from the disk with
//	        the kernel's read-ahead, into page-cache pages newly allocated,
//	        as a large GET's shard reads are (GB/s of CPU time)
//	fresh   pread of the next -fresh bytes of a sparse file of -fresh-total
//	        bytes that is never read twice: the kernel fills page-cache pages
//	        newly allocated, with zeros, with no disk read (GB/s of CPU time).
//	        Set beside cold, it says what a page the guest has not touched
//	        lately costs: on a VM whose guest hands free memory back to its
//	        host (free page reporting), such a page must be supplied again
//	        by the host at its first touch, and cold's pages, dropped and
//	        read again at once, are not. Once -fresh-total is read the
//	        piece stops (fresh_bytes 0): the file is never dropped during
//	        the run, so that the probe frees no memory the servers could
//	        take instead of fresh pages.
//	sys     -sys-calls getppid system calls (ns a call: entry and exit)
//
// Each round is one JSON line (probeSample). The file for pcache is made
// in -dir and removed at exit.
type probeSample struct {
	UnixMs int64 `json:"unix_ms"`
	// Per piece: the thread's CPU time and the wall time, nanoseconds.
	CPUNs        int64 `json:"cpu_ns"`
	CPUWallNs    int64 `json:"cpu_wall_ns"`
	MemNs        int64 `json:"mem_ns"`
	MemWallNs    int64 `json:"mem_wall_ns"`
	FaultNs      int64 `json:"fault_ns"`
	FaultWallNs  int64 `json:"fault_wall_ns"`
	PcacheNs     int64 `json:"pcache_ns"`
	PcacheWallNs int64 `json:"pcache_wall_ns"`
	ColdNs       int64 `json:"cold_ns"`
	ColdWallNs   int64 `json:"cold_wall_ns"`
	FreshNs      int64 `json:"fresh_ns"`
	FreshWallNs  int64 `json:"fresh_wall_ns"`
	SysNs        int64 `json:"sys_ns"`
	SysWallNs    int64 `json:"sys_wall_ns"`
	// The sizes the round used, so that a line reads alone.
	CPUIters    int   `json:"cpu_iters"`
	MemBytes    int64 `json:"mem_bytes"`
	FaultBytes  int64 `json:"fault_bytes"`
	PcacheBytes int64 `json:"pcache_bytes"`
	ColdBytes   int64 `json:"cold_bytes"`
	FreshBytes  int64 `json:"fresh_bytes"`
	SysCalls    int   `json:"sys_calls"`
}

// probeRates are a sample's pieces as rates, by CPU time.
type probeRates struct {
	CPUNsPerMIter   float64 // ns of CPU a million loop iterations
	MemGBps         float64 // GB copied a CPU-second
	FaultUsPerPage  float64 // µs of CPU a 4 KiB page faulted in
	PcacheGBps      float64 // GB read from the page cache a CPU-second
	ColdGBps        float64 // GB read from the disk through the page cache a CPU-second
	FreshGBps       float64 // GB of fresh page-cache pages filled a CPU-second
	SysNsPerCall    float64 // ns of CPU a system call
	CPUWallOverCPU  float64 // the cpu piece's wall time over its CPU time (>1: the thread waited for a core)
	TotalCPUSeconds float64
}

func (s probeSample) rates() probeRates {
	div := func(a, b float64) float64 {
		if b <= 0 {
			return 0
		}
		return a / b
	}
	return probeRates{
		CPUNsPerMIter:   div(float64(s.CPUNs)*1e6, float64(s.CPUIters)),
		MemGBps:         div(float64(s.MemBytes), float64(s.MemNs)),
		FaultUsPerPage:  div(float64(s.FaultNs)/1e3, float64(s.FaultBytes)/4096),
		PcacheGBps:      div(float64(s.PcacheBytes), float64(s.PcacheNs)),
		ColdGBps:        div(float64(s.ColdBytes), float64(s.ColdNs)),
		FreshGBps:       div(float64(s.FreshBytes), float64(s.FreshNs)),
		SysNsPerCall:    div(float64(s.SysNs), float64(s.SysCalls)),
		CPUWallOverCPU:  div(float64(s.CPUWallNs), float64(s.CPUNs)),
		TotalCPUSeconds: float64(s.CPUNs+s.MemNs+s.FaultNs+s.PcacheNs+s.ColdNs+s.FreshNs+s.SysNs) / 1e9,
	}
}

type probeConfig struct {
	Interval   time.Duration
	CPUIters   int
	MemBytes   int64
	FaultBytes int64
	Pcache     int64
	Cold       int64
	Fresh      int64
	FreshTotal int64
	SysCalls   int
	Dir        string
}

func probeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c probeConfig
	fs.DurationVar(&c.Interval, "interval", 500*time.Millisecond, "time from one round's start to the next")
	fs.IntVar(&c.CPUIters, "cpu-iters", 2_000_000, "iterations of the integer loop a round")
	mem := fs.String("mem", "64MiB", "bytes the memory piece copies a round")
	fault := fs.String("fault", "4MiB", "fresh anonymous bytes the fault piece maps and touches a round")
	pcache := fs.String("pcache", "16MiB", "bytes the page-cache piece reads a round (the size of its file)")
	cold := fs.String("cold", "8MiB", "bytes the cold-read piece reads from the disk a round (the size of its file; 0: no cold piece)")
	fresh := fs.String("fresh", "4MiB", "bytes the fresh piece reads a round (0: no fresh piece)")
	freshTotal := fs.String("fresh-total", "2GiB", "the size of the fresh piece's sparse file: what it reads in all")
	fs.IntVar(&c.SysCalls, "sys-calls", 5_000, "system calls a round")
	fs.StringVar(&c.Dir, "dir", os.TempDir(), "directory for the page-cache piece's file")
	out := fs.String("out", "", "append the rounds here as JSON lines (default: standard output)")
	duration := fs.Duration("duration", 0, "stop after this long (default: at interrupt)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("probe: unexpected arguments %q", fs.Args())
	}
	var err error
	for _, p := range []struct {
		name string
		s    string
		dst  *int64
	}{{"-mem", *mem, &c.MemBytes}, {"-fault", *fault, &c.FaultBytes}, {"-pcache", *pcache, &c.Pcache}, {"-cold", *cold, &c.Cold}, {"-fresh", *fresh, &c.Fresh}, {"-fresh-total", *freshTotal, &c.FreshTotal}} {
		if *p.dst, err = parseSize(p.s); err != nil {
			return fmt.Errorf("probe: %s: %w", p.name, err)
		}
		if *p.dst < 4096 && !((p.name == "-cold" || p.name == "-fresh") && *p.dst == 0) {
			return fmt.Errorf("probe: %s %s: want at least 4KiB", p.name, p.s)
		}
	}
	if c.Interval <= 0 || c.CPUIters <= 0 || c.SysCalls <= 0 {
		return errors.New("probe: -interval, -cpu-iters and -sys-calls must be positive")
	}
	w := stdout
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	return runProbe(ctx, c, w)
}

// runProbe runs rounds until ctx is done, writing one line a round.
func runProbe(ctx context.Context, c probeConfig, w io.Writer) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	src := make([]byte, c.MemBytes)
	dst := make([]byte, c.MemBytes)
	for i := range src {
		src[i] = byte(i)
	}
	copy(dst, src)

	const chunk = 256 << 10
	buf := make([]byte, chunk)
	f, err := probeFile(c.Dir, src, c.Pcache)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	var cf *os.File
	if c.Cold > 0 {
		if cf, err = probeFile(c.Dir, src, c.Cold); err != nil {
			return err
		}
		defer os.Remove(cf.Name())
		defer cf.Close()
	}
	var ff *os.File
	var freshOff int64
	if c.Fresh > 0 {
		if ff, err = os.CreateTemp(c.Dir, "s3bench-probe-*"); err != nil {
			return err
		}
		defer os.Remove(ff.Name())
		defer ff.Close()
		if err := ff.Truncate(c.FreshTotal); err != nil {
			return err
		}
	}
	// Into the page cache and kept there by the reads every round.
	if err := readAll(f, buf, c.Pcache); err != nil {
		return err
	}

	enc := json.NewEncoder(w)
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	var sink uint64
	for {
		var s probeSample
		s.UnixMs = time.Now().UnixMilli()
		s.CPUIters, s.MemBytes, s.FaultBytes, s.PcacheBytes, s.ColdBytes, s.SysCalls = c.CPUIters, c.MemBytes, c.FaultBytes, c.Pcache, c.Cold, c.SysCalls

		s.CPUNs, s.CPUWallNs = timed(func() error { sink += spin(c.CPUIters); return nil })
		s.MemNs, s.MemWallNs = timed(func() error { copy(dst, src); return nil })
		var ferr error
		s.FaultNs, s.FaultWallNs = timed(func() error { ferr = faultIn(c.FaultBytes); return ferr })
		if ferr != nil {
			return ferr
		}
		var perr error
		s.PcacheNs, s.PcacheWallNs = timed(func() error { perr = readAll(f, buf, c.Pcache); return perr })
		if perr != nil {
			return perr
		}
		if cf != nil {
			if err := unix.Fadvise(int(cf.Fd()), 0, c.Cold, unix.FADV_DONTNEED); err != nil {
				return fmt.Errorf("probe: fadvise %s: %w", cf.Name(), err)
			}
			var cerr error
			s.ColdNs, s.ColdWallNs = timed(func() error { cerr = readAll(cf, buf, c.Cold); return cerr })
			if cerr != nil {
				return cerr
			}
		}
		if ff != nil && freshOff+c.Fresh <= c.FreshTotal {
			var ferr error
			s.FreshNs, s.FreshWallNs = timed(func() error { ferr = readRange(ff, buf, freshOff, c.Fresh); return ferr })
			if ferr != nil {
				return ferr
			}
			s.FreshBytes = c.Fresh
			freshOff += c.Fresh
		}
		s.SysNs, s.SysWallNs = timed(func() error {
			for range c.SysCalls {
				unix.Getppid()
			}
			return nil
		})
		if err := enc.Encode(s); err != nil {
			return err
		}
		if sink == 42 { // keep the loop's result alive
			fmt.Fprintln(io.Discard, sink)
		}
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// probeFile makes a file of n bytes in dir from src, synced so that its
// pages can be dropped from the page cache.
func probeFile(dir string, src []byte, n int64) (*os.File, error) {
	f, err := os.CreateTemp(dir, "s3bench-probe-*")
	if err != nil {
		return nil, err
	}
	for off := int64(0); off < n; {
		k := min(int64(len(src)), n-off)
		if _, err := f.WriteAt(src[:k], off); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		off += k
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// timed runs f and returns the calling thread's CPU time and the wall time
// it took, in nanoseconds.
func timed(f func() error) (cpuNs, wallNs int64) {
	var a, b unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &a)
	w := time.Now()
	_ = f()
	wallNs = time.Since(w).Nanoseconds()
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &b)
	return b.Nano() - a.Nano(), wallNs
}

// spin is a dependent chain of n xorshift steps: CPU only, no memory.
func spin(n int) uint64 {
	x := uint64(88172645463325252)
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// faultIn maps n fresh anonymous bytes, writes one byte in every 4 KiB
// page and unmaps them.
func faultIn(n int64) error {
	m, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("probe: mmap %d bytes: %w", n, err)
	}
	for i := 0; i < len(m); i += 4096 {
		m[i] = 1
	}
	return unix.Munmap(m)
}

// readAll preads n bytes of f from its start, len(buf) at a time.
func readAll(f *os.File, buf []byte, n int64) error { return readRange(f, buf, 0, n) }

// readRange preads n bytes of f from off, len(buf) at a time.
func readRange(f *os.File, buf []byte, off, n int64) error {
	for end := off + n; off < end; {
		k, err := f.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		off += int64(k)
		if err != nil {
			return fmt.Errorf("probe: read %s: %w", f.Name(), err)
		}
	}
	return nil
}

// probeSumCmd prints, for every phase in the records files, the probe's
// rounds that started inside it (s3bench probesum -probe FILE A.jsonl ...).
func probeSumCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("probesum", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	probePath := fs.String("probe", "", "the probe's JSON lines (s3bench probe -out)")
	large := fs.Bool("large", false, "only the phases of objects of 8 MiB or more")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("probesum: %w\n%s", err, usage)
	}
	if *probePath == "" || fs.NArg() == 0 {
		return fmt.Errorf("probesum: want -probe FILE and one or more records files\n%s", usage)
	}
	raw, err := os.ReadFile(*probePath)
	if err != nil {
		return fmt.Errorf("probesum: %w", err)
	}
	samples, err := parseProbe(raw)
	if err != nil {
		return fmt.Errorf("probesum: %s: %w", *probePath, err)
	}
	var recs []record
	for _, p := range fs.Args() {
		r, err := readRecords(p)
		if err != nil {
			return err
		}
		recs = append(recs, r...)
	}
	slices.SortStableFunc(recs, func(a, b record) int { return cmp.Compare(a.StartUnixMs, b.StartUnixMs) })
	if *large {
		recs = slices.DeleteFunc(recs, func(r record) bool { return r.Size < largeSize })
	}
	return probeSum(stdout, recs, samples)
}

func parseProbe(raw []byte) ([]probeSample, error) {
	return parseLines(raw, "probe rounds", func(s *probeSample) error {
		if s.UnixMs <= 0 || s.CPUIters <= 0 || s.MemBytes <= 0 || s.SysCalls <= 0 {
			return errors.New("not a probe round (no time or no sizes)")
		}
		return nil
	})
}

// phaseProbe is the probe's medians over one phase's rounds.
type phaseProbe struct {
	Rounds int
	Rates  probeRates // each field the median over the rounds that ran the piece
}

// probeWindow returns the medians of the rounds that started in
// [startMs, endMs).
func probeWindow(samples []probeSample, startMs, endMs int64) phaseProbe {
	var rs []probeRates
	for _, s := range samples {
		if s.UnixMs >= startMs && s.UnixMs < endMs {
			rs = append(rs, s.rates())
		}
	}
	med := func(f func(probeRates) float64) float64 {
		var xs []float64
		for _, r := range rs {
			if v := f(r); v > 0 {
				xs = append(xs, v)
			}
		}
		if len(xs) == 0 {
			return 0
		}
		return summarize(xs).Med
	}
	return phaseProbe{Rounds: len(rs), Rates: probeRates{
		CPUNsPerMIter:  med(func(r probeRates) float64 { return r.CPUNsPerMIter }),
		MemGBps:        med(func(r probeRates) float64 { return r.MemGBps }),
		FaultUsPerPage: med(func(r probeRates) float64 { return r.FaultUsPerPage }),
		PcacheGBps:     med(func(r probeRates) float64 { return r.PcacheGBps }),
		ColdGBps:       med(func(r probeRates) float64 { return r.ColdGBps }),
		FreshGBps:      med(func(r probeRates) float64 { return r.FreshGBps }),
		SysNsPerCall:   med(func(r probeRates) float64 { return r.SysNsPerCall }),
		CPUWallOverCPU: med(func(r probeRates) float64 { return r.CPUWallOverCPU }),
	}}
}

func probeSum(w io.Writer, recs []record, samples []probeSample) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tstart\tMB/s\tCPU-s/GB\t| rounds\tcpu ms/M\tmem GB/s\tfault µs/page\tpcache GB/s\tcold GB/s\tfresh GB/s\tsys ns\t")
	for _, r := range recs {
		end := r.StartUnixMs + int64(r.Seconds*1000)
		p := probeWindow(samples, r.StartUnixMs, end)
		cpu := "-"
		if r.CPUPerGB != nil {
			cpu = fmt.Sprintf("%.2f", *r.CPUPerGB)
		}
		f := func(v float64, prec int) string {
			if v == 0 {
				return "-"
			}
			return strconv.FormatFloat(v, 'f', prec, 64)
		}
		q := p.Rates
		fmt.Fprintf(tw, "%s %s %s c%d\t%s\t%.0f\t%s\t| %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.Server, r.Op, formatSize(r.Size), r.Concurrency, time.UnixMilli(r.StartUnixMs).UTC().Format("15:04:05"),
			r.MBPerS, cpu, p.Rounds, f(q.CPUNsPerMIter/1e6, 2), f(q.MemGBps, 1), f(q.FaultUsPerPage, 1),
			f(q.PcacheGBps, 1), f(q.ColdGBps, 2), f(q.FreshGBps, 2), f(q.SysNsPerCall, 0))
	}
	return tw.Flush()
}
