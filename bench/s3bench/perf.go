package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// perfRecorder samples a server's threads, user and kernel stacks alike,
// with Linux perf during each phase (`s3bench run -perf DIR`). Unlike the
// Go profiles of -pprof it works on any server process, MinIO included,
// and it sees the kernel's share (the copies out of sockets and into the
// page cache, the flushes), so that `s3bench perfsum DIR` can set the two
// servers' CPU per GB side by side, cost by cost.
//
// For a phase it writes DIR/SERVER-OP-SIZE-cCONC.data (perf's samples)
// and DIR/SERVER-OP-SIZE-cCONC.json (a perfPhase: what the phase moved).
type perfRecorder struct {
	dir  string
	freq int // samples a second of each CPU
	pid  int
}

// perfPhase is the sidecar of one phase's samples.
type perfPhase struct {
	Server      string `json:"server"`
	Op          string `json:"op"`
	Size        int64  `json:"size"`
	Concurrency int    `json:"concurrency"`
	Bytes       int64  `json:"bytes"`
	Freq        int    `json:"freq"`
	Data        string `json:"data"` // the .data file's name, beside the sidecar
}

// perfRun is perf recording one phase.
type perfRun struct {
	cmd    *exec.Cmd
	exited chan error
	stderr *strings.Builder
	dir    string
	phase  perfPhase
}

// start starts perf on the server and returns once it records (its output
// file holds perf's header).
func (p *perfRecorder) start(ctx context.Context, server, op string, s caseSpec) (*perfRun, error) {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}
	name := phaseDir(server, op, s)
	data := filepath.Join(p.dir, name+".data")
	os.Remove(data)
	cmd := exec.Command("perf", "record", "-q", "-e", "cpu-clock", "-F", strconv.Itoa(p.freq), "-g",
		"-p", strconv.Itoa(p.pid), "-o", data)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w (install perf: Debian's linux-perf)", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// perf writes its header once it has opened the events: wait for that,
	// or for perf to fail, rather than for a fixed time.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for ready := false; !ready; {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("perf record -p %d exited before the phase: %v: %s", p.pid, err, strings.TrimSpace(stderr.String()))
		case <-deadline:
			cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("perf record -p %d: no output in %s after 30s", p.pid, data)
		case <-ctx.Done():
			cmd.Process.Kill()
			<-exited
			return nil, ctx.Err()
		case <-tick.C:
			if fi, err := os.Stat(data); err == nil && fi.Size() > 0 {
				ready = true
			}
		}
	}
	return &perfRun{cmd: cmd, exited: exited, stderr: &stderr, dir: p.dir,
		phase: perfPhase{Server: server, Op: op, Size: s.Size, Concurrency: s.Concurrency, Freq: p.freq, Data: name + ".data"}}, nil
}

// stop ends the recording: perf writes out its samples on an interrupt.
func (r *perfRun) stop() error {
	if err := r.cmd.Process.Signal(os.Interrupt); err != nil {
		return fmt.Errorf("perf record: stop: %w", err)
	}
	err := <-r.exited
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		// perf ends with the interrupt's status on some versions.
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGINT {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("perf record: %v: %s", err, strings.TrimSpace(r.stderr.String()))
	}
	return nil
}

// finish writes the sidecar, with the bytes the phase moved.
func (r *perfRun) finish(bytes int64) error {
	r.phase.Bytes = bytes
	side, err := json.MarshalIndent(r.phase, "", "  ")
	if err != nil {
		return err
	}
	name := strings.TrimSuffix(r.phase.Data, ".data") + ".json"
	return os.WriteFile(filepath.Join(r.dir, name), append(side, '\n'), 0o644)
}

// A perfSample is one sampled stack, leaf first, as `perf script -F
// comm,ip,sym,dso` prints it.
type perfSample struct {
	Frames []perfFrame
}

type perfFrame struct {
	Sym    string // function, without +offset; "[unknown]" where perf had none
	Kernel bool   // the frame is in the kernel
}

