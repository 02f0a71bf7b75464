package audit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"

	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/memory"
)

// TestIntegrateWithCopies: with Config.IntegrateWithCopies, entries
// appended apart are not taken to the tree every BatchDelay: they wait for
// the copy round, which takes them as one batch, waits for the checkpoint
// covering them and copies it to the site in that round. Without the
// option each goes to the tree alone (the premise the other case is
// measured against).
func TestIntegrateWithCopies(t *testing.T) {
	for _, with := range []bool{false, true} {
		t.Run(fmt.Sprintf("IntegrateWithCopies=%v", with), func(t *testing.T) {
			ms := memory.New()
			cfg := testConfig(t, testKeys(t), t.TempDir(), map[string]site.Site{"a": ms})
			cfg.BatchDelay = time.Millisecond
			cfg.CopyInterval = time.Hour
			cfg.IntegrateWithCopies = with
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
