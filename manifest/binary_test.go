package manifest

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/erasure"
)

// rich is a manifest that sets every field.
func rich() *Manifest {
	return &Manifest{
		Node: "node-1", Vault: "registry", Key: "2026/population.db", Version: ID{1, 2, 3},
		Created: 1764000000000000000, Size: 3000 + 5<<20, Digest: bytes.Repeat([]byte{7}, 32),
		ETag: "\"0123456789abcdef0123456789abcdef-2\"", ContentType: "application/octet-stream",
		Meta: map[string]string{"origin": "ria", "b": "2"}, Label: "EST RESTRICTED", LabelBinding: []byte(`{"binding":1}`),
		K: 4, M: 2, StripeSize: 1 << 20, KeyGen: 3,
		Parts: []Part{
			{Number: 1, Size: 5 << 20, ETag: "\"00112233445566778899aabbccddeeff\"", Blob: ID{9}, Sites: []string{"a", "b", "c", "d", "e", "f"},
				Digest: bytes.Repeat([]byte{8}, 32), KeyGen: 2, WrappedKey: make([]byte, 61), Checksums: map[string]string{"sha256": "x"}, BlockSum: erasure.XXH3},
			{Number: 3, Size: 3000, ETag: "W/odd", Blob: ID{10}, Sites: []string{"a", "a", "c", "d", "e", "f"}, WrappedKey: make([]byte, 61)},
		},
		Copies:    []string{"g"},
		Lock:      &Lock{Mode: "COMPLIANCE", Until: time.Date(2031, 1, 2, 3, 4, 5, 6, time.UTC), LegalHold: true},
		Checksums: map[string]string{"crc32": "AAAA"}, Revision: 7, Journaled: true,
	}
}

// TestFormatsCarryTheSameManifest: the compact encoding and JSON give
// back the same manifest, field for field, and the compact one is smaller.
func TestFormatsCarryTheSameManifest(t *testing.T) {
	k := newTestKeys(1)
	cases := map[string]*Manifest{"rich": rich(), "inline": sample(), "delete marker": {
		Node: "n", Vault: "registry", Key: "k", Version: ID{4}, Created: -5, DeleteMarker: true, Copies: []string{"a", "b"}, Journaled: true,
	}}
	same := rich()
	same.Digest = bytes.Repeat([]byte{1}, 32)
	same.Parts = same.Parts[1:]
	same.Parts[0].Digest, same.Parts[0].Number, same.Size, same.ETag = same.Digest, 1, 3000, "\"00112233445566778899AABBCCDDEEFF\""
	same.Lock = &Lock{LegalHold: true}
	cases["part digest equal to the object's, upper-case etag"] = same
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			j, err := SealFormat(m, k, FormatJSON)
			if err != nil {
				t.Fatal(err)
			}
			c, err := SealFormat(m, k, FormatCompact)
			if err != nil {
				t.Fatal(err)
			}
			if EnvelopeFormat(j) != FormatJSON || EnvelopeFormat(c) != FormatCompact {
				t.Fatalf("formats %d and %d", EnvelopeFormat(j), EnvelopeFormat(c))
			}
			fromJSON, err := Open(j, k)
			if err != nil {
				t.Fatal(err)
			}
			fromCompact, err := Open(c, k)
			if err != nil {
				t.Fatal(err)
			}
			if fromJSON.Format != FormatJSON || fromCompact.Format != FormatCompact {
				t.Fatalf("formats %d and %d", fromJSON.Format, fromCompact.Format)
			}
			fromJSON.Format = FormatCompact
			if !reflect.DeepEqual(fromJSON, fromCompact) {
				t.Fatalf("formats differ:\nJSON    %+v\ncompact %+v", fromJSON, fromCompact)
			}
			if len(c) >= len(j) {
				t.Fatalf("compact envelope %d bytes, JSON %d", len(c), len(j))
			}
		})
	}
}

