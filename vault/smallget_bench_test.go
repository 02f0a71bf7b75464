package vault

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/embassy-dev/embassy/internal/benchutil"
)

// BenchmarkSmallGet is the engine's share of a 4 KiB GET (bench/s3.sh's
// weakest case against MinIO) and of a 1 MiB one: one inline object read
// back whole, from the page cache, with the access decision and every check
// on. Compare B/op, allocs/op and cpu-ns/op (the process's CPU time per GET)
// before and after a change (docs/design.md, Measured); its wall time is
// only comparable within one run.
//
//	go test -run '^$' -bench SmallGet -benchmem ./vault/
func BenchmarkSmallGet(b *testing.B) {
	for _, c := range []struct {
		name string
		size int
	}{{"4KiB", 4096}, {"1MiB", DefaultStripeSize}} {
		b.Run(c.name, func(b *testing.B) { benchSmallGet(b, c.size) })
	}
}

func benchSmallGet(b *testing.B, size int) {
	e := benchEngine(b, benchutil.Root(b))
	ctx := context.Background()
	objects := min(200, (64<<20)/size)
	data := bytes.Repeat([]byte{0x5a}, size)
	for i := range objects {
		if _, err := e.Put(ctx, "bench", fmt.Sprintf("o/%d", i), bytes.NewReader(data), PutOptions{Size: int64(len(data))}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(size))
	cpu0 := benchutil.ProcessCPU()
	i := 0
	for b.Loop() {
		r, err := e.Get(ctx, "bench", fmt.Sprintf("o/%d", i%objects), GetOptions{Length: -1})
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(data)) {
			b.Fatalf("get: %d bytes, %v", n, err)
		}
		r.Close()
		i++
	}
	// CPU time is steadier than wall time on a shared machine.
	b.ReportMetric(float64(benchutil.ProcessCPU()-cpu0)/float64(i), "cpu-ns/op")
}

// BenchmarkInlinePut is the engine's share of a 1 MiB PUT (bench/s3.sh's
// PUT 1MiB c16 case): an object of one full stripe, stored inline in its
// six manifest copies on dir sites. Compare B/op and allocs/op before and
// after a change; its time is mostly the sites' fsyncs.
//
//	go test -run '^$' -bench InlinePut -benchmem ./vault/
func BenchmarkInlinePut(b *testing.B) {
	e := benchEngine(b, benchutil.Root(b))
	ctx := context.Background()
	data := bytes.Repeat([]byte{0x5a}, DefaultStripeSize)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		if _, err := e.Put(ctx, "bench", fmt.Sprintf("o/%d", i), bytes.NewReader(data), PutOptions{Size: int64(len(data))}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
