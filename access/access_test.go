package access

import (
	"errors"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/label"
)

func registry(t testing.TB) *label.Registry {
	t.Helper()
	reg, err := label.NewRegistry(
		label.Policy{
			ID:     "EST",
			Levels: []string{"PIIRATUD", "KONFIDENTSIAALNE", "SALAJANE", "TÄIESTI SALAJANE"},
			Equivalents: map[string]map[string]string{"NATO": {
				"PIIRATUD": "RESTRICTED", "KONFIDENTSIAALNE": "CONFIDENTIAL",
				"SALAJANE": "SECRET", "TÄIESTI SALAJANE": "COSMIC TOP SECRET",
			}},
		},
		label.Policy{
			ID:     "LUX",
			Levels: []string{"RESTREINT LUX", "CONFIDENTIEL LUX", "SECRET LUX", "TRES SECRET LUX"},
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func parse(t testing.TB, s string) label.Label {
	t.Helper()
	l, err := label.ParseText(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// analyst holds NATO SECRET, compartment ALPHA and mission BALTIC GUARD.
func analyst() Principal {
	return Principal{
		Name:       "kadri",
		Nation:     "EST",
		Clearances: map[string]string{"NATO": "SECRET"},
		Categories: map[string][]string{"Compartment": {"ALPHA"}, "Mission": {"BALTIC GUARD"}},
	}
}

const fullLabel = "NATO SECRET//REL TO EST, LUX, USA//RESTRICTIVE Compartment: ALPHA" +
	"//PERMISSIVE Mission: BALTIC GUARD, NORTHERN STAR//INFORMATIVE Handling: EXERCISE"

func TestCanRead(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(p *Principal)
		owner  string
		label  string
		want   Reason // 0: allowed
		detail string
	}{
		{"releasable nation reads", nil, "LUX", fullLabel, 0, ""},
		{"owner nation reads without being listed", func(p *Principal) { p.Nation = "FRA" }, "FRA", fullLabel, 0, ""},
		{"owner nationals only without a releasability list", nil, "EST", "NATO SECRET", 0, ""},
		{"other nation without a releasability list", nil, "LUX", "NATO SECRET", ReasonNation, "nation EST is not the owner LUX and the label has no releasability list"},
		{"wrong nation", func(p *Principal) { p.Nation = "RUS" }, "LUX", fullLabel, ReasonNation, "nation RUS is not the owner LUX and not in the releasability list EST, LUX, USA"},
		{"clearance too low", func(p *Principal) { p.Clearances["NATO"] = "CONFIDENTIAL" }, "LUX", fullLabel, ReasonClearance, "label is NATO SECRET; holds NATO CONFIDENTIAL, none of which dominates it"},
		{"no clearance", func(p *Principal) { p.Clearances = nil }, "LUX", fullLabel, ReasonClearance, "no clearances held"},
		{"clearance only in an unrelated policy", func(p *Principal) { p.Clearances = map[string]string{"LUX": "TRES SECRET LUX"} }, "LUX", fullLabel, ReasonClearance, "holds LUX TRES SECRET LUX"},
		{"higher clearance reads", func(p *Principal) { p.Clearances["NATO"] = "COSMIC TOP SECRET" }, "LUX", fullLabel, 0, ""},
		{"clearance by alias", func(p *Principal) { p.Clearances = map[string]string{"nato": "NATO SECRET"} }, "LUX", fullLabel, 0, ""},
		{"classification by alias", nil, "LUX", "NATO NS//REL TO EST", 0, ""},
		{"head without policy keeps its releasability", func(p *Principal) { p.Clearances["NATO"] = "CTS" }, "LUX", "COSMIC TOP SECRET//REL TO EST", 0, ""},
		{"equivalent national clearance reads NATO label", func(p *Principal) { p.Clearances = map[string]string{"EST": "SALAJANE"} }, "LUX", fullLabel, 0, ""},
		{"equivalent national clearance too low", func(p *Principal) { p.Clearances = map[string]string{"EST": "KONFIDENTSIAALNE"} }, "LUX", fullLabel, ReasonClearance, "holds EST KONFIDENTSIAALNE"},
		{"NATO clearance reads equivalent national label", nil, "EST", "EST SALAJANE", 0, ""},
		{"NATO clearance below national label", nil, "EST", "EST TÄIESTI SALAJANE", ReasonClearance, "label is EST TÄIESTI SALAJANE"},
		{"missing restrictive value", nil, "LUX", "NATO SECRET//REL TO EST//RESTRICTIVE Compartment: ALPHA, BRAVO, CHARLIE", ReasonRestrictive, `category "Compartment": value(s) BRAVO, CHARLIE not held`},
		{"restrictive category not held at all", func(p *Principal) { delete(p.Categories, "Compartment") }, "LUX", fullLabel, ReasonRestrictive, `category "Compartment": value(s) ALPHA not held`},
		{"restrictive tag matched exactly", func(p *Principal) {
			p.Categories = map[string][]string{"compartment": {"ALPHA"}, "Mission": {"BALTIC GUARD"}}
		}, "LUX", fullLabel, ReasonRestrictive, `"Compartment"`},
		{"missing permissive category", func(p *Principal) { delete(p.Categories, "Mission") }, "LUX", fullLabel, ReasonPermissive, `category "Mission": none of BALTIC GUARD, NORTHERN STAR held`},
		{"one permissive value is enough", func(p *Principal) { p.Categories["Mission"] = []string{"NORTHERN STAR", "OTHER"} }, "LUX", fullLabel, 0, ""},
		{"informative category has no effect", nil, "LUX", "NATO SECRET//REL TO EST//INFORMATIVE Handling: EXERCISE, DRILL", 0, ""},
		{"unknown policy fails closed", nil, "EST", "FRA SECRET DEFENSE", ReasonLabel, `unknown policy "FRA"`},
		{"unknown level fails closed", func(p *Principal) { p.Clearances["NATO"] = "COSMIC TOP SECRET" }, "EST", "NATO ULTRA", ReasonLabel, `unknown level "ULTRA"`},
		{"invalid principal nation", func(p *Principal) { p.Nation = "est" }, "est", "NATO UNCLASSIFIED", ReasonPrincipal, `nation "est"`},
		{"releasability spelt without space", nil, "LUX", "NATO SECRET//PERMISSIVE ReleasableTo: EST", 0, ""},
		{"releasability in lower case", nil, "LUX", "NATO SECRET//PERMISSIVE releasable to: est, usa", 0, ""},
		{"two releasability lists must both list the nation", nil, "LUX", "NATO SECRET//REL TO EST//PERMISSIVE ReleasableTo: USA", ReasonNation, "EST, USA"},
		{"releasability typed restrictive is a restriction", nil, "LUX", "NATO SECRET//RESTRICTIVE Releasable To: EST", ReasonNation, "no releasability list"},
		{"clearance checked before nation", func(p *Principal) { p.Nation = "RUS"; p.Clearances = nil }, "LUX", fullLabel, ReasonClearance, ""},
		{"nation checked before categories", func(p *Principal) { p.Nation = "RUS"; p.Categories = nil }, "LUX", fullLabel, ReasonNation, ""},
	}
	d := NewDecider(registry(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := analyst()
			if tt.edit != nil {
				tt.edit(&p)
			}
			err := d.CanRead(p, tt.owner, parse(t, tt.label))
			checkDecision(t, err, tt.want, tt.detail)
		})
	}
}

func checkDecision(t *testing.T, err error, want Reason, detail string) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("denied: %v", err)
		}
		return
	}
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("error %v does not wrap ErrDenied", err)
	}
	de, ok := errors.AsType[*DeniedError](err)
	if !ok {
		t.Fatalf("error %v is not a *DeniedError", err)
	}
	if de.Reason != want {
		t.Fatalf("reason = %s, want %s (%v)", de.Reason, want, err)
	}
	if !strings.Contains(err.Error(), detail) || !strings.Contains(err.Error(), want.String()) {
		t.Fatalf("error %q does not name %q and %q", err, want, detail)
	}
}

