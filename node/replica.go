package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// The grantee's side of replication (docs/alliance.md "Keep a copy with
// an ally"). For every grant of level replicate an owner made to it, the
// node pulls the owner's changes by cursor (replicaserve.go) and keeps
// the owner's blobs, as the owner wrote them, as objects of its own
// replica vault (alliance.replica_vault), so that its own placement
// policy places them. The objects of an owner's replica, under the
// owner's node id:
//
//	OWNER/b/SITE/NAME   the owner's blob NAME of site SITE (manifest copies, shards, site markers)
//	OWNER/log/...       the owner's audit log copy (tlog tiles and bundles; the checkpoint last)
//	OWNER/node/descriptor  the owner's sealed node descriptor
//	OWNER/v/VERSION     the blobs held for a version (JSON), so that a deletion removes them all
//	OWNER/d/VERSION     the owner's signed deletion record of a version: the evidence its blobs were removed on
//	OWNER/state         the cursors and the owner's recovery pin
//
// None of it opens with a key this node holds: it learns no object name,
// label or byte of content, only sizes and counts.

// Replica audit log event kinds, on the grantee's log.
const (
	KindReplicaPull    = "replica.pull"
	KindReplicaRefused = "replica.refused"
	KindReplicaRecover = "replica.recover"
)

// replicaState is what the grantee keeps of an owner's replica, in
// OWNER/state.
type replicaState struct {
	Owner       string            `json:"owner"`
	Nation      string            `json:"nation"`
	RecoveryPin string            `json:"recovery_pin"`
	Cursors     map[string]uint64 `json:"cursors"`
	LogSize     uint64            `json:"log_size"`
	Pulled      time.Time         `json:"pulled"`
}

// ReplicaPullOptions bound a pull.
type ReplicaPullOptions struct {
	// PageSize is the changes asked for per page (0: the owner's default).
	PageSize int
	// MaxPages stops the pull of each grant after that many pages (0: no
	// bound); the next pull goes on from the cursor.
	MaxPages int
}

// ReplicaPull reports a pull of one grant.
type ReplicaPull struct {
	Owner     string `json:"owner"`
	Nation    string `json:"nation"`
	Grant     string `json:"grant"`
	From      uint64 `json:"from"`
	Cursor    uint64 `json:"cursor"`
	LogSize   uint64 `json:"log_size"`
	Versions  int    `json:"versions"`
	Deletions int    `json:"deletions"`
	Blobs     int    `json:"blobs"`
	Bytes     int64  `json:"bytes"`
	Done      bool   `json:"done"`
	Error     string `json:"error,omitempty"`
}

// errNoReplicaVault: no vault is named for replicas.
var errNoReplicaVault = errors.New("alliance.replica_vault is not set: name the vault whose placement policy keeps allies' replicas ('embassy config edit')")

// ErrDeletionRefused: a deletion record from an owner did not verify;
// nothing was removed and the pull stopped before it.
var ErrDeletionRefused = errors.New("deletion record refused")

// replicaVault returns the replica vault's name.
func (n *Node) replicaVault() (string, error) {
	v := n.conf().Alliance.ReplicaVault
	if v == "" {
		return "", errNoReplicaVault
	}
	if _, err := n.Engine.Vault(v); err != nil {
		return "", fmt.Errorf("alliance.replica_vault: %w", err)
	}
	return v, nil
}

