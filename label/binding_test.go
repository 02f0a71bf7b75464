package label

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// edKey is a test Signer; in the node, keys live in custody.
type edKey struct {
	id   string
	priv ed25519.PrivateKey
}

func newKey(id string) edKey {
	seed := sha256.Sum256([]byte("test key " + id))
	return edKey{id: id, priv: ed25519.NewKeyFromSeed(seed[:])}
}

func (k edKey) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(k.priv, msg), nil }
func (k edKey) KeyID() string                   { return k.id }

// edVerifier knows public keys by id.
type edVerifier map[string]ed25519.PublicKey

func (v edVerifier) Verify(id string, msg, sig []byte) error {
	pk, ok := v[id]
	if !ok {
		return fmt.Errorf("unknown key %q", id)
	}
	if !ed25519.Verify(pk, msg, sig) {
		return errors.New("ed25519 signature invalid")
	}
	return nil
}

func verifierFor(keys ...edKey) edVerifier {
	v := edVerifier{}
	for _, k := range keys {
		v[k.id] = k.priv.Public().(ed25519.PublicKey)
	}
	return v
}

func sampleBinding() Binding {
	d := sha256.Sum256([]byte("the object's bytes"))
	return Binding{
		Label: sample(),
		Data: []DataRef{{
			URI: "s3://registry/land/parcels.csv?versionId=1", ContentType: "text/csv",
			DigestAlg: DigestSHA256, Digest: d[:],
		}},
	}
}

func signed(t *testing.T, k edKey) Binding {
	t.Helper()
	b := sampleBinding()
	if err := b.Sign(k); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return b
}

func TestBindingSignVerify(t *testing.T) {
	node, other := newKey("node-1"), newKey("node-2")
	b := signed(t, node)
	if b.KeyID != "node-1" || len(b.Signature) != ed25519.SignatureSize {
		t.Fatalf("Sign set key %q and a %d-byte signature", b.KeyID, len(b.Signature))
	}
	if err := b.Verify(verifierFor(node, other)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	j, err := b.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "binding.json", j)
	back, err := ParseBinding(j)
	if err != nil {
		t.Fatalf("ParseBinding: %v", err)
	}
	if err := back.Verify(verifierFor(node)); err != nil {
		t.Fatalf("Verify after JSON: %v", err)
	}
	if !back.Label.Equal(b.Label) || back.KeyID != b.KeyID || !bytes.Equal(back.Signature, b.Signature) {
		t.Fatal("JSON round trip changed the binding")
	}
	msg, _ := b.SignedBytes()
	if !bytes.HasPrefix(msg, []byte(`{"data":[`)) || bytes.Contains(msg, []byte(`"signature"`)) ||
		!bytes.Contains(msg, []byte(`"type":"`+BindingMediaType+`"`)) || !bytes.Contains(msg, []byte(`"keyId":"node-1"`)) {
		t.Fatalf("signed bytes are not the binding without its signature:\n%s", msg)
	}
	if err := (sampleBinding()).Verify(verifierFor(node)); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("Verify of an unsigned binding = %v, want ErrUnsigned", err)
	}
}

