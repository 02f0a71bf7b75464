package node

import (
	"errors"
	"net/http"
)

// The hosting endpoints for operators: the Node methods 'embassy host …'
// calls. Hosting an ally gives it room on this node, so it takes the
// admin role (and two custodians on a node with custodians); the listing
// shows sizes and counts only and is open to the reader roles; ending a
// guest's hosting takes room away and needs the operator role.

var hostingRoutes = []adminRoute{
	{method: http.MethodGet, path: "v1/host", auth: authOperator, roles: readerRoles,
		doc: "what this node holds for its allies, per guest nation, sizes and counts only (no names, no labels): `[HostNation]`", handle: (*Node).adminHostUsage},
	{method: http.MethodGet, path: "v1/host/guests", auth: authOperator, roles: readerRoles,
		doc: "the nodes this node hosts, with their quotas: `[HostInfo]`", handle: (*Node).adminGuests},
	{method: http.MethodPost, path: "v1/host/guests", auth: authOperator, roles: adminRoles,
		doc: "`HostRequest`: host a trusted peer with a quota, or change its quota (a new guest or a higher quota: two custodians on a node with custodians): `HostInfo`", handle: (*Node).adminHost},
	{method: http.MethodDelete, path: "v1/host/guests/{id}", auth: authOperator, roles: operatorRoles,
		doc: "stop hosting a guest whose store is empty", handle: (*Node).adminUnhost},
}

func init() { adminRoutes = append(adminRoutes, hostingRoutes...) }

// ParseHostRequest parses POST v1/host/guests.
func ParseHostRequest(body []byte) (HostRequest, error) {
	var q HostRequest
	if err := decodeStrict(body, &q); err != nil {
		return q, err
	}
	if q.Peer == "" || q.Quota == "" {
		return q, errors.New("peer and quota are required")
	}
	return q, nil
}

func (n *Node) adminHostUsage(w http.ResponseWriter, r *http.Request, _ *adminCall) {
	u, err := n.HostUsage(r.Context())
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (n *Node) adminGuests(w http.ResponseWriter, _ *http.Request, _ *adminCall) {
	writeJSON(w, http.StatusOK, n.Guests())
}

func (n *Node) adminHost(w http.ResponseWriter, r *http.Request, c *adminCall) {
	q, err := ParseHostRequest(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	info, err := n.Host(c.as(r), q)
	if err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (n *Node) adminUnhost(w http.ResponseWriter, r *http.Request, c *adminCall) {
	if err := n.Unhost(c.as(r), c.id); err != nil {
		opFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": c.id})
}
