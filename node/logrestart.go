package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/embassy-dev/embassy/audit"
)

// The log after a recovery from an ally (docs/alliance.md, "Recover from
// an ally"). The recovered log ends where the ally's copy of it ended;
// the peers that witness this node's log may have cosigned later
// checkpoints, whose entries are lost. The recovery asks each peer
// witness for the latest checkpoint of the log it cosigned: one the
// recovered log holds is fine; one beyond it is the history lost. Then
// the node records a log.restart (audit.LogRestart) naming the recovered
// size and root and those checkpoints, and has each of those witnesses
// cosign its checkpoint that includes the entry (witness/restart): the
// loss is said once, on this node's log and on each witness's
// (witness.restart), and the witnesses hold the log to the new history
// from then on. A checkpoint a witness cosigned that is neither held nor
// beyond the recovered log is another history, not a loss: it is
// reported, and no restart names it.

// PeerWitnessRestartEndpoint is the peer protocol's restart request: the
// body is the proof file of the caller's log.restart entry against the
// checkpoint to cosign; the answer is add-checkpoint's.
const PeerWitnessRestartEndpoint = "witness/restart"

// KindWitnessRestart is the audit event a witness records when it accepts
// a log restart of a log it witnesses.
const KindWitnessRestart = "witness.restart"

func init() {
	peerEndpoints = append(peerEndpoints, peerEndpoint{name: PeerWitnessRestartEndpoint, handle: (*Node).peerWitnessRestart})
}

// peerWitnessRestart serves a peer's restart request, for its own log.
func (n *Node) peerWitnessRestart(w http.ResponseWriter, _ *http.Request, caller Peer, body []byte) {
	wit := n.witnessInForce()
	origin := audit.Origin(caller.Card.NodeID)
	if wit == nil || !wit.Follows(origin) {
		http.Error(w, fmt.Sprintf("this node does not witness log %s (the peer is opted out of witnessing, or unknown)", origin), http.StatusNotFound)
		return
	}
	sig, err := wit.RestartOf(origin, body)
	audit.WriteAddCheckpointAnswer(w, sig, err)
}

// reportRestart is told by the witness of every log restart it accepted:
// it logs it and records it on this node's audit log.
func (n *Node) reportRestart(r audit.WitnessRestart) {
	n.Log.Warn("witness: a log this node witnesses restarted after a recovery that lost entries this node had cosigned; it declared the loss on its log, and this node cosigned the restarted log",
		"log", r.Origin, "cosigned", r.Cosigned, "recovered", r.Restart.Base, "lost", r.Restart.Lost(), "entry", r.Index)
	n.peerWit.mu.Lock()
	if n.peerWit.restarts == nil {
		n.peerWit.restarts = map[string]uint64{}
	}
	n.peerWit.restarts[r.Origin]++
	n.peerWit.mu.Unlock()
	ev := audit.Event{Kind: KindWitnessRestart, Actor: "witness", Detail: map[string]string{
		"log": r.Origin, "cosigned": strconv.FormatUint(r.Cosigned, 10), "recovered": strconv.FormatUint(r.Restart.Base, 10),
		"lost": strconv.FormatUint(r.Restart.Lost(), 10), "entry": strconv.FormatUint(r.Index, 10),
		"size": strconv.FormatUint(r.Size, 10), "checkpoint": string(r.Checkpoint)}}
	for _, p := range n.Peers() {
		if audit.Origin(p.Card.NodeID) == r.Origin {
			ev.Detail["peer"], ev.Detail["nation"] = p.Card.NodeID, p.Card.Nation
		}
	}
	n.recordBestEffort(context.Background(), ev)
}

// LogRestartReport says what the peer witnesses held of the log after a
// recovery, and what was done about it.
type LogRestartReport struct {
	// Recovered is the size of the log recovered (the ally's copy).
	Recovered uint64 `json:"recovered"`
	// Lost is how many entries the witnesses cosigned beyond it.
	Lost uint64 `json:"lost"`
	// Entry is the index of the log.restart entry (when Lost > 0).
	Entry *uint64 `json:"entry,omitempty"`
	// Witnesses is what each peer witness held.
	Witnesses []RestartWitness `json:"witnesses"`
	// Problem says why the witnesses were not asked, or the restart not
	// recorded.
	Problem string `json:"problem,omitempty"`
}

