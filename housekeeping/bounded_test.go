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
// the log against the index and the sites holding its per-version state
// in a temporary on-disk database, 256 versions a transaction. With 32,768
// versions in the log that no site or index holds (each a problem, of
// which 1,000 are listed), the heap it needs stays under 8 MiB: measured
// 2.0 MiB at 8,192 entries and 4.7 MiB at 131,072, but 11.9 MiB at
// 999,424, over the bound (docs/design.md, the audit log table: it grows
// far slower than the log, but grows). EMBASSY_AUDIT_ENTRIES=N sets the
// number of entries.
func TestVerifyLogBoundedMemory(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	const batch = 1024
	entries := 1 << 15
	if s := os.Getenv("EMBASSY_AUDIT_ENTRIES"); s != "" {
		var err error
		if entries, err = strconv.Atoi(s); err != nil || entries < batch {
			t.Fatalf("EMBASSY_AUDIT_ENTRIES=%q", s)
		}
		entries -= entries % batch
	}
	evs := make([]audit.Event, batch)
	var last uint64
	start := time.Now()
	for i := 0; i < entries; i += batch {
		for j := range evs {
			evs[j] = audit.Event{Kind: vault.KindPut, Actor: "admin", Vault: "registry", Key: fmt.Sprintf("k/%07d", i+j), Version: manifest.NewID()}
		}
		var err error
		if last, err = n.audit.Append(ctx, evs...); err != nil {
			t.Fatal(err)
		}
	}
	// What is measured is the verification, not the log integrating and
	// copying what was just appended.
	var ids []string
	for _, s := range topology {
		ids = append(ids, s.ID)
	}
	// Ten minutes, and two milliseconds an entry for a large log on a
	// loaded machine (six copies).
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute+time.Duration(entries)*2*time.Millisecond)
	defer cancel()
	if err := n.audit.Sync(sctx, last+1, ids); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d entries appended, integrated and copied to %d sites in %s", entries, len(ids), time.Since(start).Round(time.Second))
	var rep LogAudit
	var err error
	start = time.Now()
	peak, _ := benchutil.HeapPeak(func() { rep, err = n.k.VerifyLog(ctx, t.TempDir()) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("VerifyLog over %d entries took %s", rep.Entries, time.Since(start).Round(time.Second))
	if rep.Versions < entries || rep.ProblemCount < entries || len(rep.Problems) != MaxListed {
		t.Fatalf("verify: %d versions, %d problems (%d listed)", rep.Versions, rep.ProblemCount, len(rep.Problems))
	}
	t.Logf("VerifyLog over %d entries: heap peak %.1f MiB above what was in use before", rep.Entries, float64(peak)/(1<<20))
	if peak > 8<<20 {
		t.Fatalf("VerifyLog over %d entries took %d bytes of heap", rep.Entries, peak)
	}
}
