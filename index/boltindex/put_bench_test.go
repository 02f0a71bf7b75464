package boltindex

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkPutNew writes new small versions (random ids, a 350-byte
// envelope each) in transactions of 100, as group commits of concurrent
// puts do, and reports the process's CPU time (user and system, from
// getrusage) per version: the index's share of a small put, which a
// change to putTx must not raise.
//
//	go test -run '^$' -bench PutNew -benchtime 20000x ./index/boltindex/
func BenchmarkPutNew(b *testing.B) {
	ix := openTemp(b)
	vs := smallVersions(b.N + 100)
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	start := cpu()
	for i := 0; i < b.N; i += 100 {
		if err := ix.PutMany(b.Context(), vs[i:i+100]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpu()-start).Microseconds())/float64(b.N), "cpu-µs/version")
}
