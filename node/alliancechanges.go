package node

import (
	"fmt"
	"slices"

	"github.com/embassy-dev/embassy/federation"
)

// allianceChanges describes a change of the alliance section, with the
// gates of the commands that make the same changes: trusting a peer
// (peer add), replacing its card and granting (share grant) need
// custodians; removing a peer that witnesses this node's log, or opting
// one out of witnessing, leaves fewer witnesses of the node's history and
// needs them too; removing a peer opted out or revoking a grant gives
// nothing away and is free; a grant cannot be changed once signed.
func allianceChanges(old, next *Config) []Change {
	var out []Change
	add := func(field, text string, g Gate, why string) {
		out = append(out, Change{Field: field, Text: text, Gate: g, Why: why})
	}
	o, nx := old.Alliance, next.Alliance
	if o.Listen != nx.Listen {
		add("alliance.listen", fmt.Sprintf("alliance.listen %q → %q", o.Listen, nx.Listen), Free, "")
	}
	if o.Endpoint != nx.Endpoint {
		add("alliance.endpoint", fmt.Sprintf("alliance.endpoint %q → %q", o.Endpoint, nx.Endpoint), Free, "")
	}
	// Where this node keeps allies' replicas, and how often it pulls them:
	// its own storage, nothing given away.
	if o.ReplicaVault != nx.ReplicaVault {
		add("alliance.replica_vault", fmt.Sprintf("alliance.replica_vault %q → %q", o.ReplicaVault, nx.ReplicaVault), Free, "")
	}
	if o.ReplicateEvery != nx.ReplicateEvery {
		add("alliance.replicate_every", fmt.Sprintf("alliance.replicate_every %q → %q", o.ReplicateEvery, nx.ReplicateEvery), Free, "")
	}
	peerID := func(p PeerConfig) string {
		c, err := federation.ParseCard([]byte(p.Card))
		if err != nil {
			return p.Fingerprint
		}
		return c.NodeID + " (" + c.Nation + ")"
	}
	nodeID := func(p PeerConfig) string {
		c, err := federation.ParseCard([]byte(p.Card))
		if err != nil {
			return ""
		}
		return c.NodeID
	}
	// sameNode finds the peer of ps that is node p's, whatever its card.
	sameNode := func(ps []PeerConfig, p PeerConfig) int {
		id := nodeID(p)
		return slices.IndexFunc(ps, func(x PeerConfig) bool { return id != "" && nodeID(x) == id })
	}
	for _, p := range nx.Peers {
		if slices.ContainsFunc(o.Peers, func(x PeerConfig) bool { return x.Card == p.Card }) {
			continue
		}
		if j := sameNode(o.Peers, p); j >= 0 {
			add("alliance.peers["+peerID(p)+"]", fmt.Sprintf("peer %s's card replaced: %s → %s", peerID(p), o.Peers[j].Fingerprint, p.Fingerprint), Custodians,
				"trusting another key for an allied node, a witness of this node's log (as 'embassy peer rm' and 'embassy peer add')")
			continue
		}
		add("alliance.peers["+peerID(p)+"]", "peer "+peerID(p)+" trusted", Custodians, "trusting an allied node (as 'embassy peer add')")
	}
	for _, p := range nx.Peers {
		i := slices.IndexFunc(o.Peers, func(x PeerConfig) bool { return x.Card == p.Card })
		switch {
		case i < 0, o.Peers[i].witnesses() == p.witnesses():
		case p.witnesses():
			add("alliance.peers["+peerID(p)+"].witness", "peer "+peerID(p)+" witnesses this node's log again, and this node its", Free, "")
		default:
			add("alliance.peers["+peerID(p)+"].witness", "peer "+peerID(p)+" no longer witnesses this node's log, nor this node its", Custodians, "fewer witnesses check the node's history")
		}
	}
	for _, p := range o.Peers {
		switch {
		case slices.ContainsFunc(nx.Peers, func(x PeerConfig) bool { return x.Card == p.Card }), sameNode(nx.Peers, p) >= 0:
			// Kept, or its card replaced (above).
		case p.witnesses():
			add("alliance.peers["+peerID(p)+"]", "peer "+peerID(p)+" no longer trusted (a witness of this node's log)", Custodians, "fewer witnesses check the node's history (as 'embassy peer rm' of a witnessing peer)")
		default:
			add("alliance.peers["+peerID(p)+"]", "peer "+peerID(p)+" no longer trusted", Free, "")
		}
	}
	for _, g := range nx.Grants {
		i := slices.IndexFunc(o.Grants, func(x GrantConfig) bool { return x.Grant == g.Grant })
		switch {
		case i < 0:
			add("alliance.grants", "a grant added", Custodians, "sharing data with another nation (as 'embassy share grant')")
		case o.Grants[i].Revoked != nil && (g.Revoked == nil || !g.Revoked.Equal(*o.Grants[i].Revoked)):
			add("alliance.grants", "a grant's revocation undone or changed", Refused, "a revocation is final: grant anew with 'embassy share grant'")
		case o.Grants[i].Revoked == nil && g.Revoked != nil:
			add("alliance.grants", "a grant revoked", Free, "")
		}
	}
	for _, g := range o.Grants {
		if !slices.ContainsFunc(nx.Grants, func(x GrantConfig) bool { return x.Grant == g.Grant }) {
			add("alliance.grants", "a grant removed", Refused, "grants are kept as the record of what was shared: revoke it with 'embassy share revoke'")
		}
	}
	return append(out, hostingChanges(o, nx)...)
}
