package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/custody/shamir"
)

// CustodyFile holds a node's custody record (its share set and custodians'
// public keys) when the root key is split. It holds no secret.
const CustodyFile = "custody.json"

// marshalCustody encodes a custody record as custody.json's body.
func marshalCustody(rec *custody.Record) ([]byte, error) {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// saveCustody writes rec as the next generation of custody.json.
func (n *Node) saveCustody(rec *custody.Record) error {
	b, err := marshalCustody(rec)
	if err != nil {
		return err
	}
	return n.saveNodeFile(CustodyFile, b)
}

// parseCustody decodes custody.json's body: the current form (snake_case,
// hex share set) or the one written before (Go field names), which old
// descriptors hold.
func parseCustody(b []byte) (*custody.Record, error) {
	var rec custody.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", CustodyFile, err)
	}
	if rec.Set.Threshold < 2 || len(rec.Custodians) < rec.Set.Threshold {
		return nil, fmt.Errorf("%s: threshold %d with %d custodians", CustodyFile, rec.Set.Threshold, len(rec.Custodians))
	}
	for _, c := range rec.Custodians {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", CustodyFile, err)
		}
	}
	return &rec, nil
}

// ErrSealed: the node's root key is split among custodians and not enough
// of them have unsealed it yet. Only status and unsealing are served.
var ErrSealed = errors.New("node is sealed")

// Sealed reports whether the node is waiting for custodians' shares.
func (n *Node) Sealed() bool {
	n.sealMu.Lock()
	defer n.sealMu.Unlock()
	return n.sealed
}

// Ready returns ErrSealed until the node is unsealed.
func (n *Node) Ready() error {
	if n.Sealed() {
		return fmt.Errorf("%w: %d of %d custodian shares given", ErrSealed, n.SharesGiven(), n.Custody.Set.Threshold)
	}
	return nil
}

// readyChan returns a channel closed once the node is unsealed (closed
// already on a node that is not sealed).
func (n *Node) readyChan() <-chan struct{} {
	n.sealMu.Lock()
	defer n.sealMu.Unlock()
	if n.readyC == nil {
		n.readyC = make(chan struct{})
		if !n.sealed {
			close(n.readyC)
		}
	}
	return n.readyC
}

// SharesGiven returns how many shares have been given towards unsealing.
func (n *Node) SharesGiven() int {
	n.sealMu.Lock()
	defer n.sealMu.Unlock()
	return len(n.shares)
}

// UnsealStatus reports progress towards unsealing.
type UnsealStatus struct {
	Sealed    bool  `json:"sealed"`
	Threshold int   `json:"threshold"`
	Given     int   `json:"given"`
	Shares    []int `json:"shares_given"` // share numbers (Shamir x) given so far, [] when none
}

// Unseal takes one custodian's share (an encoded Shamir share, decrypted by
// the custodian from their share file). When the threshold is reached the
// root key is recovered and the node starts. A share from another node or
// a corrupt one fails at that point, and the shares given are forgotten so
// that the ceremony can start again.
func (n *Node) Unseal(encoded []byte) (UnsealStatus, error) {
	n.sealMu.Lock()
	defer n.sealMu.Unlock()
	if n.Custody == nil || !n.sealed {
		return UnsealStatus{Sealed: false, Shares: []int{}}, nil
	}
	s, err := shamir.ParseSetShare(encoded)
	if err != nil {
		return n.statusLocked(), fmt.Errorf("share: %w", err)
	}
	if s.Set.ID != n.Custody.Set.ID {
		return n.statusLocked(), fmt.Errorf("share %d: %w (it is not a share of this node's root key)", s.Share.X, shamir.ErrForeignShare)
	}
	n.shares[int(s.Share.X)] = append([]byte(nil), encoded...)
	n.recordSealed(audit.Event{Kind: KindUnsealAttempt, Actor: "node", Detail: map[string]string{"share": fmt.Sprint(s.Share.X), "given": fmt.Sprint(len(n.shares)), "threshold": fmt.Sprint(n.Custody.Set.Threshold)}})
	if len(n.shares) < n.Custody.Set.Threshold {
		return n.statusLocked(), nil
	}
	var all [][]byte
	var given []int
	for x, v := range n.shares {
		all = append(all, v)
		given = append(given, x)
	}
	slices.Sort(given)
	root, err := custody.CombineRoot(*n.Custody, all)
	for k, v := range n.shares {
		clear(v)
		delete(n.shares, k)
	}
	if err != nil {
		n.recordSealed(audit.Event{Kind: KindUnsealAttempt, Actor: "node", Outcome: "failed: " + err.Error(), Detail: map[string]string{"shares": fmt.Sprint(given)}})
		return n.statusLocked(), fmt.Errorf("unseal failed, start again: %w", err)
	}
	if err := n.start(root); err != nil {
		n.recordSealed(audit.Event{Kind: KindUnsealAttempt, Actor: "node", Outcome: "failed: " + err.Error(), Detail: map[string]string{"shares": fmt.Sprint(given)}})
		return n.statusLocked(), err
	}
	n.flushSealed(context.Background())
	n.recordBestEffort(context.Background(), audit.Event{Kind: KindUnseal, Actor: "node", Detail: map[string]string{"shares": fmt.Sprint(given)}})
	n.sealed = false
	if n.readyC != nil {
		close(n.readyC)
	}
	n.Log.Info("node unsealed by custodians")
	return n.statusLocked(), nil
}

// UnsealAs takes a share submitted by custodian (whose signature the
// caller has verified against custody.json). A custodian gives only their
// own share: the share's index must be theirs (custodian i of the record
// holds share i+1), so a custodian's key cannot feed the ceremony shares it
// was never given.
func (n *Node) UnsealAs(custodian string, encoded []byte) (UnsealStatus, error) {
	n.sealMu.Lock()
	rec := n.Custody
	n.sealMu.Unlock()
	if rec == nil {
		return UnsealStatus{Shares: []int{}}, ErrNoCustodians
	}
	s, err := shamir.ParseSetShare(encoded)
	if err != nil {
		return n.unsealStatus(), fmt.Errorf("share: %w", err)
	}
	i := slices.IndexFunc(rec.Custodians, func(c custody.CustodianPublic) bool { return c.Name == custodian })
	if i < 0 || int(s.Share.X) != i+1 {
		return n.unsealStatus(), fmt.Errorf("share %d is not custodian %s's: each custodian gives their own share", s.Share.X, custodian)
	}
	return n.Unseal(encoded)
}

func (n *Node) unsealStatus() UnsealStatus {
	n.sealMu.Lock()
	defer n.sealMu.Unlock()
	return n.statusLocked()
}

func (n *Node) statusLocked() UnsealStatus {
	st := UnsealStatus{Sealed: n.sealed, Given: len(n.shares), Shares: []int{}}
	if n.Custody != nil {
		st.Threshold = n.Custody.Set.Threshold
	}
	for x := range n.shares {
		st.Shares = append(st.Shares, x)
	}
	slices.Sort(st.Shares)
	return st
}
