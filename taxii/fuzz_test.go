package taxii

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"
	"unicode/utf8"
)

// FuzzParseObject: the STIX parser (and the library under it) never
// panics, and what it accepts is well formed: an identifier of its type,
// 2.1, the bytes a compact JSON object that parses again to the same.
func FuzzParseObject(f *testing.F) {
	env, err := ParseEnvelope(mustRead(f, "testdata/incident.json"), 100)
	if err != nil {
		f.Fatal(err)
	}
	for _, o := range env.Objects {
		f.Add([]byte(o))
	}
	f.Add(sdo(f, map[string]any{"created": 1}))
	f.Add(sdo(f, map[string]any{"kill_chain_phases": []any{1}}))
	f.Add(sdo(f, map[string]any{"granular_markings": []any{map[string]any{"marking_ref": TLP2Red, "selectors": []string{"pattern"}}}}))
	f.Add([]byte(`{"type":"x-y","spec_version":"2.1","id":"x-y--0693b0af-4746-4438-a437-8e423ec07442","created":"2026-03-02T10:00:00.000Z","modified":"2026-03-02T10:00:00.000Z"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		o, err := ParseObject(raw)
		if err != nil {
			if o != nil {
				t.Fatal("an object and an error")
			}
			return
		}
		if typ, err := identifierType(o.ID); err != nil || typ != o.Type {
			t.Fatalf("accepted id %q of type %q", o.ID, o.Type)
		}
		if o.SpecVersion != SpecVersion {
			t.Fatalf("accepted spec_version %q", o.SpecVersion)
		}
		if !json.Valid(o.Raw) || !utf8.Valid(o.Raw) && utf8.Valid(raw) {
			t.Fatalf("stored bytes are not JSON: %q", o.Raw)
		}
		again, err := ParseObject(o.Raw)
		if err != nil || again.ID != o.ID || !bytes.Equal(again.Raw, o.Raw) || !again.Version().Equal(o.Version()) || len(again.Markings) != len(o.Markings) {
			t.Fatalf("the stored form does not parse to the same object: %v", err)
		}
		for _, m := range o.Markings {
			if typ, err := identifierType(m); err != nil || typ != "marking-definition" {
				t.Fatalf("marking %q", m)
			}
		}
	})
}

// FuzzParseEnvelope: never panics; every object it returns is a JSON
// object; the count bound holds.
func FuzzParseEnvelope(f *testing.F) {
	f.Add(mustRead(f, "testdata/incident.json"))
	f.Add([]byte(`{"objects":[{"a":1}],"more":true,"next":"x"}`))
	f.Add([]byte(`{"objects":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := ParseEnvelope(body, 5)
		if err != nil {
			return
		}
		if len(env.Objects) > 5 {
			t.Fatalf("%d objects", len(env.Objects))
		}
		for _, o := range env.Objects {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(o, &m); err != nil {
				t.Fatalf("object %q: %v", o, err)
			}
		}
	})
}

// FuzzParseFilter: never panics; the limit stays within bounds; every id
// and type kept is valid.
func FuzzParseFilter(f *testing.F) {
	f.Add("added_after=2026-03-02T08:30:00Z&limit=10&match[type]=indicator&match[version]=all")
	f.Add("match[id]=indicator--830b74d3-00d1-4c74-804b-a83ae16031a8&next=abc")
	f.Add("match[version]=first,last,2026-03-02T08:30:00.123Z&match[spec_version]=2.0,2.1")
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		fl, err := ParseFilter(q, paramAddedAfter|paramLimit|paramNext|paramID|paramType|paramVersion|paramSpecVersion)
		if err != nil {
			return
		}
		if fl.Limit < 1 || fl.Limit > MaxLimit {
			t.Fatalf("limit %d", fl.Limit)
		}
		for _, id := range fl.IDs {
			if !ValidIdentifier(id) {
				t.Fatalf("id %q", id)
			}
		}
		for _, typ := range fl.Types {
			if validType(typ) != nil {
				t.Fatalf("type %q", typ)
			}
		}
	})
}
