package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
)

// Allies witness each other (docs/alliance.md, "Witnessing each other").
// Every trusted peer not opted out (alliance.peers[].witness) witnesses
// this node's log, and this node the peer's, over the peer link: the
// peer's log key and witness key come from its card, so nobody edits
// witness settings. The node sends its latest checkpoint to each peer in
// the background (runPeerWitnessing), never holding a checkpoint back for
// them, and keeps the cosignatures in audit/cosigned.json; 'audit verify'
// checks them and asks each peer for the latest checkpoint it cosigned.
// The witnesses of audit.witnesses, and their quorum, are apart from this:
// tessera asks them before it publishes a checkpoint.

// The peer protocol's witness endpoints. Their bodies and answers are
// C2SP tlog-witness's, not JSON: add-checkpoint takes the request body
// tlog-witness defines and answers the cosignature, or 409 with the size
// cosigned (text/x.tlog.size), 403, 404, 422; checkpoint takes an empty
// body and answers the latest checkpoint of the caller's log cosigned.
// A caller submits only its own log's checkpoints and asks only about its
// own log.
const (
	PeerWitnessEndpoint       = "witness/add-checkpoint"
	PeerWitnessLatestEndpoint = "witness/checkpoint"
)

// KindWitnessSplit is the audit event a witness records when a log it
// witnesses shows it another history than the one it cosigned (a fork, an
// inconsistent checkpoint, a rollback): the refused checkpoint, signed by
// that log's key, is in the event as evidence.
const KindWitnessSplit = "witness.split"

func init() {
	peerEndpoints = append(peerEndpoints,
		peerEndpoint{name: PeerWitnessEndpoint, handle: (*Node).peerWitnessAdd},
		peerEndpoint{name: PeerWitnessLatestEndpoint, handle: (*Node).peerWitnessLatest})
}

// peerWitnessState is the node's state for witnessing with its peers.
type peerWitnessState struct {
	mu sync.Mutex
	// following is the configuration whose logs the witness follows.
	following *Config
	// cosigned keeps the cosignatures of our log the peers returned.
	cosigned *audit.Cosignatures
	// reported is the last problem logged per peer, so that a refusal
	// repeated every round is logged once.
	reported map[string]string
	// round serialises rounds.
	round sync.Mutex
	// splits counts, by log, the checkpoints this node refused as a
	// witness because they showed another history (metrics).
	splits map[string]uint64
	// split marks the peers whose last refusal showed a split view.
	split map[string]bool
	// compared remembers the forks between witnesses already reported.
	compared map[string]bool
	// restarts counts, by log, the log restarts this node accepted as a
	// witness (metrics).
	restarts map[string]uint64
}

// peerWitnessAdd serves add-checkpoint to a peer, for its own log.
func (n *Node) peerWitnessAdd(w http.ResponseWriter, _ *http.Request, caller Peer, body []byte) {
	wit := n.witnessInForce()
	origin := audit.Origin(caller.Card.NodeID)
	if wit == nil || !wit.Follows(origin) {
		http.Error(w, fmt.Sprintf("this node does not witness log %s (the peer is opted out of witnessing, or unknown)", origin), http.StatusNotFound)
		return
	}
	sig, err := wit.AddCheckpointOf(origin, body)
	audit.WriteAddCheckpointAnswer(w, sig, err)
}

