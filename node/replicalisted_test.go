package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/memory"
)

// endless is a body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xee
	}
	return len(p), nil
}

// TestRecoverListedBlobs: recovery from an ally (RecoverFromPeer) reads
// what the ally sends, which is outside input. A blob that belongs on
// every site is read whole, but never more than the size the ally listed
// (at most maxSharedBlob) and only if exactly that; a site's own blob
// streams to the site and is stored only if the ally sends exactly the
// size it listed. Before, each blob was read whole with io.ReadAll: an
// ally sending an endless body made the recovering node allocate until it
// died, and a large shard blob was held whole in memory.
func TestRecoverListedBlobs(t *testing.T) {
	data := bytes.Repeat([]byte("blob"), 1000)
	bodies := map[string]func() io.Reader{
		"exact":   func() io.Reader { return bytes.NewReader(data) },
		"short":   func() io.Reader { return bytes.NewReader(data[:len(data)-1]) },
		"longer":  func() io.Reader { return io.MultiReader(bytes.NewReader(data), strings.NewReader("x")) },
		"endless": func() io.Reader { return io.MultiReader(bytes.NewReader(data), endless{}) },
	}
	for name, body := range bodies {
		open := func(federation.BlobRef) (io.ReadCloser, error) { return io.NopCloser(body()), nil }
		t.Run(name, func(t *testing.T) {
			ref := federation.BlobRef{Site: federation.AllSites, Name: federation.BlobDescriptor, Size: int64(len(data))}
			b, err := readListed(ref, open)
			if (err == nil) != (name == "exact") || (err == nil && !bytes.Equal(b, data)) {
				t.Errorf("readListed: %d bytes, %v", len(b), err)
			}
			s := memory.New()
			ref = federation.BlobRef{Site: "est-1", Name: "s/ab/ab000000000000000000000000000000.1", Size: int64(len(data))}
			err = copyListed(t.Context(), s, ref, open)
			if (err == nil) != (name == "exact") {
				t.Errorf("copyListed: %v", err)
			}
			if err != nil && !strings.Contains(err.Error(), "listed") {
				t.Errorf("copyListed: %v, want an error naming the size listed", err)
			}
			_, serr := s.Stat(t.Context(), ref.Name)
			if (serr == nil) != (name == "exact") || (serr != nil && !errors.Is(serr, site.ErrNotFound)) {
				t.Errorf("after copyListed: stat %v", serr)
			}
		})
	}
	// A shared blob listed larger than any may be is not asked for.
	asked := false
	_, err := readListed(federation.BlobRef{Site: federation.AllSites, Name: federation.BlobDescriptor, Size: maxSharedBlob + 1}, func(federation.BlobRef) (io.ReadCloser, error) {
		asked = true
		return io.NopCloser(endless{}), nil
	})
	if err == nil || asked {
		t.Errorf("a blob listed at %d bytes: asked %v, %v", maxSharedBlob+1, asked, err)
	}
}

// statFails is a site that cannot answer whether it holds a blob (a
// provider unreachable for the moment, or refusing HEAD) but takes puts.
type statFails struct{ site.Site }

func (s statFails) Stat(ctx context.Context, name string) (site.Info, error) {
	return site.Info{}, fmt.Errorf("stat %s: %w", name, site.ErrUnavailable)
}

// TestRecoverKeepsWhatASiteMayHold: recovery from an ally writes a blob
// to a site only where the site says it holds none of that name. A site
// that cannot say is not written to: the ally's copy would replace one
// the site may hold, which may be newer than the replica's (a manifest's
// later revision, a later log checkpoint). Before, any error of the
// site's Stat counted as "absent" and the blob was written over.
func TestRecoverKeepsWhatASiteMayHold(t *testing.T) {
	held := []byte("the site's own, newer copy")
	from := []byte("the ally's copy")
	name := "m/ab/ab000000000000000000000000000000"
	open := func(federation.BlobRef) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(from)), nil }
	ref := federation.BlobRef{Site: "est-1", Name: name, Size: int64(len(from))}
	for _, c := range []struct {
		name   string
		hold   bool // the site holds a blob of that name
		failed bool // its Stat fails
		stored bool
		err    bool
	}{
		{"absent", false, false, true, false},
		{"present", true, false, false, false},
		{"unknown, held", true, true, false, true},
		{"unknown, absent", false, true, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, shared := range []bool{false, true} {
				mem := memory.New()
				if c.hold {
					if err := mem.Put(t.Context(), name, bytes.NewReader(held), int64(len(held))); err != nil {
						t.Fatal(err)
					}
				}
				var s site.Site = mem
				if c.failed {
					s = statFails{mem}
				}
				put := func() error { return copyListed(t.Context(), s, ref, open) }
				if shared {
					put = func() error { return s.Put(t.Context(), name, bytes.NewReader(from), int64(len(from))) }
				}
				stored, err := restoreBlob(t.Context(), s, name, put)
				if stored != c.stored || (err != nil) != c.err {
					t.Errorf("shared %v: stored %v, %v; want stored %v, error %v", shared, stored, err, c.stored, c.err)
				}
				if err != nil && !errors.Is(err, site.ErrUnavailable) {
					t.Errorf("shared %v: %v, want the site's error", shared, err)
				}
				rc, gerr := mem.Get(t.Context(), name, 0, -1)
				var got []byte
				if gerr == nil {
					got, _ = io.ReadAll(rc)
					rc.Close()
				}
				switch {
				case c.hold && !bytes.Equal(got, held):
					t.Errorf("shared %v: the site's copy became %q", shared, got)
				case !c.hold && c.stored && !bytes.Equal(got, from):
					t.Errorf("shared %v: stored %q, %v", shared, got, gerr)
				case !c.hold && !c.stored && gerr == nil:
					t.Errorf("shared %v: %q written to a site that could not say what it holds", shared, got)
				}
			}
		})
	}
}

