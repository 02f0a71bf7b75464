package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// The owner's side of replication (grant level replicate,
// docs/alliance.md "Keep a copy with an ally"). The grantee pulls by a
// cursor over the owner's audit log: each page names the versions in the
// grant's scope that were written or revised at the entries it covers,
// with the site blobs they have now, and the versions deleted, each as a
// deletion record signed by the owner's identity. The grantee fetches the
// blobs through the blob endpoint under the page's ticket, as a read
// share does, and stores them as they are: it never holds a key that
// opens them.
//
// A pass stops at the size of the longest copy of the log on the owner's
// sites, and its last page names that copy (its tiles, bundles and
// checkpoint), the sealed node descriptor and the site markers: every
// version the grantee holds is then on the log copy it holds, and the
// owner can rebuild itself from the grantee alone ('embassy recover
// --from-peer').

// KindShareReplicate is the owner's audit log event of a page of changes
// served to a replicating grantee (pages with no change are not logged).
const KindShareReplicate = "share.replicate"

// replicatePageMax is the default and largest number of changes a page
// carries.
const replicatePageMax = 500

// replicateGrant returns the replicate grant id in force for caller.
func (n *Node) replicateGrant(id string, caller Peer) (federation.Grant, error) {
	g, err := n.grantFor(id, caller.Card.NodeID)
	if err != nil {
		return g, err
	}
	if g.Level != federation.LevelReplicate {
		return g, fmt.Errorf("%w: grant %s is at level %s, not replicate", errGrantNotYours, id, g.Level)
	}
	return g, nil
}

// longestLogCopy returns the longest verified copy of the audit log on the
// node's sites.
func (n *Node) longestLogCopy(ctx context.Context) (audit.SiteCopy, error) {
	id := n.Keys().Identity()
	if id == nil {
		return audit.SiteCopy{}, errors.New("the node has no identity")
	}
	origin := audit.Origin(n.conf().Node.ID)
	verifiers, _, err := audit.Verifiers(origin, append([]custody.PublicIdentity{id.Public()}, id.Previous...)...)
	if err != nil {
		return audit.SiteCopy{}, err
	}
	sites := map[string]site.Site{}
	for _, s := range n.Engine.Sites() {
		sites[s.ID] = s.Store
	}
	copies := audit.SiteCopies(ctx, sites, origin, verifiers)
	if len(copies) == 0 || copies[0].Err != nil {
		return audit.SiteCopy{}, fmt.Errorf("no site holds a copy of the audit log yet (retry once it is copied): %v", errors.Join(func() []error {
			var errs []error
			for _, c := range copies {
				errs = append(errs, c.Err)
			}
			return errs
		}()...))
	}
	return copies[0], nil
}

// versionBlobs returns the site blobs version id of vault/key has now:
// its manifest copies and its shard blobs.
func (n *Node) versionBlobs(ctx context.Context, vaultName, key string, id manifest.ID) ([]federation.BlobRef, error) {
	v, err := n.Engine.Index().Get(ctx, vaultName, key, id)
	if err != nil {
		return nil, err
	}
	m, err := n.Engine.OpenEnvelope(v.Envelope)
	if err != nil {
		return nil, err
	}
	var out []federation.BlobRef
	seen := map[string]bool{}
	add := func(sid, name string) {
		if !seen[sid+"\x00"+name] {
			seen[sid+"\x00"+name] = true
			out = append(out, federation.BlobRef{Site: sid, Name: name})
		}
	}
	for _, p := range m.Parts {
		for _, sid := range p.Sites {
			add(sid, manifest.BlobName(m.Version))
		}
	}
	for _, sid := range m.Copies {
		add(sid, manifest.BlobName(m.Version))
	}
	for _, p := range m.Parts {
		if p.Inline {
			continue
		}
		for i, sid := range p.Sites {
			add(sid, manifest.ShardBlobName(p.Blob, i))
		}
	}
	return out, nil
}

// replicaChange reports whether an audit log event changes a version's
// blobs (a write, or a revision of its manifest).
func replicaChange(kind string) bool {
	switch kind {
	case vault.KindPut, vault.KindDeleteMarker, vault.KindLock, vault.KindRelabel, vault.KindRewrap, vault.KindMove:
		return true
	}
	return false
}

var errPageFull = errors.New("page full")

