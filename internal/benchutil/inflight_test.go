package benchutil

import (
	"bytes"
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/site/dir"
)

func TestInFlight(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	f := &InFlight{now: func() time.Time { return now }}
	at := func(s float64) { now = t0.Add(time.Duration(s * float64(time.Second))) }
	f.Reset()
	// One call from 0 to 4 s, a second from 1 to 3 s: 6 call-seconds in 4 s.
	f.Enter()
	at(1)
	f.Enter()
	at(3)
	f.Leave()
	at(4)
	f.Leave()
	if m := f.Mean(); math.Abs(m-1.5) > 1e-9 {
		t.Errorf("mean %v, want 1.5", m)
	}
	// A new window counts a call still in flight from its start: one call
	// over the 2 s after Reset.
	f.Enter()
	at(5)
	f.Reset()
	at(7)
	if m := f.Mean(); math.Abs(m-1) > 1e-9 {
		t.Errorf("mean after Reset %v, want 1", m)
	}
	f.Leave()
	at(9)
	if m := f.Mean(); math.Abs(m-0.5) > 1e-9 {
		t.Errorf("mean %v, want 0.5 (one call for 2 s of 4)", m)
	}
}

// TestCountWrites: a counted site's puts and deletes are in flight while
// they run and not after, and pass through to the site.
func TestCountWrites(t *testing.T) {
	ds, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var f InFlight
	s := CountWrites(ds, &f)
	ctx := context.Background()
	f.Reset()
	if err := s.Put(ctx, "m/ab/x", bytes.NewReader([]byte("hello")), 5); err != nil {
		t.Fatal(err)
	}
	if m := f.Mean(); m <= 0 || m > 1 {
		t.Errorf("one put at a time: mean in flight %v, want in (0, 1]", m)
	}
	if _, err := ds.Stat(ctx, "m/ab/x"); err != nil {
		t.Errorf("the put did not reach the site: %v", err)
	}
	if err := s.Delete(ctx, "m/ab/x"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	n := f.n
	f.mu.Unlock()
	if n != 0 {
		t.Errorf("%d calls still counted in flight after they returned", n)
	}
}

// TestInFlightConcurrent: calls entering and leaving from many goroutines
// are all counted (run with -race).
func TestInFlightConcurrent(t *testing.T) {
	var ns atomic.Int64
	f := &InFlight{now: func() time.Time { return time.Unix(0, ns.Load()) }}
	const n = 16
	var entered, done sync.WaitGroup
	release := make(chan struct{})
	entered.Add(n)
	for range n {
		done.Go(func() {
			f.Enter()
			entered.Done()
			<-release
			f.Leave()
		})
	}
	entered.Wait()
	f.Reset()
	ns.Add(int64(time.Second))
	if m := f.Mean(); m != n {
		t.Errorf("mean %v with %d calls in flight throughout, want %d", m, n, n)
	}
	close(release)
	done.Wait()
	ns.Add(int64(time.Second))
	if m := f.Mean(); m != n/2 {
		t.Errorf("mean %v over 2 s with %d calls in flight for the first, want %d", m, n, n/2)
	}
}