func TestCompactIsSmall(t *testing.T) {
	m := sample()
	m.Digest = bytes.Repeat([]byte{1}, 32)
	m.Parts[0].Digest = m.Digest
	m.ETag = "\"3416d0a5fc0f458a98b515cc0069cc7c\""
	m.Meta, m.ContentType = nil, ""
	env, err := Seal(m, newTestKeys(1))
	if err != nil {
		t.Fatal(err)
	}
	// An inline object of six sites, unlabelled: 17 header, 12 nonce, 16
	// tag, 64 signature, 61 wrapped key, 32 digest, 16 ETag, 2 × 16 ids,
	// 8 created; the names and small numbers are the rest.
	if len(env) > 330 {
		t.Fatalf("envelope of a small inline object is %d bytes, want at most 330", len(env))
	}
}

func TestCompactRejectsMalformed(t *testing.T) {
	m := rich()
	m.Format = FormatCompact
	good, err := encodeBinary(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeBinary(good); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"trailing byte":  append(bytes.Clone(good), 0),
		"truncated":      good[:len(good)-1],
		"unknown flag":   append([]byte{0x80, 0x01}, good[1:]...),
		"empty":          nil,
		"huge length":    append([]byte{good[0], 0xff, 0xff, 0xff, 0xff, 0x0f}, good[2:]...),
		"only the flags": good[:1],
	}
	for name, b := range cases {
		if _, err := decodeBinary(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	// The block checksum algorithm: an unknown one is refused by name (a
	// newer node's part cannot be verified), and BLAKE3 is never written
	// out (no field is BLAKE3).
	x := sample()
	x.Format = FormatCompact
	x.Parts[0].BlockSum = erasure.XXH3
	enc, err := encodeBinary(x)
	if err != nil {
		t.Fatal(err)
	}
	// The encoding ends: part checksums (0), block checksum (1), copies
	// (0), checksums (0), revision (0).
	if !bytes.HasSuffix(enc, []byte{0, 1, 0, 0, 0}) {
		t.Fatalf("encoding ends %x", enc[len(enc)-5:])
	}
	if m, err := decodeBinary(enc); err != nil || m.Parts[0].BlockSum != erasure.XXH3 {
		t.Fatalf("xxh3 part: %+v, %v", m, err)
	}
	at := len(enc) - 4
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"unknown block checksum 7", append(append(bytes.Clone(enc[:at]), 7), enc[at+1:]...), "unknown shard block checksum algorithm 7"},
		{"unknown block checksum 300", append(append(bytes.Clone(enc[:at]), 0xac, 0x02), enc[at+1:]...), "unknown shard block checksum algorithm 300"},
		{"BLAKE3 written out", append(append(bytes.Clone(enc[:at]), 0), enc[at+1:]...), "BLAKE3 written out"},
	} {
		_, err := decodeBinary(tc.b)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrCorrupt saying %q", tc.name, err, tc.want)
		}
	}
	// A JSON body under a compact header, and the reverse, do not open:
	// the format is in the AEAD's associated data and in the signature.
	k := newTestKeys(1)
	c, _ := SealFormat(rich(), k, FormatCompact)
	swapped := bytes.Clone(c)
	swapped[4] = FormatJSON
	if _, err := Open(swapped, k); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("format byte changed: %v", err)
	}
	if _, err := Decode([]byte(`{"format":2,"vault":"abc","key":"k","version":"01000000000000000000000000000000","delete_marker":true}`)); err == nil || !strings.Contains(err.Error(), "format 2") {
		t.Fatalf("JSON body claiming format 2: %v", err)
	}
}

func FuzzDecodeBinary(f *testing.F) {
	xxh := sample()
	xxh.Parts[0].BlockSum = erasure.XXH3
	for _, m := range []*Manifest{rich(), sample(), xxh} {
		b, _ := encodeBinary(m)
		f.Add(b)
	}
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeBinary(b)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		// What decodes encodes back to the same bytes: one encoding per
		// manifest.
		again, err := encodeBinary(m)
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}
