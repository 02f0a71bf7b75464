package placement

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"

	"github.com/embassy-dev/embassy/site"
)

// Candidate is a site that placement may choose.
type Candidate struct {
	site.Descriptor
	// Rank is the site's accreditation rank, comparable with
	// Policy.MinRank (higher means accredited for more).
	Rank int
	// Down marks a site that is unavailable now: it is not chosen.
	Down bool
}

// dimension is one kind of failure domain.
type dimension struct {
	name  string // plural, as in the policy syntax
	one   string // singular, for messages
	count func(Loss) int
	group func(site.Descriptor) string
}

var dimensions = []dimension{
	{"sites", "site", func(l Loss) int { return l.Sites }, func(d site.Descriptor) string { return d.ID }},
	{"providers", "provider", func(l Loss) int { return l.Providers }, func(d site.Descriptor) string { return d.Provider }},
	{"jurisdictions", "jurisdiction", func(l Loss) int { return l.Jurisdictions }, func(d site.Descriptor) string { return d.Jurisdiction }},
	{"controls", "controlling jurisdiction", func(l Loss) int { return l.Controls }, func(d site.Descriptor) string { return d.Control }},
}

// ErrInfeasible is returned when no assignment of shards to the eligible
// sites keeps the policy. The error's text names the constraint and the
// sites involved; the caller should show it to the operator, who must add
// sites or relax the policy.
var ErrInfeasible = errors.New("placement policy cannot be satisfied")

// Violation describes one way an assignment fails a policy.
type Violation struct {
	Constraint string // e.g. "survive the loss of any 1 jurisdiction"
	Detail     string // e.g. "jurisdiction EST holds 3 of 6 shards; at most 2 may be lost"
}

func (v Violation) String() string { return v.Constraint + ": " + v.Detail }

// Check returns the constraints that the assignment (the site of each
// shard, in shard order) violates. An empty result means every scenario
// named by the policy leaves at least K shards.
func Check(p Policy, assign []site.Descriptor) []Violation {
	var out []Violation
	if len(assign) != p.N() {
		return []Violation{{"shard count", fmt.Sprintf("%d shards placed, policy needs %d", len(assign), p.N())}}
	}
	for _, d := range dimensions {
		n := d.count(p.Survive)
		if n == 0 {
			continue
		}
		counts := map[string]int{}
		for _, s := range assign {
			counts[d.group(s)]++
		}
		if lost, worst := worstLoss(counts, n); lost > p.M {
			out = append(out, Violation{
				Constraint: fmt.Sprintf("survive the loss of any %d %s", n, plural(n, d.one, d.name)),
				Detail:     fmt.Sprintf("losing %s loses %d of %d shards, at most %d may be lost", describeGroups(d.one, worst, counts), lost, p.N(), p.M),
			})
		}
	}
	if p.OutsideHome {
		home := 0
		for _, s := range assign {
			if s.Jurisdiction == p.Home {
				home++
			}
		}
		if home > p.M {
			out = append(out, Violation{
				Constraint: "survive the loss of the home jurisdiction " + p.Home,
				Detail:     fmt.Sprintf("%d of %d shards are in %s, at most %d may be", home, p.N(), p.Home, p.M),
			})
		}
	}
	allowed := allowedSet(p)
	for i, s := range assign {
		if allowed != nil && !allowed[s.Jurisdiction] {
			out = append(out, Violation{"allowed jurisdictions " + strings.Join(p.Allowed, ","), fmt.Sprintf("shard %d is on %s in %s", i, s.ID, s.Jurisdiction)})
		}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func describeGroups(kind string, groups []string, counts map[string]int) string {
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = fmt.Sprintf("%s %s (%d)", kind, g, counts[g])
	}
	return strings.Join(parts, " and ")
}

// worstLoss returns the number of shards lost when the n groups holding
// the most shards are lost, and those groups.
func worstLoss(counts map[string]int, n int) (int, []string) {
	type gc struct {
		g string
		c int
	}
	var all []gc
	for g, c := range counts {
		all = append(all, gc{g, c})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].c != all[j].c {
			return all[i].c > all[j].c
		}
		return all[i].g < all[j].g
	})
	lost := 0
	var worst []string
	for i := 0; i < n && i < len(all); i++ {
		lost += all[i].c
		worst = append(worst, all[i].g)
	}
	return lost, worst
}

