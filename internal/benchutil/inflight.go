package benchutil

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/site"
)

// InFlight measures how many calls were in flight on average over a
// window: the time integral of their number since Reset, divided by the
// time since Reset. On a disk that merges the flush requests waiting
// together into one flush, how many durable writes are in flight at once
// decides how many share a flush.
type InFlight struct {
	mu    sync.Mutex
	now   func() time.Time // time.Now, or a test's clock
	n     int
	start time.Time
	last  time.Time
	area  float64 // calls × seconds since start
}

func (f *InFlight) clock() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

// advance adds the time since the last change at the current count; f.mu
// held.
func (f *InFlight) advance(t time.Time) {
	if !f.last.IsZero() {
		f.area += float64(f.n) * t.Sub(f.last).Seconds()
	}
	f.last = t
}

// Enter counts a call that starts.
func (f *InFlight) Enter() {
	f.mu.Lock()
	f.advance(f.clock())
	f.n++
	f.mu.Unlock()
}

// Leave counts a call that ends.
func (f *InFlight) Leave() {
	f.mu.Lock()
	f.advance(f.clock())
	f.n--
	f.mu.Unlock()
}

// Reset starts a new window; calls in flight stay counted.
func (f *InFlight) Reset() {
	f.mu.Lock()
	t := f.clock()
	f.start, f.last, f.area = t, t, 0
	f.mu.Unlock()
}

// Mean returns the mean number of calls in flight since Reset (0 before
// any time has passed).
func (f *InFlight) Mean() float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.clock()
	f.advance(t)
	d := t.Sub(f.start).Seconds()
	if f.start.IsZero() || d <= 0 {
		return 0
	}
	return f.area / d
}

// CountWrites wraps s so that its puts and deletes (the calls that end in
// a flush on a dir site) are counted in f while they run.
func CountWrites(s site.Site, f *InFlight) site.Site { return &countedSite{Site: s, f: f} }

type countedSite struct {
	site.Site
	f *InFlight
}

func (c *countedSite) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	c.f.Enter()
	defer c.f.Leave()
	return c.Site.Put(ctx, name, r, size)
}

func (c *countedSite) Delete(ctx context.Context, name string) error {
	c.f.Enter()
	defer c.f.Leave()
	return c.Site.Delete(ctx, name)
}
