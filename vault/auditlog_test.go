package vault

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/manifest"
)

// Concurrent puts are each on the audit log exactly once, their entries
// committed with their index writes (nothing waits for a second fsync);
// a delete's deletion record, appended after the put was acknowledged,
// follows the put's entry.
func TestConcurrentPutsAllOnTheLog(t *testing.T) {
	n := newTestNode(t)
	l, ok := n.audit.(*audit.Log)
	if !ok {
		t.Fatalf("the test node's audit log is a %T", n.audit)
	}
	// The engine attached its index to the log: puts commit their
	// entries there.
	if _, err := l.IndexEntry(n.ix, audit.Event{Kind: KindPut}); err != nil {
		t.Fatalf("the log takes no entries from the engine's index: %v", err)
	}
	const writers, each = 8, 12
	ids := make(chan manifest.ID, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("w%d/%d", w, i)
				info, err := n.e.Put(t.Context(), "registry", key, bytes.NewReader(content(key, 10+i)), PutOptions{Size: int64(10 + i)})
				if err != nil {
					t.Error(err)
					return
				}
				ids <- info.VersionID
			}
		})
	}
	wg.Wait()
	close(ids)
	victim := n.put("victim", content("victim", 100))
	if _, err := n.e.Delete(t.Context(), "registry", "victim", DeleteOptions{VersionID: victim.VersionID}); err != nil {
		t.Fatal(err)
	}
	puts := map[manifest.ID]int{}
	var putAt, deleteAt uint64
	err := l.Events(t.Context(), 0, func(i uint64, ev audit.Event) error {
		switch {
		case ev.Kind == KindPut && ev.Outcome == "":
			puts[ev.Version]++
			if ev.Version == victim.VersionID {
				putAt = i
			}
		case ev.Kind == KindDelete && ev.Version == victim.VersionID:
			deleteAt = i
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for id := range ids {
		got++
		if puts[id] != 1 {
			t.Fatalf("version %s is %d times on the log, want once", id, puts[id])
		}
	}
	if got != writers*each {
		t.Fatalf("%d puts acknowledged, want %d", got, writers*each)
	}
	if deleteAt <= putAt {
		t.Fatalf("the deletion record is entry %d, the put it deletes entry %d: want it after", deleteAt, putAt)
	}
}
