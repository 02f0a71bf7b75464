// Package placement owns survivability policies and the choice of sites for
// each object's shards.
//
// A policy names the losses a vault must survive: any N sites, any N
// providers, any N jurisdictions where data sits, any N controlling
// jurisdictions (every provider under one country's law withdrawing at
// once), and optionally the total loss of the owner's home jurisdiction.
// Each named loss is a separate scenario; an assignment of k+m shards to
// sites satisfies the policy when, in every scenario, at least k shards
// survive. [Choose] picks such an assignment deterministically per object
// (rendezvous hashing spreads objects over the eligible sites) and
// [Feasible] proves that one exists, or explains which constraint cannot
// hold and on which sites.
package placement

import (
	"fmt"
	"strconv"
	"strings"
)

// Loss names how many failure domains of each kind may be lost at once.
type Loss struct {
	Sites         int `yaml:"sites,omitempty" json:"sites,omitempty"`
	Providers     int `yaml:"providers,omitempty" json:"providers,omitempty"`
	Jurisdictions int `yaml:"jurisdictions,omitempty" json:"jurisdictions,omitempty"`
	Controls      int `yaml:"controls,omitempty" json:"controls,omitempty"`
}

// ParseLoss parses the compact form used on the command line:
// comma-separated dimension=count pairs, e.g. "jurisdictions=1,providers=1".
// Dimensions: sites, providers, jurisdictions, controls (singular forms are
// accepted too). "none" or "" is no loss.
func ParseLoss(s string) (Loss, error) {
	var l Loss
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return l, nil
	}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		dim, num, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Loss{}, fmt.Errorf("survive %q: %q is not dimension=count", s, part)
		}
		dim = strings.ToLower(strings.TrimSpace(dim))
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if err != nil || n < 0 || n > 64 {
			return Loss{}, fmt.Errorf("survive %q: count %q for %s must be a whole number 0-64", s, num, dim)
		}
		var p *int
		switch dim {
		case "sites", "site":
			p, dim = &l.Sites, "sites"
		case "providers", "provider":
			p, dim = &l.Providers, "providers"
		case "jurisdictions", "jurisdiction":
			p, dim = &l.Jurisdictions, "jurisdictions"
		case "controls", "control":
			p, dim = &l.Controls, "controls"
		default:
			return Loss{}, fmt.Errorf("survive %q: unknown dimension %q (want sites, providers, jurisdictions or controls)", s, dim)
		}
		if seen[dim] {
			return Loss{}, fmt.Errorf("survive %q: %s given twice", s, dim)
		}
		seen[dim] = true
		*p = n
	}
	return l, nil
}

// String returns the compact form ParseLoss reads.
func (l Loss) String() string {
	var parts []string
	for _, d := range dimensions {
		if n := d.count(l); n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", d.name, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// Covers reports whether l demands at least as much as o in every
// dimension: replacing o by l does not weaken a policy.
func (l Loss) Covers(o Loss) bool {
	return l.Sites >= o.Sites && l.Providers >= o.Providers &&
		l.Jurisdictions >= o.Jurisdictions && l.Controls >= o.Controls
}

// Policy is a vault's placement policy.
type Policy struct {
	// K and M are the data and parity shard counts.
	K, M int
	// Survive names the losses every object must survive.
	Survive Loss
	// OutsideHome demands that the data survive the total loss of Home:
	// at least K shards sit on sites outside that jurisdiction.
	OutsideHome bool
	// Home is the owner nation (ISO 3166-1 alpha-3).
	Home string
	// Allowed lists the jurisdictions where shards may physically sit.
	// Empty allows all.
	Allowed []string
	// MinRank excludes sites accredited below this rank (see
	// Candidate.Rank). Zero admits every site.
	MinRank int
}

// N returns the number of shards, K+M.
func (p Policy) N() int { return p.K + p.M }

// Validate checks the policy's own numbers, without looking at sites.
func (p Policy) Validate() error {
	if p.K < 1 || p.M < 0 || p.K+p.M > 64 {
		return fmt.Errorf("erasure %d+%d: need k >= 1, m >= 0 and k+m <= 64", p.K, p.M)
	}
	if p.OutsideHome && p.Home == "" {
		return fmt.Errorf("outside-home needs the owner nation")
	}
	for _, d := range dimensions {
		if n := d.count(p.Survive); n > 0 && p.M == 0 {
			return fmt.Errorf("surviving the loss of %d %s needs parity shards, but m is 0", n, d.name)
		}
	}
	return nil
}

// ParseErasure parses "k+m", e.g. "4+2".
func ParseErasure(s string) (k, m int, err error) {
	a, b, ok := strings.Cut(s, "+")
	if !ok {
		return 0, 0, fmt.Errorf("erasure %q: want k+m, e.g. 4+2", s)
	}
	k, err1 := strconv.Atoi(strings.TrimSpace(a))
	m, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || k < 1 || m < 0 || k+m > 64 {
		return 0, 0, fmt.Errorf("erasure %q: want k+m with k >= 1, m >= 0, k+m <= 64", s)
	}
	return k, m, nil
}
