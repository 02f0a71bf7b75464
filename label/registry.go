package label

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Registry holds the classification policies a node knows and answers
// questions about levels: their order, their aliases, and dominance within a
// policy and across configured equivalences.
//
// A Registry is immutable once made and safe for concurrent use. Its lookups
// do not allocate when names are already in upper case, so the access
// decision built on it stays cheap.
type Registry struct {
	policies []*entry
	byID     map[string]int // fold(ID) → index into policies
	// markings maps fold(level name or alias) to every (policy, rank) using
	// it, to read heads such as "COSMIC TOP SECRET" that name no policy.
	markings map[string][]Level
	// dom[p][q][x] is the highest rank in policy q dominated by rank x in
	// policy p through an equivalence, or -1; dom[p][q] is nil when p and q
	// have no equivalences.
	dom [][][]int
}

type entry struct {
	p     Policy
	names map[string]int // fold(level or alias) → rank
}

// Level is a level resolved by a Registry: the canonical policy ID, the
// canonical level name and its rank (0 is the lowest level of the policy).
// Only Levels returned by a Registry can be compared by it.
type Level struct {
	Policy string
	Name   string
	Rank   int

	reg *Registry
	idx int // index into reg.policies
}

// String returns the policy and level, e.g. "NATO SECRET".
func (lv Level) String() string {
	return lv.Policy + " " + lv.Name
}

// NewRegistry returns a registry holding NATO's policy and the given national
// policies. It validates every policy and reports the first problem, naming
// the policy and the field; a policy may not reuse the ID of another,
// including NATO. Equivalences may refer to any policy in the registry.
func NewRegistry(national ...Policy) (*Registry, error) {
	all := make([]Policy, 0, 1+len(national))
	all = append(all, NATO())
	for _, p := range national {
		all = append(all, p.clone())
	}
	r := &Registry{
		byID:     make(map[string]int, len(all)),
		markings: make(map[string][]Level),
	}
	for i := range all {
		p := &all[i]
		if err := p.validate(); err != nil {
			if p.ID == "" {
				return nil, fmt.Errorf("policy %d: %w", i, err)
			}
			return nil, fmt.Errorf("policy %q: %w", p.ID, err)
		}
		if j, dup := r.byID[fold(p.ID)]; dup {
			return nil, fmt.Errorf("policy %q: id: already used by policy %q", p.ID, all[j].ID)
		}
		r.byID[fold(p.ID)] = i
		e := &entry{p: *p, names: make(map[string]int, len(p.Levels)+len(p.Aliases))}
		for rank, lv := range p.Levels {
			e.names[fold(lv)] = rank
		}
		for alias, target := range p.Aliases {
			e.names[fold(alias)] = e.names[fold(target)]
		}
		for name, rank := range e.names {
			r.markings[name] = append(r.markings[name], Level{Policy: p.ID, Name: p.Levels[rank], Rank: rank, reg: r, idx: i})
		}
		r.policies = append(r.policies, e)
	}
	if err := r.buildEquivalences(); err != nil {
		return nil, err
	}
	return r, nil
}

// pair is one declared equivalence: rank a in one policy ≡ rank b in another.
type pair struct{ a, b int }

func (r *Registry) buildEquivalences() error {
	n := len(r.policies)
	pairs := make([][][]pair, n)
	for i := range pairs {
		pairs[i] = make([][]pair, n)
	}
	for i, e := range r.policies {
		for _, other := range slices.Sorted(maps.Keys(e.p.Equivalents)) {
			j, ok := r.byID[fold(other)]
			if !ok {
				return fmt.Errorf("policy %q: equivalents: unknown policy %q", e.p.ID, other)
			}
			if j == i {
				return fmt.Errorf("policy %q: equivalents: a policy cannot be equivalent to itself", e.p.ID)
			}
			f := r.policies[j]
			m := e.p.Equivalents[other]
			for _, mine := range slices.Sorted(maps.Keys(m)) {
				theirs := m[mine]
				a, ok := e.names[fold(mine)]
				if !ok {
					return fmt.Errorf("policy %q: equivalents[%q]: %q is not a level of %s", e.p.ID, other, mine, e.p.ID)
				}
				b, ok := f.names[fold(theirs)]
				if !ok {
					return fmt.Errorf("policy %q: equivalents[%q][%q]: %q is not a level of %s", e.p.ID, other, mine, theirs, f.p.ID)
				}
				pairs[i][j] = append(pairs[i][j], pair{a, b})
				pairs[j][i] = append(pairs[j][i], pair{b, a})
			}
		}
	}
	r.dom = make([][][]int, n)
	for i := range n {
		r.dom[i] = make([][]int, n)
		for j := range n {
			ps := pairs[i][j]
			if len(ps) == 0 {
				continue
			}
			// Equivalence must keep order both ways, or dominance would
			// depend on which pair one looked at. The relation is symmetric,
			// so one direction is checked, seen from the later policy (the
			// national one, which usually declares it).
			for x, p := range ps {
				if i < j {
					break
				}
				for _, q := range ps[:x] {
					if (p.a < q.a) != (p.b < q.b) || (p.a == q.a) != (p.b == q.b) {
						pi, pj := r.policies[i].p, r.policies[j].p
						return fmt.Errorf("policies %q and %q: equivalents conflict: %s %s ≡ %s %s but %s %s ≡ %s %s",
							pi.ID, pj.ID,
							pi.ID, pi.Levels[q.a], pj.ID, pj.Levels[q.b],
							pi.ID, pi.Levels[p.a], pj.ID, pj.Levels[p.b])
					}
				}
			}
			table := make([]int, len(r.policies[i].p.Levels))
			for x := range table {
				table[x] = -1
				for _, p := range ps {
					if p.a <= x && p.b > table[x] {
						table[x] = p.b
					}
				}
			}
			r.dom[i][j] = table
		}
	}
	return nil
}

