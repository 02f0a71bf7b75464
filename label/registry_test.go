package label

import (
	"strings"
	"testing"
)

// estonia is a national policy with a full equivalence to NATO.
func estonia() Policy {
	return Policy{
		ID:      "EST",
		Levels:  []string{"PIIRATUD", "KONFIDENTSIAALNE", "SALAJANE", "TÄIESTI SALAJANE"},
		Aliases: map[string]string{"TS": "TÄIESTI SALAJANE"},
		Equivalents: map[string]map[string]string{"NATO": {
			"PIIRATUD":         "RESTRICTED",
			"KONFIDENTSIAALNE": "CONFIDENTIAL",
			"SALAJANE":         "SECRET",
			"täiesti salajane": "COSMIC TOP SECRET",
		}},
	}
}

// luxembourg is a national policy with only one level declared equivalent.
func luxembourg() Policy {
	return Policy{
		ID:            "LUX",
		Levels:        []string{"RESTREINT LUX", "CONFIDENTIEL LUX", "SECRET LUX", "TRES SECRET LUX"},
		Releasability: "ReleasableTo",
		Equivalents:   map[string]map[string]string{"NATO": {"SECRET LUX": "SECRET"}},
	}
}

func mustRegistry(t testing.TB, national ...Policy) *Registry {
	t.Helper()
	r, err := NewRegistry(national...)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return r
}

func mustLevel(t testing.TB, r *Registry, policy, name string) Level {
	t.Helper()
	lv, err := r.Level(policy, name)
	if err != nil {
		t.Fatalf("Level(%q, %q): %v", policy, name, err)
	}
	return lv
}

func TestNewRegistryErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(p *Policy)
		extra   []Policy
		wantErr string
	}{
		{"no id", func(p *Policy) { p.ID = "" }, nil, "policy 1: id: missing"},
		{"reuses NATO", func(p *Policy) { p.ID = "nato" }, nil, `policy "nato": id: already used by policy "NATO"`},
		{"duplicate id", func(*Policy) {}, []Policy{estonia()}, `policy "EST": id: already used by policy "EST"`},
		{"bad oid", func(p *Policy) { p.OID = "1.2.x" }, nil, `policy "EST": oid: "1.2.x" is not a dotted-decimal object identifier`},
		{"no levels", func(p *Policy) { p.Levels = nil }, nil, `policy "EST": levels: none given`},
		{"empty level", func(p *Policy) { p.Levels[1] = "" }, nil, "levels[1]: empty"},
		{"repeated level", func(p *Policy) { p.Levels[1] = "piiratud" }, nil, `levels[1]: "piiratud" repeats "PIIRATUD"`},
		{"alias to unknown level", func(p *Policy) { p.Aliases = map[string]string{"TOP": "ULTRA"} }, nil, `aliases["TOP"]: "ULTRA" is not one of the levels`},
		{"alias clashes with level", func(p *Policy) { p.Aliases = map[string]string{"SALAJANE": "PIIRATUD"} }, nil, `aliases["SALAJANE"]: clashes with "SALAJANE"`},
		{"bad releasability", func(p *Policy) { p.Releasability = " Rel" }, nil, "releasability:"},
		{"unknown equivalent policy", func(p *Policy) { p.Equivalents = map[string]map[string]string{"FRA": {"SALAJANE": "SECRET DEFENSE"}} }, nil, `policy "EST": equivalents: unknown policy "FRA"`},
		{"self equivalence", func(p *Policy) { p.Equivalents = map[string]map[string]string{"EST": {"SALAJANE": "SALAJANE"}} }, nil, "cannot be equivalent to itself"},
		{"unknown own level", func(p *Policy) { p.Equivalents["NATO"]["ULTRA"] = "SECRET" }, nil, `equivalents["NATO"]: "ULTRA" is not a level of EST`},
		{"unknown other level", func(p *Policy) { p.Equivalents["NATO"]["SALAJANE"] = "VERY SECRET" }, nil, `equivalents["NATO"]["SALAJANE"]: "VERY SECRET" is not a level of NATO`},
		{"order inverted", func(p *Policy) {
			p.Equivalents["NATO"]["KONFIDENTSIAALNE"] = "SECRET"
			p.Equivalents["NATO"]["SALAJANE"] = "CONFIDENTIAL"
		}, nil, `policies "EST" and "NATO": equivalents conflict`},
		{"two levels to one", func(p *Policy) { p.Equivalents["NATO"]["KONFIDENTSIAALNE"] = "SECRET" }, nil, "equivalents conflict"},
		{"conflict declared from the other side", func(*Policy) {}, []Policy{{
			ID: "FIN", Levels: []string{"KÄYTTÖ RAJOITETTU", "LUOTTAMUKSELLINEN"},
			Equivalents: map[string]map[string]string{"EST": {"LUOTTAMUKSELLINEN": "PIIRATUD", "KÄYTTÖ RAJOITETTU": "SALAJANE"}},
		}}, "equivalents conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := estonia()
			tt.edit(&p)
			_, err := NewRegistry(append([]Policy{p}, tt.extra...)...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewRegistry error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewRegistryDoesNotKeepCallerMaps(t *testing.T) {
	p := estonia()
	r := mustRegistry(t, p)
	p.Levels[0] = "CHANGED"
	p.Equivalents["NATO"]["SALAJANE"] = "UNCLASSIFIED"
	if _, err := r.Level("EST", "PIIRATUD"); err != nil {
		t.Fatalf("registry changed with the caller's policy: %v", err)
	}
	got, _ := r.Policy("est")
	if got.Equivalents["NATO"]["SALAJANE"] != "SECRET" {
		t.Fatal("Policy returned the caller's map")
	}
	if got.Releasability != DefaultReleasabilityTag {
		t.Fatalf("Releasability = %q, want the default", got.Releasability)
	}
	if ids := r.PolicyIDs(); len(ids) != 2 || ids[0] != "NATO" || ids[1] != "EST" {
		t.Fatalf("PolicyIDs = %v", ids)
	}
}

func TestLevelAndRank(t *testing.T) {
	r := mustRegistry(t, estonia())
	tests := []struct {
		policy, name string
		want         string // "POLICY LEVEL"
		rank         int
		wantErr      string
	}{
		{"NATO", "SECRET", "NATO SECRET", 3, ""},
		{"NATO", "NATO SECRET", "NATO SECRET", 3, ""},
		{"nato", "ns", "NATO SECRET", 3, ""},
		{"NATO", "UNCLASSIFIED", "NATO UNCLASSIFIED", 0, ""},
		{"NATO", "COSMIC TOP SECRET", "NATO COSMIC TOP SECRET", 4, ""},
		{"NATO", "TOP SECRET", "NATO COSMIC TOP SECRET", 4, ""},
		{"COSMIC", "TOP SECRET", "NATO COSMIC TOP SECRET", 4, ""},
		{"EST", "täiesti salajane", "EST TÄIESTI SALAJANE", 3, ""},
		{"EST", "TS", "EST TÄIESTI SALAJANE", 3, ""},
		{"NATO", "SUPER SECRET", "", 0, `policy NATO: unknown level "SUPER SECRET"`},
		{"FRA", "SECRET", "", 0, `unknown policy "FRA"`},
	}
	for _, tt := range tests {
		t.Run(tt.policy+" "+tt.name, func(t *testing.T) {
			lv, err := r.Level(tt.policy, tt.name)
			rank, rerr := r.Rank(tt.policy, tt.name)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Level error = %v, want %q", err, tt.wantErr)
				}
				if rerr == nil {
					t.Fatal("Rank: no error")
				}
				return
			}
			if err != nil || rerr != nil {
				t.Fatalf("Level: %v; Rank: %v", err, rerr)
			}
			if lv.String() != tt.want || lv.Rank != tt.rank || rank != tt.rank {
				t.Fatalf("Level = %s rank %d, Rank = %d; want %s rank %d", lv, lv.Rank, rank, tt.want, tt.rank)
			}
		})
	}
}

func TestLevelAmbiguousMarking(t *testing.T) {
	other := Policy{ID: "XYZ", Levels: []string{"COSMIC TOP SECRET"}}
	r := mustRegistry(t, other)
	if _, err := r.Level("COSMIC", "TOP SECRET"); err == nil || !strings.Contains(err.Error(), "more than one policy") {
		t.Fatalf("Level error = %v, want an ambiguity error", err)
	}
}

func TestDominates(t *testing.T) {
	r := mustRegistry(t, estonia(), luxembourg())
	tests := []struct {
		name           string
		clearance      [2]string
		classification [2]string
		want           bool
	}{
		{"higher in one policy", [2]string{"NATO", "SECRET"}, [2]string{"NATO", "CONFIDENTIAL"}, true},
		{"equal", [2]string{"NATO", "SECRET"}, [2]string{"NATO", "NATO SECRET"}, true},
		{"lower", [2]string{"NATO", "CONFIDENTIAL"}, [2]string{"NATO", "SECRET"}, false},
		{"national clearance, NATO label", [2]string{"EST", "SALAJANE"}, [2]string{"NATO", "SECRET"}, true},
		{"national clearance below", [2]string{"EST", "SALAJANE"}, [2]string{"NATO", "COSMIC TOP SECRET"}, false},
		{"NATO clearance, national label", [2]string{"NATO", "SECRET"}, [2]string{"EST", "SALAJANE"}, true},
		{"NATO clearance below national label", [2]string{"NATO", "CONFIDENTIAL"}, [2]string{"EST", "SALAJANE"}, false},
		{"above a partial equivalence", [2]string{"LUX", "TRES SECRET LUX"}, [2]string{"NATO", "SECRET"}, true},
		{"partial equivalence has no higher pair", [2]string{"LUX", "TRES SECRET LUX"}, [2]string{"NATO", "COSMIC TOP SECRET"}, false},
		{"no equivalence at or below", [2]string{"LUX", "CONFIDENTIEL LUX"}, [2]string{"NATO", "UNCLASSIFIED"}, false},
		{"no chaining through NATO", [2]string{"EST", "TÄIESTI SALAJANE"}, [2]string{"LUX", "RESTREINT LUX"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLevel(t, r, tt.clearance[0], tt.clearance[1])
			l := mustLevel(t, r, tt.classification[0], tt.classification[1])
			if got := r.Dominates(c, l); got != tt.want {
				t.Fatalf("Dominates(%s, %s) = %v, want %v", c, l, got, tt.want)
			}
		})
	}
	t.Run("levels of another registry", func(t *testing.T) {
		other := mustRegistry(t)
		c := mustLevel(t, other, "NATO", "COSMIC TOP SECRET")
		l := mustLevel(t, r, "NATO", "UNCLASSIFIED")
		if r.Dominates(c, l) || r.Dominates(Level{}, l) {
			t.Fatal("a foreign or zero Level dominates")
		}
	})
}

func TestNormalize(t *testing.T) {
	r := mustRegistry(t, estonia(), luxembourg())
	tests := []struct {
		name    string
		in      Label
		want    Label
		wantErr string
	}{
		{"canonical already", sample(), sample(), ""},
		{"aliases and case", Label{Policy: "nato", Classification: "NATO SECRET", Categories: []Category{
			{TagName: "ReleasableTo", Type: Permissive, Values: []string{"est", "Lux"}},
		}}, Label{Policy: "NATO", Classification: "SECRET", Categories: []Category{
			{TagName: "Releasable To", Type: Permissive, Values: []string{"EST", "LUX"}},
		}}, ""},
		{"head without policy", Label{Policy: "COSMIC", Classification: "TOP SECRET"}, Label{Policy: "NATO", Classification: "COSMIC TOP SECRET"}, ""},
		{"national releasability tag", Label{Policy: "LUX", Classification: "SECRET LUX", Categories: []Category{
			{TagName: "Releasable To", Type: Permissive, Values: []string{"BEL"}},
		}}, Label{Policy: "LUX", Classification: "SECRET LUX", Categories: []Category{
			{TagName: "ReleasableTo", Type: Permissive, Values: []string{"BEL"}},
		}}, ""},
		{"unknown policy", Label{Policy: "FRA", Classification: "SECRET DEFENSE"}, Label{}, `unknown policy "FRA"`},
		{"unknown level", Label{Policy: "NATO", Classification: "ULTRA"}, Label{}, `policy NATO: unknown level "ULTRA"`},
		{"structurally invalid", Label{Policy: "NATO"}, Label{}, "classification: missing"},
		{"restrictive releasability", Label{Policy: "NATO", Classification: "SECRET", Categories: []Category{
			{TagName: "Releasable To", Type: Restrictive, Values: []string{"EST"}},
		}}, Label{}, "releasability must be PERMISSIVE, not RESTRICTIVE"},
		{"not a nation code", Label{Policy: "NATO", Classification: "SECRET", Categories: []Category{
			{TagName: "Releasable To", Type: Permissive, Values: []string{"EST", "ESTONIA"}},
		}}, Label{}, `"ESTONIA" is not an ISO 3166-1 alpha-3 country code`},
		{"two spellings of releasability", Label{Policy: "NATO", Classification: "SECRET", Categories: []Category{
			{TagName: "Releasable To", Type: Permissive, Values: []string{"EST"}},
			{TagName: "ReleasableTo", Type: Permissive, Values: []string{"LUX"}},
		}}, Label{}, `category "Releasable To": appears twice`},
		{"values equal once upper-cased", Label{Policy: "NATO", Classification: "SECRET", Categories: []Category{
			{TagName: "Releasable To", Type: Permissive, Values: []string{"est", "EST"}},
		}}, Label{}, `value "EST" appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.in.Clone()
			got, err := r.Normalize(tt.in)
			if !tt.in.Equal(before) {
				t.Fatal("Normalize modified its argument")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Normalize error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("Normalize = %q, want %q", got, tt.want)
			}
			again, err := r.Normalize(got)
			if err != nil || !again.Equal(got) {
				t.Fatalf("Normalize is not idempotent: %q, %v", again, err)
			}
		})
	}
}

func TestIsReleasability(t *testing.T) {
	r := mustRegistry(t, luxembourg())
	tests := []struct {
		policy, tag string
		want        bool
	}{
		{"NATO", "Releasable To", true},
		{"NATO", "ReleasableTo", true},
		{"nato", "releasable  to", true},
		{"NATO", "Releasable", false},
		{"NATO", "Releasable To EST", false},
		{"LUX", "Releasable To", true},
		{"FRA", "Releasable To", false},
	}
	for _, tt := range tests {
		if got := r.IsReleasability(tt.policy, tt.tag); got != tt.want {
			t.Errorf("IsReleasability(%q, %q) = %v, want %v", tt.policy, tt.tag, got, tt.want)
		}
	}
}

func TestNATOIsFresh(t *testing.T) {
	p := NATO()
	p.Aliases["NS"] = "UNCLASSIFIED"
	if NATO().Aliases["NS"] != "SECRET" {
		t.Fatal("NATO() shares its alias map between calls")
	}
}
