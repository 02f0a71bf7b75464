package manifest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/erasure"
)

// testKeys is a Keys with a fixed signing key and no encryption, so that
// fuzzing reaches the decoder; the custody package tests the real sealing.
type testKeys struct {
	priv ed25519.PrivateKey
	id   [8]byte
}

func newTestKeys(seed byte) *testKeys {
	return &testKeys{priv: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)), id: [8]byte{seed}}
}

func (k *testKeys) SealManifest(aad, pt []byte) ([8]byte, []byte, error) {
	return k.id, append([]byte(nil), pt...), nil
}

func (k *testKeys) OpenManifest(id [8]byte, aad, sealed []byte) ([]byte, error) {
	if id != k.id {
		return nil, errors.New("other key")
	}
	return sealed, nil
}
func (k *testKeys) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(k.priv, msg), nil }
func (k *testKeys) Verify(msg, sig []byte) error {
	if !ed25519.Verify(k.priv.Public().(ed25519.PublicKey), msg, sig) {
		return errors.New("bad signature")
	}
	return nil
}

func sample() *Manifest {
	return &Manifest{
		Node: "node-1", Vault: "registry", Key: "2026/population.db", Version: ID{1, 2, 3},
		Created: 1764000000000000000, Size: 3000, ETag: "\"abc\"", ContentType: "application/octet-stream",
		Meta: map[string]string{"origin": "ria"}, K: 4, M: 2, StripeSize: 1 << 20,
		Parts: []Part{{Number: 1, Size: 3000, Blob: ID{9}, Sites: []string{"a", "b", "c", "d", "e", "f"}, Inline: true, WrappedKey: make([]byte, 61)}},
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := newTestKeys(1)
	env, err := Seal(sample(), k)
	if err != nil {
		t.Fatal(err)
	}
	n, err := EnvelopeLen(append(bytes.Clone(env), "inline shard bytes"...))
	if err != nil || n != len(env) {
		t.Fatalf("EnvelopeLen = %d, %v; want %d", n, err, len(env))
	}
	m, err := Open(env, k)
	if err != nil {
		t.Fatal(err)
	}
	if m.Key != "2026/population.db" || m.Meta["origin"] != "ria" || m.Parts[0].Sites[5] != "f" {
		t.Fatalf("round trip lost data: %+v", m)
	}
}

func TestOpenRejectsTampering(t *testing.T) {
	k := newTestKeys(1)
	env, _ := Seal(sample(), k)
	flip := func(i int) []byte { b := bytes.Clone(env); b[i] ^= 1; return b }
	cases := map[string][]byte{
		"flipped body":      flip(headerSize + 10),
		"flipped signature": flip(len(env) - 1),
		"flipped key id":    flip(6),
		"truncated":         env[:len(env)-1],
		"extended":          append(bytes.Clone(env), 0),
		"bad magic":         flip(0),
		"empty":             nil,
	}
	for name, b := range cases {
		if _, err := Open(b, k); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := Open(env, newTestKeys(2)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("another node's keys opened the envelope: %v", err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Manifest)
		want   string
	}{
		{"size mismatch", func(m *Manifest) { m.Size = 1 }, "parts hold 3000 bytes"},
		{"site count", func(m *Manifest) { m.Parts[0].Sites = m.Parts[0].Sites[:5] }, "5 shard sites, want 6"},
		{"bad vault", func(m *Manifest) { m.Vault = "UP" }, "vault name"},
		{"empty key", func(m *Manifest) { m.Key = "" }, "object key"},
		{"nul key", func(m *Manifest) { m.Key = "a\x00b" }, "NUL"},
		{"coding", func(m *Manifest) { m.K = 0 }, "invalid coding"},
		{"zero version", func(m *Manifest) { m.Version = ID{} }, "zero version"},
		{"marker with data", func(m *Manifest) { m.DeleteMarker = true }, "delete marker with data"},
		{"inline too big", func(m *Manifest) { m.StripeSize = 100 }, "inline part larger"},
		{"unknown block checksum", func(m *Manifest) { m.Parts[0].BlockSum = 9 }, "part 1: unknown shard block checksum algorithm 9"},
		{"parts out of order", func(m *Manifest) {
			p := m.Parts[0]
			p.Size = 0
			m.Parts = append(m.Parts, p)
		}, "not increasing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := sample()
			m.Format = Format
			tc.mutate(m)
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestKeysAreOpaqueNames(t *testing.T) {
	for _, k := range []string{"../../etc/passwd", "/abs/path", "a\\b", "☃/x", strings.Repeat("k", MaxKeyLen)} {
		if err := ValidKey(k); err != nil {
			t.Errorf("ValidKey(%q) = %v", k, err)
		}
	}
}

func TestBlobNames(t *testing.T) {
	id := ID{0xab, 0xcd}
	name := BlobName(id)
	back, ok := ParseBlobName(name)
	if !ok || back != id {
		t.Fatalf("ParseBlobName(%q) = %v, %v", name, back, ok)
	}
	for _, bad := range []string{"m/ab/xyz", "s/ab/" + id.String(), "m/cd/" + id.String(), "m/" + id.String()} {
		if _, ok := ParseBlobName(bad); ok {
			t.Errorf("ParseBlobName(%q) accepted", bad)
		}
	}
}

func FuzzOpen(f *testing.F) {
	k := newTestKeys(1)
	env, _ := Seal(sample(), k)
	f.Add(env)
	f.Add(env[:headerSize])
	f.Add([]byte("EMBM\x01"))
	if j, err := SealFormat(sample(), k, FormatJSON); err == nil {
		f.Add(j)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Open(b, k)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Open returned an invalid manifest: %v", err)
		}
	})
}

func FuzzDecode(f *testing.F) {
	if j, err := SealFormat(sample(), newTestKeys(1), FormatJSON); err == nil {
		f.Add(j[headerSize : len(j)-sigSize])
	}
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`{"format":1,"vault":"abc","key":"k","version":"01000000000000000000000000000000","size":3,"k":1,"m":0,"stripe_size":4096,` +
		`"parts":[{"number":1,"size":3,"blob":"02000000000000000000000000000000","sites":["a"],"wrapped_key":"AQ==","block_sum":"xxh3-128"}]}`))
	f.Add([]byte(`{"format":1,"vault":"abc","key":"k","version":"01000000000000000000000000000000","size":3,"k":1,"m":0,"stripe_size":4096,` +
		`"parts":[{"number":1,"size":3,"blob":"02000000000000000000000000000000","sites":["a"],"wrapped_key":"AQ==","block_sum":"crc32c"}]}`))
	f.Add([]byte(`{"format":1,"vault":"abc","key":"k","version":"01000000000000000000000000000000","delete_marker":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must be safe to act on and re-encode.
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		if _, err := Seal(m, newTestKeys(1)); err != nil {
			t.Fatalf("decoded manifest does not re-seal: %v", err)
		}
	})
}

// TestJSONBlockSum: format 1 names the algorithm of a part's block
// checksums, leaves it out for BLAKE3, and refuses a name it does not
// know, saying which.
func TestJSONBlockSum(t *testing.T) {
	body := func(sum string) []byte {
		return []byte(`{"format":1,"vault":"abc","key":"k","version":"01000000000000000000000000000000","size":3,"k":1,"m":0,"stripe_size":4096,` +
			`"parts":[{"number":1,"size":3,"blob":"02000000000000000000000000000000","sites":["a"],"wrapped_key":"AQ=="` + sum + `}]}`)
	}
	for _, tc := range []struct {
		field string
		want  erasure.Checksum
		err   string
	}{
		{"", erasure.BLAKE3, ""},
		{`,"block_sum":"blake3-256"`, erasure.BLAKE3, ""},
		{`,"block_sum":"xxh3-128"`, erasure.XXH3, ""},
		{`,"block_sum":"crc32c"`, 0, `unknown shard block checksum algorithm "crc32c"`},
		{`,"block_sum":1`, 0, "block_sum"},
	} {
		m, err := Decode(body(tc.field))
		switch {
		case tc.err != "":
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want ErrCorrupt saying %q", tc.field, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.field, err)
		case m.Parts[0].BlockSum != tc.want:
			t.Errorf("%s: %v, want %v", tc.field, m.Parts[0].BlockSum, tc.want)
		}
	}
	m := sample()
	j, err := json.Marshal(m)
	if err != nil || bytes.Contains(j, []byte("block_sum")) {
		t.Fatalf("a BLAKE3 part wrote its algorithm: %s, %v", j, err)
	}
	m.Parts[0].BlockSum = erasure.XXH3
	if j, err = json.Marshal(m); err != nil || !bytes.Contains(j, []byte(`"block_sum":"xxh3-128"`)) {
		t.Fatalf("an XXH3 part: %s, %v", j, err)
	}
}
