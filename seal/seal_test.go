package seal

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func testStripes(t testing.TB, ctx StripeContext) *Stripes {
	t.Helper()
	k, err := NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStripes(k, ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStripeRoundTripInPlace(t *testing.T) {
	s := testStripes(t, StripeContext{Part: 1})
	pt := []byte("population register, 1.3 million rows")
	buf := make([]byte, len(pt), len(pt)+Overhead)
	copy(buf, pt)
	sealed := s.Seal(buf[:0], buf, 7, true)
	if bytes.Contains(sealed, pt[:10]) {
		t.Fatal("sealed stripe contains plaintext")
	}
	got, err := s.Open(sealed[:0], sealed, 7, true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pt) {
		t.Fatalf("got %q, want %q", got, pt)
	}
}

func TestStripeBindings(t *testing.T) {
	k, err := NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	base := StripeContext{ObjectID: [16]byte{1}, VersionID: [16]byte{2}, Part: 1}
	s, _ := NewStripes(k, base)
	sealed := s.Seal(nil, []byte("stripe five"), 5, false)

	other := func(f func(*StripeContext)) *Stripes {
		c := base
		f(&c)
		o, _ := NewStripes(k, c)
		return o
	}
	otherKey := testStripes(t, base)
	cases := []struct {
		name  string
		s     *Stripes
		index uint64
		final bool
		data  []byte
	}{
		{"reordered stripe", s, 6, false, sealed},
		{"truncation: stripe claimed final", s, 5, true, sealed},
		{"other object", other(func(c *StripeContext) { c.ObjectID[0] = 9 }), 5, false, sealed},
		{"other version", other(func(c *StripeContext) { c.VersionID[0] = 9 }), 5, false, sealed},
		{"other part", other(func(c *StripeContext) { c.Part = 2 }), 5, false, sealed},
		{"other key", otherKey, 5, false, sealed},
		{"flipped bit", s, 5, false, flip(sealed, 3)},
		{"short", s, 5, false, sealed[:Overhead-1]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.s.Open(nil, tc.data, tc.index, tc.final)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open = %v, want ErrOpen", err)
			}
		})
	}
	if _, err := s.Open(nil, sealed, 5, false); err != nil {
		t.Fatalf("genuine stripe: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

func TestWrap(t *testing.T) {
	kek, err := NewKEK(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewKEK(bytes.Repeat([]byte{8}, KeySize))
	dk, _ := NewDataKey()
	w, err := kek.Wrap(dk, []byte("vault=a"))
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != WrappedSize {
		t.Fatalf("wrapped size %d, want %d", len(w), WrappedSize)
	}
	got, err := kek.Unwrap(w, []byte("vault=a"))
	if err != nil {
		t.Fatal(err)
	}
	// The unwrapped key must open what the original sealed.
	s1, _ := NewStripes(dk, StripeContext{})
	s2, _ := NewStripes(got, StripeContext{})
	if _, err := s2.Open(nil, s1.Seal(nil, []byte("x"), 0, true), 0, true); err != nil {
		t.Fatalf("unwrapped key differs: %v", err)
	}
	for name, f := range map[string]func() error{
		"other aad": func() error { _, err := kek.Unwrap(w, []byte("vault=b")); return err },
		"other kek": func() error { _, err := other.Unwrap(w, []byte("vault=a")); return err },
		"tampered":  func() error { _, err := kek.Unwrap(flip(w, 20), []byte("vault=a")); return err },
	} {
		if err := f(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: err = %v, want ErrOpen", name, err)
		}
	}
	if _, err := kek.Unwrap(w[:10], nil); err == nil {
		t.Error("short wrapped key accepted")
	}
}

func TestKeysRedact(t *testing.T) {
	dk, _ := NewDataKey()
	if s := fmt.Sprint(dk); s != "seal.DataKey(REDACTED)" {
		t.Fatalf("DataKey prints as %q", s)
	}
	if s := fmt.Sprintf("%v", dk.LogValue()); s != "REDACTED" {
		t.Fatalf("DataKey logs as %q", s)
	}
}

func BenchmarkSeal1MiB(b *testing.B) {
	s := testStripes(b, StripeContext{})
	buf := make([]byte, 1<<20, 1<<20+Overhead)
	b.SetBytes(int64(len(buf)))
	for i := 0; b.Loop(); i++ {
		s.Seal(buf[:0], buf[:1<<20], uint64(i), false)
	}
}

func TestWrapToRecipient(t *testing.T) {
	sk, err := RecipientKEM().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dk, _ := NewDataKey()
	w, err := WrapTo(sk.PublicKey(), dk, []byte("info"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnwrapWith(sk, w, []byte("info"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewStripes(dk, StripeContext{})
	b, _ := NewStripes(got, StripeContext{})
	if _, err := b.Open(nil, a.Seal(nil, []byte("stripe"), 0, true), 0, true); err != nil {
		t.Fatalf("the unwrapped key does not open what the original sealed: %v", err)
	}
	if _, err := UnwrapWith(sk, w, []byte("other")); !errors.Is(err, ErrOpen) {
		t.Errorf("other info: %v, want ErrOpen", err)
	}
	w[len(w)-1] ^= 1
	if _, err := UnwrapWith(sk, w, []byte("info")); !errors.Is(err, ErrOpen) {
		t.Errorf("changed: %v, want ErrOpen", err)
	}
	other, _ := RecipientKEM().GenerateKey()
	w[len(w)-1] ^= 1
	if _, err := UnwrapWith(other, w, []byte("info")); !errors.Is(err, ErrOpen) {
		t.Errorf("other recipient: %v, want ErrOpen", err)
	}
}
