// Package httpguard bounds what a client can hold on a listener before it
// has proved who it is, and how slowly any client may send a body:
//
//   - a cap on concurrent requests that have not authenticated: a request
//     holds a slot from its arrival until the handler calls Authenticated
//     (or finishes); when every slot is taken, further requests are answered
//     503 at once and their connections closed;
//   - a minimum-rate deadline on request bodies: a body must arrive at an
//     average of at least MinRate after a grace period, with at most Slack
//     of credit saved up, or the connection is cut (within an eighth of
//     Slack, at most a second, of falling behind). A client uploading at
//     normal speed never meets it; a client trickling a byte now and then
//     does, within Grace.
//
// The header phase is bounded by the server's ReadHeaderTimeout, not here.
package httpguard

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// Limits configure Wrap. Zero fields take the defaults.
type Limits struct {
	// MaxUnauthenticated is the number of requests that may be in flight
	// before authenticating (default 128).
	MaxUnauthenticated int
	// Grace is how long a body may take before the rate applies (default
	// 30s).
	Grace time.Duration
	// MinRate is the least average rate of a body, in bytes per second
	// (default 64 KiB/s).
	MinRate int64
	// Slack is the most time a body's fast start may buy for later stalls
	// (default 60s).
	Slack time.Duration
}

// Defaults are the limits of a node's listener.
var Defaults = Limits{MaxUnauthenticated: 128, Grace: 30 * time.Second, MinRate: 64 << 10, Slack: 60 * time.Second}

func (l Limits) withDefaults() Limits {
	if l.MaxUnauthenticated <= 0 {
		l.MaxUnauthenticated = Defaults.MaxUnauthenticated
	}
	if l.Grace <= 0 {
		l.Grace = Defaults.Grace
	}
	if l.MinRate <= 0 {
		l.MinRate = Defaults.MinRate
	}
	if l.Slack <= 0 {
		l.Slack = Defaults.Slack
	}
	return l
}

type slotKey struct{}

// slot is a request's claim on the unauthenticated cap.
type slot struct {
	once sync.Once
	sem  chan struct{}
}

func (s *slot) release() { s.once.Do(func() { <-s.sem }) }

// Authenticated tells the guard that the request of ctx has proved who it
// is: it stops counting against the cap on unauthenticated requests.
// Handlers call it as soon as a signature verifies.
func Authenticated(ctx context.Context) {
	if s, ok := ctx.Value(slotKey{}).(*slot); ok {
		s.release()
	}
}

// Wrap returns h behind the limits.
func Wrap(h http.Handler, l Limits) http.Handler {
	l = l.withDefaults()
	sem := make(chan struct{}, l.MaxUnauthenticated)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		select {
		case sem <- struct{}{}:
		default:
			// Do not read what the client sends; answer and hang up.
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", "5")
			http.Error(w, "too many requests not yet authenticated; try again shortly", http.StatusServiceUnavailable)
			return
		}
		s := &slot{sem: sem}
		defer s.release()
		r = r.WithContext(context.WithValue(r.Context(), slotKey{}, s))
		var body *rateBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &rateBody{r: r.Body, rc: rc, l: l, deadline: time.Now().Add(l.Grace)}
			r.Body = body
		}
		h.ServeHTTP(w, r)
		if body != nil && !body.done {
			// What the handler left unread is drained by the server for
			// the next request on the connection: not for longer than a
			// moment.
			rc.SetReadDeadline(time.Now().Add(time.Second))
		}
	})
}

// ErrTooSlow: a request body arrived below the minimum rate.
var ErrTooSlow = errors.New("httpguard: request body arrived below the minimum rate")

// rateBody enforces the minimum rate with the connection's read deadline.
type rateBody struct {
	r        io.ReadCloser
	rc       *http.ResponseController
	l        Limits
	deadline time.Time // when the body falls below the rate
	set      time.Time // the connection's read deadline: deadline, up to a step later
	started  bool
	done     bool
}

// step is how far past the rate's deadline the connection's is set (an
// eighth of Slack, at most a second), so that it is moved once the body
// has bought half a step more rather than at every read: each move is a
// timer update in the runtime, and a large body is read some 30 KB at a
// time (0.4 % of a 64 MiB PUT's CPU, docs/design.md, "PUT CPU per GB at
// 64 MiB (issue 15, thirteenth pass)"). The connection is never cut
// before the rate's deadline, and at most a step after it.
func (b *rateBody) step() time.Duration { return min(time.Second, b.l.Slack/8) }

func (b *rateBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if !b.started {
		b.started = true
		b.set = b.deadline
		b.rc.SetReadDeadline(b.set)
	}
	n, err := b.r.Read(p)
	if n > 0 {
		now := time.Now()
		credit := time.Duration(int64(n) * int64(time.Second) / b.l.MinRate)
		b.deadline = b.deadline.Add(credit)
		if limit := now.Add(b.l.Slack); b.deadline.After(limit) {
			b.deadline = limit
		}
		// A body behind the rate (a read the step let through) keeps
		// the connection's deadline where it is, and meets it there
		// unless it catches up first: nothing it sends late moves it.
		if b.deadline.After(now) && b.set.Sub(b.deadline) < b.step()/2 {
			b.set = b.deadline.Add(b.step())
			b.rc.SetReadDeadline(b.set)
		}
	}
	if err == io.EOF {
		// The body is in: the connection's reads are the server's again
		// (it watches for the client going away while a long response is
		// written, and a deadline must not cut that).
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	} else if err != nil && isTimeout(err) {
		err = errors.Join(ErrTooSlow, err)
	}
	return n, err
}

func (b *rateBody) Close() error { return b.r.Close() }

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
