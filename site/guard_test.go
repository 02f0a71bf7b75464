package site_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/fault"
	"github.com/embassy-dev/embassy/site/memory"
)

// TestGuardRefusesEverything: a refused site fails every operation with
// the reason, and nothing reaches the site underneath.
func TestGuardRefusesEverything(t *testing.T) {
	inner := memory.New()
	ctx := t.Context()
	if err := inner.Put(ctx, "m/ab/x", strings.NewReader("data"), 4); err != nil {
		t.Fatal(err)
	}
	var checks atomic.Int32
	g := site.Guard("est-2", inner, func(context.Context) error {
		checks.Add(1)
		return &site.UnavailableError{Reason: "its marker names site est-1 of this node"}
	})
	errs := map[string]error{}
	errs["put"] = g.Put(ctx, "m/ab/y", strings.NewReader("x"), 1)
	_, errs["get"] = g.Get(ctx, "m/ab/x", 0, -1)
	_, errs["stat"] = g.Stat(ctx, "m/ab/x")
	errs["delete"] = g.Delete(ctx, "m/ab/x")
	listed := 0
	errs["list"] = g.List(ctx, "", func(site.Info) error { listed++; return nil })
	for op, err := range errs {
		var ue *site.UnavailableError
		if !errors.Is(err, site.ErrUnavailable) || !errors.As(err, &ue) || ue.Site != "est-2" {
			t.Errorf("%s: %v, want an UnavailableError for est-2", op, err)
		}
		if err != nil && err.Error() != "site est-2 unavailable: its marker names site est-1 of this node" {
			t.Errorf("%s: message %q", op, err)
		}
	}
	if listed != 0 {
		t.Errorf("a refused site listed %d blobs", listed)
	}
	if _, err := inner.Stat(ctx, "m/ab/x"); err != nil {
		t.Errorf("the blob under a refused site was touched: %v", err)
	}
	if _, err := inner.Stat(ctx, "m/ab/y"); !errors.Is(err, site.ErrNotFound) {
		t.Errorf("a put reached a refused site: %v", err)
	}
	if n := checks.Load(); n != 1 {
		t.Errorf("the refusal was checked %d times, want once (kept for a while)", n)
	}
}

// TestGuardChecksAgainAfterUnavailable: the check runs once, and again
// after the site reported itself unavailable; a check that cannot tell
// (the site does not answer) refuses nothing for long.
func TestGuardChecksAgainAfterUnavailable(t *testing.T) {
	inner := fault.New(memory.New(), 1)
	ctx := t.Context()
	var checks atomic.Int32
	g := site.Guard("est-1", inner, func(ctx context.Context) error {
		checks.Add(1)
		_, err := inner.Stat(ctx, "node/marker")
		if errors.Is(err, site.ErrNotFound) {
			return nil
		}
		return err
	})
	for range 3 {
		if err := g.Put(ctx, "s/a/1", strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := checks.Load(); n != 1 {
		t.Fatalf("%d checks for three puts, want 1", n)
	}
	inner.Set(fault.Config{Down: true})
	if err := g.Put(ctx, "s/a/2", strings.NewReader("x"), 1); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("put to a down site: %v", err)
	}
	inner.Set(fault.Config{})
	if err := g.Put(ctx, "s/a/3", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if n := checks.Load(); n != 2 {
		t.Fatalf("%d checks, want 2 (again after the site was unavailable)", n)
	}
	if err := g.Status(ctx); err != nil {
		t.Fatalf("Status after a good check: %v", err)
	}
}

// TestGuardRechecksSoonerWhenTold: a refusal that says when it may change
// by itself (a lease held elsewhere that may lapse) is checked again
// after that time, not after RecheckRefused; Forget makes the next
// operation check at once.
func TestGuardRechecksSoonerWhenTold(t *testing.T) {
	ctx := t.Context()
	var checks atomic.Int32
	g := site.Guard("lux-1", memory.New(), func(context.Context) error {
		if checks.Add(1) == 1 {
			return &site.UnavailableError{Reason: "its lease is held by another process", Recheck: 20 * time.Millisecond}
		}
		return nil
	})
	if err := g.Status(ctx); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("first check: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for g.Status(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the refusal was kept past its Recheck (%d checks)", checks.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := checks.Load(); n != 2 {
		t.Fatalf("%d checks, want 2", n)
	}
	g.Status(ctx)
	if n := checks.Load(); n != 2 {
		t.Fatalf("an accepted site was checked again at once: %d checks", n)
	}
	g.Forget()
	g.Status(ctx)
	if n := checks.Load(); n != 3 {
		t.Fatalf("Forget: %d checks, want 3", n)
	}
}

// overSender is a driver that forgets the length asked: every Get sends
// the blob from off to its end, then bytes without end.
type overSender struct{ site.Site }

func (o overSender) Get(ctx context.Context, name string, off, _ int64) (io.ReadCloser, error) {
	rc, err := o.Site.Get(ctx, name, off, -1)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(rc, endless{}), rc}, nil
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xee
	}
	return len(p), nil
}

// TestGuardHoldsGetToItsLength: whatever a driver sends, a Get through
// the guard passes on at most the length asked, the blob's own bytes when
// the driver sent them; a Get to the end is the driver's as it is.
func TestGuardHoldsGetToItsLength(t *testing.T) {
	inner := memory.New()
	ctx := t.Context()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	if err := inner.Put(ctx, "s/ab/x", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	g := site.Guard("est-1", overSender{inner}, func(context.Context) error { return nil })
	for _, r := range [][2]int64{{0, 0}, {0, 100}, {500, 1000}, {9990, 10}, {9990, 100}} {
		rc, err := g.Get(ctx, "s/ab/x", r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		want := data[r[0]:min(r[0]+r[1], int64(len(data)))]
		if r[0]+r[1] > int64(len(data)) {
			// Past the end the driver sent its endless bytes: held to
			// the length, they are not the blob's, which the caller's
			// checks find.
			want = append(append([]byte(nil), want...), bytes.Repeat([]byte{0xee}, int(r[0]+r[1])-len(data))...)
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Get(%d, %d): %d bytes, %v; want %d", r[0], r[1], len(got), err, len(want))
		}
	}
	rc, err := g.Get(ctx, "s/ab/x", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if n, _ := io.Copy(io.Discard, io.LimitReader(rc, 1<<20)); n != 1<<20 {
		t.Errorf("Get(0, -1) passed on %d bytes, want the driver's answer as it is", n)
	}
}
