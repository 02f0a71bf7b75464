package catalog

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piprate/json-gold/ld"

	"github.com/embassy-dev/embassy/label"
)

// refusingLoader fails any attempt to fetch a remote document: a catalogue
// must expand with its inline @context alone.
type refusingLoader struct{ t *testing.T }

func (l refusingLoader) LoadDocument(u string) (*ld.RemoteDocument, error) {
	l.t.Errorf("expanding the catalogue fetched %s: its @context must be inline", u)
	return nil, errors.New("no fetching")
}

func testRegistry(t *testing.T) *label.Registry {
	t.Helper()
	reg, err := label.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// entry builds an entry the way the node does: a description applied,
// its label parsed.
func entry(t *testing.T, reg *label.Registry, q Describe, owner string, at time.Time) Entry {
	t.Helper()
	d, err := q.Apply(reg, Dataset{}, at)
	if err != nil {
		t.Fatalf("%s: %v", q.Dataset, err)
	}
	l, err := reg.ParseText(d.Label)
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Dataset: d, Owner: owner, Label: l, AccessURL: AccessURL("https://embassy.est.example", d.Vault, d.Prefix)}
}

func ptr[T any](v T) *T { return &v }

func sampleEntries(t *testing.T, reg *label.Registry) []Entry {
	issued := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	return []Entry{
		entry(t, reg, Describe{
			Dataset:     "registry/2026/",
			Title:       ptr("Population register 2026"),
			Description: ptr("Residents of Estonia, monthly extracts."),
			Keywords:    ptr([]string{"population", "register"}),
			Themes:      ptr([]string{"GOVE", "http://publications.europa.eu/resource/authority/data-theme/SOCI"}),
			Spatial:     ptr([]string{"EST"}),
			Temporal:    ptr("2026-01-01/2026-12-31"),
			MediaTypes:  ptr([]string{"text/CSV", "application/vnd.sqlite3"}),
			Label:       ptr("NATO RESTRICTED//REL TO EST, LUX"),
		}, "EST", issued),
		entry(t, reg, Describe{
			Dataset: "cadastre",
			Title:   ptr("Land parcels"),
			Label:   ptr("NATO UNCLASSIFIED"),
		}, "EST", issued),
	}
}

