package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/seal"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// The grantee's side: an ally's grants of level read appear on this node's
// S3 endpoint as read-only buckets OWNER--VAULT (the owner's nation in
// lower case: est--registry). Every request asks the owner, which decides
// for the principal this node asserts; the owner's grants are fetched on
// every request, so a revocation or an expiry takes effect at once. Data
// keys arrive wrapped to this node's HPKE key, are unwrapped for the one
// request that reads with them and are never stored: nothing of a grant is
// cached beyond the request.

// sharedVault is a grant seen from its grantee.
type sharedVault struct {
	bucket string
	owner  Peer
	grant  federation.Grant
}

// alliedBucket names the bucket of a grant.
func alliedBucket(g federation.Grant) string {
	return strings.ToLower(g.OwnerNation) + "--" + g.Vault
}

// sharedVaults asks every trusted peer of nation (every peer, for "") for
// its grants to this node. Peers that cannot be reached are skipped (and
// logged).
func (n *Node) sharedVaults(ctx context.Context, nation string) []sharedVault {
	self := n.conf().Node.ID
	var out []sharedVault
	seenNow := map[string]string{}
	reached := map[string]bool{}
	for _, p := range n.Peers() {
		if nation != "" && p.Card.Nation != nation {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var resp federation.GrantsResponse
		err := n.CallPeer(cctx, p.Card.NodeID, federation.EndpointGrants, struct{}{}, &resp)
		cancel()
		if err != nil {
			n.Log.Debug("allied grants: peer not reached", "peer", p.Card.NodeID, "err", err)
			continue
		}
		reached[p.Card.NodeID] = true
		for _, raw := range resp.Grants {
			g, err := federation.ParseGrant([]byte(raw), p.Card.Identity)
			if err != nil || g.Owner != p.Card.NodeID || g.OwnerNation != p.Card.Nation || g.Grantee != self || !g.Active(n.now()) {
				if err != nil {
					n.Log.Warn("allied grants: a grant from a peer does not verify; ignored", "peer", p.Card.NodeID, "err", err)
				}
				continue
			}
			seenNow[g.ID] = p.Card.NodeID
			if g.Level == federation.LevelRead {
				out = append(out, sharedVault{bucket: alliedBucket(g), owner: p, grant: g})
			}
		}
	}
	n.noteGrants(ctx, seenNow, reached, out)
	slices.SortFunc(out, func(a, b sharedVault) int { return b.grant.Issued.Compare(a.grant.Issued) })
	return out
}

// noteGrants records on the audit log the grants seen for the first time
// and those gone from owners that answered.
func (n *Node) noteGrants(ctx context.Context, now map[string]string, reached map[string]bool, vs []sharedVault) {
	n.ally.mu.Lock()
	if n.ally.seen == nil {
		n.ally.seen = map[string]string{}
	}
	var evs []audit.Event
	for id, owner := range now {
		if _, ok := n.ally.seen[id]; !ok {
			n.ally.seen[id] = owner
			d := map[string]string{"grant": id, "owner": owner}
			for _, v := range vs {
				if v.grant.ID == id {
					d["scope"], d["level"], d["ceiling"], d["expires"], d["bucket"] = v.grant.Scope(), v.grant.Level, v.grant.Ceiling, v.grant.Expires.Format(time.RFC3339), v.bucket
				}
			}
			evs = append(evs, audit.Event{Kind: KindShareReceived, Actor: "node", Detail: d})
		}
	}
	for id, owner := range n.ally.seen {
		if _, ok := now[id]; !ok && reached[owner] {
			delete(n.ally.seen, id)
			evs = append(evs, audit.Event{Kind: KindShareEnded, Actor: "node", Detail: map[string]string{"grant": id, "owner": owner}})
		}
	}
	n.ally.mu.Unlock()
	if len(evs) > 0 {
		n.recordBestEffort(ctx, evs...)
	}
}

// assert is the principal of ctx as this node asserts it to an owner.
func assert(ctx context.Context) (federation.Principal, error) {
	p, ok := vault.PrincipalFrom(ctx)
	if !ok || p.Nation == "" {
		return federation.Principal{}, &access.DeniedError{Principal: p.Name, Reason: access.ReasonPrincipal, Detail: "no nation: nothing is shared with it"}
	}
	return federation.Principal{Name: p.Name, Nation: p.Nation, Clearances: p.Clearances, Categories: p.Categories}, nil
}

// alliedError maps an owner's refusal to the engine's errors, so that the
// S3 front end answers as for a local vault.
func alliedError(err error) error {
	var pe *PeerError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "not_found":
			return fmt.Errorf("%w: %s", vault.ErrNoSuchKey, pe.Msg)
		case "denied", "grant_ended", "not_granted":
			return &access.DeniedError{Principal: "", Reason: access.ReasonNation, Detail: "the owner refused: " + pe.Msg}
		}
	}
	return err
}

