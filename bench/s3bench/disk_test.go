package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

const diskstatsSample = `   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 254       0 vda 10994355 616579 1759963682 20191157 268442247 11272201 3973849352 159820249 0 20343124 202714884 36874820 25117 2543786096 11119895 40927810 11583581
 254       1 vda1 100 0 800 10 0 0 0 0 0 10 10
`

func TestParseDiskStats(t *testing.T) {
	c, err := parseDiskStats([]byte(diskstatsSample), "vda")
	if err != nil {
		t.Fatal(err)
	}
	want := diskCounters{reads: 10994355, sectorsRead: 1759963682, readMs: 20191157, writes: 268442247, sectorsWrite: 3973849352, busyMs: 20343124, weightedMs: 202714884}
	if c != want {
		t.Errorf("vda: got %+v, want %+v", c, want)
	}
	// A partition's line (11 fields on older kernels) is found by its own name.
	if c, err := parseDiskStats([]byte(diskstatsSample), "vda1"); err != nil || c.reads != 100 || c.sectorsRead != 800 {
		t.Errorf("vda1: got %+v, %v", c, err)
	}
	if _, err := parseDiskStats([]byte(diskstatsSample), "sdz"); err == nil || !strings.Contains(err.Error(), "sdz") {
		t.Errorf("missing device: err %v, want one naming it", err)
	}
	bad := strings.Replace(diskstatsSample, "1759963682", "17x", 1)
	if _, err := parseDiskStats([]byte(bad), "vda"); err == nil || !strings.Contains(err.Error(), "17x") {
		t.Errorf("bad field: err %v, want one quoting it", err)
	}
}

func TestDiskDelta(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := diskCounters{at: t0, reads: 100, sectorsRead: 1000, readMs: 50, sectorsWrite: 10, busyMs: 100, weightedMs: 200}
	// Two seconds: 400 reads of 2048 sectors (1 MiB each), 3,000 ms of
	// read time, 1,000 ms busy, 4,000 ms weighted.
	b := diskCounters{at: t0.Add(2 * time.Second), reads: 500, sectorsRead: 1000 + 400*2048, readMs: 3050, sectorsWrite: 20, busyMs: 1100, weightedMs: 4200}
	d, err := diskDelta("vda", a, b)
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
	if _, err := diskDelta("vda", b, a); err == nil {
		t.Error("counters going backwards: no error")
	}
}