// TestCatalogIsDCATJSONLD: the rendered catalogue expands as JSON-LD with
// its inline context alone, and every property DCAT-AP asks for is there
// under its full IRI with the value described.
func TestCatalogIsDCATJSONLD(t *testing.T) {
	reg := testRegistry(t)
	doc := Render(reg, Meta{NodeID: "n-5f2a", Nation: "EST", Title: "Estonian data embassy", Description: "What Estonia keeps in Luxembourg.",
		Publisher: Publisher{Name: "Information System Authority", URI: "https://www.ria.ee/"}}, sampleEntries(t, reg))
	b, err := doc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var in any
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	opts := ld.NewJsonLdOptions("")
	opts.DocumentLoader = refusingLoader{t}
	expanded, err := ld.NewJsonLdProcessor().Expand(in, opts)
	if err != nil {
		t.Fatalf("expand: %v\n%s", err, b)
	}
	if len(expanded) != 1 {
		t.Fatalf("expanded to %d top-level nodes, want the catalogue alone:\n%s", len(expanded), b)
	}
	cat := expanded[0].(map[string]any)
	checkType(t, cat, DCAT+"Catalog")
	checkValue(t, cat, DCT+"title", "Estonian data embassy")
	checkValue(t, cat, DCT+"description", "What Estonia keeps in Luxembourg.")
	pub := one(t, cat, DCT+"publisher")
	checkType(t, pub, FOAF+"Agent")
	checkValue(t, pub, FOAF+"name", "Information System Authority")
	if pub["@id"] != "https://www.ria.ee/" {
		t.Errorf("publisher @id %v", pub["@id"])
	}

	datasets := all(t, cat, DCAT+"dataset")
	if len(datasets) != 2 {
		t.Fatalf("%d datasets, want 2", len(datasets))
	}
	ds := datasets[0]
	checkType(t, ds, DCAT+"Dataset")
	if ds["@id"] != "urn:embassy:n-5f2a:dataset:registry/2026/" {
		t.Errorf("dataset @id %v", ds["@id"])
	}
	checkValue(t, ds, DCT+"identifier", "registry/2026/")
	checkValue(t, ds, DCT+"title", "Population register 2026")
	checkValue(t, ds, DCT+"description", "Residents of Estonia, monthly extracts.")
	checkValues(t, ds, DCAT+"keyword", "population", "register")
	checkIDs(t, ds, DCAT+"theme", DataThemeBase+"GOVE", DataThemeBase+"SOCI")
	checkIDs(t, ds, DCT+"spatial", CountryBase+"EST")
	period := one(t, ds, DCT+"temporal")
	checkType(t, period, DCT+"PeriodOfTime")
	checkTyped(t, period, DCAT+"startDate", "2026-01-01", XSD+"date")
	checkTyped(t, period, DCAT+"endDate", "2026-12-31", XSD+"date")
	checkTyped(t, ds, DCT+"issued", "2026-11-30T09:00:00Z", XSD+"dateTime")
	checkTyped(t, ds, DCT+"modified", "2026-11-30T09:00:00Z", XSD+"dateTime")
	dists := all(t, ds, DCAT+"distribution")
	if len(dists) != 2 {
		t.Fatalf("%d distributions, want one per media type (2)", len(dists))
	}
	var media []string
	for _, d := range dists {
		checkType(t, d, DCAT+"Distribution")
		checkIDs(t, d, DCAT+"accessURL", "https://embassy.est.example/registry/2026/")
		media = append(media, one(t, d, DCAT+"mediaType")["@id"].(string))
	}
	if !slices.Equal(media, []string{MediaTypeBase + "text/csv", MediaTypeBase + "application/vnd.sqlite3"}) {
		t.Errorf("media types %q", media)
	}
	rights := one(t, ds, DCT+"accessRights")
	checkType(t, rights, DCT+"RightsStatement")
	checkValue(t, rights, RDFS+"label", "NATO RESTRICTED//REL TO EST, LUX")
	checkValue(t, ds, Embassy+"label", "NATO RESTRICTED//REL TO EST, LUX")
	checkValue(t, ds, Embassy+"owner", "EST")
	checkValues(t, ds, Embassy+"releasableTo", "EST", "LUX")

	// The second has no releasability (its owner's nationals only), one
	// distribution without a media type, and the default access URL form
	// is not used since access_url was given.
	ds = datasets[1]
	checkValue(t, ds, DCT+"identifier", "cadastre")
	if got := ds[Embassy+"releasableTo"]; got != nil {
		if l, _ := got.([]any); len(l) != 0 {
			t.Errorf("cadastre releasableTo %v, want none", got)
		}
	}
	dists = all(t, ds, DCAT+"distribution")
	if len(dists) != 1 || dists[0][DCAT+"mediaType"] != nil {
		t.Errorf("cadastre distributions %v", dists)
	}
	checkIDs(t, dists[0], DCAT+"accessURL", "https://embassy.est.example/cadastre/")
}

// TestCatalogDefaults: a catalogue with nothing configured still has a
// title, a description and a publisher; s3:// access URLs without
// access_url; an empty catalogue has an empty dataset list.
func TestCatalogDefaults(t *testing.T) {
	reg := testRegistry(t)
	doc := Render(reg, Meta{NodeID: "n1", Nation: "EST"}, nil)
	b, _ := doc.Marshal()
	if !strings.Contains(string(b), `"dcat:dataset": []`) {
		t.Errorf("an empty catalogue: %s", b)
	}
	if doc.Title == "" || doc.Description == "" || doc.Publisher.Name != "EST" {
		t.Errorf("defaults: %+v", doc)
	}
	if got := AccessURL("", "registry", "2026/a b/"); got != "s3://registry/2026/a%20b/" {
		t.Errorf("AccessURL = %s", got)
	}
}

