package site

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Guarded wraps a site so that no operation reaches it until a check (the
// node's: does the site's marker name this node and this site?) has
// accepted it. A site the check refuses is unavailable: every operation
// fails with the check's [*UnavailableError], which says why, so nothing
// on it is ever read, written, listed or deleted. Identity is a property of
// the place, not of each driver, so it is a wrapper rather than a flag in
// every driver.
//
// The check runs before the first operation, one at a time. It runs again
// when the wrapped site has reported [ErrUnavailable] (a vanished directory
// or bucket may come back as something else), and after [RecheckOK] even
// when all is well. A refusal is kept for [RecheckRefused] (or its own
// [UnavailableError.Recheck], if shorter) and a failure to
// check (the site does not answer) for [RetryCheck] before trying again.
//
// A Get through it passes on at most the length asked ([Limited]), so a
// driver that forgets to hold its provider to the range cannot make a
// caller read more than it asked for.
type Guarded struct {
	inner Site
	id    string
	check func(context.Context) error

	mu    sync.Mutex // one check at a time
	state atomic.Pointer[guardState]
	now   func() time.Time
}

type guardState struct {
	err error     // nil: accepted
	at  time.Time // when the check ran
}

// How long a check's outcome is kept.
const (
	RecheckOK      = 5 * time.Minute
	RecheckRefused = time.Minute
	RetryCheck     = 2 * time.Second
)

// Guard wraps s, the site with the given id. check returns nil to accept
// the site, an error wrapping an [*UnavailableError] to refuse it, or any
// other error when it could not tell (the site did not answer).
func Guard(id string, s Site, check func(context.Context) error) *Guarded {
	return &Guarded{inner: s, id: id, check: check, now: time.Now}
}

// Unwrap returns the guarded site.
func (g *Guarded) Unwrap() Site { return g.inner }

func (st *guardState) fresh(now time.Time) bool {
	if st == nil {
		return false
	}
	age := now.Sub(st.at)
	var ue *UnavailableError
	switch {
	case st.err == nil:
		return age < RecheckOK
	case errors.As(st.err, &ue) && ue.Recheck > 0:
		return age < min(ue.Recheck, RecheckRefused)
	case errors.As(st.err, &ue):
		return age < RecheckRefused
	default:
		return age < RetryCheck
	}
}

// ready returns nil when operations may reach the site.
func (g *Guarded) ready(ctx context.Context) error {
	if st := g.state.Load(); st.fresh(g.now()) {
		return st.err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if st := g.state.Load(); st.fresh(g.now()) {
		return st.err
	}
	err := g.check(ctx)
	if err != nil && ctx.Err() != nil {
		// The caller gave up: that says nothing about the site.
		return err
	}
	var ue *UnavailableError
	if errors.As(err, &ue) && ue.Site == "" {
		ue.Site = g.id
	}
	g.state.Store(&guardState{err: err, at: g.now()})
	return err
}

// after looks at an operation's error: a site that reports itself
// unavailable is checked again before the next operation.
func (g *Guarded) after(err error) error {
	if err != nil && errors.Is(err, ErrUnavailable) {
		if st := g.state.Load(); st != nil && st.err == nil {
			g.state.CompareAndSwap(st, nil)
		}
	}
	return err
}

// Check runs the check now, whatever its last outcome, and returns it.
func (g *Guarded) Check(ctx context.Context) error {
	g.state.Store(nil)
	return g.ready(ctx)
}

// Forget drops the last check's outcome: the next operation checks
// again (the site's state changed: a lease lost).
func (g *Guarded) Forget() { g.state.Store(nil) }

// Status returns the outcome of the last check, running one if none is
// current: nil when the site is accepted.
func (g *Guarded) Status(ctx context.Context) error { return g.ready(ctx) }

// Put implements Site.
func (g *Guarded) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := g.ready(ctx); err != nil {
		return err
	}
	return g.after(g.inner.Put(ctx, name, r, size))
}

// Get implements Site. It passes on at most length bytes, whatever the
// driver sends ([Limited]).
func (g *Guarded) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := g.ready(ctx); err != nil {
		return nil, err
	}
	rc, err := g.inner.Get(ctx, name, off, length)
	if err != nil {
		return nil, g.after(err)
	}
	return Limited(rc, length), nil
}

// Stat implements Site.
func (g *Guarded) Stat(ctx context.Context, name string) (Info, error) {
	if err := g.ready(ctx); err != nil {
		return Info{}, err
	}
	i, err := g.inner.Stat(ctx, name)
	return i, g.after(err)
}

// Delete implements Site.
func (g *Guarded) Delete(ctx context.Context, name string) error {
	if err := g.ready(ctx); err != nil {
		return err
	}
	return g.after(g.inner.Delete(ctx, name))
}

// List implements Site.
func (g *Guarded) List(ctx context.Context, prefix string, fn func(Info) error) error {
	if err := g.ready(ctx); err != nil {
		return err
	}
	return g.after(g.inner.List(ctx, prefix, fn))
}
