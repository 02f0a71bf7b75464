package housekeeping

import (
	"context"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/vault"
)

// Scrubs, drills, index rebuilds, adoptions and collections are recorded
// on the node's audit log with what they found (kinds scrub, drill,
// index.rebuild, index.adopt, gc.collect), once they end.

// record appends the outcome of one run, best effort.
func (k *Keeper) record(ctx context.Context, kind string, report any, err error) {
	ev := audit.Event{Kind: kind, Actor: vault.Actor(ctx), Detail: audit.Details(report)}
	if err != nil {
		ev.Outcome = "failed: " + err.Error()
	}
	k.e.Record(ctx, ev)
}
