package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site/fault"
)

// sitesLocks returns the lock of every manifest copy of version id, by
// site, and the index's.
// wantCompliance fails the test unless every site's copy of id and the
// index hold a COMPLIANCE retention (the copies until until).
func (n *testNode) wantCompliance(id manifest.ID, until time.Time) {
	t := n.t
	t.Helper()
	copies, index := n.sitesLocks(id)
	for sid, l := range copies {
		if l == nil || l.Mode != Compliance || !l.Until.Equal(until) {
			t.Errorf("site %s's copy: lock %+v; want the COMPLIANCE retention", sid, l)
		}
	}
	if index == nil || index.Mode != Compliance {
		t.Errorf("the index: lock %+v; want the COMPLIANCE retention", index)
	}
}

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
	waiting := watchVersionWaits(t)

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
			n.wantCompliance(id, until)
		})
	}
}

// TestScrubWritesRefuseAChangedVersion: what scrub writes from a manifest
// it read before its checks (a copy written again where one is missing or
// damaged, a delete marker's copies moved, a newer revision found on the
// sites taken into the index) is written under the version's lock and only
// if the index still holds what scrub read; otherwise nothing is written
// (ErrChanged, and scrub checks the version again). Before, RestoreCopies
// and MoveMarker took no lock and checked nothing: a copy of the revision
// read was written over the copy a retention set meanwhile had written (the
// site's copy lost the COMPLIANCE retention), and a marker's move wrote its
// revision, one up, over the index's newer one (the revision committed
// meanwhile gone from the index). A marker removed meanwhile was refused
// before too (its index entry read), and still is. Scrub put a newer
// revision found on the sites into the index as it was (index.Put): one
// committed since (a legal hold) was undone in the index; IndexNewer is
// new, so that case tests its refusal.
func TestScrubWritesRefuseAChangedVersion(t *testing.T) {
	until := time.Now().Add(10 * 365 * 24 * time.Hour).Truncate(time.Second)
	t.Run("restore copies", func(t *testing.T) {
		n := newTestNode(t)
		ctx := t.Context()
		id := n.put("doc", content("doc", 3*testStripe+100)).VersionID
		m, env, err := n.e.resolve(ctx, "registry", "doc", id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.e.SetRetention(ctx, "registry", "doc", id, Compliance, until, false); err != nil {
			t.Fatal(err)
		}
		// Scrub found a site's copy missing or damaged before the
		// retention was set.
		if err := n.e.RestoreCopies(ctx, m, env, manifestSites(m)[:1]); !errors.Is(err, ErrChanged) {
			t.Errorf("a copy of the revision read before a retention was set written again: %v, want %v", err, ErrChanged)
		}
		n.wantCompliance(id, until)
		// The revision the index holds is written.
		m, env, err = n.e.resolve(ctx, "registry", "doc", id)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.e.RestoreCopies(ctx, m, env, manifestSites(m)[:1]); err != nil {
			t.Errorf("restore copies of the index's revision: %v", err)
		}
	})
	t.Run("move a delete marker removed meanwhile", func(t *testing.T) {
		n := newTestNode(t, relocationSites...)
		ctx := t.Context()
		data := content("doc", 3000)
		n.put("doc", data)
		del, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{})
		if err != nil || !del.DeleteMarker {
			t.Fatalf("delete: %+v, %v", del, err)
		}
		m, _, err := n.e.resolve(ctx, "registry", "doc", del.VersionID)
		if m == nil {
			t.Fatalf("the marker: %v", err)
		}
		// Scrub read the marker, found one of its copies on a site lost;
		// meanwhile the marker is removed, undeleting the object.
		if _, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{VersionID: del.VersionID}); err != nil {
			t.Fatal(err)
		}
		if _, err := n.e.MoveMarker(ctx, m, map[string]bool{m.Copies[0]: true}); err == nil {
			t.Error("a delete marker removed meanwhile was moved")
		}
		if _, err := n.ix.Get(ctx, "registry", "doc", del.VersionID); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("the removed delete marker in the index: %v, want %v", err, index.ErrNotFound)
		}
		if got := n.mustRead("doc"); !bytes.Equal(got, data) {
			t.Error("the undeleted object does not read back")
		}
	})
	t.Run("move a delete marker changed meanwhile", func(t *testing.T) {
		n := newTestNode(t, relocationSites...)
		ctx := t.Context()
		n.put("doc", content("doc", 3000))
		del, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := n.e.resolve(ctx, "registry", "doc", del.VersionID)
		if m == nil {
			t.Fatalf("the marker: %v", err)
		}
		// Another revision committed meanwhile (as a re-wrap does).
		next := *m
		next.Revision++
		nenv, err := manifest.Seal(&next, n.e.sealKeys())
		if err != nil {
			t.Fatal(err)
		}
		if err := n.e.IndexNewer(ctx, &next, index.Version{Vault: next.Vault, Key: next.Key, ID: next.Version, Created: next.Created, DeleteMarker: true, Label: next.Label, Envelope: nenv}); err != nil {
			t.Fatal(err)
		}
		if _, err := n.e.MoveMarker(ctx, m, map[string]bool{m.Copies[0]: true}); !errors.Is(err, ErrChanged) {
			t.Errorf("a move of the marker's revision read before another was committed: %v, want %v", err, ErrChanged)
		}
		if _, got, _ := n.e.resolve(ctx, "registry", "doc", del.VersionID); !bytes.Equal(got, nenv) {
			t.Error("the index no longer holds the revision committed meanwhile")
		}
	})
	t.Run("index a newer revision", func(t *testing.T) {
		n := newTestNode(t)
		ctx := t.Context()
		id := n.put("doc", content("doc", 3000)).VersionID
		if _, err := n.e.SetRetention(ctx, "registry", "doc", id, Compliance, until, false); err != nil {
			t.Fatal(err)
		}
		// Scrub found revision 1 on the sites (the index behind it) ...
		m1, env1, err := n.e.resolve(ctx, "registry", "doc", id)
		if err != nil {
			t.Fatal(err)
		}
		// ... and a legal hold is committed at revision 2 meanwhile.
		if _, err := n.e.SetLegalHold(ctx, "registry", "doc", id, true); err != nil {
			t.Fatal(err)
		}
		v1 := index.Version{Vault: m1.Vault, Key: m1.Key, ID: m1.Version, Created: m1.Created, Size: m1.Size, ETag: m1.ETag, Label: m1.Label, Envelope: env1}
		if err := n.e.IndexNewer(ctx, m1, v1); !errors.Is(err, ErrChanged) {
			t.Errorf("revision 1 indexed over revision 2: %v, want %v", err, ErrChanged)
		}
		if _, l := n.sitesLocks(id); l == nil || !l.LegalHold || l.Mode != Compliance {
			t.Errorf("the index: lock %+v; want the retention and the hold", l)
		}
		// A version deleted meanwhile is not put back.
		id2 := n.put("doc", content("doc2", 3000)).VersionID
		m2, env2, err := n.e.resolve(ctx, "registry", "doc", id2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{VersionID: id2}); err != nil {
			t.Fatal(err)
		}
		m2.Revision++
		if err := n.e.IndexNewer(ctx, m2, index.Version{Vault: m2.Vault, Key: m2.Key, ID: m2.Version, Created: m2.Created, Envelope: env2}); err == nil {
			t.Error("a version deleted meanwhile was put back in the index")
		}
		if _, err := n.ix.Get(ctx, "registry", "doc", id2); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("the deleted version in the index: %v, want %v", err, index.ErrNotFound)
		}
	})
}

