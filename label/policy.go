package label

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultReleasabilityTag is the tag name of the releasability category when
// a policy names none. Tag names are matched ignoring case and spaces, so
// "ReleasableTo" matches too.
const DefaultReleasabilityTag = "Releasable To"

// Policy is a classification policy: an ordered ladder of levels, the other
// names those levels go by, the tag of its releasability category, and its
// equivalences with other policies.
//
// Policy is also the configuration form of a national policy: a node's YAML
// config decodes into it directly. [NewRegistry] validates it.
type Policy struct {
	// ID is the policy identifier written in labels, e.g. "NATO" or "EST".
	// Matched ignoring case.
	ID string `yaml:"id" json:"id"`
	// OID optionally identifies the policy by object identifier, in
	// dotted-decimal form (NATO's is 1.3.26.1.3.1).
	OID string `yaml:"oid,omitempty" json:"oid,omitempty"`
	// URI optionally identifies the policy by URI.
	URI string `yaml:"uri,omitempty" json:"uri,omitempty"`
	// Levels are the canonical level names, lowest first. Matched ignoring
	// case.
	Levels []string `yaml:"levels" json:"levels"`
	// Aliases maps other names of a level (e.g. "NATO SECRET") to its
	// canonical name (e.g. "SECRET"). Matched ignoring case.
	Aliases map[string]string `yaml:"aliases,omitempty" json:"aliases,omitempty"`
	// Releasability is the tag name of the policy's releasability category;
	// empty means DefaultReleasabilityTag. Labels whose tag differs only in
	// case or spaces are normalised to it.
	Releasability string `yaml:"releasability,omitempty" json:"releasability,omitempty"`
	// Equivalents maps another policy's ID to pairs of equivalent levels:
	// this policy's level → that policy's level. For example, under policy
	// EST, {"NATO": {"SALAJANE": "SECRET"}} declares EST SALAJANE equivalent
	// to NATO SECRET. Equivalence is symmetric and is not chained through a
	// third policy. Levels within one pair of policies must keep their order:
	// a higher level here is equivalent only to a higher level there.
	Equivalents map[string]map[string]string `yaml:"equivalents,omitempty" json:"equivalents,omitempty"`
}

// NATO returns NATO's policy, built into every registry: UNCLASSIFIED <
// RESTRICTED < CONFIDENTIAL < SECRET < COSMIC TOP SECRET, with the aliases
// "NATO UNCLASSIFIED", "NATO RESTRICTED", "NATO CONFIDENTIAL", "NATO SECRET",
// "TOP SECRET", "NATO TOP SECRET" and the short forms NU, NR, NC, NS and CTS.
func NATO() Policy {
	return Policy{
		ID:     "NATO",
		OID:    "1.3.26.1.3.1",
		Levels: []string{"UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET", "COSMIC TOP SECRET"},
		Aliases: map[string]string{
			"NATO UNCLASSIFIED": "UNCLASSIFIED",
			"NU":                "UNCLASSIFIED",
			"NATO RESTRICTED":   "RESTRICTED",
			"NR":                "RESTRICTED",
			"NATO CONFIDENTIAL": "CONFIDENTIAL",
			"NC":                "CONFIDENTIAL",
			"NATO SECRET":       "SECRET",
			"NS":                "SECRET",
			"TOP SECRET":        "COSMIC TOP SECRET",
			"NATO TOP SECRET":   "COSMIC TOP SECRET",
			"CTS":               "COSMIC TOP SECRET",
		},
		Releasability: DefaultReleasabilityTag,
	}
}

// clone returns a deep copy of p.
func (p Policy) clone() Policy {
	p.Levels = slices.Clone(p.Levels)
	p.Aliases = maps.Clone(p.Aliases)
	if p.Equivalents != nil {
		eq := make(map[string]map[string]string, len(p.Equivalents))
		for k, v := range p.Equivalents {
			eq[k] = maps.Clone(v)
		}
		p.Equivalents = eq
	}
	return p
}

// validate checks everything about p that does not depend on other policies,
// and fills in the default releasability tag.
func (p *Policy) validate() error {
	if p.ID == "" {
		return fmt.Errorf("id: missing")
	}
	if err := checkText(p.ID); err != nil {
		return fmt.Errorf("id: %w", err)
	}
	if p.OID != "" && !isOID(p.OID) {
		return fmt.Errorf("oid: %q is not a dotted-decimal object identifier", p.OID)
	}
	if p.URI != "" {
		if err := checkText(p.URI); err != nil {
			return fmt.Errorf("uri: %w", err)
		}
	}
	if len(p.Levels) == 0 {
		return fmt.Errorf("levels: none given")
	}
	seen := make(map[string]string)
	for i, lv := range p.Levels {
		if lv == "" {
			return fmt.Errorf("levels[%d]: empty", i)
		}
		if err := checkText(lv); err != nil {
			return fmt.Errorf("levels[%d]: %w", i, err)
		}
		if prev, dup := seen[fold(lv)]; dup {
			return fmt.Errorf("levels[%d]: %q repeats %q", i, lv, prev)
		}
		seen[fold(lv)] = lv
	}
	for _, alias := range slices.Sorted(maps.Keys(p.Aliases)) {
		target := p.Aliases[alias]
		if alias == "" {
			return fmt.Errorf("aliases: empty alias for %q", target)
		}
		if err := checkText(alias); err != nil {
			return fmt.Errorf("aliases[%q]: %w", alias, err)
		}
		if !slices.ContainsFunc(p.Levels, func(lv string) bool { return fold(lv) == fold(target) }) {
			return fmt.Errorf("aliases[%q]: %q is not one of the levels", alias, target)
		}
		if prev, dup := seen[fold(alias)]; dup && fold(prev) != fold(target) {
			return fmt.Errorf("aliases[%q]: clashes with %q", alias, prev)
		}
		seen[fold(alias)] = target
	}
	if p.Releasability == "" {
		p.Releasability = DefaultReleasabilityTag
	}
	if err := checkText(p.Releasability); err != nil {
		return fmt.Errorf("releasability: %w", err)
	}
	return nil
}

func isOID(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	for _, part := range parts {
		if part == "" || (len(part) > 1 && part[0] == '0') {
			return false
		}
		for _, c := range part {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// fold is the key under which names are matched: upper case. It does not
// allocate when s is already upper case.
func fold(s string) string {
	return strings.ToUpper(s)
}

// sameTag reports whether two category tag names are the same ignoring case
// and spaces ("Releasable To" and "ReleasableTo"). It does not allocate.
func sameTag(a, b string) bool {
	for {
		a = strings.TrimLeft(a, " ")
		b = strings.TrimLeft(b, " ")
		if a == "" || b == "" {
			return a == b
		}
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if !foldEqual(ra, rb) {
			return false
		}
		a, b = a[na:], b[nb:]
	}
}

// foldEqual reports whether r and s are equal under simple Unicode case
// folding.
func foldEqual(r, s rune) bool {
	if r == s {
		return true
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f == s {
			return true
		}
	}
	return false
}
