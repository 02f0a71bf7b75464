package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/seal"
	"github.com/embassy-dev/embassy/vault"
)

// The owner's side of the peer protocol. Every endpoint is reached only
// over the pinned mutual TLS of the peer listener, by a request the
// calling node signed (federation.RequestAuth); its handler then sees the
// authenticated caller.

// peerEndpoint is one endpoint of the peer protocol.
type peerEndpoint struct {
	name   string
	handle func(n *Node, w http.ResponseWriter, r *http.Request, caller Peer, body []byte)
	// signed, if set, returns what the request's signature covers in
	// place of the body, which is then left unread for handle to stream
	// (hosted/put).
	signed func(r *http.Request) ([]byte, error)
}

// peerEndpoints are the endpoints under /peer/v1/.
var peerEndpoints = []peerEndpoint{
	{name: federation.EndpointGrants, handle: (*Node).peerGrants},
	{name: federation.EndpointList, handle: (*Node).peerList},
	{name: federation.EndpointObject, handle: (*Node).peerObject},
	{name: federation.EndpointBlob, handle: (*Node).peerBlob},
	{name: federation.EndpointReplicate, handle: (*Node).peerReplicate},
	{name: federation.EndpointHostedPut, handle: (*Node).peerHostedPut, signed: hostedPutSigned},
	{name: federation.EndpointHostedGet, handle: (*Node).peerHostedGet},
	{name: federation.EndpointHostedStat, handle: (*Node).peerHostedStat},
	{name: federation.EndpointHostedDelete, handle: (*Node).peerHostedDelete},
	{name: federation.EndpointHostedList, handle: (*Node).peerHostedList},
	{name: federation.EndpointHostedUsage, handle: (*Node).peerHostedUsage},
}

func peerFail(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, federation.PeerError{Error: msg, Code: code})
}

// peerRefuse answers err with the status and code it calls for.
func peerRefuse(w http.ResponseWriter, err error) {
	var denied *access.DeniedError
	switch {
	case errors.Is(err, errGrantEnded):
		peerFail(w, http.StatusForbidden, "grant_ended", err.Error())
	case errors.Is(err, errGrantNotYours), errors.Is(err, errTicket):
		peerFail(w, http.StatusForbidden, "not_granted", err.Error())
	case errors.As(err, &denied), errors.Is(err, access.ErrDenied):
		peerFail(w, http.StatusForbidden, "denied", err.Error())
	case errors.Is(err, vault.ErrNoSuchKey), errors.Is(err, vault.ErrNoSuchVersion), errors.Is(err, vault.ErrDeleteMarker):
		peerFail(w, http.StatusNotFound, "not_found", err.Error())
	default:
		peerFail(w, http.StatusBadRequest, "bad_request", err.Error())
	}
}

// PeerHandler serves /peer/v1/… to authenticated peers. It expects the
// connection's TLS state (the peer listener).
func (n *Node) PeerHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			peerFail(w, http.StatusUnauthorized, "unauthenticated", "the peer protocol is spoken over mutual TLS only")
			return
		}
		pin := custody.SPKIPin(r.TLS.PeerCertificates[0].RawSubjectPublicKeyInfo)
		caller, ok := n.peerByPin(pin)
		if !ok {
			if owner, ok := n.recoveryOwner(r.Context(), pin); ok {
				n.serveRecovery(w, r, owner)
				return
			}
			peerFail(w, http.StatusUnauthorized, "unknown_peer", ErrUnknownPeer.Error())
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, federation.PathPrefix)
		if !ok {
			peerFail(w, http.StatusNotFound, "version", fmt.Sprintf("%s: this node speaks the peer protocol version 1 only (%s…)", r.URL.Path, federation.PathPrefix))
			return
		}
		var ep *peerEndpoint
		for i := range peerEndpoints {
			if peerEndpoints[i].name == name {
				ep = &peerEndpoints[i]
			}
		}
		if ep == nil {
			peerFail(w, http.StatusNotFound, "no_endpoint", "no peer endpoint "+r.URL.Path)
			return
		}
		if r.Method != http.MethodPost {
			peerFail(w, http.StatusMethodNotAllowed, "method", "peer requests are POST")
			return
		}
		if err := n.Ready(); err != nil {
			peerFail(w, http.StatusServiceUnavailable, "sealed", err.Error())
			return
		}
		var body []byte
		var err error
		if ep.signed != nil {
			if body, err = ep.signed(r); err != nil {
				// What the signature covers is missing or malformed: the
				// request cannot be authenticated.
				peerFail(w, http.StatusUnauthorized, "unauthenticated", err.Error())
				return
			}
		} else if body, err = io.ReadAll(io.LimitReader(r.Body, federation.MaxBody+1)); err != nil || len(body) > federation.MaxBody {
			peerFail(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("body unreadable or larger than %d bytes", federation.MaxBody))
			return
		}
		a, err := federation.ParseRequestAuth(r.Header)
		if err == nil && a.From != caller.Card.NodeID {
			err = fmt.Errorf("%w: signed as node %s over the TLS connection of node %s", federation.ErrRequest, a.From, caller.Card.NodeID)
		}
		if err == nil {
			err = a.Verify(r.Method, r.URL.Path, n.conf().Node.ID, caller.Card.Identity, body, n.now(), &n.ally.replay)
		}
		if err != nil {
			n.Log.Warn("peer request refused", "peer", caller.Card.NodeID, "path", r.URL.Path, "err", err)
			peerFail(w, http.StatusUnauthorized, "unauthenticated", err.Error())
			return
		}
		ep.handle(n, w, r, caller, body)
	})
}

