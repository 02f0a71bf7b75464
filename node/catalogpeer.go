package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/catalog"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/label"
)

// The catalogue over the peer protocol. The owner answers /peer/v1/catalog
// with the entries released to the calling node's nation that a grant in
// force to that node covers (level catalog or read: the scope holds the
// dataset, the ceiling is at or above the description's label). The asking
// node reads the answer strictly, searches it again, and shows each of its
// own principals only the entries it may read.

func init() {
	peerEndpoints = append(peerEndpoints, peerEndpoint{name: PeerCatalogEndpoint, handle: (*Node).peerCatalog})
	adminRoutes = append(adminRoutes, adminRoute{method: http.MethodGet, path: "v1/catalog/peers", auth: authOperator, roles: []access.Role{access.RoleReader},
		doc: "the trusted peers' catalogues as the caller may read them: `[PeerCatalog]`; `peer` (a node id or nation; default every peer), `q` search terms (repeat)", handle: (*Node).adminPeerCatalogs})
}

func (n *Node) peerCatalog(w http.ResponseWriter, r *http.Request, caller Peer, body []byte) {
	n.ServePeerCatalog(w, r, caller.Card.Nation, n.grantedTo(caller.Card.NodeID), body)
}

// grantedTo returns a filter keeping the entries a grant in force to node
// covers: level catalog or read, the dataset within the grant's scope (its
// vault, its prefix under the grant's), its description's label at or
// below the grant's ceiling.
func (n *Node) grantedTo(node string) func(catalog.Entry) bool {
	type scope struct {
		vault, prefix string
		ceiling       label.Level
	}
	var scopes []scope
	for _, g := range n.Grants() {
		if g.Grantee != node || g.State != "active" || (g.Level != federation.LevelCatalog && g.Level != federation.LevelRead) {
			continue
		}
		v, p, err := catalog.ParseRef(g.Scope)
		if err != nil {
			continue
		}
		cl, err := n.Labels.ParseText(g.Ceiling)
		if err != nil {
			continue
		}
		lv, err := n.Labels.LabelLevel(cl)
		if err != nil {
			continue
		}
		scopes = append(scopes, scope{v, p, lv})
	}
	return func(e catalog.Entry) bool {
		lv, err := n.Labels.LabelLevel(e.Label)
		if err != nil {
			return false
		}
		for _, s := range scopes {
			if e.Vault == s.vault && strings.HasPrefix(e.Prefix, s.prefix) && n.Labels.Dominates(s.ceiling, lv) {
				return true
			}
		}
		return false
	}
}

// PeerCatalog is one peer's catalogue as a search found it.
type PeerCatalog struct {
	// Peer and Nation name the peer node.
	Peer   string `json:"peer"`
	Nation string `json:"nation"`
	// Catalog is what it answered, searched again and filtered for the
	// principal; absent when Error says why there is none.
	Catalog *catalog.Document `json:"catalog,omitempty"`
	Error   string            `json:"error,omitempty"`
}

// ErrNoPeer: no trusted peer has that node id or nation.
var ErrNoPeer = errors.New("no trusted peer")

// SearchPeers searches the catalogues of the trusted peers — every one, or
// the one peer names (a node id, or a nation with one trusted node) — for
// principal p of this node: of what each peer releases to this node, the
// entries matching q whose label p may read (the access rule, with the
// entry's owner as the owning nation). A peer that cannot be reached or
// answers something else is reported in its PeerCatalog, not as an error.
func (n *Node) SearchPeers(ctx context.Context, p access.Principal, peer string, q catalog.Query) ([]PeerCatalog, error) {
	var peers []Peer
	for _, pr := range n.Peers() {
		if peer == "" || pr.Card.NodeID == peer || pr.Card.Nation == peer {
			peers = append(peers, pr)
		}
	}
	switch {
	case peer != "" && len(peers) == 0:
		return nil, fmt.Errorf("%w of node id or nation %q ('embassy peer ls' lists them)", ErrNoPeer, peer)
	case peer != "" && len(peers) > 1 && peers[0].Card.NodeID != peer:
		return nil, fmt.Errorf("several trusted peers are of nation %s: name one by its node id", peer)
	}
	d := access.NewDecider(n.Labels)
	out := []PeerCatalog{}
	for _, pr := range peers {
		pc := PeerCatalog{Peer: pr.Card.NodeID, Nation: pr.Card.Nation}
		doc, err := SearchPeerCatalog(ctx, func(ctx context.Context, endpoint string, in, out any) error {
			return n.CallPeer(ctx, pr.Card.NodeID, endpoint, in, out)
		}, q)
		if err != nil {
			pc.Error = err.Error()
			out = append(out, pc)
			continue
		}
		kept := doc.Datasets[:0]
		for _, ds := range doc.Datasets {
			l, err := n.Labels.ParseText(ds.Label)
			if err == nil && d.CanRead(p, ds.Owner, l) == nil {
				kept = append(kept, ds)
			}
		}
		doc.Datasets = kept
		pc.Catalog = &doc
		out = append(out, pc)
	}
	return out, nil
}

func (n *Node) adminPeerCatalogs(w http.ResponseWriter, r *http.Request, c *adminCall) {
	q, err := catalog.ParseQuery(r.URL.Query()["q"])
	if err != nil {
		opFail(w, err)
		return
	}
	res, err := n.SearchPeers(r.Context(), c.principal, r.URL.Query().Get("peer"), q)
	if err != nil {
		if errors.Is(err, ErrNoPeer) {
			writeJSON(w, http.StatusNotFound, OpError{Error: err.Error(), Code: "not_found"})
			return
		}
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
