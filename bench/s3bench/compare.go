package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// largeSize is where a case stops being judged by operations per second and
// starts being judged by bandwidth.
const largeSize = 8 << 20

// cpuGoal is the most CPU-seconds per gigabyte written the first server may
// spend on large puts.
const cpuGoal = 1.0

type caseKey struct {
	op   string
	size int64
	conc int
}

func (k caseKey) String() string {
	return fmt.Sprintf("%s %s c%d", strings.ToUpper(k.op), formatSize(k.size), k.conc)
}

func compareCmd(args []string, stdout io.Writer) error {
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
	var out []record
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var r record
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if r.Op != "put" && r.Op != "get" {
			return nil, fmt.Errorf("line %d: op %q is neither put nor get", n, r.Op)
		}
		if r.Server == "" {
			return nil, fmt.Errorf("line %d: no server name", n)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no records")
	}
	return out, nil
}

// compare prints a's results beside b's, case by case in a's order, with
// a/b ratios and the goals a is held to.
func compare(w io.Writer, a, b []record) error {
	nameA, nameB := a[0].Server, b[0].Server
	byKey := map[caseKey]record{}
	for _, r := range b {
		byKey[caseKey{r.Op, r.Size, r.Concurrency}] = r
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

	fmt.Fprintf(w, "Throughput (%s/%s ratio; higher is better for %s)\n", nameA, nameB, nameA)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "case\tmetric\t%s\t%s\tratio\tgoal\t\t\n", nameA, nameB)
	for _, ra := range a {
		k := caseKey{ra.Op, ra.Size, ra.Concurrency}
		rb, ok := byKey[k]
		metric, va, vb := "ops/s", ra.OpsPerS, rb.OpsPerS
		if ra.Size >= largeSize {
			metric, va, vb = "MB/s", ra.MBPerS, rb.MBPerS
		}
		goal, status := "", ""
		if ra.Size >= largeSize || ra.Op == "put" {
			goal = "≥ 1.00x"
		}
		switch {
		case !ok:
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t-\t-\t%s\tno %s result\t\n", k, metric, va, goal, nameB)
			continue
		case goal != "":
			status = judge(vb > 0 && va/vb >= 1.0)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%s\t%s\t%s\t\n", k, metric, va, vb, ratio(va, vb), goal, status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nServer CPU-seconds per GB moved (10^9 bytes; lower is better)\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "case\t%s\t%s\tratio\tgoal (%s)\t\t\n", nameA, nameB, nameA)
	var cpuSum, gbSum float64
	for _, ra := range a {
		k := caseKey{ra.Op, ra.Size, ra.Concurrency}
		rb := byKey[k]
		goal, status := "", ""
		if ra.Op == "put" && ra.Size >= largeSize && ra.CPUPerGB != nil {
			goal = fmt.Sprintf("≤ %.1f", cpuGoal)
			status = judge(*ra.CPUPerGB <= cpuGoal)
			cpuSum += *ra.CPUSeconds
			gbSum += float64(ra.Bytes) / 1e9
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", k, opt(ra.CPUPerGB), opt(rb.CPUPerGB), ratioOpt(ra.CPUPerGB, rb.CPUPerGB), goal, status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if gbSum > 0 {
		fmt.Fprintf(w, "\n%s CPU-s per GB written (large puts): %.2f (goal ≤ %.1f)\n", nameA, cpuSum/gbSum, cpuGoal)
	}
	fmt.Fprintf(w, "goals met: %d of %d\n", met, goals)
	return nil
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func opt(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *v)
}

func ratioOpt(a, b *float64) string {
	if a == nil || b == nil {
		return "-"
	}
	return ratio(*a, *b)
}
