package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/vault"
)

// Hosting an ally's site, the host's side (docs/alliance.md, "Host an
// ally's site"). A node that offers hosting says so on its card
// (alliance.hosting: where the storage sits, who provides it, whose law
// controls the provider); an operator then agrees to host a trusted peer
// with a quota (alliance.guests, 'embassy host add', two custodians on a
// node with custodians). The guest's blobs live in a directory of their
// own, HOSTING-PATH/GUEST-NODE-ID, made when hosting is agreed and never
// made again: a store that vanished (a volume not mounted) is reported
// to the guest as unavailable, not recreated empty. HOSTING-PATH itself
// is never made, and must carry the node's marker (hostingroot.go), so
// that no store is made on the disk beneath a missing volume. The host sees only
// what a site sees: sealed shards and manifests under random names. It
// counts their bytes and number, refuses a write that would take the
// guest past its quota before storing any of it, and shows its operators
// sizes and counts per guest nation, nothing else ('embassy host ls').

// HostingConfig is what the node offers the allies it hosts. The
// attributes are stated on the node's card: a guest's hosted site takes
// them, and the guest's survivability proof trusts them.
type HostingConfig struct {
	// Path is the directory holding the guests' stores, one directory per
	// guest node (absolute, or relative to the node directory).
	Path string `yaml:"path" json:"path"`
	// Jurisdiction is where the stores physically sit (ISO 3166-1
	// alpha-3).
	Jurisdiction string `yaml:"jurisdiction" json:"jurisdiction"`
	// Provider is the organisation whose infrastructure holds them.
	Provider string `yaml:"provider" json:"provider"`
	// Control is the jurisdiction whose law controls the provider.
	Control string `yaml:"control" json:"control"`
	// Accredited is the highest classification the storage is accredited
	// for (label text form); empty: unclassified only.
	Accredited string `yaml:"accredited,omitempty" json:"accredited,omitempty"`
}

// GuestConfig is an ally this node has agreed to host.
type GuestConfig struct {
	// Node is the guest's node id (a trusted peer).
	Node string `yaml:"node" json:"node"`
	// Nation is the guest node's nation, as its card says.
	Nation string `yaml:"nation" json:"nation"`
	// Quota bounds the bytes the guest's store may hold, e.g. "10TiB".
	Quota string `yaml:"quota" json:"quota"`
	// Added is when hosting was agreed.
	Added time.Time `yaml:"added" json:"added"`
}

func (h *HostingConfig) offer() federation.Hosting {
	return federation.Hosting{Jurisdiction: h.Jurisdiction, Provider: h.Provider, Control: h.Control, Accredited: h.Accredited}
}

// validateHosting checks alliance.hosting and alliance.guests.
func (a AllianceConfig) validateHosting() error {
	if h := a.Hosting; h != nil {
		if h.Path == "" {
			return errors.New("hosting.path: must be set (the directory holding the guests' stores)")
		}
		if err := h.offer().Check(); err != nil {
			return fmt.Errorf("hosting: %w", err)
		}
	}
	seen := map[string]bool{}
	for i, g := range a.Guests {
		if a.Hosting == nil {
			return fmt.Errorf("guests[%d]: the node hosts guests but offers no hosting (set alliance.hosting)", i)
		}
		if !validNodeID(g.Node) {
			return fmt.Errorf("guests[%d].node: %q is not a node id", i, g.Node)
		}
		if err := site.ValidCountry(g.Nation); err != nil {
			return fmt.Errorf("guests[%d].nation: %w", i, err)
		}
		if _, err := ParseBytes(g.Quota); err != nil {
			return fmt.Errorf("guests[%d].quota: %w", i, err)
		}
		if seen[g.Node] {
			return fmt.Errorf("guests[%d]: node %s is a guest twice", i, g.Node)
		}
		seen[g.Node] = true
	}
	return nil
}

func validNodeID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ParseBytes reads a byte count: a whole number with an optional binary
// unit, B, KiB, MiB, GiB, TiB or PiB ("10TiB", "512 GiB", "4096").
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.m
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: want a whole number with an optional unit B, KiB, MiB, GiB, TiB or PiB (e.g. 10TiB)", s)
	}
	return v * mult, nil
}