// TestRecoveryCallsHaveTimeForTheBlob: a call to the ally during a
// recovery is bounded by a deadline that grows with the size of the blob
// it brings back (recoveryWithin: ten minutes, and the size at 1 MB/s),
// and that deadline ends when the answer's body is closed. Before, the
// recovery client's http.Client.Timeout of ten minutes covered reading
// every answer's body: a site's own blob that took longer to send (a
// 25 GiB shard blob below about 43 MB/s) was cut whatever its progress,
// and a second run started it again.
func TestRecoveryCallsHaveTimeForTheBlob(t *testing.T) {
	root, err := custody.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := custody.NewKeyring(root)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := kr.RecoveryKeys()
	if err != nil {
		t.Fatal(err)
	}
	c, err := recoveryClient(federation.Card{}, rk, "recovery")
	if err != nil {
		t.Fatal(err)
	}
	if c.Timeout != 0 {
		t.Errorf("the recovery client bounds every exchange, body included, to %v", c.Timeout)
	}
	const large = 25 << 30
	if got, least := recoveryWithin(large), time.Duration(large/(1<<20))*time.Second; got < least {
		t.Errorf("a blob of %d bytes is given %v, less than %v (1 MB/s)", int64(large), got, least)
	}
	if got := recoveryWithin(0); got != recoveryTimeout {
		t.Errorf("a small answer is given %v, want %v", got, recoveryTimeout)
	}
	var callCtx context.Context
	rc, err := withinCall(t.Context(), recoveryWithin(large), func(ctx context.Context) (io.ReadCloser, error) {
		callCtx = ctx
		return io.NopCloser(strings.NewReader("blob")), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := callCtx.Deadline(); !ok || time.Until(d) < recoveryWithin(large)-time.Hour {
		t.Errorf("the call's deadline: %v (set %v), want about %v from now", d, ok, recoveryWithin(large))
	}
	if callCtx.Err() != nil {
		t.Fatalf("the call's context ended before its body was closed: %v", callCtx.Err())
	}
	rc.Close()
	if callCtx.Err() == nil {
		t.Error("the call's context outlives its body")
	}
}

// TestRecoveryCutsAStalledAlly: a recovery call whose ally sends nothing
// for recoveryIdle is cut, before its answer's headers or between two
// reads of its body, and so is one whose body comes slower on average than
// recoveryMinRate once recoveryIdle has passed, with an error saying so.
// Before, a call was waited for until its deadline: ten minutes, and the
// blob's size at 1 MB/s.
func TestRecoveryCutsAStalledAlly(t *testing.T) {
	defer func(d time.Duration) { recoveryIdle = d }(recoveryIdle)
	recoveryIdle = 50 * time.Millisecond
	const deadline = time.Hour // the call's own deadline: never reached here
	within := func(what string, call func(ctx context.Context) (io.ReadCloser, error)) error {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			rc, err := withinCall(t.Context(), deadline, call)
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: a stalled call still waited for after 30s (its idle bound %v)", what, recoveryIdle)
			return nil
		}
	}
	// The ally answers nothing.
	err := within("no answer", func(ctx context.Context) (io.ReadCloser, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if !errors.Is(err, errAllyStalled) {
		t.Errorf("no answer: %v, want errAllyStalled", err)
	}
	// The ally sends a few bytes of its body, then nothing.
	err = within("a body that stops", func(ctx context.Context) (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader("a few bytes"), stalledBody{ctx})), nil
	})
	if !errors.Is(err, errAllyStalled) || !strings.Contains(err.Error(), "sent nothing") {
		t.Errorf("a body that stops: %v, want errAllyStalled", err)
	}
	// The ally trickles: a byte at a time, each read keeping clear of
	// the idle cut, but slower on average than recoveryMinRate (made
	// huge here) once the idle bound has passed.
	defer func(r int64) { recoveryMinRate = r }(recoveryMinRate)
	recoveryMinRate = 1 << 40
	err = within("a trickle", func(ctx context.Context) (io.ReadCloser, error) {
		return io.NopCloser(tricklingBody{ctx}), nil
	})
	if !errors.Is(err, errAllyStalled) || !strings.Contains(err.Error(), "bytes a second") {
		t.Errorf("a trickle: %v, want errAllyStalled naming the rate", err)
	}
	// An answer read to its end is not cut (the idle bound made long:
	// this checks what the cut lets through, not how fast the test runs).
	recoveryIdle = time.Hour
	if err := within("a whole answer", func(ctx context.Context) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("the whole answer")), nil
	}); err != nil {
		t.Errorf("a whole answer: %v", err)
	}
}

// tricklingBody is a body that sends a byte at each read until its call's
// context ends.
type tricklingBody struct{ ctx context.Context }

func (b tricklingBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = 't'
	return 1, nil
}

// stalledBody is a body that sends nothing until its call's context ends.
type stalledBody struct{ ctx context.Context }

func (b stalledBody) Read([]byte) (int, error) {
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}
