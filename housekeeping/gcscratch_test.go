package housekeeping

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/evidence"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site/fault"
	"github.com/embassy-dev/embassy/vault"
)

// TestCollectRecords checks the records on disk against the maps they
// replaced: deleted versions, blobs recorded deleted, abandonments by
// blob and site, the last end of each upload, and intents in the order
// read. Small buffers make the sort merge in passes and thin its
// samples, and blobs named by many records make lookups cross samples.
func TestCollectRecords(t *testing.T) {
	defer func(a, b int) { sortRecords, maxSamples = a, b }(sortRecords, maxSamples)
	sortRecords, maxSamples = 100, 16
	r := rand.New(rand.NewPCG(3, 4))
	ev := testRecords(t)
	deletedVersions := map[manifest.ID]bool{}
	deletedBlobs := map[string]bool{}
	abandoned := map[string][]evidenceBlob{}
	uploadEnds := map[string]manifest.ID{}
	var intents []evidence.Record
	var names, uploads []string
	sites := []string{"", "est-1", "lux-1", "fin-2"}
	name := func() string {
		if len(names) > 0 && r.IntN(3) == 0 {
			return names[r.IntN(len(names))]
		}
		var n string
		switch r.IntN(4) {
		case 0:
			n = manifest.BlobName(randomID(r))
		case 1:
			n = "other/" + randomID(r).String()
		default:
			n = manifest.ShardBlobName(randomID(r), r.IntN(20))
		}
		names = append(names, n)
		return n
	}
	// One blob abandoned by many records: its lookups span samples.
	hot := manifest.ShardBlobName(randomID(r), 3)
	for i := range 5_000 {
		v := randomID(r)
		switch k := r.IntN(10); {
		case k < 3:
			rec := evidence.Record{Kind: evidence.Delete, Version: v}
			for range r.IntN(3) {
				n := name()
				rec.Blobs = append(rec.Blobs, evidence.Blob{Name: n})
				deletedBlobs[n] = true
			}
			deletedVersions[v] = true
			ev.add(rec)
		case k < 6:
			rec := evidence.Record{Kind: evidence.Abandon, Version: v, Revision: r.IntN(3)}
			for range 1 + r.IntN(3) {
				n := name()
				if i%50 == 0 {
					n = hot
				}
				b := evidence.Blob{Name: n, Site: sites[r.IntN(len(sites))]}
				rec.Blobs = append(rec.Blobs, b)
				abandoned[n] = append(abandoned[n], evidenceBlob{site: b.Site, version: v, revision: rec.Revision})
			}
			ev.add(rec)
		case k < 8:
			rec := evidence.Record{Kind: evidence.Intent, Version: v, Time: int64(i), Revision: r.IntN(2), Blobs: []evidence.Blob{{Name: name(), Site: "est-1"}}}
			intents = append(intents, rec)
			ev.add(rec)
		default:
			var u string
			if len(uploads) > 0 && r.IntN(3) == 0 {
				u = uploads[r.IntN(len(uploads))]
			} else if r.IntN(2) == 0 {
				b := make([]byte, 24)
				for j := range b {
					b[j] = byte(r.Uint32())
				}
				u = hex.EncodeToString(b)
				uploads = append(uploads, u)
			} else {
				u = fmt.Sprintf("legacy-upload-%d", i)
				uploads = append(uploads, u)
			}
			if r.IntN(4) == 0 {
				v = manifest.ID{} // aborted
			}
			uploadEnds[u] = v
			ev.add(evidence.Record{Kind: evidence.UploadEnd, Upload: u, Version: v})
		}
	}
	if err := ev.finish(); err != nil {
		t.Fatal(err)
	}
	if ev.sorted.step < 8 {
		t.Fatalf("samples every %d records: the test does not thin them", ev.sorted.step)
	}
	key := func(b evidenceBlob) string { return fmt.Sprintf("%q %s %d", b.site, b.version, b.revision) }
	for _, n := range append(names, hot, "never/recorded", manifest.BlobName(randomID(r)), manifest.ShardBlobName(randomID(r), 1)) {
		del, got := ev.blob(n)
		if id, ok := manifest.ParseBlobName(n); ok && ev.deleted(id) != deletedVersions[id] {
			t.Fatalf("%s: deleted %v", n, !deletedVersions[id])
		}
		want := abandoned[n]
		g, w := make([]string, 0, len(got)), make([]string, 0, len(want))
		for _, b := range got {
			g = append(g, key(b))
		}
		for _, b := range want {
			w = append(w, key(b))
		}
		slices.Sort(g)
		slices.Sort(w)
		// The same abandonment recorded twice is kept once.
		if (len(del) > 0) != deletedBlobs[n] || !slices.Equal(slices.Compact(g), slices.Compact(w)) {
			t.Fatalf("%s: deleted %v abandoned %v, want %v %v", n, del, g, deletedBlobs[n], w)
		}
		for _, sid := range sites[1:] {
			if len(ev.abandonedOn(n, sid)) != len(onSite(got, sid)) {
				t.Fatalf("%s on %s: abandonedOn differs", n, sid)
			}
		}
	}
	for v := range deletedVersions {
		if !ev.deleted(v) {
			t.Fatalf("%s: not deleted", v)
		}
	}
	if ev.deleted(randomID(r)) {
		t.Fatal("a version never deleted is")
	}
	for _, u := range append(uploads, "never-ended") {
		v, ok := ev.uploadEnd(u)
		w, wok := uploadEnds[u]
		if v != w || ok != wok {
			t.Fatalf("upload %s: %s %v, want %s %v", u, v, ok, w, wok)
		}
	}
	var got []evidence.Record
	if err := ev.eachIntent(func(r evidence.Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(intents) {
		t.Fatalf("intents differ: %d, want %d", len(got), len(intents))
	}
	if err := ev.failed(); err != nil {
		t.Fatal(err)
	}
}

// TestCollectScratchHeapFlat: collection's records and the manifests it
// finds unindexed take no more heap for a million records than for ten
// thousand (they were maps of a few hundred bytes a record): adding n
// records (a quarter each deletions naming a shard, abandonments,
// intents naming two shards and upload ends), sorting them, reading every
// intent back, looking up every tenth record's blob and version, and the
// names of n/10 unindexed manifests found on six sites, in id order.
func TestCollectScratchHeapFlat(t *testing.T) {
	heapFlat(t, "writes about 200 MB of scratch", 10_000, 1_000_000, "records", func(n int) func() error {
		dir := t.TempDir()
		return func() error {
			ev, err := recordsIn(dir)
			if err != nil {
				return err
			}
			defer ev.close()
			r := rand.New(rand.NewPCG(5, 0))
			for i := range n {
				v, b := randomID(r), randomID(r)
				switch i % 4 {
				case 0:
					ev.add(evidence.Record{Kind: evidence.Delete, Version: v, Blobs: []evidence.Blob{{Name: manifest.ShardBlobName(b, 0)}}})
				case 1:
					ev.add(evidence.Record{Kind: evidence.Abandon, Version: v, Blobs: []evidence.Blob{{Name: manifest.ShardBlobName(b, 1), Site: "est-1"}}})
				case 2:
					ev.add(evidence.Record{Kind: evidence.Intent, Version: v, Time: int64(i), Blobs: []evidence.Blob{{Name: manifest.ShardBlobName(b, 2), Site: "lux-1"}, {Name: manifest.ShardBlobName(b, 3), Site: "fin-1"}}})
				case 3:
					ev.add(evidence.Record{Kind: evidence.UploadEnd, Upload: fmt.Sprintf("%016x%s", i, v), Version: v})
				}
			}
			if err := ev.finish(); err != nil {
				return err
			}
			intents, hits, unindexed := 0, 0, 0
			if err := ev.eachIntent(func(evidence.Record) error { intents++; return nil }); err != nil {
				return err
			}
			r = rand.New(rand.NewPCG(5, 0))
			for i := range n {
				v, b := randomID(r), randomID(r)
				if i/4%10 != 0 {
					continue
				}
				switch i % 4 {
				case 0:
					if del, _ := ev.blob(manifest.ShardBlobName(b, 0)); len(del) == 1 && del[0] == v && ev.deleted(v) {
						hits++
					}
				case 1:
					if len(ev.abandonedOn(manifest.ShardBlobName(b, 1), "est-1")) == 1 {
						hits++
					}
				case 2:
					if _, ok := ev.uploadEnd(fmt.Sprintf("%016x%s", i, v)); !ok {
						hits++ // an upload never ended
					}
				case 3:
					if got, ok := ev.uploadEnd(fmt.Sprintf("%016x%s", i, v)); ok && got == v {
						hits++
					}
				}
			}
			if err := ev.failed(); err != nil {
				return err
			}
			unknown, err := newSiteScratch(ev.sp, 6)
			if err != nil {
				return err
			}
			defer unknown.close()
			for site := range 6 {
				r := rand.New(rand.NewPCG(6, 0))
				for range n / 10 {
					unknown.addFlags(randomID(r), site, 0)
				}
			}
			if err := unknown.finish(); err != nil {
				return err
			}
			err = unknown.batches(500, func(recs []byte, _ int64) error {
				for r := range slices.Chunk(recs, unknown.rec) {
					if len(unknown.sitesOf(r, topologyIDs)) == 6 {
						unindexed++
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if intents != n/4 || unindexed != n/10 || hits != n/10 {
				return fmt.Errorf("%d intents, %d lookups found, %d unindexed", intents, hits, unindexed)
			}
			return nil
		}
	})
}

var topologyIDs = func() []string {
	var ids []string
	for _, d := range topology {
		ids = append(ids, d.ID)
	}
	return ids
}()

// leftByFailedDeletes deletes versions of objects while one site fails
// its removals, so that the deletion records cover blobs left there.
func (n *testNode) leftByFailedDeletes(count int) {
	t, ctx := n.t, n.t.Context()
	var infos []vault.ObjectInfo
	for i := range count {
		infos = append(infos, n.put(fmt.Sprintf("doomed/%d", i), content("doomed", 3*testStripe)))
	}
	n.faults["lux-1"].Set(fault.Config{DeleteErr: errors.New("disk busy")})
	for i, info := range infos {
		if _, err := n.e.Delete(ctx, "registry", fmt.Sprintf("doomed/%d", i), vault.DeleteOptions{VersionID: info.VersionID}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.e.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	n.faults["lux-1"].Set(fault.Config{})
}

// withGarbage is a test node holding objects of every size under prefix
// (want) and the blobs left by deletes of count versions whose removals
// failed on one site, with its scratch space in the node directory (dir):
// the sites hold before blobs.
func withGarbage(t *testing.T, prefix string, count int) (n *testNode, want map[string][]byte, before int, dir string) {
	n = newTestNode(t)
	want = n.fillSizes(prefix)
	n.leftByFailedDeletes(count)
	dir = RebuildTempDir(n.root)
	n.k.WithRebuildDir(dir)
	return n, want, n.blobCount(), dir
}

// TestCollectScratchSpaceFails: a collection that cannot write its
// scratch files, at whatever point, fails naming the directory before it
// removes anything; with the space it needs, it removes what the records
// cover.
func TestCollectScratchSpaceFails(t *testing.T) {
	n, want, before, dir := withGarbage(t, "f/", 6)
	ctx := t.Context()
	// Every 256 bytes: each file's writes (the records' runs and final
	// file, the intents, each site's blobs to remove) fail at least once.
	failures := 0
	for limit := int64(1); ; limit += 256 {
		scratchFailAfter = limit
		c, err := n.k.Collect(ctx, CollectOptions{Grace: time.Nanosecond})
		scratchFailAfter = 0
		if err == nil {
			if failures < 10 {
				t.Fatalf("collection ran at a limit of %d bytes after %d failures: the test does not fail its scratch at each step", limit, failures)
			}
			if c.Removed == 0 || n.blobCount() != before-c.Removed {
				t.Fatalf("collection with the space it needs: %+v", c)
			}
			t.Logf("failed %d times, from 1 to %d bytes; ran at %d", failures, limit-256, limit)
			break
		}
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("limit %d: %v, want ENOSPC naming %s", limit, err, dir)
		}
		if failures == 0 {
			t.Logf("limit %d: %v", limit, err)
		}
		failures++
		if got := n.blobCount(); got != before || c.Removed != 0 {
			t.Fatalf("limit %d: %d blobs removed (%d counted) by a collection that failed", limit, before-got, c.Removed)
		}
		if got := scratchFiles(t, dir); len(got) != 0 {
			t.Fatalf("limit %d: scratch left: %v", limit, got)
		}
	}
	n.checkAll(want)
}

// TestCollectScratchLeftByACrash: a scratch file left in the scratch
// directory by a crash is removed by the next collection, which is
// right; nothing else there is touched, and the collection leaves no
// scratch behind.
func TestCollectScratchLeftByACrash(t *testing.T) {
	n, want, before, dir := withGarbage(t, "c/", 3)
	ctx := t.Context()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, scratchPrefix+"654321"+scratchSuffix)
	others := []string{"scratch-notes.txt", "keep" + scratchSuffix}
	if err := os.WriteFile(left, bytes.Repeat([]byte{0xff}, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, o := range others {
		if err := os.WriteFile(filepath.Join(dir, o), []byte("not the collection's"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := n.k.Collect(ctx, CollectOptions{Grace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("crashed collection's scratch file still there: %v", err)
	}
	if got := scratchFiles(t, dir); !slices.Equal(got, []string{"scratch-notes.txt"}) {
		t.Fatalf("scratch files after a collection: %v", got)
	}
	for _, o := range others {
		if _, err := os.Stat(filepath.Join(dir, o)); err != nil {
			t.Errorf("%s, not the collection's, is gone: %v", o, err)
		}
	}
	if c.Removed == 0 || n.blobCount() != before-c.Removed {
		t.Fatalf("collection: %+v", c)
	}
	n.checkAll(want)
}
