package site_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/embassy-dev/embassy/internal/benchutil"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
)

// BenchmarkGuardedGet is the guard's share of a ranged read: a 4 KiB Get
// of a shard blob on a dir site, from the page cache, read and closed,
// through site.Guard. Compare cpu-ns/op, B/op and allocs/op of two builds
// (docs/design.md, "Site reads held to their length (eighteenth pass)").
//
//	go test -run '^$' -bench GuardedGet -benchmem ./site/
func BenchmarkGuardedGet(b *testing.B) {
	ds, err := dir.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte{0x5a}, 64<<10)
	if err := ds.Put(ctx, "s/ab/blob", bytes.NewReader(data), int64(len(data))); err != nil {
		b.Fatal(err)
	}
	g := site.Guard("est-1", ds, func(context.Context) error { return nil })
	buf := make([]byte, 4<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	cpu0 := benchutil.ProcessCPU()
	i := 0
	for b.Loop() {
		rc, err := g.Get(ctx, "s/ab/blob", int64(i%16)*4<<10, int64(len(buf)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
		i++
	}
	b.ReportMetric(float64(benchutil.ProcessCPU()-cpu0)/float64(i), "cpu-ns/op")
}