// parsePerfScript reads `perf script -F comm,ip,sym,dso` output: samples
// separated by blank lines, each a header line (the thread's command name)
// and then one line a frame, leaf first: "\tIP SYM (DSO)". It calls
// each for every sample. A frame line it cannot read is an error naming
// the line; a sample without frames (perf prints those for samples it
// could not unwind) is skipped.
func parsePerfScript(r io.Reader, each func(perfSample)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cur perfSample
	inSample := false
	flush := func() {
		if len(cur.Frames) > 0 {
			each(cur)
		}
		cur = perfSample{Frames: cur.Frames[:0]}
		inSample = false
	}
	line := 0
	for sc.Scan() {
		line++
		t := sc.Text()
		if strings.TrimSpace(t) == "" {
			flush()
			continue
		}
		if t[0] != '\t' && t[0] != ' ' {
			if inSample {
				flush()
			}
			inSample = true
			continue
		}
		if !inSample {
			return fmt.Errorf("perf script line %d: a frame before any sample header: %q", line, t)
		}
		f, err := parsePerfFrame(t)
		if err != nil {
			return fmt.Errorf("perf script line %d: %w", line, err)
		}
		cur.Frames = append(cur.Frames, f)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("perf script: %w", err)
	}
	flush()
	return nil
}

// parsePerfFrame reads "\t  IP SYM+OFF (DSO)"; SYM may hold spaces (Go's
// generic shapes do), the DSO is the last parenthesised field.
func parsePerfFrame(t string) (perfFrame, error) {
	s := strings.TrimSpace(t)
	ip, rest, ok := strings.Cut(s, " ")
	if !ok || ip == "" {
		return perfFrame{}, fmt.Errorf("frame %q: want an address and a symbol", s)
	}
	if _, err := strconv.ParseUint(ip, 16, 64); err != nil {
		return perfFrame{}, fmt.Errorf("frame %q: address %q is not hexadecimal", s, ip)
	}
	rest = strings.TrimSpace(rest)
	var f perfFrame
	if i := strings.LastIndex(rest, " ("); i >= 0 && strings.HasSuffix(rest, ")") {
		dso := rest[i+2 : len(rest)-1]
		f.Kernel = strings.HasPrefix(dso, "[kernel") || strings.HasSuffix(dso, "vmlinux") || strings.Contains(dso, ".ko")
		rest = strings.TrimSpace(rest[:i])
	}
	if j := strings.LastIndex(rest, "+0x"); j > 0 {
		rest = rest[:j]
	}
	if rest == "" {
		rest = "[unknown]"
	}
	f.Sym = rest
	return f, nil
}

// perfCategory names what one sample's CPU went to. The rules are tried in
// order and the first that matches wins; docs: bench/README.md, "Where the
// CPU goes: perf".
type perfRule struct {
	name string
	leaf []string // the sampled function, where it is the program's (not the kernel's), contains one
	any  []string // any frame of the stack contains one
}

