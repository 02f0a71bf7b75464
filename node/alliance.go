package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// The alliance, part 1 (docs/alliance.md): nodes of allied nations know
// each other by peer cards whose fingerprints their operators confirmed
// out of band (peers), talk over a mutually authenticated TLS listener of
// their own pinned to those cards (peerlink.go), and share chosen parts of
// vaults with chosen nations at a chosen level by grants the owner signs
// (this file). A grantee's principals read shared data through their own
// node's S3 endpoint, as a read-only bucket OWNER--VAULT (allied.go); the
// owner checks every read and releases data keys, re-wrapped to the
// grantee node, never plaintext (peerserve.go). Peers and grants live in
// node.yaml, so they are in the descriptor and survive 'embassy recover'.

// AllianceConfig is the node's federation with allied nodes.
type AllianceConfig struct {
	// Listen is the peer listener's address (mutual TLS, pinned to the
	// peers' cards). Without it the node neither serves nor reads shares.
	Listen string `yaml:"listen,omitempty" json:"listen,omitempty"`
	// Endpoint is the host:port allies reach the peer listener at, as the
	// card says (default: Listen).
	Endpoint string `yaml:"endpoint,omitempty" json:"endpoint,omitempty"`
	// Peers are the allied nodes this node trusts.
	Peers []PeerConfig `yaml:"peers,omitempty" json:"peers,omitempty"`
	// Grants are the shares this node made, in force, expired or revoked.
	Grants []GrantConfig `yaml:"grants,omitempty" json:"grants,omitempty"`
	// ReplicaVault is the vault of this node that keeps allies' replicas
	// (grants of level replicate made to it): its placement policy places
	// them. Without it the node keeps none.
	ReplicaVault string `yaml:"replica_vault,omitempty" json:"replica_vault,omitempty"`
	// ReplicateEvery is how often a serving node pulls its replicas (a Go
	// duration; default 5m).
	ReplicateEvery string `yaml:"replicate_every,omitempty" json:"replicate_every,omitempty"`
	// Hosting is the storage this node offers the allies it hosts, as
	// its card states it (hosting.go); nil: it hosts nobody.
	Hosting *HostingConfig `yaml:"hosting,omitempty" json:"hosting,omitempty"`
	// Guests are the allies this node has agreed to host, with quotas.
	Guests []GuestConfig `yaml:"guests,omitempty" json:"guests,omitempty"`
}

// PeerConfig is a trusted peer: its card and the fingerprint an operator
// confirmed.
type PeerConfig struct {
	Card        string    `yaml:"card" json:"card"`
	Fingerprint string    `yaml:"fingerprint" json:"fingerprint"`
	Added       time.Time `yaml:"added" json:"added"`
	// Witness: this node and the peer witness each other's audit logs
	// (default true; docs/alliance.md, "Witnessing each other"). false
	// opts this peer out: the node neither sends it its checkpoints nor
	// cosigns the peer's.
	Witness *bool `yaml:"witness,omitempty" json:"witness,omitempty"`
}

// witnesses reports whether the node and this peer witness each other.
func (p PeerConfig) witnesses() bool { return p.Witness == nil || *p.Witness }

// GrantConfig is a grant this node made, as signed, and its revocation.
type GrantConfig struct {
	Grant     string     `yaml:"grant" json:"grant"`
	Revoked   *time.Time `yaml:"revoked,omitempty" json:"revoked,omitempty"`
	RevokedBy string     `yaml:"revoked_by,omitempty" json:"revoked_by,omitempty"`
}

