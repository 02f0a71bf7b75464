package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/embassy-dev/embassy/internal/stats"
)

// largeSize is where a case stops being judged by operations per second and
// starts being judged by bandwidth.
const largeSize = 8 << 20

// The goals of issue 15, which the first server (embassy) is held to
// against the second (MinIO) measured in the same run:
//   - every case, PUT and GET, at least speedGoal times the second's
//     throughput (MB/s for large objects, ops/s for the others);
//   - every PUT case at no more CPU-seconds per GB than the second
//     (cpuGoal, a ratio).
//
// With several runs, each case is judged by the median of its per-run
// ratios.
const (
	speedGoal = 1.2
	// speedBeyond is the goal after this one, printed for reference.
	speedBeyond = 1.5
	cpuGoal     = 1.0
)

type caseKey struct {
	op   string
	size int64
	conc int
}

func (k caseKey) String() string {
	return fmt.Sprintf("%s %s c%d", strings.ToUpper(k.op), formatSize(k.size), k.conc)
}

func compareCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	auditCost := fs.Bool("audit-cost", false, "the two files are embassy with its audit log and without it (bench/s3.sh AUDIT_COST=1): judge PUTs by issue 12's goal")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("compare: %w\n%s", err, usage)
	}
	args = fs.Args()
	if len(args) != 2 {
		return fmt.Errorf("compare: want two files, got %d\n%s", len(args), usage)
	}
	a, err := readRecords(args[0])
	if err != nil {
		return err
	}
	b, err := readRecords(args[1])
	if err != nil {
		return err
	}
	if *auditCost {
		return compareAudit(stdout, a, b)
	}
	return compare(stdout, a, b)
}

func readRecords(path string) ([]record, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	recs, err := parseRecords(raw)
	if err != nil {
		return nil, fmt.Errorf("compare: %s: %w", path, err)
	}
	return recs, nil
}

// parseRecords reads JSON lines written by run; blank lines are skipped.
func parseRecords(raw []byte) ([]record, error) {
	return parseLines(raw, "records", func(r *record) error {
		if r.Op != "put" && r.Op != "get" {
			return fmt.Errorf("op %q is neither put nor get", r.Op)
		}
		if r.Server == "" {
			return errors.New("no server name")
		}
		return nil
	})
}

// parseLines reads JSON lines, one T each, skipping blank lines; check
// refuses a line that decoded but is not a T (its error gets the line's
// number). No line at all is an error naming what (the plural) is missing.
func parseLines[T any](raw []byte, what string, check func(*T) error) ([]T, error) {
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if err := check(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no " + what)
	}
	return out, nil
}

// spread is the median of a set of values and their range.
type spread = stats.Spread

// summarize returns the median and the range of xs (stats.Summarize).
var summarize = stats.Summarize

// rangeText is "0.91–1.10x", or "-" for fewer than two values.
func rangeText(s spread) string {
	if s.N < 2 {
		return "-"
	}
	return fmt.Sprintf("%.2f–%.2fx", s.Min, s.Max)
}

// pairing holds one case's records of both servers, run by run: the i-th
// record of a case in one file is paired with the i-th in the other (a
// run of bench/s3.sh appends one record per case and phase to each).
type pairing struct {
	key  caseKey
	a, b []record
}

// pairRuns groups records by case, in the order of a's first appearance.
func pairRuns(a, b []record) []*pairing {
	var out []*pairing
	byKey := map[caseKey]*pairing{}
	for _, r := range a {
		k := caseKey{r.Op, r.Size, r.Concurrency}
		p := byKey[k]
		if p == nil {
			p = &pairing{key: k}
			byKey[k] = p
			out = append(out, p)
		}
		p.a = append(p.a, r)
	}
	for _, r := range b {
		if p := byKey[caseKey{r.Op, r.Size, r.Concurrency}]; p != nil {
			p.b = append(p.b, r)
		}
	}
	return out
}

// throughput is the figure a case is judged by.
func throughput(r record) float64 {
	if r.Size >= largeSize {
		return r.MBPerS
	}
	return r.OpsPerS
}

// ratios returns the per-run ratios f(a)/f(b) of the runs both servers
// have a value for, and the values of each server on their own.
func (p *pairing) ratios(f func(record) (float64, bool)) (ratios, va, vb []float64) {
	for i, r := range p.a {
		x, okA := f(r)
		if okA {
			va = append(va, x)
		}
		if i >= len(p.b) {
			continue
		}
		y, okB := f(p.b[i])
		if okB {
			vb = append(vb, y)
		}
		if okA && okB && y > 0 {
			ratios = append(ratios, x/y)
		}
	}
	for _, r := range p.b[min(len(p.a), len(p.b)):] {
		if y, ok := f(r); ok {
			vb = append(vb, y)
		}
	}
	return ratios, va, vb
}