// peerWitnessLatest serves a peer the latest checkpoint of its log this
// node cosigned.
func (n *Node) peerWitnessLatest(w http.ResponseWriter, _ *http.Request, caller Peer, _ []byte) {
	wit := n.witnessInForce()
	origin := audit.Origin(caller.Card.NodeID)
	var cp []byte
	if wit != nil {
		cp = wit.Latest(origin)
	}
	if cp == nil {
		http.Error(w, fmt.Sprintf("no checkpoint of log %s cosigned", origin), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(cp)
}

// reportSplit is told by the witness of every checkpoint it refused that
// shows a log it witnesses signed another history: it logs it and records
// it on this node's audit log, with the checkpoint as evidence.
func (n *Node) reportSplit(e *audit.WitnessError) {
	n.Log.Error("witness: a log this node witnesses showed it another history than the one it cosigned (a split view): keep the checkpoint as evidence and tell the log's operators",
		"log", e.Origin, "split", e.Split, "cosigned", e.Cosigned, "reason", e.Reason)
	n.peerWit.mu.Lock()
	if n.peerWit.splits == nil {
		n.peerWit.splits = map[string]uint64{}
	}
	n.peerWit.splits[e.Origin]++
	n.peerWit.mu.Unlock()
	ev := audit.Event{Kind: KindWitnessSplit, Actor: "witness", Outcome: e.Reason, Detail: map[string]string{
		"log": e.Origin, "split": e.Split, "cosigned": strconv.FormatUint(e.Cosigned, 10), "checkpoint": string(e.Checkpoint)}}
	for _, p := range n.Peers() {
		if audit.Origin(p.Card.NodeID) == e.Origin {
			ev.Detail["peer"], ev.Detail["nation"] = p.Card.NodeID, p.Card.Nation
		}
	}
	n.recordBestEffort(context.Background(), ev)
}

// peerWitness is a peer that witnesses this node's log in the background.
type peerWitness struct {
	Peer Peer
	// Key is the peer's witness verifier key (cosignature/v1), from its
	// card; v parses it.
	Key string
	v   note.Verifier
}

// peerWitnesses returns the peers that witness this node's log in the
// background: every trusted peer not opted out, except one listed in
// audit.witnesses too (tessera asks that one before publishing).
func (n *Node) peerWitnesses() []peerWitness {
	c := n.conf()
	explicit := map[string]bool{}
	for _, w := range c.Audit.Witnesses {
		explicit[witnessName(w.Key)] = true
	}
	var out []peerWitness
	for _, pc := range c.Alliance.Peers {
		card, err := federation.ParseCard([]byte(pc.Card))
		if err != nil || !pc.witnesses() {
			continue
		}
		name := audit.WitnessName(card.NodeID)
		if explicit[name] {
			continue
		}
		key := custody.WitnessVerifierKey(name, card.Identity)
		v, err := fnote.NewVerifierForCosignatureV1(key)
		if err != nil {
			continue
		}
		out = append(out, peerWitness{Peer: Peer{Card: card, Added: pc.Added}, Key: key, v: v})
	}
	return out
}

// cosignatures returns the cosignatures kept (audit/cosigned.json).
func (n *Node) cosignatures() (*audit.Cosignatures, error) {
	n.peerWit.mu.Lock()
	defer n.peerWit.mu.Unlock()
	if n.peerWit.cosigned == nil {
		c, err := audit.OpenCosignatures(filepath.Join(n.path(AuditDir), "cosigned.json"))
		if err != nil {
			return nil, err
		}
		n.peerWit.cosigned = c
	}
	return n.peerWit.cosigned, nil
}

// PeerCosigning is what one round did with one peer witness.
type PeerCosigning struct {
	Peer   string `json:"peer"`
	Nation string `json:"nation"`
	// Size is the size of the latest checkpoint of the log the peer has
	// cosigned, as far as this node knows.
	Size uint64 `json:"size"`
	// Err is why the peer did not cosign this round; Split that its
	// refusal shows it holds another history of the log.
	Err   string `json:"error,omitempty"`
	Split bool   `json:"split,omitempty"`
}

// WitnessPeers sends the log's latest checkpoint to every peer witness
// that has not cosigned it yet, and keeps the cosignatures. A peer that
// cannot be reached is tried again next round; one whose refusal shows a
// split view is logged as an error (once per reason).
func (n *Node) WitnessPeers(ctx context.Context) ([]PeerCosigning, error) {
	if err := n.Ready(); err != nil {
		return nil, err
	}
	l := n.Audit()
	if l == nil {
		return nil, errors.New("the audit log is not open")
	}
	ws := n.peerWitnesses()
	if len(ws) == 0 {
		return nil, nil
	}
	kept, err := n.cosignatures()
	if err != nil {
		return nil, err
	}
	n.peerWit.round.Lock()
	defer n.peerWit.round.Unlock()
	_, cp, err := l.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("the log's checkpoint: %w", err)
	}
	out := make([]PeerCosigning, len(ws))
	var wg sync.WaitGroup
	for i, pw := range ws {
		out[i] = PeerCosigning{Peer: pw.Peer.Card.NodeID, Nation: pw.Peer.Card.Nation}
		prev, _ := kept.Get(pw.v.Name())
		out[i].Size = prev.Size
		if prev.Size == cp.Size && l.CheckCosigned(ctx, pw.v, prev) == nil {
			continue
		}
		wg.Go(func() {
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			post := func(ctx context.Context, body []byte) (int, []byte, error) {
				return n.peerPost(ctx, pw.Peer.Card.NodeID, PeerWitnessEndpoint, body)
			}
			cs, err := l.Cosign(wctx, pw.v, post, prev.Size)
			if err == nil {
				err = kept.Put(cs)
				out[i].Size = cs.Size
			}
			if err != nil {
				out[i].Err = err.Error()
				var re *audit.RefusedError
				out[i].Split = errors.As(err, &re) && re.Split
			}
		})
	}
	wg.Wait()
	n.peerWit.mu.Lock()
	if n.peerWit.reported == nil {
		n.peerWit.reported, n.peerWit.split = map[string]string{}, map[string]bool{}
	}
	for _, r := range out {
		if r.Err != "" && n.peerWit.reported[r.Peer] != r.Err {
			if r.Split {
				n.Log.ErrorContext(ctx, "witness: a peer refused this node's checkpoint because it cosigned another history of this node's log (a split view): run 'embassy audit verify'", "peer", r.Peer, "nation", r.Nation, "err", r.Err)
			} else {
				n.Log.WarnContext(ctx, "witness: a peer did not cosign this node's checkpoint; tried again later", "peer", r.Peer, "nation", r.Nation, "err", r.Err)
			}
		}
		n.peerWit.reported[r.Peer] = r.Err
		n.peerWit.split[r.Peer] = r.Split
	}
	n.peerWit.mu.Unlock()
	return out, nil
}

// peerWitnessEvery is how often a serving node sends its checkpoint to
// its peer witnesses.
const peerWitnessEvery = 5 * time.Second

// runPeerWitnessing witnesses with the peers, every peerWitnessEvery,
// until ctx is done.
func (n *Node) runPeerWitnessing(ctx context.Context) {
	t := time.NewTicker(peerWitnessEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.Ready() != nil || n.Audit() == nil {
			continue
		}
		if _, err := n.WitnessPeers(ctx); err != nil && ctx.Err() == nil {
			n.Log.WarnContext(ctx, "witness: the round with the peers failed", "err", err)
		}
		if _, err := n.CompareWitnesses(ctx); err != nil && ctx.Err() == nil {
			n.Log.WarnContext(ctx, "witness: comparing with the other witnesses failed", "err", err)
		}
	}
}

// checkPeerWitnesses adds to rep what every peer witness holds of the
// log: the cosignature kept must be of the log's tree, and so must the
// latest checkpoint the peer says it cosigned (asked over the peer link).
func (n *Node) checkPeerWitnesses(ctx context.Context, l *audit.Log, rep *AuditReport) {
	ws := n.peerWitnesses()
	if len(ws) == 0 {
		return
	}
	kept, err := n.cosignatures()
	if err != nil {
		rep.Problems = append(rep.Problems, "the peers' cosignatures kept: "+err.Error())
		return
	}
	checks := make([]audit.WitnessCheck, len(ws))
	var wg sync.WaitGroup
	for i, pw := range ws {
		wg.Go(func() {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			where := "peer " + pw.Peer.Card.Nation
			checks[i] = l.CheckWitnessVia(wctx, pw.Key, where, func(ctx context.Context) (int, []byte, error) {
				return n.peerPost(ctx, pw.Peer.Card.NodeID, PeerWitnessLatestEndpoint, nil)
			})
			if cs, ok := kept.Get(pw.v.Name()); ok {
				if err := l.CheckCosigned(wctx, pw.v, cs); err != nil {
					if checks[i].Problem == "" {
						checks[i].Problem = "the cosignature this node kept: " + err.Error()
						checks[i].Size = cs.Size
					}
				} else if checks[i].Size < cs.Size && checks[i].Problem == "" {
					checks[i].Size = cs.Size
				}
			}
		})
	}
	wg.Wait()
	for i, wc := range checks {
		rep.Witnesses = append(rep.Witnesses, wc)
		name := fmt.Sprintf("%s (peer %s)", wc.Witness, ws[i].Peer.Card.Nation)
		if wc.Problem != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("witness %s cosigned a checkpoint of %d entries that is not the log's: a split view (%s)", name, wc.Size, wc.Problem))
		} else if wc.Window != "" {
			rep.Window = append(rep.Window, fmt.Sprintf("witness %s: %s", name, wc.Window))
		}
	}
}