// PullReplicas pulls every replica this node keeps for its peers: for each
// trusted peer, the grants of level replicate in force to this node. It
// returns one report per grant; a grant whose pull failed says why.
func (n *Node) PullReplicas(ctx context.Context, o ReplicaPullOptions) ([]ReplicaPull, error) {
	if err := n.Ready(); err != nil {
		return nil, err
	}
	rv, err := n.replicaVault()
	if err != nil {
		return nil, err
	}
	self := n.conf().Node.ID
	var out []ReplicaPull
	for _, p := range n.Peers() {
		var resp federation.GrantsResponse
		if err := n.CallPeer(ctx, p.Card.NodeID, federation.EndpointGrants, struct{}{}, &resp); err != nil {
			out = append(out, ReplicaPull{Owner: p.Card.NodeID, Nation: p.Card.Nation, Error: err.Error()})
			continue
		}
		for _, raw := range resp.Grants {
			g, err := federation.ParseGrant([]byte(raw), p.Card.Identity)
			if err != nil || g.Level != federation.LevelReplicate || g.Owner != p.Card.NodeID || g.OwnerNation != p.Card.Nation || g.Grantee != self || !g.Active(n.now()) {
				continue
			}
			rep, err := n.pullGrant(ctx, rv, p, g, o)
			if err != nil {
				rep.Error = err.Error()
				n.Log.Warn("replica pull failed", "owner", p.Card.NodeID, "grant", g.ID, "err", err)
			}
			out = append(out, rep)
		}
	}
	return out, nil
}

func (n *Node) pullGrant(ctx context.Context, rv string, p Peer, g federation.Grant, o ReplicaPullOptions) (ReplicaPull, error) {
	owner := p.Card.NodeID
	rep := ReplicaPull{Owner: owner, Nation: p.Card.Nation, Grant: g.ID}
	st, err := n.loadReplicaState(ctx, rv, owner)
	if err != nil {
		return rep, err
	}
	st.Owner, st.Nation = owner, p.Card.Nation
	rep.From = st.Cursors[g.ID]
	rep.Cursor = rep.From
	defer func() {
		if rep.Versions+rep.Deletions > 0 || rep.Error != "" {
			ev := audit.Event{Kind: KindReplicaPull, Actor: "node", Detail: map[string]string{"owner": owner, "nation": p.Card.Nation, "grant": g.ID,
				"from": strconv.FormatUint(rep.From, 10), "cursor": strconv.FormatUint(rep.Cursor, 10), "versions": strconv.Itoa(rep.Versions),
				"deletions": strconv.Itoa(rep.Deletions), "blobs": strconv.Itoa(rep.Blobs), "bytes": strconv.FormatInt(rep.Bytes, 10)}}
			if rep.Error != "" {
				ev.Outcome = "failed: " + rep.Error
			}
			n.record(ctx, ev)
		}
	}()
	for page := 0; o.MaxPages <= 0 || page < o.MaxPages; page++ {
		rc, err := n.callPeerRaw(ctx, owner, federation.EndpointReplicate, federation.ReplicateRequest{Grant: g.ID, After: rep.Cursor, Max: o.PageSize})
		if err != nil {
			return rep, err
		}
		b, err := io.ReadAll(io.LimitReader(rc, federation.MaxAnswer+1))
		rc.Close()
		if err != nil {
			return rep, fmt.Errorf("peer %s: %w", owner, err)
		}
		resp, err := federation.ParseReplicateResponse(b)
		if err != nil {
			return rep, fmt.Errorf("peer %s: %w", owner, err)
		}
		if resp.Next < rep.Cursor {
			return rep, fmt.Errorf("peer %s: the cursor went back from %d to %d", owner, rep.Cursor, resp.Next)
		}
		for _, e := range resp.Entries {
			if e.Deletion != "" {
				if err := n.applyDeletion(ctx, rv, p, g, e); err != nil {
					return rep, err
				}
				rep.Deletions++
				continue
			}
			if err := n.keepVersion(ctx, rv, owner, resp.Ticket, e, &rep); err != nil {
				return rep, err
			}
			rep.Versions++
		}
		if resp.Done {
			if err := n.keepRecoveryBlobs(ctx, rv, owner, resp, &rep); err != nil {
				return rep, err
			}
			st.LogSize = resp.LogSize
		}
		// The cursor moves only once the page is kept: an interrupted
		// pull goes on from here.
		rep.Cursor, rep.LogSize, rep.Done = resp.Next, resp.LogSize, resp.Done
		if st.Cursors == nil {
			st.Cursors = map[string]uint64{}
		}
		st.Cursors[g.ID], st.RecoveryPin, st.Pulled = resp.Next, resp.RecoveryPin, n.now().UTC()
		if err := n.saveReplicaState(ctx, rv, st); err != nil {
			return rep, err
		}
		if resp.Done {
			break
		}
	}
	return rep, nil
}

