// Package housekeeping owns the node's care of what it has stored: scrub
// (verify every shard block and manifest copy), repair (rebuild and move
// shards so every version keeps its policy), garbage collection, drills
// (what would a loss cost?) and index rebuilds from the sites.
//
// It sits above the object engine (package vault) and uses only the small
// set of primitives the engine exports for it (vault/maintenance.go):
// verify a shard, relocate a version's shards, restore manifest copies,
// open envelopes. The engine carries out each step with its own commit
// order; this package decides what to check, where shards should go and
// what may be removed. The rules for removing anything live here, in one
// place (gc.go), and follow DESIGN.md invariant 10: a blob is removed only
// when the node can show it is garbage.
package housekeeping

import (
	"cmp"
	"log/slog"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/vault"
)

// Keeper runs housekeeping over one engine and its index.
type Keeper struct {
	e   *vault.Engine
	ix  index.Index
	log *slog.Logger
	// rebuildDir is where index rebuilds keep their scratch files ("":
	// a new temporary directory each time).
	rebuildDir string
}

// WithRebuildDir sets the directory for index rebuilds' scratch files
// (RebuildTempDir of the node directory) and returns k.
func (k *Keeper) WithRebuildDir(dir string) *Keeper {
	k.rebuildDir = dir
	return k
}

// New returns a Keeper for e.
func New(e *vault.Engine, log *slog.Logger) *Keeper {
	return &Keeper{e: e, ix: e.Index(), log: cmp.Or(log, slog.New(slog.DiscardHandler))}
}