// peerPost sends a signed request with a raw body to peer id's endpoint
// and returns the answer's status and body (at most 64 KiB).
func (n *Node) peerPost(ctx context.Context, id, endpoint string, body []byte) (int, []byte, error) {
	p, ok := n.peer(id)
	if !ok {
		return 0, nil, fmt.Errorf("%w: %s", errNoSuchPeer, id)
	}
	c, err := n.peerClient(p)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+p.Card.Endpoint+federation.PathPrefix+endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if err := federation.SignRequest(req, body, n.conf().Node.ID, id, n.now(), n.Keys().SignHybrid); err != nil {
		return 0, nil, err
	}
	resp, err := peerDo(c, req, id)
	if err != nil {
		return 0, nil, fmt.Errorf("peer %s at %s: %w", id, p.Card.Endpoint, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, fmt.Errorf("peer %s: %w", id, err)
	}
	return resp.StatusCode, b, nil
}

// peerWitnessCollector reports witnessing with the peers to Prometheus:
// the splits this node refused as a witness, and for each peer witness of
// the node's log the size it cosigned and whether its last refusal showed
// a split view (docs/resilience.md, the metrics table).
type peerWitnessCollector struct{ n *Node }

var (
	witnessSplitsDesc = prometheus.NewDesc("embassy_witness_splits_total",
		"Split views of a log this node witnesses: checkpoints it refused because they showed another history than the one it cosigned (fork, inconsistent, rollback), and forks found by comparing with another witness, by log.", []string{"log"}, nil)
	witnessRestartsDesc = prometheus.NewDesc("embassy_witness_restarts_total",
		"Log restarts this node accepted as a witness: a log it witnesses was recovered short of what this node cosigned and declared the loss (log.restart), by log.", []string{"log"}, nil)
	peerCosignedDesc = prometheus.NewDesc("embassy_peer_witness_cosigned_entries",
		"Size of the latest checkpoint of this node's audit log a peer witness cosigned, by peer.", []string{"peer", "nation"}, nil)
	peerSplitDesc = prometheus.NewDesc("embassy_peer_witness_split",
		"1 when the peer witness's last refusal showed it holds another history of this node's log (a split view).", []string{"peer", "nation"}, nil)
)

func (c *peerWitnessCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- witnessSplitsDesc
	ch <- witnessRestartsDesc
	ch <- peerCosignedDesc
	ch <- peerSplitDesc
}

func (c *peerWitnessCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	n.peerWit.mu.Lock()
	for log, v := range n.peerWit.splits {
		ch <- prometheus.MustNewConstMetric(witnessSplitsDesc, prometheus.CounterValue, float64(v), log)
	}
	for log, v := range n.peerWit.restarts {
		ch <- prometheus.MustNewConstMetric(witnessRestartsDesc, prometheus.CounterValue, float64(v), log)
	}
	split := maps.Clone(n.peerWit.split)
	kept := n.peerWit.cosigned
	n.peerWit.mu.Unlock()
	if n.Ready() != nil {
		return
	}
	for _, pw := range n.peerWitnesses() {
		id, nation := pw.Peer.Card.NodeID, pw.Peer.Card.Nation
		var size uint64
		if kept != nil {
			cs, _ := kept.Get(pw.v.Name())
			size = cs.Size
		}
		ch <- prometheus.MustNewConstMetric(peerCosignedDesc, prometheus.GaugeValue, float64(size), id, nation)
		v := 0.0
		if split[id] {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(peerSplitDesc, prometheus.GaugeValue, v, id, nation)
	}
}
