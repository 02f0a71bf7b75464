package boltindex

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// The positions of deleted versions are kept for PositionTTL, then
// dropped by later deletions, so that they cost bounded space.
func TestPositionsExpire(t *testing.T) {
	ix := openTemp(t)
	ctx := t.Context()
	old, fresh := manifest.ID{1}, manifest.ID{2}
	inv := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	err := ix.update(func(tx *bolt.Tx) error {
		return keepPosition(tx, "v", "k", inv, old, time.Now().Add(-PositionTTL-time.Minute))
	})
	if err != nil {
		t.Fatal(err)
	}
	count := func() (n int, oldKept bool) {
		ix.db.View(func(tx *bolt.Tx) error {
			n = tx.Bucket(bucketGone).Stats().KeyN
			oldKept = position(tx, "v", old) != nil
			return nil
		})
		return
	}
	if n, kept := count(); n != 2 || !kept {
		t.Fatalf("after keeping one position: %d records, old kept %v; want 2, true", n, kept)
	}
	// A deletion now drops the expired position and keeps its own.
	if err := ix.Put(ctx, index.Version{Vault: "v", Key: "k", ID: fresh, Created: 5, Envelope: []byte("e")}); err != nil {
		t.Fatal(err)
	}
	if err := ix.Delete(ctx, "v", "k", fresh); err != nil {
		t.Fatal(err)
	}
	if n, kept := count(); n != 2 || kept {
		t.Fatalf("after a later deletion: %d records, expired kept %v; want 2, false", n, kept)
	}
	ix.db.View(func(tx *bolt.Tx) error {
		if position(tx, "v", fresh) == nil {
			t.Errorf("the fresh deletion's position is not kept")
		}
		return nil
	})
}
