package node

import (
	"errors"
	"net/http"
	"time"

	"github.com/embassy-dev/embassy/federation"
)

// The alliance's operator endpoints: the same Node methods the offline
// CLI calls ('embassy peer …', 'embassy share …'), acting as the principal
// whose credential signed the request. Trusting a peer and granting give
// access, so they take the admin role; listing reads; removing a peer and
// revoking a grant take access away and need the operator role.

var allianceRoutes = []adminRoute{
	{method: http.MethodGet, path: "v1/alliance/card", auth: authOperator, roles: readerRoles,
		doc: "the node's peer card, signed by its identity: `PeerCardInfo`", handle: (*Node).adminPeerCard},
	{method: http.MethodGet, path: "v1/peers", auth: authOperator, roles: readerRoles,
		doc: "trusted peers: `[PeerInfo]`", handle: (*Node).adminPeers},
	{method: http.MethodPost, path: "v1/peers", auth: authOperator, roles: adminRoles,
		doc: "`PeerAddRequest`: trust a peer whose card's fingerprint was confirmed (two custodians on a node with custodians)", handle: (*Node).adminPeerAdd},
	{method: http.MethodDelete, path: "v1/peers/{id}", auth: authOperator, roles: operatorRoles,
		doc: "stop trusting a peer", handle: (*Node).adminPeerRemove},
	{method: http.MethodGet, path: "v1/shares", auth: authOperator, roles: readerRoles,
		doc: "grants this node made: `[GrantInfo]`", handle: (*Node).adminShares},
	{method: http.MethodPost, path: "v1/shares", auth: authOperator, roles: adminRoles,
		doc: "`GrantRequest`: share part of a vault with a nation (above `two_person.share_level`: two custodians): `GrantInfo`", handle: (*Node).adminShareGrant},
	{method: http.MethodPost, path: "v1/shares/{id}/revoke", auth: authOperator, roles: operatorRoles,
		doc: "revoke a grant at once: `GrantInfo`", handle: (*Node).adminShareRevoke},
	{method: http.MethodGet, path: "v1/shares/{id}/odrl", auth: authOperator, roles: readerRoles,
		doc: "a grant's terms as an ODRL Agreement (JSON-LD)", handle: (*Node).adminShareODRL},
}

func init() { adminRoutes = append(adminRoutes, allianceRoutes...) }

// PeerCardInfo is the node's card and its fingerprint.
type PeerCardInfo struct {
	Card        string `json:"card"`
	Fingerprint string `json:"fingerprint"`
}

// PeerInfo is a trusted peer, as listed.
type PeerInfo struct {
	Node        string    `json:"node"`
	Nation      string    `json:"nation"`
	Endpoint    string    `json:"endpoint"`
	Fingerprint string    `json:"fingerprint"`
	Ed25519     string    `json:"ed25519"`
	TLS         string    `json:"tls"`
	Added       time.Time `json:"added"`
}

// PeerInfos lists the trusted peers.
func (n *Node) PeerInfos() []PeerInfo {
	out := []PeerInfo{}
	for _, p := range n.Peers() {
		out = append(out, PeerInfo{Node: p.Card.NodeID, Nation: p.Card.Nation, Endpoint: p.Card.Endpoint, Fingerprint: p.Card.Fingerprint,
			Ed25519: p.Card.Identity.Ed25519Fingerprint(), TLS: p.Card.TLSPin, Added: p.Added})
	}
	return out
}

// PeerAddRequest is POST v1/peers's body.
type PeerAddRequest struct {
	Card        string `json:"card"`
	Fingerprint string `json:"fingerprint"`
}

// ParsePeerAddRequest parses POST v1/peers.
func ParsePeerAddRequest(body []byte) (PeerAddRequest, error) {
	var q PeerAddRequest
	if err := decodeStrict(body, &q); err != nil {
		return q, err
	}
	if q.Card == "" || q.Fingerprint == "" {
		return q, errors.New("card and fingerprint are required")
	}
	return q, nil
}

// ParseGrantRequest parses POST v1/shares.
func ParseGrantRequest(body []byte) (GrantRequest, error) {
	var q GrantRequest
	if err := decodeStrict(body, &q); err != nil {
		return q, err
	}
	if q.Scope == "" || q.To == "" || q.Level == "" || q.Ceiling == "" || q.Expires == "" {
		return q, errors.New("scope, to, level, ceiling and expires are required")
	}
	return q, nil
}

func (n *Node) adminPeerCard(w http.ResponseWriter, _ *http.Request, _ *adminCall) {
	b, err := n.PeerCard()
	if err != nil {
		opFail(w, err)
		return
	}
	c, err := federation.ParseCard(b)
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, PeerCardInfo{Card: string(b), Fingerprint: c.Fingerprint})
}

func (n *Node) adminPeers(w http.ResponseWriter, _ *http.Request, _ *adminCall) {
	writeJSON(w, http.StatusOK, n.PeerInfos())
}

func (n *Node) adminPeerAdd(w http.ResponseWriter, r *http.Request, c *adminCall) {
	q, err := ParsePeerAddRequest(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	card, err := n.AddPeer(c.as(r), []byte(q.Card), q.Fingerprint)
	if err != nil {
		opFail(w, err)
		return
	}
	for _, p := range n.PeerInfos() {
		if p.Node == card.NodeID {
			writeJSON(w, http.StatusCreated, p)
			return
		}
	}
	opFail(w, errors.New("the peer was added but is not listed"))
}

func (n *Node) adminPeerRemove(w http.ResponseWriter, r *http.Request, c *adminCall) {
	if err := n.RemovePeer(c.as(r), c.id); err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": c.id})
}

func (n *Node) adminShares(w http.ResponseWriter, _ *http.Request, _ *adminCall) {
	writeJSON(w, http.StatusOK, n.Grants())
}

func (n *Node) adminShareGrant(w http.ResponseWriter, r *http.Request, c *adminCall) {
	q, err := ParseGrantRequest(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	g, err := n.Grant(c.as(r), q)
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, g)
}

func (n *Node) grantInfoByID(id string) (GrantInfo, bool) {
	for _, g := range n.Grants() {
		if g.ID == id {
			return g, true
		}
	}
	return GrantInfo{}, false
}

func (n *Node) adminShareRevoke(w http.ResponseWriter, r *http.Request, c *adminCall) {
	if err := n.RevokeGrant(c.as(r), c.id); err != nil {
		if errors.Is(err, errNoSuchGrant) {
			writeJSON(w, http.StatusNotFound, OpError{Error: err.Error(), Code: "not_found"})
			return
		}
		opFail(w, err)
		return
	}
	g, _ := n.grantInfoByID(c.id)
	writeJSON(w, http.StatusOK, g)
}

func (n *Node) adminShareODRL(w http.ResponseWriter, _ *http.Request, c *adminCall) {
	b, err := n.GrantODRL(c.id)
	if err != nil {
		if errors.Is(err, errNoSuchGrant) {
			writeJSON(w, http.StatusNotFound, OpError{Error: err.Error(), Code: "not_found"})
			return
		}
		opFail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/ld+json")
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}