var perfRules = []perfRule{
	{name: "MD5", leaf: []string{"md5"}},
	{name: "SHA-256", leaf: []string{"sha256"}},
	{name: "AES-GCM", leaf: []string{"gcmAes", "/aes.", "aes/gcm", "ghash"}},
	{name: "BLAKE3", leaf: []string{"blake3"}},
	{name: "xxh3 (embassy's block checksums)", leaf: []string{"xxh3"}},
	{name: "HighwayHash (MinIO's bitrot)", leaf: []string{"highwayhash"}},
	{name: "Reed-Solomon", leaf: []string{"reedsolomon", "galMul", "galois"}},
	{name: "copies and zeroing (user)", leaf: []string{"runtime.memmove", "runtime.memclrNoHeapPointers"}},
	{name: "GC", any: []string{"runtime.gcBgMarkWorker", "runtime.gcAssist", "runtime.bgsweep", "runtime.bgscavenge", "runtime.gcDrain", "runtime.markroot"}},
	{name: "allocation", any: []string{"runtime.mallocgc", "runtime.newobject", "runtime.makeslice", "runtime.growslice"}},
	{name: "runtime monitor (sysmon)", any: []string{"runtime.sysmon"}},
	{name: "network receive (kernel)", any: []string{"tcp_recvmsg", "sock_recvmsg", "sock_read_iter"}},
	{name: "network send (kernel)", any: []string{"tcp_sendmsg", "sock_sendmsg", "sock_write_iter"}},
	{name: "flushes (kernel)", any: []string{"do_fsync", "vfs_fsync_range", "file_write_and_wait_range", "__x64_sys_fdatasync", "__x64_sys_fsync"}},
	{name: "O_DIRECT I/O (kernel)", any: []string{"iomap_dio_rw", "__iomap_dio_rw", "ext4_dio_write_iter", "iomap_dio_bio_iter"}},
	{name: "page-cache writes (kernel)", any: []string{"generic_perform_write", "ext4_buffered_write_iter", "iomap_file_buffered_write"}},
	{name: "page-cache reads (kernel)", any: []string{"filemap_read", "generic_file_read_iter", "ext4_file_read_iter"}},
	{name: "scheduler", any: []string{"runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.goexit0", "runtime.exitsyscall", "runtime.entersyscallblock", "runtime.handoffp", "runtime.stopm", "runtime.startm", "runtime.wakep", "runtime.netpoll", "runtime.futex", "runtime.notesleep", "runtime.notewakeup", "runtime.ready", "runtime.goready"}},
	{name: "other system calls (kernel)", any: []string{"entry_SYSCALL_64", "do_syscall_64"}},
}

// perfOtherKernel and perfOther collect what no rule names: kernel work
// outside system calls (interrupts, softirqs, the hypervisor's hooks) and
// the rest of the program.
const (
	perfOtherKernel = "other kernel (interrupts, faults)"
	perfOther       = "other (user)"
)

// categorize names a sample's cost: leaf rules look at the function the
// sample was taken in, where that is the program's; the others at every
// frame.
func categorize(s perfSample) string {
	leaf := ""
	if !s.Frames[0].Kernel {
		leaf = s.Frames[0].Sym
	}
	for _, r := range perfRules {
		for _, k := range r.leaf {
			if leaf != "" && strings.Contains(leaf, k) {
				return r.name
			}
		}
		for _, k := range r.any {
			for _, f := range s.Frames {
				if strings.Contains(f.Sym, k) {
					return r.name
				}
			}
		}
	}
	if s.Frames[0].Kernel {
		return perfOtherKernel
	}
	return perfOther
}

// perfSummary is one phase's samples by category.
type perfSummary struct {
	phase   perfPhase
	samples int
	byCat   map[string]int
	leaves  map[string]int
}

// cpuPerGB is the CPU-seconds per GB of n samples at the phase's rate.
func (p perfSummary) cpuPerGB(n int) float64 {
	if p.phase.Bytes == 0 || p.phase.Freq == 0 {
		return 0
	}
	return float64(n) / float64(p.phase.Freq) / (float64(p.phase.Bytes) / 1e9)
}

func summarizePerf(ph perfPhase, r io.Reader) (perfSummary, error) {
	sum := perfSummary{phase: ph, byCat: map[string]int{}, leaves: map[string]int{}}
	err := parsePerfScript(r, func(s perfSample) {
		sum.samples++
		sum.byCat[categorize(s)]++
		sum.leaves[s.Frames[0].Sym]++
	})
	return sum, err
}

