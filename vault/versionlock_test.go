package vault

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site/fault"
)

// sitesLocks returns the lock of every manifest copy of version id, by
// site, and the index's.
func (n *testNode) sitesLocks(id manifest.ID) (map[string]*manifest.Lock, *manifest.Lock) {
	t := n.t
	t.Helper()
	out := map[string]*manifest.Lock{}
	for sid, d := range n.dirs {
		raw, err := os.ReadFile(filepath.Join(d, filepath.FromSlash(manifest.BlobName(id))))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		l, err := manifest.EnvelopeLen(raw)
		if err != nil {
			t.Fatal(err)
		}
		m, err := n.e.OpenEnvelope(raw[:l])
		if err != nil {
			t.Fatal(err)
		}
		out[sid] = m.Lock
	}
	info, err := n.e.Stat(t.Context(), "registry", "doc", id)
	if err != nil {
		t.Fatal(err)
	}
	return out, info.Lock
}

type holdKey struct{}

// TestLockChangesOneAtATime: two lock changes of one version at once. A
// legal hold has read the version (no retention yet) and is reading its
// copies to rewrite them when a COMPLIANCE retention is set. Before, the
// retention went through at once and was acknowledged, then the hold wrote
// its revision, built on the one without the retention, over every copy
// and the index: the retention was gone, and a delete would have gone
// through once the hold was lifted (invariant 10). Now the retention waits
// for the hold's commit and is made to its revision: both stay.
func TestLockChangesOneAtATime(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	id := n.put("doc", content("doc", 3000)).VersionID
	name := manifest.BlobName(id)
	release := make(chan struct{})
	reading := make(chan struct{}, len(topology))
	var mu sync.Mutex
	gets := map[string]int{}
	for _, d := range topology {
		n.faults[d.ID].Set(fault.Config{BeforeGet: func(ctx context.Context, blob string) {
			if blob != name || ctx.Value(holdKey{}) == nil {
				return
			}
			mu.Lock()
			gets[d.ID]++
			second := gets[d.ID] == 2
			mu.Unlock()
			if second {
				// The hold read the copies' envelopes (newestCopy) and
				// now reads them whole to rewrite them.
				reading <- struct{}{}
				<-release
			}
		}})
	}
	waiting := make(chan struct{}, 16)
	testHookVersionWait = func(manifest.ID) {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	defer func() { testHookVersionWait = nil }()

	holdDone := make(chan error, 1)
	go func() {
		_, err := n.e.SetLegalHold(context.WithValue(ctx, holdKey{}, true), "registry", "doc", id, true)
		holdDone <- err
	}()
	<-reading
	until := time.Now().Add(10 * 365 * 24 * time.Hour).Truncate(time.Second)
	retDone := make(chan error, 1)
	go func() {
		_, err := n.e.SetRetention(ctx, "registry", "doc", id, Compliance, until, false)
		retDone <- err
	}()
	var retErr error
	retFirst := false
	select {
	case retErr = <-retDone: // acknowledged while the hold is under way
		retFirst = true
	case <-waiting: // waits for the hold
	}
	close(release)
	if err := <-holdDone; err != nil {
		t.Fatalf("legal hold: %v", err)
	}
	if !retFirst {
		retErr = <-retDone
	}
	if retErr != nil {
		t.Fatalf("retention: %v", retErr)
	}
	for _, d := range topology {
		n.faults[d.ID].Set(fault.Config{})
	}
	copies, index := n.sitesLocks(id)
	for sid, l := range copies {
		if l == nil || l.Mode != Compliance || !l.Until.Equal(until) || !l.LegalHold {
			t.Errorf("site %s's copy: lock %+v; want the acknowledged COMPLIANCE retention and the hold", sid, l)
		}
	}
	if index == nil || index.Mode != Compliance || !index.LegalHold {
		t.Errorf("the index: lock %+v; want the COMPLIANCE retention and the hold", index)
	}
}

// TestRelocateRefusesAChangedVersion: scrub reads a version's manifest,
// checks its shards (which takes as long as they are large) and only then
// moves what it must. A lock set in between is committed at the next
// revision. Before, the move wrote the revision scrub had read, one up,
// over every copy and the index: the retention was gone. Now the move
// checks, under the version's lock, that the index still holds the
// revision it was given, and writes nothing if not (ErrChanged; scrub
// checks the version again).
func TestRelocateRefusesAChangedVersion(t *testing.T) {
	for _, c := range []struct {
		name string
		size int
	}{{"inline", 3000}, {"streamed", 3*testStripe + 100}} {
		t.Run(c.name, func(t *testing.T) {
			n := newTestNode(t, relocationSites...)
			ctx := t.Context()
			id := n.put("doc", content("doc", c.size)).VersionID
			m, _, err := n.e.resolve(ctx, "registry", "doc", id)
			if err != nil {
				t.Fatal(err)
			}
			until := time.Now().Add(10 * 365 * 24 * time.Hour).Truncate(time.Second)
			if _, err := n.e.SetRetention(ctx, "registry", "doc", id, Compliance, until, false); err != nil {
				t.Fatal(err)
			}
			if _, err := n.e.Relocate(ctx, m, Relocation{Sites: moveThree(t, m, relocationSites)}); !errors.Is(err, ErrChanged) {
				t.Fatalf("a move of the revision read before a retention was set: %v, want %v", err, ErrChanged)
			}
			copies, index := n.sitesLocks(id)
			for sid, l := range copies {
				if l == nil || l.Mode != Compliance || !l.Until.Equal(until) {
					t.Errorf("site %s's copy: lock %+v; want the COMPLIANCE retention", sid, l)
				}
			}
			if index == nil || index.Mode != Compliance {
				t.Errorf("the index: lock %+v; want the COMPLIANCE retention", index)
			}
		})
	}
}
