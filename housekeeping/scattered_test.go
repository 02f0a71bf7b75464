package housekeeping

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/fault"
	"github.com/embassy-dev/embassy/vault"
)

// rotBlock flips a byte of stripe j's block of shard i of key's only part,
// leaving its checksum: bit rot the checksum catches.
func rotBlock(t *testing.T, n *testNode, key string, stripes int, j int64, i int) {
	t.Helper()
	path, _, _, stride := shardBlob(t, n, key, stripes, i)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[j*stride+7] ^= 0x10
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestScatteredRotIsRepaired: damage in more shards than the parity, but
// never more than m blocks in one stripe, leaves every stripe readable: a
// scrub reports the version degraded, not lost, and its repair rebuilds the
// damaged shards from the good blocks of every shard, the damaged ones
// included. Damage beyond m blocks in one stripe is reported lost and left
// as it is.
func TestScatteredRotIsRepaired(t *testing.T) {
	const stripes = 4
	type damage struct {
		stripe int64
		shard  int
	}
	for _, c := range []struct {
		name    string
		rot     []damage
		missing []int // shard blobs removed
		lost    bool
	}{
		{name: "three shards, one block each", rot: []damage{{0, 0}, {1, 1}, {2, 2}}},
		{name: "four shards, two blocks a stripe", rot: []damage{{0, 0}, {0, 5}, {1, 1}, {2, 2}, {3, 3}}},
		{name: "a blob gone and two shards rotten", rot: []damage{{0, 0}, {1, 1}}, missing: []int{5}},
		{name: "three blocks in one stripe", rot: []damage{{1, 0}, {1, 2}, {1, 4}}, lost: true},
	} {
		for _, deep := range []bool{false, true} {
			t.Run(c.name+map[bool]string{false: "", true: " (deep)"}[deep], func(t *testing.T) {
				n := newTestNode(t)
				want := content("obj", stripes*testStripe)
				n.put("obj", want)
				for _, d := range c.rot {
					rotBlock(t, n, "obj", stripes, d.stripe, d.shard)
				}
				locs, _ := n.e.Locate(t.Context(), "registry", "obj", manifest.ID{})
				for _, i := range c.missing {
					if err := os.Remove(filepath.Join(n.dirs[locs[i].Site], filepath.FromSlash(locs[i].Blob))); err != nil {
						t.Fatal(err)
					}
				}
				got, _, err := n.read("obj", vault.GetOptions{Length: -1})
				if c.lost {
					if err == nil {
						t.Fatal("the object reads with more than m blocks of a stripe damaged: the test damages the wrong blocks")
					}
				} else if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("the object does not read back before the scrub: %v", err)
				}
				before := n.blobCount()
				rep, err := n.k.Scrub(t.Context(), ScrubOptions{Deep: deep})
				if err != nil {
					t.Fatal(err)
				}
				bad := len(c.rot)
				if c.lost {
					if rep.Lost != 1 || len(rep.LostVersions) != 1 || !strings.Contains(rep.LostVersions[0], "part 1") {
						t.Fatalf("scrub: %+v, want the version lost, naming part 1", rep)
					}
				} else if rep.Lost != 0 || rep.Degraded != 1 || rep.CorruptShards+rep.MissingShards < min(bad, 3) {
					t.Fatalf("scrub: %+v, want the version degraded, not lost", rep)
				}
				rep, err = n.k.Scrub(t.Context(), ScrubOptions{Deep: deep, Repair: true})
				if err != nil {
					t.Fatal(err)
				}
				if c.lost {
					if rep.Lost != 1 || rep.Repaired != 0 || n.blobCount() != before {
						t.Fatalf("repairing scrub of a lost version: %+v, %d blobs before, %d after: want it reported lost and left alone", rep, before, n.blobCount())
					}
					return
				}
				if rep.Lost != 0 || rep.Repaired != 1 || rep.RemainingAtRisk != 0 {
					t.Fatalf("repairing scrub: %+v, want the version repaired", rep)
				}
				n.checkAll(map[string][]byte{"obj": want})
				rep, err = n.k.Scrub(t.Context(), ScrubOptions{Deep: true})
				if err != nil {
					t.Fatal(err)
				}
				if rep.AtRisk != 0 {
					t.Fatalf("deep scrub after the repair: %+v, want nothing at risk", rep)
				}
			})
		}
	}
}

// TestScrubRacingAMove: a move of a version (a drain, another scrub's
// repair) commits a new revision and removes the blobs it replaced while a
// scrub reads the old ones. The scrub finds them gone; it must look at the
// index again, not call the version lost.
func TestScrubRacingAMove(t *testing.T) {
	spare := []site.Descriptor{
		{ID: "est-3", Jurisdiction: "EST", Provider: "gov-dc", Control: "EST"},
		{ID: "lux-3", Jurisdiction: "LUX", Provider: "gov-dc", Control: "EST"},
		{ID: "fin-3", Jurisdiction: "FIN", Provider: "gov-dc", Control: "EST"},
	}
	for _, deep := range []bool{false, true} {
		t.Run(map[bool]string{false: "scrub", true: "deep"}[deep], func(t *testing.T) {
			n := newTestNode(t, spare...)
			want := content("obj", 4*testStripe)
			n.put("obj", want)
			iv, err := n.ix.Latest(t.Context(), "registry", "obj")
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Open(iv.Envelope, n.e.Keys())
			if err != nil {
				t.Fatal(err)
			}
			// The move: shards 0, 1 and 2 to the spare sites (the test
			// moves them; it does not ask placement).
			next := slices.Clone(m.Parts[0].Sites)
			for i, d := range spare {
				next[i] = d.ID
			}
			// Every Get of a shard blob by the scrub waits for the move,
			// which the first one starts; the move's own reads go by.
			type moving struct{}
			var once sync.Once
			done := make(chan struct{})
			moved := false
			hook := func(ctx context.Context, name string) {
				if ctx.Value(moving{}) != nil || !strings.HasPrefix(name, "s/") {
					return
				}
				once.Do(func() {
					go func() {
						defer close(done)
						if _, err := n.e.Relocate(context.WithValue(context.Background(), moving{}, true), m, vault.Relocation{Sites: [][]string{next}}); err != nil {
							t.Errorf("the move: %v", err)
							return
						}
						moved = true
					}()
				})
				<-done
			}
			for _, f := range n.faults {
				f.Set(fault.Config{BeforeGet: hook})
			}
			rep, err := n.k.Scrub(t.Context(), ScrubOptions{Deep: deep})
			if err != nil {
				t.Fatal(err)
			}
			if !moved {
				t.Fatal("the move did not run during the scrub")
			}
			// The test's move ignores the policy, so the new revision's
			// shards may count as misplaced; none is missing or damaged.
			if rep.Lost != 0 || rep.MissingShards != 0 || rep.CorruptShards != 0 {
				t.Fatalf("scrub racing a move: %+v, want the new revision scrubbed: nothing lost, missing or damaged", rep)
			}
			n.checkAll(map[string][]byte{"obj": want})
		})
	}
}
