package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// The two-person rule (DESIGN.md §3 invariant 7): dangerous operations
// become requests that take effect only when enough distinct custodians,
// none of them the requester, have signed an approval of exactly that
// request. Requests live in requests.json in the node directory.

// RequestsFile holds pending and decided two-person requests.
const RequestsFile = "requests.json"

// Request is a dangerous operation awaiting, or past, custodians' decisions.
type Request struct {
	ID        string          `json:"id"`
	Op        vault.Operation `json:"op"`
	Requester string          `json:"requester"`
	Created   time.Time       `json:"created"`
	Expires   time.Time       `json:"expires"`
	// Needed is how many distinct custodians must approve.
	Needed int `json:"needed"`
	// Digest commits to everything above; approvals sign it, so an
	// approval of a request that was changed afterwards does not verify.
	Digest    string     `json:"digest"`
	Approvals []Decision `json:"approvals"`
	Rejection *Decision  `json:"rejection,omitempty"`
	Status    string     `json:"status"` // pending, executed, failed, rejected, expired
	Result    string     `json:"result,omitempty"`
}

// Decision is one custodian's signed approval or rejection.
type Decision struct {
	Custodian string    `json:"custodian"`
	At        time.Time `json:"at"`
	Signature []byte    `json:"signature"`
}

// Request statuses.
const (
	StatusPending  = "pending"
	StatusExecuted = "executed"
	StatusFailed   = "failed"
	StatusRejected = "rejected"
	StatusExpired  = "expired"
)

// ComputeDigest recomputes the request's digest for node from its fields.
// A custodian's tool compares it with Digest before signing: a request whose
// parameters were changed after it was made, or whose digest was made up,
// does not match.
func (r *Request) ComputeDigest(node string) string { return r.digest(node) }

func (r *Request) digest(node string) string {
	params := make([]string, 0, len(r.Op.Params))
	for k, v := range r.Op.Params {
		params = append(params, k+"="+strconv.Quote(v))
	}
	sort.Strings(params)
	h := sha256.New()
	fmt.Fprintf(h, "embassy request v1\nnode %s\nid %s\nop %s\nparams %s\nsummary %q\nrequester %s\ncreated %d\nexpires %d\nneeded %d\n",
		node, r.ID, r.Op.Kind, strings.Join(params, "&"), r.Op.Summary, r.Requester, r.Created.UnixNano(), r.Expires.UnixNano(), r.Needed)
	return hex.EncodeToString(h.Sum(nil))
}

// ApprovalMessage is what a custodian signs to approve (approve=true) or
// reject a request on a node. It names the node, the request and its
// digest, so a signature fits that request only.
func ApprovalMessage(node, id, digest string, approve bool) []byte {
	d := "reject"
	if approve {
		d = "approve"
	}
	return fmt.Appendf(nil, "embassy approval v1\nnode %s\nrequest %s\ndigest %s\ndecision %s\n", node, id, digest, d)
}

// Errors of the two-person rule.
var (
	ErrNoSuchRequest = errors.New("no such request")
	ErrSelfApproval  = errors.New("a custodian cannot approve their own request")
	ErrReplay        = errors.New("this custodian has already decided this request")
	ErrNotPending    = errors.New("request is no longer pending")
	ErrBadApproval   = errors.New("approval does not verify")
	ErrNoCustodians  = vault.ErrNoCustodians
)

// loadRequests reads requests.json, verified (an unsealed node), or as it
// is (a sealed node, which cannot verify it and decides nothing).
func (n *Node) loadRequests() ([]*Request, error) {
	var f *nodeFile
	var err error
	if n.Keys() == nil {
		f, err = readNodeFile(n.Dir, RequestsFile)
	} else {
		f, err = n.loadVerified(RequestsFile)
	}
	if err != nil || f == nil {
		return nil, err
	}
	var rs []*Request
	if err := json.Unmarshal(f.body, &rs); err != nil {
		return nil, fmt.Errorf("%s: %w", RequestsFile, err)
	}
	for _, r := range rs {
		if r != nil && r.Approvals == nil {
			r.Approvals = []Decision{} // written before approvals was always a list
		}
	}
	return rs, nil
}

