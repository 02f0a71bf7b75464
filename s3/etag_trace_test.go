package s3

import (
	"io"
	"runtime/trace"
	"sync"
	"testing"
)

// TestETagHashUnderTracer: hashing many large bodies at once while the
// execution tracer runs (an operator's GET /_embassy/v1/debug/pprof/trace
// during PUTs) does not crash the process. md5-simd v1.1.2's scalar path
// (blockScalar, used when fewer than three lanes have data) uses BP as a
// general register in a frameless function, so the tracer's frame-pointer
// unwinding read a garbage frame chain: the node died with SIGSEGV in
// runtime.fpTracebackPCs the first time a trace was taken during 64 MiB
// PUTs at concurrency 4.
func TestETagHashUnderTracer(t *testing.T) {
	if trace.IsEnabled() {
		t.Skip("a trace is already running")
	}
	if err := trace.Start(io.Discard); err != nil {
		t.Fatal(err)
	}
	defer trace.Stop()
	data := make([]byte, 1<<20)
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			h := newETagHash()
			for range 16 + i {
				h.Write(data[:len(data)-i])
			}
			h.etag()
		})
	}
	wg.Wait()
}
