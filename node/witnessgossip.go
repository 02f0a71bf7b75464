package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
)

// Witnesses compare notes. A witness checks a log's checkpoint only
// against what it cosigned itself, so a node that shows one ally one
// history and another ally another, each consistent with what that ally
// cosigned before, gets both cosigned. Allies that witness the same log
// therefore ask each other what they cosigned of it (witness/of): two
// checkpoints of the same size with different roots, both signed by the
// log's key, are a fork, whoever holds them.

// PeerWitnessOfEndpoint is the peer endpoint that answers the latest
// checkpoint this node cosigned of a log it witnesses, with its
// cosignature (body: the log's origin; 404 when it cosigned none).
const PeerWitnessOfEndpoint = "witness/of"

func init() {
	peerEndpoints = append(peerEndpoints, peerEndpoint{name: PeerWitnessOfEndpoint, handle: (*Node).peerWitnessOf})
}

func (n *Node) peerWitnessOf(w http.ResponseWriter, _ *http.Request, _ Peer, body []byte) {
	origin := strings.TrimSpace(string(body))
	wit := n.witnessInForce()
	var cp []byte
	if wit != nil && origin != "" {
		cp = wit.Latest(origin)
	}
	if cp == nil {
		http.Error(w, fmt.Sprintf("no checkpoint of log %q cosigned", origin), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(cp)
}

// WitnessDisagreement is a fork two witnesses hold between them.
type WitnessDisagreement struct {
	// Log is the log's origin; Peer the other witness (node id) and
	// Nation its nation.
	Log    string `json:"log"`
	Peer   string `json:"peer"`
	Nation string `json:"nation"`
	// Size is the size of both checkpoints; Theirs the other witness's,
	// cosigned by it and signed by the log's key (the evidence).
	Size   uint64 `json:"size"`
	Theirs string `json:"theirs"`
}

// CompareWitnesses asks every other trusted peer (not opted out) what it
// cosigned of each peer log this node witnesses, and returns, logs and
// records (witness.split, split "fork", once each) every checkpoint of
// the same size as this node's with another root. Sizes that differ are
// not compared: that needs a consistency proof only the log's node has.
func (n *Node) CompareWitnesses(ctx context.Context) ([]WitnessDisagreement, error) {
	if err := n.Ready(); err != nil {
		return nil, err
	}
	wit := n.witnessInForce()
	if wit == nil {
		return nil, nil
	}
	c := n.conf()
	type other struct {
		card federation.Card
		v    note.Verifier
	}
	var others []other
	for _, pc := range c.Alliance.Peers {
		card, err := federation.ParseCard([]byte(pc.Card))
		if err != nil || !pc.witnesses() {
			continue
		}
		v, err := fnote.NewVerifierForCosignatureV1(custody.WitnessVerifierKey(audit.WitnessName(card.NodeID), card.Identity))
		if err != nil {
			continue
		}
		others = append(others, other{card, v})
	}
	var out []WitnessDisagreement
	for _, l := range witnessedLogs(c) {
		ours := wit.Latest(l.Origin)
		if ours == nil {
			continue
		}
		lv, err := note.NewVerifier(l.Key)
		if err != nil {
			continue
		}
		mine, err := audit.OpenCheckpoint(ours, l.Origin, []note.Verifier{lv})
		if err != nil {
			continue
		}
		for _, o := range others {
			if audit.Origin(o.card.NodeID) == l.Origin {
				continue // the log's own node is not its witness
			}
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			status, raw, err := n.peerPost(qctx, o.card.NodeID, PeerWitnessOfEndpoint, []byte(l.Origin))
			cancel()
			if err != nil || status != http.StatusOK {
				continue
			}
			theirs, err := audit.ParseWitnessCheckpoint(raw, l.Origin, []note.Verifier{lv}, o.v)
			if err != nil || theirs.Size != mine.Size || bytes.Equal(theirs.Hash, mine.Hash) {
				continue
			}
			d := WitnessDisagreement{Log: l.Origin, Peer: o.card.NodeID, Nation: o.card.Nation, Size: theirs.Size, Theirs: string(raw)}
			out = append(out, d)
			n.reportDisagreement(ctx, d)
		}
	}
	return out, nil
}

// reportDisagreement logs and records a fork held between this node and
// another witness, once.
func (n *Node) reportDisagreement(ctx context.Context, d WitnessDisagreement) {
	key := d.Log + " " + d.Peer + " " + hex.EncodeToString([]byte(d.Theirs))
	n.peerWit.mu.Lock()
	if n.peerWit.compared == nil {
		n.peerWit.compared = map[string]bool{}
	}
	seen := n.peerWit.compared[key]
	n.peerWit.compared[key] = true
	if !seen {
		if n.peerWit.splits == nil {
			n.peerWit.splits = map[string]uint64{}
		}
		n.peerWit.splits[d.Log]++
	}
	n.peerWit.mu.Unlock()
	if seen {
		return
	}
	reason := fmt.Sprintf("witness %s (%s) cosigned a checkpoint of %d entries with another root than the one this node cosigned: a fork", d.Peer, d.Nation, d.Size)
	n.Log.ErrorContext(ctx, "witness: another witness holds a different checkpoint of a log this node witnesses (a split view): keep both as evidence and tell the log's operators",
		"log", d.Log, "peer", d.Peer, "nation", d.Nation, "size", d.Size)
	ev := audit.Event{Kind: KindWitnessSplit, Actor: "witness", Outcome: reason, Detail: map[string]string{
		"log": d.Log, "split": "fork", "cosigned": strconv.FormatUint(d.Size, 10), "checkpoint": d.Theirs, "seen_by": d.Peer, "seen_by_nation": d.Nation}}
	for _, p := range n.Peers() {
		if audit.Origin(p.Card.NodeID) == d.Log {
			ev.Detail["peer"], ev.Detail["nation"] = p.Card.NodeID, p.Card.Nation
		}
	}
	n.recordBestEffort(ctx, ev)
}