func TestCanWriteLabel(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(p *Principal)
		label  string
		want   Reason
		detail string
	}{
		{"at own clearance", nil, fullLabel, 0, ""},
		{"below own clearance", nil, "NATO RESTRICTED", 0, ""},
		{"above own clearance", nil, "COSMIC TOP SECRET", ReasonClearance, "label is NATO COSMIC TOP SECRET"},
		{"by equivalent clearance", func(p *Principal) { p.Clearances = map[string]string{"EST": "SALAJANE"} }, "NATO SECRET", 0, ""},
		{"restrictive category not held", nil, "NATO SECRET//RESTRICTIVE Compartment: BRAVO", ReasonRestrictive, "BRAVO"},
		{"permissive category not held", nil, "NATO SECRET//PERMISSIVE Mission: OTHER", ReasonPermissive, "OTHER"},
		{"releasable only to others is writable", nil, "NATO SECRET//REL TO USA", 0, ""},
	}
	d := NewDecider(registry(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := analyst()
			if tt.edit != nil {
				tt.edit(&p)
			}
			checkDecision(t, d.CanWriteLabel(p, parse(t, tt.label)), tt.want, tt.detail)
		})
	}
	t.Run("invalid label is not a denial", func(t *testing.T) {
		for _, s := range []string{"FRA SECRET", "NATO SECRET//REL TO ESTONIA"} {
			err := d.CanWriteLabel(analyst(), parse(t, s))
			if err == nil || errors.Is(err, ErrDenied) {
				t.Fatalf("CanWriteLabel(%q) = %v, want a non-denial error", s, err)
			}
		}
	})
}

// TestCanReadAllowsWithoutAllocating guards the cost of the decision.
func TestCanReadAllowsWithoutAllocating(t *testing.T) {
	d := NewDecider(registry(t))
	p := analyst()
	p.Clearances["EST"] = "KONFIDENTSIAALNE"
	l := parse(t, fullLabel)
	if err := d.CanRead(p, "LUX", l); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = d.CanRead(p, "LUX", l) }); n != 0 {
		t.Fatalf("CanRead allocates %v times when it allows", n)
	}
}

func BenchmarkCanRead(b *testing.B) {
	d := NewDecider(registry(b))
	p := analyst()
	p.Clearances["EST"] = "KONFIDENTSIAALNE"
	l := parse(b, fullLabel)
	b.ReportAllocs()
	for b.Loop() {
		if err := d.CanRead(p, "LUX", l); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNewDeciderNil(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewDecider(nil) did not panic")
		}
	}()
	NewDecider(nil)
}