// TestBindingReformattedStillVerifies: the signature covers the canonical
// form, so whitespace and key order added in transit do not break it.
func TestBindingReformattedStillVerifies(t *testing.T) {
	k := newKey("node-1")
	j := must(signed(t, k).MarshalJSON())
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	pretty, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBinding(pretty)
	if err != nil {
		t.Fatalf("ParseBinding: %v", err)
	}
	if err := b.Verify(verifierFor(k)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// TestBindingTamper plays the attacker: it edits a signed binding object as
// bytes on the wire and requires Verify to fail.
func TestBindingTamper(t *testing.T) {
	node, attacker := newKey("node-1"), newKey("attacker")
	otherLabel := sample()
	otherLabel.Classification = "UNCLASSIFIED"
	otherSigned := Binding{Label: otherLabel, Data: sampleBinding().Data}
	if err := otherSigned.Sign(node); err != nil {
		t.Fatal(err)
	}
	splice := must(otherSigned.MarshalJSON())
	type obj = map[string]any
	label := func(m obj) obj { return m["label"].(obj) }
	cat := func(m obj, i int) obj { return label(m)["categories"].([]any)[i].(obj) }
	ref := func(m obj) obj { return m["data"].([]any)[0].(obj) }
	tests := []struct {
		name    string
		edit    func(m obj)
		wantErr error
	}{
		{"lower the classification", func(m obj) { label(m)["classification"] = "UNCLASSIFIED" }, ErrBadSignature},
		{"change the policy", func(m obj) { label(m)["policy"] = "EST" }, ErrBadSignature},
		{"add a nation", func(m obj) { c := cat(m, 0); c["values"] = append(c["values"].([]any), "RUS") }, ErrBadSignature},
		{"drop a restrictive value", func(m obj) { cat(m, 1)["values"] = []any{"ALPHA"} }, ErrBadSignature},
		{"turn restrictive into informative", func(m obj) { cat(m, 1)["type"] = "INFORMATIVE" }, ErrBadSignature},
		{"drop a category", func(m obj) { label(m)["categories"] = label(m)["categories"].([]any)[:1] }, ErrBadSignature},
		{"move the review date", func(m obj) { label(m)["reviewAt"] = "2099-01-01T00:00:00Z" }, ErrBadSignature},
		{"splice another label", func(m obj) {
			var o obj
			if err := json.Unmarshal(splice, &o); err != nil {
				panic(err)
			}
			m["label"] = o["label"]
		}, ErrBadSignature},
		{"change the data digest", func(m obj) {
			d := sha256.Sum256([]byte("other bytes"))
			ref(m)["digest"] = d[:]
		}, ErrBadSignature},
		{"change the digest algorithm", func(m obj) { ref(m)["digestAlg"] = DigestBLAKE3 }, ErrBadSignature},
		{"point at other data", func(m obj) { ref(m)["uri"] = "s3://registry/other" }, ErrBadSignature},
		{"add a data reference", func(m obj) { m["data"] = append(m["data"].([]any), ref(m)) }, ErrBadSignature},
		{"claim another key", func(m obj) { m["keyId"] = "attacker" }, ErrBadSignature},
		{"flip a signature bit", func(m obj) {
			sig := must(signed(t, node).MarshalJSON())
			var o struct{ Signature []byte }
			_ = json.Unmarshal(sig, &o)
			o.Signature[7] ^= 1
			m["signature"] = o.Signature
		}, ErrBadSignature},
		{"truncate the signature", func(m obj) { m["signature"] = make([]byte, 10) }, ErrBadSignature},
		{"re-sign with an unknown key", func(m obj) {
			b := sampleBinding()
			b.Label.Classification = "UNCLASSIFIED"
			_ = b.Sign(attacker)
			var o obj
			_ = json.Unmarshal(must(b.MarshalJSON()), &o)
			for k, v := range o {
				m[k] = v
			}
		}, ErrBadSignature},
		{"strip the signature", func(m obj) { delete(m, "signature"); delete(m, "keyId") }, ErrUnsigned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m obj
			if err := json.Unmarshal(must(signed(t, node).MarshalJSON()), &m); err != nil {
				t.Fatal(err)
			}
			tt.edit(m)
			wire, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ParseBinding(wire)
			if err != nil {
				t.Fatalf("ParseBinding: %v (the tampered object should still parse)", err)
			}
			err = b.Verify(verifierFor(node))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == ErrBadSignature && !strings.Contains(err.Error(), `key "`+b.KeyID+`"`) {
				t.Fatalf("error %q does not name the key", err)
			}
		})
	}
}

func TestBindingCheckData(t *testing.T) {
	b := sampleBinding()
	ref := b.Data[0]
	digest, err := SHA256(strings.NewReader("the object's bytes"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		uri, alg    string
		digest      []byte
		wantErr     bool
		wantMessage string
	}{
		{"match", ref.URI, DigestSHA256, digest, false, ""},
		{"other bytes", ref.URI, DigestSHA256, must(SHA256(strings.NewReader("tampered"))), true, "digest differs"},
		{"other algorithm", ref.URI, DigestBLAKE3, digest, true, "bound with a sha-256 digest, not blake3"},
		{"other object", "s3://registry/other", DigestSHA256, digest, true, "not among the bound data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.CheckData(tt.uri, tt.alg, tt.digest)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("CheckData: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrDataMismatch) || !strings.Contains(err.Error(), tt.wantMessage) {
				t.Fatalf("CheckData = %v, want ErrDataMismatch with %q", err, tt.wantMessage)
			}
		})
	}
}