type alliedVaults struct{ n *Node }

var _ s3.Allied = alliedVaults{}

func (a alliedVaults) AlliedBuckets(ctx context.Context) []s3.VaultInfo {
	return a.buckets(ctx, "")
}

func (a alliedVaults) AlliedBucket(ctx context.Context, name string) bool {
	owner, _, _ := strings.Cut(name, "--")
	for _, b := range a.buckets(ctx, strings.ToUpper(owner)) {
		if b.Name == name {
			return true
		}
	}
	return false
}

func (a alliedVaults) buckets(ctx context.Context, nation string) []s3.VaultInfo {
	var out []s3.VaultInfo
	seen := map[string]bool{}
	for _, v := range a.n.sharedVaults(ctx, nation) {
		if !seen[v.bucket] {
			seen[v.bucket] = true
			out = append(out, s3.VaultInfo{Name: v.bucket, Created: v.grant.Issued})
		}
	}
	return out
}

// shared returns the newest grant of bucket (covering key, if given).
func (a alliedVaults) shared(ctx context.Context, bucket, key string) (sharedVault, error) {
	owner, _, _ := strings.Cut(bucket, "--")
	for _, v := range a.n.sharedVaults(ctx, strings.ToUpper(owner)) {
		if v.bucket == bucket && (key == "" || v.grant.Covers(v.grant.Vault, key)) {
			return v, nil
		}
	}
	if key != "" {
		return sharedVault{}, fmt.Errorf("%w: %s/%s", vault.ErrNoSuchKey, bucket, key)
	}
	return sharedVault{}, fmt.Errorf("%w: %s", vault.ErrNoSuchVault, bucket)
}

func (a alliedVaults) AlliedList(ctx context.Context, bucket string, o index.ListOptions) (index.ListPage, error) {
	v, err := a.shared(ctx, bucket, "")
	if err != nil {
		return index.ListPage{}, err
	}
	p, err := assert(ctx)
	if err != nil {
		return index.ListPage{}, err
	}
	var resp federation.ListResponse
	if err := a.n.CallPeer(ctx, v.owner.Card.NodeID, federation.EndpointList, federation.ListRequest{Grant: v.grant.ID, Principal: p,
		Prefix: o.Prefix, Delimiter: o.Delimiter, After: o.After, Max: o.Max}, &resp); err != nil {
		return index.ListPage{}, alliedError(err)
	}
	page := index.ListPage{CommonPrefixes: resp.CommonPrefixes, Truncated: resp.Truncated, Next: resp.Next}
	for _, e := range resp.Entries {
		page.Entries = append(page.Entries, index.Version{Key: e.Key, Size: e.Size, ETag: e.ETag, Created: e.Created})
	}
	return page, nil
}

