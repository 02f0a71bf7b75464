package label

import (
	"bytes"
	"testing"
)

// FuzzParseXML: whatever ParseXML accepts must survive XML → label → XML
// and XML → text → label unchanged, and normalising must not panic.
func FuzzParseXML(f *testing.F) {
	f.Add(must(sample().XML()))
	f.Add([]byte(`<ConfidentialityLabel xmlns="` + NamespaceLabel + `"><ConfidentialityInformation><PolicyIdentifier>NATO</PolicyIdentifier><Classification>NATO SECRET</Classification><Category TagName="ReleasableTo" Type="PERMISSIVE"><GenericValue>est</GenericValue></Category></ConfidentialityInformation></ConfidentialityLabel>`))
	f.Add([]byte(`<x:L xmlns:x="` + NamespaceLabel + `" ReviewDateTime="2030-01-01T00:00:00"><x:ConfidentialityInformation><x:PolicyIdentifier URI="u">COSMIC</x:PolicyIdentifier><x:Classification>TOP SECRET</x:Classification><x:PrivacyMark>"//"</x:PrivacyMark></x:ConfidentialityInformation></x:L>`))
	f.Add([]byte(`<!DOCTYPE a><a/>`))
	reg := mustRegistry(f, estonia(), luxembourg())
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseXML(data)
		if err != nil {
			return
		}
		x, err := l.XML()
		if err != nil {
			t.Fatalf("XML of an accepted label: %v", err)
		}
		back, err := ParseXML(x)
		if err != nil {
			t.Fatalf("ParseXML(XML()): %v\n%s", err, x)
		}
		if !back.Equal(l) {
			t.Fatalf("XML round trip changed the label:\n%#v\n%#v", l, back)
		}
		txt, err := ParseText(l.String())
		if err != nil {
			t.Fatalf("ParseText(%q): %v", l.String(), err)
		}
		if !txt.Equal(l) {
			t.Fatalf("text round trip changed the label:\n%#v\n%#v", l, txt)
		}
		if !bytes.Equal(txt.Canonical(), l.Canonical()) {
			t.Fatal("equal labels with different canonical bytes")
		}
		if n, err := reg.Normalize(l); err == nil {
			if again, err := reg.Normalize(n); err != nil || !again.Equal(n) {
				t.Fatalf("Normalize not idempotent: %v", err)
			}
		}
	})
}

// FuzzParseText: parse → String → parse must give an equal label.
func FuzzParseText(f *testing.F) {
	for _, s := range []string{
		sample().String(),
		"NATO SECRET//REL TO EST, LUX, USA",
		`"EU Council" "A/B"//RESTRICTIVE "Tag: x": "a,b", plain//PRIVACY "say \"hi\""`,
		"COSMIC TOP SECRET//rel to usa//CREATED 2025-01-01T00:00:00+02:00",
		"NATO SECRET//INFORMATIVE a: b//PERMISSIVE c: d, e",
		`NATO "\u00e9\x41"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseText(s)
		if err != nil {
			return
		}
		out := l.String()
		back, err := ParseText(out)
		if err != nil {
			t.Fatalf("ParseText(String()) of %q: %v", out, err)
		}
		if !back.Equal(l) {
			t.Fatalf("text round trip changed the label:\n%#v\n%#v", l, back)
		}
		if out2 := back.String(); out2 != out {
			t.Fatalf("String not stable: %q then %q", out, out2)
		}
		if _, err := l.XML(); err != nil {
			t.Fatalf("XML of an accepted label: %v", err)
		}
	})
}

// FuzzBinding: whatever ParseBinding accepts must re-encode to an object
// that parses to the same binding, and Verify must not panic.
func FuzzBinding(f *testing.F) {
	k := newKey("node-1")
	b := sampleBinding()
	if err := b.Sign(k); err != nil {
		f.Fatal(err)
	}
	f.Add(must(b.MarshalJSON()))
	f.Add(must(sampleBinding().MarshalJSON()))
	f.Add([]byte(`{"data":[{"digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","digestAlg":"blake3","uri":"x"}],"label":{"classification":"S","policy":"P"},"type":"application/vnd.nato.bindingdataobject+json","version":1}`))
	v := verifierFor(k)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBinding(data)
		if err != nil {
			return
		}
		_ = b.Verify(v)
		j, err := b.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON of an accepted binding: %v", err)
		}
		back, err := ParseBinding(j)
		if err != nil {
			t.Fatalf("ParseBinding(MarshalJSON()): %v", err)
		}
		if !back.Label.Equal(b.Label) || back.KeyID != b.KeyID || !bytes.Equal(back.Signature, b.Signature) || len(back.Data) != len(b.Data) {
			t.Fatal("JSON round trip changed the binding")
		}
		m1, err1 := b.SignedBytes()
		m2, err2 := back.SignedBytes()
		if err1 != nil || err2 != nil || !bytes.Equal(m1, m2) {
			t.Fatalf("signed bytes differ after a round trip: %v %v", err1, err2)
		}
		if _, err := b.XML(); err != nil {
			t.Fatalf("XML of an accepted binding: %v", err)
		}
	})
}