// keepVersion stores the blobs of a version written or revised.
func (n *Node) keepVersion(ctx context.Context, rv, owner, ticket string, e federation.ReplicaEntry, rep *ReplicaPull) error {
	if _, err := n.replicaObject(ctx, rv, owner+"/d/"+e.Version); err == nil {
		return nil // deleted by a record already kept: never brought back
	}
	held := map[federation.BlobRef]bool{}
	if b, err := n.replicaObject(ctx, rv, owner+"/v/"+e.Version); err == nil {
		var old []federation.BlobRef
		if json.Unmarshal(b, &old) == nil {
			for _, r := range old {
				held[federation.BlobRef{Site: r.Site, Name: r.Name}] = true
			}
		}
	}
	for _, ref := range e.Blobs {
		key := owner + "/b/" + ref.Site + "/" + ref.Name
		// Shards never change; manifest copies do (a revision).
		if strings.HasPrefix(ref.Name, manifest.ShardPrefix) {
			if _, ok := n.replicaSize(ctx, rv, key); ok {
				held[federation.BlobRef{Site: ref.Site, Name: ref.Name}] = true
				continue
			}
		}
		size, err := n.copyPeerBlob(ctx, rv, owner, ticket, ref, key)
		if err != nil {
			return err
		}
		rep.Blobs++
		rep.Bytes += size
		held[federation.BlobRef{Site: ref.Site, Name: ref.Name}] = true
	}
	list := slices.SortedFunc(maps.Keys(held), func(a, b federation.BlobRef) int {
		return strings.Compare(a.Site+"/"+a.Name, b.Site+"/"+b.Name)
	})
	b, _ := json.Marshal(list)
	return n.putReplicaObject(ctx, rv, owner+"/v/"+e.Version, b)
}

// keepRecoveryBlobs stores what the owner needs to rebuild itself: its
// descriptor, site markers and log copy, the checkpoint last.
func (n *Node) keepRecoveryBlobs(ctx context.Context, rv, owner string, resp federation.ReplicateResponse, rep *ReplicaPull) error {
	for _, ref := range resp.Log {
		key := owner + "/" + ref.Name
		if sz, ok := n.replicaSize(ctx, rv, key); ok && sz == ref.Size {
			continue // tiles and bundles never change once written
		}
		size, err := n.copyPeerBlob(ctx, rv, owner, resp.Ticket, ref, key)
		if err != nil {
			return err
		}
		rep.Blobs++
		rep.Bytes += size
	}
	for _, ref := range resp.Markers {
		if _, err := n.copyPeerBlob(ctx, rv, owner, resp.Ticket, ref, owner+"/b/"+ref.Site+"/"+ref.Name); err != nil {
			return err
		}
	}
	if resp.Descriptor != nil {
		if _, err := n.copyPeerBlob(ctx, rv, owner, resp.Ticket, *resp.Descriptor, owner+"/"+federation.BlobDescriptor); err != nil {
			return err
		}
	}
	if resp.Witness != nil {
		if _, err := n.copyPeerBlob(ctx, rv, owner, resp.Ticket, *resp.Witness, owner+"/"+federation.BlobWitness); err != nil {
			return err
		}
	}
	if len(resp.Checkpoint) > 0 {
		if err := n.putReplicaObject(ctx, rv, owner+"/"+federation.BlobLogPrefix+"checkpoint", resp.Checkpoint); err != nil {
			return err
		}
	}
	return nil
}

