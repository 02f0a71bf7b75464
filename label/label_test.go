package label

import (
	"strings"
	"testing"
	"time"
)

// sample returns a label using every field.
func sample() Label {
	return Label{
		Policy:         "NATO",
		PolicyURI:      "urn:example:policy:nato",
		Classification: "SECRET",
		PrivacyMark:    "STAFF IN CONFIDENCE",
		Categories: []Category{
			{TagName: DefaultReleasabilityTag, Type: Permissive, Values: []string{"EST", "LUX", "USA"}},
			{TagName: "Compartment", Type: Restrictive, Values: []string{"ALPHA", "BRAVO"}},
			{TagName: "Mission", Type: Permissive, Values: []string{"BALTIC GUARD"}},
			{TagName: "Handling", Type: Informative, Values: []string{"EXERCISE"}},
		},
		Created:  time.Date(2025, 3, 4, 5, 6, 7, 890000000, time.UTC),
		ReviewAt: time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Label)
		wantErr string // empty: valid
	}{
		{"sample", func(*Label) {}, ""},
		{"minimal", func(l *Label) { *l = Label{Policy: "NATO", Classification: "SECRET"} }, ""},
		{"missing policy", func(l *Label) { l.Policy = "" }, "policy: missing"},
		{"missing classification", func(l *Label) { l.Classification = "" }, "classification: missing"},
		{"leading space", func(l *Label) { l.Classification = " SECRET" }, "leading or trailing space"},
		{"control character", func(l *Label) { l.PrivacyMark = "A\nB" }, "unprintable character U+000A"},
		{"no-break space", func(l *Label) { l.PrivacyMark = "A\u00a0B" }, "unprintable character U+00A0"},
		{"invalid utf-8", func(l *Label) { l.Policy = "N\xffATO" }, "not valid UTF-8"},
		{"field too long", func(l *Label) { l.PrivacyMark = strings.Repeat("A", MaxFieldLen+1) }, "over the limit of 1024"},
		{"duplicate tag", func(l *Label) { l.Categories[1].TagName = DefaultReleasabilityTag }, `category "Releasable To": appears twice`},
		{"duplicate value", func(l *Label) { l.Categories[0].Values = []string{"EST", "EST"} }, `value "EST" appears twice`},
		{"no values", func(l *Label) { l.Categories[1].Values = nil }, `category "Compartment": no values`},
		{"empty value", func(l *Label) { l.Categories[1].Values = []string{""} }, `category "Compartment" value 1: missing`},
		{"bad type", func(l *Label) { l.Categories[1].Type = 9 }, "unknown type 9"},
		{"empty tag", func(l *Label) { l.Categories[1].TagName = "" }, "category 2 tag name: missing"},
		{"too many categories", func(l *Label) {
			l.Categories = nil
			for i := range MaxCategories + 1 {
				l.Categories = append(l.Categories, Category{TagName: strings.Repeat("T", i+1), Type: Informative, Values: []string{"V"}})
			}
		}, "33 exceed the limit of 32"},
		{"too many values", func(l *Label) {
			var vs []string
			for i := range MaxValues + 1 {
				vs = append(vs, strings.Repeat("V", i%50+1)+string(rune('A'+i/50)))
			}
			l.Categories = []Category{{TagName: "Big", Type: Informative, Values: vs}}
		}, "more than 256 values"},
		{"too many bytes", func(l *Label) {
			l.Categories = nil
			for i := range 9 {
				l.Categories = append(l.Categories, Category{TagName: strings.Repeat("T", i+1), Type: Informative, Values: []string{strings.Repeat("V", MaxFieldLen)}})
			}
		}, "over the limit of 8192"},
		{"year 10000", func(l *Label) { l.ReviewAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "review time: year 10000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := sample()
			tt.edit(&l)
			err := l.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate: no error, want %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate: %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestEqualAndClone(t *testing.T) {
	a := sample()
	b := a.Clone()
	if !a.Equal(b) {
		t.Fatal("clone not equal")
	}
	b.Categories[0].Values[0] = "FRA"
	if a.Categories[0].Values[0] != "EST" {
		t.Fatal("clone shares value slices with the original")
	}
	if a.Equal(b) {
		t.Fatal("labels with different values compare equal")
	}
	c := a.Clone()
	c.Created = a.Created.In(time.FixedZone("EET", 2*3600))
	if !a.Equal(c) {
		t.Fatal("same instant in another zone not equal")
	}
	c.Categories[1], c.Categories[2] = c.Categories[2], c.Categories[1]
	if a.Equal(c) {
		t.Fatal("Equal ignores category order")
	}
}

func TestCategoryType(t *testing.T) {
	for _, typ := range []CategoryType{Permissive, Restrictive, Informative} {
		got, err := ParseCategoryType(strings.ToLower(typ.String()))
		if err != nil || got != typ {
			t.Errorf("ParseCategoryType(%q) = %v, %v", strings.ToLower(typ.String()), got, err)
		}
	}
	if _, err := ParseCategoryType("MANDATORY"); err == nil || !strings.Contains(err.Error(), `"MANDATORY"`) {
		t.Errorf("ParseCategoryType(MANDATORY) error = %v", err)
	}
}
