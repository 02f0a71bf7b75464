package catalog

import (
	"strings"
	"testing"
	"time"
)

func TestParsePeriod(t *testing.T) {
	for _, c := range []struct {
		in, want, start, end, err string
	}{
		{in: "2020/2025", want: "2020/2025", start: XSDGYear, end: XSDGYear},
		{in: "2020-06/2020-06", want: "2020-06/2020-06", start: XSDGYearMonth, end: XSDGYearMonth},
		{in: "2020-06-30/2021-01-01", want: "2020-06-30/2021-01-01", start: XSDDate, end: XSDDate},
		{in: "2020-06-30T12:00:00+02:00/..", want: "2020-06-30T10:00:00Z/..", start: XSDDateTime},
		{in: "../2019-12-31", want: "../2019-12-31", end: XSDDate},
		{in: "2020/", want: "2020/.."},
		{in: "2020-06/2020", want: "2020-06/2020"}, // June 2020 is within 2020
		{in: "2021/2020", err: "the start is after the end"},
		{in: "2020-01-02/2020-01-01", err: "the start is after the end"},
		{in: "../..", err: "both ends are open"},
		{in: "/", err: "both ends are open"},
		{in: "2020", err: "want START/END"},
		{in: "2020-13/2021", err: `start: "2020-13": not a valid xsd:gYearMonth`},
		{in: "2020-02-30/2021", err: "not a valid xsd:date"},
		{in: "2020-06-30T12:00:00/..", err: "with a zone"},
		{in: "yesterday/today", err: "want a year"},
		{in: "0000/2020", err: "not a valid xsd:gYear"},
		{in: strings.Repeat("2", 200), err: "longer than"},
	} {
		p, err := ParsePeriod(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParsePeriod(%q) = %v, %v; want an error with %q", c.in, p, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePeriod(%q): %v", c.in, err)
			continue
		}
		if p.String() != c.want {
			t.Errorf("ParsePeriod(%q) = %s, want %s", c.in, p, c.want)
		}
		if c.start != "" && (p.Start == nil || p.Start.Type != c.start) {
			t.Errorf("ParsePeriod(%q) start %+v, want %s", c.in, p.Start, c.start)
		}
		if c.end != "" && (p.End == nil || p.End.Type != c.end) {
			t.Errorf("ParsePeriod(%q) end %+v, want %s", c.in, p.End, c.end)
		}
	}
}

func TestParseRef(t *testing.T) {
	for _, c := range []struct{ in, vault, prefix, err string }{
		{in: "registry", vault: "registry"},
		{in: "registry/2026/", vault: "registry", prefix: "2026/"},
		{in: "registry/a/b c", vault: "registry", prefix: "a/b c"},
		{in: "", err: "no vault"},
		{in: "/2026", err: "no vault"},
		{in: "Registry/x", err: "only lower-case"},
		{in: "registry/a\x00b", err: "control character"},
		{in: "registry/" + strings.Repeat("a", 2000), err: "longer than"},
	} {
		v, p, err := ParseRef(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseRef(%q) = %q, %q, %v; want %q", c.in, v, p, err, c.err)
			}
			continue
		}
		if err != nil || v != c.vault || p != c.prefix {
			t.Errorf("ParseRef(%q) = %q, %q, %v", c.in, v, p, err)
		}
	}
}

