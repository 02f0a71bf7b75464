package housekeeping

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/embassy-dev/embassy/vault"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site/fault"
)

// cancelAfter cancels a context once n bytes have been read through it: a
// process dying in the middle of a put.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
		return 0, context.Canceled
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

// TestChaos interleaves writes, deletes, site failures, silent corruption,
// crashes (an engine abandoned mid-put and reopened) and repairs, with a
// seeded random schedule, and after every step checks that every
// acknowledged write reads back exactly. EMBASSY_CHAOS_SEED reproduces a
// run; EMBASSY_CHAOS_STEPS lengthens it.
func TestChaos(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("EMBASSY_CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	steps := 120
	if s := os.Getenv("EMBASSY_CHAOS_STEPS"); s != "" {
		steps, _ = strconv.Atoi(s)
	}
	if testing.Short() {
		steps = 40
	}
	t.Logf("chaos seed %d (EMBASSY_CHAOS_SEED=%d to replay), %d steps", seed, seed, steps)
	rng := rand.New(rand.NewPCG(seed, 99))
	n := newTestNode(t)
	ctx := t.Context()
	type acked struct {
		key  string
		data []byte
	}
	live := map[manifest.ID]acked{} // acknowledged, not deleted
	var down string                 // at most one site down at a time
	damaged := false                // at most one round of corruption between repairs
	check := func(step int, what string) {
		t.Helper()
		for id, a := range live {
			r, err := n.e.Get(ctx, "registry", a.key, vault.GetOptions{VersionID: id, Length: -1})
			if err != nil {
				t.Fatalf("seed %d step %d (%s): acknowledged %s version %s unreadable: %v", seed, step, what, a.key, id, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, a.data) {
				t.Fatalf("seed %d step %d (%s): acknowledged %s version %s reads wrong: %v", seed, step, what, a.key, id, err)
			}
		}
	}
	reopen := func() {
		n.vaults = n.e.Vaults()
		n.open(filepath.Join(n.root, "index.db"))
	}
	for step := range steps {
		var what string
		switch op := rng.IntN(10); {
		case op < 4:
			what = "put"
			key := fmt.Sprintf("k/%d", rng.IntN(12))
			size := []int{0, 7, testStripe, 3*testStripe + 11, 12 * testStripe}[rng.IntN(5)]
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			info, err := n.e.Put(ctx, "registry", key, bytes.NewReader(data), vault.PutOptions{Size: int64(size)})
			if err == nil {
				live[info.VersionID] = acked{key, data}
			} else if down == "" {
				t.Fatalf("seed %d step %d: put failed with every site up: %v", seed, step, err)
			}
		case op < 5:
			what = "delete"
			for id, a := range live {
				if _, err := n.e.Delete(ctx, "registry", a.key, vault.DeleteOptions{VersionID: id}); err == nil {
					delete(live, id)
				}
				break
			}
		case op < 6:
			what = "site down/up"
			if down != "" {
				n.faults[down].Set(fault.Config{})
				n.e.SetSiteDown(down, 0)
				down = ""
			} else if !damaged {
				down = topology[rng.IntN(len(topology))].ID
				n.faults[down].Set(fault.Config{Down: true})
			}
		case op < 7:
			what = "corrupt"
			if down != "" || damaged {
				break
			}
			// Flip a byte in one blob of one acknowledged version: at
			// most one shard per version is damaged before a repair.
			for id := range live {
				locs, _ := n.e.Locate(ctx, "registry", live[id].key, id)
				if len(locs) == 0 {
					break
				}
				l := locs[rng.IntN(len(locs))]
				p := filepath.Join(n.dirs[l.Site], filepath.FromSlash(l.Blob))
				if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
					b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
					os.WriteFile(p, b, 0o600)
					damaged = true
				}
				break
			}
		case op < 8:
			what = "crash mid-put"
			cctx, cancel := context.WithCancel(ctx)
			data := make([]byte, 10*testStripe)
			_, err := n.e.Put(cctx, "registry", "k/crash", &cancelAfter{r: bytes.NewReader(data), n: rng.IntN(len(data)), cancel: cancel}, vault.PutOptions{Size: -1})
			cancel()
			if err == nil {
				t.Fatalf("seed %d step %d: a put cut short was acknowledged", seed, step)
			}
			reopen()
		default:
			what = "scrub and repair"
			if down != "" {
				break
			}
			rep, err := n.k.Scrub(ctx, ScrubOptions{Repair: true})
			if err != nil {
				t.Fatalf("seed %d step %d: scrub: %v", seed, step, err)
			}
			if len(rep.Unrepairable) > 0 {
				t.Fatalf("seed %d step %d: unrepairable: %v", seed, step, rep.Unrepairable)
			}
			damaged = false
		}
		if os.Getenv("EMBASSY_CHAOS_VERBOSE") != "" {
			t.Logf("step %d: %s (down=%q damaged=%v live=%d)", step, what, down, damaged, len(live))
		}
		check(step, what)
	}
	// Finally: everything up, one last repair, and full redundancy.
	if down != "" {
		n.faults[down].Set(fault.Config{})
		n.e.SetSiteDown(down, 0)
	}
	if _, err := n.k.Scrub(ctx, ScrubOptions{Repair: true}); err != nil {
		t.Fatal(err)
	}
	rep, err := n.k.Scrub(ctx, ScrubOptions{})
	if err != nil || rep.AtRisk != 0 {
		t.Fatalf("seed %d: after the final repair: %+v, %v", seed, rep, err)
	}
	check(steps, "final")
	if errors.Is(ctx.Err(), context.Canceled) {
		t.Fatal("test context cancelled")
	}
}
