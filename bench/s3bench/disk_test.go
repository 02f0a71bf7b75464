package main

import (
	"bytes"
	"math"
	"strings"
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

// TestCompareDisk: compare prints, for the large GETs whose records hold
// the disk's counters, each server's medians over the runs; nothing for a
// case or server without them, and no table at all when none has them.
func TestCompareDisk(t *testing.T) {
	get := func(server string, d *diskPhase) record {
		return record{Server: server, Op: "get", Size: 64 << 20, Concurrency: 4, Count: 16, MBPerS: 500, Disk: d}
	}
	disk := func(busy, reads, kib, ms float64) *diskPhase {
		return &diskPhase{Device: "vda", Busy: busy, ReadsAvg: reads, KiBPerRead: kib, MsPerRead: ms}
	}
	a := []record{
		get("embassy", disk(0.40, 2.0, 1800, 6.0)),
		get("embassy", disk(0.50, 3.0, 1900, 5.0)),
		get("embassy", disk(0.60, 1.0, 2000, 7.0)),
		{Server: "embassy", Op: "get", Size: 4 << 10, Concurrency: 16, Count: 100, OpsPerS: 100, Disk: disk(0.9, 9, 4, 1)},
	}
	b := []record{
		get("minio", disk(0.30, 0.8, 1400, 3.5)),
		get("minio", nil),
		get("minio", disk(0.50, 1.2, 1500, 4.0)),
		{Server: "minio", Op: "get", Size: 4 << 10, Concurrency: 16, Count: 100, OpsPerS: 400},
	}
	find := compareLines(t, a, b)
	if got, want := find("GET 64MiB c4", 2), "GET 64MiB c4 embassy 50 % 2.00 1900 6.0"; got != want {
		t.Errorf("embassy's disk line:\ngot  %q\nwant %q", got, want)
	}
	if got, want := find("GET 64MiB c4", 3), "GET 64MiB c4 minio 40 % 1.00 1450 3.8"; got != want {
		t.Errorf("minio's disk line (two runs with counters):\ngot  %q\nwant %q", got, want)
	}
	var out bytes.Buffer
	if err := compare(&out, a, b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "GET 4KiB c16 embassy") {
		t.Errorf("a small GET's disk line printed:\n%s", out.String())
	}
	out.Reset()
	for i := range a {
		a[i].Disk = nil
		b[i].Disk = nil
	}
	if err := compare(&out, a, b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "The disk during") {
		t.Errorf("a disk table without counters:\n%s", out.String())
	}
}