// saveRequests writes requests.json as its next generation, and the node
// descriptor with it.
func (n *Node) saveRequests(rs []*Request) error {
	if rs == nil {
		rs = []*Request{}
	}
	b, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		return err
	}
	if err := n.saveNodeFile(RequestsFile, append(b, '\n')); err != nil {
		return err
	}
	if l := n.Audit(); l != nil {
		// Every request entry is appended (record) before the file that
		// reflects it is saved, with reqMu held: the file agrees with the
		// log as it is now.
		n.noteRequestsChecked(l.Appended())
	}
	if n.Engine != nil {
		n.PublishDescriptor(context.Background())
	}
	return nil
}

// approvalsNeeded returns how many custodians must approve op.
func (n *Node) approvalsNeeded(op string) int {
	tp := n.conf().TwoPerson
	if v, ok := tp.PerOperation[op]; ok && v > 0 {
		return v
	}
	if tp.Approvals > 0 {
		return tp.Approvals
	}
	return 2
}

// Require implements vault.Approver: it records a pending request for op
// and returns a *vault.PendingError naming it. On a development node
// without custodians the operation proceeds at once (and the log says so).
func (n *Node) Require(ctx context.Context, op vault.Operation) error {
	if n.Custody == nil {
		if n.conf().Node.Dev {
			n.Log.WarnContext(ctx, "dev node: dangerous operation allowed without custodians", "op", op.Kind, "summary", op.Summary)
			return nil
		}
		return fmt.Errorf("%w (%s)", ErrNoCustodians, op.Summary)
	}
	requester := ""
	if p, ok := vault.PrincipalFrom(ctx); ok {
		requester = p.Name
	}
	r, err := n.NewRequest(op, requester)
	if err != nil {
		return err
	}
	return &vault.PendingError{RequestID: r.ID, Needed: r.Needed}
}

// NewRequest records a request for op by requester.
func (n *Node) NewRequest(op vault.Operation, requester string) (*Request, error) {
	n.reqMu.Lock()
	defer n.reqMu.Unlock()
	rs, err := n.loadRequests()
	if err != nil {
		return nil, err
	}
	// The same operation asked for again by the same requester while a
	// request for it is pending is that request, not a new one.
	now0 := time.Now()
	for _, r := range rs {
		if r.Status == StatusPending && now0.Before(r.Expires) && r.Op.Kind == op.Kind && r.Requester == requester && maps.Equal(r.Op.Params, op.Params) {
			return r, nil
		}
	}
	var id [6]byte
	rand.Read(id[:])
	now := time.Now().UTC()
	ttl := time.Duration(n.conf().TwoPerson.TTL)
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	r := &Request{ID: hex.EncodeToString(id[:]), Op: op, Requester: requester, Created: now, Expires: now.Add(ttl),
		Needed: n.approvalsNeeded(op.Kind), Status: StatusPending, Approvals: []Decision{}}
	r.Digest = r.digest(n.conf().Node.ID)
	if err := n.record(context.Background(), n.requestEvent(KindRequestCreate, r)); err != nil {
		return nil, err
	}
	rs = append(rs, r)
	if err := n.saveRequests(rs); err != nil {
		return nil, err
	}
	n.Log.Info("two-person request created", "id", r.ID, "op", op.Kind, "summary", op.Summary, "requester", requester)
	return r, nil
}

// Requests lists requests, newest first, marking expired ones.
func (n *Node) Requests() ([]*Request, error) {
	n.reqMu.Lock()
	defer n.reqMu.Unlock()
	rs, err := n.loadRequests()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for _, r := range rs {
		if r.Status == StatusPending && now.After(r.Expires) {
			r.Status = StatusExpired
		}
	}
	slices.SortFunc(rs, func(a, b *Request) int { return b.Created.Compare(a.Created) })
	return rs, nil
}

