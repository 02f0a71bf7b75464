package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/memory"
)

// testKeys returns a keyring with a node identity.
func testKeys(t testing.TB) *custody.Keyring {
	t.Helper()
	root, err := custody.GenerateRootKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := custody.NewKeyring(root)
	if err != nil {
		t.Fatal(err)
	}
	id, err := custody.NewIdentity("0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	return k.WithIdentity(id)
}

func testConfig(t testing.TB, k *custody.Keyring, dir string, sites map[string]site.Site) Config {
	t.Helper()
	origin := Origin("0123456789abcdef")
	ed, pq, err := k.CheckpointSigners(origin)
	if err != nil {
		t.Fatal(err)
	}
	eds, _, err := Verifiers(origin, k.Identity().Public())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Dir: dir, Origin: origin, Keys: k, Signer: ed, Cosigner: pq, Verifiers: eds, CheckpointInterval: 100 * time.Millisecond}
	if sites != nil {
		cfg.Sites = func() map[string]site.Site { return sites }
	}
	return cfg
}

func openLog(t testing.TB, cfg Config) *Log {
	t.Helper()
	l, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func closeLog(t testing.TB, l *Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func event(i int) Event {
	return Event{Kind: "object.put", Actor: "alice", Vault: "registry", Key: fmt.Sprintf("people/%05d", i)}
}

func TestAppendReopenRead(t *testing.T) {
	k := testKeys(t)
	dir := t.TempDir()
	cfg := testConfig(t, k, dir, nil)
	l := openLog(t, cfg)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := l.Append(t.Context(), event(w*each+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := l.Appended(); got != writers*each {
		t.Fatalf("appended %d, want %d", got, writers*each)
	}
	closeLog(t, l)

	l = openLog(t, cfg)
	defer closeLog(t, l)
	seen := map[string]bool{}
	var n uint64
	err := l.Events(t.Context(), 0, func(i uint64, e Event) error {
		if i != n {
			return fmt.Errorf("entry %d read as %d", n, i)
		}
		n++
		seen[e.Key] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != writers*each || len(seen) != writers*each {
		t.Fatalf("read %d entries, %d distinct keys; want %d", n, len(seen), writers*each)
	}
	// The checkpoint verifies with golang.org/x/mod's note verifier
	// alone (it ignores the ML-DSA-44 cosignature) and commits to every
	// entry.
	raw, cp, err := l.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := VerifierKey(cfg.Origin, k.Identity().Public())
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	nt, err := note.Open(raw, note.VerifierList(v))
	if err != nil {
		t.Fatalf("checkpoint does not verify with x/mod's note: %v\n%s", err, raw)
	}
	if len(nt.UnverifiedSigs) != 1 {
		t.Errorf("want the ML-DSA-44 cosignature among the unverified signatures, got %d", len(nt.UnverifiedSigs))
	}
	if cp.Size != writers*each {
		t.Fatalf("checkpoint covers %d entries, want %d", cp.Size, writers*each)
	}
	_, pq, _ := Verifiers(cfg.Origin, k.Identity().Public())
	if _, err := note.Open(raw, note.VerifierList(pq...)); err != nil {
		t.Fatalf("ML-DSA-44 cosignature does not verify: %v", err)
	}
}

// A journal entry the log never integrated (a crash between the
// acknowledgement and the sequencer) is taken over at the next opening, at
// its own index.
func TestJournalTakenOver(t *testing.T) {
	k := testKeys(t)
	dir := t.TempDir()
	cfg := testConfig(t, k, dir, nil)
	l := openLog(t, cfg)
	for i := range 3 {
		if _, err := l.Append(t.Context(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	closeLog(t, l)
	// Write two more entries straight into the journal, as a crash
	// before the sequencer ran would leave them.
	j, _, err := openJournal(filepath.Join(dir, "journal"), 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	var entries [][]byte
	for i := 3; i < 5; i++ {
		e, err := SealEntry(k, Event{Kind: "object.put", Time: time.Now().UnixNano(), Key: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	first, err := j.append(entries)
	if err != nil || first != 3 {
		t.Fatalf("journal append: first %d, %v", first, err)
	}
	j.close()
	l = openLog(t, cfg)
	defer closeLog(t, l)
	var keys []string
	if err := l.Events(t.Context(), 0, func(i uint64, e Event) error { keys = append(keys, e.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 5 || keys[3] != "3" || keys[4] != "4" {
		t.Fatalf("keys after take-over: %q", keys)
	}
}

// One log per directory: a second Open of a directory whose log is open
// (here in the same process; another process is refused alike) is refused,
// naming the process, and leaves the open log as it was. Beside it, both
// would take the entries a crash left in the journal and add them to the
// tree, and one's sequencer would stop (TestDrainConvergesAfterCrashes in
// housekeeping once failed so, its garbage collection unable to read the
// records).
func TestOneLogPerDirectory(t *testing.T) {
	k := testKeys(t)
	dir := t.TempDir()
	cfg := testConfig(t, k, dir, nil)
	l := openLog(t, cfg)
	if _, err := l.Append(t.Context(), event(0)); err != nil {
		t.Fatal(err)
	}
	closeLog(t, l)
	// Entries a crash left in the journal, not in the tree yet.
	j, _, err := openJournal(filepath.Join(dir, "journal"), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	var entries [][]byte
	for i := 1; i < 3; i++ {
		e, err := SealEntry(k, Event{Kind: "object.put", Time: time.Now().UnixNano(), Key: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	if _, err := j.append(entries); err != nil {
		t.Fatal(err)
	}
	j.close()
	l = openLog(t, cfg)
	second, err := Open(t.Context(), cfg)
	if err == nil {
		closeLog(t, second)
		closeLog(t, l)
		t.Fatal("a second log of an open log's directory opened")
	}
	if !strings.Contains(err.Error(), "open already") || !strings.Contains(err.Error(), fmt.Sprint("process ", os.Getpid())) {
		t.Fatalf("refusal does not say the log is open, and where: %v", err)
	}
	keys := func(l *Log) []string {
		t.Helper()
		var out []string
		if err := l.Events(t.Context(), 0, func(_ uint64, e Event) error { out = append(out, e.Key); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := []string{event(0).Key, "1", "2"}
	if got := keys(l); !slices.Equal(got, want) {
		t.Fatalf("the open log holds %q, want %q", got, want)
	}
	if _, err := l.Append(t.Context(), Event{Kind: "object.put", Key: "3"}); err != nil {
		t.Fatalf("the open log refuses entries after the refused open: %v", err)
	}
	closeLog(t, l)
	// Closed, the directory opens again, every entry in it once.
	l = openLog(t, cfg)
	defer closeLog(t, l)
	if got := keys(l); !slices.Equal(got, append(want, "3")) {
		t.Fatalf("reopened, the log holds %q, want %q", got, append(want, "3"))
	}
}

func TestJournalDamage(t *testing.T) {
	k := testKeys(t)
	for _, c := range []struct {
		name    string
		damage  func(b []byte) []byte
		wantErr bool
	}{
		{"torn tail", func(b []byte) []byte { return append(b, 0, 0, 0, 40, 1, 2, 3) }, false},
		{"half a record", func(b []byte) []byte { return b[:len(b)-5] }, false},
		{"flipped byte in the middle", func(b []byte) []byte { b[recordHeader+3] ^= 1; return b }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			j, _, err := openJournal(dir, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var es [][]byte
			for i := range 3 {
				e, _ := SealEntry(k, Event{Kind: "x", Time: 1, Key: fmt.Sprint(i)})
				es = append(es, e)
			}
			if _, err := j.append(es); err != nil {
				t.Fatal(err)
			}
			j.close()
			p := filepath.Join(dir, segName(0))
			b, _ := os.ReadFile(p)
			os.WriteFile(p, c.damage(b), 0o600)
			_, recs, err := openJournal(dir, 0, 0)
			if c.wantErr {
				if err == nil {
					t.Fatal("damage in the middle of the journal accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) < 2 {
				t.Fatalf("read %d records, want the intact ones", len(recs))
			}
		})
	}
}

// The log's copies on the sites verify with the tessera client from the
// site alone, and a site that misses copies catches up.
func TestCopiesOnSites(t *testing.T) {
	k := testKeys(t)
	a, b := memory.New(), memory.New()
	sites := map[string]site.Site{"a": a, "b": b}
	cfg := testConfig(t, k, t.TempDir(), sites)
	l := openLog(t, cfg)
	defer closeLog(t, l)
	var last uint64
	for i := range 300 {
		n, err := l.Append(t.Context(), event(i))
		if err != nil {
			t.Fatal(err)
		}
		last = n
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := l.Sync(ctx, last+1, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	for id, s := range sites {
		f := SiteFetcher{s}
		cp, _, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, cfg.Verifiers[0], cfg.Origin)
		if err != nil {
			t.Fatalf("site %s: %v", id, err)
		}
		if cp.Size < 300 {
			t.Fatalf("site %s: checkpoint covers %d", id, cp.Size)
		}
		// An inclusion proof from the site's tiles for an entry read
		// from the site's bundles.
		bundle, err := client.GetEntryBundle(ctx, f.ReadEntryBundle, 1, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		entry := bundle.Entries[7]
		pb, _ := client.NewProofBuilder(ctx, cp.Size, f.ReadTile)
		ip, err := pb.InclusionProof(ctx, 256+7)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 256+7, cp.Size, rfc6962.DefaultHasher.HashLeaf(entry), ip, cp.Hash); err != nil {
			t.Fatalf("site %s: %v", id, err)
		}
		// No partial bundle below a full one is left on the site.
		s.List(ctx, SitePrefix+"tile/entries/000.p/", func(i site.Info) error {
			t.Errorf("site %s keeps %s beside the full bundle", id, i.Name)
			return nil
		})
	}
}

// A site whose log is not a prefix of the node's is never overwritten.
func TestForeignLogOnSiteNotOverwritten(t *testing.T) {
	k := testKeys(t)
	s := memory.New()
	sites := map[string]site.Site{"a": s}
	// Another log of the same origin and key (a node directory restored
	// from an old backup would write such a one).
	other := openLog(t, testConfig(t, k, t.TempDir(), sites))
	for i := range 5 {
		other.Append(t.Context(), Event{Kind: "other", Key: fmt.Sprint(i)})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := other.Sync(ctx, 5, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	closeLog(t, other)
	before, _ := SiteFetcher{s}.ReadCheckpoint(ctx)

	// A node with a history of its own, shorter than the site's: it does
	// not open (the sites hold another history).
	dir := t.TempDir()
	short := openLog(t, testConfig(t, k, dir, nil))
	for i := range 3 {
		short.Append(t.Context(), event(i))
	}
	closeLog(t, short)
	if _, err := Open(t.Context(), testConfig(t, k, dir, sites)); err == nil || !bytes.Contains([]byte(err.Error()), []byte("not a prefix")) {
		t.Fatalf("opening a log that is not a prefix of the sites': %v", err)
	}
	// Longer: it opens, and never overwrites the site's copy.
	dir = t.TempDir()
	long := openLog(t, testConfig(t, k, dir, nil))
	for i := range 10 {
		long.Append(t.Context(), event(i))
	}
	closeLog(t, long)
	l := openLog(t, testConfig(t, k, dir, sites))
	defer closeLog(t, l)
	last, _ := l.Append(t.Context(), event(10))
	err := l.Sync(ctx, last+1, []string{"a"})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("not a prefix")) {
		t.Fatalf("sync to a site holding another log: %v", err)
	}
	after, _ := SiteFetcher{s}.ReadCheckpoint(ctx)
	if !bytes.Equal(before, after) {
		t.Fatal("the site's checkpoint was overwritten")
	}
	if st := l.Sites(); len(st) != 1 || st[0].Err == nil {
		t.Fatalf("site state does not show the refusal: %+v", st)
	}
}

// A fresh node directory (after `recover`) takes up the log from the
// sites, and goes on appending after it.
func TestCatchUpFromSites(t *testing.T) {
	k := testKeys(t)
	sites := map[string]site.Site{"a": memory.New(), "b": memory.New()}
	l := openLog(t, testConfig(t, k, t.TempDir(), sites))
	var last uint64
	for i := range 600 {
		last, _ = l.Append(t.Context(), event(i))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := l.Sync(ctx, last+1, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	closeLog(t, l)

	l = openLog(t, testConfig(t, k, t.TempDir(), sites))
	defer closeLog(t, l)
	if got := l.Appended(); got != 600 {
		t.Fatalf("caught up to %d entries, want 600", got)
	}
	n, err := l.Append(t.Context(), event(600))
	if err != nil || n != 600 {
		t.Fatalf("append after catching up: %d, %v", n, err)
	}
	count := 0
	if err := l.Events(ctx, 0, func(i uint64, e Event) error { count++; return nil }); err != nil {
		t.Fatal(err)
	}
	if count != 601 {
		t.Fatalf("read %d events, want 601", count)
	}
}

// VerifyTree names what was changed on a site's copy.
func TestVerifyTreeFindsTampering(t *testing.T) {
	k := testKeys(t)
	s := memory.New()
	l := openLog(t, testConfig(t, k, t.TempDir(), map[string]site.Site{"a": s}))
	var last uint64
	for i := range 600 {
		last, _ = l.Append(t.Context(), event(i))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := l.Sync(ctx, last+1, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	closeLog(t, l)
	raw, _ := SiteFetcher{s}.ReadCheckpoint(ctx)
	cp, err := OpenCheckpoint(raw, Origin("0123456789abcdef"), testConfig(t, k, "", nil).Verifiers)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyTree(ctx, SiteFetcher{s}, cp.Size, cp.Hash, 0, nil); err != nil {
		t.Fatalf("intact copy: %v", err)
	}
	read := func(name string) []byte {
		rc, err := s.Get(ctx, name, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b := new(bytes.Buffer)
		b.ReadFrom(rc)
		return b.Bytes()
	}
	put := func(name string, b []byte) { s.Put(ctx, name, bytes.NewReader(b), int64(len(b))) }
	for _, c := range []struct {
		name, blob string
		change     func([]byte) []byte
		want       string
	}{
		{"edited tile", SitePrefix + "tile/0/001", func(b []byte) []byte { b[40] ^= 1; return b }, "tile/0/001"},
		{"truncated tile", SitePrefix + "tile/0/000", func(b []byte) []byte { return b[:len(b)-32] }, "tile/0/000"},
		{"edited entry", SitePrefix + "tile/entries/001", func(b []byte) []byte { b[100] ^= 1; return b }, "tile/0/001"},
		{"truncated bundle", SitePrefix + "tile/entries/000", func(b []byte) []byte { return b[:len(b)/2] }, "tile/entries/000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			orig := read(c.blob)
			put(c.blob, c.change(bytes.Clone(orig)))
			defer put(c.blob, orig)
			_, err := VerifyTree(ctx, SiteFetcher{s}, cp.Size, cp.Hash, 0, nil)
			var te *TreeError
			if !errors.As(err, &te) || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
				t.Fatalf("got %v, want a problem naming %s", err, c.want)
			}
		})
	}
}

// Close with a cancelled context returns, even while a batch handed to
// tessera never resolves: tessera's queue worker stops with the log's
// context and drops a batch it had not taken yet, whose futures then never
// resolve (storage/internal/queue.go in v1.0.4). Close cancels that
// context and waits for the feeder, which waited on such a future for
// ever. Here the first batch's futures are held until the test ends, as
// a dropped batch's would be.
func TestCloseReturnsWhileABatchIsInFlight(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, testKeys(t), dir, nil)
	cfg.BatchDelay = time.Millisecond
	waiting, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cfg.wrapAdd = func(add tessera.AddFn) tessera.AddFn {
		return func(ctx context.Context, e *tessera.Entry) tessera.IndexFuture {
			f := add(ctx, e)
			return func() (tessera.Index, error) {
				held := false
				once.Do(func() { held = true; close(waiting) })
				if held {
					<-release
				}
				return f()
			}
		}
	}
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseAll()
	l := openLog(t, cfg)
	if _, err := l.Append(t.Context(), event(0)); err != nil {
		t.Fatal(err)
	}
	bound := time.NewTimer(time.Minute)
	defer bound.Stop()
	select {
	case <-waiting:
	case <-bound.C:
		t.Fatal("the sequencer did not hand the entry to tessera within a minute")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- l.Close(ctx) }()
	select {
	case err := <-closed:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Close with a cancelled context and an entry not integrated: %v, want context.Canceled", err)
		}
	case <-bound.C:
		t.Fatal("Close with a cancelled context did not return within a minute while a batch was in flight")
	}

	// The entry stayed in the journal: the next Open takes it.
	releaseAll()
	cfg.wrapAdd = nil
	l = openLog(t, cfg)
	defer closeLog(t, l)
	var keys []string
	if err := l.Events(t.Context(), 0, func(_ uint64, e Event) error { keys = append(keys, e.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != event(0).Key {
		t.Fatalf("after reopening, the log holds %q, want the one entry appended before Close", keys)
	}
}

// Close leaves a published checkpoint covering every entry, those that
// went through the appenders that do not publish included (two entries go
// in as one batch of the size-2 appender: sequencer.go): Close waits for
// the publishing appender's next checkpoint (awaitCheckpoint).
func TestCloseLeavesACheckpointCoveringEverything(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, testKeys(t), dir, nil)
	cfg.CheckpointInterval = time.Second // well after the batch is integrated
	l := openLog(t, cfg)
	if _, err := l.Append(t.Context(), event(0), event(1)); err != nil {
		t.Fatal(err)
	}
	closeLog(t, l)
	raw, err := os.ReadFile(filepath.Join(dir, "tlog", "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitN(raw, []byte("\n"), 3)
	if len(lines) < 3 || string(lines[1]) != "2" {
		t.Fatalf("after Close the published checkpoint is %q..., want one of size 2", bytes.Join(lines[:min(2, len(lines))], []byte("\n")))
	}
}