// FormatBytes writes a byte count with a binary unit, exactly when it is
// a whole number of that unit ("10 TiB", "1536 MiB", "12345 B").
func FormatBytes(v int64) string {
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v >= u.m && v%u.m == 0 {
			return fmt.Sprintf("%d %s", v/u.m, u.suffix)
		}
	}
	if v >= 1<<20 {
		for _, u := range []struct {
			suffix string
			m      int64
		}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}} {
			if v >= u.m {
				return fmt.Sprintf("%.2f %s", float64(v)/float64(u.m), u.suffix)
			}
		}
	}
	return fmt.Sprintf("%d B", v)
}

// Hosting audit log event kinds.
const (
	KindHostAdd    = "host.add"
	KindHostQuota  = "host.quota"
	KindHostRemove = "host.remove"
)

// errNotHosted: the peer is not a guest of this node.
var errNotHosted = errors.New("not hosted")

// errQuota: a hosted write would take the guest past its quota.
var errQuota = errors.New("over the hosting quota")

// hostState is the host's accounting of its guests' stores.
type hostState struct {
	mu     sync.Mutex
	stores map[string]*guestStore // by guest node id

	// markerMu is held through every check of the hosting directory
	// (openHostingRoot): its marker is written, and the temporary files
	// of unfinished marker writes removed, by one at a time, so that a
	// temporary file found is never that of a write in progress.
	markerMu sync.Mutex
	lock     *hostingLock // held on the hosting directory (hostingroot.go); under markerMu
}

// guestStore is one guest's store and what it holds.
type guestStore struct {
	node     string
	site     *dir.Site
	hostRoot os.FileInfo // the hosting directory it was opened in

	mu       sync.Mutex
	counted  bool  // bytes and blobs were counted from the store
	bytes    int64 // committed
	blobs    int64
	reserved int64 // puts in flight
	names    map[string]int
	cond     *sync.Cond
}

// guest returns the guest configuration of node id.
func (n *Node) guest(id string) (GuestConfig, bool) {
	for _, g := range n.conf().Alliance.Guests {
		if g.Node == id {
			return g, true
		}
	}
	return GuestConfig{}, false
}

// hostingRoot returns alliance.hosting.path, absolute.
func (n *Node) hostingRoot(h *HostingConfig) (string, error) {
	if h == nil {
		return "", errors.New("this node offers no hosting (alliance.hosting is not set)")
	}
	return filepath.Abs(n.path(h.Path))
}

// guestStoreOf opens (once) the store of guest id, counting what it holds
// when first opened. It never creates the store: one that is missing is
// unavailable. The hosting directory must carry this node's marker
// (openHostingRoot) when the store is opened, and be the same directory
// (device and inode) at every later call: a volume unmounted, or mounted
// over the path, since the store was opened makes the node look again.
func (n *Node) guestStoreOf(ctx context.Context, id string) (*guestStore, error) {
	c := n.conf()
	hroot, err := n.hostingRoot(c.Alliance.Hosting)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(hroot, id)
	cur, err := os.Stat(hroot)
	if err != nil {
		return nil, hostingPathError(hroot, err)
	}
	n.host.mu.Lock()
	gs := n.host.stores[id]
	if gs == nil || gs.site.Root() != root || !os.SameFile(gs.hostRoot, cur) {
		r, err := n.openHostingRoot(hroot, c.Alliance.Guests, true)
		if err != nil {
			n.host.mu.Unlock()
			return nil, err
		}
		fi, err := r.Stat(".")
		r.Close()
		if err != nil {
			n.host.mu.Unlock()
			return nil, hostingPathError(hroot, err)
		}
		ds, err := dir.Open(root)
		if err != nil {
			n.host.mu.Unlock()
			return nil, err
		}
		gs = &guestStore{node: id, site: ds, hostRoot: fi, names: map[string]int{}}
		gs.cond = sync.NewCond(&gs.mu)
		if n.host.stores == nil {
			n.host.stores = map[string]*guestStore{}
		}
		n.host.stores[id] = gs
	}
	n.host.mu.Unlock()
	return gs, gs.count(ctx)
}

// count sums the store's blobs, once.
func (gs *guestStore) count(ctx context.Context) error {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.counted {
		return nil
	}
	var bytes, blobs int64
	if err := gs.site.List(ctx, "", func(i site.Info) error {
		bytes += i.Size
		blobs++
		return nil
	}); err != nil {
		return err
	}
	gs.bytes, gs.blobs, gs.counted = bytes, blobs, true
	return nil
}