// copyPeerBlob fetches a blob under a ticket into the replica vault as key.
func (n *Node) copyPeerBlob(ctx context.Context, rv, owner, ticket string, ref federation.BlobRef, key string) (int64, error) {
	rc, err := n.fetchBlob(ctx, owner, ticket, ref)
	if err != nil {
		return 0, fmt.Errorf("blob %s of site %s: %w", ref.Name, ref.Site, err)
	}
	defer rc.Close()
	info, err := n.Engine.Put(vault.AsSystem(ctx), rv, key, rc, vault.PutOptions{Size: -1})
	if err != nil {
		return 0, fmt.Errorf("keep blob %s of site %s: %w", ref.Name, ref.Site, err)
	}
	n.dropOlderVersions(ctx, rv, key, info.VersionID)
	return info.Size, nil
}

// applyDeletion removes a version's blobs on the owner's signed deletion
// record, and keeps the record.
func (n *Node) applyDeletion(ctx context.Context, rv string, p Peer, g federation.Grant, e federation.ReplicaEntry) error {
	d, err := federation.ParseDeletion([]byte(e.Deletion), p.Card.Identity)
	if err == nil && (d.Owner != p.Card.NodeID || d.Grant != g.ID || d.LogIndex != e.Index) {
		err = fmt.Errorf("%w: it is for owner %s, grant %s, log entry %d, not %s, %s, %d", federation.ErrDeletion, d.Owner, d.Grant, d.LogIndex, p.Card.NodeID, g.ID, e.Index)
	}
	if err != nil {
		n.record(ctx, audit.Event{Kind: KindReplicaRefused, Actor: "node", Outcome: "refused: " + err.Error(), Detail: map[string]string{"owner": p.Card.NodeID, "grant": g.ID}})
		return fmt.Errorf("%w: from %s at log entry %d: %v (nothing removed)", ErrDeletionRefused, p.Card.NodeID, e.Index, err)
	}
	owner := p.Card.NodeID
	// The record first: it is the evidence for what follows, and it keeps
	// a later pull from bringing the version back.
	if err := n.putReplicaObject(ctx, rv, owner+"/d/"+d.Version, d.Raw); err != nil {
		return err
	}
	b, err := n.replicaObject(ctx, rv, owner+"/v/"+d.Version)
	if err != nil {
		return nil // never held
	}
	var refs []federation.BlobRef
	if err := json.Unmarshal(b, &refs); err != nil {
		return fmt.Errorf("%s/v/%s: %w", owner, d.Version, err)
	}
	for _, r := range refs {
		if err := n.deleteReplicaObject(ctx, rv, owner+"/b/"+r.Site+"/"+r.Name); err != nil {
			return err
		}
	}
	return n.deleteReplicaObject(ctx, rv, owner+"/v/"+d.Version)
}

// replicaObject reads a small object of the replica vault.
func (n *Node) replicaObject(ctx context.Context, rv, key string) ([]byte, error) {
	r, err := n.Engine.Get(vault.AsSystem(ctx), rv, key, vault.GetOptions{Length: -1})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, federation.MaxAnswer))
}

// replicaSize returns the size of a replica object, if it exists.
func (n *Node) replicaSize(ctx context.Context, rv, key string) (int64, bool) {
	info, err := n.Engine.Stat(vault.AsSystem(ctx), rv, key, manifest.ID{})
	if err != nil || info.DeleteMarker {
		return 0, false
	}
	return info.Size, true
}

func (n *Node) putReplicaObject(ctx context.Context, rv, key string, b []byte) error {
	info, err := n.Engine.Put(vault.AsSystem(ctx), rv, key, bytes.NewReader(b), vault.PutOptions{Size: int64(len(b))})
	if err != nil {
		return fmt.Errorf("replica vault %s: %w", rv, err)
	}
	n.dropOlderVersions(ctx, rv, key, info.VersionID)
	return nil
}