func (n *Node) peerReplicate(w http.ResponseWriter, r *http.Request, caller Peer, body []byte) {
	q, err := federation.ParseReplicateRequest(body)
	if err != nil {
		peerRefuse(w, err)
		return
	}
	g, err := n.replicateGrant(q.Grant, caller)
	if err != nil {
		peerRefuse(w, err)
		return
	}
	resp, err := n.replicatePage(r.Context(), g, caller, q)
	if err != nil {
		peerFail(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (n *Node) replicatePage(ctx context.Context, g federation.Grant, caller Peer, q federation.ReplicateRequest) (federation.ReplicateResponse, error) {
	l := n.Audit()
	if l == nil {
		return federation.ReplicateResponse{}, errors.New("the node has no audit log")
	}
	keys := n.Keys()
	rk, err := keys.RecoveryKeys()
	if err != nil {
		return federation.ReplicateResponse{}, err
	}
	lc, err := n.longestLogCopy(ctx)
	if err != nil {
		return federation.ReplicateResponse{}, err
	}
	limit := q.Max
	if limit <= 0 || limit > replicatePageMax {
		limit = replicatePageMax
	}
	out := federation.ReplicateResponse{Entries: []federation.ReplicaEntry{}, LogSize: lc.Size, RecoveryPin: rk.TLSPin(), Next: q.After}
	t := &ticket{grant: g.ID, caller: caller.Card.NodeID, expires: n.now().Add(ticketTTL), blobs: map[string]bool{}, sites: map[string]bool{}}
	allow := func(refs ...federation.BlobRef) {
		for _, b := range refs {
			t.blobs[b.Name], t.sites[b.Site] = true, true
		}
	}
	self := n.conf().Node.ID
	if q.After < lc.Size {
		err = l.Events(ctx, q.After, func(i uint64, e audit.Event) error {
			if i >= lc.Size || len(out.Entries) >= limit {
				return errPageFull
			}
			out.Next = i + 1
			if e.Outcome != "" || e.Version.IsZero() || !g.Covers(e.Vault, e.Key) {
				return nil
			}
			switch {
			case replicaChange(e.Kind):
				blobs, err := n.versionBlobs(ctx, e.Vault, e.Key, e.Version)
				if errors.Is(err, index.ErrNotFound) {
					return nil // deleted since: its deletion record follows
				}
				if err != nil {
					return fmt.Errorf("log entry %d: version %s: %w", i, e.Version, err)
				}
				allow(blobs...)
				out.Entries = append(out.Entries, federation.ReplicaEntry{Index: i, Version: e.Version.String(), Blobs: blobs})
			case e.Kind == vault.KindDelete:
				d, err := federation.SignDeletion(federation.Deletion{Owner: self, Grant: g.ID, Version: e.Version.String(), LogIndex: i, Deleted: time.Unix(0, e.Time)}, keys.SignHybrid)
				if err != nil {
					return err
				}
				out.Entries = append(out.Entries, federation.ReplicaEntry{Index: i, Deletion: string(d.Raw)})
			}
			return nil
		})
		if err != nil && !errors.Is(err, errPageFull) {
			return out, err
		}
	}
	if out.Next >= lc.Size {
		out.Next, out.Done = lc.Size, true
		// What the owner needs to rebuild itself: the descriptor and the
		// log copy of the site whose log is the longest, every site's
		// marker.
		out.Descriptor = &federation.BlobRef{Site: lc.Site, Name: federation.BlobDescriptor}
		out.Checkpoint = lc.Checkpoint
		for _, s := range n.Engine.Sites() {
			out.Markers = append(out.Markers, federation.BlobRef{Site: s.ID, Name: federation.BlobMarker})
		}
		s, ok := n.Engine.Site(lc.Site)
		if !ok {
			return out, fmt.Errorf("site %s is not configured", lc.Site)
		}
		err := s.Store.List(ctx, federation.BlobLogPrefix, func(i site.Info) error {
			if i.Name != federation.BlobLogPrefix+"checkpoint" {
				out.Log = append(out.Log, federation.BlobRef{Site: lc.Site, Name: i.Name, Size: i.Size})
			}
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("site %s: the log copy: %w", lc.Site, err)
		}
		allow(*out.Descriptor)
		if _, err := s.Store.Stat(ctx, WitnessBlob); err == nil {
			out.Witness = &federation.BlobRef{Site: lc.Site, Name: federation.BlobWitness}
			allow(*out.Witness)
		}
		allow(out.Markers...)
		allow(out.Log...)
	}
	var tb [16]byte
	rand.Read(tb[:])
	out.Ticket = hex.EncodeToString(tb[:])
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
	n.ally.tickets[out.Ticket] = t
	n.ally.mu.Unlock()
	if len(out.Entries) > 0 {
		versions, deletions := 0, 0
		for _, e := range out.Entries {
			if e.Deletion != "" {
				deletions++
			} else {
				versions++
			}
		}
		if err := n.record(ctx, audit.Event{Kind: KindShareReplicate, Actor: "peer:" + g.To, Vault: g.Vault, Detail: map[string]string{
			"grant": g.ID, "peer": caller.Card.NodeID, "nation": g.To, "after": strconv.FormatUint(q.After, 10), "next": strconv.FormatUint(out.Next, 10),
			"versions": strconv.Itoa(versions), "deletions": strconv.Itoa(deletions)}}); err != nil {
			return out, err
		}
	}
	return out, nil
}

// fetchBlob copies a blob of a peer's ticket into w.
func (n *Node) fetchBlob(ctx context.Context, peer, ticket string, ref federation.BlobRef) (io.ReadCloser, error) {
	return n.callPeerRaw(ctx, peer, federation.EndpointBlob, federation.BlobRequest{Ticket: ticket, Site: ref.Site, Name: ref.Name, Length: -1})
}

// isLogCheckpoint reports whether a replicated blob is a log checkpoint
// (stored last).
func isLogCheckpoint(name string) bool { return name == federation.BlobLogPrefix+"checkpoint" }