type completeKey struct{}

// TestCompletionsOneAtATime: two completions of one upload at once (a
// client retrying a completion that takes long), naming different parts.
// Each writes the same version's manifest and removes the parts its list
// does not name. Before, the second went through while the first was
// writing its copies: it committed parts 1 and 3 and removed part 2, then
// the first wrote and committed parts 1 and 2 over it, so the object
// named a part whose blobs were gone (unreadable; invariant 10). Now the
// second waits for the first under the version's lock, then finds the
// version committed and answers with it: the object reads back whole.
func TestCompletionsOneAtATime(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	up, err := n.e.CreateUpload(ctx, "registry", "mp", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts := map[int][]byte{1: content("part-1", MinPartSize), 2: content("part-2", 5000), 3: content("part-3", 7000)}
	etags := map[int]string{}
	for i := 1; i <= 3; i++ {
		p, err := n.e.PutPart(ctx, "registry", "mp", up.ID, i, bytes.NewReader(parts[i]), int64(len(parts[i])), func() string { return fmt.Sprintf("\"%032x\"", i) })
		if err != nil {
			t.Fatal(err)
		}
		etags[i] = p.ETag
	}
	version, ok := completedAs(up.ID)
	if !ok {
		t.Fatalf("upload id %s names no version", up.ID)
	}
	name := manifest.BlobName(version)
	release := make(chan struct{})
	writing := make(chan struct{}, len(topology))
	for _, d := range topology {
		n.faults[d.ID].Set(fault.Config{BeforePut: func(ctx context.Context, blob string) {
			if blob != name || ctx.Value(completeKey{}) == nil {
				return
			}
			writing <- struct{}{}
			<-release
		}})
	}
	waiting := watchVersionWaits(t)
	type result struct {
		info ObjectInfo
		err  error
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go func() {
		info, err := n.e.CompleteUpload(context.WithValue(ctx, completeKey{}, true), "registry", "mp", up.ID, []CompletePart{{1, etags[1]}, {2, etags[2]}})
		first <- result{info, err}
	}()
	<-writing // the first is writing its manifest's copies
	go func() {
		info, err := n.e.CompleteUpload(ctx, "registry", "mp", up.ID, []CompletePart{{1, etags[1]}, {3, etags[3]}})
		second <- result{info, err}
	}()
	var b result
	secondFirst := false
	select {
	case b = <-second: // went through while the first was under way
		secondFirst = true
	case <-waiting: // waits for the first
	}
	close(release)
	a := <-first
	if !secondFirst {
		b = <-second
	}
	for _, d := range topology {
		n.faults[d.ID].Set(fault.Config{})
	}
	if a.err != nil {
		t.Fatalf("first completion: %v", a.err)
	}
	if b.err != nil {
		t.Fatalf("second completion: %v", b.err)
	}
	if secondFirst {
		t.Error("the second completion went through while the first was writing its manifest")
	}
	if b.info.ETag != a.info.ETag {
		t.Errorf("the second completion answered ETag %s, the first %s: want the first's version", b.info.ETag, a.info.ETag)
	}
	got, _, err := n.read("mp", GetOptions{Length: -1})
	if err != nil {
		t.Fatalf("read the completed object: %v", err)
	}
	if want := append(append([]byte(nil), parts[1]...), parts[2]...); !bytes.Equal(got, want) {
		t.Errorf("read %d bytes, not parts 1 and 2 (%d bytes)", len(got), len(want))
	}
}

// TestCompletionsOfOneUploadOneAtATime: a client retries a completion that
// is slow to answer, and the two run at once. Before, both found the
// version not committed yet; the first committed it, a COMPLIANCE
// retention was set on it and acknowledged, and the second then wrote the
// upload's revision 0, without the retention, over every copy and the
// index entry: the delete that the retention forbids went through
// (invariant 10). Now a completion holds the version's lock from that
// check to its commit: the second waits, and finds the upload completed.
func TestCompletionsOfOneUploadOneAtATime(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	up, p := n.onePartUpload(content("part", 3*testStripe))
	parts := []CompletePart{{1, p.ETag}}
	checked := make(chan struct{})
	release := make(chan struct{})
	waiting := watchVersionWaits(t)
	type result struct {
		info ObjectInfo
		err  error
	}
	first := make(chan result, 1)
	go func() {
		// Held after its checks, before it writes anything.
		info, err := n.e.CompleteUploadWith(ctx, "registry", "mp", up.ID, parts, CompleteOptions{Checksums: func(string, string, []PartInfo) (map[string]string, error) {
			close(checked)
			<-release
			return nil, nil
		}})
		first <- result{info, err}
	}()
	<-checked
	second := make(chan result, 1)
	go func() {
		info, err := n.e.CompleteUpload(ctx, "registry", "mp", up.ID, parts)
		second <- result{info, err}
	}()
	until := time.Now().Add(10 * 365 * 24 * time.Hour).Truncate(time.Second)
	var id manifest.ID
	retained := false
	select {
	case r := <-second: // it went through while the first was held
		if r.err != nil {
			t.Fatalf("the second completion: %v", r.err)
		}
		id = r.info.VersionID
		if _, err := n.e.SetRetention(ctx, "registry", "mp", id, Compliance, until, false); err != nil {
			t.Fatal(err)
		}
		retained = true
		close(release)
		<-first
	case <-waiting: // it waits for the first
		close(release)
		r1, r2 := <-first, <-second
		if r1.err != nil || r2.err != nil {
			t.Fatalf("completions: %v, %v", r1.err, r2.err)
		}
		if r1.info.VersionID != r2.info.VersionID {
			t.Fatalf("the completions made versions %s and %s, want one", r1.info.VersionID, r2.info.VersionID)
		}
		id = r1.info.VersionID
	}
	if !retained {
		if _, err := n.e.SetRetention(ctx, "registry", "mp", id, Compliance, until, false); err != nil {
			t.Fatal(err)
		}
	}
	info, err := n.e.Stat(ctx, "registry", "mp", id)
	if err != nil {
		t.Fatal(err)
	}
	if info.Lock == nil || info.Lock.Mode != Compliance {
		t.Errorf("the index after both completions: lock %+v, want the COMPLIANCE retention", info.Lock)
	}
	if _, err := n.e.Delete(ctx, "registry", "mp", DeleteOptions{VersionID: id}); !errors.Is(err, ErrLocked) {
		t.Fatalf("delete of the retained version: %v, want %v", err, ErrLocked)
	}
}

// shardBlobs counts the shard blobs on every site.
func (n *testNode) shardBlobs() int {
	c := 0
	for _, d := range n.dirs {
		filepath.WalkDir(filepath.Join(d, "s"), func(p string, de fs.DirEntry, err error) error {
			if err == nil && !de.IsDir() {
				c++
			}
			return nil
		})
	}
	return c
}

// TestPartUploadedAgainDuringItsCompletion: a client uploads a part again
// (a retry of a part whose answer it missed) while its completion, which
// has read the parts, is under way. Before, the part's index write
// returned the part it replaced and its blobs were removed at once; the
// completion then committed, and acknowledged, a manifest naming them:
// the object read "too few intact shards" (invariant 10: removed without
// evidence that nothing used them). Now the replaced blobs are removed
// under the version's lock, once the completion has ended and its
// manifest shows what it used: the object reads back as the parts the
// completion named, and the part uploaded too late, which nothing uses,
// is removed and refused as an upload that is gone. A part uploaded again
// with no completion under way still has its predecessor removed at once.
func TestPartUploadedAgainDuringItsCompletion(t *testing.T) {
	t.Run("completing", func(t *testing.T) {
		n := newTestNode(t)
		ctx := t.Context()
		first := content("first", 3*testStripe)
		up, p := n.onePartUpload(first)
		onePart := n.shardBlobs()
		waiting := watchVersionWaits(t)
		release, completed := n.heldCompletion(up.ID, p.ETag) // the completion has read the parts
		again := make(chan error, 1)
		go func() {
			_, err := n.e.PutPart(ctx, "registry", "mp", up.ID, 1, bytes.NewReader(content("again", 2*testStripe)), -1, nil)
			again <- err
		}()
		select {
		case err := <-again: // went through while the completion was under way
			again <- err
		case <-waiting:
		}
		close(release)
		if err := <-completed; err != nil {
			t.Fatalf("completion: %v", err)
		}
		if err := <-again; !errors.Is(err, ErrNoSuchUpload) {
			t.Errorf("the part uploaded again after the completion read the parts: %v, want %v", err, ErrNoSuchUpload)
		}
		got, _, err := n.read("mp", GetOptions{Length: -1})
		if err != nil {
			t.Fatalf("read the completed object: %v", err)
		}
		if !bytes.Equal(got, first) {
			t.Errorf("the completed object reads %d bytes, not the %d of the part it named", len(got), len(first))
		}
		if got := n.shardBlobs(); got != onePart {
			t.Errorf("%d shard blobs left, want the %d of the part the object uses", got, onePart)
		}
	})
	t.Run("open", func(t *testing.T) {
		n := newTestNode(t)
		ctx := t.Context()
		up, _ := n.onePartUpload(content("first", 3*testStripe))
		onePart := n.shardBlobs()
		data := content("again", 2*testStripe)
		p, err := n.e.PutPart(ctx, "registry", "mp", up.ID, 1, bytes.NewReader(data), -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.shardBlobs(); got != onePart {
			t.Errorf("%d shard blobs after the part was uploaded again, want %d: the replaced part's were not removed", got, onePart)
		}
		if _, err := n.e.CompleteUpload(ctx, "registry", "mp", up.ID, []CompletePart{{1, p.ETag}}); err != nil {
			t.Fatal(err)
		}
		if got := n.mustRead("mp"); !bytes.Equal(got, data) {
			t.Errorf("the object reads %d bytes, not the %d of the part uploaded again", len(got), len(data))
		}
	})
}

// TestAbortWaitsForACompletion: an upload is aborted (a clean-up of
// uploads left open) while its completion is under way. Before, the abort
// found the version not committed yet and removed the parts' shards, and
// the completion, which had read the parts before, then committed and
// acknowledged a version whose shards were gone. Now the abort waits for
// the completion (the version's lock) and finds the upload completed.
func TestAbortWaitsForACompletion(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	data := content("part", 3*testStripe)
	up, p := n.onePartUpload(data)
	waiting := watchVersionWaits(t)
	release, completed := n.heldCompletion(up.ID, p.ETag)
	aborted := make(chan error, 1)
	go func() { aborted <- n.e.AbortUpload(ctx, "registry", "mp", up.ID) }()
	select {
	case err := <-aborted: // went through while the completion was under way
		aborted <- err
	case <-waiting:
	}
	close(release)
	if err := <-completed; err != nil {
		t.Fatalf("completion: %v", err)
	}
	<-aborted
	if got := n.mustRead("mp"); !bytes.Equal(got, data) {
		t.Fatalf("the completed object reads %d bytes, not the %d of its part", len(got), len(data))
	}
}

// approverLocked records requests under a lock of its own, as the node's
// does (node.Require takes reqMu, which node.Decide holds while it carries
// an approved request out).
type approverLocked struct {
	mu        *sync.Mutex
	requiring chan struct{}
}

func (a approverLocked) Require(ctx context.Context, op Operation) error {
	a.requiring <- struct{}{}
	a.mu.Lock()
	defer a.mu.Unlock()
	return &PendingError{RequestID: "r-" + op.Kind, Needed: 2}
}

// TestApprovalNotAskedUnderTheVersionLock: a delete bypassing GOVERNANCE
// retention asks for two custodians' approval, and the node records the
// request under its requests' lock; a decision that completes another
// request holds that lock while it carries the request out, which changes
// the same version. Before, the delete asked with the version's lock held
// (c67f538): each waited for the other, for as long as the decision's call
// lasted, and every request and decision of the node behind them. Now a
// change gives its version's lock up before it asks.
func TestApprovalNotAskedUnderTheVersionLock(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(ctx context.Context, n *testNode, id manifest.ID) error
	}{
		{"delete bypassing GOVERNANCE", func(ctx context.Context, n *testNode, id manifest.ID) error {
			_, err := n.e.Delete(ctx, "registry", "doc", DeleteOptions{VersionID: id, BypassGovernance: true})
			return err
		}},
		{"GOVERNANCE shortened", func(ctx context.Context, n *testNode, id manifest.ID) error {
			_, err := n.e.SetRetention(ctx, "registry", "doc", id, Governance, time.Now().Add(time.Minute), true)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newTestNode(t)
			ctx := t.Context()
			id := n.put("doc", content("doc", 3000)).VersionID
			if _, err := n.e.SetRetention(ctx, "registry", "doc", id, Governance, time.Now().Add(time.Hour), false); err != nil {
				t.Fatal(err)
			}
			var requests sync.Mutex
			a := approverLocked{mu: &requests, requiring: make(chan struct{}, 1)}
			n.e.approver = a
			waiting := watchVersionWaits(t)

			// A decision holds the requests' lock...
			requests.Lock()
			asked := make(chan error, 1)
			go func() { asked <- c.change(ctx, n, id) }()
			// ...while the change asks for approval...
			<-a.requiring
			// ...and carries out an approved change of the same version.
			dctx, cancel := context.WithCancel(ctx)
			defer cancel()
			decided := make(chan error, 1)
			go func() {
				_, err := n.e.SetLegalHold(Approved(dctx), "registry", "doc", id, true)
				decided <- err
			}()
			select {
			case err := <-decided:
				if err != nil {
					t.Errorf("the approved change: %v", err)
				}
			case <-waiting:
				t.Error("the approved change waits for the version's lock, held by a change that waits for the approver's lock it holds: deadlock")
				cancel()
				<-decided
			}
			requests.Unlock()
			if err := <-asked; !errors.Is(err, ErrApprovalRequired) {
				t.Fatalf("the change asking for approval: %v, want %v", err, ErrApprovalRequired)
			}
		})
	}
}

// watchVersionWaits returns a channel that receives (without blocking the
// engine: it holds 16) each time a change waits for a version's lock,
// through testHookVersionWait, until the test ends.
func watchVersionWaits(t *testing.T) <-chan struct{} {
	waiting := make(chan struct{}, 16)
	testHookVersionWait = func(manifest.ID) {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	t.Cleanup(func() { testHookVersionWait = nil })
	return waiting
}

// TestPartUploadedAgainOnARestoredIndex: an index restored from a backup
// taken before an upload completed still lists the upload, and not the
// version its completion committed, whose manifest copies are on the
// sites. A part uploaded again under that upload (the client's retry, or
// a writer who kept the upload's id) must not remove the blobs of the part
// it replaces: the committed version uses them. The index's not holding
// the version is no evidence; the sites' copies keep the blobs (for
// collection, which refuses a stale index). On the code before, the part's
// blobs were removed and the object, once the index was rebuilt, could not
// be read.
func TestPartUploadedAgainOnARestoredIndex(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	first := content("first", 3*testStripe)
	up, p := n.onePartUpload(first)
	info, err := n.e.CompleteUpload(ctx, "registry", "mp", up.ID, []CompletePart{{1, p.ETag}})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := n.e.resolve(ctx, "registry", "mp", info.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := n.ix.Get(ctx, "registry", "mp", info.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	blobs := n.shardBlobs()
	// The restored index: the version gone from it (its upload, as the
	// backup had it, would still be listed).
	if err := n.ix.Delete(ctx, "registry", "mp", info.VersionID); err != nil {
		t.Fatal(err)
	}
	// The part uploaded again has taken part 1's place in the index; its
	// own blobs are not the question here (none).
	if err := n.e.replacedPart(ctx, "registry", "mp", up.ID, info.VersionID, m.Parts[0], manifest.Part{Number: 1}); err != nil && !errors.Is(err, ErrNoSuchUpload) {
		t.Fatal(err)
	}
	if got := n.shardBlobs(); got != blobs {
		t.Fatalf("%d shard blobs after the part was replaced on a restored index, %d before: the committed version's part was removed", got, blobs)
	}
	// The index rebuilt (here: the entry put back): the object reads.
	if err := n.ix.Put(ctx, entry); err != nil {
		t.Fatal(err)
	}
	got, _, err := n.read("mp", GetOptions{Length: -1})
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("the completed object after the index came back: %d bytes, %v", len(got), err)
	}
}

// onePartUpload starts an upload of "mp" and uploads data as its part 1.
func (n *testNode) onePartUpload(data []byte) (UploadInfo, PartInfo) {
	n.t.Helper()
	ctx := n.t.Context()
	up, err := n.e.CreateUpload(ctx, "registry", "mp", PutOptions{})
	if err != nil {
		n.t.Fatal(err)
	}
	p, err := n.e.PutPart(ctx, "registry", "mp", up.ID, 1, bytes.NewReader(data), -1, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	return up, p
}

// heldCompletion starts the completion of upload "mp" with part 1 (etag)
// and returns once it has read the parts, held there (before it writes
// anything) until release is closed; completed then gets its error.
func (n *testNode) heldCompletion(uploadID, etag string) (release chan struct{}, completed chan error) {
	checked := make(chan struct{})
	release, completed = make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := n.e.CompleteUploadWith(n.t.Context(), "registry", "mp", uploadID, []CompletePart{{1, etag}}, CompleteOptions{Checksums: func(string, string, []PartInfo) (map[string]string, error) {
			close(checked)
			<-release
			return nil, nil
		}})
		completed <- err
	}()
	<-checked
	return release, completed
}
