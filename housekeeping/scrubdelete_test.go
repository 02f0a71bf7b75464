package housekeeping

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// stallingIndex is the node's index with a hook before each Delete, and
// Delete failing with failDelete when set.
type stallingIndex struct {
	*boltindex.Index
	beforeDelete func()
	failDelete   error
}

func (s *stallingIndex) Delete(ctx context.Context, vault, key string, id manifest.ID) error {
	if s.beforeDelete != nil {
		s.beforeDelete()
	}
	if s.failDelete != nil {
		return s.failDelete
	}
	return s.Index.Delete(ctx, vault, key, id)
}

// withIndex makes n's engine one over ix (n.ix wrapped).
func (n *testNode) withIndex(ix index.Index) {
	e, err := vault.New(vault.Config{NodeID: "test", Keys: n.keys, Index: ix, Sites: n.sites, Vaults: n.vaults, Audit: n.audit})
	if err != nil {
		n.t.Fatal(err)
	}
	n.e.Close(n.t.Context())
	n.e, n.k = e, New(e, nil)
	n.t.Cleanup(func() { e.Close(context.Background()) })
}

// blockedIn reports whether some goroutine is in both functions (their
// names as a stack trace prints them).
func blockedIn(fns ...string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		all := true
		for _, fn := range fns {
			all = all && strings.Contains(g, fn)
		}
		if all {
			return true
		}
	}
	return false
}

// TestScrubWaitsForADeleteUnderWay: a delete has recorded the deletion
// and not yet committed it to the index when collection, on the record,
// removes the version's shards, and scrub, which listed the version
// before, reads them. Before, scrub looked at the index again without the
// version's lock, found the version still there, and reported it LOST;
// the delete then committed. Now it looks again under the lock, waits for
// the delete, and counts the version as deleted: nothing lost.
func TestScrubWaitsForADeleteUnderWay(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	id := n.put("doc", content("doc", 5*testStripe)).VersionID
	recorded, release := make(chan struct{}), make(chan struct{})
	si := &stallingIndex{Index: n.ix, beforeDelete: func() {
		close(recorded)
		<-release
	}}
	n.withIndex(si)

	deleted := make(chan error, 1)
	go func() {
		_, err := n.e.Delete(ctx, "registry", "doc", vault.DeleteOptions{VersionID: id})
		deleted <- err
	}()
	<-recorded // the deletion is recorded, not committed
	// Collection removes the shards on the record.
	for _, d := range n.dirs {
		filepath.WalkDir(filepath.Join(d, "s"), func(p string, de fs.DirEntry, err error) error {
			if err == nil && !de.IsDir() {
				err = os.Remove(p)
			}
			return err
		})
	}
	scrubbed := make(chan ScrubReport, 1)
	go func() {
		rep, err := n.k.Scrub(ctx, ScrubOptions{})
		if err != nil {
			t.Error(err)
		}
		scrubbed <- rep
	}()
	var rep ScrubReport
	done := false
	for !done && !blockedIn("vault.(*Engine).Indexed", "housekeeping.(*Keeper).scrubVersion") {
		select {
		case rep = <-scrubbed: // finished while the delete was under way
			done = true
		case <-time.After(time.Millisecond): // look at the goroutines again
		}
	}
	close(release)
	if err := <-deleted; err != nil {
		t.Fatalf("delete: %v", err)
	}
	if !done {
		rep = <-scrubbed
	}
	if rep.Lost != 0 || rep.AtRisk != 0 {
		t.Errorf("scrub beside a delete under way: lost %d %q, at risk %d (degraded %d, unreachable %d, errors %q); want nothing", rep.Lost, rep.LostVersions, rep.AtRisk, rep.Degraded, rep.Unreachable, rep.Errors)
	}
}

// TestCollectionKeepsAVersionWhoseDeleteFailed: a delete records the
// deletion, then its index write fails (the index's disk full): it is
// answered with an error and the version stays listed. Before, collection
// removed the version's shards on the record alone (it kept the manifest
// copies of a version still in the index, not the shards), and the
// version, listed, read "too few intact shards". Now a shard named by a
// deletion record whose version is still in the index is kept.
func TestCollectionKeepsAVersionWhoseDeleteFailed(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	data := content("doc", 5*testStripe)
	id := n.put("doc", data).VersionID
	n.withIndex(&stallingIndex{Index: n.ix, failDelete: errors.New("index: disk full")})
	if _, err := n.e.Delete(ctx, "registry", "doc", vault.DeleteOptions{VersionID: id}); err == nil {
		t.Fatal("the delete went through with its index write failing")
	}
	c, err := n.k.Collect(ctx, CollectOptions{Grace: time.Nanosecond})
	if err != nil || c.Refused != "" {
		t.Fatalf("collection: %+v, %v", c, err)
	}
	got, _, err := n.read("doc", vault.GetOptions{Length: -1})
	if err != nil {
		t.Fatalf("the version whose delete failed, after a collection (removed %d): %v", c.Removed, err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("the version whose delete failed reads %d bytes, not its %d", len(got), len(data))
	}
}
