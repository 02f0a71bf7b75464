package node

import (
	"context"

	"github.com/embassy-dev/embassy/index/boltindex"
)

// indexMigrateBatch bounds the records one step of the index migration
// rewrites in one write transaction.
const indexMigrateBatch = 500

// runIndexMigration runs, once the node is unsealed and if the index asks
// for it, the index's migration as a background job ("index-migrate"):
// records of index format 3 are rewritten compact and manifest envelopes
// of format 1 are sealed again in format 2 (boltindex.MigrateRecords,
// vault.Engine.Reseal), in small steps while the node serves. The index
// asks after an upgrade from format 3 and after taking in envelopes of an
// older format (a rebuild from sites an older node wrote). A migration cut
// short (the node stopped) runs again at the next start; nothing is lost
// meanwhile, as both formats read.
func (n *Node) runIndexMigration(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-n.readyChan():
	}
	if _, err := n.StartIndexMigration(); err != nil {
		n.Log.Error("index migration not started", "err", err)
	}
}

// StartIndexMigration starts the index migration as a job if the index
// asks for one, and returns it (a zero Job when the index does not ask).
func (n *Node) StartIndexMigration() (Job, error) {
	if err := n.Ready(); err != nil {
		return Job{}, err
	}
	ix, e := n.Index, n.Engine
	if ix == nil || e == nil || !ix.NeedsMigration() {
		return Job{}, nil
	}
	return n.StartJob("index-migrate", map[string]string{"background": "true"}, "(background)",
		func(jctx context.Context, progress func(done, total int64)) (any, error) {
			total := 2 * n.versionsTotal(jctx) // a latest and a version record at most
			st, err := ix.MigrateRecords(jctx, indexMigrateBatch, e.Reseal, func(st boltindex.MigrateStats) {
				progress(int64(st.Examined), total)
			})
			if err == nil {
				n.Log.Info("index migrated", "records", st.Examined, "rewritten", st.Rewritten, "resealed", st.Resealed)
			}
			return st, err
		})
}