// TestDescribeApply: values are put in canonical form, a second describe
// changes only what it names, times move only on a change, and bad values
// are refused with the field named.
func TestDescribeApply(t *testing.T) {
	reg := testRegistry(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	d, err := Describe{Dataset: "registry/2026/", Title: ptr("  Register "), Keywords: ptr([]string{"a", " a", "b"}),
		Themes: ptr([]string{"GOVE"}), Spatial: ptr([]string{"EST", "https://sws.geonames.org/453733/"}), MediaTypes: ptr([]string{"Text/CSV"}),
		Temporal: ptr("2020/"), Label: ptr("nato restricted//rel to lux, est")}.Apply(reg, Dataset{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Title != "Register" || strings.Join(d.Keywords, ",") != "a,b" || d.Themes[0] != DataThemeBase+"GOVE" || d.Spatial[0] != CountryBase+"EST" ||
		d.MediaTypes[0] != "text/csv" || d.Temporal != "2020/.." || d.Label != "NATO RESTRICTED//REL TO LUX, EST" || !d.Issued.Equal(t0) || !d.Modified.Equal(t0) {
		t.Errorf("applied: %+v", d)
	}
	t1 := t0.Add(time.Hour)
	same, err := Describe{Dataset: "registry/2026/", Title: ptr("Register")}.Apply(reg, d, t1)
	if err != nil || !same.Modified.Equal(t0) {
		t.Errorf("no change moved modified: %v %v", same.Modified, err)
	}
	next, err := Describe{Dataset: "registry/2026/", Description: ptr("Monthly."), Keywords: ptr([]string{})}.Apply(reg, d, t1)
	if err != nil || next.Description != "Monthly." || next.Keywords != nil || next.Title != "Register" || !next.Issued.Equal(t0) || !next.Modified.Equal(t1) {
		t.Errorf("second describe: %+v %v", next, err)
	}
	for name, c := range map[string]struct {
		q    Describe
		want string
	}{
		"no title":         {Describe{Dataset: "registry", Label: ptr("NATO UNCLASSIFIED")}, "title"},
		"no label":         {Describe{Dataset: "registry", Title: ptr("x")}, "label"},
		"bad label":        {Describe{Dataset: "registry", Title: ptr("x"), Label: ptr("NATO ULTRA")}, `unknown level "ULTRA"`},
		"bad theme":        {Describe{Dataset: "registry", Title: ptr("x"), Label: ptr("NATO UNCLASSIFIED"), Themes: ptr([]string{"not an iri"})}, "theme"},
		"relative spatial": {Describe{Dataset: "registry", Title: ptr("x"), Label: ptr("NATO UNCLASSIFIED"), Spatial: ptr([]string{"tallinn"})}, "not an absolute IRI"},
		"media params":     {Describe{Dataset: "registry", Title: ptr("x"), Label: ptr("NATO UNCLASSIFIED"), MediaTypes: ptr([]string{"text/csv; charset=utf-8"})}, "parameters"},
		"media wildcard":   {Describe{Dataset: "registry", Title: ptr("x"), Label: ptr("NATO UNCLASSIFIED"), MediaTypes: ptr([]string{"text/*"})}, "type/subtype"},
		"bad period":       {Describe{Dataset: "registry", Title: ptr("x"), Label: ptr("NATO UNCLASSIFIED"), Temporal: ptr("2025/2020")}, "temporal"},
		"control in title": {Describe{Dataset: "registry", Title: ptr("a\x1bb"), Label: ptr("NATO UNCLASSIFIED")}, "control character"},
		"long title":       {Describe{Dataset: "registry", Title: ptr(strings.Repeat("x", MaxTitle+1)), Label: ptr("NATO UNCLASSIFIED")}, "title"},
		"empty keyword":    {Describe{Dataset: "registry", Title: ptr("x"), Label: ptr("NATO UNCLASSIFIED"), Keywords: ptr([]string{" "})}, "keyword: empty"},
		"too many":         {Describe{Dataset: "registry", Title: ptr("x"), Label: ptr("NATO UNCLASSIFIED"), Keywords: ptr(make([]string, MaxList+1))}, "at most"},
	} {
		if _, err := c.q.Apply(reg, Dataset{}, t0); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}

func TestParseDescribe(t *testing.T) {
	for _, c := range []struct{ body, err string }{
		{body: `{"dataset": "registry/2026/", "title": "x", "keywords": ["a"]}`},
		{body: ``, err: "empty"},
		{body: `{"dataset": "registry", "bogus": 1}`, err: "bogus"},
		{body: `{"dataset": "registry"} {}`, err: "more than one"},
		{body: `{"title": "x"}`, err: "no vault"},
		{body: `{"dataset": "registry", "keywords": "a"}`, err: "keywords"},
		{body: `[]`, err: "malformed"},
	} {
		_, err := ParseDescribe([]byte(c.body))
		if (err != nil) != (c.err != "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParseDescribe(%s) = %v, want %q", c.body, err, c.err)
		}
	}
}

func TestQuery(t *testing.T) {
	d := Dataset{Vault: "registry", Prefix: "2026/", Title: "Population register", Description: "Monthly extracts.",
		Keywords: []string{"census"}, Themes: []string{DataThemeBase + "GOVE"}, Spatial: []string{CountryBase + "EST"},
		MediaTypes: []string{"text/csv"}, Temporal: "2026/2026", Label: "NATO RESTRICTED//REL TO LUX"}
	for _, c := range []struct {
		terms []string
		match bool
	}{
		{nil, true},
		{[]string{"population"}, true},
		{[]string{"POPULATION REGISTER"}, true}, // two terms, both in the title
		{[]string{"population", "land"}, false},
		{[]string{"keyword:census"}, true},
		{[]string{"keyword:population"}, false},
		{[]string{"theme:gove"}, true},
		{[]string{"spatial:est"}, true},
		{[]string{"spatial:lux"}, false},
		{[]string{"media:csv"}, true},
		{[]string{"label:lux"}, true},
		{[]string{"id:registry/2026"}, true},
		{[]string{"temporal:2026"}, true},
		{[]string{DataThemeBase + "GOVE"}, true}, // an IRI is a plain term
		{[]string{"monthly"}, true},
	} {
		q, err := ParseQuery(c.terms)
		if err != nil {
			t.Errorf("ParseQuery(%q): %v", c.terms, err)
			continue
		}
		if got := q.Match(d); got != c.match {
			t.Errorf("%q matches: %v, want %v", c.terms, got, c.match)
		}
	}
	for _, bad := range [][]string{{"keyword:"}, {strings.Repeat("x", MaxTermLen+1)}, {strings.Repeat("a ", MaxTerms+1)}, {"\xff"}} {
		if _, err := ParseQuery(bad); err == nil {
			t.Errorf("ParseQuery(%.40q) accepted", bad)
		}
	}
}
