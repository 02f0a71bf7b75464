// Package fault is a site wrapper that injects failures, for tests: errors,
// latency, silent corruption of reads, torn writes, failure part-way through
// a write, and a site that vanishes.
package fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/embassy-dev/embassy/site"
)

// Config says which faults to inject. The zero value injects none.
type Config struct {
	// Down makes every operation fail with site.ErrUnavailable.
	Down bool
	// PutErr, GetErr, DeleteErr fail puts, gets or deletes with this
	// error.
	PutErr, GetErr, DeleteErr error
	// FailPutAfter, if > 0, fails a put with ErrInjected after this many
	// bytes were read from its reader (a site dying mid-write).
	FailPutAfter int64
	// TornWrite stores only the first half of each put's bytes and reports
	// success: a backend that loses the tail of a write.
	TornWrite bool
	// CorruptReads flips one random bit in every read of more than one
	// byte: silent corruption on the medium or in transit.
	CorruptReads bool
	// Latency delays every operation.
	Latency time.Duration
	// ListErr, if set, fails every listing with this error once
	// ListAfter entries have been passed on: a filesystem that errors on
	// a directory, or a site that stops answering, half-way through.
	ListErr   error
	ListAfter int
	// BeforeGet, if set, is called with the blob's name before each Get
	// reaches the site: a test's way to change the world part-way
	// through a read.
	BeforeGet func(ctx context.Context, name string)
	// BeforePut is BeforeGet for each Put.
	BeforePut func(ctx context.Context, name string)
}

// ErrInjected is the error injected for FailPutAfter.
var ErrInjected = errors.New("fault: injected failure")

// Site wraps another site and injects faults.
type Site struct {
	inner site.Site
	mu    sync.Mutex
	cfg   Config
	rng   *rand.Rand
	puts  int
	read  atomic.Int64
	cold  atomic.Int64
}

// New wraps inner. It injects no faults until Set is called.
func New(inner site.Site, seed uint64) *Site {
	return &Site{inner: inner, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Set replaces the fault configuration.
func (s *Site) Set(c Config) {
	s.mu.Lock()
	s.cfg = c
	s.mu.Unlock()
}

// BytesRead returns how many bytes reads through Get have taken from the
// inner site so far.
func (s *Site) BytesRead() int64 { return s.read.Load() }

// ColdBytesRead returns how many of those were read by Gets whose context
// carried [site.WithColdRead]'s hint.
func (s *Site) ColdBytesRead() int64 { return s.cold.Load() }

type countingReader struct {
	io.ReadCloser
	n, cold *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	if c.cold != nil {
		c.cold.Add(int64(n))
	}
	return n, err
}

// Puts returns how many puts were attempted.
func (s *Site) Puts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts
}

func (s *Site) config(ctx context.Context) (Config, error) {
	s.mu.Lock()
	c := s.cfg
	s.mu.Unlock()
	if c.Latency > 0 {
		t := time.NewTimer(c.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return c, ctx.Err()
		}
	}
	if c.Down {
		return c, fmt.Errorf("fault: %w", site.ErrUnavailable)
	}
	return c, nil
}

// Put implements site.Site.
func (s *Site) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	s.mu.Lock()
	s.puts++
	s.mu.Unlock()
	c, err := s.config(ctx)
	if err != nil {
		// Drain nothing: a vanished site does not read its input.
		return err
	}
	if c.BeforePut != nil {
		c.BeforePut(ctx, name)
	}
	if c.PutErr != nil {
		return c.PutErr
	}
	if c.FailPutAfter > 0 {
		r = &failAfter{r: r, left: c.FailPutAfter}
	}
	if c.TornWrite {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		half := data[:len(data)/2]
		return s.inner.Put(ctx, name, bytesReader(half), int64(len(half)))
	}
	return s.inner.Put(ctx, name, r, size)
}

type failAfter struct {
	r    io.Reader
	left int64
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, ErrInjected
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= int64(n)
	return n, err
}

// Get implements site.Site.
func (s *Site) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	c, err := s.config(ctx)
	if err != nil {
		return nil, err
	}
	if c.GetErr != nil {
		return nil, c.GetErr
	}
	if c.BeforeGet != nil {
		c.BeforeGet(ctx, name)
	}
	rc, err := s.inner.Get(ctx, name, off, length)
	if err != nil {
		return rc, err
	}
	cr := countingReader{ReadCloser: rc, n: &s.read}
	if site.ColdRead(ctx) {
		cr.cold = &s.cold
	}
	rc = cr
	if !c.CorruptReads {
		return rc, nil
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if len(data) > 1 {
		s.mu.Lock()
		i := s.rng.IntN(len(data))
		bit := byte(1) << s.rng.IntN(8)
		s.mu.Unlock()
		data[i] ^= bit
	}
	return io.NopCloser(bytesReader(data)), nil
}

// Stat implements site.Site.
func (s *Site) Stat(ctx context.Context, name string) (site.Info, error) {
	if _, err := s.config(ctx); err != nil {
		return site.Info{}, err
	}
	return s.inner.Stat(ctx, name)
}

// Delete implements site.Site.
func (s *Site) Delete(ctx context.Context, name string) error {
	c, err := s.config(ctx)
	if err != nil {
		return err
	}
	if c.DeleteErr != nil {
		return c.DeleteErr
	}
	return s.inner.Delete(ctx, name)
}

// List implements site.Site.
func (s *Site) List(ctx context.Context, prefix string, fn func(site.Info) error) error {
	c, err := s.config(ctx)
	if err != nil {
		return err
	}
	if c.ListErr == nil {
		return s.inner.List(ctx, prefix, fn)
	}
	n := 0
	err = s.inner.List(ctx, prefix, func(i site.Info) error {
		if n >= c.ListAfter {
			return c.ListErr
		}
		n++
		return fn(i)
	})
	if err == nil && n >= c.ListAfter {
		err = c.ListErr
	}
	return err
}

type byteReader struct {
	b []byte
}

func bytesReader(b []byte) io.Reader { return &byteReader{b: b} }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
