package main

import (
	"math"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/internal/benchutil"
)

func TestDiskDelta(t *testing.T) {
	a := benchutil.DiskStat{Reads: 100, ReadSectors: 1000, ReadMs: 50, WriteSectors: 10, BusyMs: 100, WeightedMs: 200}
	// Two seconds: 400 reads of 2048 sectors (1 MiB each), 3,000 ms of
	// read time, 1,000 ms busy, 4,000 ms weighted.
	b := benchutil.DiskStat{Reads: 500, ReadSectors: 1000 + 400*2048, ReadMs: 3050, WriteSectors: 20, BusyMs: 1100, WeightedMs: 4200}
	d, err := diskDelta("vda", a, b, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if d.ReadBytes != 400<<20 || d.WriteBytes != 5120 {
		t.Errorf("bytes read %d written %d, want %d and 5120", d.ReadBytes, d.WriteBytes, 400<<20)
	}
	near("busy", d.Busy, 0.5)
	near("reads in flight", d.ReadsAvg, 1.5)
	near("queue depth", d.QueueAvg, 2.0)
	near("KiB a read", d.KiBPerRead, 1024)
	near("ms a read", d.MsPerRead, 7.5)
	if _, err := diskDelta("vda", b, a, 2*time.Second); err == nil {
		t.Error("counters going backwards: no error")
	}
	if _, err := diskDelta("vda", a, b, 0); err == nil {
		t.Error("a phase of no time: no error")
	}
}