// lockName serialises writes and deletes of one blob name, so that the
// count of what a replaced or deleted blob held stays exact.
func (gs *guestStore) lockName(name string) func() {
	gs.mu.Lock()
	for gs.names[name] > 0 {
		gs.cond.Wait()
	}
	gs.names[name]++
	gs.mu.Unlock()
	return func() {
		gs.mu.Lock()
		delete(gs.names, name)
		gs.cond.Broadcast()
		gs.mu.Unlock()
	}
}

// reserve sets aside need bytes of the quota for a put in flight.
func (gs *guestStore) reserve(need, quota int64, nation string) error {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.bytes+gs.reserved+need > quota || need < 0 {
		return fmt.Errorf("%w: %s's node %s may keep %s on this node; it holds %s, %s more are being written, and this blob needs %s more: refused, nothing of it was stored",
			errQuota, nation, gs.node, FormatBytes(quota), FormatBytes(gs.bytes), FormatBytes(gs.reserved), FormatBytes(need))
	}
	gs.reserved += need
	return nil
}

// GuestUsage is what this node holds for a guest node: the bytes and
// number of blobs of its hosted site (Kind "site") or of the replicas it
// keeps of the guest's data (Kind "replica"). No names, no labels.
type GuestUsage struct {
	Node   string `json:"node"`
	Nation string `json:"nation"`
	Kind   string `json:"kind"`
	Bytes  int64  `json:"bytes"`
	Blobs  int64  `json:"blobs"`
}

// HostNation is one row of 'embassy host ls': per guest nation, the
// sizes and counts of what this node holds for it, and the quotas of its
// hosted sites.
type HostNation struct {
	Nation string `json:"nation"`
	// Nodes is how many of the nation's nodes this node holds data for.
	Nodes int `json:"nodes"`
	// SiteBytes and SiteBlobs are what its hosted sites hold; Quota the
	// sum of their quotas.
	SiteBytes int64 `json:"site_bytes"`
	SiteBlobs int64 `json:"site_blobs"`
	Quota     int64 `json:"quota"`
	// ReplicaBytes and ReplicaBlobs are what the replicas of its data hold.
	ReplicaBytes int64 `json:"replica_bytes"`
	ReplicaBlobs int64 `json:"replica_blobs"`
	// Unavailable counts hosted sites whose store cannot be read now, and
	// Why says why, for each (the path and what to check).
	Unavailable int      `json:"unavailable,omitempty"`
	Why         []string `json:"why,omitempty"`
}

// hostedUsage lists what the guests' stores hold, and why those that
// cannot be read cannot.
func (n *Node) hostedUsage(ctx context.Context) ([]GuestUsage, map[string]error) {
	var out []GuestUsage
	down := map[string]error{}
	for _, g := range n.conf().Alliance.Guests {
		u := GuestUsage{Node: g.Node, Nation: g.Nation, Kind: "site"}
		gs, err := n.guestStoreOf(ctx, g.Node)
		if err != nil {
			down[g.Node] = err
		} else {
			gs.mu.Lock()
			u.Bytes, u.Blobs = gs.bytes, gs.blobs
			gs.mu.Unlock()
		}
		out = append(out, u)
	}
	return out, down
}

// HostUsage summarises, per guest nation, what this node holds for its
// allies: hosted sites and replicas, sizes and counts only.
func (n *Node) HostUsage(ctx context.Context) ([]HostNation, error) {
	sites, down := n.hostedUsage(ctx)
	replicas, err := n.replicaUsage(ctx)
	if err != nil {
		return nil, fmt.Errorf("replicas: %w", err)
	}
	quota := map[string]int64{}
	for _, g := range n.conf().Alliance.Guests {
		q, _ := ParseBytes(g.Quota)
		quota[g.Node] = q
	}
	by := map[string]*HostNation{}
	nodes := map[string]map[string]bool{}
	for _, u := range append(sites, replicas...) {
		r := by[u.Nation]
		if r == nil {
			r = &HostNation{Nation: u.Nation}
			by[u.Nation] = r
			nodes[u.Nation] = map[string]bool{}
		}
		nodes[u.Nation][u.Node] = true
		switch u.Kind {
		case "site":
			r.SiteBytes += u.Bytes
			r.SiteBlobs += u.Blobs
			r.Quota += quota[u.Node]
			if err := down[u.Node]; err != nil {
				r.Unavailable++
				r.Why = append(r.Why, fmt.Sprintf("the store of node %s: %v", u.Node, err))
			}
		default:
			r.ReplicaBytes += u.Bytes
			r.ReplicaBlobs += u.Blobs
		}
	}
	out := []HostNation{}
	for nation, r := range by {
		r.Nodes = len(nodes[nation])
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b HostNation) int { return strings.Compare(a.Nation, b.Nation) })
	return out, nil
}