func (a AllianceConfig) validate(self string) error {
	if a.Listen != "" {
		if _, _, err := net.SplitHostPort(a.Listen); err != nil {
			return fmt.Errorf("listen: %q is not host:port", a.Listen)
		}
	}
	if a.ReplicateEvery != "" {
		if d, err := time.ParseDuration(a.ReplicateEvery); err != nil || d <= 0 {
			return fmt.Errorf("replicate_every: %q is not a positive duration (e.g. 5m)", a.ReplicateEvery)
		}
	}
	if a.Endpoint != "" {
		if _, _, err := net.SplitHostPort(a.Endpoint); err != nil {
			return fmt.Errorf("endpoint: %q is not host:port", a.Endpoint)
		}
	}
	ids := map[string]bool{}
	for i, p := range a.Peers {
		c, err := federation.ParseCard([]byte(p.Card))
		if err != nil {
			return fmt.Errorf("peers[%d].card: %w", i, err)
		}
		if c.Fingerprint != p.Fingerprint {
			return fmt.Errorf("peers[%d].fingerprint: %s is not the card's (%s)", i, p.Fingerprint, c.Fingerprint)
		}
		if c.NodeID == self {
			return fmt.Errorf("peers[%d]: the card is this node's own", i)
		}
		if ids[c.NodeID] {
			return fmt.Errorf("peers[%d]: node %s is a peer twice", i, c.NodeID)
		}
		ids[c.NodeID] = true
	}
	for i, g := range a.Grants {
		if !strings.HasPrefix(g.Grant, "embassy grant v1\n") {
			return fmt.Errorf("grants[%d].grant: not a signed grant", i)
		}
	}
	return a.validateHosting()
}

// Peer is a trusted peer.
type Peer struct {
	Card  federation.Card
	Added time.Time
}

// allianceState is what the node keeps in memory for the alliance.
type allianceState struct {
	mu      sync.Mutex
	keys    *custody.PeerKeys
	clock   func() time.Time
	replay  federation.ReplayCache
	tickets map[string]*ticket
	clients map[string]*http.Client // by node id and pin
	seen    map[string]string       // grantee side: grant id -> scope, grants seen in force
	// recovery maps the recovery key pins of owners whose replicas this
	// node keeps to their node ids (nil until first read).
	recovery map[string]string
}

// now is the node's clock for grants, tickets and peer requests.
func (n *Node) now() time.Time {
	n.ally.mu.Lock()
	c := n.ally.clock
	n.ally.mu.Unlock()
	if c != nil {
		return c()
	}
	return time.Now()
}

