package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/node"
)

// versionProgress draws progress over the node's versions.
func (a *app) versionProgress(ctx context.Context, n *node.Node, label string) (*progress, func(housekeeping.ScrubReport)) {
	st, _ := n.Index.Stats(ctx)
	p := a.startProgress(&progress{label: label, total: st.Versions, count: true, start: time.Now()})
	return p, func(r housekeeping.ScrubReport) { p.set(int64(r.Versions)) }
}

func printScrub(a *app, r housekeeping.ScrubReport) {
	fmt.Fprintf(a.stdout, "scrubbed %d versions (%s) in %.1fs, read %s\n", r.Versions, human(r.Bytes), r.DurationSeconds, human(r.BytesRead))
	fmt.Fprintf(a.stdout, "  shards: corrupt %d, missing %d, misplaced %d; manifest copies: missing %d, damaged %d, stale %d\n", r.CorruptShards, r.MissingShards, r.MisplacedShards, r.MissingCopies, r.DamagedCopies, r.StaleCopies)
	fmt.Fprintf(a.stdout, "  degraded %d (readable, repairable), lost %d (unreadable)\n", r.Degraded, r.Lost)
	if r.Unreachable > 0 {
		fmt.Fprintf(a.stdout, "  unreachable %d (unreadable now: sites holding their shards do not answer; not lost)\n", r.Unreachable)
	}
	fmt.Fprintf(a.stdout, "  repaired %d (%s written, %d shards moved), still at risk %d\n", r.Repaired, human(r.BytesRepaired), r.ShardsMoved, r.RemainingAtRisk)
	for _, l := range r.LostVersions {
		fmt.Fprintf(a.stdout, "  LOST: %s\n", safeText(l))
	}
	if r.Lost > len(r.LostVersions) {
		fmt.Fprintf(a.stdout, "  LOST: … and %d more\n", r.Lost-len(r.LostVersions))
	}
	for _, u := range r.Unrepairable {
		fmt.Fprintf(a.stdout, "  UNREPAIRABLE: %s\n", safeText(u))
	}
	if r.UnrepairableNotListed > 0 {
		fmt.Fprintf(a.stdout, "  UNREPAIRABLE: … and %d more\n", r.UnrepairableNotListed)
	}
	if c := r.Collection; c != nil {
		if c.Refused != "" {
			fmt.Fprintf(a.stdout, "  garbage collection REFUSED: %s\n", c.Refused)
		} else {
			fmt.Fprintf(a.stdout, "  garbage collection: removed %d blobs under the node's records, %d abandoned writes recorded, %d versions adopted into the index, %d kept unindexed\n", c.Removed, c.Abandoned, c.Adopted, c.Unindexed)
			if c.Legacy > 0 {
				fmt.Fprintf(a.stdout, "  %d of them were written before deletions were recorded: take each in with 'embassy index adopt' if it should be there\n", c.Legacy)
			}
			for _, u := range c.UnindexedVersions {
				fmt.Fprintf(a.stdout, "  unindexed: %s\n", safeText(u))
			}
		}
		for _, s := range c.SkippedSites {
			fmt.Fprintf(a.stdout, "  not collected on site %s\n", s)
		}
		for _, e := range c.Errors {
			fmt.Fprintf(a.stdout, "  collection error: %s\n", safeText(e))
		}
		if c.ErrorsNotListed > 0 {
			fmt.Fprintf(a.stdout, "  collection error: … and %d more\n", c.ErrorsNotListed)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(a.stdout, "  error: %s\n", safeText(e))
	}
	if r.ErrorsNotListed > 0 {
		fmt.Fprintf(a.stdout, "  error: … and %d more\n", r.ErrorsNotListed)
	}
}

// scrubFailure is the error a scrub ends with: something is lost, could
// not be repaired, or (repairing) garbage collection was refused.
func scrubFailure(r housekeeping.ScrubReport, repair bool) error {
	switch {
	case r.Lost > 0:
		hint := "bring back unreachable or unmounted sites, then scrub again; the versions are named above"
		// Collection refused an index older than the sites: a version
		// deleted since the index was current is still in it, and its
		// blobs are gone.
		if repair && r.Collection != nil && r.Collection.Reason == housekeeping.RefusedIndexBehind {
			hint = "the index is older than the sites (restored from a backup?), so versions deleted since it was current are listed as lost: run 'embassy index rebuild', then scrub again; the versions are named above"
		}
		return withHint(fmt.Errorf("%d versions are lost (fewer than k intact shards, or no verified manifest)", r.Lost), hint)
	case r.Unreachable > 0:
		return withHint(fmt.Errorf("%d versions cannot be read now: sites holding their shards do not answer (named above; not lost)", r.Unreachable), "bring back unreachable or unmounted sites, then scrub again")
	case repair && r.Unrepairables() > 0:
		return withHint(fmt.Errorf("%d versions could not be repaired", r.Unrepairables()), "add sites that can keep the policies, or bring unreachable sites back, then scrub again")
	case repair && r.Collection != nil && r.Collection.Refused != "":
		return withHint(fmt.Errorf("garbage collection refused: %s", r.Collection.Refused), "run 'embassy index rebuild', then 'embassy scrub --repair' again")
	}
	return nil
}

func (a *app) scrubCmd() *cobra.Command {
	var repair, deep bool
	var vaults []string
	var rate string
	c := &cobra.Command{
		Use:   "scrub",
		Short: "Verify every shard and placement; with --repair rebuild what is missing, corrupt or misplaced",
		Long: `Read every shard block of every version and check its checksum, check every
manifest copy, and check each placement against its vault's current policy.
With --repair, rebuild missing and corrupt shards from the others and move
misplaced ones (or those on draining sites) to sites that keep the policy. A
running node does this in the background (scrub.interval in node.yaml).
With --deep, also read every part whose checksums are good as a repair does:
each stripe authenticated, each parity block compared with the data coded
again. It finds blocks replaced together with valid checksums (the checksums
have no key), which the checksums alone cannot (scrub.deep in node.yaml for
the background scrub).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.node != "" {
				return a.remoteScrub(cmd, node.ScrubRequest{Repair: repair, Deep: deep, Vaults: vaults, Rate: rate})
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			o := housekeeping.ScrubOptions{Repair: repair, Deep: deep, Vaults: vaults, Grace: n.Config.Scrub.GraceOr()}
			if rate != "" {
				r, err := node.ParseSize(rate)
				if err != nil {
					return fmt.Errorf("--rate: %w", err)
				}
				o.Rate = int64(r)
			}
			p, f := a.versionProgress(cmd.Context(), n, "scrub")
			o.Progress = f
			r, err := n.Keeper().Scrub(cmd.Context(), o)
			p.finish()
			if err != nil {
				return err
			}
			return a.printScrubResult(r, repair)
		},
	}
	c.Flags().BoolVar(&repair, "repair", false, "rebuild and move shards as needed")
	c.Flags().BoolVar(&deep, "deep", false, "also authenticate every stripe and check every parity block against the data coded again (finds blocks replaced along with valid checksums; reads each part twice)")
	c.Flags().StringArrayVar(&vaults, "vault", nil, "only these vaults (repeatable)")
	c.Flags().StringVar(&rate, "rate", "", "limit reads, e.g. 50MiB (per second)")
	detachFlag(c)
	return c
}

func (a *app) siteDrainCmd() *cobra.Command {
	var provider, jurisdiction, rate string
	c := &cobra.Command{
		Use:   "drain [SITE] [--provider NAME] [--jurisdiction CODE]",
		Short: "Move every shard off a site, a provider or a jurisdiction (provider exit)",
		Long: `Drain sites: new writes avoid them at once, and every shard on them moves to
other sites, each object switching to a placement that keeps its policy in one
step, so every object keeps its policy at every moment. Refused, naming the
vaults, when the remaining sites cannot keep every policy. Resumable: run it
again after an interruption. Afterwards the site can be removed.

--rate holds the drain's reads to a rate (50MiB: per second), so that it does
not starve S3 clients; on a running node 'embassy job rate ID RATE' changes
it while the drain runs.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var sel []string
			if len(args) == 1 {
				sel = append(sel, "site="+args[0])
			}
			if provider != "" {
				sel = append(sel, "provider="+provider)
			}
			if jurisdiction != "" {
				sel = append(sel, "jurisdiction="+jurisdiction)
			}
			if len(sel) == 0 {
				return fmt.Errorf("name a site, --provider or --jurisdiction to drain")
			}
			var limit int64
			if rate != "" {
				r, err := node.ParseSize(rate)
				if err != nil {
					return fmt.Errorf("--rate: %w", err)
				}
				limit = int64(r)
			}
			if a.node != "" {
				return a.remoteDrain(cmd, node.DrainRequest{Sites: strings.Join(sel, ","), Rate: rate})
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			ids, err := n.SelectSites(strings.Join(sel, ","))
			if err != nil {
				return err
			}
			start := time.Now()
			p, f := a.versionProgress(cmd.Context(), n, "drain "+strings.Join(ids, ","))
			rep, err := n.DrainAt(cmd.Context(), ids, limit, f)
			p.finish()
			if err != nil {
				return withHint(err, "add sites that can take the shards, or change the blocking vaults' policies")
			}
			return a.printDrain(ids, rep, time.Since(start))
		},
	}
	c.Flags().StringVar(&provider, "provider", "", "drain every site of this provider")
	c.Flags().StringVar(&jurisdiction, "jurisdiction", "", "drain every site in this jurisdiction")
	c.Flags().StringVar(&rate, "rate", "", "limit reads, e.g. 50MiB (per second); 'embassy job rate' changes it while it runs")
	detachFlag(c)
	return c
}

func (a *app) drillCmd() *cobra.Command {
	var lose string
	var sample int
	var vaults []string
	c := &cobra.Command{
		Use:   "drill --lose jurisdiction=EST[,provider=NAME,site=ID,control=CODE]",
		Short: "Rehearse a loss: read everything from the surviving sites only and report RPO, RTO and broken policies",
		Long: `Rehearse the loss of sites, providers, jurisdictions or controlling
jurisdictions without destroying anything: every object (or --sample of them)
is read using only the surviving sites. The report says what would be lost
(RPO, in objects and bytes; it should be none), how long a full restore would
take at the read rate measured (RTO), and which vault policies could no longer
be kept on the surviving sites.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.node != "" {
				return a.remoteDrill(cmd, node.DrillRequest{Lose: lose, Sample: sample, Vaults: vaults})
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			ids, err := n.SelectSites(lose)
			if err != nil {
				return err
			}
			lost := map[string]bool{}
			for _, id := range ids {
				lost[id] = true
			}
			update, finish := a.versionCounter("drill")
			rep, err := n.Keeper().Drill(cmd.Context(), housekeeping.DrillOptions{Lost: lost, Sample: sample, Vaults: vaults, Progress: update})
			finish()
			if err != nil {
				return err
			}
			return a.printDrill(lose, rep)
		},
	}
	c.Flags().StringVar(&lose, "lose", "", "what is lost: site=ID, provider=NAME, jurisdiction=CODE, control=CODE (comma-separated)")
	c.Flags().IntVar(&sample, "sample", 0, "read only this many versions at random (the rest are judged by placement)")
	c.Flags().StringArrayVar(&vaults, "vault", nil, "only these vaults (repeatable)")
	c.MarkFlagRequired("lose")
	detachFlag(c)
	return c
}

// drainLeftovers says why a drain run again may still not empty a site:
// collection removes a blob only under a record, and the blobs of writes
// or moves a crash cut short only once they are older than the grace
// period; an object-locked site keeps every blob until its retention ends.
const drainLeftovers = "blobs of writes or moves cut short go once older than scrub.grace, 1h by default; on an object-locked site, once retention ends"

// printDrain prints a drain's report, offline or from a job.
func (a *app) printDrain(ids []string, rep node.DrainReport, elapsed time.Duration) error {
	if a.json {
		if err := a.printJSON(rep); err != nil {
			return err
		}
		if n := rep.Scrub.Unrepairables(); n > 0 {
			return fmt.Errorf("%d versions could not be moved", n)
		}
		return nil
	}
	printScrub(a, rep.Scrub)
	for _, id := range ids {
		left := rep.Remaining[id]
		state := "empty: it can be removed ('embassy site rm " + id + "')"
		switch {
		case left < 0:
			state = "does not answer: cannot tell whether it is empty"
		case left != 0:
			state = fmt.Sprintf("%d blobs remain: run the drain again (%s)", left, drainLeftovers)
		}
		fmt.Fprintf(a.stdout, "site %s: %s\n", id, state)
	}
	fmt.Fprintf(a.stdout, "drained in %s\n", elapsed.Round(time.Millisecond))
	if n := rep.Scrub.Unrepairables(); n > 0 {
		return fmt.Errorf("%d versions could not be moved", n)
	}
	return nil
}

// printDrill prints a drill's report, offline or from a job.
func (a *app) printDrill(lose string, rep housekeeping.DrillReport) error {
	if a.json {
		return a.printJSON(rep)
	}
	fmt.Fprintf(a.stdout, "drill: lose %s (sites %s)\n\n", lose, strings.Join(rep.LostSites, ", "))
	w := a.table()
	fmt.Fprintln(w, "VAULT\tOBJECTS\tBYTES\tLOST\tLOST BYTES\tDEGRADED\tPOLICY AFTER LOSS")
	for _, v := range rep.Vaults {
		pol := "kept"
		if !v.PolicyKept {
			pol = "VIOLATED"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\t%d\t%s\n", v.Vault, v.Objects, human(v.Bytes), v.LostObjects, human(v.LostBytes), v.Degraded, pol)
	}
	w.Flush()
	fmt.Fprintf(a.stdout, "\nRPO: %d objects, %s would be lost\n", rep.RPOObjects, human(rep.RPOBytes))
	fmt.Fprintf(a.stdout, "RTO: %.1fs to read everything back at the measured %s/s (%d versions, %s read)\n", rep.RTOSeconds, human(int64(rep.ReadRate)), rep.Read, human(rep.ReadBytes))
	for _, v := range rep.Vaults {
		for _, l := range v.Lost {
			fmt.Fprintf(a.stdout, "  LOST: %s\n", safeText(v.Vault+"/"+l))
		}
	}
	for _, b := range rep.PoliciesBroke {
		fmt.Fprintf(a.stdout, "  policy could not be kept: %s\n", safeText(b))
	}
	return nil
}

// printScrubResult prints a scrub's report, offline or from a job, and
// returns the error it ends with.
func (a *app) printScrubResult(r housekeeping.ScrubReport, repair bool) error {
	if a.json {
		if err := a.printJSON(r); err != nil {
			return err
		}
		return scrubFailure(r, repair)
	}
	printScrub(a, r)
	if r.Degraded > 0 && !repair {
		fmt.Fprintln(a.stdout, "run 'embassy scrub --repair' to restore full redundancy")
	}
	return scrubFailure(r, repair)
}