// Policy returns a copy of the policy with the given ID (ignoring case).
func (r *Registry) Policy(id string) (Policy, bool) {
	i, ok := r.byID[fold(id)]
	if !ok {
		return Policy{}, false
	}
	return r.policies[i].p.clone(), true
}

// PolicyIDs returns the IDs of every policy in the registry, NATO first.
func (r *Registry) PolicyIDs() []string {
	ids := make([]string, len(r.policies))
	for i, e := range r.policies {
		ids[i] = e.p.ID
	}
	return ids
}

// Level resolves a level name (canonical or alias, ignoring case) within a
// policy. If no policy has that ID, "policy name" is looked up as a whole
// marking in every policy, so that the head "COSMIC TOP SECRET" resolves to
// NATO's top level; the marking must belong to exactly one policy.
func (r *Registry) Level(policy, name string) (Level, error) {
	if i, ok := r.byID[fold(policy)]; ok {
		e := r.policies[i]
		rank, ok := e.names[fold(name)]
		if !ok {
			return Level{}, fmt.Errorf("policy %s: unknown level %q", e.p.ID, name)
		}
		return Level{Policy: e.p.ID, Name: e.p.Levels[rank], Rank: rank, reg: r, idx: i}, nil
	}
	switch m := r.markings[fold(policy+" "+name)]; {
	case len(m) == 1:
		return m[0], nil
	case len(m) > 1:
		return Level{}, fmt.Errorf("unknown policy %q, and %q is a level of more than one policy", policy, policy+" "+name)
	}
	return Level{}, fmt.Errorf("unknown policy %q", policy)
}

// LabelLevel resolves the label's policy and classification.
func (r *Registry) LabelLevel(l Label) (Level, error) {
	return r.Level(l.Policy, l.Classification)
}

// Rank returns the rank of a level within a policy: 0 for the lowest.
func (r *Registry) Rank(policy, name string) (int, error) {
	lv, err := r.Level(policy, name)
	if err != nil {
		return 0, err
	}
	return lv.Rank, nil
}

// Dominates reports whether a clearance at level clearance may see
// information classified at level classification: within one policy, when
// its rank is at least as high; across policies, when it is at least as high
// as a level declared equivalent to a level at least as high as the
// classification. It reports false for Levels not made by this registry.
func (r *Registry) Dominates(clearance, classification Level) bool {
	if clearance.reg != r || classification.reg != r {
		return false
	}
	if clearance.idx == classification.idx {
		return clearance.Rank >= classification.Rank
	}
	table := r.dom[clearance.idx][classification.idx]
	return table != nil && table[clearance.Rank] >= classification.Rank
}

// IsReleasability reports whether a category tag name is the releasability
// tag of the policy, ignoring case and spaces. It reports false for an
// unknown policy.
func (r *Registry) IsReleasability(policy, tagName string) bool {
	i, ok := r.byID[fold(policy)]
	if !ok {
		return false
	}
	return sameTag(tagName, r.policies[i].p.Releasability)
}

// Normalize validates l against its policy and returns it in canonical form:
// the policy's ID and canonical level name, the policy's releasability tag
// (which must be PERMISSIVE) with upper-case ISO 3166-1 alpha-3 values. An
// unknown policy or level is an error naming it. l itself is not modified.
func (r *Registry) Normalize(l Label) (Label, error) {
	if err := l.Validate(); err != nil {
		return Label{}, fmt.Errorf("invalid label: %w", err)
	}
	lv, err := r.LabelLevel(l)
	if err != nil {
		return Label{}, fmt.Errorf("invalid label: %w", err)
	}
	out := l.Clone()
	out.Policy, out.Classification = lv.Policy, lv.Name
	rel := r.policies[lv.idx].p.Releasability
	for i := range out.Categories {
		c := &out.Categories[i]
		if !sameTag(c.TagName, rel) {
			continue
		}
		if c.Type != Permissive {
			return Label{}, fmt.Errorf("invalid label: category %q: releasability must be PERMISSIVE, not %s", c.TagName, c.Type)
		}
		c.TagName = rel
		for j, v := range c.Values {
			u := strings.ToUpper(v)
			if !IsNationCode(u) {
				return Label{}, fmt.Errorf("invalid label: category %q: %q is not an ISO 3166-1 alpha-3 country code", rel, v)
			}
			c.Values[j] = u
		}
	}
	if err := out.Validate(); err != nil {
		return Label{}, fmt.Errorf("invalid label after normalising: %w", err)
	}
	return out, nil
}

// ParseText parses the text form and normalises the result.
func (r *Registry) ParseText(s string) (Label, error) {
	l, err := ParseText(s)
	if err != nil {
		return Label{}, err
	}
	return r.Normalize(l)
}

// ParseXML parses the XML form and normalises the result.
func (r *Registry) ParseXML(data []byte) (Label, error) {
	l, err := ParseXML(data)
	if err != nil {
		return Label{}, err
	}
	return r.Normalize(l)
}

// IsNationCode reports whether s has the form of an ISO 3166-1 alpha-3 code:
// three upper-case ASCII letters. It does not check the code is assigned.
func IsNationCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := range 3 {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