// peerKeys returns the node's peer keys, made (and published in the
// descriptor) on first use.
func (n *Node) peerKeys() (*custody.PeerKeys, error) {
	if err := n.Ready(); err != nil {
		return nil, err
	}
	keys := n.Keys()
	n.ally.mu.Lock()
	defer n.ally.mu.Unlock()
	if n.ally.keys != nil {
		return n.ally.keys, nil
	}
	path := filepath.Join(n.Dir, custody.PeerKeysFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := keys.OpenPeerKeys(n.conf().Node.ID, b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		n.ally.keys = k
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	k, err := custody.GeneratePeerKeys()
	if err != nil {
		return nil, err
	}
	sealed, err := keys.SealPeerKeys(n.conf().Node.ID, k)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, sealed); err != nil {
		return nil, err
	}
	n.ally.keys = k
	if n.Engine != nil {
		// The new keys go to the sites before anyone can pin them.
		n.ally.mu.Unlock()
		n.PublishDescriptor(context.Background())
		n.ally.mu.Lock()
	}
	return k, nil
}

// Endpoint is the peer endpoint the card advertises.
func (a AllianceConfig) endpoint() string {
	if a.Endpoint != "" {
		return a.Endpoint
	}
	return a.Listen
}

// errNoListener: the node has no peer listener configured.
var errNoListener = errors.New("alliance.listen is not set: allies need the peer listener's address (set alliance.listen, and alliance.endpoint if allies reach it by another name)")

// PeerCard returns the node's peer card, signed by its identity.
func (n *Node) PeerCard() ([]byte, error) {
	k, err := n.peerKeys()
	if err != nil {
		return nil, err
	}
	keys := n.Keys()
	c := n.conf()
	ep := c.Alliance.endpoint()
	if ep == "" {
		return nil, errNoListener
	}
	card := federation.Card{NodeID: c.Node.ID, Nation: c.Node.Nation, Endpoint: ep, Identity: keys.Identity().Public(),
		HPKE: k.HPKEPublicKey(), TLSPin: k.TLSPin()}
	if h := c.Alliance.Hosting; h != nil {
		offer := h.offer()
		card.Hosting = &offer
	}
	return federation.MakeCard(card, keys.SignHybrid)
}

// Peers lists the trusted peers.
func (n *Node) Peers() []Peer {
	var out []Peer
	for _, p := range n.conf().Alliance.Peers {
		c, err := federation.ParseCard([]byte(p.Card))
		if err != nil {
			continue // validated when the configuration was
		}
		out = append(out, Peer{Card: c, Added: p.Added})
	}
	return out
}

// peer returns the trusted peer with node id id.
func (n *Node) peer(id string) (Peer, bool) {
	for _, p := range n.Peers() {
		if p.Card.NodeID == id {
			return p, true
		}
	}
	return Peer{}, false
}

// peerByPin returns the trusted peer whose card pins a TLS key.
func (n *Node) peerByPin(pin string) (Peer, bool) {
	for _, p := range n.Peers() {
		if p.Card.TLSPin == pin {
			return p, true
		}
	}
	return Peer{}, false
}

// ErrFingerprint: the fingerprint confirmed is not the card's.
var ErrFingerprint = errors.New("fingerprint mismatch")

// Alliance audit log event kinds.
const (
	KindPeerAdd       = "peer.add"
	KindPeerRemove    = "peer.remove"
	KindShareGrant    = "share.grant"
	KindShareRevoke   = "share.revoke"
	KindShareRead     = "share.read"
	KindShareReceived = "share.received"
	KindShareEnded    = "share.ended"
)

// AddPeer trusts the node whose card is card, once fingerprint (confirmed
// with the peer's operators out of band) matches it. On a node with
// custodians it takes two of them (peer.add).
func (n *Node) AddPeer(ctx context.Context, card []byte, fingerprint string) (federation.Card, error) {
	c, err := federation.ParseCard(card)
	if err != nil {
		return c, err
	}
	if fingerprint != c.Fingerprint {
		return c, fmt.Errorf("%w: the card's fingerprint is %s, not the %s confirmed: do not add this card; get it again from the peer's operators and compare the fingerprint out of band", ErrFingerprint, c.Fingerprint, fingerprint)
	}
	if err := n.checkNewPeer(c); err != nil {
		return c, err
	}
	if n.Custody != nil {
		if err := n.Require(ctx, vault.Operation{Kind: "peer.add", Summary: fmt.Sprintf("trust node %s of %s at %s (card %s)", c.NodeID, c.Nation, c.Endpoint, c.Fingerprint),
			Params: map[string]string{"card": string(card), "fingerprint": fingerprint}}); err != nil {
			return c, err
		}
	}
	return c, n.addPeer(ctx, string(card), fingerprint)
}

func (n *Node) checkNewPeer(c federation.Card) error {
	if c.NodeID == n.conf().Node.ID {
		return errors.New("the card is this node's own")
	}
	if _, ok := n.peer(c.NodeID); ok {
		return fmt.Errorf("%w: node %s is a peer already (peer rm it first to replace its card)", errExists, c.NodeID)
	}
	return nil
}

func (n *Node) addPeer(ctx context.Context, card, fingerprint string) error {
	c, err := federation.ParseCard([]byte(card))
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.checkNewPeer(c); err != nil {
		return err
	}
	if err := n.record(ctx, audit.Event{Kind: KindPeerAdd, Actor: actor(ctx), Detail: map[string]string{
		"peer": c.NodeID, "nation": c.Nation, "endpoint": c.Endpoint, "fingerprint": c.Fingerprint, "ed25519": c.Identity.Ed25519Fingerprint(), "tls": c.TLSPin}}); err != nil {
		return err
	}
	cfg := *n.Config
	cfg.Alliance.Peers = append(slices.Clone(cfg.Alliance.Peers), PeerConfig{Card: card, Fingerprint: fingerprint, Added: n.now().UTC().Truncate(time.Second)})
	if err := n.saveConfig(&cfg); err != nil {
		return err
	}
	n.setConfig(&cfg)
	return nil
}

// RemovePeer stops trusting a peer: its TLS connections are refused from
// then on, and grants to it release nothing more. A peer that witnesses
// this node's log (alliance.peers[].witness, on by default) is one witness
// fewer of the node's history, as removing one of audit.witnesses is: on a
// node with custodians that takes two of them (peer.remove). A peer opted
// out of witnessing is removed at once.
func (n *Node) RemovePeer(ctx context.Context, id string) error {
	pc, c, ok := n.peerConfig(id)
	if !ok {
		return fmt.Errorf("%w: no peer %s", errNoSuchPeer, id)
	}
	if n.Custody != nil && pc.witnesses() {
		if err := n.Require(ctx, vault.Operation{Kind: KindPeerRemove,
			Summary: fmt.Sprintf("stop trusting node %s of %s (card %s), a witness of this node's audit log: fewer witnesses check the node's history", c.NodeID, c.Nation, c.Fingerprint),
			Params:  map[string]string{"peer": c.NodeID, "fingerprint": c.Fingerprint}}); err != nil {
			return err
		}
	}
	return n.removePeer(ctx, id, c.Fingerprint)
}

// peerConfig returns the configuration and card of trusted peer id.
func (n *Node) peerConfig(id string) (PeerConfig, federation.Card, bool) {
	for _, p := range n.conf().Alliance.Peers {
		if c, err := federation.ParseCard([]byte(p.Card)); err == nil && c.NodeID == id {
			return p, c, true
		}
	}
	return PeerConfig{}, federation.Card{}, false
}

// removePeer removes trusted peer id, if its card's fingerprint is still
// fingerprint: an approval given to remove one card does not remove the
// card that replaced it.
func (n *Node) removePeer(ctx context.Context, id, fingerprint string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	i := slices.IndexFunc(n.conf().Alliance.Peers, func(p PeerConfig) bool {
		c, err := federation.ParseCard([]byte(p.Card))
		return err == nil && c.NodeID == id
	})
	if i < 0 {
		return fmt.Errorf("%w: no peer %s", errNoSuchPeer, id)
	}
	if fp := n.conf().Alliance.Peers[i].Fingerprint; fp != fingerprint {
		return fmt.Errorf("peer %s's card is now %s, not the %s whose removal was asked for: ask again", id, fp, fingerprint)
	}
	if err := n.record(ctx, audit.Event{Kind: KindPeerRemove, Actor: actor(ctx), Detail: map[string]string{"peer": id}}); err != nil {
		return err
	}
	cfg := *n.Config
	cfg.Alliance.Peers = slices.Delete(slices.Clone(cfg.Alliance.Peers), i, i+1)
	if err := n.saveConfig(&cfg); err != nil {
		return err
	}
	n.setConfig(&cfg)
	n.ally.mu.Lock()
	for k := range n.ally.clients {
		if strings.HasPrefix(k, id+"/") {
			n.ally.clients[k].CloseIdleConnections()
			delete(n.ally.clients, k)
		}
	}
	n.ally.mu.Unlock()
	return nil
}

var errNoSuchPeer = errors.New("no such peer")

// actor names the principal a context acts as, for the audit log.
func actor(ctx context.Context) string {
	if p, ok := vault.PrincipalFrom(ctx); ok && p.Name != "" {
		return p.Name
	}
	return "node"
}

// GrantRequest asks for a grant.
type GrantRequest struct {
	// Scope is VAULT or VAULT/PREFIX.
	Scope string `json:"scope"`
	// To is the grantee nation; Peer, if set, the grantee node (needed
	// when the node trusts several peers of that nation).
	To   string `json:"to"`
	Peer string `json:"peer,omitempty"`
	// Level is catalog, read or replicate.
	Level string `json:"level"`
	// Ceiling is the highest label (text form) the grantee's principals
	// are trusted up to, e.g. "NATO SECRET".
	Ceiling string `json:"ceiling"`
	// Expires is how long the grant lasts: Go duration or Nd (days).
	Expires string `json:"expires"`
}

// ParseDuration reads a Go duration or a number of days ("180d").
func ParseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(d, "%d", &days); err != nil || days <= 0 || days > 36500 || fmt.Sprint(days) != d {
			return 0, fmt.Errorf("%q is not a number of days (e.g. 180d)", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration (e.g. 180d, 12h)", s)
	}
	return v, nil
}

// GrantInfo is a grant and its state.
type GrantInfo struct {
	ID        string     `json:"id"`
	Scope     string     `json:"scope"`
	To        string     `json:"to"`
	Grantee   string     `json:"grantee"`
	Level     string     `json:"level"`
	Ceiling   string     `json:"ceiling"`
	Issued    time.Time  `json:"issued"`
	Expires   time.Time  `json:"expires"`
	State     string     `json:"state"` // active, expired, revoked
	Revoked   *time.Time `json:"revoked,omitempty"`
	RevokedBy string     `json:"revoked_by,omitempty"`
	Signed    string     `json:"signed"`
}

// Grant makes a share grant signed by this node. Granting a ceiling above
// two_person.share_level takes two custodians (share.grant). The caller
// must be cleared to the ceiling: nobody shares what they cannot read.
func (n *Node) Grant(ctx context.Context, q GrantRequest) (GrantInfo, error) {
	if err := n.Ready(); err != nil {
		return GrantInfo{}, err
	}
	g, err := n.grantTerms(ctx, q)
	if err != nil {
		return GrantInfo{}, err
	}
	// A replica is a full copy of the scope in another nation: on a node
	// with custodians it always takes two of them, whatever the ceiling.
	if n.ceilingAboveShareLevel(g.Ceiling) || (g.Level == federation.LevelReplicate && n.Custody != nil) {
		if err := n.Require(ctx, vault.Operation{Kind: "share.grant", Summary: fmt.Sprintf("share %s with %s (node %s) at level %s up to %s until %s",
			g.Scope(), g.To, g.Grantee, g.Level, g.Ceiling, g.Expires.Format(time.RFC3339)),
			Params: map[string]string{"grant": string(g.Raw)}}); err != nil {
			return GrantInfo{}, err
		}
	}
	if err := n.storeGrant(ctx, string(g.Raw)); err != nil {
		return GrantInfo{}, err
	}
	return grantInfo(GrantConfig{Grant: string(g.Raw)}, g, n.now()), nil
}

func (n *Node) grantTerms(ctx context.Context, q GrantRequest) (federation.Grant, error) {
	vaultName, prefix, _ := strings.Cut(q.Scope, "/")
	if _, err := n.Engine.Vault(vaultName); err != nil {
		return federation.Grant{}, err
	}
	if err := manifest.ValidVault(vaultName); err != nil {
		return federation.Grant{}, err
	}
	var grantee Peer
	found := 0
	for _, p := range n.Peers() {
		if p.Card.Nation == q.To && (q.Peer == "" || q.Peer == p.Card.NodeID) {
			grantee, found = p, found+1
		}
	}
	switch {
	case found == 0:
		return federation.Grant{}, fmt.Errorf("%w: no trusted peer of nation %s%s: add its card first ('embassy peer add')", errNoSuchPeer, q.To, map[bool]string{true: " with node id " + q.Peer}[q.Peer != ""])
	case found > 1:
		return federation.Grant{}, fmt.Errorf("several peers of %s are trusted: name the grantee node with --peer", q.To)
	}
	l, err := n.Labels.ParseText(q.Ceiling)
	if err != nil {
		return federation.Grant{}, fmt.Errorf("ceiling: %w", err)
	}
	if _, err := n.Labels.LabelLevel(l); err != nil {
		return federation.Grant{}, fmt.Errorf("ceiling: %w", err)
	}
	if p, ok := vault.PrincipalFrom(ctx); ok {
		if err := access.NewDecider(n.Labels).CanWriteLabel(p, l); err != nil {
			return federation.Grant{}, fmt.Errorf("you may not share up to %s: %w", q.Ceiling, err)
		}
	}
	d, err := ParseDuration(q.Expires)
	if err != nil {
		return federation.Grant{}, fmt.Errorf("expires: %w", err)
	}
	now := n.now()
	c := n.conf()
	return federation.SignGrant(federation.Grant{ID: federation.NewGrantID(), Owner: c.Node.ID, OwnerNation: c.Node.Nation, Vault: vaultName, Prefix: prefix,
		To: q.To, Grantee: grantee.Card.NodeID, GranteeCard: grantee.Card.Fingerprint, Level: q.Level, Ceiling: l.String(),
		Issued: now, Expires: now.Add(d)}, n.Keys().SignHybrid)
}

// ceilingAboveShareLevel reports whether a grant's ceiling lies above
// two_person.share_level (default NATO UNCLASSIFIED); anything that cannot
// be compared counts as above.
func (n *Node) ceilingAboveShareLevel(ceiling string) bool {
	level := n.conf().TwoPerson.ShareLevel
	if level == "" {
		level = "NATO UNCLASSIFIED"
	}
	lim, err1 := n.Labels.ParseText(level)
	cl, err2 := n.Labels.ParseText(ceiling)
	if err1 != nil || err2 != nil {
		return true
	}
	a, err1 := n.Labels.LabelLevel(lim)
	b, err2 := n.Labels.LabelLevel(cl)
	return err1 != nil || err2 != nil || !n.Labels.Dominates(a, b)
}

func (n *Node) storeGrant(ctx context.Context, raw string) error {
	g, err := federation.ParseGrant([]byte(raw), n.Keys().Identity().Public())
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.record(ctx, audit.Event{Kind: KindShareGrant, Actor: actor(ctx), Vault: g.Vault, Detail: map[string]string{
		"grant": g.ID, "scope": g.Scope(), "to": g.To, "grantee": g.Grantee, "level": g.Level, "ceiling": g.Ceiling, "expires": g.Expires.Format(time.RFC3339)}}); err != nil {
		return err
	}
	cfg := *n.Config
	cfg.Alliance.Grants = append(slices.Clone(cfg.Alliance.Grants), GrantConfig{Grant: raw})
	if err := n.saveConfig(&cfg); err != nil {
		return err
	}
	n.setConfig(&cfg)
	return nil
}

func grantInfo(gc GrantConfig, g federation.Grant, now time.Time) GrantInfo {
	state := "active"
	switch {
	case gc.Revoked != nil:
		state = "revoked"
	case !g.Active(now):
		state = "expired"
	}
	return GrantInfo{ID: g.ID, Scope: g.Scope(), To: g.To, Grantee: g.Grantee, Level: g.Level, Ceiling: g.Ceiling, Issued: g.Issued, Expires: g.Expires,
		State: state, Revoked: gc.Revoked, RevokedBy: gc.RevokedBy, Signed: gc.Grant}
}

// Grants lists the grants this node made.
func (n *Node) Grants() []GrantInfo {
	out := []GrantInfo{}
	keys := n.Keys()
	if keys == nil {
		return out // sealed: no grant can be verified, so none is listed
	}
	now := n.now()
	for _, gc := range n.conf().Alliance.Grants {
		g, err := federation.ParseGrant([]byte(gc.Grant), keys.Identity().Public())
		if err != nil {
			n.Log.Warn("a grant in node.yaml does not verify; it releases nothing", "err", err)
			continue
		}
		out = append(out, grantInfo(gc, g, now))
	}
	return out
}

// grantFor returns the grant id in force for caller: made by this node,
// not revoked, not expired, to the caller's node.
func (n *Node) grantFor(id, caller string) (federation.Grant, error) {
	now := n.now()
	for _, gc := range n.conf().Alliance.Grants {
		g, err := federation.ParseGrant([]byte(gc.Grant), n.Keys().Identity().Public())
		if err != nil || g.ID != id {
			continue
		}
		switch {
		case g.Grantee != caller:
			return g, errGrantNotYours
		case gc.Revoked != nil:
			return g, fmt.Errorf("%w: grant %s was revoked at %s", errGrantEnded, id, gc.Revoked.Format(time.RFC3339))
		case !g.Active(now):
			return g, fmt.Errorf("%w: grant %s expired at %s", errGrantEnded, id, g.Expires.Format(time.RFC3339))
		}
		return g, nil
	}
	return federation.Grant{}, errGrantNotYours
}

var (
	errGrantNotYours = errors.New("no such grant to this node")
	errGrantEnded    = errors.New("grant no longer in force")
)

// GrantODRL renders grant id's terms in ODRL.
func (n *Node) GrantODRL(id string) ([]byte, error) {
	keys := n.Keys()
	if keys == nil {
		return nil, n.Ready()
	}
	for _, gi := range n.Grants() {
		if gi.ID == id {
			g, err := federation.ParseGrant([]byte(gi.Signed), keys.Identity().Public())
			if err != nil {
				return nil, err
			}
			return g.ODRL()
		}
	}
	return nil, fmt.Errorf("%w: %s", errNoSuchGrant, id)
}

var errNoSuchGrant = errors.New("no such grant")

// RevokeGrant ends a grant at once: from now the owner releases no key
// for it, and tickets issued under it stop.
func (n *Node) RevokeGrant(ctx context.Context, id string) error {
	keys := n.Keys()
	if keys == nil {
		return n.Ready()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	i := slices.IndexFunc(n.conf().Alliance.Grants, func(gc GrantConfig) bool {
		g, err := federation.ParseGrant([]byte(gc.Grant), keys.Identity().Public())
		return err == nil && g.ID == id
	})
	if i < 0 {
		return fmt.Errorf("%w: %s", errNoSuchGrant, id)
	}
	if n.conf().Alliance.Grants[i].Revoked != nil {
		return fmt.Errorf("%w: grant %s was revoked already", errExists, id)
	}
	if err := n.record(ctx, audit.Event{Kind: KindShareRevoke, Actor: actor(ctx), Detail: map[string]string{"grant": id}}); err != nil {
		return err
	}
	cfg := *n.Config
	cfg.Alliance.Grants = slices.Clone(cfg.Alliance.Grants)
	at := n.now().UTC().Truncate(time.Second)
	cfg.Alliance.Grants[i].Revoked, cfg.Alliance.Grants[i].RevokedBy = &at, actor(ctx)
	if err := n.saveConfig(&cfg); err != nil {
		return err
	}
	n.setConfig(&cfg)
	n.dropTickets(id)
	return nil
}

// rewrapPeerKeys wraps the peer keys under the current root key (after a
// root switch); they do not change, so allies' pins stay valid.
func (n *Node) rewrapPeerKeys() error {
	keys := n.Keys()
	b, err := os.ReadFile(filepath.Join(n.Dir, custody.PeerKeysFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	k, err := keys.OpenPeerKeys(n.conf().Node.ID, b)
	if err != nil {
		return err
	}
	sealed, err := custody.RootlessCopy(keys).SealPeerKeys(n.conf().Node.ID, k)
	if err != nil {
		return err
	}
	n.ally.mu.Lock()
	n.ally.keys = k
	n.ally.mu.Unlock()
	return writeFileAtomic(filepath.Join(n.Dir, custody.PeerKeysFile), sealed)
}

// GrantsTo returns the grants in force (not revoked, not expired) that
// this node made to nation, at any level.
func (n *Node) GrantsTo(nation string) []federation.Grant {
	var out []federation.Grant
	keys := n.Keys()
	if keys == nil {
		return nil // sealed: no grant can be verified
	}
	for _, gi := range n.Grants() {
		if gi.To != nation || gi.State != "active" {
			continue
		}
		if g, err := federation.ParseGrant([]byte(gi.Signed), keys.Identity().Public()); err == nil {
			out = append(out, g)
		}
	}
	return out
}
