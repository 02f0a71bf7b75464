package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
)

// Keeper returns the node's housekeeping (scrub, repair, garbage
// collection, drills, index rebuilds) over its current engine; nil while
// the node is sealed (it has no engine then).
func (n *Node) Keeper() *housekeeping.Keeper {
	if n.Engine == nil {
		return nil
	}
	k := housekeeping.New(n.Engine, n.Log)
	if n.Dir != "" {
		k.WithRebuildDir(housekeeping.RebuildTempDir(n.Dir))
	}
	return k
}

// SelectSites resolves a selector ("site=ID", "provider=NAME",
// "jurisdiction=CODE", "control=CODE", comma-separated) to site ids.
func (n *Node) SelectSites(spec string) ([]string, error) {
	var descs []site.Descriptor
	for _, s := range n.conf().Sites {
		descs = append(descs, s.Descriptor)
	}
	m, err := housekeeping.LostSites(spec, descs)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// ErrDrainBlocked: draining these sites would leave some vault unable to
// keep its policy. The error names the vaults; add sites or change their
// policies first.
var ErrDrainBlocked = errors.New("drain refused")

// DrainReport is a drain's outcome.
type DrainReport struct {
	Sites     []string                 `json:"sites"`
	Scrub     housekeeping.ScrubReport `json:"scrub"`
	Remaining map[string]int           `json:"remaining_blobs"` // shard and manifest blobs still on each drained site
	// Passes is how many scrub passes the drain took (writes placed
	// before the drain began and committed during it need another).
	Passes int `json:"passes"`
}

// Drain moves every shard off the sites: they are marked draining (new
// writes avoid them), then a repairing scrub moves their shards, each
// version switching to a conforming placement in one step. It is
// resumable: run it again after a crash and it carries on.
func (n *Node) Drain(ctx context.Context, ids []string, progress func(housekeeping.ScrubReport)) (DrainReport, error) {
	if err := n.Ready(); err != nil {
		return DrainReport{}, err
	}
	return n.drain(ctx, ids, progress, nil)
}

// DrainAt is Drain with its reads held to rate bytes per second (0: no
// limit).
func (n *Node) DrainAt(ctx context.Context, ids []string, rate int64, progress func(housekeeping.ScrubReport)) (DrainReport, error) {
	if err := n.Ready(); err != nil {
		return DrainReport{}, err
	}
	return n.drain(ctx, ids, progress, func() int64 { return rate })
}

// drain is Drain, its reads held to rate (bytes per second, asked at each
// read) when it is set.
func (n *Node) drain(ctx context.Context, ids []string, progress func(housekeeping.ScrubReport), rate func() int64) (DrainReport, error) {
	rep := DrainReport{Sites: ids}
	if err := n.markDraining(ctx, ids); err != nil {
		return rep, err
	}
	// A write whose sites were chosen just before the sites were marked
	// can commit after the scrub has passed its version: a few more
	// passes move what such writes left.
	for pass := 1; ; pass++ {
		var err error
		rep.Scrub, err = n.Keeper().Scrub(ctx, housekeeping.ScrubOptions{Repair: true, Progress: progress, RateNow: rate, Grace: n.conf().Scrub.GraceOr()})
		if err != nil {
			return rep, err
		}
		rep.Passes = pass
		rep.Remaining = map[string]int{}
		left := false
		for _, id := range ids {
			rep.Remaining[id] = n.blobsOn(ctx, id)
			left = left || rep.Remaining[id] > 0
		}
		if !left || pass == maxDrainPasses || rep.Scrub.Unrepairables() > 0 {
			return rep, nil
		}
	}
}

// maxDrainPasses bounds the scrub passes of one drain.
const maxDrainPasses = 3

// markDraining marks sites draining, in node.yaml and in the running
// engine: every write placed after it returns avoids them. It refuses,
// naming the vaults, when the remaining sites (less those not answering
// now) could not keep every policy.
func (n *Node) markDraining(ctx context.Context, ids []string) error {
	drain := map[string]bool{}
	for _, id := range ids {
		drain[id] = true
	}
	for _, s := range n.conf().Sites {
		if s.Draining {
			drain[s.ID] = true
		}
	}
	// Sites that do not answer now cannot take shards either.
	unreachable := n.Engine.Unreachable(ctx)
	var blocked []string
	for _, v := range n.Engine.Vaults() {
		var cands []placement.Candidate
		for _, s := range n.Engine.Sites() {
			if !drain[s.ID] && !unreachable[s.ID] {
				cands = append(cands, placement.Candidate{Descriptor: s.Descriptor, Rank: s.Rank})
			}
		}
		if err := placement.Feasible(v.Policy, cands); err != nil {
			blocked = append(blocked, fmt.Sprintf("vault %s: %v", v.Name, err))
		}
	}
	if len(blocked) > 0 {
		down := ""
		if len(unreachable) > 0 {
			var ids []string
			for id := range unreachable {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			down = " (not answering now: " + strings.Join(ids, ", ") + ")"
		}
		return fmt.Errorf("%w: the remaining sites%s cannot keep every policy: %s", ErrDrainBlocked, down, strings.Join(blocked, "; "))
	}
	n.mu.Lock()
	c := *n.Config
	c.Sites = slices.Clone(c.Sites)
	for i := range c.Sites {
		if drain[c.Sites[i].ID] {
			c.Sites[i].Draining = true
		}
	}
	err := n.saveConfig(&c)
	if err == nil {
		n.setConfig(&c)
	}
	if err != nil {
		n.mu.Unlock()
		return err
	}
	var all []string
	for id := range drain {
		all = append(all, id)
	}
	n.Engine.SetDraining(all)
	n.mu.Unlock()
	return nil
}

func (n *Node) blobsOn(ctx context.Context, id string) int {
	for _, s := range n.Engine.Sites() {
		if s.ID != id {
			continue
		}
		count := 0
		for _, prefix := range []string{manifest.ShardPrefix, manifest.ManifestPrefix} {
			if err := s.Store.List(ctx, prefix, func(site.Info) error { count++; return nil }); err != nil {
				return -1 // cannot tell: the site does not answer
			}
		}
		return count
	}
	return -1
}

// runScrubs scrubs everything every interval until ctx is done.
func (n *Node) runScrubs(ctx context.Context) {
	every := 24 * time.Hour
	if i := n.conf().Scrub.Interval; i != nil {
		every = time.Duration(*i)
	}
	if every <= 0 {
		return
	}
	rate := int64(50 << 20)
	if r := n.conf().Scrub.Rate; r != "" {
		if v, err := ParseSize(r); err == nil {
			rate = int64(v)
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.Ready() != nil {
			continue
		}
		// The background scrub is a job like any other: listed, followed
		// and cancelled with 'embassy job', kept in jobs.json.
		repair, deep := !n.conf().Scrub.ReportOnly, n.conf().Scrub.DeepOr()
		params := map[string]string{"background": "true", "repair": fmt.Sprint(repair)}
		if deep {
			params["deep"] = "true"
		}
		var rep housekeeping.ScrubReport
		j, err := n.StartRatedJob("scrub", params, "(background)", rate,
			func(jctx context.Context, progress func(done, total int64), rate func() int64) (any, error) {
				total := n.versionsTotal(jctx)
				var err error
				rep, err = n.Keeper().Scrub(jctx, housekeeping.ScrubOptions{Repair: repair, Deep: deep, RateNow: rate, Grace: n.conf().Scrub.GraceOr(),
					Progress: func(r housekeeping.ScrubReport) { progress(int64(r.Versions), total) }})
				return rep, err
			})
		if err != nil {
			n.Log.Error("background scrub not started", "err", err)
			continue
		}
		if j, err = n.WaitJob(ctx, j.ID); err != nil {
			return
		}
		if j.State != JobDone {
			n.Log.Error("background scrub failed", "job", j.ID, "state", j.State, "err", j.Error)
			continue
		}
		n.Log.Info("background scrub done", "job", j.ID, "versions", rep.Versions, "at_risk", rep.AtRisk, "repaired", rep.Repaired,
			"unrepairable", rep.Unrepairables(), "bytes_repaired", rep.BytesRepaired)
	}
}
