package access

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/embassy-dev/embassy/label"
)

// ErrDenied is wrapped by every refusal.
//
// A caller that gets it must answer the client with its plain "access
// denied" (S3 AccessDenied, HTTP 403, the federation's denied code) and
// nothing more: the same answer whether or not the object exists, with no
// reason, label or classification in the response. The full [*DeniedError]
// belongs on the audit log.
var ErrDenied = errors.New("access denied")

// Reason says which rule refused access.
type Reason uint8

// Reasons, in the order the rules are checked.
const (
	// ReasonPrincipal: the principal has no valid nation.
	ReasonPrincipal Reason = iota + 1
	// ReasonLabel: the label names a policy or level the registry does not
	// know, so nothing can be said to dominate it.
	ReasonLabel
	// ReasonClearance: no clearance dominates the classification.
	ReasonClearance
	// ReasonNation: the principal's nation is neither the owner nor
	// releasable.
	ReasonNation
	// ReasonRestrictive: a value of a restrictive category is not held.
	ReasonRestrictive
	// ReasonPermissive: no value of a permissive category is held.
	ReasonPermissive
	// ReasonRole: the principal holds no role allowing the operation
	// (see [Role]); labels were not consulted.
	ReasonRole
	// ReasonOwner: the principal did not start what it tries to change
	// (a multipart upload) and is not an operator.
	ReasonOwner
)

