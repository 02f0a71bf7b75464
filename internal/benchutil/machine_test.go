package benchutil

import (
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// The start of /proc/stat on the development VM.
	const text = "cpu  963370 45436 681858 411748 92970 0 50183 0 0 0\ncpu0 492450 21948 336766 233247 33292 0 5618 0 0 0\n"
	got, err := parseProcStat(text)
	if err != nil {
		t.Fatal(err)
	}
	tick := 10 * time.Millisecond
	want := MachineCPU{
		Busy: (963370 + 45436 + 681858 + 0 + 50183 + 0) * tick,
		IRQ:  50183 * tick,
		Idle: (411748 + 92970) * tick,
	}
	if got != want {
		t.Errorf("parsed %+v, want %+v", got, want)
	}
	later := MachineCPU{Busy: want.Busy + 150*tick, IRQ: want.IRQ + 20*tick, Idle: want.Idle + 50*tick}
	d := later.Sub(got)
	if busy, irq := d.Cores(time.Second); busy != 1.5 || irq != 0.2 {
		t.Errorf("cores busy %v, in interrupts %v over a second; want 1.5, 0.2", busy, irq)
	}
	for _, c := range []struct{ text, want string }{
		{"intr 1 2 3\n", `not the "cpu" line`},
		{"", `not the "cpu" line`},
		{"cpu  1 2 3 4 5 6 7\n", "want at least 8"},
		{"cpu  1 2 x 4 5 6 7 8\n", "cpu time 3"},
		{"cpu  1 2 3 4 5 6 7 99999999999999999999\n", "cpu time 8"},
		{"cpu  1 2 3 4 5 6 7 9999999999999999\n", "out of range"},
	} {
		if _, err := parseProcStat(c.text); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error saying %q", c.text, err, c.want)
		}
	}
}

func TestReadMachineCPU(t *testing.T) {
	a, err := ReadMachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	if a.Busy <= 0 || a.Idle < 0 || a.IRQ < 0 || a.IRQ > a.Busy {
		t.Errorf("implausible machine CPU since boot: %+v", a)
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add("cpu  963370 45436 681858 411748 92970 0 50183 0 0 0\n")
	f.Add("cpu 1 2 3 4 5 6 7 8\n")
	f.Add("cpu0 1 2 3\n")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := parseProcStat(text)
		if err != nil {
			if m != (MachineCPU{}) {
				t.Errorf("error %v with values %+v", err, m)
			}
			return
		}
		if m.Busy < 0 || m.Idle < 0 || m.IRQ < 0 || m.IRQ > m.Busy {
			t.Errorf("%q parsed to %+v", text, m)
		}
	})
}