// RestartWitness is one peer witness at a recovery.
type RestartWitness struct {
	Peer    string `json:"peer"`
	Nation  string `json:"nation"`
	Witness string `json:"witness"`
	// Size is the latest checkpoint of the log it cosigned (0: none).
	Size uint64 `json:"size"`
	// Held: the recovered log holds it. Restarted: it was beyond, and the
	// witness accepted the restart.
	Held      bool `json:"held"`
	Restarted bool `json:"restarted,omitempty"`
	// Problem says why it could not be asked, or did not accept.
	Problem string `json:"problem,omitempty"`
}

// restartLog asks every peer witness for the latest checkpoint of the
// log it cosigned and, when some are beyond the log recovered (its first
// recovered entries), records a log.restart naming them and has those
// witnesses cosign the restarted log. from names where the log was
// recovered from (the ally's node id).
func (n *Node) restartLog(ctx context.Context, recovered uint64, from string) (LogRestartReport, error) {
	var rep LogRestartReport
	l := n.Audit()
	if l == nil {
		return rep, errors.New("the recovered node has no audit log")
	}
	if err := l.AwaitIntegrated(ctx, l.Appended()); err != nil {
		return rep, err
	}
	if size := l.Integrated(); recovered == 0 || recovered > size {
		recovered = size
	}
	rep.Recovered = recovered
	eds, _, err := audit.Verifiers(l.Origin(), n.Keys().Identity().Public())
	if err != nil {
		return rep, err
	}
	ws := n.peerWitnesses()
	var lost audit.LogRestart
	var beyond []int
	for i, pw := range ws {
		rw := RestartWitness{Peer: pw.Peer.Card.NodeID, Nation: pw.Peer.Card.Nation, Witness: pw.v.Name()}
		status, body, err := n.peerPost(ctx, rw.Peer, PeerWitnessLatestEndpoint, nil)
		switch {
		case err != nil:
			rw.Problem = "not reached: " + err.Error()
		case status == http.StatusNotFound:
			rw.Held = true // it cosigned nothing of the log
		case status != http.StatusOK:
			rw.Problem = fmt.Sprintf("answered %d %s", status, strings.TrimSpace(firstLineOf(body)))
		default:
			cp, err := audit.ParseWitnessCheckpoint(body, l.Origin(), eds, pw.v)
			if err != nil {
				rw.Problem = "its answer is not a checkpoint of this log it cosigned: " + err.Error()
				break
			}
			rw.Size = cp.Size
			switch {
			case l.Holds(ctx, cp) == nil:
				rw.Held = true
			case cp.Size > recovered:
				beyond = append(beyond, i)
				if !slices.ContainsFunc(lost.Witnessed, func(w audit.Witnessed) bool { return w.Size == cp.Size && string(w.Root) == string(cp.Hash) }) {
					lost.Witnessed = append(lost.Witnessed, audit.Witnessed{Size: cp.Size, Root: cp.Hash})
				}
			default:
				rw.Problem = fmt.Sprintf("it cosigned a checkpoint of %d entries that is not the recovered log's, though within it: another history (a split view), not a loss; run 'embassy audit verify'", cp.Size)
			}
		}
		rep.Witnesses = append(rep.Witnesses, rw)
	}
	if len(lost.Witnessed) == 0 {
		return rep, nil
	}
	lost.Base = recovered
	if lost.BaseRoot, err = l.Root(ctx, recovered); err != nil {
		return rep, fmt.Errorf("the recovered log's root: %w", err)
	}
	rep.Lost = lost.Lost()
	var names []string
	for _, i := range beyond {
		names = append(names, rep.Witnesses[i].Witness)
	}
	idx, err := l.Append(ctx, lost.Event("recovery", map[string]string{"from": from, "witnesses": strings.Join(names, " ")}))
	if err != nil {
		return rep, fmt.Errorf("recording the log restart: %w", err)
	}
	rep.Entry = &idx
	kept, err := n.cosignatures()
	if err != nil {
		return rep, err
	}
	for _, i := range beyond {
		pw := ws[i]
		post := func(ctx context.Context, body []byte) (int, []byte, error) {
			return n.peerPost(ctx, pw.Peer.Card.NodeID, PeerWitnessRestartEndpoint, body)
		}
		cs, err := l.Restart(ctx, pw.v, post, idx)
		if err == nil {
			err = kept.Put(cs)
		}
		if err != nil {
			rep.Witnesses[i].Problem = err.Error()
			continue
		}
		rep.Witnesses[i].Restarted = true
	}
	return rep, nil
}

func firstLineOf(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