// perfSumCmd: s3bench perfsum [-top N] DIR — for every phase recorded in
// DIR by `run -perf`, the servers' CPU-seconds per GB by category, side by
// side, and each server's costliest leaf functions.
func perfSumCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("perfsum", flag.ContinueOnError)
	top := fs.Int("top", 8, "list this many costliest leaf functions of each server and phase")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("perfsum: want one directory (written by s3bench run -perf)")
	}
	dir := fs.Arg(0)
	sides, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	if len(sides) == 0 {
		return fmt.Errorf("perfsum: %s holds no phase recorded by s3bench run -perf", dir)
	}
	type key struct {
		op   string
		size int64
		conc int
	}
	phases := map[key][]perfSummary{}
	for _, side := range sides {
		raw, err := os.ReadFile(side)
		if err != nil {
			return err
		}
		var ph perfPhase
		if err := json.Unmarshal(raw, &ph); err != nil {
			return fmt.Errorf("perfsum: %s: %w", side, err)
		}
		if ph.Data == "" || strings.ContainsAny(ph.Data, `/\`) {
			return fmt.Errorf("perfsum: %s: data %q: want a file name beside it", side, ph.Data)
		}
		cmd := exec.Command("perf", "script", "-F", "comm,ip,sym,dso", "-i", filepath.Join(dir, ph.Data))
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("perfsum: perf script: %w", err)
		}
		sum, perr := summarizePerf(ph, out)
		if perr != nil {
			cmd.Process.Kill()
		}
		werr := cmd.Wait()
		if perr != nil {
			return fmt.Errorf("perfsum: %s: %w", ph.Data, perr)
		}
		if werr != nil {
			return fmt.Errorf("perfsum: perf script -i %s: %v: %s", ph.Data, werr, strings.TrimSpace(stderr.String()))
		}
		k := key{ph.Op, ph.Size, ph.Concurrency}
		phases[k] = append(phases[k], sum)
	}
	keys := make([]key, 0, len(phases))
	for k := range phases {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.op != b.op {
			return strings.Compare(a.op, b.op)
		}
		if a.size != b.size {
			return int(b.size - a.size)
		}
		return a.conc - b.conc
	})
	for _, k := range keys {
		writePerfPhase(stdout, phases[k], *top)
	}
	return nil
}

// writePerfPhase prints one phase: a row per category, a column per
// server (CPU-s per GB), categories in the order of the first server's
// cost.
func writePerfPhase(w io.Writer, sums []perfSummary, top int) {
	slices.SortFunc(sums, func(a, b perfSummary) int { return strings.Compare(a.phase.Server, b.phase.Server) })
	// embassy first where it is there.
	slices.SortStableFunc(sums, func(a, b perfSummary) int {
		return boolInt(b.phase.Server == "embassy") - boolInt(a.phase.Server == "embassy")
	})
	ph := sums[0].phase
	fmt.Fprintf(w, "\n%s %s c%d, CPU-s per GB by what perf sampled (user and kernel stacks):\n", ph.Op, formatSize(ph.Size), ph.Concurrency)
	cats := map[string]bool{}
	for _, s := range sums {
		for c := range s.byCat {
			cats[c] = true
		}
	}
	order := make([]string, 0, len(cats))
	for c := range cats {
		order = append(order, c)
	}
	slices.SortFunc(order, func(a, b string) int {
		if d := sums[0].byCat[b] - sums[0].byCat[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	fmt.Fprintf(w, "  %-36s", "")
	for _, s := range sums {
		fmt.Fprintf(w, " %12s", s.phase.Server)
	}
	fmt.Fprintln(w)
	for _, c := range order {
		fmt.Fprintf(w, "  %-36s", c)
		for _, s := range sums {
			fmt.Fprintf(w, " %12.2f", s.cpuPerGB(s.byCat[c]))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  %-36s", "total")
	for _, s := range sums {
		fmt.Fprintf(w, " %12.2f", s.cpuPerGB(s.samples))
	}
	fmt.Fprintln(w)
	if top <= 0 {
		return
	}
	for _, s := range sums {
		type kv struct {
			sym string
			n   int
		}
		var l []kv
		for sym, n := range s.leaves {
			l = append(l, kv{sym, n})
		}
		slices.SortFunc(l, func(a, b kv) int {
			if a.n != b.n {
				return b.n - a.n
			}
			return strings.Compare(a.sym, b.sym)
		})
		fmt.Fprintf(w, "  %s, costliest leaf functions:\n", s.phase.Server)
		for _, e := range l[:min(top, len(l))] {
			sym := e.sym
			if len(sym) > 90 {
				sym = sym[:87] + "..."
			}
			fmt.Fprintf(w, "    %6.3f  %s\n", s.cpuPerGB(e.n), sym)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