// replicaVersions lists every version of key in the replica vault.
func (n *Node) replicaVersions(ctx context.Context, rv, key string) ([]manifest.ID, error) {
	var out []manifest.ID
	o := index.VersionOptions{Prefix: key, Max: 1000}
	for {
		page, err := n.Engine.Versions(vault.AsSystem(ctx), rv, o)
		if err != nil {
			return nil, err
		}
		for _, v := range page.Versions {
			if v.Key == key {
				out = append(out, v.ID)
			}
		}
		if !page.Truncated {
			return out, nil
		}
		o.KeyMarker, o.VersionMarker = page.NextKeyMarker, page.NextVersionMarker
	}
}

// dropOlderVersions removes the versions of key a newer one replaced: the
// replica keeps the owner's blob as it is now. (This node's own deletion
// records of them are on its log.)
func (n *Node) dropOlderVersions(ctx context.Context, rv, key string, keep manifest.ID) {
	ids, err := n.replicaVersions(ctx, rv, key)
	if err != nil {
		return
	}
	for _, id := range ids {
		if id != keep {
			if _, err := n.Engine.Delete(vault.AsSystem(ctx), rv, key, vault.DeleteOptions{VersionID: id}); err != nil {
				n.Log.Warn("replica: an older copy was not removed", "key", key, "err", err)
			}
		}
	}
}

// deleteReplicaObject removes every version of key.
func (n *Node) deleteReplicaObject(ctx context.Context, rv, key string) error {
	ids, err := n.replicaVersions(ctx, rv, key)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := n.Engine.Delete(vault.AsSystem(ctx), rv, key, vault.DeleteOptions{VersionID: id}); err != nil {
			return fmt.Errorf("replica vault %s: remove %s: %w", rv, key, err)
		}
	}
	return nil
}

func (n *Node) loadReplicaState(ctx context.Context, rv, owner string) (replicaState, error) {
	var st replicaState
	b, err := n.replicaObject(ctx, rv, owner+"/state")
	switch {
	case errors.Is(err, vault.ErrNoSuchKey):
		return replicaState{Owner: owner, Cursors: map[string]uint64{}}, nil
	case err != nil:
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("replica state of %s: %w", owner, err)
	}
	if st.Cursors == nil {
		st.Cursors = map[string]uint64{}
	}
	return st, nil
}

func (n *Node) saveReplicaState(ctx context.Context, rv string, st replicaState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := n.putReplicaObject(ctx, rv, st.Owner+"/state", b); err != nil {
		return err
	}
	n.ally.mu.Lock()
	if n.ally.recovery == nil {
		n.ally.recovery = map[string]string{}
	}
	for pin, o := range n.ally.recovery {
		if o == st.Owner {
			delete(n.ally.recovery, pin)
		}
	}
	if st.RecoveryPin != "" {
		n.ally.recovery[st.RecoveryPin] = st.Owner
	}
	n.ally.mu.Unlock()
	return nil
}

// replicaOwners lists the owners whose replicas the replica vault holds.
func (n *Node) replicaOwners(ctx context.Context, rv string) ([]string, error) {
	var out []string
	o := index.ListOptions{Delimiter: "/", Max: 1000}
	for {
		page, err := n.Engine.List(vault.AsSystem(ctx), rv, o)
		if err != nil {
			return nil, err
		}
		for _, p := range page.CommonPrefixes {
			out = append(out, strings.TrimSuffix(p, "/"))
		}
		if !page.Truncated {
			return out, nil
		}
		o.After = page.Next
	}
}

// recoveryOwner returns the owner whose recovery key pin is pin, if this
// node keeps its replica.
func (n *Node) recoveryOwner(ctx context.Context, pin string) (string, bool) {
	n.ally.mu.Lock()
	owner, ok := n.ally.recovery[pin]
	loaded := n.ally.recovery != nil
	n.ally.mu.Unlock()
	if ok || loaded {
		return owner, ok
	}
	// First use since the node started: read the pins of every replica.
	rv, err := n.replicaVault()
	if err != nil {
		return "", false
	}
	owners, err := n.replicaOwners(ctx, rv)
	if err != nil {
		return "", false
	}
	pins := map[string]string{}
	for _, o := range owners {
		if st, err := n.loadReplicaState(ctx, rv, o); err == nil && st.RecoveryPin != "" {
			pins[st.RecoveryPin] = o
		}
	}
	n.ally.mu.Lock()
	if n.ally.recovery == nil {
		n.ally.recovery = pins
	}
	owner, ok = n.ally.recovery[pin]
	n.ally.mu.Unlock()
	return owner, ok
}