// topSum returns the number of shards lost when the n groups holding the
// most shards are lost: worstLoss's count, without naming the groups. The
// search asks it at every node it visits, so it allocates nothing and
// sorts nothing for the few groups a policy names at once.
func topSum(counts map[string]int, n int) int {
	var top [4]int // the largest counts seen, in descending order
	if n > len(top) {
		lost, _ := worstLoss(counts, n)
		return lost
	}
	for _, c := range counts {
		for i := range n {
			if c > top[i] {
				copy(top[i+1:n], top[i:n-1])
				top[i] = c
				break
			}
		}
	}
	lost := 0
	for _, c := range top[:n] {
		lost += c
	}
	return lost
}

func allowedSet(p Policy) map[string]bool {
	if len(p.Allowed) == 0 {
		return nil
	}
	m := map[string]bool{}
	for _, j := range p.Allowed {
		m[j] = true
	}
	return m
}

// eligible filters candidates by the policy's static rules and availability.
func eligible(p Policy, cands []Candidate) []Candidate {
	allowed := allowedSet(p)
	var out []Candidate
	for _, c := range cands {
		if c.Down || c.Connectivity == site.Isolated || c.Rank < p.MinRank {
			continue
		}
		if allowed != nil && !allowed[c.Jurisdiction] {
			continue
		}
		out = append(out, c)
	}
	return out
}

// score is the rendezvous hash of an object key and a site id.
func score(key []byte, id string) uint64 {
	h := fnv.New64a()
	h.Write(key)
	h.Write([]byte{0})
	h.Write([]byte(id))
	x := h.Sum64()
	// splitmix64 finaliser, so similar keys spread well.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// rank orders candidates by their rendezvous score for key, highest first,
// ties by ID. Each score is hashed once.
func rank(el []Candidate, key []byte) {
	type scored struct {
		s uint64
		c Candidate
	}
	sc := make([]scored, len(el))
	for i, c := range el {
		sc[i] = scored{score(key, c.ID), c}
	}
	slices.SortFunc(sc, func(a, b scored) int {
		if c := cmp.Compare(b.s, a.s); c != 0 {
			return c
		}
		return strings.Compare(a.c.ID, b.c.ID)
	})
	for i := range sc {
		el[i] = sc[i].c
	}
}

// Choose assigns the policy's K+M shards to sites for the object with the
// given key (any stable bytes, e.g. the version id) and returns the site id
// of each shard in shard order. The choice is deterministic for a key and a
// set of candidates, spreads keys over sites by rendezvous hashing, prefers
// one shard per site, and skips sites that are down; a result always passes
// Check. When no assignment exists it returns an error wrapping
// ErrInfeasible that says why.
func Choose(p Policy, cands []Candidate, key []byte) ([]string, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInfeasible, err)
	}
	el := eligible(p, cands)
	rank(el, key)
	if a := search(p, el, 1, 20_000); a != nil {
		return ids(el, a), nil
	}
	if a := greedy(p, el); a != nil {
		return ids(el, a), nil
	}
	if a := search(p, el, p.N(), 200_000); a != nil {
		return ids(el, a), nil
	}
	return nil, explain(p, cands, el)
}

func ids(el []Candidate, a []int) []string {
	out := make([]string, len(a))
	for i, j := range a {
		out[i] = el[j].ID
	}
	return out
}

// state tracks shard counts per failure domain for an incremental search.
type state struct {
	p      Policy
	el     []Candidate
	counts [4]map[string]int
	home   int
	perSit []int
}

func newState(p Policy, el []Candidate) *state {
	s := &state{p: p, el: el, perSit: make([]int, len(el))}
	for i := range s.counts {
		s.counts[i] = map[string]int{}
	}
	return s
}

func (s *state) add(i, delta int) {
	c := s.el[i]
	for d, dim := range dimensions {
		s.counts[d][dim.group(c.Descriptor)] += delta
	}
	if c.Jurisdiction == s.p.Home {
		s.home += delta
	}
	s.perSit[i] += delta
}