// Decide records custodian's signed decision on request id. When the last
// needed approval arrives the operation is carried out, and the request's
// result says how that went.
func (n *Node) Decide(ctx context.Context, id, custodian string, approve bool, sig []byte) (*Request, error) {
	n.reqMu.Lock()
	defer n.reqMu.Unlock()
	if n.Custody == nil {
		return nil, ErrNoCustodians
	}
	if err := n.Ready(); err != nil {
		return nil, fmt.Errorf("%w: decisions are recorded only by an unsealed node, which can authenticate requests.json: unseal it first (or use --offline with --unseal)", err)
	}
	rs, err := n.loadRequests()
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(rs, func(r *Request) bool { return r.ID == id })
	if i < 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchRequest, id)
	}
	r := rs[i]
	if r.Status != StatusPending {
		return r, fmt.Errorf("%w: %s is %s", ErrNotPending, id, r.Status)
	}
	if time.Now().After(r.Expires) {
		r.Status = StatusExpired
		n.recordBestEffort(ctx, n.requestEvent(KindRequestExpire, r))
		n.saveRequests(rs)
		return r, fmt.Errorf("%w: %s expired at %s", ErrNotPending, id, r.Expires.Format(time.RFC3339))
	}
	if r.Digest != r.digest(n.conf().Node.ID) {
		return r, fmt.Errorf("%w: request %s was changed after it was made", ErrBadApproval, id)
	}
	c, ok := n.Custody.Custodian(custodian)
	if !ok {
		return r, fmt.Errorf("%w: %s is not a custodian of this node", ErrBadApproval, custodian)
	}
	if err := c.VerifySignature(ApprovalMessage(n.conf().Node.ID, r.ID, r.Digest, approve), sig); err != nil {
		return r, fmt.Errorf("%w: %v", ErrBadApproval, err)
	}
	if strings.EqualFold(custodian, r.Requester) {
		return r, ErrSelfApproval
	}
	for _, d := range r.Approvals {
		if d.Custodian == custodian {
			return r, ErrReplay
		}
		// A custodian recorded twice under two names (custody.json from
		// before duplicate keys were refused) approves once.
		if oc, ok := n.Custody.Custodian(d.Custodian); ok && oc.SignKey == c.SignKey {
			return r, fmt.Errorf("%w: %s has the same key as %s, who has already decided", ErrReplay, custodian, d.Custodian)
		}
	}
	d := Decision{Custodian: custodian, At: time.Now().UTC(), Signature: sig}
	// The decision is on the audit log before it counts.
	if err := n.record(ctx, decisionEvent(r, d, approve)); err != nil {
		return r, err
	}
	if !approve {
		r.Rejection, r.Status = &d, StatusRejected
		n.Log.InfoContext(ctx, "two-person request rejected", "id", r.ID, "custodian", custodian)
		return r, n.saveRequests(rs)
	}
	// Approvals already on record are checked again: the file holding
	// them is not trusted, and a request altered after signing (its digest
	// recomputed) invalidates them.
	valid := []Decision{}
	keys := map[string]bool{}
	for _, old := range r.Approvals {
		oc, ok := n.Custody.Custodian(old.Custodian)
		if ok && oc.VerifySignature(ApprovalMessage(n.conf().Node.ID, r.ID, r.Digest, true), old.Signature) == nil && !strings.EqualFold(old.Custodian, r.Requester) && !keys[oc.SignKey] {
			keys[oc.SignKey] = true
			valid = append(valid, old)
		} else {
			n.Log.WarnContext(ctx, "a recorded approval does not verify and is dropped", "request", r.ID, "custodian", old.Custodian)
		}
	}
	r.Approvals = append(valid, d)
	// The configuration, not the file, says how many approvals it takes.
	r.Needed = max(r.Needed, n.approvalsNeeded(r.Op.Kind))
	n.Log.InfoContext(ctx, "two-person request approved", "id", r.ID, "custodian", custodian, "approvals", len(r.Approvals), "needed", r.Needed)
	if len(r.Approvals) >= r.Needed {
		// Record the decision before acting, so a crash cannot lose it.
		if err := n.saveRequests(rs); err != nil {
			return r, err
		}
		if err := n.execute(ctx, r); err != nil {
			r.Status, r.Result = StatusFailed, err.Error()
		} else {
			r.Status = StatusExecuted
		}
		n.recordBestEffort(ctx, n.requestEvent(KindRequestExecute, r))
		n.Log.InfoContext(ctx, "two-person request carried out", "id", r.ID, "op", r.Op.Kind, "status", r.Status, "result", r.Result)
	}
	return r, n.saveRequests(rs)
}

