package placement

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/site"
)

func cand(id, jur, prov, ctl string) Candidate {
	return Candidate{Descriptor: site.Descriptor{ID: id, Jurisdiction: jur, Provider: prov, Control: ctl}}
}

// six is the demo topology: six sites in three jurisdictions on two
// providers, one of them controlled from abroad.
func six() []Candidate {
	return []Candidate{
		cand("est-1", "EST", "gov-dc", "EST"),
		cand("est-2", "EST", "cloudco", "USA"),
		cand("lux-1", "LUX", "gov-dc", "EST"),
		cand("lux-2", "LUX", "cloudco", "USA"),
		cand("fin-1", "FIN", "gov-dc", "EST"),
		cand("fin-2", "FIN", "cloudco", "USA"),
	}
}

func mustLoss(t *testing.T, s string) Loss {
	t.Helper()
	l, err := ParseLoss(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestFeasibility(t *testing.T) {
	cases := []struct {
		name    string
		k, m    int
		survive string
		outside bool
		allowed []string
		cands   []Candidate
		wantErr []string // substrings of the error; nil means feasible
	}{
		{"4+2 any two sites", 4, 2, "sites=2", false, nil, six(), nil},
		{"4+2 one jurisdiction", 4, 2, "jurisdictions=1", false, nil, six(), nil},
		{"4+2 one jurisdiction and one of two providers", 4, 2, "jurisdictions=1,providers=1", true, nil, six(), []string{"any 1 provider", "span only 2 providers", "cloudco: est-2, fin-2, lux-2"}},
		{"3+3 one jurisdiction and one provider", 3, 3, "jurisdictions=1,providers=1", true, nil, six(), nil},
		{"4+2 outside home", 4, 2, "", true, nil, six(), nil},
		{"4+2 one controlling jurisdiction", 4, 2, "controls=1", false, nil, six(), []string{"controlling jurisdiction", "EST: est-1, fin-1, lux-1", "USA: est-2, fin-2, lux-2"}},
		{"3+3 one controlling jurisdiction", 3, 3, "controls=1", false, nil, six(), nil},
		{"4+2 two jurisdictions", 4, 2, "jurisdictions=2", false, nil, six(), []string{"any 2 jurisdictions", "span only 3 jurisdictions"}},
		{"2+4 two jurisdictions", 2, 4, "jurisdictions=2", false, nil, six(), nil},
		{"4+2 three sites lost", 4, 2, "sites=3", false, nil, six(), []string{"any 3 sites"}},
		{"outside home with only home sites", 4, 2, "", true, []string{"EST"}, six(), []string{"home jurisdiction EST", "4 shards outside"}},
		{"allowed excludes everything", 4, 2, "", false, []string{"DEU"}, six(), []string{"no eligible sites", "outside the allowed jurisdictions DEU"}},
		{"4+2 on three sites two per site", 4, 2, "sites=1", false, nil, six()[:3], nil},
		{"4+2 on three sites lose two", 4, 2, "sites=2", false, nil, six()[:3], []string{"any 2 sites"}},
		{"no parity cannot survive", 4, 0, "sites=1", false, nil, six(), []string{"needs parity"}},
		{"4+2 jurisdiction with allowed two", 4, 2, "jurisdictions=1", false, []string{"EST", "LUX"}, six(), []string{"span only 2 jurisdictions", "EST: est-1, est-2", "LUX: lux-1, lux-2", "fin-1 is in FIN, outside the allowed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Policy{K: tc.k, M: tc.m, Survive: mustLoss(t, tc.survive), OutsideHome: tc.outside, Home: "EST", Allowed: tc.allowed}
			err := Feasible(p, tc.cands)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("feasible policy rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInfeasible) {
				t.Fatalf("err = %v, want ErrInfeasible", err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func byID(cands []Candidate) map[string]site.Descriptor {
	m := map[string]site.Descriptor{}
	for _, c := range cands {
		m[c.ID] = c.Descriptor
	}
	return m
}

func TestChooseKeepsPolicyAndSpreads(t *testing.T) {
	p := Policy{K: 4, M: 2, Survive: Loss{Jurisdictions: 1, Sites: 2}, OutsideHome: true, Home: "EST"}
	cands := append(six(), cand("est-3", "EST", "telco", "LUX"), cand("lux-3", "LUX", "telco", "LUX"), cand("fin-3", "FIN", "telco", "LUX"))
	sites := byID(cands)
	use := map[string]int{}
	for i := range 2000 {
		a, err := Choose(p, cands, fmt.Appendf(nil, "object-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		var descs []site.Descriptor
		for _, id := range a {
			descs = append(descs, sites[id])
			use[id]++
		}
		if v := Check(p, descs); len(v) > 0 {
			t.Fatalf("Choose returned %v violating %v", a, v)
		}
		again, _ := Choose(p, cands, fmt.Appendf(nil, "object-%d", i))
		if !slices.Equal(a, again) {
			t.Fatalf("Choose not deterministic: %v then %v", a, again)
		}
	}
	// 2000 objects x 6 shards over 9 sites, two per jurisdiction, is
	// about 1333 a site; rendezvous hashing must not starve or flood any.
	for id, n := range use {
		if n < 1100 || n > 1600 {
			t.Errorf("site %s got %d shards; uses: %v", id, n, use)
		}
	}
	if len(use) != len(cands) {
		t.Errorf("only %d of %d sites used: %v", len(use), len(cands), slices.Sorted(maps.Keys(use)))
	}
}

func TestChooseAvoidsDownSites(t *testing.T) {
	p := Policy{K: 4, M: 2, Survive: Loss{Sites: 1}}
	cands := append(six(), cand("deu-1", "DEU", "gov-dc", "DEU"))
	cands[0].Down = true
	for i := range 200 {
		a, err := Choose(p, cands, fmt.Appendf(nil, "k%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(a, "est-1") {
			t.Fatalf("down site chosen: %v", a)
		}
	}
	// With two sites down and jurisdiction loss demanded, only four sites
	// in two jurisdictions remain: the write must fail and say why.
	p.Survive = Loss{Jurisdictions: 1}
	c2 := six()
	c2[0].Down, c2[1].Down = true, true
	_, err := Choose(p, c2, []byte("x"))
	if !errors.Is(err, ErrInfeasible) || !strings.Contains(err.Error(), "est-1 is down") {
		t.Fatalf("err = %v, want infeasible naming the down site", err)
	}
}

func TestChooseRespectsAccreditation(t *testing.T) {
	cands := six()
	for i := range cands {
		cands[i].Rank = 3 // SECRET
	}
	cands[2].Rank, cands[3].Rank = 1, 1 // lux sites: RESTRICTED only
	p := Policy{K: 2, M: 2, Survive: Loss{Sites: 1}, MinRank: 3}
	for i := range 100 {
		a, err := Choose(p, cands, fmt.Appendf(nil, "k%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(a, "lux-1") || slices.Contains(a, "lux-2") {
			t.Fatalf("shard placed on a site accredited below the data: %v", a)
		}
	}
}

func TestCheckNamesViolation(t *testing.T) {
	p := Policy{K: 4, M: 2, Survive: Loss{Jurisdictions: 1}, OutsideHome: true, Home: "EST"}
	s := byID(six())
	assign := []site.Descriptor{s["est-1"], s["est-2"], s["est-1"], s["lux-1"], s["lux-2"], s["fin-1"]}
	v := Check(p, assign)
	if len(v) != 2 {
		t.Fatalf("violations = %v, want jurisdiction and home", v)
	}
	if !strings.Contains(v[0].String(), "jurisdiction EST (3)") {
		t.Errorf("violation %q does not name EST holding 3", v[0])
	}
}

func TestParseLoss(t *testing.T) {
	cases := []struct {
		in      string
		want    Loss
		wantErr string
	}{
		{"jurisdictions=1,providers=1", Loss{Jurisdictions: 1, Providers: 1}, ""},
		{" site = 2 ", Loss{Sites: 2}, ""},
		{"none", Loss{}, ""},
		{"controls=1", Loss{Controls: 1}, ""},
		{"planets=1", Loss{}, "unknown dimension"},
		{"sites", Loss{}, "not dimension=count"},
		{"sites=-1", Loss{}, "whole number"},
		{"sites=1,sites=2", Loss{}, "given twice"},
	}
	for _, tc := range cases {
		got, err := ParseLoss(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseLoss(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseLoss(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if back, err := ParseLoss(got.String()); err != nil || back != got {
			t.Errorf("round trip of %q: %+v, %v", tc.in, back, err)
		}
	}
}

func FuzzParseLoss(f *testing.F) {
	for _, s := range []string{"jurisdictions=1,providers=1", "sites=2", "none", "", "controls=1,sites=0", "x=1", "sites=99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLoss(s)
		if err != nil {
			return
		}
		back, err := ParseLoss(l.String())
		if err != nil || back != l {
			t.Fatalf("%q parsed as %+v, whose form %q re-parses as %+v, %v", s, l, l.String(), back, err)
		}
	})
}

func FuzzParseErasure(f *testing.F) {
	for _, s := range []string{"4+2", "1+0", "64+0", "+", "a+b", "10+60"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, m, err := ParseErasure(s)
		if err != nil {
			return
		}
		if k < 1 || m < 0 || k+m > 64 {
			t.Fatalf("ParseErasure(%q) accepted %d+%d", s, k, m)
		}
	})
}

func TestCompleteKeepsFixedShards(t *testing.T) {
	p := Policy{K: 4, M: 2, Survive: Loss{Jurisdictions: 1}, OutsideHome: true, Home: "EST"}
	cands := append(six(), cand("fin-3", "FIN", "telco", "FIN"), cand("lux-3", "LUX", "telco", "LUX"))
	sites := byID(cands)
	// fin-1 and lux-1 lost their shards (slots 2 and 4) and are being drained.
	fixed := []string{"est-1", "est-2", "", "lux-2", "", "fin-2"}
	cands[2].Down, cands[4].Down = true, true
	out, err := Complete(p, cands, []byte("k"), fixed, sites)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range fixed {
		if id != "" && out[i] != id {
			t.Fatalf("fixed shard %d moved from %s to %s", i, id, out[i])
		}
	}
	var descs []site.Descriptor
	for _, id := range out {
		descs = append(descs, sites[id])
	}
	if v := Check(p, descs); len(v) > 0 {
		t.Fatalf("completed assignment %v violates %v", out, v)
	}
	if slices.Contains(out, "fin-1") || slices.Contains(out, "lux-1") {
		t.Fatalf("a down site was chosen: %v", out)
	}
	// Kept shards that already break the policy are reported.
	bad := []string{"est-1", "est-2", "est-1", "", "", ""}
	if _, err := Complete(p, six(), []byte("k"), bad, byID(six())); !errors.Is(err, ErrInfeasible) {
		t.Fatalf("kept shards breaking the policy: %v", err)
	}
}

// TestTopSumIsWorstLoss: the search's count of the shards lost in the worst
// scenario is worstLoss's, for any counts (zeros and ties included) and any
// number of groups lost, so that Choose and Complete place every object
// where they placed it before topSum.
func TestTopSumIsWorstLoss(t *testing.T) {
	x := uint32(1)
	next := func(n int) int {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		return int(x % uint32(n))
	}
	for trial := range 20_000 {
		counts := map[string]int{}
		for g := range next(9) {
			counts[fmt.Sprintf("g%d", g)] = next(5)
		}
		n := 1 + trial%7
		want, _ := worstLoss(counts, n)
		if got := topSum(counts, n); got != want {
			t.Fatalf("counts %v, %d lost: topSum %d, worstLoss %d", counts, n, got, want)
		}
	}
}

// BenchmarkChoose is a small put's placement: 4+2 on the six sites of a
// development node, surviving the loss of any one jurisdiction, a new key
// each time. Compare ns/op and allocs/op between commits.
//
//	go test -run '^$' -bench Choose -benchmem ./placement/
func BenchmarkChoose(b *testing.B) {
	p := Policy{K: 4, M: 2, Survive: Loss{Jurisdictions: 1}}
	cands := six()
	key := make([]byte, 16)
	i := 0
	for b.Loop() {
		key[0], key[1], key[2] = byte(i), byte(i>>8), byte(i>>16)
		if _, err := Choose(p, cands, key); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
