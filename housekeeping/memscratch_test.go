package housekeeping

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/fault"
	"github.com/embassy-dev/embassy/site/memory"
	"github.com/embassy-dev/embassy/vault"
)

// What collection and index adopt held in memory after the tenth pass
// (issue 15, eleventh pass): the abandonments a collection records
// itself, the names of the legacy journal batches it reads, and the
// versions adopt examines.

// TestAddedAbandonments checks the abandonments recorded after the sort
// against a map, looked up as they are added (as resolveIntents does)
// and after, with a small bound so that they spill to files and the files
// are merged.
func TestAddedAbandonments(t *testing.T) {
	defer func(a, b, c int) { sortRecords, maxSamples, addedMax = a, b, c }(sortRecords, maxSamples, addedMax)
	sortRecords, maxSamples, addedMax = 100, 16, 50
	r := rand.New(rand.NewPCG(7, 8))
	ev := testRecords(t)
	// Some abandonments before the sort, on the same blobs.
	var names []string
	want := map[string][]evidenceBlob{}
	sites := []string{"", "est-1", "lux-1", "fin-2"}
	name := func() string {
		if len(names) > 0 && r.IntN(4) == 0 {
			return names[r.IntN(len(names))]
		}
		n := manifest.ShardBlobName(randomID(r), r.IntN(6))
		if r.IntN(10) == 0 {
			n = "other/" + randomID(r).String()
		}
		names = append(names, n)
		return n
	}
	abandon := func() evidence.Record {
		rec := evidence.Record{Kind: evidence.Abandon, Version: randomID(r), Revision: r.IntN(3)}
		for range 1 + r.IntN(6) {
			b := evidence.Blob{Name: name(), Site: sites[r.IntN(len(sites))]}
			rec.Blobs = append(rec.Blobs, b)
			want[b.Name] = append(want[b.Name], evidenceBlob{site: b.Site, version: rec.Version, revision: rec.Revision})
		}
		return rec
	}
	for range 300 {
		ev.add(abandon())
	}
	if err := ev.finish(); err != nil {
		t.Fatal(err)
	}
	key := func(bs []evidenceBlob) []string {
		var out []string
		for _, b := range bs {
			out = append(out, fmt.Sprintf("%q %s %d", b.site, b.version, b.revision))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	check := func(n string) {
		t.Helper()
		_, got := ev.blob(n)
		if g, w := key(got), key(want[n]); !slices.Equal(g, w) {
			t.Fatalf("%s: abandoned %v, want %v", n, g, w)
		}
	}
	maxRuns := 0
	for i := range 5_000 {
		rec := abandon()
		// What resolveIntents asks before it records.
		for _, b := range rec.Blobs {
			_, got := ev.blob(b.Name)
			w := want[b.Name][:len(want[b.Name])-countIn(rec, b.Name)]
			if g, w := key(got), key(w); !slices.Equal(g, w) {
				t.Fatalf("record %d, %s: abandoned %v before it is added, want %v", i, b.Name, g, w)
			}
		}
		ev.add(rec)
		maxRuns = max(maxRuns, len(ev.spilled))
		if i%97 == 0 {
			check(names[r.IntN(len(names))])
		}
	}
	if err := ev.failed(); err != nil {
		t.Fatal(err)
	}
	for _, n := range append(names, "never/recorded", manifest.ShardBlobName(randomID(r), 2)) {
		check(n)
	}
	// 5,000 records of 3.5 blobs on average, 50 at a time: 350 spills,
	// merged into at most log2(350)+1 files.
	if maxRuns < 3 || len(ev.spilled) > 10 {
		t.Fatalf("%d spilled files (at most %d at once): the test does not merge them, or they are not merged", len(ev.spilled), maxRuns)
	}
	t.Logf("%d spilled files at the end, at most %d", len(ev.spilled), maxRuns)
}

// countIn counts the blobs of rec named name.
func countIn(rec evidence.Record, name string) int {
	n := 0
	for _, b := range rec.Blobs {
		if b.Name == name {
			n++
		}
	}
	return n
}

// TestAddedAbandonmentsHeapFlat: the abandonments a collection records
// itself (one for each write it finds never committed, six shards each)
// take no more heap for 50,000 such writes than for 5,000 (they were a
// map, a few hundred bytes a blob, until the collection ended). Before
// each is added its blobs are looked up, as resolveIntents does, and
// every tenth write's are looked up after.
func TestAddedAbandonmentsHeapFlat(t *testing.T) {
	heapFlat(t, "writes about 100 MB of scratch", 5_000, 50_000, "writes abandoned", func(n int) func() error {
		dir := t.TempDir()
		return func() error {
			ev, err := recordsIn(dir)
			if err != nil {
				return err
			}
			defer ev.close()
			if err := ev.finish(); err != nil {
				return err
			}
			write := func(r *rand.Rand) evidence.Record {
				rec := evidence.Record{Kind: evidence.Abandon, Version: randomID(r)}
				blob := randomID(r)
				for i, d := range topology {
					rec.Blobs = append(rec.Blobs, evidence.Blob{Name: manifest.ShardBlobName(blob, i), Site: d.ID})
				}
				return rec
			}
			r := rand.New(rand.NewPCG(9, 0))
			for range n {
				rec := write(r)
				for _, b := range rec.Blobs {
					if _, ab := ev.blob(b.Name); len(ab) > 0 {
						return fmt.Errorf("%s abandoned before it was", b.Name)
					}
				}
				ev.add(rec)
			}
			found := 0
			r = rand.New(rand.NewPCG(9, 0))
			for i := range n {
				rec := write(r)
				if i%10 != 0 {
					continue
				}
				for _, b := range rec.Blobs {
					if len(ev.abandonedOn(b.Name, b.Site)) == 1 {
						found++
					}
				}
			}
			if want := n / 10 * len(topology); found != want {
				return fmt.Errorf("%d blobs found abandoned, want %d", found, want)
			}
			return ev.failed()
		}
	})
}

// madeUpSite is a site that lists, under prefix, count names made up for
// a test after what it holds. A made-up name reads as body (not found
// when body is nil).
type madeUpSite struct {
	site.Site
	prefix string
	count  int
	name   func(i int) string
	body   []byte
}

func (s *madeUpSite) List(ctx context.Context, prefix string, fn func(site.Info) error) error {
	if err := s.Site.List(ctx, prefix, fn); err != nil {
		return err
	}
	if !strings.HasPrefix(s.prefix, prefix) {
		return nil
	}
	old := time.Now().Add(-24 * time.Hour)
	for i := range s.count {
		if err := fn(site.Info{Name: s.name(i), Size: int64(len(s.body)), Modified: old}); err != nil {
			return err
		}
	}
	return nil
}

func (s *madeUpSite) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if s.body != nil && strings.HasPrefix(name, s.prefix) {
		return io.NopCloser(bytes.NewReader(s.body)), nil
	}
	return s.Site.Get(ctx, name, off, length)
}

// madeUpNode is a keeper over an engine with the test topology's sites in
// memory, each site made by wrap.
func madeUpNode(t *testing.T, wrap func(i int, s site.Site) site.Site) (*Keeper, *vault.Engine) {
	t.Helper()
	root := t.TempDir()
	keys, ix := benchKeysIndex(t, root)
	var sites []vault.Site
	for i, d := range topology {
		sites = append(sites, vault.Site{Descriptor: d, Store: wrap(i, memory.New())})
	}
	e, err := vault.New(vault.Config{NodeID: "madeup", Keys: keys, Index: ix, Sites: sites, Vaults: []vault.Vault{registry}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close(context.Background())
		ix.Close()
	})
	return New(e, nil).WithRebuildDir(filepath.Join(root, "rebuild")), e
}

// testRecords is empty records (of every kind) in a scratch space of the
// test's, closed when it ends.
func testRecords(t *testing.T) *records {
	t.Helper()
	ev, err := recordsIn(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ev.close)
	return ev
}

// recordsIn is empty records (of every kind) in a new scratch space in
// dir.
func recordsIn(dir string) (*records, error) {
	sp, err := newScratchSpace("collect", dir)
	if err != nil {
		return nil, err
	}
	return newRecords(sp, false)
}

// legacyOracle reads the legacy journal batches into ev as collection did
// before their names went to disk: evidence.ReadSite on each site in
// turn, with the names read so far in a map.
func legacyOracle(ctx context.Context, e *vault.Engine, ev *records) error {
	seen := map[string]bool{}
	for _, sid := range e.SiteIDs() {
		s, _ := e.Site(sid)
		err := evidence.ReadSite(ctx, s.Store, e.Keys(), e.NodeID(), func(name string) bool { return seen[name] },
			func(name string, recs []evidence.Record) error {
				seen[name] = true
				for _, r := range recs {
					ev.add(r)
				}
				return ev.failed()
			},
			func(string, error) { ev.bad++ })
		if err := ev.failed(); err != nil {
			return err
		}
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// TestLegacyBatchesRead: the records of the legacy journal batches, read
// with their names on disk, are those read with the names in a map, in
// the same order (the later of two upload ends wins, intents keep their
// order): batches on some sites and not others, a damaged copy on one
// site whose good copy is on another, a site whose reads fail and one
// that does not answer.
func TestLegacyBatchesRead(t *testing.T) {
	defer func(a, b int) { sortRecords, maxSamples = a, b }(sortRecords, maxSamples)
	sortRecords, maxSamples = 100, 16
	n := newTestNode(t)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(11, 12))
	var versions []manifest.ID
	var names []string
	uploads := []string{"u-1", "u-2", "u-3"}
	for range 50 {
		versions = append(versions, randomID(r))
	}
	for i := range 400 {
		var recs []evidence.Record
		for range 1 + r.IntN(3) {
			v := versions[r.IntN(len(versions))]
			b := manifest.ShardBlobName(randomID(r), r.IntN(6))
			names = append(names, b)
			switch r.IntN(4) {
			case 0:
				recs = append(recs, evidence.Record{Kind: evidence.Delete, Version: v, Blobs: []evidence.Blob{{Name: b}}})
			case 1:
				recs = append(recs, evidence.Record{Kind: evidence.Abandon, Version: v, Blobs: []evidence.Blob{{Name: b, Site: topology[r.IntN(6)].ID}}})
			case 2:
				recs = append(recs, evidence.Record{Kind: evidence.Intent, Version: v, Time: int64(i), Blobs: []evidence.Blob{{Name: b, Site: "est-1"}}})
			default:
				recs = append(recs, evidence.Record{Kind: evidence.UploadEnd, Upload: uploads[r.IntN(len(uploads))], Version: v})
			}
		}
		batch, err := evidence.SealBatch(n.keys, "test", recs)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%s%016x-%016x", evidence.Prefix, time.Now().UnixNano(), r.Uint64())
		for j, d := range topology {
			if r.IntN(10) < 4 {
				continue
			}
			body := batch
			if j == 0 && i%7 == 0 {
				body = append([]byte("damaged"), batch[7:]...)
			}
			s, _ := n.e.Site(d.ID)
			if err := s.Store.Put(ctx, name, bytes.NewReader(body), int64(len(body))); err != nil {
				t.Fatal(err)
			}
		}
	}
	n.faults["lux-2"].Set(fault.Config{GetErr: errors.New("disk busy")})
	n.faults["fin-2"].Set(fault.Config{Down: true})
	want := testRecords(t)
	if err := legacyOracle(ctx, n.e, want); err != nil {
		t.Fatal(err)
	}
	if err := want.finish(); err != nil {
		t.Fatal(err)
	}
	got, err := n.k.loadEvidence(ctx, want.sp)
	if err != nil {
		t.Fatal(err)
	}
	defer got.close()
	if got.bad != want.bad || got.bad == 0 {
		t.Fatalf("%d damaged batches, want %d (and some)", got.bad, want.bad)
	}
	deleted := 0
	for _, v := range versions {
		if got.deleted(v) != want.deleted(v) {
			t.Fatalf("%s: deleted %v, want %v", v, got.deleted(v), want.deleted(v))
		}
		if got.deleted(v) {
			deleted++
		}
	}
	for _, u := range uploads {
		gv, gok := got.uploadEnd(u)
		wv, wok := want.uploadEnd(u)
		if gv != wv || gok != wok {
			t.Fatalf("upload %s ended as %s %v, want %s %v", u, gv, gok, wv, wok)
		}
	}
	for _, b := range names {
		gd, ga := got.blob(b)
		wd, wa := want.blob(b)
		if fmt.Sprint(gd) != fmt.Sprint(wd) || fmt.Sprint(ga) != fmt.Sprint(wa) {
			t.Fatalf("%s: deleted %v abandoned %v, want %v %v", b, gd, ga, wd, wa)
		}
	}
	var gi, wi []evidence.Record
	got.eachIntent(func(r evidence.Record) error { gi = append(gi, r); return nil })
	want.eachIntent(func(r evidence.Record) error { wi = append(wi, r); return nil })
	if len(wi) == 0 || fmt.Sprint(gi) != fmt.Sprint(wi) {
		t.Fatalf("%d intents, want %d in the same order", len(gi), len(wi))
	}
	if err := errors.Join(got.failed(), want.failed()); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d damaged batches, %d of %d versions deleted, %d intents", got.bad, deleted, len(versions), len(gi))
}

// TestLegacyNamesHeapFlat: a node that ran the releases of the journal has
// a batch on every site for every group of records it wrote then; reading
// 200,000 of them on two sites takes no more heap than 10,000 (the names
// were a map and a list: about 100 bytes a name).
func TestLegacyNamesHeapFlat(t *testing.T) {
	heapFlat(t, "verifies 210,000 batches", 10_000, 200_000, "batches on two sites", func(n int) func() error {
		deleted := randomID(rand.New(rand.NewPCG(1, 1)))
		var made []*madeUpSite
		k, e := madeUpNode(t, func(i int, s site.Site) site.Site {
			if i >= 2 {
				return s
			}
			m := &madeUpSite{Site: s, prefix: evidence.Prefix, count: n,
				name: func(j int) string { return fmt.Sprintf("%s%016x-%016x", evidence.Prefix, j, j*7919) }}
			made = append(made, m)
			return m
		})
		body, err := evidence.SealBatch(e.Keys(), e.NodeID(), []evidence.Record{{Kind: evidence.Delete, Version: deleted}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range made {
			m.body = body
		}
		return func() error {
			sp, done, err := k.scratch("collect")
			if err != nil {
				return err
			}
			defer done()
			ev, err := k.loadEvidence(context.Background(), sp)
			if err != nil {
				return err
			}
			defer ev.close()
			if !ev.deleted(deleted) || ev.bad != 0 {
				return fmt.Errorf("deletion read %v, %d damaged batches", ev.deleted(deleted), ev.bad)
			}
			return nil
		}
	})
}

// TestAdoptTakesUnindexed: index adopt takes in exactly the versions on
// the sites that the index does not hold, in id order, and never one
// recorded as deleted; a second run finds nothing.
func TestAdoptTakesUnindexed(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	want := n.fillSizes("a/")
	n.leftByFailedDeletes(2) // their manifests stay on lux-1, recorded deleted
	var dropped []string
	for i := range 6 {
		key := fmt.Sprintf("a//%d", i)
		v, err := n.ix.Latest(ctx, "registry", key)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.ix.Delete(ctx, "registry", key, v.ID); err != nil {
			t.Fatal(err)
		}
		dropped = append(dropped, v.ID.String())
	}
	slices.Sort(dropped)
	rep, err := n.k.Adopt(ctx, AdoptOptions{Vault: "elsewhere"})
	if err != nil || rep.AdoptedCount != 0 || rep.Examined != len(dropped) {
		t.Fatalf("adopt in another vault: %+v, %v", rep, err)
	}
	rep, err = n.k.Adopt(ctx, AdoptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range rep.Adopted {
		got = append(got, s[strings.LastIndex(s, " ")+1:])
	}
	if !slices.Equal(got, dropped) || rep.AdoptedCount != len(dropped) || rep.KeptCount != 0 || len(rep.Kept) != 0 || rep.Examined != len(dropped) {
		t.Fatalf("adopted %v (%d), kept %v (%d), examined %d; want %v", got, rep.AdoptedCount, rep.Kept, rep.KeptCount, rep.Examined, dropped)
	}
	n.checkAll(want)
	if rep, err = n.k.Adopt(ctx, AdoptOptions{}); err != nil || rep.Examined != 0 {
		t.Fatalf("second adopt: %+v, %v", rep, err)
	}
}

// TestAdoptHeapFlat: index adopt over 100,000 versions on six sites that
// the index does not hold takes no more heap than over 1,000 (a map of
// each version's sites and a report naming each, a few hundred bytes a
// version). None of the made-up versions has a copy that verifies, so
// each is kept; the report names the first MaxListed and counts them all.
func TestAdoptHeapFlat(t *testing.T) {
	heapFlat(t, "600,000 index lookups", 1_000, 100_000, "versions on six sites", func(n int) func() error {
		ids := func(j int) string {
			return manifest.BlobName(randomID(rand.New(rand.NewPCG(uint64(j), 3))))
		}
		k, _ := madeUpNode(t, func(i int, s site.Site) site.Site {
			return &madeUpSite{Site: s, prefix: manifest.ManifestPrefix, count: n, name: ids}
		})
		return func() error {
			rep, err := k.Adopt(context.Background(), AdoptOptions{})
			if err != nil || rep.Examined != n || rep.KeptCount != n || len(rep.Kept) != min(n, MaxListed) || rep.AdoptedCount != 0 {
				return fmt.Errorf("examined %d, kept %d (%d listed), adopted %d, %v", rep.Examined, rep.KeptCount, len(rep.Kept), rep.AdoptedCount, err)
			}
			return nil
		}
	})
}

// TestCollectErrorsBounded: a site that fails every removal fails one for
// each blob to remove there; collection lists the first ones and counts
// the others, and removes them all once the site lets it.
func TestCollectErrorsBounded(t *testing.T) {
	defer func(n int) { collectErrorsListed = n }(collectErrorsListed)
	collectErrorsListed = 2
	n, want, before, _ := withGarbage(t, "e/", 6) // the garbage is on lux-1
	n.faults["lux-1"].Set(fault.Config{DeleteErr: errors.New("read-only")})
	c, err := n.k.Collect(t.Context(), CollectOptions{Grace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	failed := len(c.Errors) + c.ErrorsNotListed
	if len(c.Errors) != 2 || c.ErrorsNotListed == 0 || c.Removed != 0 || n.blobCount() != before {
		t.Fatalf("%d errors listed, %d not, %d removed: %+v", len(c.Errors), c.ErrorsNotListed, c.Removed, c)
	}
	for _, e := range c.Errors {
		if !strings.Contains(e, "read-only") {
			t.Fatalf("error %q", e)
		}
	}
	n.faults["lux-1"].Set(fault.Config{})
	c, err = n.k.Collect(t.Context(), CollectOptions{Grace: time.Nanosecond})
	if err != nil || c.Removed != failed || len(c.Errors) != 0 || n.blobCount() != before-failed {
		t.Fatalf("collection once lux-1 removes again: %+v, %v (want %d removed)", c, err, failed)
	}
	n.checkAll(want)
}

// TestAdoptScratchSpaceFails: index adopt that cannot write its scratch
// files (the records, the legacy batches' names, the versions found), at
// whatever point, fails naming the directory and adopts nothing; with the
// space it needs it adopts them all.
func TestAdoptScratchSpaceFails(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	want := n.fillSizes("s/")
	// Legacy batches on two sites, one deleting a version never stored.
	batch, err := evidence.SealBatch(n.keys, "test", []evidence.Record{{Kind: evidence.Delete, Version: manifest.NewID()}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		for _, d := range topology[:2] {
			s, _ := n.e.Site(d.ID)
			if err := s.Store.Put(ctx, fmt.Sprintf("%s%016x-%016x", evidence.Prefix, i, i), bytes.NewReader(batch), int64(len(batch))); err != nil {
				t.Fatal(err)
			}
		}
	}
	var dropped []string
	for i := range len(sizes) {
		key := fmt.Sprintf("s//%d", i)
		v, err := n.ix.Latest(ctx, "registry", key)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.ix.Delete(ctx, "registry", key, v.ID); err != nil {
			t.Fatal(err)
		}
		dropped = append(dropped, key)
	}
	dir := RebuildTempDir(n.root)
	n.k.WithRebuildDir(dir)
	failures := 0
	for limit := int64(1); ; limit += 64 {
		scratchFailAfter = limit
		rep, err := n.k.Adopt(ctx, AdoptOptions{})
		scratchFailAfter = 0
		if err == nil {
			if failures < 5 || rep.AdoptedCount != len(dropped) {
				t.Fatalf("adopt ran at a limit of %d bytes after %d failures: %+v", limit, failures, rep)
			}
			t.Logf("failed %d times, from 1 to %d bytes; ran at %d", failures, limit-64, limit)
			break
		}
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("limit %d: %v, want ENOSPC naming %s", limit, err, dir)
		}
		failures++
		for _, key := range dropped {
			if _, err := n.ix.Latest(ctx, "registry", key); err == nil || rep.AdoptedCount != 0 {
				t.Fatalf("limit %d: %s adopted by an adopt that failed", limit, key)
			}
		}
		if got := scratchFiles(t, dir); len(got) != 0 {
			t.Fatalf("limit %d: scratch left: %v", limit, got)
		}
	}
	n.checkAll(want)
}

// TestCollectSpillSpaceFails: a collection that cannot sort the
// abandonments it records into files fails naming the directory before it
// removes anything (what it recorded stays recorded: it is evidence the
// next collection acts on); with the space it needs, it removes every
// shard of the writes that never committed.
func TestCollectSpillSpaceFails(t *testing.T) {
	defer func(n int) { addedMax = n }(addedMax)
	addedMax = 2
	n := newTestNode(t)
	ctx := t.Context()
	want := n.fillSizes("d/")
	// Streamed puts that died after their shards, before their manifests.
	const dead = 8
	n.deadWrites(dead)
	before := n.blobCount()
	dir := RebuildTempDir(n.root)
	n.k.WithRebuildDir(dir)
	failures, afterRecording := 0, 0
	for limit := int64(1); ; limit += 64 {
		scratchFailAfter = limit
		c, err := n.k.Collect(ctx, CollectOptions{Grace: time.Nanosecond})
		scratchFailAfter = 0
		if err == nil {
			if afterRecording == 0 || c.Removed != dead*len(topology) || n.blobCount() != before-c.Removed {
				t.Fatalf("collection ran at %d bytes after %d failures (%d after recording abandonments): %+v", limit, failures, afterRecording, c)
			}
			t.Logf("failed %d times, %d of them after recording abandonments; ran at %d", failures, afterRecording, limit)
			break
		}
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("limit %d: %v, want ENOSPC naming %s", limit, err, dir)
		}
		failures++
		if c.Abandoned > 0 {
			afterRecording++
		}
		if got := n.blobCount(); got != before || c.Removed != 0 {
			t.Fatalf("limit %d: %d blobs removed by a collection that failed", limit, before-got)
		}
	}
	n.checkAll(want)
}

// TestSpilledReadFails: a spilled file of abandonments that cannot be
// read back makes the records fail, so that nothing is decided on them.
func TestSpilledReadFails(t *testing.T) {
	defer func(n int) { addedMax = n }(addedMax)
	addedMax = 4
	ev := testRecords(t)
	if err := ev.finish(); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(13, 14))
	var names []string
	for range 10 {
		n := manifest.ShardBlobName(randomID(r), 1)
		names = append(names, n)
		ev.add(evidence.Record{Kind: evidence.Abandon, Version: randomID(r), Blobs: []evidence.Blob{{Name: n, Site: "est-1"}}})
	}
	if len(ev.spilled) == 0 || ev.failed() != nil {
		t.Fatalf("%d spilled files, %v", len(ev.spilled), ev.failed())
	}
	if _, ab := ev.blob(names[0]); len(ab) != 1 {
		t.Fatalf("%s: %d abandonments, want 1", names[0], len(ab))
	}
	ev.spilled[0].final.Close()
	for _, n := range names {
		ev.blob(n)
	}
	if err := ev.failed(); err == nil || !strings.Contains(err.Error(), ev.sp.dir) {
		t.Fatalf("records after a spilled file could not be read: %v", err)
	}
}
