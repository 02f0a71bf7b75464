package access

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/embassy-dev/embassy/label"
)

// Principal is a person or service that asks for data. It is also the
// configuration form of a principal: the node's YAML config decodes into it
// directly. Validate it against the node's registry once, when it is loaded.
type Principal struct {
	// Name identifies the principal (e.g. an access key owner or a
	// certificate subject).
	Name string `yaml:"name" json:"name"`
	// Nation is the principal's nationality as an ISO 3166-1 alpha-3 code,
	// e.g. "EST".
	Nation string `yaml:"nation" json:"nation"`
	// Clearances maps a policy ID to the level the principal is cleared to
	// in that policy, e.g. {"NATO": "SECRET", "EST": "SALAJANE"}. Level
	// aliases are accepted.
	Clearances map[string]string `yaml:"clearances,omitempty" json:"clearances,omitempty"`
	// Categories maps a category tag name to the values the principal holds,
	// e.g. {"Compartment": ["ALPHA"]}. Tag names and values are matched
	// exactly.
	Categories map[string][]string `yaml:"categories,omitempty" json:"categories,omitempty"`
	// Roles are the principal's node-wide roles (see [Role]): reader,
	// writer, operator, admin or auditor. They decide what it may change;
	// labels alone decide what it may read. Without any role (here or in
	// VaultRoles) a principal is a reader and writer.
	Roles []string `yaml:"roles,omitempty" json:"roles,omitempty"`
	// VaultRoles maps a vault name to roles the principal holds on that
	// vault only, in addition to Roles.
	VaultRoles map[string][]string `yaml:"vault_roles,omitempty" json:"vault_roles,omitempty"`
}

// Validate checks the principal against a registry and names the first
// field that is wrong: a missing name, a nation that is not three upper-case
// letters, a clearance in an unknown policy or at an unknown level, two
// clearances in the same policy, an empty or repeated category value, or a
// role that is empty, repeated or not one of [Roles].
func (p Principal) Validate(reg *label.Registry) error {
	if err := p.validate(reg); err != nil {
		if p.Name == "" {
			return fmt.Errorf("principal: %w", err)
		}
		return fmt.Errorf("principal %q: %w", p.Name, err)
	}
	return nil
}

func (p Principal) validate(reg *label.Registry) error {
	if p.Name == "" {
		return errors.New("name: missing")
	}
	if !label.IsNationCode(p.Nation) {
		return fmt.Errorf("nation: %q is not an ISO 3166-1 alpha-3 code (three upper-case letters)", p.Nation)
	}
	seen := make(map[string]string)
	for _, pol := range slices.Sorted(maps.Keys(p.Clearances)) {
		lv, err := reg.Level(pol, p.Clearances[pol])
		if err != nil {
			return fmt.Errorf("clearances[%q]: %w", pol, err)
		}
		if prev, dup := seen[lv.Policy]; dup {
			return fmt.Errorf("clearances[%q]: policy %s already has a clearance under %q", pol, lv.Policy, prev)
		}
		seen[lv.Policy] = pol
	}
	for _, tag := range slices.Sorted(maps.Keys(p.Categories)) {
		if tag == "" {
			return errors.New("categories: empty tag name")
		}
		vals := p.Categories[tag]
		if len(vals) == 0 {
			return fmt.Errorf("categories[%q]: no values", tag)
		}
		for i, v := range vals {
			if v == "" {
				return fmt.Errorf("categories[%q][%d]: empty value", tag, i)
			}
			if slices.Contains(vals[:i], v) {
				return fmt.Errorf("categories[%q][%d]: %q repeated", tag, i, v)
			}
		}
	}
	if err := validateRoles("roles", p.Roles); err != nil {
		return err
	}
	for _, v := range slices.Sorted(maps.Keys(p.VaultRoles)) {
		if v == "" {
			return errors.New("vault_roles: empty vault name")
		}
		if len(p.VaultRoles[v]) == 0 {
			return fmt.Errorf("vault_roles[%q]: no roles", v)
		}
		if err := validateRoles(fmt.Sprintf("vault_roles[%q]", v), p.VaultRoles[v]); err != nil {
			return err
		}
	}
	return nil
}