func TestParseBindingErrors(t *testing.T) {
	good := must(signed(t, newKey("k")).MarshalJSON())
	edit := func(f func(map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		return string(must(json.Marshal(m)))
	}
	ref := func(m map[string]any) map[string]any { return m["data"].([]any)[0].(map[string]any) }
	tests := []struct{ name, in, wantErr string }{
		{"wrong type", edit(func(m map[string]any) { m["type"] = "application/json" }), `type "application/json", want "` + BindingMediaType + `"`},
		{"future version", edit(func(m map[string]any) { m["version"] = 2 }), "version 2 unsupported"},
		{"unknown field", edit(func(m map[string]any) { m["extra"] = true }), `unknown field "extra"`},
		{"no data", edit(func(m map[string]any) { m["data"] = []any{} }), "no data references"},
		{"short digest", edit(func(m map[string]any) { ref(m)["digest"] = []byte{1, 2} }), "digest: 2 bytes, want 32 for sha-256"},
		{"unknown algorithm", edit(func(m map[string]any) { ref(m)["digestAlg"] = "md5" }), `digest algorithm: "md5" unknown`},
		{"no uri", edit(func(m map[string]any) { ref(m)["uri"] = "" }), "uri: missing"},
		{"signature without key", edit(func(m map[string]any) { delete(m, "keyId") }), "signature without a key id"},
		{"bad label", edit(func(m map[string]any) { delete(m["label"].(map[string]any), "classification") }), "label: classification: missing"},
		{"oversized", `{"data":[],"pad":"` + strings.Repeat("x", MaxBindingSize) + `"}`, "over the limit of 131072"},
		{"trailing", string(good) + "{}", "data after the JSON value"},
		{"not json", "<xml/>", "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBinding([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseBinding error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestBindingXML(t *testing.T) {
	b := signed(t, newKey("node-1"))
	b.Data = append(b.Data, DataRef{URI: "s3://registry/a&b", DigestAlg: DigestBLAKE3, Digest: make([]byte, 32)})
	x, err := b.XML()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "binding.xml", x)
	// The embedded label is a 4774 label that parses back to the same.
	s := string(x)
	start := strings.Index(s, "<slab:")
	end := strings.Index(s, "</mb:Metadata>")
	if start < 0 || end < start {
		t.Fatalf("no label inside mb:Metadata:\n%s", x)
	}
	l, err := ParseXML([]byte(s[start:end]))
	if err != nil {
		t.Fatalf("ParseXML of the embedded label: %v", err)
	}
	if !l.Equal(b.Label) {
		t.Fatalf("embedded label = %q, want %q", l, b.Label)
	}
	if !strings.Contains(s, `<mb:DataReference URI="s3://registry/a&amp;b"/>`) {
		t.Fatalf("data reference not escaped:\n%s", x)
	}
	if _, err := (Binding{Label: sample()}).XML(); err == nil {
		t.Fatal("XML of a binding without data succeeded")
	}
}

type failingSigner struct{}

func (failingSigner) Sign([]byte) ([]byte, error) { return nil, errors.New("hsm offline") }
func (failingSigner) KeyID() string               { return "hsm-1" }

func TestBindingSignErrors(t *testing.T) {
	b := sampleBinding()
	if err := b.Sign(failingSigner{}); err == nil || !strings.Contains(err.Error(), `key "hsm-1": hsm offline`) {
		t.Fatalf("Sign error = %v", err)
	}
	bad := sampleBinding()
	bad.Label.Classification = ""
	if err := bad.Sign(newKey("k")); err == nil || !strings.Contains(err.Error(), "classification: missing") {
		t.Fatalf("Sign of an invalid binding: %v", err)
	}
}
