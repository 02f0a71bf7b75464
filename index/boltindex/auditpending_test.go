package boltindex

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

// An audit log entry carried by a write is stored in the write's own
// transaction: committed with it, gone with a refused one, kept across a
// reopening and a Reset (a rebuild), and removed only by DrainedAudit.
func TestAuditEntriesCommittedWithWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	ix, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ix.AuditWatermark(t.Context()); ok || err != nil {
		t.Fatalf("a new index has a watermark (%v, %v)", ok, err)
	}
	put := func(i int, cond index.Precondition) error {
		v := index.Version{Vault: "v-1", Key: "k", ID: manifest.ID{byte(i), 1}, Created: int64(i), ETag: fmt.Sprint(i), Audit: []byte(fmt.Sprint("entry ", i))}
		if cond.IsZero() {
			return ix.Put(t.Context(), v)
		}
		return ix.PutIf(t.Context(), v, cond)
	}
	if err := put(1, index.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if err := put(2, index.Precondition{IfNoneMatch: "*"}); !errors.Is(err, index.ErrPreconditionFailed) {
		t.Fatalf("refused write: %v", err)
	}
	if err := put(3, index.Precondition{IfMatch: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := ix.Put(t.Context(), index.Version{Vault: "v-1", Key: "plain", ID: manifest.ID{9}, Created: 9}); err != nil {
		t.Fatal(err)
	}
	pending := func(after uint64) string {
		t.Helper()
		keys, entries, err := ix.PendingAudit(t.Context(), after, 10)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for i := range keys {
			s = append(s, fmt.Sprintf("%d:%s", keys[i], entries[i]))
		}
		return fmt.Sprint(s)
	}
	if got, want := pending(0), "[1:entry 1 2:entry 3]"; got != want {
		t.Fatalf("pending entries %s, want %s (the refused write's left out)", got, want)
	}
	if got, want := pending(1), "[2:entry 3]"; got != want {
		t.Fatalf("pending entries after key 1: %s, want %s", got, want)
	}
	if err := ix.Reset(t.Context()); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	if ix, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if got, want := pending(0), "[1:entry 1 2:entry 3]"; got != want {
		t.Fatalf("after a reset and a reopening: %s, want %s", got, want)
	}
	if err := ix.DrainedAudit(t.Context(), 1, 17); err != nil {
		t.Fatal(err)
	}
	if got, want := pending(0), "[2:entry 3]"; got != want {
		t.Fatalf("after draining key 1: %s, want %s", got, want)
	}
	if w, ok, err := ix.AuditWatermark(t.Context()); w != 17 || !ok || err != nil {
		t.Fatalf("watermark %d (%v, %v), want 17", w, ok, err)
	}
	// Keys go on increasing after a drain: the order is the commit order.
	if err := put(4, index.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if got, want := pending(0), "[2:entry 3 3:entry 4]"; got != want {
		t.Fatalf("after another write: %s, want %s", got, want)
	}
}
