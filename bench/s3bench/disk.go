package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// diskCounters are a block device's counters from /proc/diskstats (the
// kernel's Documentation/admin-guide/iostats.rst, fields 1 to 11 after the
// device's name), taken at one instant.
type diskCounters struct {
	at           time.Time
	reads        uint64 // reads completed
	sectorsRead  uint64 // 512-byte sectors read
	readMs       uint64 // milliseconds spent by all reads (from queueing to completion)
	writes       uint64
	sectorsWrite uint64
	busyMs       uint64 // milliseconds with at least one request in flight
	weightedMs   uint64 // milliseconds spent by all requests, summed
}

// diskStats reads dev's line of /proc/diskstats.
func diskStats(dev string) (diskCounters, error) {
	raw, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return diskCounters{}, err
	}
	c, err := parseDiskStats(raw, dev)
	c.at = time.Now()
	return c, err
}

// parseDiskStats finds dev's line in the contents of /proc/diskstats.
func parseDiskStats(raw []byte, dev string) (diskCounters, error) {
	for line := range strings.SplitSeq(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 14 || f[2] != dev {
			continue
		}
		var v [11]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[3+i], 10, 64)
			if err != nil {
				return diskCounters{}, fmt.Errorf("diskstats %s: field %d %q: %w", dev, i+1, f[3+i], err)
			}
			v[i] = n
		}
		return diskCounters{reads: v[0], sectorsRead: v[2], readMs: v[3], writes: v[4], sectorsWrite: v[6], busyMs: v[9], weightedMs: v[10]}, nil
	}
	return diskCounters{}, fmt.Errorf("diskstats: no device %q", dev)
}

// diskPhase is what a device did during a phase: the whole device's, not
// only the server's (other processes' reads and writes count too).
type diskPhase struct {
	Device     string  `json:"device"`
	ReadBytes  int64   `json:"read_bytes"`
	WriteBytes int64   `json:"write_bytes"`
	Busy       float64 `json:"busy"`            // fraction of the phase with a request in flight
	ReadsAvg   float64 `json:"reads_in_flight"` // reads in flight on average (read time / phase time)
	QueueAvg   float64 `json:"queue_depth"`     // requests in flight on average (weighted time / phase time)
	KiBPerRead float64 `json:"kib_per_read"`
	MsPerRead  float64 `json:"ms_per_read"`
}

func diskDelta(dev string, a, b diskCounters) (*diskPhase, error) {
	sec := b.at.Sub(a.at).Seconds()
	if sec <= 0 || b.reads < a.reads || b.sectorsRead < a.sectorsRead || b.busyMs < a.busyMs || b.weightedMs < a.weightedMs || b.readMs < a.readMs || b.sectorsWrite < a.sectorsWrite {
		return nil, errors.New("diskstats: counters went backwards")
	}
	d := &diskPhase{
		Device:     dev,
		ReadBytes:  int64(b.sectorsRead-a.sectorsRead) * 512,
		WriteBytes: int64(b.sectorsWrite-a.sectorsWrite) * 512,
		Busy:       float64(b.busyMs-a.busyMs) / 1000 / sec,
		ReadsAvg:   float64(b.readMs-a.readMs) / 1000 / sec,
		QueueAvg:   float64(b.weightedMs-a.weightedMs) / 1000 / sec,
	}
	if n := b.reads - a.reads; n > 0 {
		d.KiBPerRead = float64(b.sectorsRead-a.sectorsRead) / 2 / float64(n)
		d.MsPerRead = float64(b.readMs-a.readMs) / float64(n)
	}
	return d, nil
}

func (d *diskPhase) text() string {
	return fmt.Sprintf("  disk %s: read %.0f MB, written %.0f MB, busy %.0f %%, reads in flight %.2f, queue %.2f, %.0f KiB %.1f ms a read",
		d.Device, float64(d.ReadBytes)/1e6, float64(d.WriteBytes)/1e6, 100*d.Busy, d.ReadsAvg, d.QueueAvg, d.KiBPerRead, d.MsPerRead)
}