func (n *Node) peerGrants(w http.ResponseWriter, _ *http.Request, caller Peer, body []byte) {
	if err := federation.ParseGrantsRequest(body); err != nil {
		peerRefuse(w, err)
		return
	}
	out := federation.GrantsResponse{Grants: []string{}}
	for _, gi := range n.Grants() {
		if gi.Grantee == caller.Card.NodeID && gi.State == "active" {
			out.Grants = append(out.Grants, gi.Signed)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// allyPrincipal is the principal a grantee's assertion is judged as: of
// the grant's nation only, with clearances no higher than the grant's
// ceiling, holding only the categories the ceiling names.
func (n *Node) allyPrincipal(g federation.Grant, p federation.Principal) (access.Principal, error) {
	if p.Nation != g.To {
		return access.Principal{}, &access.DeniedError{Principal: p.Name, Reason: access.ReasonNation, Detail: fmt.Sprintf("the grant is to %s, the principal is of %s", g.To, p.Nation)}
	}
	cl, err := n.Labels.ParseText(g.Ceiling)
	if err != nil {
		return access.Principal{}, fmt.Errorf("grant ceiling: %w", err)
	}
	ceiling, err := n.Labels.LabelLevel(cl)
	if err != nil {
		return access.Principal{}, fmt.Errorf("grant ceiling: %w", err)
	}
	out := access.Principal{Name: g.To + ":" + p.Name, Nation: p.Nation, Clearances: map[string]string{}, Categories: map[string][]string{}}
	for pol, name := range p.Clearances {
		lv, err := n.Labels.Level(pol, name)
		if err != nil {
			continue
		}
		if n.Labels.Dominates(ceiling, lv) {
			out.Clearances[pol] = name
		} else if n.Labels.Dominates(lv, ceiling) {
			// Trusted up to the ceiling only.
			out.Clearances[ceiling.Policy] = ceiling.Name
		}
	}
	for _, c := range cl.Categories {
		held := p.Categories[c.TagName]
		for _, v := range c.Values {
			for _, h := range held {
				if h == v {
					out.Categories[c.TagName] = append(out.Categories[c.TagName], v)
				}
			}
		}
	}
	return out, nil
}

// readGrant checks a read under grant id by caller for principal.
func (n *Node) readGrant(ctx context.Context, id string, caller Peer, p federation.Principal) (federation.Grant, context.Context, error) {
	g, err := n.grantFor(id, caller.Card.NodeID)
	if err != nil {
		return g, nil, err
	}
	if g.Level != federation.LevelRead {
		return g, nil, fmt.Errorf("%w: grant %s is at level %s, not read", errGrantNotYours, id, g.Level)
	}
	ap, err := n.allyPrincipal(g, p)
	if err != nil {
		return g, nil, err
	}
	return g, vault.WithPrincipal(ctx, ap), nil
}

func (n *Node) peerList(w http.ResponseWriter, r *http.Request, caller Peer, body []byte) {
	q, err := federation.ParseListRequest(body)
	if err != nil {
		peerRefuse(w, err)
		return
	}
	g, ctx, err := n.readGrant(r.Context(), q.Grant, caller, q.Principal)
	if err != nil {
		peerRefuse(w, err)
		return
	}
	out := federation.ListResponse{Entries: []federation.ListEntry{}}
	prefix := q.Prefix
	if !strings.HasPrefix(prefix, g.Prefix) {
		if !strings.HasPrefix(g.Prefix, prefix) {
			writeJSON(w, http.StatusOK, out) // outside the grant: nothing
			return
		}
		// The listing asks for less than the grant's prefix: what it sees
		// is under the grant's prefix, rolled up at the delimiter.
		rest := g.Prefix[len(prefix):]
		if i := strings.Index(rest, q.Delimiter); q.Delimiter != "" && i >= 0 {
			cp := prefix + rest[:i+len(q.Delimiter)]
			if q.After < cp {
				out.CommonPrefixes = []string{cp}
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		prefix = g.Prefix
	}
	after := q.After
	page, err := n.Engine.List(ctx, g.Vault, index.ListOptions{Prefix: prefix, Delimiter: q.Delimiter, After: after, Max: q.Max, Scan: n.conf().S3.ListScan})
	if err != nil {
		peerRefuse(w, err)
		return
	}
	for _, e := range page.Entries {
		out.Entries = append(out.Entries, federation.ListEntry{Key: e.Key, Size: e.Size, ETag: e.ETag, Created: e.Created})
	}
	out.CommonPrefixes, out.Truncated, out.Next = page.CommonPrefixes, page.Truncated, page.Next
	writeJSON(w, http.StatusOK, out)
}

// A ticket lets a grantee fetch the blobs of one version it was given the
// keys of, for a while, while the grant stays in force.
type ticket struct {
	grant, caller string
	expires       time.Time
	blobs         map[string]bool // names of blobs
	sites         map[string]bool
}

const ticketTTL = 10 * time.Minute

var errTicket = errors.New("no such ticket, or it expired")

func (n *Node) dropTickets(grant string) {
	n.ally.mu.Lock()
	defer n.ally.mu.Unlock()
	for id, t := range n.ally.tickets {
		if t.grant == grant {
			delete(n.ally.tickets, id)
		}
	}
}

func (n *Node) peerObject(w http.ResponseWriter, r *http.Request, caller Peer, body []byte) {
	q, err := federation.ParseObjectRequest(body)
	if err != nil {
		peerRefuse(w, err)
		return
	}
	g, ctx, err := n.readGrant(r.Context(), q.Grant, caller, q.Principal)
	if err != nil {
		peerRefuse(w, err)
		return
	}
	if !g.Covers(g.Vault, q.Key) {
		peerRefuse(w, fmt.Errorf("%w: %s is outside the grant's scope %s", vault.ErrNoSuchKey, q.Key, g.Scope()))
		return
	}
	var id manifest.ID
	if q.Version != "" {
		if id, err = manifest.ParseID(q.Version); err != nil {
			peerRefuse(w, fmt.Errorf("version: %w", err))
			return
		}
	}
	m, keys, err := n.Engine.ShareVersion(ctx, g.Vault, q.Key, id)
	if err != nil {
		peerRefuse(w, err)
		return
	}
	pub, err := custody.ParseHPKEPublicKey(caller.Card.HPKE)
	if err != nil {
		peerRefuse(w, err)
		return
	}
	view := *m
	view.Parts = append([]manifest.Part(nil), m.Parts...)
	t := &ticket{grant: g.ID, caller: caller.Card.NodeID, expires: n.now().Add(ticketTTL), blobs: map[string]bool{}, sites: map[string]bool{}}
	for i, p := range view.Parts {
		wrapped, err := seal.WrapTo(pub, keys[i], federation.KeyInfo(g.ID, m.Version.String(), p.Number, caller.Card.NodeID))
		if err != nil {
			peerRefuse(w, err)
			return
		}
		view.Parts[i].WrappedKey = wrapped
		for j, s := range p.Sites {
			t.sites[s] = true
			if p.Inline {
				t.blobs[manifest.BlobName(m.Version)] = true
			} else {
				t.blobs[manifest.ShardBlobName(p.Blob, j)] = true
			}
		}
	}
	mj, err := json.Marshal(view)
	if err != nil {
		peerRefuse(w, err)
		return
	}
	var tb [16]byte
	rand.Read(tb[:])
	tid := hex.EncodeToString(tb[:])
	now := n.now()
	n.ally.mu.Lock()
	if n.ally.tickets == nil {
		n.ally.tickets = map[string]*ticket{}
	}
	for k, old := range n.ally.tickets {
		if now.After(old.expires) {
			delete(n.ally.tickets, k)
		}
	}
	n.ally.tickets[tid] = t
	n.ally.mu.Unlock()
	p, _ := vault.PrincipalFrom(ctx)
	if err := n.record(ctx, audit.Event{Kind: KindShareRead, Actor: p.Name, Vault: g.Vault, Key: m.Key, Version: m.Version, Detail: map[string]string{
		"grant": g.ID, "peer": caller.Card.NodeID, "nation": g.To, "label": m.Label}}); err != nil {
		peerRefuse(w, err)
		return
	}
	writeJSON(w, http.StatusOK, federation.ObjectResponse{Manifest: mj, Ticket: tid})
}

func (n *Node) peerBlob(w http.ResponseWriter, r *http.Request, caller Peer, body []byte) {
	q, err := federation.ParseBlobRequest(body)
	if err != nil {
		peerRefuse(w, err)
		return
	}
	n.ally.mu.Lock()
	t := n.ally.tickets[q.Ticket]
	n.ally.mu.Unlock()
	if t == nil || t.caller != caller.Card.NodeID || n.now().After(t.expires) {
		peerRefuse(w, errTicket)
		return
	}
	// The grant must still be in force: a revocation stops fetches at once.
	if _, err := n.grantFor(t.grant, caller.Card.NodeID); err != nil {
		peerRefuse(w, err)
		return
	}
	if !t.blobs[q.Name] || !t.sites[q.Site] {
		peerRefuse(w, fmt.Errorf("%w: blob %s on site %s is not the ticket's", errTicket, q.Name, q.Site))
		return
	}
	var store interface {
		Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
	}
	for _, s := range n.Engine.Sites() {
		if s.ID == q.Site {
			store = s.Store
		}
	}
	if store == nil {
		peerFail(w, http.StatusNotFound, "not_found", "site "+q.Site+" is not configured")
		return
	}
	rc, err := store.Get(r.Context(), q.Name, q.Offset, q.Length)
	if err != nil {
		peerFail(w, http.StatusBadGateway, "site", err.Error())
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	io.Copy(w, rc)
}