func (a alliedVaults) AlliedGet(ctx context.Context, bucket, key string, o vault.GetOptions) (*vault.Reader, error) {
	n := a.n
	v, err := a.shared(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	p, err := assert(ctx)
	if err != nil {
		return nil, err
	}
	q := federation.ObjectRequest{Grant: v.grant.ID, Principal: p, Key: key}
	if !o.VersionID.IsZero() {
		q.Version = o.VersionID.String()
	}
	rc, err := n.callPeerRaw(ctx, v.owner.Card.NodeID, federation.EndpointObject, q)
	if err != nil {
		return nil, alliedError(err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, federation.MaxAnswer+1))
	rc.Close()
	if err != nil {
		return nil, err
	}
	resp, err := federation.ParseObjectResponse(b)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", v.owner.Card.NodeID, err)
	}
	var m manifest.Manifest
	if err := json.Unmarshal(resp.Manifest, &m); err != nil {
		return nil, fmt.Errorf("peer %s: manifest view: %w", v.owner.Card.NodeID, err)
	}
	if m.Vault != v.grant.Vault || m.Key != key || !v.grant.Covers(m.Vault, m.Key) {
		return nil, fmt.Errorf("peer %s answered %s/%s for %s/%s", v.owner.Card.NodeID, m.Vault, m.Key, v.grant.Vault, key)
	}
	pk, err := n.peerKeys()
	if err != nil {
		return nil, err
	}
	keys := make([]seal.DataKey, len(m.Parts))
	for i, part := range m.Parts {
		if keys[i], err = pk.UnwrapDataKey(part.WrappedKey, federation.KeyInfo(v.grant.ID, m.Version.String(), part.Number, n.conf().Node.ID)); err != nil {
			return nil, fmt.Errorf("peer %s: data key of part %d: %w", v.owner.Card.NodeID, part.Number, err)
		}
	}
	owner := v.owner.Card.NodeID
	r, err := vault.ReadShared(ctx, &m, keys, func(siteID string) site.Site {
		return &peerBlobs{n: n, peer: owner, ticket: resp.Ticket, site: siteID}
	}, n.Log)
	if err != nil {
		return nil, err
	}
	if o.Offset != 0 || o.Length >= 0 {
		if err := r.SetRange(o.Offset, o.Length); err != nil {
			r.Close()
			return nil, err
		}
	}
	n.recordBestEffort(ctx, audit.Event{Kind: KindShareRead, Actor: p.Name, Vault: bucket, Key: key, Version: m.Version, Detail: map[string]string{
		"grant": v.grant.ID, "owner": owner, "label": m.Label}})
	return r, nil
}

// peerBlobs reads the blobs of one site of an owner through the peer link,
// under a ticket. It is read-only.
type peerBlobs struct {
	n      *Node
	peer   string
	ticket string
	site   string
}

var errReadOnly = errors.New("an ally's shared data is read-only")

func (b *peerBlobs) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	rc, err := b.n.callPeerRaw(ctx, b.peer, federation.EndpointBlob, federation.BlobRequest{Ticket: b.ticket, Site: b.site, Name: name, Offset: off, Length: length})
	if err != nil {
		return nil, b.fail("get "+name, err)
	}
	return site.Limited(rc, length), nil
}

// fail names the owner's site in a failed read, as the engine's own sites'
// errors do: a blob the owner says is not there is missing, any other
// refusal or failure leaves the site unavailable for this read.
func (b *peerBlobs) fail(what string, err error) error {
	var pe *PeerError
	switch {
	case errors.As(err, &pe) && pe.Code == federation.CodeNotFound:
		return fmt.Errorf("site %s of node %s (shared): %s: %w: %w", b.site, b.peer, what, site.ErrNotFound, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("site %s of node %s (shared): %s: %w: %w", b.site, b.peer, what, site.ErrUnavailable, err)
}

func (b *peerBlobs) Put(context.Context, string, io.Reader, int64) error { return errReadOnly }
func (b *peerBlobs) Delete(context.Context, string) error                { return errReadOnly }
func (b *peerBlobs) Stat(context.Context, string) (site.Info, error)     { return site.Info{}, errReadOnly }
func (b *peerBlobs) List(context.Context, string, func(site.Info) error) error {
	return errReadOnly
}
