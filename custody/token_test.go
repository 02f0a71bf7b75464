package custody

import (
	"bytes"
	"errors"
	"testing"
)

// Tokens are sealed each under a key of its own (no nonce to repeat), and
// tokens of the form before still open; altered, foreign or short ones do
// not.
func TestTokens(t *testing.T) {
	k := testKeyring(t)
	plain := []byte("vault\x00key\x00position")
	tok, err := k.SealToken(plain)
	if err != nil {
		t.Fatal(err)
	}
	if tok[0] != tokenVersion || len(tok) != 1+tokenSalt+len(plain)+16 {
		t.Fatalf("token of %d bytes, version %d", len(tok), tok[0])
	}
	if p, err := k.OpenToken(tok); err != nil || !bytes.Equal(p, plain) {
		t.Fatalf("OpenToken: %q, %v", p, err)
	}
	again, _ := k.SealToken(plain)
	if bytes.Equal(again[1:1+tokenSalt], tok[1:1+tokenSalt]) {
		t.Error("two tokens share a salt, so a key")
	}
	// Tokens of the form before open, one whose nonce starts with the
	// version byte included.
	old, err := k.sealTokenV1(plain)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := k.tokenAEAD(nil)
	nonce := append([]byte{tokenVersion}, old[1:12]...)
	lookalike := v1.Seal(bytes.Clone(nonce), nonce, plain, tokenAAD)
	for name, tk := range map[string][]byte{"before": old, "before, nonce starting 0x02": lookalike} {
		if p, err := k.OpenToken(tk); err != nil || !bytes.Equal(p, plain) {
			t.Errorf("a token of the form before (%s): %q, %v", name, p, err)
		}
	}
	for name, bad := range map[string][]byte{
		"altered":    append(bytes.Clone(tok[:len(tok)-1]), tok[len(tok)-1]^1),
		"salt":       append([]byte{tokenVersion, tok[1] ^ 1}, tok[2:]...),
		"short":      tok[:20],
		"empty":      nil,
		"other root": func() []byte { b, _ := testKeyring(t).SealToken(plain); return b }(),
	} {
		if _, err := k.OpenToken(bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("%s: %v, want ErrBadToken", name, err)
		}
	}
}
