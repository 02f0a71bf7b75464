package access

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Role says what a principal may change; labels say what it may see
// (DESIGN.md §7). The data roles nest: reader ⊂ writer ⊂ operator ⊂ admin.
// Auditor stands apart: it reads the node's records, never data.
//
// A role is held node-wide (Principal.Roles) or on one vault
// (Principal.VaultRoles). A principal configured without any role keeps the
// behaviour of nodes before roles existed: it reads and writes (reader and
// writer, node-wide), and writing into a vault still needs the vault
// owner's nationality.
type Role string

// The roles, in order of what they allow.
const (
	// RoleReader reads objects, versions, listings and object settings,
	// within what labels admit.
	RoleReader Role = "reader"
	// RoleWriter also puts, copies and deletes objects (delete markers)
	// and runs its own multipart uploads.
	RoleWriter Role = "writer"
	// RoleOperator also removes versions for good, changes object locks,
	// legal holds and vault settings, creates and deletes vaults, sees and
	// ends every multipart upload, and uses the operator admin API.
	RoleOperator Role = "operator"
	// RoleAdmin also manages principals and credentials over the admin
	// API. Everything an operator may do, an admin may too.
	RoleAdmin Role = "admin"
	// RoleAuditor reads the node's status and records (requests, the
	// audit log); it reads no data and changes nothing.
	RoleAuditor Role = "auditor"
)

// Roles lists every role, in the order docs and tables show them.
var Roles = []Role{RoleReader, RoleWriter, RoleOperator, RoleAdmin, RoleAuditor}

// rank orders the nested roles; auditor has none.
func (r Role) rank() int {
	switch r {
	case RoleReader:
		return 1
	case RoleWriter:
		return 2
	case RoleOperator:
		return 3
	case RoleAdmin:
		return 4
	}
	return 0
}

// ParseRole returns the role named s, or an error naming the roles there
// are. Names are matched exactly (they are lower case).
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if slices.Contains(Roles, r) {
		return r, nil
	}
	names := make([]string, len(Roles))
	for i, x := range Roles {
		names[i] = string(x)
	}
	return "", fmt.Errorf("unknown role %q (the roles are %s)", s, strings.Join(names, ", "))
}

// Grants reports whether holding r allows what want allows: a nested role
// grants every role below it, and auditor grants only auditor.
func (r Role) Grants(want Role) bool {
	if r == want {
		return true
	}
	return r.rank() > 0 && want.rank() > 0 && r.rank() >= want.rank()
}

// DefaultRoles are the roles of a principal configured without any.
var DefaultRoles = []Role{RoleReader, RoleWriter}

// HasRoles reports whether any role is configured for p, node-wide or on a
// vault. A principal without any holds DefaultRoles node-wide.
func (p Principal) HasRoles() bool {
	if len(p.Roles) > 0 {
		return true
	}
	for _, rs := range p.VaultRoles {
		if len(rs) > 0 {
			return true
		}
	}
	return false
}

// Can reports whether p holds a role granting want on vault (node-wide
// roles count on every vault; vault "" asks about node-wide roles only).
// A principal with no nation (a credential no configuration knows, on a
// node that is not a development node) holds nothing.
func (p Principal) Can(vault string, want Role) bool {
	if p.Nation == "" {
		return false
	}
	if !p.HasRoles() {
		return slices.ContainsFunc(DefaultRoles, func(r Role) bool { return r.Grants(want) })
	}
	for _, s := range p.Roles {
		if Role(s).Grants(want) {
			return true
		}
	}
	if vault == "" {
		return false
	}
	for _, s := range p.VaultRoles[vault] {
		if Role(s).Grants(want) {
			return true
		}
	}
	return false
}

// CanSomewhere reports whether p holds a role granting want node-wide or
// on any vault.
func (p Principal) CanSomewhere(want Role) bool {
	if p.Can("", want) {
		return true
	}
	for _, v := range slices.Sorted(maps.Keys(p.VaultRoles)) {
		if p.Can(v, want) {
			return true
		}
	}
	return false
}

// Administrative reports whether p holds an administrative role (operator
// or admin) node-wide or on any vault. Adding such a principal, or giving
// it that role, is a two-person operation.
func (p Principal) Administrative() bool {
	return p.CanSomewhere(RoleOperator)
}

// RoleSummary describes p's roles for people: "reader, writer (default)",
// "operator; registry: admin".
func (p Principal) RoleSummary() string {
	if !p.HasRoles() {
		return "reader, writer (default)"
	}
	var parts []string
	if len(p.Roles) > 0 {
		parts = append(parts, strings.Join(p.Roles, ", "))
	}
	for _, v := range slices.Sorted(maps.Keys(p.VaultRoles)) {
		if len(p.VaultRoles[v]) > 0 {
			parts = append(parts, v+": "+strings.Join(p.VaultRoles[v], ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// validateRoles checks role names; unknown names are configuration errors.
func validateRoles(field string, rs []string) error {
	for i, r := range rs {
		if r == "" {
			return fmt.Errorf("%s[%d]: empty", field, i)
		}
		if _, err := ParseRole(r); err != nil {
			return fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		if slices.Contains(rs[:i], r) {
			return fmt.Errorf("%s[%d]: %q repeated", field, i, r)
		}
	}
	return nil
}