// excess returns the largest number of shards lost beyond M in any
// scenario (<= 0 means every scenario is survivable so far).
func (s *state) excess() int {
	worst := -s.p.M
	for d, dim := range dimensions {
		n := dim.count(s.p.Survive)
		if n == 0 {
			continue
		}
		worst = max(worst, topSum(s.counts[d], n)-s.p.M)
	}
	if s.p.OutsideHome {
		worst = max(worst, s.home-s.p.M)
	}
	return worst
}

// search runs a depth-first search over multisets of sites in rank order,
// at most cap shards per site, visiting at most budget nodes.
func search(p Policy, el []Candidate, cap, budget int) []int {
	n := p.N()
	st := newState(p, el)
	a := make([]int, 0, n)
	var rec func(from int) bool
	rec = func(from int) bool {
		if len(a) == n {
			return true
		}
		for i := from; i < len(el); i++ {
			if budget--; budget < 0 {
				return false
			}
			if st.perSit[i] >= cap {
				continue
			}
			st.add(i, 1)
			a = append(a, i)
			if st.excess() <= 0 && rec(i) {
				return true
			}
			a = a[:len(a)-1]
			st.add(i, -1)
		}
		return false
	}
	if rec(0) {
		return a
	}
	return nil
}

// greedy places shards one at a time where they raise the worst loss
// least, preferring emptier and higher-ranked sites.
func greedy(p Policy, el []Candidate) []int {
	if len(el) == 0 {
		return nil
	}
	st := newState(p, el)
	var a []int
	for range p.N() {
		best, bestEx, bestCount := -1, 0, 0
		for i := range el {
			st.add(i, 1)
			ex := st.excess()
			st.add(i, -1)
			if best < 0 || ex < bestEx || (ex == bestEx && st.perSit[i] < bestCount) {
				best, bestEx, bestCount = i, ex, st.perSit[i]
			}
		}
		st.add(best, 1)
		a = append(a, best)
	}
	if st.excess() > 0 {
		return nil
	}
	return a
}

// Feasible reports whether the policy can be kept on the candidates,
// ignoring their Down marks. It is what setting a policy checks.
func Feasible(p Policy, cands []Candidate) error {
	up := make([]Candidate, len(cands))
	for i, c := range cands {
		c.Down = false
		up[i] = c
	}
	_, err := Choose(p, up, []byte("feasibility"))
	return err
}

// explain builds the error for an infeasible policy: it tries each
// constraint alone to find the ones that cannot hold, and names the sites.
func explain(p Policy, all, el []Candidate) error {
	if len(el) == 0 {
		return fmt.Errorf("%w: no eligible sites (%s)", ErrInfeasible, whyIneligible(p, all))
	}
	var reasons []string
	single := func(q Policy) bool {
		return search(q, el, 1, 20_000) != nil || greedy(q, el) != nil || search(q, el, q.N(), 50_000) != nil
	}
	for _, d := range dimensions {
		n := d.count(p.Survive)
		if n == 0 {
			continue
		}
		q := p
		q.Survive, q.OutsideHome = Loss{}, false
		switch d.name {
		case "sites":
			q.Survive.Sites = n
		case "providers":
			q.Survive.Providers = n
		case "jurisdictions":
			q.Survive.Jurisdictions = n
		case "controls":
			q.Survive.Controls = n
		}
		if !single(q) {
			groups := map[string][]string{}
			for _, c := range el {
				g := d.group(c.Descriptor)
				groups[g] = append(groups[g], c.ID)
			}
			reasons = append(reasons, fmt.Sprintf(
				"surviving the loss of any %d %s with %d+%d needs the %d shards spread so that no %d %s hold more than %d, but the eligible sites span only %d %s: %s",
				n, plural(n, d.one, d.name), p.K, p.M, p.N(), n, plural(n, d.one, d.name), p.M,
				len(groups), plural(len(groups), d.one, d.name), describeSites(groups)))
		}
	}
	if p.OutsideHome {
		q := p
		q.Survive = Loss{}
		if !single(q) {
			reasons = append(reasons, fmt.Sprintf("surviving the loss of home jurisdiction %s needs at least %d shards outside it, but no eligible site is outside %s (eligible: %s)",
				p.Home, p.K, p.Home, siteList(el)))
		}
	}
	if len(reasons) == 0 {
		reasons = append(reasons, fmt.Sprintf("the constraints survive %s%s cannot all hold together on the eligible sites %s",
			p.Survive, map[bool]string{true: " and outside-home", false: ""}[p.OutsideHome], siteList(el)))
	}
	if n := len(all) - len(el); n > 0 {
		reasons = append(reasons, fmt.Sprintf("%d site(s) not eligible: %s", n, whyIneligible(p, all)))
	}
	return fmt.Errorf("%w: %s", ErrInfeasible, strings.Join(reasons, "; "))
}

