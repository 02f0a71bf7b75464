package audit

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
)

func dirBytes(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestVerifyInBoundedMemory builds a log of typical object.put entries
// through the log API, copied to one directory site, and measures what an
// entry costs on the node and on a site, and the heap that checking the
// site's copy (every entry read and hashed, every tile recomputed:
// CheckCopies, what 'audit verify' does first) and reading every event
// (what its replay does) take above what was in use before. Both stream:
// the heap they need does not grow with the log's length, and is asserted
// under 8 MiB. By default 32,768 entries; EMBASSY_AUDIT_ENTRIES=1000000
// builds the million (a few minutes, about 1.3 GB on disk).
func TestVerifyInBoundedMemory(t *testing.T) {
	n := 1 << 15
	if s := os.Getenv("EMBASSY_AUDIT_ENTRIES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("EMBASSY_AUDIT_ENTRIES=%q", s)
		}
	} else if testing.Short() {
		n = 1 << 12
	}
	k := testKeys(t)
	root := t.TempDir()
	sp := filepath.Join(root, "site")
	ds, err := dir.New(sp)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, k, filepath.Join(root, "node"), map[string]site.Site{"a": ds})
	l := openLog(t, cfg)
	defer closeLog(t, l)
	ctx := t.Context()

	const batch = 1024
	evs := make([]Event, batch)
	var last uint64
	for i := 0; i < n; i += batch {
		m := min(batch, n-i)
		for j := range m {
			evs[j] = Event{Kind: "object.put", Actor: "admin", Vault: "registry", Key: fmt.Sprintf("2026/minutes/%07d.txt", i+j),
				Version: manifest.NewID(), Detail: map[string]string{"etag": `"f996671180e25a465941aae7fa3625fa"`, "parts": "1", "size": "1234"}}
		}
		if last, err = l.Append(ctx, evs[:m]...); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	if err := l.Sync(sctx, last+1, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	node := dirBytes(t, filepath.Join(cfg.Dir, "tlog"))
	siteB := dirBytes(t, filepath.Join(sp, "log"))
	t.Logf("%d entries: node audit/tlog %d bytes (%.0f B/entry), site log/ %d bytes (%.0f B/entry)", n, node, float64(node)/float64(n), siteB, float64(siteB)/float64(n))

	var rep LogCheck
	cu := benchutil.MeasureHeap(func() {
		if rep, err = l.CheckCopies(sctx); err != nil {
			t.Error(err)
		}
	})
	if len(rep.Copies) != 1 || rep.Copies[0].Problem != "" || rep.Copies[0].Size != uint64(n) || len(rep.Problems) != 0 {
		t.Fatalf("check of the copy: %+v", rep)
	}
	peak := cu.Peak
	t.Logf("CheckCopies over %d entries: heap peak %.2f MiB, live %.2f MiB above the %.2f MiB in use before (%d GCs, %s)", n, mb(cu.Peak), mb(cu.Live), mb(cu.Base), cu.GCs, cu.Took.Round(time.Millisecond))
	count := 0
	ru := benchutil.MeasureHeap(func() {
		if err := l.Events(sctx, 0, func(uint64, Event) error { count++; return nil }); err != nil {
			t.Error(err)
		}
	})
	if count != n {
		t.Fatalf("read %d events of %d", count, n)
	}
	rpeak := ru.Peak
	t.Logf("reading every event: heap peak %.2f MiB, live %.2f MiB above the %.2f MiB in use before (%d GCs, %s)", mb(ru.Peak), mb(ru.Live), mb(ru.Base), ru.GCs, ru.Took.Round(time.Millisecond))
	const bound = 8 << 20
	if peak > bound || rpeak > bound {
		t.Fatalf("verifying %d entries took %d and %d bytes of heap, over %d", n, peak, rpeak, bound)
	}
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }
