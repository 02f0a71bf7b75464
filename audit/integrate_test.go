package audit

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/memory"
)

// TestIntegrateWithCopies: with Config.IntegrateWithCopies, entries
// appended apart are not taken to the tree every BatchDelay: they wait for
// the copy round, which takes them as one batch, waits for the checkpoint
// covering them and copies it to the site in that round. Without the
// option each goes to the tree alone (the premise the other case is
// measured against).
//
// The round's wait for the checkpoint ends on its publication: the copy
// interval is hours. Without the inotify watch (where none can be had) the
// round reads the checkpoint on a ticker instead, and copies it as soon.
func TestIntegrateWithCopies(t *testing.T) {
	for _, c := range []struct {
		name          string
		with, noWatch bool
	}{
		{"IntegrateWithCopies=false", false, false},
		{"IntegrateWithCopies=true", true, false},
		{"IntegrateWithCopies=true,noWatch", true, true},
	} {
		with := c.with
		t.Run(c.name, func(t *testing.T) {
			ms := memory.New()
			cfg := testConfig(t, testKeys(t), t.TempDir(), map[string]site.Site{"a": ms})
			cfg.BatchDelay = time.Millisecond
			cfg.CopyInterval = time.Hour
			cfg.IntegrateWithCopies = with
			cfg.noWatch = c.noWatch
			// Entries added through each appender, in the order the
			// appenders were made: the first is the one of batch size 1.
			var mu sync.Mutex
			var added []int
			cfg.wrapAdd = func(add tessera.AddFn) tessera.AddFn {
				mu.Lock()
				i := len(added)
				added = append(added, 0)
				mu.Unlock()
				return func(ctx context.Context, e *tessera.Entry) tessera.IndexFuture {
					mu.Lock()
					added[i]++
					mu.Unlock()
					return add(ctx, e)
				}
			}
			l := openLog(t, cfg)
			defer closeLog(t, l)

			const n = 3
			for i := range n {
				last, err := l.Append(t.Context(), event(i))
				if err != nil {
					t.Fatal(err)
				}
				if !with {
					// Integrated within BatchDelay, alone.
					waitFor(t, fmt.Sprintf("entry %d in the tree", last), func() bool { return l.Integrated() > last })
					continue
				}
				// Many batch delays, in which nothing may take it (a
				// timer of BatchDelay would).
				time.Sleep(50 * cfg.BatchDelay)
				if got := l.Integrated(); got != 0 {
					t.Fatalf("%d entries in the tree %v after entry %d was appended, with no copy round and nothing waiting; want 0", got, 50*cfg.BatchDelay, last)
				}
			}

			if !with {
				// A round copies what a checkpoint covers when it
				// starts: one is published within a checkpoint
				// interval of the last batch.
				waitFor(t, fmt.Sprintf("a checkpoint covering %d entries", n), func() bool {
					_, cp, err := l.Checkpoint(t.Context())
					return err == nil && cp.Size >= n
				})
			}
			// A copy round (setting the interval starts one): the
			// site holds all of them after it, without a second one.
			l.SetCopyInterval(2 * time.Hour)
			waitFor(t, fmt.Sprintf("the site's copy covering %d entries after one round", n), func() bool {
				sts := l.Sites()
				return len(sts) == 1 && sts[0].Known && sts[0].Size >= n
			})

			mu.Lock()
			defer mu.Unlock()
			if with {
				batches := 0
				for _, a := range added {
					if a > 0 {
						batches++
					}
				}
				if added[0] != 0 || batches != 1 {
					t.Fatalf("entries added by appender, in the order made: %v; want one batch of %d (the size-1 appender unused)", added, n)
				}
			} else if added[0] != n {
				t.Fatalf("entries added by appender, in the order made: %v; want %d batches of one", added, n)
			}
		})
	}
}

// TestIntegrateWithCopiesWhenWaitedFor: with Config.IntegrateWithCopies
// and no copy round for an hour, whatever waits for entries (reading them,
// a proof, a Sync) has them taken to the tree at once.
func TestIntegrateWithCopiesWhenWaitedFor(t *testing.T) {
	ms := memory.New()
	cfg := testConfig(t, testKeys(t), t.TempDir(), map[string]site.Site{"a": ms})
	cfg.CopyInterval = time.Hour
	cfg.IntegrateWithCopies = true
	l := openLog(t, cfg)
	defer closeLog(t, l)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	last, err := l.Append(ctx, event(0))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := l.Events(ctx, 0, func(_ uint64, e Event) error { keys = append(keys, e.Key); return nil }); err != nil {
		t.Fatalf("reading the entries: %v", err)
	}
	if len(keys) != 1 || keys[0] != event(0).Key {
		t.Fatalf("the log holds %q, want the entry appended", keys)
	}
	if _, err := l.ProveEntry(ctx, last); err != nil {
		t.Fatalf("proving the entry: %v", err)
	}

	last, err = l.Append(ctx, event(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(ctx, last+1, []string{"a"}); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

// countingReader counts the reads of the local checkpoint.
type countingReader struct {
	tessera.LogReader
	n *atomic.Int64
}

func (r countingReader) ReadCheckpoint(ctx context.Context) ([]byte, error) {
	r.n.Add(1)
	return r.LogReader.ReadCheckpoint(ctx)
}

// TestCopyRoundAwaitsThePublication: with Config.IntegrateWithCopies, a
// copy round whose checkpoint a witness policy (without fail-open) holds
// back waits for its publication, told by the watch of the checkpoint,
// not by reading the checkpoint again and again: once the copy interval
// is over it copies the checkpoint there is, having read it once. Once the
// witness policy lets it through, a round copies it.
func TestCopyRoundAwaitsThePublication(t *testing.T) {
	k := testKeys(t)
	ms := memory.New()
	cfg := testConfig(t, k, t.TempDir(), map[string]site.Site{"a": ms})
	cfg.CopyInterval = time.Hour
	cfg.IntegrateWithCopies = true
	var reads atomic.Int64
	cfg.wrapReader = func(r tessera.LogReader) tessera.LogReader { return countingReader{r, &reads} }
	l := openLog(t, cfg)
	defer closeLog(t, l)

	// A witness that refuses every checkpoint.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer refusing.Close()
	u, _ := url.Parse(refusing.URL)
	wk := testKeys(t)
	tw, err := tessera.NewWitness(custody.WitnessVerifierKey("witness.example", wk.Identity().Public()), u)
	if err != nil {
		t.Fatal(err)
	}
	l.SetWitnesses(tessera.NewWitnessGroup(1, tw))
	defer l.SetWitnesses(tessera.WitnessGroup{}) // before closing, if the test fails

	if _, err := l.Append(t.Context(), event(0)); err != nil {
		t.Fatal(err)
	}
	reads.Store(0)
	const interval = time.Second
	l.SetCopyInterval(interval) // starts a round
	waitFor(t, "the round's copy", func() bool {
		sts := l.Sites()
		return len(sts) == 1 && sts[0].Known
	})
	if sts := l.Sites(); sts[0].Size != 0 {
		t.Fatalf("the site's copy covers %d entries, want 0 (the checkpoint covering the entry is held back)", sts[0].Size)
	}
	if l.Integrated() != 1 {
		t.Fatalf("%d entries in the tree after the round, want 1", l.Integrated())
	}
	// The round read the checkpoint to copy it; a round that polled it
	// every 10 ms read it some 100 times in its wait of a second.
	if n := reads.Load(); n > 3 {
		t.Fatalf("the local checkpoint read %d times while one round waited %v for a publication held back; want at most 3", n, interval)
	}

	l.SetWitnesses(tessera.WitnessGroup{})
	waitFor(t, "the site's copy covering the entry", func() bool {
		sts := l.Sites()
		return len(sts) == 1 && sts[0].Size >= 1
	})
}

// waitFor waits, up to a minute, until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within a minute", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCheckpointSize(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want uint64
	}{
		{"example.com/log\n42\nqINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n\n— example.com/log AAAA\n", 42},
		{"example.com/log\n0\nhash\n", 0},
		{"example.com/log\n18446744073709551615\nhash\n", 18446744073709551615},
		{"example.com/log\n-1\nhash\n", 0},
		{"example.com/log\n12", 0},
		{"example.com/log", 0},
		{"", 0},
	} {
		if got := checkpointSize([]byte(c.raw)); got != c.want {
			t.Errorf("checkpointSize(%q) = %d, want %d", c.raw, got, c.want)
		}
	}
}
