package taxii

import (
	"errors"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/label"
)

func TestMarkingsLevel(t *testing.T) {
	const statement = "marking-definition--0693b0af-4746-4438-a437-8e423ec07442"
	const stranger = "marking-definition--1693b0af-4746-4438-a437-8e423ec07442"
	m := Markings{Default: TLPAmberStrict, Statements: []string{statement}}
	cases := []struct {
		name string
		refs []string
		m    Markings
		want TLP
		err  string
	}{
		{"none: the default", nil, m, TLPAmberStrict, ""},
		{"TLP 2.0 clear", []string{TLP2Clear}, m, TLPClear, ""},
		{"TLP 2.0 green", []string{TLP2Green}, m, TLPGreen, ""},
		{"TLP 2.0 amber", []string{TLP2Amber}, m, TLPAmber, ""},
		{"TLP 2.0 amber+strict", []string{TLP2AmberStrict}, m, TLPAmberStrict, ""},
		{"TLP 2.0 red", []string{TLP2Red}, m, TLPRed, ""},
		{"TLP 1.0 white", []string{TLP1White}, m, TLPClear, ""},
		{"TLP 1.0 green", []string{TLP1Green}, m, TLPGreen, ""},
		{"TLP 1.0 amber", []string{TLP1Amber}, m, TLPAmber, ""},
		{"TLP 1.0 red", []string{TLP1Red}, m, TLPRed, ""},
		{"most restrictive wins", []string{TLP2Clear, TLP2Red, TLP2Green}, m, TLPRed, ""},
		{"most restrictive wins across versions", []string{TLP1Amber, TLP2AmberStrict}, m, TLPAmberStrict, ""},
		{"a clear marking lowers the default", []string{TLP2Clear}, Markings{Default: TLPRed}, TLPClear, ""},
		{"statement alone: the default", []string{statement}, m, TLPAmberStrict, ""},
		{"statement and green", []string{statement, TLP2Green}, m, TLPGreen, ""},
		{"unknown marking refused", []string{TLP2Green, stranger}, m, TLPNone, stranger + " is neither a TLP marking nor a statement this collection knows"},
		{"unknown marking allowed", []string{stranger}, Markings{Default: TLPAmber, AllowUnknown: true}, TLPAmber, ""},
		{"unknown marking does not lower red", []string{TLP2Red, stranger}, Markings{Default: TLPClear, AllowUnknown: true}, TLPRed, ""},
		{"no marking and no default", nil, Markings{}, TLPNone, "no default"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.m.Level(c.refs)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrMarking) {
					t.Fatalf("got %v, %v; want an ErrMarking saying %q", got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// TestTLPLabels is the mapping table of docs/threat-intel.md, checked
// through the access decision every interface uses: which principals read
// an object of each level, owned by EST, in a collection whose community
// is LUX and FIN and whose AMBER peer is LUX, on a node with principals of
// EST, LUX, FIN and USA.
func TestTLPLabels(t *testing.T) {
	reg, _ := label.NewRegistry()
	base, _ := reg.ParseText("NATO UNCLASSIFIED")
	m := Mapping{Base: base, Community: []string{"LUX", "fin"}, Amber: []string{"LUX"}, Everyone: []string{"EST", "LUX", "FIN", "USA"}, Registry: reg}
	d := access.NewDecider(reg)
	who := func(nation string, red bool) access.Principal {
		p := access.Principal{Name: nation, Nation: nation, Clearances: map[string]string{"NATO": "UNCLASSIFIED"}}
		if red {
			p.Name += "+red"
			p.Categories = map[string][]string{"TLP": {"RED"}}
		}
		return p
	}
	principals := []access.Principal{who("EST", false), who("EST", true), who("LUX", false), who("LUX", true), who("FIN", false), who("USA", false), who("RUS", true)}
	cases := []struct {
		tlp     TLP
		label   string
		readers string
	}{
		{TLPClear, "NATO UNCLASSIFIED//REL TO EST, FIN, LUX, USA//INFORMATIVE TLP: CLEAR", "EST EST+red LUX LUX+red FIN USA"},
		{TLPGreen, "NATO UNCLASSIFIED//REL TO FIN, LUX//INFORMATIVE TLP: GREEN", "EST EST+red LUX LUX+red FIN"},
		{TLPAmber, "NATO UNCLASSIFIED//REL TO LUX//INFORMATIVE TLP: AMBER", "EST EST+red LUX LUX+red"},
		{TLPAmberStrict, "NATO UNCLASSIFIED//INFORMATIVE TLP: AMBER+STRICT", "EST EST+red"},
		{TLPRed, "NATO UNCLASSIFIED//RESTRICTIVE TLP: RED", "EST+red"},
	}
	for _, c := range cases {
		t.Run(c.tlp.String(), func(t *testing.T) {
			l, err := m.Label(c.tlp)
			if err != nil {
				t.Fatal(err)
			}
			if l.String() != c.label {
				t.Errorf("label %q, want %q", l.String(), c.label)
			}
			var readers []string
			for _, p := range principals {
				if d.CanRead(p, "EST", l) == nil {
					readers = append(readers, p.Name)
				}
			}
			if got := strings.Join(readers, " "); got != c.readers {
				t.Errorf("read by %q, want %q", got, c.readers)
			}
			// Nobody writes RED without holding it.
			if err := d.CanWriteLabel(who("EST", false), l); (err != nil) != (c.tlp == TLPRed) {
				t.Errorf("an EST principal without TLP: RED writing %s: %v", c.tlp, err)
			}
		})
	}
	if _, err := m.Label(TLPNone); err == nil {
		t.Error("a label for no TLP level")
	}
}

func TestCheckBase(t *testing.T) {
	reg, _ := label.NewRegistry()
	for _, c := range []struct {
		text string
		err  string
	}{
		{"NATO UNCLASSIFIED", ""},
		{"NATO RESTRICTED//RESTRICTIVE Compartment: CTI", ""},
		{"NATO UNCLASSIFIED//REL TO LUX", "releasability"},
		{"NATO UNCLASSIFIED//INFORMATIVE tlp: GREEN", "TLP category"},
	} {
		l, err := label.ParseText(c.text)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckBase(reg, l)
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.text, err, c.err)
		}
	}
	if err := CheckBase(reg, label.Label{Policy: "NOPE", Classification: "X"}); err == nil {
		t.Error("an unknown policy accepted")
	}
}

func TestParseTLP(t *testing.T) {
	for s, want := range map[string]TLP{"clear": TLPClear, "TLP:WHITE": TLPClear, "green": TLPGreen, "Amber": TLPAmber, "amber+strict": TLPAmberStrict, "RED": TLPRed} {
		if got, err := ParseTLP(s); err != nil || got != want {
			t.Errorf("%s: %v %v", s, got, err)
		}
		if got, _ := ParseTLP(want.String()); got != want {
			t.Errorf("%s does not round-trip", want)
		}
		if MarkingTLP(TLP2Marking(want)) != want {
			t.Errorf("%s: marking id does not round-trip", want)
		}
	}
	if _, err := ParseTLP("purple"); err == nil {
		t.Error("purple accepted")
	}
}