// execute carries out an approved operation.
func (n *Node) execute(ctx context.Context, r *Request) error {
	if err := n.Ready(); err != nil {
		return err
	}
	ctx = vault.Approved(vault.AsSystem(ctx))
	p := r.Op.Params
	version := func() (manifest.ID, error) { return manifest.ParseID(p["version"]) }
	switch r.Op.Kind {
	case "object.delete":
		id, err := version()
		if err != nil {
			return err
		}
		_, err = n.Engine.Delete(ctx, p["vault"], p["key"], vault.DeleteOptions{VersionID: id, BypassGovernance: true})
		return err
	case "object.retention":
		id, err := version()
		if err != nil {
			return err
		}
		var until time.Time
		if p["until"] != "" {
			if until, err = time.Parse(time.RFC3339Nano, p["until"]); err != nil {
				return err
			}
		}
		_, err = n.Engine.SetRetention(ctx, p["vault"], p["key"], id, p["mode"], until, true)
		return err
	case "object.relabel":
		id, err := version()
		if err != nil {
			return err
		}
		_, err = n.Engine.SetLabel(ctx, p["vault"], p["key"], id, p["label"])
		return err
	case "object.copy":
		return n.approvedCopy(ctx, p)
	case "vault.delete":
		return n.removeVault(ctx, p["vault"])
	case "vault.policy":
		return n.setPolicy(p["vault"], VaultConfig{Erasure: p["erasure"], Survive: p["survive"], OutsideHome: p["outside_home"] == "true", Jurisdictions: splitList(p["jurisdictions"])})
	case "vault.object-lock":
		days, err1 := strconv.Atoi(p["days"])
		years, err2 := strconv.Atoi(p["years"])
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("vault.object-lock: %w", err)
		}
		return n.setObjectLock(p["vault"], ObjectLockConfig{Mode: p["mode"], Days: days, Years: years})
	case "vault.rotate-key":
		_, err := n.rotateVaultKey(ctx, p["vault"])
		return err
	case "site.remove":
		return n.removeSite(p["site"])
	case "principal.add":
		return n.addPrincipal(p["principal"])
	case "principal.remove":
		return n.removePrincipal(p["principal"])
	case "root.rotate":
		dir, st, err := n.rotateRoot(ctx)
		if err == nil {
			r.Result = fmt.Sprintf("%d versions rewritten; new share files in %s", st.Rewrapped, dir)
		}
		return err
	case "config.edit":
		return n.executeConfigEdit(ctx, p)
	case "identity.replace":
		path, err := n.replaceIdentity(p["identity"])
		if err == nil {
			r.Result = "transition statement in " + path
		}
		return err
	case "peer.add":
		return n.addPeer(ctx, p["card"], p["fingerprint"])
	case "peer.remove":
		return n.removePeer(ctx, p["peer"], p["fingerprint"])
	case "share.grant":
		return n.storeGrant(ctx, p["grant"])
	case "host.add":
		return n.hostGuest(ctx, p["peer"], p["quota"])
	case "custody.resplit":
		dir, err := n.resplit(p["custodians"], p["threshold"])
		if err == nil {
			r.Result = "new share files in " + dir
		}
		return err
	}
	return fmt.Errorf("unknown operation %q", r.Op.Kind)
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
