package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// auditGoal is issue 12's bound on what the audit log may cost: PUTs with
// the log at no less than this share of the ops/s (MB/s for large objects)
// of the same server without it, measured in the same run.
const auditGoal = 0.90

// compareAudit prints what the audit log costs: a is embassy with its log,
// b a benchmark build of the same source whose engine has none
// (-tags embassy_bench_nolog), measured round by round in the same run
// (bench/s3.sh AUDIT_COST=1). Each case shows both servers' median values,
// every round's a/b ratio, their median and range; PUT cases are judged by
// the median ratio against auditGoal, GET cases (which append nothing) are
// shown only.
func compareAudit(w io.Writer, a, b []record) error {
	nameA, nameB := a[0].Server, b[0].Server
	pairs := pairRuns(a, b)
	rounds := 0
	for _, p := range pairs {
		rounds = max(rounds, len(p.a))
	}
	fmt.Fprintf(w, "Goal (issue 12): the audit log costs PUTs at most %.0f %%: %s (with its log) ≥ %.2fx %s (no log) on every PUT case.\n",
		(1-auditGoal)*100, nameA, auditGoal, nameB)
	if rounds == 1 {
		fmt.Fprintf(w, "1 round: too few to judge by (RUNS=5 or more).\n")
	} else {
		fmt.Fprintf(w, "%d rounds, alternating which server goes first: values are medians; ratio is the median of the per-round ratios, range their lowest and highest.\n", rounds)
	}

	var met, goals int
	fmt.Fprintf(w, "\nThroughput (%s/%s ratio; below 1 the log costs)\n", nameA, nameB)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "case\tmetric\t%s\t%s\tratio\trange\trounds\tper-round ratios\tgoal\t\t\n", nameA, nameB)
	for _, p := range pairs {
		metric := "ops/s"
		if p.key.size >= largeSize {
			metric = "MB/s"
		}
		rs, va, vb := p.ratios(func(r record) (float64, bool) { return throughput(r), true })
		sr, sa, sb := summarize(rs), summarize(va), summarize(vb)
		if sr.N == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t-\t-\t-\t0\t-\t\tno %s result\t\n", p.key, metric, sa.Med, nameB)
			continue
		}
		per := make([]string, len(rs))
		for i, r := range rs {
			per[i] = fmt.Sprintf("%.2f", r)
		}
		goal := "-\t"
		if p.key.op == "put" {
			goals++
			goal = fmt.Sprintf("≥ %.2fx\tMISSED", auditGoal)
			if sr.Med >= auditGoal {
				met++
				goal = fmt.Sprintf("≥ %.2fx\tmet", auditGoal)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.2fx\t%s\t%d\t%s\t%s\t\n", p.key, metric, sa.Med, sb.Med, sr.Med, rangeText(sr), sr.N, strings.Join(per, " "), goal)
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
	fmt.Fprintf(w, "\nServer CPU-seconds per GB moved (10^9 bytes; %s/%s; shown, not judged)\n", nameA, nameB)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "case\t%s\t%s\tratio\trange\t\n", nameA, nameB)
	for _, p := range pairs {
		rs, va, vb := p.ratios(cpuOf)
		sr, sa, sb := summarize(rs), summarize(va), summarize(vb)
		val := func(s spread) string {
			if s.N == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", s.Med)
		}
		ratio := "-"
		if sr.N > 0 {
			ratio = fmt.Sprintf("%.2fx", sr.Med)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", p.key, val(sa), val(sb), ratio, rangeText(sr))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "goals met: %d of %d\n", met, goals)
	return nil
}
