package vault

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/manifest"
)

// BenchmarkLockAndDelete is the engine's cost of a lock change (a legal
// hold placed or lifted, a retention extended) and of a version's
// permanent delete, on a small object (4 KiB, inline: its blocks are in its
// six manifest copies) and a streamed one (2 MiB: two stripes of shard
// blobs, copies of the envelope alone), with the audit log on. Each reads
// every copy's envelope before it decides (newestCopy); a lock change then
// rewrites every copy durably and a delete records its deletion and
// commits. ns/op is the call's time; cpu-ns/op the process's CPU over the
// timed calls (a delete's removal of the blobs runs after it returns and
// is charged to whichever call it overlaps). Compare both between commits
// in the same run (docs/design.md, "Lock changes and deletes read every
// copy: what it costs (issue 15, nineteenth pass)").
//
//	go test -run '^$' -bench LockAndDelete -benchmem ./vault/
func BenchmarkLockAndDelete(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"4KiB", 4 << 10}, {"2MiB", 2 << 20}} {
		for _, op := range []string{"legalhold", "retention", "delete"} {
			b.Run(op+"/"+size.name, func(b *testing.B) { benchLockAndDelete(b, op, size.n) })
		}
	}
}

func benchLockAndDelete(b *testing.B, op string, size int) {
	e := benchEngine(b, benchutil.Root(b))
	ctx := context.Background()
	data := bytes.Repeat([]byte{0x5a}, size)
	const batch = 32
	type version struct {
		key string
		id  manifest.ID
	}
	var vs []version
	put := func() {
		for range batch {
			key := fmt.Sprintf("o/%d", len(vs))
			info, err := e.Put(ctx, "bench", key, bytes.NewReader(data), PutOptions{Size: int64(size)})
			if err != nil {
				b.Fatal(err)
			}
			vs = append(vs, version{key, info.VersionID})
		}
		// The puts' log entries on every site, so that their copies are
		// not charged to the calls timed.
		syncAudit(b, e)
	}
	put()
	until := time.Now().Add(time.Hour)
	b.ReportAllocs()
	var cpu time.Duration
	i := 0
	for b.Loop() {
		if op == "delete" && i == len(vs) {
			b.StopTimer()
			put()
			b.StartTimer()
		}
		v := vs[i%len(vs)]
		cpu0 := benchutil.ProcessCPU()
		var err error
		switch op {
		case "legalhold":
			// Placed in the first round over the versions, lifted in the
			// next.
			_, err = e.SetLegalHold(ctx, "bench", v.key, v.id, i/len(vs)%2 == 0)
		case "retention":
			until = until.Add(time.Second)
			_, err = e.SetRetention(ctx, "bench", v.key, v.id, Governance, until, false)
		case "delete":
			_, err = e.Delete(ctx, "bench", v.key, DeleteOptions{VersionID: v.id})
		}
		cpu += benchutil.ProcessCPU() - cpu0
		if err != nil {
			b.Fatalf("%s of %s: %v", op, v.key, err)
		}
		i++
	}
	b.ReportMetric(float64(cpu)/float64(i), "cpu-ns/op")
}

// BenchmarkNewestCopy is what BenchmarkLockAndDelete's calls spend reading
// the copies' envelopes (newestCopy, on an index as new as the sites: every
// copy holds the index's envelope), alone: a read of each of the six
// copies, in parallel, for a small (inline) and a streamed version.
//
//	go test -run '^$' -bench NewestCopy -benchmem ./vault/
func BenchmarkNewestCopy(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"4KiB", 4 << 10}, {"1MiB", 1 << 20}, {"2MiB", 2 << 20}} {
		b.Run(size.name, func(b *testing.B) {
			e := benchEngine(b, benchutil.Root(b))
			ctx := context.Background()
			info, err := e.Put(ctx, "bench", "o", bytes.NewReader(bytes.Repeat([]byte{0x5a}, size.n)), PutOptions{Size: int64(size.n)})
			if err != nil {
				b.Fatal(err)
			}
			syncAudit(b, e)
			m, env, err := e.resolve(ctx, "bench", "o", info.VersionID)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu0 := benchutil.ProcessCPU()
			i := 0
			for b.Loop() {
				if got, err := e.newestCopy(ctx, m, env); err != nil || got != m {
					b.Fatalf("newestCopy: %v, %v", got, err)
				}
				i++
			}
			b.ReportMetric(float64(benchutil.ProcessCPU()-cpu0)/float64(i), "cpu-ns/op")
		})
	}
}
