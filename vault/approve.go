package vault

import (
	"context"
	"errors"
	"fmt"
)

// Approver gates dangerous operations behind the two-person rule (DESIGN.md
// §3 invariant 7). The engine calls Require before an operation that needs
// it; the node's implementation records a pending request that custodians
// approve, and later carries the operation out itself.
type Approver interface {
	// Require returns nil if the operation may proceed now, or an error
	// wrapping ErrApprovalRequired (a *PendingError naming the request).
	Require(ctx context.Context, op Operation) error
}

// Operation describes a dangerous operation awaiting approval.
type Operation struct {
	// Kind names it, e.g. "object.delete".
	Kind string `json:"kind"`
	// Params are what the operation acts on, enough to carry it out.
	Params map[string]string `json:"params"`
	// Summary says in one line what it does, for the custodians.
	Summary string `json:"summary"`
}

// ErrApprovalRequired: the operation takes effect only after custodians
// approve it. The caller should report the request id; custodians approve
// with 'embassy approve ID'.
var ErrApprovalRequired = errors.New("two-person approval required")

// ErrNoCustodians: the operation needs custodians' approval and the node
// has no custodians, so it is refused. Split the root key among custodians
// (embassy custody resplit) to make such operations possible.
var ErrNoCustodians = errors.New("this node has no custodians: dangerous operations need two, and are refused")

// PendingError names the request created for an operation.
type PendingError struct {
	RequestID string
	Needed    int
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("%v: request %s awaits %d custodian approvals", ErrApprovalRequired, e.RequestID, e.Needed)
}

// Unwrap returns ErrApprovalRequired.
func (e *PendingError) Unwrap() error { return ErrApprovalRequired }

type approvedKey struct{}

// Approved returns a context for carrying out an operation custodians have
// approved: the engine does not ask again.
func Approved(ctx context.Context) context.Context {
	return context.WithValue(ctx, approvedKey{}, true)
}

// require asks the approver, if there is one, unless ctx is Approved. A
// change holding its version's lock (withHeld) gives it up first, and an
// approval given at once is then errApprovedAtOnce (see again).
func (e *Engine) require(ctx context.Context, op Operation) error {
	if e.approver == nil || ctx.Value(approvedKey{}) != nil {
		return nil
	}
	unlock, _ := ctx.Value(heldKey{}).(func())
	if unlock == nil {
		return e.approver.Require(ctx, op)
	}
	unlock()
	if err := e.approver.Require(ctx, op); err != nil {
		return err
	}
	return errApprovedAtOnce
}
