package label

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/golden")

// golden compares got with testdata/golden/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file:\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestXMLGolden(t *testing.T) {
	x, err := sample().XML()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sample.xml", x)
	back, err := ParseXML(x)
	if err != nil {
		t.Fatalf("ParseXML: %v", err)
	}
	if !back.Equal(sample()) {
		t.Fatalf("ParseXML(XML()) = %q, want %q", back, sample())
	}
}

const ns = NamespaceLabel

func TestParseXML(t *testing.T) {
	info := func(inner string) string {
		return `<slab:ConfidentialityInformation>` + inner + `</slab:ConfidentialityInformation>`
	}
	doc := func(root, body string) string {
		return `<slab:` + root + ` xmlns:slab="` + ns + `">` + body + `</slab:` + root + `>`
	}
	basic := info(`<slab:PolicyIdentifier>NATO</slab:PolicyIdentifier><slab:Classification>SECRET</slab:Classification>`)
	want := Label{Policy: "NATO", Classification: "SECRET"}
	tests := []struct {
		name    string
		in      string
		want    Label
		wantErr string
	}{
		{"originatorConfidentialityLabel", doc("originatorConfidentialityLabel", basic), want, ""},
		{"OriginatorConfidentialityLabel", doc("OriginatorConfidentialityLabel", basic), want, ""},
		{"ConfidentialityLabel", doc("ConfidentialityLabel", basic), want, ""},
		{"default namespace", `<?xml version="1.0"?>
<ConfidentialityLabel xmlns="` + ns + `" ReviewDateTime="2030-06-01T12:00:00+02:00">
  <!-- a comment -->
  <OriginatorID IDType="uri">urn:example:originator</OriginatorID>
  <ConfidentialityInformation>
    <PolicyIdentifier URI="urn:example:nato"> NATO </PolicyIdentifier>
    <Classification>NATO SECRET</Classification>
    <PrivacyMark>MEDICAL</PrivacyMark>
    <Category TagName="ReleasableTo" Type="permissive" URI="urn:example:rel">
      <GenericValue>EST</GenericValue><GenericValue>LUX</GenericValue>
    </Category>
  </ConfidentialityInformation>
  <ext:Anything xmlns:ext="urn:example:ext"><ext:Nested/></ext:Anything>
  <CreationDateTime>2025-01-02T03:04:05Z</CreationDateTime>
</ConfidentialityLabel>
`, Label{
			Policy: "NATO", PolicyURI: "urn:example:nato", Classification: "NATO SECRET", PrivacyMark: "MEDICAL",
			Categories: []Category{{TagName: "ReleasableTo", Type: Permissive, Values: []string{"EST", "LUX"}}},
			Created:    time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
			ReviewAt:   time.Date(2030, 6, 1, 10, 0, 0, 0, time.UTC),
		}, ""},
		{"time without zone is UTC", doc("ConfidentialityLabel", basic+`<slab:CreationDateTime>2025-01-02T03:04:05</slab:CreationDateTime>`),
			Label{Policy: "NATO", Classification: "SECRET", Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}, ""},

		{"wrong namespace", `<ConfidentialityLabel xmlns="urn:nato:stanag:4774:confidentialitymetadatalabel:2:0">` + basic + `</ConfidentialityLabel>`, Label{},
			`root element ConfidentialityLabel: namespace "urn:nato:stanag:4774:confidentialitymetadatalabel:2:0", want "` + ns + `"`},
		{"no namespace", `<ConfidentialityLabel/>`, Label{}, `root element ConfidentialityLabel: namespace ""`},
		{"missing information", doc("ConfidentialityLabel", ""), Label{}, "missing ConfidentialityInformation"},
		{"missing classification", doc("ConfidentialityLabel", info(`<slab:PolicyIdentifier>NATO</slab:PolicyIdentifier>`)), Label{}, "ConfidentialityInformation: missing Classification"},
		{"empty classification", doc("ConfidentialityLabel", info(`<slab:PolicyIdentifier>NATO</slab:PolicyIdentifier><slab:Classification> </slab:Classification>`)), Label{}, "Classification: empty"},
		{"missing policy", doc("ConfidentialityLabel", info(`<slab:Classification>SECRET</slab:Classification>`)), Label{}, "missing PolicyIdentifier"},
		{"two classifications", doc("ConfidentialityLabel", info(`<slab:PolicyIdentifier>NATO</slab:PolicyIdentifier><slab:Classification>SECRET</slab:Classification><slab:Classification>UNCLASSIFIED</slab:Classification>`)), Label{}, "Classification given twice"},
		{"two infos", doc("ConfidentialityLabel", basic+basic), Label{}, "ConfidentialityInformation given twice"},
		{"unknown element in information", doc("ConfidentialityLabel", info(`<slab:PolicyIdentifier>NATO</slab:PolicyIdentifier><slab:Classification>SECRET</slab:Classification><slab:Caveat>X</slab:Caveat>`)), Label{}, "unexpected element Caveat"},
		{"foreign element in information", doc("ConfidentialityLabel", info(`<x:Y xmlns:x="urn:x"/><slab:PolicyIdentifier>NATO</slab:PolicyIdentifier>`)), Label{}, `unexpected element Y in namespace "urn:x"`},
		{"unknown value kind", doc("ConfidentialityLabel", info(`<slab:PolicyIdentifier>NATO</slab:PolicyIdentifier><slab:Classification>SECRET</slab:Classification><slab:Category TagName="C" Type="RESTRICTIVE"><slab:GenericValue>A</slab:GenericValue><slab:IntegerValue>7</slab:IntegerValue></slab:Category>`)), Label{}, `category 1: "C": unexpected element IntegerValue (only GenericValue is understood)`},
		{"category without tag", doc("ConfidentialityLabel", info(`<slab:Category Type="RESTRICTIVE"><slab:GenericValue>A</slab:GenericValue></slab:Category>`)), Label{}, "category 1: missing TagName"},
		{"category without type", doc("ConfidentialityLabel", info(`<slab:Category TagName="C"><slab:GenericValue>A</slab:GenericValue></slab:Category>`)), Label{}, `category 1: "C": missing Type`},
		{"category of unknown type", doc("ConfidentialityLabel", info(`<slab:Category TagName="C" Type="MANDATORY"><slab:GenericValue>A</slab:GenericValue></slab:Category>`)), Label{}, `unknown category type "MANDATORY"`},
		{"category without values", doc("ConfidentialityLabel", info(`<slab:Category TagName="C" Type="RESTRICTIVE"></slab:Category>`)), Label{}, `"C": no GenericValue`},
		{"element inside a value", doc("ConfidentialityLabel", info(`<slab:Category TagName="C" Type="RESTRICTIVE"><slab:GenericValue>A<b/></slab:GenericValue></slab:Category>`)), Label{}, "GenericValue: unexpected element b"},
		{"bad creation time", doc("ConfidentialityLabel", basic+`<slab:CreationDateTime>today</slab:CreationDateTime>`), Label{}, `CreationDateTime: "today" is not an RFC 3339 date-time`},
		{"doctype", `<!DOCTYPE x [<!ENTITY a "b">]>` + doc("ConfidentialityLabel", basic), Label{}, "document type declarations are not allowed"},
		{"second root", doc("ConfidentialityLabel", basic) + `<x/>`, Label{}, "content after the root element"},
		{"text after root", doc("ConfidentialityLabel", basic) + `junk`, Label{}, "text after the root element"},
		{"truncated", doc("ConfidentialityLabel", basic)[:80], Label{}, "unexpected EOF"},
		{"empty", ``, Label{}, "no root element"},
		{"oversized", doc("ConfidentialityLabel", basic+`<!--`+strings.Repeat("x", MaxXMLSize)+`-->`), Label{}, "over the limit of 65536"},
		{"control character", doc("ConfidentialityLabel", info(`<slab:PolicyIdentifier>NATO</slab:PolicyIdentifier><slab:Classification>SEC&#x9;RET</slab:Classification>`)), Label{}, "unprintable character U+0009"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseXML([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseXML error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseXML: %v", err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("ParseXML = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestParseXMLTooManyCategories(t *testing.T) {
	var b strings.Builder
	b.WriteString(`<ConfidentialityLabel xmlns="` + ns + `"><ConfidentialityInformation><PolicyIdentifier>NATO</PolicyIdentifier><Classification>SECRET</Classification>`)
	for i := range MaxCategories + 1 {
		fmt.Fprintf(&b, `<Category TagName="T%d" Type="INFORMATIVE"><GenericValue>V</GenericValue></Category>`, i)
	}
	b.WriteString(`</ConfidentialityInformation></ConfidentialityLabel>`)
	if _, err := ParseXML([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than 32 categories") {
		t.Fatalf("ParseXML error = %v", err)
	}
	b.Reset()
	b.WriteString(`<ConfidentialityLabel xmlns="` + ns + `"><ConfidentialityInformation><PolicyIdentifier>NATO</PolicyIdentifier><Classification>SECRET</Classification><Category TagName="T" Type="INFORMATIVE">`)
	for i := range MaxValues + 1 {
		fmt.Fprintf(&b, `<GenericValue>V%d</GenericValue>`, i)
	}
	b.WriteString(`</Category></ConfidentialityInformation></ConfidentialityLabel>`)
	if _, err := ParseXML([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than 256 values") {
		t.Fatalf("ParseXML error = %v", err)
	}
}

// TestXMLTextXMLRoundTrip converts XML to text and back, with and without a
// normalising registry, and requires the same label and the same bytes.
func TestXMLTextXMLRoundTrip(t *testing.T) {
	r := mustRegistry(t, estonia(), luxembourg())
	inputs := []string{
		`<OriginatorConfidentialityLabel xmlns="` + ns + `"><ConfidentialityInformation>
			<PolicyIdentifier>NATO</PolicyIdentifier><Classification>NATO CONFIDENTIAL</Classification>
			<Category TagName="ReleasableTo" Type="PERMISSIVE"><GenericValue>est</GenericValue><GenericValue>usa</GenericValue></Category>
			<Category TagName="Operation" Type="RESTRICTIVE"><GenericValue>ALPHA/ONE</GenericValue><GenericValue>B, "C"</GenericValue></Category>
		</ConfidentialityInformation><CreationDateTime>2025-01-02T03:04:05.5+01:00</CreationDateTime></OriginatorConfidentialityLabel>`,
		`<s:ConfidentialityLabel xmlns:s="` + ns + `" ReviewDateTime="2031-01-01T00:00:00Z"><s:ConfidentialityInformation>
			<s:PolicyIdentifier URI="urn:x:lux">lux</s:PolicyIdentifier><s:Classification>secret lux</s:Classification>
			<s:PrivacyMark>IN CONFIDENCE // STAFF</s:PrivacyMark>
			<s:Category TagName="Releasable To" Type="PERMISSIVE"><s:GenericValue>BEL</s:GenericValue></s:Category>
			<s:Category TagName="Note" Type="INFORMATIVE"><s:GenericValue>&lt;none&gt; &amp; more</s:GenericValue></s:Category>
		</s:ConfidentialityInformation></s:ConfidentialityLabel>`,
		string(must(sample().XML())),
	}
	for i, in := range inputs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			// Without a registry.
			l1, err := ParseXML([]byte(in))
			if err != nil {
				t.Fatalf("ParseXML: %v", err)
			}
			l2, err := ParseText(l1.String())
			if err != nil {
				t.Fatalf("ParseText(%q): %v", l1.String(), err)
			}
			if !l2.Equal(l1) {
				t.Fatalf("text lost something:\n%#v\n%#v", l1, l2)
			}
			x1, x2 := must(l1.XML()), must(l2.XML())
			if !bytes.Equal(x1, x2) {
				t.Fatalf("XML differs after text:\n%s\n%s", x1, x2)
			}
			// With a registry that normalises.
			n1, err := r.ParseXML([]byte(in))
			if err != nil {
				t.Fatalf("Registry.ParseXML: %v", err)
			}
			n2, err := r.ParseText(n1.String())
			if err != nil {
				t.Fatalf("Registry.ParseText(%q): %v", n1.String(), err)
			}
			n3, err := r.ParseXML(must(n2.XML()))
			if err != nil {
				t.Fatalf("Registry.ParseXML: %v", err)
			}
			if !n2.Equal(n1) || !n3.Equal(n1) {
				t.Fatalf("normalised round trip differs:\n%q\n%q\n%q", n1, n2, n3)
			}
			if !bytes.Equal(must(n1.XML()), must(n3.XML())) {
				t.Fatal("normalised XML differs after the round trip")
			}
		})
	}
}

// TestLargestLabelFitsEveryEncoding builds a label at the limits, full of
// characters that every encoding must escape, and requires each encoding to
// stay under its cap and parse back.
func TestLargestLabelFitsEveryEncoding(t *testing.T) {
	l := Label{Policy: `"P"`, Classification: `"&"`}
	budget := MaxLabelBytes - len(l.Policy) - len(l.Classification)
	perValue := budget/MaxValues - 1
	for c := range MaxCategories {
		cat := Category{TagName: fmt.Sprintf(`"%02d"`, c), Type: Restrictive}
		budget -= len(cat.TagName)
		for v := range MaxValues / MaxCategories {
			cat.Values = append(cat.Values, fmt.Sprintf("%03d", v)+strings.Repeat(`"`, perValue-3))
		}
		l.Categories = append(l.Categories, cat)
	}
	if err := l.Validate(); err != nil {
		t.Fatalf("test label invalid: %v", err)
	}
	x := must(l.XML())
	if len(x) > MaxXMLSize {
		t.Fatalf("XML is %d bytes, over MaxXMLSize", len(x))
	}
	if back, err := ParseXML(x); err != nil || !back.Equal(l) {
		t.Fatalf("ParseXML: %v", err)
	}
	s := l.String()
	if len(s) > MaxTextSize {
		t.Fatalf("text is %d bytes, over MaxTextSize", len(s))
	}
	if back, err := ParseText(s); err != nil || !back.Equal(l) {
		t.Fatalf("ParseText: %v", err)
	}
	b := Binding{Label: l, KeyID: "k", Signature: make([]byte, MaxSignatureSize)}
	for i := range MaxDataRefs {
		b.Data = append(b.Data, DataRef{URI: fmt.Sprintf("s3://v/%d", i) + strings.Repeat(`"`, MaxFieldLen-10), DigestAlg: DigestSHA256, Digest: make([]byte, 32)})
	}
	j := must(b.MarshalJSON())
	if len(j) > MaxBindingSize {
		t.Fatalf("binding JSON is %d bytes, over MaxBindingSize", len(j))
	}
	if _, err := ParseBinding(j); err != nil {
		t.Fatalf("ParseBinding: %v", err)
	}
	t.Logf("largest label: XML %d, text %d, binding JSON %d bytes", len(x), len(s), len(j))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
