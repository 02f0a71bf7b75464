package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"

	"github.com/embassy-dev/embassy/internal/benchutil"
)

// BenchmarkSequencing measures how many entries a second reach the tree
// through the sequencer (one tessera appender per chunk size, a chunk
// awaited before the next), against the reference measured in the same
// round: the loop it replaced (one appender cutting at 1024 entries or
// 1ms, every entry of a round added before any is awaited), and tessera
// cutting every entry alone (batch size 1, the other way to keep every cut
// in the caller). Rounds of 20 entries are what a node under moderate
// load gathers in BatchDelay; 255 was the sequencer's worst case while it
// cut a run as its binary decomposition (eight chunks; one since the
// eleventh pass); 1024, a backlog. Each case runs on a fresh POSIX log in
// benchutil.Root; a round is one run of each, the order rotating.
func BenchmarkSequencing(b *testing.B) {
	k := testKeys(b)
	origin := Origin("0123456789abcdef")
	signer, _, err := k.CheckpointSigners(origin)
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	quietTessera()
	// open makes a POSIX log and an appenderFunc over it, as Open does
	// (the first appender publishes).
	open := func(b *testing.B) (appenderFunc, func()) {
		drv, err := posix.New(ctx, posix.Config{Path: filepath.Join(benchutil.Root(b), "tlog")})
		if err != nil {
			b.Fatal(err)
		}
		actx, cancel := context.WithCancel(ctx)
		first := true
		return func(maxSize uint, maxAge time.Duration) (tessera.AddFn, error) {
			opts := tessera.NewAppendOptions().WithBatching(maxSize, maxAge).WithPushback(8192)
			if first {
				opts = opts.WithCheckpointSigner(signer).WithCheckpointInterval(200 * time.Millisecond)
			} else {
				opts = opts.WithCheckpointSigner(noPublisher{origin}).WithCheckpointInterval(never).
					WithCheckpointRepublishInterval(0).WithGarbageCollectionInterval(0)
			}
			first = false
			app, _, _, err := tessera.NewAppender(actx, drv, opts)
			if err != nil {
				return nil, err
			}
			return app.Add, nil
		}, cancel
	}
	run := func(b *testing.B, how string, total, round int) float64 {
		mk, stop := open(b)
		defer stop()
		var seq func(first uint64, es [][]byte) error
		switch how {
		case "sequencer":
			s, err := newSequencer(mk)
			if err != nil {
				b.Fatal(err)
			}
			seq = func(first uint64, es [][]byte) error { return s.sequence(ctx, first, es, nil) }
		case "reference":
			add, err := mk(1024, time.Millisecond)
			if err != nil {
				b.Fatal(err)
			}
			seq = func(first uint64, es [][]byte) error { return feedAsBefore(ctx, add, first, es) }
		case "size 1":
			add, err := mk(1, never)
			if err != nil {
				b.Fatal(err)
			}
			seq = func(first uint64, es [][]byte) error { return feedAsBefore(ctx, add, first, es) }
		}
		start := time.Now()
		for next := 0; next < total; next += round {
			es := fakeEntries(next, min(round, total-next))
			for i := range es {
				es[i] = append(es[i], make([]byte, 300-len(es[i]))...) // an entry's typical size
			}
			if err := seq(uint64(next), es); err != nil {
				b.Fatal(err)
			}
		}
		return float64(total) / time.Since(start).Seconds()
	}
	for _, round := range []int{20, 255, 1024} {
		b.Run(fmt.Sprintf("round=%d", round), func(b *testing.B) {
			total := 4096
			if round == 20 {
				total = 1000
			}
			hows := []string{"reference", "sequencer", "size 1"}
			for b.Loop() {
				var seqR, oneR []float64
				for r := range 3 {
					got := map[string]float64{}
					for i := range hows {
						how := hows[(i+r)%len(hows)]
						n := total
						if how == "size 1" {
							n = min(total, 300) // several ms an entry
						}
						got[how] = run(b, how, n, round)
					}
					seqR, oneR = append(seqR, got["sequencer"]/got["reference"]), append(oneR, got["size 1"]/got["reference"])
					fmt.Printf("round=%d r%d: reference %.0f entries/s, sequencer %.0f (%.2f), size 1 %.0f (%.3f)\n",
						round, r, got["reference"], got["sequencer"], seqR[r], got["size 1"], oneR[r])
				}
				s, o := benchutil.Summarize(seqR), benchutil.Summarize(oneR)
				b.ReportMetric(s.Med, "sequencer/reference")
				b.ReportMetric(o.Med, "size1/reference")
				fmt.Printf("round=%d: sequencer/reference median %.2f (%.2f–%.2f), size 1/reference median %.3f (%.3f–%.3f)\n",
					round, s.Med, s.Min, s.Max, o.Med, o.Min, o.Max)
			}
		})
	}
}