// replicaUsage is what this node holds of each owner's replica: ciphertext
// bytes and blobs, and nothing else (no name, no label). `embassy host ls`
// shows it beside the hosted sites.
func (n *Node) replicaUsage(ctx context.Context) ([]GuestUsage, error) {
	rv, err := n.replicaVault()
	if errors.Is(err, errNoReplicaVault) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	owners, err := n.replicaOwners(ctx, rv)
	if err != nil {
		return nil, err
	}
	var out []GuestUsage
	for _, owner := range owners {
		u := GuestUsage{Node: owner, Kind: "replica"}
		if st, err := n.loadReplicaState(ctx, rv, owner); err == nil {
			u.Nation = st.Nation
		}
		for _, prefix := range []string{owner + "/b/", owner + "/log/", owner + "/node/"} {
			o := index.ListOptions{Prefix: prefix, Max: 1000}
			for {
				page, err := n.Engine.List(vault.AsSystem(ctx), rv, o)
				if err != nil {
					return nil, err
				}
				for _, e := range page.Entries {
					u.Bytes += e.Size
					u.Blobs++
				}
				if !page.Truncated {
					break
				}
				o.After = page.Next
			}
		}
		out = append(out, u)
	}
	return out, nil
}

// runReplication pulls the replicas every alliance.replicate_every until
// ctx is done.
func (n *Node) runReplication(ctx context.Context) {
	for {
		every := 5 * time.Minute
		if s := n.conf().Alliance.ReplicateEvery; s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return
			}
			every = d
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		if n.Ready() != nil || n.conf().Alliance.ReplicaVault == "" {
			continue
		}
		if _, err := n.PullReplicas(ctx, ReplicaPullOptions{}); err != nil {
			n.Log.Warn("replica pull", "err", err)
		}
	}
}

// ReplicaInfo is what this node keeps of one owner's replica: sizes,
// counts and the owner's cursors, nothing of its content.
type ReplicaInfo struct {
	Owner     string            `json:"owner"`
	Nation    string            `json:"nation"`
	Bytes     int64             `json:"bytes"`
	Blobs     int64             `json:"blobs"`
	Deletions int               `json:"deletions"`
	LogSize   uint64            `json:"log_size"`
	Cursors   map[string]uint64 `json:"cursors"`
	Pulled    time.Time         `json:"pulled"`
}

// Replicas lists the replicas this node keeps for its allies.
func (n *Node) Replicas(ctx context.Context) ([]ReplicaInfo, error) {
	if err := n.Ready(); err != nil {
		return nil, err
	}
	rv, err := n.replicaVault()
	if err != nil {
		return nil, err
	}
	usage, err := n.replicaUsage(ctx)
	if err != nil {
		return nil, err
	}
	out := []ReplicaInfo{}
	for _, u := range usage {
		ri := ReplicaInfo{Owner: u.Node, Nation: u.Nation, Bytes: u.Bytes, Blobs: u.Blobs, Cursors: map[string]uint64{}}
		if st, err := n.loadReplicaState(ctx, rv, u.Node); err == nil {
			ri.LogSize, ri.Cursors, ri.Pulled = st.LogSize, st.Cursors, st.Pulled
		}
		o := index.ListOptions{Prefix: u.Node + "/d/", Max: 1000}
		for {
			page, err := n.Engine.List(vault.AsSystem(ctx), rv, o)
			if err != nil {
				return nil, err
			}
			ri.Deletions += len(page.Entries)
			if !page.Truncated {
				break
			}
			o.After = page.Next
		}
		out = append(out, ri)
	}
	return out, nil
}
