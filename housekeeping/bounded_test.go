package housekeeping

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// TestVerifyLogBoundedMemory: the second half of 'audit verify' replays
// the log against the index and the sites, holding its per-version state
// in a temporary on-disk hash table (statefile.go). With versions in the
// log that no site or index holds (each a problem, of which 1,000 are
// listed), it verifies the log at half its length and again at its full
// length: the heap it needs stays under 8 MiB (the peak of the heap's
// object bytes above what was in use before, garbage not yet swept
// included), and the live heap at the full length is at most 1 MiB above
// the live heap at half (doubling the log must not double anything kept
// per entry: 64 bytes an entry at the default 32,768 would fail it).
// EMBASSY_AUDIT_ENTRIES=N sets the number of entries.
//
// The state was a bbolt file before, and its heap grew with the log: 2.0
// MiB at 8,192 entries, 4.7 MiB at 131,072, 11.9 MiB at 999,424. Each
// transaction of 256 random 16-byte keys held a node and a page buffer for
// every leaf and branch page it touched, more as the tree grew (205 pages
// a transaction at 32,768 versions, 391 at a million), and bbolt's
// freelist keeps an entry for every page it has handed out again. See
// docs/design.md, "The audit log: growth and verification", for the
// figures after the change.
func TestVerifyLogBoundedMemory(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	const batch = 1024
	entries := 1 << 15
	if s := os.Getenv("EMBASSY_AUDIT_ENTRIES"); s != "" {
		var err error
		if entries, err = strconv.Atoi(s); err != nil || entries < 2*batch {
			t.Fatalf("EMBASSY_AUDIT_ENTRIES=%q", s)
		}
		entries -= entries % (2 * batch)
	}
	var ids []string
	for _, s := range topology {
		ids = append(ids, s.ID)
	}
	// Ten minutes, and two milliseconds an entry for a large log on a
	// loaded machine (six copies).
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute+time.Duration(entries)*2*time.Millisecond)
	defer cancel()
	evs := make([]audit.Event, batch)
	appended := 0
	grow := func(to int) {
		start := time.Now()
		var last uint64
		for ; appended < to; appended += batch {
			for j := range evs {
				evs[j] = audit.Event{Kind: vault.KindPut, Actor: "admin", Vault: "registry", Key: fmt.Sprintf("k/%07d", appended+j), Version: manifest.NewID()}
			}
			var err error
			if last, err = n.audit.Append(ctx, evs...); err != nil {
				t.Fatal(err)
			}
		}
		// What is measured is the verification, not the log integrating
		// and copying what was just appended.
		if err := n.audit.Sync(sctx, last+1, ids); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d entries appended, integrated and copied to %d sites in %s", to, len(ids), time.Since(start).Round(time.Second))
	}
	verify := func() benchutil.HeapUse {
		var rep LogAudit
		var err error
		u := benchutil.MeasureHeap(func() { rep, err = n.k.VerifyLog(ctx, t.TempDir()) })
		if err != nil {
			t.Fatal(err)
		}
		if rep.Entries < uint64(appended) || rep.Versions < appended || rep.ProblemCount < appended || len(rep.Problems) != MaxListed {
			t.Fatalf("verify of %d entries: %d entries, %d versions, %d problems (%d listed)", appended, rep.Entries, rep.Versions, rep.ProblemCount, len(rep.Problems))
		}
		t.Logf("VerifyLog over %d entries: %s, heap peak %.2f MiB, live %.2f MiB above the %.2f MiB in use before (%d collections)",
			rep.Entries, u.Took.Round(time.Second), mib(u.Peak), mib(u.Live), mib(u.Base), u.GCs)
		if u.Peak > 8<<20 {
			t.Errorf("VerifyLog over %d entries took %d bytes of heap, over 8 MiB", rep.Entries, u.Peak)
		}
		return u
	}
	// The live heap is the whole process's: the log's own background
	// work (integrating, copying tiles to the sites) adds to it now and
	// then, more on a loaded machine. What VerifyLog holds per entry is
	// there in every run, so each size is measured twice and the lesser
	// live heap compared.
	leastLive := func() uint64 { return min(verify().Live, verify().Live) }
	grow(entries / 2)
	half := leastLive()
	grow(entries)
	full := leastLive()
	if full > half+1<<20 {
		t.Errorf("VerifyLog's live heap grew with the log: %.2f MiB at %d entries, %.2f MiB at %d (the lesser of two runs each)", mib(half), entries/2, mib(full), entries)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
