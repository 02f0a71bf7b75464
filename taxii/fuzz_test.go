package taxii

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
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

// plainSealer seals nothing, so that the fuzzer reaches the parsing of a
// token's content (a real sealer's AEAD refuses every forgery first).
type plainSealer struct{}

func (plainSealer) SealToken(b []byte) ([]byte, error) { return b, nil }
func (plainSealer) OpenToken(b []byte) ([]byte, error) { return b, nil }

// gcmSealer is a real sealer, as the node's keyring: AES-GCM.
type gcmSealer struct{ a cipher.AEAD }

func (g gcmSealer) SealToken(b []byte) ([]byte, error) {
	// A nonce from the content, so that every fuzzing worker makes the
	// same tokens (a test sealer only).
	sum := sha256.Sum256(b)
	nonce := sum[:g.a.NonceSize()]
	return g.a.Seal(nonce, nonce, b, nil), nil
}
func (g gcmSealer) OpenToken(b []byte) ([]byte, error) {
	if len(b) < g.a.NonceSize() {
		return nil, errors.New("short")
	}
	return g.a.Open(nil, b[:g.a.NonceSize()], b[g.a.NonceSize():], nil)
}

// FuzzNextToken: the cursor of a listing (next) never panics, is accepted
// only for the listing it was made for, and gives back the position it
// was made with; under a real sealer nothing but a token the server made
// is accepted.
func FuzzNextToken(f *testing.F) {
	plain := &Store{cfg: StoreConfig{Tokens: plainSealer{}}}
	block, _ := aes.NewCipher(make([]byte, 32))
	a, _ := cipher.NewGCM(block)
	sealed := &Store{cfg: StoreConfig{Tokens: gcmSealer{a}}}
	made := map[string]int64{}
	for _, pos := range []int64{0, 1, 1764900000000000, -1 << 63} {
		tok, _ := plain.sealNext(tokenList, fuzzColl, "", pos)
		f.Add(tok)
		tok, _ = sealed.sealNext(tokenList, fuzzColl, "", pos)
		made[tok] = pos
		f.Add(tok)
	}
	tok, _ := plain.sealNext(tokenVersions, fuzzColl, "indicator--830b74d3-00d1-4c74-804b-a83ae16031a8", 5)
	f.Add(tok)
	f.Add("")
	f.Add("!!!")
	f.Fuzz(func(t *testing.T, tok string) {
		if pos, err := sealed.openNext(tok, tokenList, fuzzColl, ""); err == nil {
			if want, ok := made[tok]; !ok || want != pos {
				t.Fatalf("a token the server never made was accepted: %q → %d", tok, pos)
			}
		} else if !errors.Is(err, ErrFilter) {
			t.Fatalf("error %v is not a filter error (400)", err)
		}
		pos, err := plain.openNext(tok, tokenList, fuzzColl, "")
		if err != nil {
			if !errors.Is(err, ErrFilter) {
				t.Fatalf("error %v is not a filter error (400)", err)
			}
			return
		}
		again, err := plain.sealNext(tokenList, fuzzColl, "", pos)
		if err != nil {
			t.Fatal(err)
		}
		if p2, err := plain.openNext(again, tokenList, fuzzColl, ""); err != nil || p2 != pos {
			t.Fatalf("position %d does not survive a round trip: %d %v", pos, p2, err)
		}
		if _, err := plain.openNext(tok, tokenList, "another-collection", ""); err == nil {
			t.Fatalf("token %q accepted for another collection", tok)
		}
	})
}

// fuzzTransport answers every request with one fuzzed response.
type fuzzTransport struct {
	status int
	header string
	body   []byte
}

func (ft fuzzTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h := http.Header{}
	h.Set("Content-Type", MediaTAXII)
	h.Set("X-TAXII-Date-Added-Last", ft.header)
	return &http.Response{StatusCode: ft.status, Header: h, Body: io.NopCloser(bytes.NewReader(ft.body)), Request: r}, nil
}

// FuzzClientResponses: what another TAXII server answers (a sync's input)
// never panics the client; an accepted page holds JSON objects only.
func FuzzClientResponses(f *testing.F) {
	f.Add(200, "2026-12-01T10:00:00.000000Z", mustRead(f, "testdata/incident.json"))
	f.Add(200, "", []byte(`{"more":true,"next":"abc","objects":[]}`))
	f.Add(400, "x", []byte(`{"title":"Bad","description":"no","http_status":"400"}`))
	f.Add(202, "", []byte(`{"id":"x","status":"complete","total_count":1}`))
	f.Fuzz(func(t *testing.T, status int, header string, body []byte) {
		if status < 200 || status > 599 || status == 429 || status == 502 || status == 503 || status == 504 {
			return
		}
		c := &Client{URL: "https://cti.example/taxii2/api/collections/x/", HTTP: &http.Client{Transport: fuzzTransport{status, header, body}}, Attempts: 1}
		p, err := c.GetObjects(context.Background(), time.Time{}, "", 10)
		if err == nil {
			for _, o := range p.Objects {
				var m map[string]json.RawMessage
				if json.Unmarshal(o, &m) != nil {
					t.Fatalf("object %q is not a JSON object", o)
				}
			}
		}
		c.AddObjects(context.Background(), []json.RawMessage{json.RawMessage(`{}`)}, 0)
	})
}

const fuzzColl = "3c6a9d4e-2b1f-4c8e-9a57-0d9e6b1f2a30"
