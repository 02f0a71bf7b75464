package node

import (
	"testing"

	"github.com/embassy-dev/embassy/audit"
)

// TestWitnessRestartReported: a restart a node accepted as a witness of a
// peer's log is on its audit log as witness.restart, naming the peer, and
// counted in embassy_witness_restarts_total. (The restart itself, end to
// end, is TestRecoverFromAPeer in cmd/embassy; the witness's rules are
// audit's TestWitnessAcceptsADeclaredRestart.)
func TestWitnessRestartReported(t *testing.T) {
	est, lux := newAllyNode(t, "EST"), newAllyNode(t, "LUX")
	trust(t, lux, est)
	origin := audit.Origin(est.Config.Node.ID)
	lux.reportRestart(audit.WitnessRestart{Origin: origin, Index: 31, Size: 32, Cosigned: 34,
		Restart: audit.LogRestart{Base: 29, Witnessed: []audit.Witnessed{{Size: 34}}}, Checkpoint: []byte(origin + "\n32\n")})
	if got := gathered(t, lux.Node, "embassy_witness_restarts_total", map[string]string{"log": origin}); got != 1 {
		t.Errorf("embassy_witness_restarts_total = %v, want 1", got)
	}
	evs, err := lux.AuditLogEvents(t.Context(), AuditQuery{Kind: KindWitnessRestart})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Detail["nation"] != "EST" || evs[0].Detail["lost"] != "5" || evs[0].Detail["cosigned"] != "34" || evs[0].Detail["recovered"] != "29" {
		t.Fatalf("witness.restart on LUX's log: %+v", evs)
	}
}