// String names the reason as it appears in error messages.
func (r Reason) String() string {
	switch r {
	case ReasonPrincipal:
		return "principal invalid"
	case ReasonLabel:
		return "label not understood"
	case ReasonClearance:
		return "clearance too low"
	case ReasonNation:
		return "nation not owner and not releasable"
	case ReasonRestrictive:
		return "missing restrictive category"
	case ReasonPermissive:
		return "missing permissive category"
	case ReasonRole:
		return "role not held"
	case ReasonOwner:
		return "not the initiator"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// DeniedError is a refusal: who was refused, by which rule, and the
// details. It is for the audit log and the operator, never for the client
// (see ErrDenied).
type DeniedError struct {
	Principal string
	Reason    Reason
	Detail    string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("access denied: principal %q: %s: %s", e.Principal, e.Reason, e.Detail)
}

// Unwrap returns ErrDenied.
func (e *DeniedError) Unwrap() error { return ErrDenied }

// Decider makes the access decision against one registry of policies. It is
// safe for concurrent use.
type Decider struct {
	reg *label.Registry
}

// NewDecider returns a Decider using reg, which must not be nil.
func NewDecider(reg *label.Registry) *Decider {
	if reg == nil {
		panic("access: NewDecider with a nil registry")
	}
	return &Decider{reg: reg}
}

// CanRead returns nil if principal p may read an object owned by nation owner
// and labelled l, and a *DeniedError otherwise (see the package
// documentation for the rule). The first rule that fails is reported, in the
// order: principal, label, clearance, nation, restrictive categories,
// permissive categories.
//
// The label need not be normalised: levels are matched through aliases and
// case, and the releasability category by the policy's tag ignoring case and
// spaces. Tag names of other categories and their values are matched exactly.
// CanRead does not allocate when it allows.
func (d *Decider) CanRead(p Principal, owner string, l label.Label) error {
	lv, err := d.checkLevel(p, l)
	if err != nil {
		return err
	}
	if !d.releasable(lv.Policy, p.Nation, owner, l) {
		return d.deny(p, ReasonNation, d.nationDetail(lv.Policy, p.Nation, owner, l))
	}
	return d.checkCategories(lv.Policy, p, l)
}

// CanWriteLabel returns nil if principal p may store an object under label
// l, and a *DeniedError otherwise. The rule is CanRead's without the nation
// rule: one may not write above one's clearance, nor into categories one
// does not hold. Whether the principal's nation may write into a vault is
// the vault's owner check, not this one.
//
// A label that does not normalise under the registry is not a denial: the
// error returned then does not wrap ErrDenied, and the caller should answer
// that the label is invalid.
func (d *Decider) CanWriteLabel(p Principal, l label.Label) error {
	if _, err := d.reg.Normalize(l); err != nil {
		return err
	}
	lv, err := d.checkLevel(p, l)
	if err != nil {
		return err
	}
	return d.checkCategories(lv.Policy, p, l)
}

// checkLevel applies the principal, label and clearance rules and returns
// the label's resolved level.
func (d *Decider) checkLevel(p Principal, l label.Label) (label.Level, error) {
	if !label.IsNationCode(p.Nation) {
		return label.Level{}, d.deny(p, ReasonPrincipal, fmt.Sprintf("nation %q is not an ISO 3166-1 alpha-3 code", p.Nation))
	}
	lv, err := d.reg.LabelLevel(l)
	if err != nil {
		return label.Level{}, d.deny(p, ReasonLabel, err.Error())
	}
	if !d.cleared(p, lv) {
		return label.Level{}, d.deny(p, ReasonClearance, d.clearanceDetail(p, lv))
	}
	return lv, nil
}

// cleared reports whether any of p's clearances dominates lv. Clearances
// the registry cannot resolve grant nothing.
func (d *Decider) cleared(p Principal, lv label.Level) bool {
	for pol, name := range p.Clearances {
		c, err := d.reg.Level(pol, name)
		if err == nil && d.reg.Dominates(c, lv) {
			return true
		}
	}
	return false
}

// releasable reports whether nation is the owner or is listed in every
// releasability category of l (a normalised label has at most one). policy
// is the label's resolved policy ID.
func (d *Decider) releasable(policy, nation, owner string, l label.Label) bool {
	if strings.EqualFold(nation, owner) {
		return true
	}
	found := false
	for _, c := range l.Categories {
		if c.Type != label.Permissive || !d.reg.IsReleasability(policy, c.TagName) {
			continue
		}
		if !containsFold(c.Values, nation) {
			return false
		}
		found = true
	}
	return found
}

// checkCategories applies the restrictive and permissive rules.
func (d *Decider) checkCategories(policy string, p Principal, l label.Label) error {
	for _, c := range l.Categories {
		if c.Type != label.Restrictive {
			continue
		}
		held := p.Categories[c.TagName]
		for _, v := range c.Values {
			if !slices.Contains(held, v) {
				return d.deny(p, ReasonRestrictive, fmt.Sprintf("category %q: value(s) %s not held", c.TagName, missing(c.Values, held)))
			}
		}
	}
	for _, c := range l.Categories {
		if c.Type != label.Permissive || d.reg.IsReleasability(policy, c.TagName) {
			continue
		}
		held := p.Categories[c.TagName]
		if !slices.ContainsFunc(c.Values, func(v string) bool { return slices.Contains(held, v) }) {
			return d.deny(p, ReasonPermissive, fmt.Sprintf("category %q: none of %s held", c.TagName, strings.Join(c.Values, ", ")))
		}
	}
	return nil
}

// NeedRole returns nil if p holds a role granting want on vault ("" for
// the node as a whole), and a *DeniedError with ReasonRole otherwise.
func NeedRole(p Principal, vault string, want Role) error {
	if p.Can(vault, want) {
		return nil
	}
	where := "this node"
	if vault != "" {
		where = "vault " + vault
	}
	held := "no nation, so no role"
	if p.Nation != "" {
		held = "holds " + p.RoleSummary()
	}
	return &DeniedError{Principal: p.Name, Reason: ReasonRole, Detail: fmt.Sprintf("needs the %s role on %s; %s", want, where, held)}
}

func (d *Decider) deny(p Principal, r Reason, detail string) error {
	return &DeniedError{Principal: p.Name, Reason: r, Detail: detail}
}

func (d *Decider) clearanceDetail(p Principal, lv label.Level) string {
	if len(p.Clearances) == 0 {
		return fmt.Sprintf("label is %s; no clearances held", lv)
	}
	var held []string
	for _, pol := range slices.Sorted(maps.Keys(p.Clearances)) {
		held = append(held, pol+" "+p.Clearances[pol])
	}
	return fmt.Sprintf("label is %s; holds %s, none of which dominates it", lv, strings.Join(held, ", "))
}

func (d *Decider) nationDetail(policy, nation, owner string, l label.Label) string {
	var rel []string
	for _, c := range l.Categories {
		if c.Type == label.Permissive && d.reg.IsReleasability(policy, c.TagName) {
			rel = append(rel, c.Values...)
		}
	}
	if rel == nil {
		return fmt.Sprintf("nation %s is not the owner %s and the label has no releasability list", nation, owner)
	}
	return fmt.Sprintf("nation %s is not the owner %s and not in the releasability list %s", nation, owner, strings.Join(rel, ", "))
}

// missing lists the values of want not in held.
func missing(want, held []string) string {
	var m []string
	for _, v := range want {
		if !slices.Contains(held, v) {
			m = append(m, v)
		}
	}
	return strings.Join(m, ", ")
}

func containsFold(vals []string, s string) bool {
	for _, v := range vals {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
