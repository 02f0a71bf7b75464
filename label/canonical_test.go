package label

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
)

func TestCanonicalGolden(t *testing.T) {
	c := sample().Canonical()
	golden(t, "sample.json", c)
	if got, want := sample().Digest(), sha256.Sum256(c); got != want {
		t.Fatalf("Digest = %x, want sha256 of Canonical %x", got, want)
	}
}

// TestCanonicalIsJCS re-encodes the canonical bytes through a generic map,
// which encoding/json writes with sorted keys, and requires the same bytes.
func TestCanonicalIsJCS(t *testing.T) {
	for _, l := range []Label{
		sample(),
		{Policy: "NATO", Classification: "SECRET"},
		{Policy: "EST", Classification: "TÄIESTI SALAJANE", PrivacyMark: `<&> "x" \ y`},
	} {
		c := l.Canonical()
		var m any
		if err := json.Unmarshal(c, &m); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
		if got := bytes.TrimSuffix(b.Bytes(), []byte("\n")); !bytes.Equal(got, c) {
			t.Errorf("canonical bytes are not in sorted-key compact form:\n%s\n%s", c, got)
		}
	}
}

func TestCanonicalDistinguishesLabels(t *testing.T) {
	base := sample()
	edits := map[string]func(*Label){
		"classification": func(l *Label) { l.Classification = "CONFIDENTIAL" },
		"value order":    func(l *Label) { v := l.Categories[0].Values; v[0], v[1] = v[1], v[0] },
		"category type":  func(l *Label) { l.Categories[2].Type = Informative },
		"created":        func(l *Label) { l.Created = l.Created.Add(1) },
		"no review":      func(l *Label) { l.ReviewAt = base.ReviewAt.AddDate(-1, 0, 0) },
		"privacy mark":   func(l *Label) { l.PrivacyMark = "" },
	}
	for name, edit := range edits {
		l := base.Clone()
		edit(&l)
		if l.Digest() == base.Digest() {
			t.Errorf("%s: digest unchanged", name)
		}
	}
}

func TestLabelJSON(t *testing.T) {
	j, err := json.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(j, sample().Canonical()) {
		t.Fatalf("MarshalJSON is not the canonical form:\n%s", j)
	}
	var back Label
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if !back.Equal(sample()) {
		t.Fatalf("JSON round trip = %q", back)
	}
	for name, tt := range map[string]struct{ in, wantErr string }{
		"unknown field":  {`{"policy":"NATO","classification":"SECRET","caveat":"X"}`, `unknown field "caveat"`},
		"missing class":  {`{"policy":"NATO"}`, "classification: missing"},
		"bad type":       {`{"policy":"NATO","classification":"S","categories":[{"tagName":"A","type":"X","values":["1"]}]}`, `categories[0]: unknown category type "X"`},
		"bad time":       {`{"policy":"NATO","classification":"S","created":"now"}`, `created: "now" is not an RFC 3339 date-time`},
		"trailing data":  {`{"policy":"NATO","classification":"S"} {}`, "data after the JSON value"},
		"not an object":  {`"NATO SECRET"`, "cannot unmarshal"},
		"invalid label":  {`{"policy":"NATO","classification":" S"}`, "leading or trailing space"},
		"invalid encode": {"", ""},
	} {
		if tt.in == "" {
			if _, err := json.Marshal(Label{}); err == nil {
				t.Errorf("%s: Marshal of the zero label succeeded", name)
			}
			continue
		}
		var l Label
		if err := l.UnmarshalJSON([]byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: UnmarshalJSON error = %v, want it to contain %q", name, err, tt.wantErr)
		}
	}
}

func TestLabelText(t *testing.T) {
	txt, err := sample().MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	var back Label
	if err := back.UnmarshalText(txt); err != nil {
		t.Fatal(err)
	}
	if !back.Equal(sample()) {
		t.Fatalf("text round trip = %q", back)
	}
	if err := back.UnmarshalText([]byte("NATO")); err == nil {
		t.Fatal("UnmarshalText accepted a head without a classification")
	}
	if _, err := (Label{}).MarshalText(); err == nil {
		t.Fatal("MarshalText accepted the zero label")
	}
}
