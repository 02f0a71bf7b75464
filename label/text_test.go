package label

import (
	"strings"
	"testing"
	"time"
)

func TestString(t *testing.T) {
	tests := []struct {
		name string
		l    Label
		want string
	}{
		{"minimal", Label{Policy: "NATO", Classification: "SECRET"}, "NATO SECRET"},
		{"multi-word level", Label{Policy: "NATO", Classification: "COSMIC TOP SECRET"}, "NATO COSMIC TOP SECRET"},
		{"releasability", Label{Policy: "NATO", Classification: "SECRET", Categories: []Category{
			{TagName: "Releasable To", Type: Permissive, Values: []string{"EST", "LUX", "USA"}},
		}}, "NATO SECRET//REL TO EST, LUX, USA"},
		{"releasability spelt otherwise", Label{Policy: "NATO", Classification: "SECRET", Categories: []Category{
			{TagName: "ReleasableTo", Type: Permissive, Values: []string{"EST"}},
		}}, "NATO SECRET//PERMISSIVE ReleasableTo: EST"},
		{"every field", sample(), "NATO SECRET//REL TO EST, LUX, USA//RESTRICTIVE Compartment: ALPHA, BRAVO" +
			"//PERMISSIVE Mission: BALTIC GUARD//INFORMATIVE Handling: EXERCISE//PRIVACY STAFF IN CONFIDENCE" +
			`//POLICY-URI "urn:example:policy:nato"//CREATED 2025-03-04T05:06:07.89Z//REVIEW 2035-01-01T00:00:00Z`},
		{"quoting", Label{Policy: "EU Council", Classification: "A/B", PrivacyMark: `say "hi", \o/`, Categories: []Category{
			{TagName: "Tag: x", Type: Restrictive, Values: []string{"a,b", "plain", "ü"}},
		}}, `"EU Council" "A/B"//RESTRICTIVE "Tag: x": "a,b", plain, ü//PRIVACY "say \"hi\", \\o/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.l.String(); got != tt.want {
				t.Fatalf("String() =\n%s\nwant\n%s", got, tt.want)
			}
			back, err := ParseText(tt.want)
			if err != nil {
				t.Fatalf("ParseText: %v", err)
			}
			if !back.Equal(tt.l) {
				t.Fatalf("ParseText(String()) = %#v, want %#v", back, tt.l)
			}
		})
	}
}

func TestParseText(t *testing.T) {
	rel := func(vs ...string) Category {
		return Category{TagName: DefaultReleasabilityTag, Type: Permissive, Values: vs}
	}
	tests := []struct {
		name    string
		in      string
		want    Label
		wantErr string
	}{
		{"simple", "NATO SECRET//REL TO EST, LUX", Label{Policy: "NATO", Classification: "SECRET", Categories: []Category{rel("EST", "LUX")}}, ""},
		{"loose spacing and case", "  NATO   SECRET // rel  to EST,LUX ,USA // restrictive Compartment :ALPHA ", Label{
			Policy: "NATO", Classification: "SECRET",
			Categories: []Category{rel("EST", "LUX", "USA"), {TagName: "Compartment", Type: Restrictive, Values: []string{"ALPHA"}}},
		}, ""},
		{"segments in any order", "NATO SECRET//REVIEW 2030-01-01T00:00:00+02:00//PRIVACY MEDICAL", Label{
			Policy: "NATO", Classification: "SECRET", PrivacyMark: "MEDICAL",
			ReviewAt: time.Date(2029, 12, 31, 22, 0, 0, 0, time.UTC),
		}, ""},
		{"quoted separator", `NATO SECRET//PRIVACY "a//b"`, Label{Policy: "NATO", Classification: "SECRET", PrivacyMark: "a//b"}, ""},
		{"empty", "", Label{}, "head \"\": empty"},
		{"no classification", "NATO", Label{}, "missing classification"},
		{"unknown keyword", "NATO SECRET//NOFORN", Label{}, `segment "NOFORN": unknown keyword`},
		{"keyword without value", "NATO SECRET//PRIVACY", Label{}, "unknown keyword"},
		{"missing colon", "NATO SECRET//RESTRICTIVE Compartment ALPHA", Label{}, "missing ':' after the tag name"},
		{"empty value", "NATO SECRET//REL TO EST,,LUX", Label{}, "value 2: empty"},
		{"trailing comma", "NATO SECRET//REL TO EST,", Label{}, "value 2: empty"},
		{"bare slash", "NATO SECRET//PRIVACY a/b", Label{}, `"/" is only allowed in a quoted token`},
		{"unterminated quote", `NATO SECRET//PRIVACY "abc`, Label{}, "unterminated quoted token"},
		{"junk after quote", `NATO SECRET//PRIVACY "abc" def`, Label{}, `unexpected " def"`},
		{"privacy twice", "NATO SECRET//PRIVACY A//PRIVACY B", Label{}, "PRIVACY given twice"},
		{"bad time", "NATO SECRET//CREATED yesterday", Label{}, `"yesterday" is not an RFC 3339 date-time`},
		{"duplicate value", "NATO SECRET//REL TO EST, EST", Label{}, `value "EST" appears twice`},
		{"duplicate category", "NATO SECRET//REL TO EST//REL TO LUX", Label{}, "appears twice"},
		{"empty segment", "NATO SECRET//", Label{}, `segment "": unknown keyword`},
		{"too long", "NATO SECRET//PRIVACY " + strings.Repeat("A", MaxTextSize), Label{}, "over the limit of 65536"},
		{"control char in quote", `NATO SECRET//PRIVACY "a\tb"`, Label{}, "unprintable character U+0009"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseText(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseText(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseText(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("ParseText(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestTextRoundTripWithRegistry(t *testing.T) {
	r := mustRegistry(t, estonia())
	for _, in := range []string{
		"NATO NATO SECRET//PERMISSIVE ReleasableTo: est, lux",
		"COSMIC TOP SECRET//REL TO USA",
		"nato ns//REL TO EST//RESTRICTIVE Compartment: ALPHA",
		"EST SALAJANE//PERMISSIVE releasable to: FIN",
	} {
		l, err := r.ParseText(in)
		if err != nil {
			t.Fatalf("ParseText(%q): %v", in, err)
		}
		again, err := r.ParseText(l.String())
		if err != nil {
			t.Fatalf("ParseText(%q): %v", l.String(), err)
		}
		if !again.Equal(l) {
			t.Errorf("%q: normalised %q reparses to %q", in, l, again)
		}
	}
}