// HostRequest asks to host a peer, or to change its quota.
type HostRequest struct {
	// Peer is the guest: a trusted peer's node id, or its nation when
	// the node trusts one peer of that nation.
	Peer string `json:"peer"`
	// Quota bounds what the guest's store may hold, e.g. "10TiB".
	Quota string `json:"quota"`
}

// HostInfo is a guest as configured.
type HostInfo struct {
	Node   string `json:"node"`
	Nation string `json:"nation"`
	Quota  int64  `json:"quota"`
}

// resolvePeer finds the trusted peer a node id or a nation names.
func (n *Node) resolvePeer(name string) (Peer, error) {
	if p, ok := n.peer(name); ok {
		return p, nil
	}
	var found []Peer
	for _, p := range n.Peers() {
		if p.Card.Nation == name {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return Peer{}, fmt.Errorf("%w: no trusted peer of node id or nation %q", errNoSuchPeer, name)
	case 1:
		return found[0], nil
	}
	return Peer{}, fmt.Errorf("%w: this node trusts %d peers of %s: name one by its node id", errNoSuchPeer, len(found), name)
}

// Host agrees to host a trusted peer with a quota, or changes the quota
// of one hosted already. Hosting a new guest or raising a quota gives a
// peer room on this node's storage, so on a node with custodians it takes
// two of them (host.add); lowering a quota takes nothing away that is
// stored, and is free. A quota lowered below what the guest holds keeps
// everything it holds: only its writes are refused until it is under.
func (n *Node) Host(ctx context.Context, q HostRequest) (HostInfo, error) {
	p, err := n.resolvePeer(q.Peer)
	if err != nil {
		return HostInfo{}, err
	}
	quota, err := ParseBytes(q.Quota)
	if err != nil {
		return HostInfo{}, fmt.Errorf("quota: %w", err)
	}
	if n.conf().Alliance.Hosting == nil {
		return HostInfo{}, errors.New("this node offers no hosting: set alliance.hosting (path, jurisdiction, provider, control) with 'embassy config edit' first, then give allies the new card")
	}
	info := HostInfo{Node: p.Card.NodeID, Nation: p.Card.Nation, Quota: quota}
	old, had := n.guest(p.Card.NodeID)
	if !had {
		if err := n.canMakeGuestStore(p.Card.NodeID); err != nil {
			return info, err
		}
	}
	oldQuota, _ := ParseBytes(old.Quota)
	if n.Custody != nil && (!had || quota > oldQuota) {
		summary := fmt.Sprintf("host node %s of %s with a quota of %s", p.Card.NodeID, p.Card.Nation, FormatBytes(quota))
		if had {
			summary = fmt.Sprintf("raise the hosting quota of node %s of %s from %s to %s", p.Card.NodeID, p.Card.Nation, FormatBytes(oldQuota), FormatBytes(quota))
		}
		if err := n.Require(ctx, vault.Operation{Kind: KindHostAdd, Summary: summary,
			Params: map[string]string{"peer": p.Card.NodeID, "quota": q.Quota}}); err != nil {
			return info, err
		}
	}
	return info, n.hostGuest(ctx, p.Card.NodeID, q.Quota)
}

// hostGuest stores the hosting of peer id with quota (approved).
func (n *Node) hostGuest(ctx context.Context, id, quota string) error {
	qb, err := ParseBytes(quota)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.peer(id)
	if !ok {
		return fmt.Errorf("%w: %s", errNoSuchPeer, id)
	}
	cfg := *n.Config
	cfg.Alliance.Guests = slices.Clone(cfg.Alliance.Guests)
	i := slices.IndexFunc(cfg.Alliance.Guests, func(g GuestConfig) bool { return g.Node == id })
	kind := KindHostAdd
	detail := map[string]string{"peer": id, "nation": p.Card.Nation, "quota": FormatBytes(qb)}
	if i >= 0 {
		kind = KindHostQuota
		old, _ := ParseBytes(cfg.Alliance.Guests[i].Quota)
		detail["was"] = FormatBytes(old)
		cfg.Alliance.Guests[i].Quota = quota
	} else {
		if err := n.makeGuestStore(&cfg, id); err != nil {
			return err
		}
		cfg.Alliance.Guests = append(cfg.Alliance.Guests, GuestConfig{Node: id, Nation: p.Card.Nation, Quota: quota, Added: n.now().UTC().Truncate(time.Second)})
	}
	if err := n.record(ctx, audit.Event{Kind: kind, Actor: actor(ctx), Detail: detail}); err != nil {
		return err
	}
	if err := n.saveConfig(&cfg); err != nil {
		return err
	}
	n.setConfig(&cfg)
	return nil
}

// makeGuestStore makes the store of guest id under cfg's hosting path,
// unless it is there already. This, when the guest is first hosted ('host
// add', or a config edit that adds it), is the only place a store is
// made: opening one never does, so a store that vanished stays missing.
// The hosting directory itself is never made: it must exist and be this
// node's (openHostingRoot), and the store is made through it, opened.
func (n *Node) makeGuestStore(cfg *Config, id string) error {
	hroot, err := n.hostingRoot(cfg.Alliance.Hosting)
	if err != nil {
		return err
	}
	r, err := n.openHostingRoot(hroot, n.conf().Alliance.Guests, true)
	if err != nil {
		return fmt.Errorf("make the store of guest %s: %w", id, err)
	}
	defer r.Close()
	if _, err := r.Stat(id); errors.Is(err, os.ErrNotExist) {
		if _, err := dir.NewIn(r, id); err != nil {
			return fmt.Errorf("make the store of guest %s: %w", id, err)
		}
	} else if err != nil {
		return fmt.Errorf("the store of guest %s: %w", id, err)
	}
	return nil
}

// canMakeGuestStore says whether makeGuestStore could make a new guest's
// store now, without writing anything: asked before a request for
// custodians, so that they are not asked to approve what cannot be done.
func (n *Node) canMakeGuestStore(id string) error {
	c := n.conf()
	hroot, err := n.hostingRoot(c.Alliance.Hosting)
	if err != nil {
		return err
	}
	r, err := n.openHostingRoot(hroot, c.Alliance.Guests, false)
	if err != nil {
		return fmt.Errorf("make the store of guest %s: %w", id, err)
	}
	return r.Close()
}

// Unhost stops hosting a guest whose store is empty. A store that holds
// blobs is the guest's data: it is kept, and the guest is told to remove
// its site first (set its quota to 0 to stop it growing meanwhile).
func (n *Node) Unhost(ctx context.Context, name string) error {
	var id string
	if p, err := n.resolvePeer(name); err == nil {
		id = p.Card.NodeID
	} else {
		id = name
	}
	g, ok := n.guest(id)
	if !ok {
		return fmt.Errorf("%w: node %s is not hosted here", errNoSuchGuest, name)
	}
	gs, err := n.guestStoreOf(ctx, id)
	if err != nil {
		return fmt.Errorf("guest %s's store cannot be read, so it cannot be shown empty: %w", id, err)
	}
	gs.mu.Lock()
	blobs, bytes := gs.blobs, gs.bytes
	gs.mu.Unlock()
	if blobs > 0 {
		return tagged{fmt.Errorf("%s's node %s keeps %d blobs (%s) here: they are its data and stay until it removes its site (lower its quota to 0 with 'embassy host add %s --quota 0' to stop it growing)",
			g.Nation, id, blobs, FormatBytes(bytes), g.Nation), errExists}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.record(ctx, audit.Event{Kind: KindHostRemove, Actor: actor(ctx), Detail: map[string]string{"peer": id, "nation": g.Nation}}); err != nil {
		return err
	}
	cfg := *n.Config
	cfg.Alliance.Guests = slices.DeleteFunc(slices.Clone(cfg.Alliance.Guests), func(x GuestConfig) bool { return x.Node == id })
	if err := n.saveConfig(&cfg); err != nil {
		return err
	}
	n.setConfig(&cfg)
	return nil
}

var errNoSuchGuest = errors.New("no such guest")

// Guests lists the guests as configured.
func (n *Node) Guests() []HostInfo {
	out := []HostInfo{}
	for _, g := range n.conf().Alliance.Guests {
		q, _ := ParseBytes(g.Quota)
		out = append(out, HostInfo{Node: g.Node, Nation: g.Nation, Quota: q})
	}
	return out
}

// hostingChanges describes a change of alliance.hosting and
// alliance.guests with the gates of 'embassy host': hosting a new guest or
// raising a quota gives room on this node and needs custodians; lowering
// a quota is free; a guest leaves only by 'embassy host rm', which checks
// that its store is empty; the hosting directory does not move under
// guests' data.
func hostingChanges(o, nx AllianceConfig) []Change {
	var out []Change
	add := func(field, text string, g Gate, why string) {
		out = append(out, Change{Field: field, Text: text, Gate: g, Why: why})
	}
	switch oh, nh := o.Hosting, nx.Hosting; {
	case oh == nil && nh != nil:
		add("alliance.hosting", "hosting offered ("+nh.Jurisdiction+", "+nh.Provider+")", Free, "")
	case oh != nil && nh == nil:
		if len(nx.Guests) == 0 {
			add("alliance.hosting", "hosting no longer offered", Free, "")
		}
	case oh != nil && nh != nil:
		if oh.Path != nh.Path && len(o.Guests) > 0 {
			add("alliance.hosting.path", fmt.Sprintf("alliance.hosting.path %q → %q", oh.Path, nh.Path), Refused, "the guests' stores live there: move them with the node stopped, keeping the path")
		} else if oh.Path != nh.Path {
			add("alliance.hosting.path", fmt.Sprintf("alliance.hosting.path %q → %q", oh.Path, nh.Path), Free, "")
		}
		if oh.offer() != nh.offer() {
			add("alliance.hosting", "the hosting commitment changed (the card changes: guests add it again)", Free, "")
		}
	}
	for _, g := range nx.Guests {
		i := slices.IndexFunc(o.Guests, func(x GuestConfig) bool { return x.Node == g.Node })
		q, _ := ParseBytes(g.Quota)
		var card *federation.Card
		for _, p := range nx.Peers {
			if c, err := federation.ParseCard([]byte(p.Card)); err == nil && c.NodeID == g.Node {
				card = &c
			}
		}
		switch {
		case i < 0 && card == nil:
			add("alliance.guests["+g.Node+"]", fmt.Sprintf("node %s of %s hosted", g.Node, g.Nation), Refused, "it is not a trusted peer: trust its card first ('embassy peer add'), then host it with 'embassy host add'")
		case i < 0 && card.Nation != g.Nation:
			add("alliance.guests["+g.Node+"]", fmt.Sprintf("node %s of %s hosted", g.Node, g.Nation), Refused, fmt.Sprintf("its card says it is of %s: the nation is the card's ('embassy host add' takes it from there)", card.Nation))
		case i < 0:
			add("alliance.guests["+g.Node+"]", fmt.Sprintf("node %s of %s hosted with a quota of %s", g.Node, g.Nation, FormatBytes(q)), Custodians, "giving an allied node room on this node (as 'embassy host add')")
		default:
			oq, _ := ParseBytes(o.Guests[i].Quota)
			switch {
			case q > oq:
				add("alliance.guests["+g.Node+"]", fmt.Sprintf("node %s's quota %s → %s", g.Node, FormatBytes(oq), FormatBytes(q)), Custodians, "giving an allied node more room on this node (as 'embassy host add')")
			case q < oq:
				add("alliance.guests["+g.Node+"]", fmt.Sprintf("node %s's quota %s → %s", g.Node, FormatBytes(oq), FormatBytes(q)), Free, "")
			}
			if o.Guests[i].Nation != g.Nation {
				add("alliance.guests["+g.Node+"]", fmt.Sprintf("node %s's nation %s → %s", g.Node, o.Guests[i].Nation, g.Nation), Refused, "the nation is the guest card's: host it anew")
			}
		}
	}
	for _, g := range o.Guests {
		if !slices.ContainsFunc(nx.Guests, func(x GuestConfig) bool { return x.Node == g.Node }) {
			add("alliance.guests["+g.Node+"]", "node "+g.Node+" no longer hosted", Refused, "its store may hold its data: 'embassy host rm' removes a guest whose store is empty")
		}
	}
	return out
}
