package shamir

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// TestEncodingVector pins the encoding byte by byte.
func TestEncodingVector(t *testing.T) {
	var s SetShare
	for i := range s.Set.ID {
		s.Set.ID[i] = byte(0xa0 + i)
	}
	s.Set.Threshold, s.Set.Total = 3, 5
	for i := range s.Set.Commitment {
		s.Set.Commitment[i] = byte(i)
	}
	s.Share.X = 4
	s.Share.Y = bytes.Repeat([]byte{0xee}, 16)
	want := "01" + // version
		"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf" + // set id
		"03" + "05" + // threshold, total
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" + // commitment
		"04" + // x
		"0010" + // length of y
		"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee" // y
	got, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != want {
		t.Fatalf("encoding =\n%x\nwant\n%s", got, want)
	}
	back, err := ParseSetShare(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.Set != s.Set || back.Share.X != s.Share.X || !bytes.Equal(back.Share.Y, s.Share.Y) {
		t.Errorf("decoded %v, want %v", back, s)
	}
}

func TestEncodingRoundTripCombines(t *testing.T) {
	secret, set, shares := newSet(t, 5, 3)
	var decoded []SetShare
	for _, s := range shares[1:4] {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var d SetShare
		if err := d.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		clear(b) // the decoded share must not alias the buffer
		decoded = append(decoded, d)
	}
	got, err := set.Combine(decoded)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, secret) {
		t.Error("decoded shares recover a wrong secret")
	}
}

func TestParseSetShareRejects(t *testing.T) {
	_, _, shares := newSet(t, 5, 3)
	good, err := shares[2].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"empty", nil, "0 bytes is shorter than the 54-byte header"},
		{"header only", good[:54], "header says y is 32 bytes, but 0 follow it"},
		{"truncated", good[:len(good)-1], "header says y is 32 bytes, but 31 follow it"},
		{"trailing byte", append(bytes.Clone(good), 0), "header says y is 32 bytes, but 33 follow it"},
		{"version 0", edit(func(b []byte) []byte { b[0] = 0; return b }), "unknown version 0"},
		{"version 2", edit(func(b []byte) []byte { b[0] = 2; return b }), "unknown version 2"},
		{"threshold 1", edit(func(b []byte) []byte { b[17] = 1; return b }), "threshold 1 of 5 is impossible"},
		{"threshold above total", edit(func(b []byte) []byte { b[17] = 6; return b }), "threshold 6 of 5 is impossible"},
		{"x zero", edit(func(b []byte) []byte { b[51] = 0; return b }), "share 0 is outside share set"},
		{"x above total", edit(func(b []byte) []byte { b[51] = 6; return b }), "share 6 is outside share set"},
		{"y too short", edit(func(b []byte) []byte { b[53] = 15; return b[:54+15] }), "share 3 is 15 bytes long; shares of a set are 16 to 1024"},
		{"y too long", append(edit(func(b []byte) []byte { b[52], b[53] = 0x04, 0x01; return b }), make([]byte, 1025-32)...), "share 3 is 1025 bytes long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSetShare(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "decode share: ") {
				t.Errorf("err = %q does not say it came from decoding a share", err)
			}
		})
	}
}

func TestMarshalRejectsInvalid(t *testing.T) {
	_, _, shares := newSet(t, 3, 2)
	s := shares[0]
	s.Share.X = 0
	if _, err := s.MarshalBinary(); err == nil {
		t.Error("MarshalBinary encoded a share with x = 0")
	}
}

// FuzzParseSetShare checks that the decoder never panics and accepts only
// canonical encodings: whatever it accepts re-encodes to the same bytes.
func FuzzParseSetShare(f *testing.F) {
	_, _, shares := newSet(f, 5, 3)
	for _, s := range shares {
		b, _ := s.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSetShare(b)
		if err != nil {
			return
		}
		again, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("a decoded share does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded and re-encoded share differs:\n%x\n%x", b, again)
		}
	})
}

// FuzzCombine feeds Combine and CombineSet arbitrary shares: they must not
// panic, and CombineSet must never return a secret that fails its set's
// commitment.
func FuzzCombine(f *testing.F) {
	_, _, shares := newSet(f, 3, 2)
	var seed []byte
	for _, s := range shares {
		b, _ := s.MarshalBinary()
		seed = append(seed, byte(len(b)>>8), byte(len(b)))
		seed = append(seed, b...)
	}
	f.Add(seed)
	f.Add([]byte{0, 2, 1, 5, 0, 2, 2, 6})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Split b into length-prefixed chunks.
		var chunks [][]byte
		for len(b) >= 2 {
			n := int(b[0])<<8 | int(b[1])
			b = b[2:]
			if n > len(b) {
				n = len(b)
			}
			chunks = append(chunks, b[:n])
			b = b[n:]
		}
		var plain []Share
		var set []SetShare
		for _, c := range chunks {
			if len(c) > 0 {
				plain = append(plain, Share{X: c[0], Y: c[1:]})
			}
			if s, err := ParseSetShare(c); err == nil {
				set = append(set, s)
			}
		}
		if secret, err := Combine(plain); err == nil && len(secret) != len(plain[0].Y) {
			t.Fatalf("combine returned %d bytes from %d-byte shares", len(secret), len(plain[0].Y))
		}
		if secret, err := CombineSet(set); err == nil && !set[0].Set.Verify(secret) {
			t.Fatal("CombineSet returned a secret that fails the commitment")
		}
	})
}

// FuzzSplitCombine checks the round trip on secrets and parameters the
// fuzzer chooses.
func FuzzSplitCombine(f *testing.F) {
	f.Add([]byte("secret"), byte(5), byte(3))
	f.Add([]byte{0}, byte(2), byte(2))
	f.Fuzz(func(t *testing.T, secret []byte, n, th byte) {
		shares, err := Split(secret, int(n), int(th))
		if err != nil {
			return
		}
		got, err := Combine(shares[int(n)-int(th):])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, secret) {
			t.Fatalf("split %d of %d then combine did not recover the secret", th, n)
		}
	})
}

// FuzzSetCombineCorrupt lets the fuzzer choose which shares of a 3-of-6
// set to give and how to corrupt them: the checked layer must never return
// a wrong secret, and must return the right one when enough shares are
// intact and none is altered.
func FuzzSetCombineCorrupt(f *testing.F) {
	secret := []byte("fuzzing the checked layer 32 b!!")
	set, shares, err := SplitSet(secret, 6, 3)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{0, 0, 1, 0, 2, 0})
	f.Add([]byte{0, 0, 1, 0, 2, 7, 3, 0})
	f.Add([]byte{5, 1, 4, 1, 3, 0, 2, 0, 1, 0})
	f.Fuzz(func(t *testing.T, plan []byte) {
		// plan is pairs (share index, corruption byte); corruption c != 0
		// XORs c into byte c%32 of the share.
		var given []SetShare
		altered := false
		for i := 0; i+1 < len(plan); i += 2 {
			s := shares[int(plan[i])%len(shares)]
			if c := plan[i+1]; c != 0 {
				s.Share.Y = bytes.Clone(s.Share.Y)
				s.Share.Y[c%32] ^= c
				altered = true
			}
			given = append(given, s)
		}
		got, err := set.Combine(given)
		if err == nil && !bytes.Equal(got, secret) {
			t.Fatal("Combine returned a wrong secret")
		}
		if err != nil && !altered && len(given) >= 3 && !strings.Contains(err.Error(), "given twice") {
			t.Fatalf("intact shares failed: %v", err)
		}
	})
}