// compare prints a's results beside b's, case by case in a's order: the
// median of each server's values, the median of the per-run a/b ratios and
// their range, and the goals a is held to.
func compare(w io.Writer, a, b []record) error {
	nameA, nameB := a[0].Server, b[0].Server
	pairs := pairRuns(a, b)
	runs := 0
	for _, p := range pairs {
		runs = max(runs, len(p.a))
	}

	var met, goals int
	judge := func(ok bool) string {
		goals++
		if ok {
			met++
			return "met"
		}
		return "MISSED"
	}
	value := func(s spread) string {
		if s.N == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", s.Med)
	}

	fmt.Fprintf(w, "Goals (issue 15): every case ≥ %.2fx %s (%.2fx beyond it); every PUT at ≤ %.2fx %s's CPU-seconds per GB.\n",
		speedGoal, nameB, speedBeyond, cpuGoal, nameB)
	if runs > 1 {
		fmt.Fprintf(w, "%d runs: values and ratios are medians; range is the lowest and highest per-run ratio.\n", runs)
	}
	fmt.Fprintf(w, "\nThroughput (%s/%s ratio; higher is better for %s)\n", nameA, nameB, nameA)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "case\tmetric\t%s\t%s\tratio\trange\truns\tgoal\t\t\n", nameA, nameB)
	for _, p := range pairs {
		metric := "ops/s"
		if p.key.size >= largeSize {
			metric = "MB/s"
		}
		rs, va, vb := p.ratios(func(r record) (float64, bool) { return throughput(r), true })
		sr, sa, sb := summarize(rs), summarize(va), summarize(vb)
		goal := fmt.Sprintf("≥ %.2fx", speedGoal)
		if sr.N == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t0\t%s\tno %s result\t\n", p.key, metric, value(sa), goal, nameB)
			continue
		}
		status := judge(sr.Med >= speedGoal)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2fx\t%s\t%d\t%s\t%s\t\n", p.key, metric, value(sa), value(sb), sr.Med, rangeText(sr), sr.N, goal, status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	cpuOf := func(r record) (float64, bool) {
		if r.CPUPerGB == nil {
			return 0, false
		}
		return *r.CPUPerGB, true
	}
	fmt.Fprintf(w, "\nServer CPU-seconds per GB moved (10^9 bytes; lower is better)\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "case\t%s\t%s\tratio\trange\tgoal\t\t\n", nameA, nameB)
	var cpuA, gbA, cpuB, gbB float64
	for _, p := range pairs {
		rs, va, vb := p.ratios(cpuOf)
		sr := summarize(rs)
		valA, valB := "-", "-"
		if s := summarize(va); s.N > 0 {
			valA = fmt.Sprintf("%.2f", s.Med)
		}
		if s := summarize(vb); s.N > 0 {
			valB = fmt.Sprintf("%.2f", s.Med)
		}
		ratio, goal, status := "-", "", ""
		if sr.N > 0 {
			ratio = fmt.Sprintf("%.2fx", sr.Med)
		}
		if p.key.op == "put" {
			goal = fmt.Sprintf("≤ %.2fx", cpuGoal)
			if sr.N > 0 {
				status = judge(sr.Med <= cpuGoal)
			}
			if p.key.size >= largeSize {
				for _, r := range p.a {
					if r.CPUSeconds != nil {
						cpuA += *r.CPUSeconds
						gbA += float64(r.Bytes) / 1e9
					}
				}
				for _, r := range p.b {
					if r.CPUSeconds != nil {
						cpuB += *r.CPUSeconds
						gbB += float64(r.Bytes) / 1e9
					}
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", p.key, valA, valB, ratio, rangeText(sr), goal, status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if gbA > 0 && gbB > 0 {
		fmt.Fprintf(w, "\nCPU-s per GB written (large puts, all runs): %s %.2f, %s %.2f, ratio %.2fx (goal ≤ %.2fx)\n",
			nameA, cpuA/gbA, nameB, cpuB/gbB, (cpuA/gbA)/(cpuB/gbB), cpuGoal)
	}
	if err := diskTable(w, pairs, nameA, nameB); err != nil {
		return err
	}
	fmt.Fprintf(w, "goals met: %d of %d\n", met, goals)
	return nil
}

// diskTable prints, for each large GET case whose records hold the disk's
// counters (s3bench run -disk-of), the medians over its runs of each
// server's disk busy share, reads in flight, and size and time of a read:
// whether a large GET kept the disk busy, and how deep and how big its
// reads were. Nothing when no record holds them.
func diskTable(w io.Writer, pairs []*pairing, nameA, nameB string) error {
	med := func(rs []record, f func(*diskPhase) float64) (float64, bool) {
		var xs []float64
		for _, r := range rs {
			if r.Disk != nil {
				xs = append(xs, f(r.Disk))
			}
		}
		s := summarize(xs)
		return s.Med, s.N > 0
	}
	cols := []struct {
		format string
		f      func(*diskPhase) float64
	}{
		{"%.0f %%", func(d *diskPhase) float64 { return 100 * d.Busy }},
		{"%.2f", func(d *diskPhase) float64 { return d.ReadsAvg }},
		{"%.0f", func(d *diskPhase) float64 { return d.KiBPerRead }},
		{"%.1f", func(d *diskPhase) float64 { return d.MsPerRead }},
	}
	var tw *tabwriter.Writer
	for _, p := range pairs {
		if p.key.op != "get" || p.key.size < largeSize {
			continue
		}
		for _, side := range []struct {
			name string
			rs   []record
		}{{nameA, p.a}, {nameB, p.b}} {
			if _, ok := med(side.rs, cols[0].f); !ok {
				continue
			}
			if tw == nil {
				fmt.Fprintf(w, "\nThe disk during large GETs (medians over the runs; the whole device's counters)\n")
				tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
				fmt.Fprintf(tw, "case\tserver\tbusy\treads in flight\tKiB a read\tms a read\t\n")
			}
			fmt.Fprintf(tw, "%s\t%s", p.key, side.name)
			for _, c := range cols {
				v, _ := med(side.rs, c.f)
				fmt.Fprintf(tw, "\t"+c.format, v)
			}
			fmt.Fprintf(tw, "\t\n")
		}
	}
	if tw == nil {
		return nil
	}
	return tw.Flush()
}
