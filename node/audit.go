package node

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/transparency-dev/tessera"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/site"
)

// AuditDir is the audit log's directory in the node directory.
const AuditDir = "audit"

// auditSites returns the sites the audit log is copied to: every
// configured site, as the current engine opened them.
func (n *Node) auditSites() map[string]site.Site {
	if m := n.auditStores.Load(); m != nil {
		return *m
	}
	return nil
}

// auditConfig is the audit log's configuration for keys.
func (n *Node) auditConfig(keys *custody.Keyring) (audit.Config, error) {
	id := keys.Identity()
	if id == nil {
		return audit.Config{}, fmt.Errorf("audit log: the node has no identity")
	}
	origin := audit.Origin(n.conf().Node.ID)
	ed, pq, err := keys.CheckpointSigners(origin)
	if err != nil {
		return audit.Config{}, err
	}
	// Checkpoints signed by an identity the node replaced still verify.
	verifiers, _, err := audit.Verifiers(origin, append([]custody.PublicIdentity{id.Public()}, id.Previous...)...)
	if err != nil {
		return audit.Config{}, err
	}
	cfg := audit.Config{Dir: n.path(AuditDir), Origin: origin, Keys: keys, Signer: ed, Cosigner: pq, Verifiers: verifiers,
		Sites: n.auditSites, Logger: n.Log}
	g, err := witnessGroup(n.Config)
	if err != nil {
		return audit.Config{}, err
	}
	cfg.Witnesses, cfg.WitnessFailOpen = g, n.conf().witnessFailOpen()
	cfg.CopyInterval = n.conf().copyInterval()
	// Entries go to the tree with each copy round, not every BatchDelay:
	// the sites hold them as soon, and a few entries a second (large
	// PUTs) make one batch a round instead of one each (audit.Config).
	cfg.IntegrateWithCopies = true
	return cfg, nil
}

// witnessGroup is tessera's witness policy for c's audit.witnesses (in
// Sigsum's policy format: every witness, and a group of them with the
// quorum as its threshold); empty when there are none.
func witnessGroup(c *Config) (tessera.WitnessGroup, error) {
	ws := c.Audit.Witnesses
	if len(ws) == 0 {
		return tessera.WitnessGroup{}, nil
	}
	var p strings.Builder
	names := make([]string, len(ws))
	for i, w := range ws {
		names[i] = fmt.Sprintf("w%d", i)
		fmt.Fprintf(&p, "witness %s %s %s\n", names[i], w.Key, w.URL)
	}
	fmt.Fprintf(&p, "group g %d %s\nquorum g\n", c.witnessQuorum(), strings.Join(names, " "))
	g, err := tessera.NewWitnessGroupFromPolicy([]byte(p.String()))
	if err != nil {
		return tessera.WitnessGroup{}, fmt.Errorf("audit.witnesses: %w", err)
	}
	return g, nil
}

// reconfigureAudit puts the configuration's witness and copy settings in
// force on the open log without a restart: the witnesses and the quorum at
// once (the next checkpoint goes to them), audit.copy_interval from the
// next copy on, the logs this node witnesses at once,
// and a change of audit.witness_fail_open by reopening the log (writes wait
// for it a moment rather than fail).
func (n *Node) reconfigureAudit() error {
	l := n.Audit()
	if l == nil {
		return nil
	}
	g, err := witnessGroup(n.Config)
	if err != nil {
		return err
	}
	if l.WitnessFailOpen() != n.conf().witnessFailOpen() {
		n.auditSwap.Lock()
		n.closeAudit()
		err := n.openAudit(context.Background())
		n.auditSwap.Unlock()
		if err != nil {
			return err
		}
	} else {
		l.SetWitnesses(g)
		l.SetCopyInterval(n.conf().copyInterval())
	}
	if w := n.witness.Load(); w != nil && len(witnessedLogs(n.Config)) > 0 {
		return w.SetLogs(witnessedLogs(n.Config))
	}
	return n.openWitness(n.Keys())
}

// witnessedLogs are the logs c has the node witness: audit.witnessed, and
// the log of every trusted peer not opted out (alliance.peers[].witness),
// its key from the peer's card.
func witnessedLogs(c *Config) []audit.WitnessedLog {
	logs := make([]audit.WitnessedLog, 0, len(c.Audit.Witnessed)+len(c.Alliance.Peers))
	seen := map[string]bool{}
	for _, l := range c.Audit.Witnessed {
		logs = append(logs, audit.WitnessedLog{Origin: l.Origin, Key: l.Key})
		seen[l.Origin] = true
	}
	for _, p := range c.Alliance.Peers {
		card, err := federation.ParseCard([]byte(p.Card))
		if err != nil || !p.witnesses() {
			continue // validated with the configuration
		}
		origin := audit.Origin(card.NodeID)
		key, err := audit.VerifierKey(origin, card.Identity)
		if err != nil || seen[origin] {
			continue
		}
		seen[origin] = true
		logs = append(logs, audit.WitnessedLog{Origin: origin, Key: key})
	}
	return logs
}

// openWitness starts witnessing the logs witnessedLogs names, cosigning
// with the node identity (its cosignature/v1 key), the state kept in
// audit/witness.json.
func (n *Node) openWitness(keys *custody.Keyring) error {
	n.peerWit.mu.Lock()
	defer n.peerWit.mu.Unlock()
	n.peerWit.following = n.Config
	logs := witnessedLogs(n.Config)
	if len(logs) == 0 {
		n.witness.Store(nil)
		return nil
	}
	w, err := n.newWitness(keys, logs)
	if err != nil {
		n.witness.Store(nil)
		return err
	}
	n.witness.Store(w)
	return nil
}

