package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/site/dir"
	"github.com/embassy-dev/embassy/vault"
)

// Recovery from an ally. An owner that lost its node directory and every
// site it controls has lost its identity and peer keys with them; what it
// still has is its root key (or T custodians' shares). From the root it
// derives its recovery key (custody.RecoveryKeys), whose pin it gave the
// ally with every pull, and presents it as its TLS key on the ally's peer
// listener; the ally serves that key the recover/ endpoints only, and only
// the owner's own replica. The owner then writes every blob back to the
// site it came from (as the replicated descriptor names the sites; a
// directory site may be moved with SitePaths), the log copy and the
// descriptor to every site, and recovers from its sites as usual.

// recoveryEndpoints are served to an owner's recovery key.
var recoveryEndpoints = map[string]func(n *Node, w http.ResponseWriter, r *http.Request, owner string, body []byte){
	federation.EndpointRecoverList: (*Node).recoverList,
	federation.EndpointRecoverBlob: (*Node).recoverBlob,
}

func (n *Node) serveRecovery(w http.ResponseWriter, r *http.Request, owner string) {
	name, _ := strings.CutPrefix(r.URL.Path, federation.PathPrefix)
	h, ok := recoveryEndpoints[name]
	if !ok || !strings.HasPrefix(r.URL.Path, federation.PathPrefix) {
		peerFail(w, http.StatusForbidden, "recovery_only", "a recovery key reaches the recover/ endpoints only")
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
	body, err := io.ReadAll(io.LimitReader(r.Body, federation.MaxBody+1))
	if err != nil || len(body) > federation.MaxBody {
		peerFail(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("body unreadable or larger than %d bytes", federation.MaxBody))
		return
	}
	h(n, w, r, owner, body)
}

// replicaKey maps a blob the replica holds to its object key.
func replicaKey(owner string, ref federation.BlobRef) string {
	if ref.Site == federation.AllSites {
		return owner + "/" + ref.Name
	}
	return owner + "/b/" + ref.Site + "/" + ref.Name
}

// replicaRef maps an object key of an owner's replica back to its blob,
// or false for the replica's own bookkeeping.
func replicaRef(owner, key string) (federation.BlobRef, bool) {
	rest, ok := strings.CutPrefix(key, owner+"/")
	if !ok {
		return federation.BlobRef{}, false
	}
	if b, ok := strings.CutPrefix(rest, "b/"); ok {
		s, name, ok := strings.Cut(b, "/")
		return federation.BlobRef{Site: s, Name: name}, ok
	}
	if rest == federation.BlobDescriptor || rest == federation.BlobWitness || strings.HasPrefix(rest, federation.BlobLogPrefix) {
		return federation.BlobRef{Site: federation.AllSites, Name: rest}, true
	}
	return federation.BlobRef{}, false
}

func (n *Node) recoverList(w http.ResponseWriter, r *http.Request, owner string, body []byte) {
	q, err := federation.ParseRecoverListRequest(body)
	if err != nil {
		peerRefuse(w, err)
		return
	}
	rv, err := n.replicaVault()
	if err != nil {
		peerFail(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	ctx := vault.AsSystem(r.Context())
	max := q.Max
	if max <= 0 || max > 1000 {
		max = 1000
	}
	out := federation.RecoverListResponse{Owner: owner, Blobs: []federation.BlobRef{}}
	after := owner + "/"
	if q.After != "" {
		after = owner + "/" + q.After
	}
	for len(out.Blobs) < max {
		page, err := n.Engine.List(ctx, rv, index.ListOptions{Prefix: owner + "/", After: after, Max: max})
		if err != nil {
			peerFail(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		for _, e := range page.Entries {
			after = e.Key
			if ref, ok := replicaRef(owner, e.Key); ok && federation.CheckBlobRef(ref) == nil {
				ref.Size = e.Size
				out.Blobs = append(out.Blobs, ref)
			}
			if len(out.Blobs) >= max {
				break
			}
		}
		// A full answer ends at the last entry taken: the index page's
		// own next marker may lie past entries not taken yet (a page
		// cut at max skipped them, the descriptor among them).
		if !page.Truncated || len(out.Blobs) >= max {
			break
		}
		after = max2(after, page.Next)
	}
	if len(out.Blobs) >= max {
		out.Truncated, out.Next = true, strings.TrimPrefix(after, owner+"/")
	}
	page, err := n.Engine.List(ctx, rv, index.ListOptions{Prefix: owner + "/d/", Max: 1000})
	if err == nil {
		out.Deletions = len(page.Entries)
	}
	n.record(r.Context(), audit.Event{Kind: KindReplicaRecover, Actor: "recovery:" + owner, Detail: map[string]string{"owner": owner, "blobs": fmt.Sprint(len(out.Blobs)), "after": q.After}})
	writeJSON(w, http.StatusOK, out)
}

func max2(a, b string) string {
	if a > b {
		return a
	}
	return b
}

func (n *Node) recoverBlob(w http.ResponseWriter, r *http.Request, owner string, body []byte) {
	q, err := federation.ParseRecoverBlobRequest(body)
	if err != nil {
		peerRefuse(w, err)
		return
	}
	rv, err := n.replicaVault()
	if err != nil {
		peerFail(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	rd, err := n.Engine.Get(vault.AsSystem(r.Context()), rv, replicaKey(owner, federation.BlobRef{Site: q.Site, Name: q.Name}), vault.GetOptions{Length: -1})
	if err != nil {
		peerRefuse(w, err)
		return
	}
	defer rd.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	io.Copy(w, rd)
}

// recoveryClient reaches the ally whose card is card with the recovery
// key rk, accepting only the TLS key the card pins.
func recoveryClient(card federation.Card, rk *custody.PeerKeys, nodeID string) (*http.Client, error) {
	cert, err := rk.TLSCertificate(nodeID, time.Now())
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // checked against the card's pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			pin, err := spkiPin(raw)
			if err != nil {
				return err
			}
			if pin != card.TLSPin {
				return fmt.Errorf("%w: node %s at %s presented TLS key %s, its card pins %s", ErrUnknownPeer, card.NodeID, card.Endpoint, pin, card.TLSPin)
			}
			return nil
		},
	}
	// No deadline on the whole exchange here (http.Client.Timeout covers
	// reading the body): each call has its own (recoveryWithin), which
	// grows with the blob's size.
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second}}, nil
}

// recoveryTimeout bounds a recovery call to an ally whose answer is small
// (a page of the listing, a blob of every site), and recoveryRate is the
// slowest transfer a site's own blob is given time for beyond it: a large
// shard blob is brought back at 1 MB/s or more, whatever its size.
const (
	recoveryTimeout = 10 * time.Minute
	recoveryRate    = 1 << 20 // bytes a second
)

// recoveryWithin is how long a recovery call for a blob of size bytes may
// take, its answer's body read: recoveryTimeout, and size at recoveryRate.
// The ally lists the size: past about 8 PiB the seconds would overflow a
// Duration (into a deadline already passed, or any other), so the time is
// held to the longest a Duration holds.
func recoveryWithin(size int64) time.Duration {
	secs := max(size, 0) / recoveryRate
	if most := int64((math.MaxInt64 - recoveryTimeout) / time.Second); secs > most {
		secs = most
	}
	return recoveryTimeout + time.Duration(secs)*time.Second
}

// recoveryIdle is how long a recovery call may go without the ally
// sending a byte (its answer's headers, then each read of its body) before
// it is cut: an ally that stalls costs a minute, not the call's whole
// deadline. A variable: tests make it short.
var recoveryIdle = time.Minute

// errAllyStalled: the ally sent nothing for recoveryIdle during a call,
// or, past that, less than recoveryMinRate on average.
var errAllyStalled = errors.New("the ally sent nothing")

// recoveryMinRate is the slowest average an answer's body may come at,
// counted from recoveryIdle after the call began: an ally that trickles
// (a byte every minute keeps clear of the idle cut) is cut within about
// a minute, not at the call's deadline (ten minutes and the size at
// 1 MB/s, which stays the bound on a large blob). A variable: tests make
// it large.
var recoveryMinRate int64 = 64 << 10 // bytes a second

// withinCall makes call under a deadline of d from now, which ends when
// the body it returns is closed, and cuts it when the ally sends nothing
// for recoveryIdle.
func withinCall(ctx context.Context, d time.Duration, call func(context.Context) (io.ReadCloser, error)) (io.ReadCloser, error) {
	ctx, cancelCause := context.WithCancelCause(ctx)
	ctx, cancelTimeout := context.WithTimeout(ctx, d)
	cancel := func() { cancelTimeout(); cancelCause(nil) }
	idle := recoveryIdle
	stalled := time.AfterFunc(idle, func() { cancelCause(fmt.Errorf("%w for %v: call cut", errAllyStalled, idle)) })
	rc, err := call(ctx)
	if err != nil {
		stalled.Stop()
		if cause := context.Cause(ctx); errors.Is(cause, errAllyStalled) {
			err = cause
		}
		cancel()
		return nil, err
	}
	stalled.Reset(idle)
	return &cancelOnClose{ReadCloser: rc, ctx: ctx, cancel: cancel, cancelCause: cancelCause, stalled: stalled, idle: idle, start: time.Now(), rate: recoveryMinRate}, nil
}

// cancelOnClose is a body whose Close also ends its call's context, and
// whose every read that brings bytes puts off the cut for a stall.
type cancelOnClose struct {
	io.ReadCloser
	ctx         context.Context
	cancel      func()
	cancelCause context.CancelCauseFunc
	stalled     *time.Timer
	idle        time.Duration
	start       time.Time // when the call's answer came
	rate        int64     // the slowest average its body may come at, past idle
	got         int64
}

func (c *cancelOnClose) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.got += int64(n)
	if n > 0 {
		c.stalled.Reset(c.idle)
	}
	if err == nil {
		// Past the idle bound, the body must have come at rate on
		// average since the answer: else the ally trickles.
		if late := time.Since(c.start) - c.idle; late > 0 && float64(c.got) < late.Seconds()*float64(c.rate) {
			c.cancelCause(fmt.Errorf("%w but %d bytes in %v (less than %d bytes a second past the first %v): call cut", errAllyStalled, c.got, time.Since(c.start).Round(time.Millisecond), c.rate, c.idle))
			err = context.Cause(c.ctx)
		}
	}
	if err != nil && err != io.EOF {
		if cause := context.Cause(c.ctx); errors.Is(cause, errAllyStalled) {
			err = cause
		}
	}
	return n, err
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.stalled.Stop()
	c.cancel()
	return err
}

func recoveryCall(ctx context.Context, c *http.Client, card federation.Card, endpoint string, in any) (io.ReadCloser, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+card.Endpoint+federation.PathPrefix+endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := peerDo(c, req, card.NodeID)
	if err != nil {
		return nil, fmt.Errorf("peer %s at %s: %w (does it keep this node's replica, and was it pulled since the root key last changed?)", card.NodeID, card.Endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		msg, code := peerRefusal(b)
		return nil, &PeerError{Peer: card.NodeID, Status: resp.StatusCode, Code: code, Msg: msg}
	}
	return resp.Body, nil
}

// RecoverFromPeerOptions configure a recovery from an ally's replica.
type RecoverFromPeerOptions struct {
	RecoverOptions
	// Card is the ally's peer card; Fingerprint, if set, must be its.
	Card        []byte
	Fingerprint string
}

// PeerRestoreReport says what was brought back from the ally.
type PeerRestoreReport struct {
	Peer      string `json:"peer"`
	Nation    string `json:"nation"`
	Owner     string `json:"owner"`
	Blobs     int    `json:"blobs"`
	Bytes     int64  `json:"bytes"`
	Present   int    `json:"present"` // blobs the sites held already (left as they were)
	Deletions int    `json:"deletions"`
	// Skipped counts blobs of sites the descriptor no longer names.
	Skipped int `json:"skipped"`
	// Refused counts the blobs of a site the ally listed or sent that
	// were not written, and RefusedBlobs names the first maxRefusedListed
	// of them with why: a manifest copy that does not verify with the
	// node's keys, names another version, or is sent longer or shorter
	// than its envelope and the blocks its manifest gives its site; a
	// shard blob sent at another size than its manifest gives; a site
	// marker listed larger than a marker may be; a name no site holds.
	Refused      int      `json:"refused"`
	RefusedBlobs []string `json:"refused_blobs,omitempty"`
	// ShardsMissing counts the shard blobs a verified manifest copy places
	// on its own site that the ally does not hold.
	ShardsMissing int `json:"shards_missing"`
	// LogVersions is the versions in the replicated scopes that the
	// recovered log records as written and not deleted; Missing those of
	// them the recovered node does not hold (none: nothing was dropped).
	LogVersions int      `json:"log_versions"`
	Missing     []string `json:"missing,omitempty"`
	// Log is what the peer witnesses held of the log, and the restart
	// recorded when they had cosigned more than was recovered.
	Log LogRestartReport `json:"log"`
}

// ErrReplicaIncomplete: the recovered log records versions in the
// replicated scopes that did not come back.
var ErrReplicaIncomplete = errors.New("replica incomplete")

// RecoverFromPeer rebuilds a node that lost its directory and its sites
// from the replica an ally keeps of it: it writes the replicated blobs
// back to the node's sites, then recovers from them (Recover), then checks
// against the recovered log that every version of the replicated scopes
// came back.
func RecoverFromPeer(ctx context.Context, o RecoverFromPeerOptions) (*Node, RecoverReport, PeerRestoreReport, error) {
	var pr PeerRestoreReport
	card, err := federation.ParseCard(o.Card)
	if err != nil {
		return nil, RecoverReport{}, pr, err
	}
	if o.Fingerprint != "" && o.Fingerprint != card.Fingerprint {
		return nil, RecoverReport{}, pr, fmt.Errorf("%w: the card's fingerprint is %s, not the %s confirmed", ErrFingerprint, card.Fingerprint, o.Fingerprint)
	}
	pr.Peer, pr.Nation = card.NodeID, card.Nation
	if ents, err := os.ReadDir(o.Dir); err == nil && len(ents) > 0 {
		return nil, RecoverReport{}, pr, fmt.Errorf("%s is not empty: recover writes a new node directory; name a new or empty one", o.Dir)
	}
	root, err := recoverRoot(o.RecoverOptions)
	if err != nil {
		return nil, RecoverReport{}, pr, err
	}
	keys, err := custody.NewKeyring(root)
	if err != nil {
		return nil, RecoverReport{}, pr, err
	}
	rk, err := keys.RecoveryKeys()
	if err != nil {
		return nil, RecoverReport{}, pr, err
	}
	c, err := recoveryClient(card, rk, "recovery")
	if err != nil {
		return nil, RecoverReport{}, pr, err
	}
	// The ally is not asked again once this returns: a connection left
	// idle would stay open (to the ally's idle timeout) in a process that
	// goes on.
	defer c.CloseIdleConnections()
	// list calls fn with every page of the ally's listing, checked
	// (walkRecoveryListing); the second walk must list what the first did.
	walked := listingSum{blobs: -1}
	list := func(fn func(page federation.RecoverListResponse) error) error {
		ask := func(after string) (federation.RecoverListResponse, error) {
			rc, err := withinCall(ctx, recoveryTimeout, func(ctx context.Context) (io.ReadCloser, error) {
				return recoveryCall(ctx, c, card, federation.EndpointRecoverList, federation.RecoverListRequest{After: after, Max: recoverPage})
			})
			if err != nil {
				return federation.RecoverListResponse{}, err
			}
			b, err := io.ReadAll(io.LimitReader(rc, federation.MaxAnswer+1))
			rc.Close()
			if err != nil {
				return federation.RecoverListResponse{}, err
			}
			page, err := federation.ParseRecoverListResponse(b)
			if err != nil {
				return page, fmt.Errorf("peer %s: %w", card.NodeID, err)
			}
			return page, nil
		}
		var again *listingSum
		if walked.blobs >= 0 {
			again = &walked
		}
		owner, deletions, sum, err := walkRecoveryListing(ctx, card.NodeID, ask, again, fn)
		pr.Owner, pr.Deletions = owner, deletions
		if err == nil && again == nil {
			walked = sum
		}
		return err
	}
	// The blobs that belong on every site (the descriptor, the witness's
	// memory, the log's resources: a few for every 256 log entries) are
	// kept from a first pass over the listing; a site's own blobs are
	// copied page by page in a second, so that memory does not grow with
	// their number.
	var refs []federation.BlobRef
	if err := list(func(page federation.RecoverListResponse) error {
		for _, r := range page.Blobs {
			if r.Site == federation.AllSites {
				refs = append(refs, r)
			}
		}
		return nil
	}); err != nil {
		return nil, RecoverReport{}, pr, err
	}
	open := func(ref federation.BlobRef) (io.ReadCloser, error) {
		return withinCall(ctx, recoveryWithin(ref.Size), func(ctx context.Context) (io.ReadCloser, error) {
			return recoveryCall(ctx, c, card, federation.EndpointRecoverBlob, federation.RecoverBlobRequest{Site: ref.Site, Name: ref.Name})
		})
	}
	fetch := func(ref federation.BlobRef) ([]byte, error) { return readListed(ref, open) }
	// The descriptor names the sites and opens with the root only.
	i := slices.IndexFunc(refs, func(r federation.BlobRef) bool {
		return r.Site == federation.AllSites && r.Name == federation.BlobDescriptor
	})
	if i < 0 {
		return nil, RecoverReport{}, pr, fmt.Errorf("peer %s holds no node descriptor of this node (it has not completed a pull yet)", card.NodeID)
	}
	db, err := fetch(refs[i])
	if err != nil {
		return nil, RecoverReport{}, pr, err
	}
	d, err := openDescriptor(keys, db)
	if err != nil {
		return nil, RecoverReport{}, pr, fmt.Errorf("the replicated descriptor: %w", err)
	}
	if d.NodeID != pr.Owner {
		return nil, RecoverReport{}, pr, fmt.Errorf("%w: the replicated descriptor is node %s's, the replica node %s's", ErrDescriptor, d.NodeID, pr.Owner)
	}
	// The node's keys verify and open its manifest copies before they
	// are written (peerRestore.restoreOwn): the root's, with the identity
	// the descriptor carries.
	mkeys := keys
	if len(d.Identity) > 0 {
		id, err := keys.OpenIdentity(d.Identity)
		if err != nil {
			return nil, RecoverReport{}, pr, fmt.Errorf("the replicated descriptor's identity: %w", err)
		}
		mkeys = keys.WithIdentity(id)
	}
	if len(d.Rotation) > 0 {
		// A root rotation in progress: copies not yet rewritten are
		// sealed under the previous root, which the descriptor carries
		// sealed under this one (loadRotation).
		var st rotationState
		if err := json.Unmarshal(d.Rotation, &st); err == nil {
			if prev, err := keys.OpenRoot(st.PrevRoot); err == nil {
				mkeys = mkeys.WithPrevious(prev)
			}
		}
	}
	cf, err := splitNodeFile(ConfigFile, d.Config)
	if err != nil {
		return nil, RecoverReport{}, pr, fmt.Errorf("descriptor config: %w", err)
	}
	cfg, err := ParseConfig(cf.body)
	if err != nil {
		return nil, RecoverReport{}, pr, fmt.Errorf("descriptor config: %w", err)
	}
	for i, s := range cfg.Sites {
		if p, ok := o.SitePaths[s.ID]; ok {
			cfg.Sites[i].Path = p
		}
	}
	tmp := &Node{Dir: o.Dir, Config: cfg}
	sites := map[string]site.Site{}
	defer func() { closeSites(sites) }()
	var order []string
	for _, sc := range cfg.Sites {
		if sc.Driver == "dir" {
			// A directory site lost with the node is made anew where the
			// descriptor (or SitePaths) puts it, as 'site add' makes one:
			// only when nothing is there.
			p := tmp.path(sc.Path)
			if ents, err := os.ReadDir(p); errors.Is(err, fs.ErrNotExist) || (err == nil && len(ents) == 0) {
				if _, err := dir.New(p); err != nil {
					return nil, RecoverReport{}, pr, fmt.Errorf("site %s: %w", sc.ID, err)
				}
			}
		}
		st, err := tmp.OpenSite(sc)
		if err != nil {
			return nil, RecoverReport{}, pr, fmt.Errorf("site %s: %w", sc.ID, err)
		}
		sites[sc.ID] = st
		order = append(order, sc.ID)
	}
	if len(order) == 0 {
		return nil, RecoverReport{}, pr, errors.New("the replicated descriptor names no site")
	}
	put := func(s site.Site, name string, b []byte) error {
		stored, err := restoreBlob(ctx, s, name, func() error {
			return s.Put(ctx, name, bytes.NewReader(b), int64(len(b)))
		})
		if err != nil {
			return err
		}
		if !stored {
			pr.Present++
			return nil
		}
		pr.Blobs++
		pr.Bytes += int64(len(b))
		return nil
	}
	// Blobs of their own sites first, then the log copy and descriptor
	// to every site, each checkpoint last. A site's own blobs are taken on
	// what the node can check, not on what the ally lists: each manifest
	// copy is verified with the node's keys before it is written, and
	// brings back the shard blobs its manifest places on its site, at the
	// size the manifest gives (peerRestore.restoreOwn); the shard blobs
	// the ally lists are not taken as listed.
	rs := &peerRestore{keys: mkeys, open: open, pr: &pr}
	err = list(func(page federation.RecoverListResponse) error {
		for _, ref := range page.Blobs {
			if ref.Site == federation.AllSites {
				continue
			}
			s, ok := sites[ref.Site]
			if !ok {
				pr.Skipped++
				continue
			}
			if err := rs.restoreOwn(ctx, s, ref); err != nil {
				return fmt.Errorf("blob %s of site %s: %w", ref.Name, ref.Site, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, RecoverReport{}, pr, err
	}
	slices.SortStableFunc(refs, func(a, b federation.BlobRef) int {
		rank := func(r federation.BlobRef) int {
			switch {
			case isLogCheckpoint(r.Name):
				return 3
			case r.Name == federation.BlobDescriptor:
				return 2
			}
			return 1
		}
		return rank(a) - rank(b)
	})
	for _, ref := range refs {
		var b []byte
		if ref.Name == federation.BlobDescriptor {
			b = db
		} else if b, err = fetch(ref); err != nil {
			return nil, RecoverReport{}, pr, fmt.Errorf("blob %s of every site: %w", ref.Name, err)
		}
		for _, sid := range order {
			if err := put(sites[sid], ref.Name, b); err != nil {
				return nil, RecoverReport{}, pr, fmt.Errorf("site %s: write %s: %w", sid, ref.Name, err)
			}
		}
	}
	ro := o.RecoverOptions
	ro.From = sites[order[0]]
	n, rep, err := Recover(ctx, ro)
	if err != nil {
		return nil, rep, pr, err
	}
	if err := n.checkReplicatedVersions(ctx, card.NodeID, &pr); err != nil {
		n.Close()
		return nil, rep, pr, err
	}
	// The node is recovered whatever the witnesses say: what they held,
	// and what could not be done, is in the report.
	if pr.Log, err = n.restartLog(ctx, rep.LogEntries, card.NodeID); err != nil {
		pr.Log.Problem = err.Error()
	}
	return n, rep, pr, nil
}

// restoreBlob writes a blob from the ally to site s with put, only if
// the site says it holds none of that name (site.ErrNotFound): what a site
// holds stays as it is. A site that cannot say (unavailable, refusing the
// question) is not written to: the ally's copy would replace one it may
// hold, which may be newer (a manifest's later revision, a later
// checkpoint of the log). It returns whether put stored the blob.
func restoreBlob(ctx context.Context, s site.Site, name string, put func() error) (bool, error) {
	_, err := s.Stat(ctx, name)
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, site.ErrNotFound):
		return false, fmt.Errorf("cannot tell whether the site holds it, so not written (a copy it holds would be replaced): %w", err)
	}
	if err := put(); err != nil {
		return false, err
	}
	return true, nil
}

// errListing: an ally's recovery listing broke its own order or went on
// past what any replica holds; the recovery stops, nothing of it is taken
// for complete.
var errListing = errors.New("recovery listing refused")

// Bounds of an ally's recovery listing. A replica lists each blob once,
// in the order of its key (listingKey), a page after the key the last one
// ended at; an ally that lists without end, repeats a page or goes back
// would keep a recovery going (and, for the blobs that belong on every
// site, which are held until the end, growing) until it is stopped.
var (
	// maxRecoverBlobs bounds the blobs one listing may hold: a hundred
	// million (a replica of some ten million versions' shard blobs and
	// manifest copies at 4+2).
	maxRecoverBlobs = 100_000_000
	// maxSharedBlobs bounds the blobs that belong on every site (the
	// descriptor, the witness's memory, the log's tiles, bundles and
	// checkpoint), which recovery holds by name until it writes them: a
	// log of about 260 million entries has 1,048,576 of them.
	maxSharedBlobs = 1 << 20
)

// maxListingKey bounds a page's Next: a key of the replica after the
// owner's prefix is at most an object key's 1,024 bytes (listingKey's are
// shorter still: "b/", a site id of 64 bytes, "/" and a name of 256).
const maxListingKey = 1024

// listingKey is where ref stands in a replica's recovery listing: the
// replica's object key after the owner's prefix (replicaKey), what the
// listing's Next names.
func listingKey(ref federation.BlobRef) string {
	if ref.Site == federation.AllSites {
		return ref.Name
	}
	return "b/" + ref.Site + "/" + ref.Name
}

// listingSum is what one walk of a recovery listing saw: how many blobs,
// and a digest of their keys and sizes in order.
type listingSum struct {
	blobs int
	sum   [sha256.Size]byte
}

// walkRecoveryListing asks an ally (peer, for errors) for its recovery
// listing page by page, ask(after) returning the page after the key
// after, and calls fn with each page once it is checked. It returns the
// replica's owner and deletion count, and what it saw. A page must keep the
// owner of the first, list its blobs in strictly increasing order after the
// key asked, and, when there is more, end (Next) at or past its last blob;
// a page that repeats or goes back, says there is more without a blob or a
// new key, or a listing past maxRecoverBlobs blobs or maxSharedBlobs blobs
// of every site, is errListing naming the ally and what was wrong. With
// again (what an earlier walk saw), the listing must be the same blobs: one
// more is refused at once, other ones at the end. An error leaves the
// listing unfinished: the caller must not take what it copied for a whole
// replica.
func walkRecoveryListing(ctx context.Context, peer string, ask func(after string) (federation.RecoverListResponse, error), again *listingSum, fn func(page federation.RecoverListResponse) error) (owner string, deletions int, seen listingSum, err error) {
	after := ""
	blobs, shared := 0, 0
	h := sha256.New()
	var size [8]byte
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("peer %s: %w: %s", peer, errListing, fmt.Sprintf(format, args...))
	}
	for pages := 1; ; pages++ {
		if err := ctx.Err(); err != nil {
			return owner, deletions, seen, err
		}
		page, err := ask(after)
		if err != nil {
			return owner, deletions, seen, err
		}
		switch {
		case pages == 1:
			owner = page.Owner
		case page.Owner != owner:
			return owner, deletions, seen, refuse("page %d (after %q) is node %s's replica, the first was node %s's", pages, after, page.Owner, owner)
		}
		deletions = page.Deletions
		last := after
		for _, ref := range page.Blobs {
			key := listingKey(ref)
			if key <= last {
				what := "repeats or goes back"
				if last == after {
					what = "starts at or before the key asked"
				}
				return owner, deletions, seen, refuse("page %d (after %q) %s: %q listed after %q", pages, after, what, key, last)
			}
			last = key
			if ref.Site == federation.AllSites {
				shared++
			}
			h.Write([]byte(key))
			binary.BigEndian.PutUint64(size[:], uint64(ref.Size))
			h.Write(size[:])
		}
		blobs += len(page.Blobs)
		if again != nil && blobs > again.blobs {
			return owner, deletions, seen, refuse("page %d (after %q) lists more blobs than the first walk of the listing found (%d): the listing changed between the two walks", pages, after, again.blobs)
		}
		if blobs > maxRecoverBlobs {
			return owner, deletions, seen, refuse("more than %d blobs listed (%d pages): no replica holds that many", maxRecoverBlobs, pages)
		}
		if shared > maxSharedBlobs {
			return owner, deletions, seen, refuse("more than %d blobs of every site listed (%d pages): no replica's log has that many", maxSharedBlobs, pages)
		}
		if page.Truncated {
			switch {
			case len(page.Blobs) == 0:
				return owner, deletions, seen, refuse("page %d (after %q) lists no blob but says there are more", pages, after)
			case len(page.Next) > maxListingKey:
				// It is sent back and named in errors: held to a key's length.
				return owner, deletions, seen, refuse("page %d (after %q) ends at a Next of %d bytes, longer than any key (%d)", pages, after, len(page.Next), maxListingKey)
			case page.Next < last:
				return owner, deletions, seen, refuse("page %d (after %q) ends at %q, before its last blob %q", pages, after, page.Next, last)
			}
		}
		if err := fn(page); err != nil {
			return owner, deletions, seen, err
		}
		if !page.Truncated {
			seen.blobs = blobs
			h.Sum(seen.sum[:0])
			if again != nil && seen != *again {
				return owner, deletions, seen, refuse("the listing changed between the two walks: %d blobs, the first walk %d, not the same ones", blobs, again.blobs)
			}
			return owner, deletions, seen, nil
		}
		after = page.Next
	}
}

// recoverPage is how many blobs recovery asks an ally to list at a time
// (0: the ally's default, 1,000); tests make it small.
var recoverPage = 0

// maxSharedBlob bounds a blob that belongs on every site (the descriptor,
// the witness's memory, a log resource), which recovery from an ally holds
// in memory to write to each site: a log entry bundle, 256 entries of at
// most audit.MaxEntry bytes after their lengths, is the largest.
const maxSharedBlob = 256 * (2 + audit.MaxEntry)

// readListed reads a blob an ally listed (ref) whole, through open: no more
// than the size it listed, which must be at most maxSharedBlob, and
// exactly that. What an ally sends is outside input: one that sent an
// endless body made recovery allocate it.
func readListed(ref federation.BlobRef, open func(federation.BlobRef) (io.ReadCloser, error)) ([]byte, error) {
	if ref.Size > maxSharedBlob {
		return nil, fmt.Errorf("the ally lists it at %d bytes, more than the %d such a blob may have", ref.Size, maxSharedBlob)
	}
	rc, err := open(ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, ref.Size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != ref.Size {
		return nil, listedSizeError(int64(len(b)), ref.Size)
	}
	return b, nil
}

// copyListed streams a blob an ally listed (ref) from open to site s,
// refusing it unless the ally sends exactly the size it listed.
func copyListed(ctx context.Context, s site.Site, ref federation.BlobRef, open func(federation.BlobRef) (io.ReadCloser, error)) error {
	rc, err := open(ref)
	if err != nil {
		return err
	}
	defer rc.Close()
	return putExact(ctx, s, ref.Name, rc, ref.Size, "it listed")
}

// putExact writes what r holds to site s as name, refusing it
// (errBlobRefused) unless r holds exactly size bytes; what says where the
// size comes from, for the error.
func putExact(ctx context.Context, s site.Site, name string, r io.Reader, size int64, what string) error {
	cr := &countReader{r: io.LimitReader(r, size+1)}
	if err := s.Put(ctx, name, cr, size); err != nil {
		if cr.n != size && cr.err == nil {
			return fmt.Errorf("%w (%v)", sentSizeError(cr.n, size, what), err)
		}
		return err
	}
	return nil
}

// errBlobRefused: what an ally sent for a blob is not what the node can
// check it should be (a body of another size than listed or than its
// manifest gives, a manifest copy that does not verify). A site's own blob
// refused is not written, and the recovery goes on
// (PeerRestoreReport.Refused); a blob of every site refused stops it.
var errBlobRefused = errors.New("refused")

// listedSizeError says that an ally sent got bytes of a blob it listed at
// size.
func listedSizeError(got, size int64) error { return sentSizeError(got, size, "it listed") }

// sentSizeError says that an ally sent got bytes of a blob of size bytes
// (what: where that size comes from).
func sentSizeError(got, size int64, what string) error {
	if got > size {
		return fmt.Errorf("%w: the ally sent more than the %d bytes %s", errBlobRefused, size, what)
	}
	return fmt.Errorf("%w: the ally sent %d of the %d bytes %s", errBlobRefused, got, size, what)
}

// countReader counts the bytes read through it and keeps the first error
// other than io.EOF.
type countReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// recoverRoot returns the root key of o (the key, or the shares combined).
func recoverRoot(o RecoverOptions) (custody.RootKey, error) {
	switch {
	case o.RootKey != nil:
		return *o.RootKey, nil
	case len(o.Shares) > 0:
		return custody.CombineShares(o.Shares)
	}
	return custody.RootKey{}, errors.New("recover: give the root key or custodians' shares")
}

// checkReplicatedVersions walks the recovered log: every version of the
// scope of a replicate grant to peer that the log records as written and
// not deleted must be in the index.
func (n *Node) checkReplicatedVersions(ctx context.Context, peer string, pr *PeerRestoreReport) error {
	var grants []federation.Grant
	for _, gi := range n.Grants() {
		if gi.Grantee != peer || gi.Level != federation.LevelReplicate {
			continue
		}
		if g, err := federation.ParseGrant([]byte(gi.Signed), n.Keys().Identity().Public()); err == nil {
			grants = append(grants, g)
		}
	}
	type vk struct {
		vault, key string
		id         manifest.ID
	}
	live := map[manifest.ID]vk{}
	l := n.Audit()
	if l == nil {
		return errors.New("the recovered node has no audit log")
	}
	err := l.Events(ctx, 0, func(_ uint64, e audit.Event) error {
		if e.Outcome != "" || e.Version.IsZero() {
			return nil
		}
		in := false
		for _, g := range grants {
			in = in || g.Covers(e.Vault, e.Key)
		}
		switch {
		case !in:
		case replicaChange(e.Kind):
			live[e.Version] = vk{e.Vault, e.Key, e.Version}
		case e.Kind == vault.KindDelete:
			delete(live, e.Version)
		}
		return nil
	})
	if err != nil {
		return err
	}
	pr.LogVersions = len(live)
	for _, v := range live {
		if _, err := n.Engine.Index().Get(ctx, v.vault, v.key, v.id); err != nil {
			pr.Missing = append(pr.Missing, v.vault+"/"+v.key+" version "+v.id.String())
		}
	}
	slices.Sort(pr.Missing)
	if len(pr.Missing) > 0 {
		return fmt.Errorf("%w: the recovered log records %d versions of the replicated scopes; %d did not come back (first: %s)", ErrReplicaIncomplete, pr.LogVersions, len(pr.Missing), pr.Missing[0])
	}
	return nil
}