func describeSites(groups map[string][]string) string {
	keys := make([]string, 0, len(groups))
	for g := range groups {
		keys = append(keys, g)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, g := range keys {
		parts[i] = g + ": " + strings.Join(slices.Sorted(slices.Values(groups[g])), ", ")
	}
	return strings.Join(parts, "; ")
}

func siteList(el []Candidate) string {
	var ids []string
	for _, c := range el {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	return strings.Join(ids, ", ")
}

func whyIneligible(p Policy, all []Candidate) string {
	allowed := allowedSet(p)
	var parts []string
	for _, c := range all {
		switch {
		case c.Down:
			parts = append(parts, c.ID+" is down")
		case c.Connectivity == site.Isolated:
			parts = append(parts, c.ID+" is isolated (offline transfer only)")
		case c.Rank < p.MinRank:
			parts = append(parts, c.ID+" is accredited below the data's classification")
		case allowed != nil && !allowed[c.Jurisdiction]:
			parts = append(parts, fmt.Sprintf("%s is in %s, outside the allowed jurisdictions %s", c.ID, c.Jurisdiction, strings.Join(p.Allowed, ",")))
		}
	}
	if len(parts) == 0 {
		return "no sites are configured"
	}
	return strings.Join(parts, "; ")
}

// Complete fills the open slots of a partial assignment (fixed[i] == ""
// means shard i needs a site) so that the whole keeps the policy, leaving
// the fixed slots where they are. It is how repair and drain choose sites
// for rebuilt shards while every intact shard stays put. Sites in fixed need
// not be candidates (a shard may stay on a site that is down for writes).
func Complete(p Policy, cands []Candidate, key []byte, fixed []string, sites map[string]site.Descriptor) ([]string, error) {
	if len(fixed) != p.N() {
		return nil, fmt.Errorf("%w: %d slots for %d shards", ErrInfeasible, len(fixed), p.N())
	}
	el := eligible(p, cands)
	rank(el, key)
	// Fixed sites join the state as extra candidates.
	all := append([]Candidate(nil), el...)
	index := map[string]int{}
	for i, c := range all {
		index[c.ID] = i
	}
	var open []int
	for i, id := range fixed {
		if id == "" {
			open = append(open, i)
			continue
		}
		if _, ok := index[id]; !ok {
			d, known := sites[id]
			if !known {
				return nil, fmt.Errorf("%w: shard %d is on unknown site %s", ErrInfeasible, i, id)
			}
			all = append(all, Candidate{Descriptor: d})
			index[id] = len(all) - 1
		}
	}
	st := newState(p, all)
	for _, id := range fixed {
		if id != "" {
			st.add(index[id], 1)
		}
	}
	if st.excess() > 0 {
		return nil, fmt.Errorf("%w: the shards kept in place already break the policy", ErrInfeasible)
	}
	out := slices.Clone(fixed)
	var budget int
	var rec func(k, cap int) bool
	rec = func(k, cap int) bool {
		if k == len(open) {
			return true
		}
		for i := range el {
			if budget--; budget < 0 {
				return false
			}
			if st.perSit[i] >= cap {
				continue
			}
			st.add(i, 1)
			out[open[k]] = el[i].ID
			if st.excess() <= 0 && rec(k+1, cap) {
				return true
			}
			st.add(i, -1)
		}
		return false
	}
	for cap := 1; cap <= p.N(); cap++ {
		budget = 50_000
		if rec(0, cap) {
			return out, nil
		}
	}
	return nil, explain(p, cands, el)
}
