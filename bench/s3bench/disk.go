package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/embassy-dev/embassy/internal/benchutil"
)

// diskPhase is what a block device did during a phase, from its counters
// at the phase's start and end (benchutil.DiskStat): the whole device's,
// not only the server's (other processes' reads and writes count too).
type diskPhase struct {
	Device     string  `json:"device"`
	ReadBytes  int64   `json:"read_bytes"`
	WriteBytes int64   `json:"write_bytes"`
	Busy       float64 `json:"busy"`            // share of the phase with a request in flight
	ReadsAvg   float64 `json:"reads_in_flight"` // reads in flight on average: their summed time over the phase's
	QueueAvg   float64 `json:"queue_depth"`     // requests in flight on average: the weighted time over the phase's
	KiBPerRead float64 `json:"kib_per_read"`
	MsPerRead  float64 `json:"ms_per_read"`
}

// diskDelta is what the device did over d seconds, from its counters at
// the start (a) and the end (b).
func diskDelta(dev string, a, b benchutil.DiskStat, d time.Duration) (*diskPhase, error) {
	sec := d.Seconds()
	if sec <= 0 {
		return nil, fmt.Errorf("disk %s: phase of %s", dev, d)
	}
	if b.Reads < a.Reads || b.ReadSectors < a.ReadSectors || b.ReadMs < a.ReadMs || b.WriteSectors < a.WriteSectors ||
		b.BusyMs < a.BusyMs || b.WeightedMs < a.WeightedMs {
		return nil, errors.New("disk " + dev + ": counters went backwards")
	}
	s := b.Sub(a)
	p := &diskPhase{
		Device:     dev,
		ReadBytes:  int64(s.ReadSectors) * 512,
		WriteBytes: int64(s.WriteSectors) * 512,
		Busy:       float64(s.BusyMs) / 1000 / sec,
		ReadsAvg:   float64(s.ReadMs) / 1000 / sec,
		QueueAvg:   float64(s.WeightedMs) / 1000 / sec,
	}
	if s.Reads > 0 {
		p.KiBPerRead = float64(s.ReadSectors) / 2 / float64(s.Reads)
		p.MsPerRead = float64(s.ReadMs) / float64(s.Reads)
	}
	return p, nil
}

func (p *diskPhase) text() string {
	return fmt.Sprintf("  disk %s: read %.0f MB, written %.0f MB, busy %.0f %%, reads in flight %.2f, queue %.2f, %.0f KiB %.1f ms a read",
		p.Device, float64(p.ReadBytes)/1e6, float64(p.WriteBytes)/1e6, 100*p.Busy, p.ReadsAvg, p.QueueAvg, p.KiBPerRead, p.MsPerRead)
}
