package boltindex

import (
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/index"
)

// TestStaleMark: the stale mark keeps its kind with its reason until
// SetGenerations (a rebuild) clears both; a mark from before marks had
// kinds (the reason alone) reads as StaleBehind, what it meant then.
func TestStaleMark(t *testing.T) {
	ctx := t.Context()
	ix := openTemp(t)
	stale := func(wantKind index.StaleKind, wantReason string) {
		t.Helper()
		kind, reason, err := ix.Stale(ctx)
		if err != nil || kind != wantKind || reason != wantReason {
			t.Fatalf("Stale = %q, %q, %v; want %q, %q", kind, reason, err, wantKind, wantReason)
		}
	}
	stale("", "")
	for _, kind := range []index.StaleKind{index.StaleIncomplete, index.StaleBehind} {
		if err := ix.MarkStale(ctx, kind, "why "+string(kind)); err != nil {
			t.Fatal(err)
		}
		stale(kind, "why "+string(kind))
		if err := ix.SetGenerations(ctx, map[string]uint64{"registry": 1}); err != nil {
			t.Fatal(err)
		}
		stale("", "")
	}
	// A mark as an older node wrote it.
	if err := ix.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyStale, []byte("the index is older than the sites (then)"))
	}); err != nil {
		t.Fatal(err)
	}
	stale(index.StaleBehind, "the index is older than the sites (then)")
}
