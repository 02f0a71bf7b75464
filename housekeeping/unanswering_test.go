package housekeeping

import (
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/site/fault"
)

// TestScrubSitesAwayAreNotLoss: a version whose shards are short because
// sites do not answer (three of six at 4+2: unreachable, not gone) cannot
// be read now, but nothing shows it lost: its shards there may be intact.
// Scrub reports it at risk and unreachable, naming the sites, and not
// among the lost; once
// they answer, nothing is at risk. Before, every such version was reported
// lost ("part 1 has 3 of the 4 intact shards it needs"). A version whose
// blobs are gone is still lost (TestScrubCallsUnreadableLost).
func TestScrubSitesAwayAreNotLoss(t *testing.T) {
	n := newTestNode(t)
	want := n.fillSizes("away")
	away := []string{"est-1", "fin-1", "lux-1"}
	for _, id := range away {
		n.faults[id].Set(fault.Config{Down: true})
	}
	for _, repair := range []bool{false, true} {
		rep, err := n.k.Scrub(t.Context(), ScrubOptions{Repair: repair})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Lost != 0 || len(rep.LostVersions) != 0 {
			t.Fatalf("repair %v: %d versions reported lost with three sites not answering (first: %v)", repair, rep.Lost, rep.LostVersions)
		}
		if rep.AtRisk == 0 || rep.Unreachable != rep.AtRisk || rep.Degraded != 0 || len(rep.Errors) == 0 || !strings.Contains(strings.Join(rep.Errors, "\n"), "sites est-1, fin-1, lux-1 do not answer") {
			t.Fatalf("repair %v: at risk %d, unreachable %d, degraded %d, errors %v; want every version at risk unreachable and the sites named", repair, rep.AtRisk, rep.Unreachable, rep.Degraded, rep.Errors)
		}
	}
	for _, id := range away {
		n.faults[id].Set(fault.Config{})
	}
	rep, err := n.k.Scrub(t.Context(), ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lost != 0 || rep.AtRisk != 0 {
		t.Fatalf("with the sites back: %+v", rep)
	}
	n.checkAll(want)
}