func (n *Node) newWitness(keys *custody.Keyring, logs []audit.WitnessedLog) (*audit.Witness, error) {
	signer, err := keys.WitnessSigner(audit.WitnessName(n.conf().Node.ID))
	if err != nil {
		return nil, err
	}
	w, err := audit.NewWitness(signer, n.witnessFile(), logs)
	if err != nil {
		return nil, err
	}
	w.OnSplit = n.reportSplit
	w.OnRestart = n.reportRestart
	w.Persist = n.persistWitness
	return w, nil
}

// witnessInForce returns the node's witness, following the logs of the
// configuration in force (a peer added or removed since, or opted out),
// or nil when it witnesses none.
func (n *Node) witnessInForce() *audit.Witness {
	c := n.conf()
	n.peerWit.mu.Lock()
	defer n.peerWit.mu.Unlock()
	w := n.witness.Load()
	if n.peerWit.following == c {
		return w
	}
	logs := witnessedLogs(c)
	switch {
	case len(logs) == 0:
		w = nil
	case w == nil:
		keys := n.Keys()
		if keys == nil {
			return nil
		}
		var err error
		if w, err = n.newWitness(keys, logs); err != nil {
			n.Log.Error("witness: not serving add-checkpoint", "err", err)
			return nil
		}
	default:
		if err := w.SetLogs(logs); err != nil {
			n.Log.Error("witness: the logs followed were not changed", "err", err)
			return w
		}
	}
	n.witness.Store(w)
	n.peerWit.following = c
	return w
}

// adminWitness serves C2SP tlog-witness add-checkpoint for the logs this
// node witnesses. It needs no credential: the checkpoint is authenticated
// by the log's own signature, and what it may change is only the witness's
// record of that log, forward along a consistency proof.
func (n *Node) adminWitness(w http.ResponseWriter, r *http.Request, c *adminCall) {
	wit := n.witnessInForce()
	if wit == nil {
		http.Error(w, "this node witnesses no log", http.StatusNotFound)
		return
	}
	wit.ServeHTTP(w, r)
}

// adminWitnessLatest serves the latest checkpoint this node cosigned of a
// log it witnesses (audit.Witness.ServeLatest): public, like the
// checkpoints themselves, so that the log's own node can ask it.
func (n *Node) adminWitnessLatest(w http.ResponseWriter, r *http.Request, c *adminCall) {
	wit := n.witnessInForce()
	if wit == nil {
		http.Error(w, "this node witnesses no log", http.StatusNotFound)
		return
	}
	wit.ServeLatest(w, r)
}

// openAudit opens the node's audit log.
func (n *Node) openAudit(ctx context.Context) error {
	keys := n.Keys()
	cfg, err := n.auditConfig(keys)
	if err != nil {
		return err
	}
	l, err := audit.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open the audit log: %w", err)
	}
	if n.Index != nil {
		// Entries committed with the index (a put's) are the log's to
		// drain, those a crash left there included.
		if err := l.AttachIndex(ctx, n.Index); err != nil {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			l.Close(cctx)
			return fmt.Errorf("open the audit log: %w", err)
		}
	}
	n.audit.Store(l)
	if err := n.openWitness(keys); err != nil {
		n.Log.Error("witness: not serving add-checkpoint", "err", err)
	}
	return nil
}

// Audit returns the node's audit log, or nil while the node is sealed.
func (n *Node) Audit() *audit.Log { return n.audit.Load() }

// auditProxy is the engine's view of the audit log: whichever log the
// node has open (an identity replacement reopens it under the new key).
type auditProxy struct{ n *Node }

func (p auditProxy) log() (*audit.Log, error) {
	if l := p.n.audit.Load(); l != nil {
		return l, nil
	}
	return nil, fmt.Errorf("%w: not open", audit.ErrLog)
}

func (p auditProxy) Append(ctx context.Context, evs ...audit.Event) (uint64, error) {
	p.n.auditSwap.RLock()
	defer p.n.auditSwap.RUnlock()
	l, err := p.log()
	if err != nil {
		return 0, err
	}
	return l.Append(ctx, evs...)
}

// IndexEntry is the open log's (vault's indexLog): a put's entry sealed
// to be committed with its index write.
func (p auditProxy) IndexEntry(into audit.Pending, ev audit.Event) ([]byte, error) {
	p.n.auditSwap.RLock()
	defer p.n.auditSwap.RUnlock()
	l, err := p.log()
	if err != nil {
		return nil, err
	}
	return l.IndexEntry(into, ev)
}

// Committed pokes the open log to drain what the index holds.
func (p auditProxy) Committed() {
	if l := p.n.audit.Load(); l != nil {
		l.Committed()
	}
}

func (p auditProxy) Sync(ctx context.Context, size uint64, sites []string) error {
	l, err := p.log()
	if err != nil {
		return err
	}
	return l.Sync(ctx, size, sites)
}

func (p auditProxy) Events(ctx context.Context, from uint64, fn func(uint64, audit.Event) error) error {
	l, err := p.log()
	if err != nil {
		return err
	}
	return l.Events(ctx, from, fn)
}

// closeAudit closes the audit log, waiting a while for what it holds to
// reach the sites.
func (n *Node) closeAudit() {
	l := n.audit.Swap(nil)
	if l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		n.Log.Warn("audit log closed before everything reached the sites", "err", err)
	}
}
