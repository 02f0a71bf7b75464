package node

import (
	"context"
	"fmt"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
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
	origin := audit.Origin(n.Config.Node.ID)
	ed, pq, err := keys.CheckpointSigners(origin)
	if err != nil {
		return audit.Config{}, err
	}
	// Checkpoints signed by an identity the node replaced still verify.
	verifiers, _, err := audit.Verifiers(origin, append([]custody.PublicIdentity{id.Public()}, id.Previous...)...)
	if err != nil {
		return audit.Config{}, err
	}
	return audit.Config{Dir: n.path(AuditDir), Origin: origin, Keys: keys, Signer: ed, Cosigner: pq, Verifiers: verifiers,
		Sites: n.auditSites, Logger: n.Log}, nil
}

// openAudit opens the node's audit log.
func (n *Node) openAudit(ctx context.Context) error {
	cfg, err := n.auditConfig(n.Keys)
	if err != nil {
		return err
	}
	l, err := audit.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open the audit log: %w", err)
	}
	n.audit.Store(l)
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
	l, err := p.log()
	if err != nil {
		return 0, err
	}
	return l.Append(ctx, evs...)
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
