package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/formats/log"

	"github.com/embassy-dev/embassy/site"
)

// CopyCheck is what was found of one site's copy of the log.
type CopyCheck struct {
	Site string `json:"site"`
	// Size is the number of entries the site's checkpoint covers.
	Size uint64 `json:"size"`
	// Problem says what is wrong with the copy ("" when it verifies).
	Problem string `json:"problem,omitempty"`
	// Behind is how many entries the node holds that the copy lacks yet.
	Behind uint64 `json:"behind"`
}

// LogCheck is what CheckCopies found.
type LogCheck struct {
	Origin string `json:"origin"`
	// Appended, Integrated and Checkpoint are the node's own counts: what
	// is durable in its journal, in its Merkle tree, and covered by its
	// latest signed checkpoint.
	Appended   uint64      `json:"appended"`
	Integrated uint64      `json:"integrated"`
	Checkpoint uint64      `json:"checkpoint"`
	Copies     []CopyCheck `json:"copies"`
	// CopyInterval is the time between copies to the sites that nothing
	// urges (audit.copy_interval), and CopyWindow the longest a new entry
	// waits for a checkpoint covering it on every site that answers, but
	// for the copy's own time ([Log.CopyWindow]): the window a copy
	// behind is within.
	CopyInterval string `json:"copy_interval"`
	CopyWindow   string `json:"copy_window"`
	// Problems are what tampering or damage looks like; Window is what is
	// only not done yet (copies behind, checkpoints not yet cosigned).
	Problems []string `json:"problems"`
	Window   []string `json:"window"`
}

// CheckCopies checks every site's copy of the log: its checkpoint is
// signed by the node, it is a prefix of the node's own log (no split view,
// no fork), and its tiles and entry bundles make up the tree its checkpoint
// commits to (every entry read and hashed, every tile recomputed). Copies
// behind the node's checkpoint are the asynchronous window, not a problem.
func (l *Log) CheckCopies(ctx context.Context) (LogCheck, error) {
	if err := l.drain(ctx); err != nil {
		return LogCheck{}, err
	}
	rep := LogCheck{Origin: l.cfg.Origin, Appended: l.appended(), Integrated: l.Integrated(), Copies: []CopyCheck{}, Problems: []string{}, Window: []string{},
		CopyInterval: l.CopyInterval().String(), CopyWindow: l.CopyWindow().String()}
	_, cp, err := l.Checkpoint(ctx)
	if err != nil {
		return rep, fmt.Errorf("the node's own checkpoint: %w", err)
	}
	rep.Checkpoint = cp.Size
	if rep.Appended > rep.Integrated {
		rep.Window = append(rep.Window, fmt.Sprintf("%d entries appended are not yet in the Merkle tree", rep.Appended-rep.Integrated))
	}
	if rep.Integrated > cp.Size {
		rep.Window = append(rep.Window, fmt.Sprintf("%d entries in the tree are not yet under a signed checkpoint", rep.Integrated-cp.Size))
	}
	// Copies are checked against the node's tree, which may be ahead of
	// its latest checkpoint: one is published up to a checkpoint interval
	// after integration, and a log just restored has none yet. The tree's
	// root comes from the node's own tiles, as its checkpoint's does.
	ref := cp
	if rep.Integrated > cp.Size {
		root, err := l.localRoot(ctx, rep.Integrated)
		if err != nil {
			return rep, fmt.Errorf("the node's own tree at %d entries: %w", rep.Integrated, err)
		}
		ref = &log.Checkpoint{Origin: cp.Origin, Size: rep.Integrated, Hash: root}
	}
	var sites map[string]site.Site
	if l.cfg.Sites != nil {
		sites = l.cfg.Sites()
	}
	for _, c := range SiteCopies(ctx, sites, l.cfg.Origin, l.cfg.Verifiers) {
		cc := CopyCheck{Site: c.Site, Size: c.Size}
		switch {
		case errors.Is(c.Err, site.ErrNotFound):
			if cp.Size > 0 {
				rep.Window = append(rep.Window, fmt.Sprintf("site %s holds no copy of the log yet", c.Site))
			}
			cc.Behind = cp.Size
		case errors.Is(c.Err, site.ErrUnavailable):
			cc.Problem = "unavailable: " + c.Err.Error()
			rep.Window = append(rep.Window, fmt.Sprintf("site %s could not be read: %v", c.Site, c.Err))
		case c.Err != nil:
			cc.Problem = "its checkpoint does not verify: " + c.Err.Error()
			rep.Problems = append(rep.Problems, fmt.Sprintf("site %s: the log's checkpoint does not verify with the node's key (replaced or damaged): %v", c.Site, c.Err))
		default:
			if err := l.consistent(ctx, c.cp, ref); err != nil {
				cc.Problem = "not a prefix of the node's log: " + err.Error()
				rep.Problems = append(rep.Problems, fmt.Sprintf("site %s: its checkpoint (%d entries) is not consistent with the node's log (%d entries): a split view or a fork (%v)", c.Site, c.Size, ref.Size, err))
				break
			}
			if _, err := VerifyTree(ctx, SiteFetcher{c.s}, c.Size, c.cp.Hash, 0, nil); err != nil {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				cc.Problem = err.Error()
				rep.Problems = append(rep.Problems, fmt.Sprintf("site %s: its copy of the log does not match its checkpoint: %v", c.Site, err))
				break
			}
			if c.Size < cp.Size {
				cc.Behind = cp.Size - c.Size
				rep.Window = append(rep.Window, fmt.Sprintf("site %s: %d entries not copied yet", c.Site, cc.Behind))
			}
		}
		rep.Copies = append(rep.Copies, cc)
	}
	return rep, nil
}
