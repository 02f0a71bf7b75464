package benchutil

import (
	"os"
	"runtime/pprof"
	"runtime/trace"
	"testing"
)

// StartProfiles starts a CPU profile written to cpuPath and an execution
// trace written to tracePath, each only if its path is not empty, and
// returns the function that stops both and closes their files: for a
// benchmark that records one phase of one round (BenchmarkThroughput's get,
// BenchmarkRepair's repair).
func StartProfiles(tb testing.TB, cpuPath, tracePath string) (stop func()) {
	var stops []func()
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err != nil {
			tb.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			tb.Fatal(err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if tracePath != "" {
		f, err := os.Create(tracePath)
		if err != nil {
			tb.Fatal(err)
		}
		if err := trace.Start(f); err != nil {
			tb.Fatal(err)
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
