package benchutil

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// MachineCPU is the CPU time of the whole machine since boot, all its
// cores summed, from /proc/stat's "cpu" line (proc(5)): what ran
// (Busy: user, nice, system, irq, softirq and steal), what of that was
// interrupt work (IRQ: irq and softirq, which the kernel charges to no
// process, so a process's own CPU time (ProcessCPU) leaves it out: the
// block layer's completions of a durable write are there), and what was
// idle (Idle: idle and iowait). Beside a process's own CPU time it says
// whether the cores were all in use: a benchmark whose process keeps 1.4
// of 2 cores busy while the machine keeps 2.0 is bound by the cores, one
// whose machine keeps 1.5 is not.
type MachineCPU struct {
	Busy, IRQ, Idle time.Duration
}

// Sub returns the time of m since earlier.
func (m MachineCPU) Sub(earlier MachineCPU) MachineCPU {
	return MachineCPU{Busy: m.Busy - earlier.Busy, IRQ: m.IRQ - earlier.IRQ, Idle: m.Idle - earlier.Idle}
}

// Cores returns the cores busy (Busy over wall) and, of those, in
// interrupt work, over a wall time of d.
func (m MachineCPU) Cores(d time.Duration) (busy, irq float64) {
	if d <= 0 {
		return 0, 0
	}
	return m.Busy.Seconds() / d.Seconds(), m.IRQ.Seconds() / d.Seconds()
}

// ReadMachineCPU reads /proc/stat now.
func ReadMachineCPU() (MachineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, err
	}
	return parseProcStat(string(b))
}

// userHz is the unit of /proc/stat's times (USER_HZ, 100 on Linux
// whatever the kernel's own tick).
const userHz = 100

// parseProcStat reads the "cpu" line of /proc/stat: user, nice, system,
// idle, iowait, irq, softirq and steal, in USER_HZ ticks (proc(5); the
// guest columns are already in user and nice and are not read).
func parseProcStat(text string) (MachineCPU, error) {
	line, _, _ := strings.Cut(text, "\n")
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "cpu" {
		return MachineCPU{}, fmt.Errorf("/proc/stat: first line %.40q is not the \"cpu\" line", line)
	}
	if len(f) < 9 {
		return MachineCPU{}, fmt.Errorf("/proc/stat: cpu line has %d times, want at least 8 (user to steal)", len(f)-1)
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("/proc/stat: cpu time %d: %w", i+1, err)
		}
		if n > uint64(1<<59)/uint64(time.Second/userHz) { // six summed stay within a Duration
			return MachineCPU{}, fmt.Errorf("/proc/stat: cpu time %d: %d ticks is out of range", i+1, n)
		}
		v[i] = n
	}
	tick := func(n uint64) time.Duration { return time.Duration(n) * (time.Second / userHz) }
	user, nice, system, idle, iowait, irq, softirq, steal := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
	return MachineCPU{
		Busy: tick(user) + tick(nice) + tick(system) + tick(irq) + tick(softirq) + tick(steal),
		IRQ:  tick(irq) + tick(softirq),
		Idle: tick(idle) + tick(iowait),
	}, nil
}
