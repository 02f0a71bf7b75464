package catalog

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/label"
)

// Every parser of outside input in this package is fuzzed: periods, dataset
// names, describe requests (as the admin API receives them, then applied),
// search terms and catalogues received from peers. Each must refuse or
// accept without panicking, and what it accepts must be in a form it reads
// back the same.

func FuzzParsePeriod(f *testing.F) {
	for _, s := range []string{"2020/2025", "2020-06/..", "../2020-06-30", "2020-06-30T12:00:00+02:00/2021", "/", "2021/2020", "9999-12-31T23:59:59.999999999Z/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePeriod(s)
		if err != nil {
			return
		}
		again, err := ParsePeriod(p.String())
		if err != nil || again.String() != p.String() {
			t.Fatalf("%q parsed as %s, which reads back as %v, %v", s, p, again, err)
		}
	})
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"registry", "registry/2026/", "a/b", "reg--x/y", "/x", "registry/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, p, err := ParseRef(s)
		if err != nil {
			return
		}
		if Ref(v, p) != s && !(p == "" && s == v+"/") {
			t.Fatalf("%q parsed as %q, %q", s, v, p)
		}
	})
}

func FuzzParseDescribe(f *testing.F) {
	f.Add([]byte(`{"dataset": "registry/2026/", "title": "Register", "keywords": ["a", "b"], "themes": ["GOVE"], "spatial": ["EST"], "temporal": "2020/..", "media_types": ["text/csv"], "label": "NATO RESTRICTED//REL TO LUX"}`))
	f.Add([]byte(`{"dataset": "x"}`))
	f.Add([]byte(`{"dataset": "registry", "title": "t", "label": "NATO SECRET//REL TO EST//RESTRICTIVE C: A"}`))
	reg, err := label.NewRegistry()
	if err != nil {
		f.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := ParseDescribe(body)
		if err != nil {
			return
		}
		d, err := q.Apply(reg, Dataset{}, at)
		if err != nil {
			return
		}
		if err := d.Validate(reg); err != nil {
			t.Fatalf("Apply returned a description that does not validate: %v\n%+v", err, d)
		}
		// Describing it again with its own values changes nothing.
		again, err := Describe{Dataset: d.ID(), Title: &d.Title, Description: &d.Description, Keywords: &d.Keywords, Themes: &d.Themes,
			Spatial: &d.Spatial, Temporal: &d.Temporal, MediaTypes: &d.MediaTypes, Label: &d.Label}.Apply(reg, d, at.Add(time.Hour))
		if err != nil || !again.Modified.Equal(d.Modified) {
			t.Fatalf("describing %+v with its own values: %+v, %v", d, again, err)
		}
		// And it renders as JSON that parses back.
		l, _ := reg.ParseText(d.Label)
		b, err := Render(reg, Meta{NodeID: "n1", Nation: "EST"}, []Entry{{Dataset: d, Owner: "EST", Label: l, AccessURL: AccessURL("", d.Vault, d.Prefix)}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseDocument(b); err != nil {
			t.Fatalf("a rendered catalogue does not parse: %v\n%s", err, b)
		}
	})
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"population register", "keyword:census theme:GOVE", "http://x/y", "keyword:", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(strings.Split(s, "\n"))
		if err != nil {
			return
		}
		again, err := ParseQuery([]string{q.String()})
		if err != nil || again.String() != q.String() {
			t.Fatalf("%q parsed as %q, which reads back as %q, %v", s, q, again, err)
		}
		q.Match(Dataset{Vault: "registry", Title: s, Keywords: []string{s}})
	})
}

func FuzzParseDocument(f *testing.F) {
	reg, err := label.NewRegistry()
	if err != nil {
		f.Fatal(err)
	}
	l, _ := reg.ParseText("NATO RESTRICTED//REL TO LUX")
	d := Dataset{Vault: "registry", Prefix: "2026/", Title: "t", Temporal: "2020/..", MediaTypes: []string{"text/csv"}, Label: l.String()}
	b, _ := Render(reg, Meta{NodeID: "n1", Nation: "EST"}, []Entry{{Dataset: d, Owner: "EST", Label: l, AccessURL: "s3://registry/2026/"}}).Marshal()
	f.Add(b)
	f.Add([]byte(`{"@context": {}, "@type": "dcat:Catalog"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := ParseDocument(b)
		if err != nil {
			return
		}
		for _, ds := range doc.Datasets {
			got := ds.Dataset()
			if got.ID() != ds.Identifier && got.ID()+"/" != ds.Identifier {
				t.Fatalf("dataset %q read back as %q", ds.Identifier, got.ID())
			}
		}
		if _, err := json.Marshal(doc); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzParsePeerRequest(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"q": ["land", "keyword:cadastre"]}`, `{"q": "x"}`, `{"q": []} {}`, `{"x": 1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParsePeerRequest(b)
		if err != nil {
			return
		}
		again, err := ParseQuery(q.Terms())
		if err != nil || again.String() != q.String() {
			t.Fatalf("%q parsed as %q, which reads back as %q, %v", b, q, again, err)
		}
	})
}