// TestReleasedTo: a nation sees the entries it owns and those whose label
// lists it; a label without REL TO LUX is invisible to LUX.
func TestReleasedTo(t *testing.T) {
	reg := testRegistry(t)
	at := time.Now()
	mk := func(name, lbl, owner string) Entry {
		return entry(t, reg, Describe{Dataset: name, Title: ptr(name), Label: ptr(lbl)}, owner, at)
	}
	entries := []Entry{
		mk("rel-lux", "NATO SECRET//REL TO EST, LUX", "EST"),
		mk("rel-fin", "NATO RESTRICTED//REL TO FIN", "EST"),
		mk("no-rel", "NATO UNCLASSIFIED", "EST"),
		mk("lux-own", "NATO UNCLASSIFIED", "LUX"),
		mk("lowercase", "NATO UNCLASSIFIED//REL TO lux", "EST"),
	}
	ids := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID())
		}
		return out
	}
	for _, c := range []struct {
		nation string
		want   []string
	}{
		{"LUX", []string{"rel-lux", "lux-own", "lowercase"}},
		{"FIN", []string{"rel-fin"}},
		{"EST", []string{"rel-lux", "rel-fin", "no-rel", "lowercase"}},
		{"USA", nil},
	} {
		if got := ids(Filter(entries, ReleasedTo(reg, c.nation))); !slices.Equal(got, c.want) {
			t.Errorf("%s sees %q, want %q", c.nation, got, c.want)
		}
	}
	// What LUX is served has no trace of the others.
	b, _ := Render(reg, Meta{NodeID: "n1", Nation: "EST"}, Filter(entries, ReleasedTo(reg, "LUX"))).Marshal()
	for _, hidden := range []string{"rel-fin", "no-rel"} {
		if strings.Contains(string(b), hidden) {
			t.Errorf("LUX's catalogue mentions %s:\n%s", hidden, b)
		}
	}
}

// TestParseDocumentRoundTrip: a rendered catalogue parses back, and each
// dataset's description is what was rendered.
func TestParseDocumentRoundTrip(t *testing.T) {
	reg := testRegistry(t)
	entries := sampleEntries(t, reg)
	b, _ := Render(reg, Meta{NodeID: "n1", Nation: "EST"}, entries).Marshal()
	doc, err := ParseDocument(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, ds := range doc.Datasets {
		got, want := ds.Dataset(), entries[i].Dataset
		want.Issued, want.Modified = time.Time{}, time.Time{}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if string(gb) != string(wb) {
			t.Errorf("dataset %d read back as\n%s\nwant\n%s", i, gb, wb)
		}
	}
	for name, bad := range map[string]string{
		"another context": strings.Replace(string(b), Embassy, "urn:other:", 1),
		"not a catalog":   strings.Replace(string(b), `"dcat:Catalog"`, `"dcat:Dataset"`, 1),
		"bad identifier":  strings.Replace(string(b), `"dct:identifier": "cadastre"`, `"dct:identifier": "/x"`, 1),
		"two values":      string(b) + "{}",
		"not json":        "<rdf/>",
	} {
		if _, err := ParseDocument([]byte(bad)); !errors.Is(err, ErrNotCatalog) {
			t.Errorf("%s: %v, want ErrNotCatalog", name, err)
		}
	}
}

func all(t *testing.T, node map[string]any, iri string) []map[string]any {
	t.Helper()
	vals, _ := node[iri].([]any)
	var out []map[string]any
	for _, v := range vals {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %v is not a node", iri, v)
		}
		out = append(out, m)
	}
	return out
}

func one(t *testing.T, node map[string]any, iri string) map[string]any {
	t.Helper()
	vals := all(t, node, iri)
	if len(vals) != 1 {
		t.Fatalf("%s: %d values, want 1 (node %v)", iri, len(vals), node)
	}
	return vals[0]
}

func checkType(t *testing.T, node map[string]any, want string) {
	t.Helper()
	types, _ := node["@type"].([]any)
	if !slices.Contains(types, any(want)) {
		t.Errorf("@type %v, want %s", node["@type"], want)
	}
}

func checkValue(t *testing.T, node map[string]any, iri, want string) {
	t.Helper()
	checkValues(t, node, iri, want)
}

func checkValues(t *testing.T, node map[string]any, iri string, want ...string) {
	t.Helper()
	var got []string
	for _, v := range all(t, node, iri) {
		s, _ := v["@value"].(string)
		got = append(got, s)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", iri, got, want)
	}
}

func checkIDs(t *testing.T, node map[string]any, iri string, want ...string) {
	t.Helper()
	var got []string
	for _, v := range all(t, node, iri) {
		s, _ := v["@id"].(string)
		got = append(got, s)
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", iri, got, want)
	}
}

func checkTyped(t *testing.T, node map[string]any, iri, value, typ string) {
	t.Helper()
	v := one(t, node, iri)
	if v["@value"] != value || v["@type"] != typ {
		t.Errorf("%s = %v, want %q^^%s", iri, v, value, typ)
	}
}
