package housekeeping

import (
	"fmt"
	"github.com/embassy-dev/embassy/vault"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
)

func TestDrill(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	want := n.fillSizes("d")
	// A deliberately under-protected vault: 5+1 with no survivability
	// demanded, so losing a jurisdiction loses objects.
	if err := n.e.SetVault(vault.Vault{Name: "fragile", Owner: "EST", StripeSize: testStripe, Policy: placement.Policy{K: 5, M: 1}}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		key := fmt.Sprintf("f/%d", i)
		if _, err := n.e.Put(ctx, "fragile", key, strings.NewReader(strings.Repeat("x", 3*testStripe)), vault.PutOptions{Size: 3 * testStripe}); err != nil {
			t.Fatal(err)
		}
	}
	var descs []site.Descriptor
	for _, s := range n.e.Sites() {
		descs = append(descs, s.Descriptor)
	}
	lost, err := LostSites("jurisdiction=EST", descs)
	if err != nil || len(lost) != 2 {
		t.Fatalf("LostSites = %v, %v", lost, err)
	}
	rep, err := n.k.Drill(ctx, DrillOptions{Lost: lost, Vaults: []string{"registry"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RPOObjects != 0 || rep.Read != len(want) || rep.RTOSeconds <= 0 || len(rep.PoliciesBroke) != 1 {
		// Losing EST leaves two jurisdictions: the registry policy
		// (survive a jurisdiction) can no longer be kept on them.
		t.Fatalf("conforming vault drill: %+v", rep)
	}
	rep, err = n.k.Drill(ctx, DrillOptions{Lost: lost, Vaults: []string{"fragile"}})
	if err != nil {
		t.Fatal(err)
	}
	lostKeys := 0
	for i := range 20 {
		locs, _ := n.e.Locate(vault.AsSystem(ctx), "fragile", fmt.Sprintf("f/%d", i), [16]byte{})
		gone := 0
		for _, l := range locs {
			if lost[l.Site] {
				gone++
			}
		}
		if gone > 1 {
			lostKeys++
		}
	}
	if lostKeys == 0 {
		t.Fatal("test setup: no fragile object would be lost")
	}
	if rep.RPOObjects != lostKeys || len(rep.Vaults[0].Lost) != lostKeys {
		t.Fatalf("drill reports %d lost objects, placement says %d: %+v", rep.RPOObjects, lostKeys, rep)
	}
	// Sampling judges unread versions by placement: same answer.
	srep, err := n.k.Drill(ctx, DrillOptions{Lost: lost, Vaults: []string{"fragile"}, Sample: 5})
	if err != nil || srep.RPOObjects != lostKeys || srep.Read != 5 {
		t.Fatalf("sampled drill: %+v, %v", srep, err)
	}
	// Nothing was destroyed.
	n.checkAll(want)
	for _, bad := range []string{"", "planet=MARS", "site=nowhere", "jurisdiction"} {
		if _, err := LostSites(bad, descs); err == nil {
			t.Errorf("LostSites(%q) accepted", bad)
		}
	}
}
