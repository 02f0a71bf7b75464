package site_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/site"
)

func TestMarkerRoundTrip(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	m := site.Marker{Node: "0123456789abcdef", Site: "est-1"}
	b, err := m.Encode(ed25519.Sign(priv, m.SignedMessage()))
	if err != nil {
		t.Fatal(err)
	}
	want := "embassy site marker 1\nnode 0123456789abcdef\nsite est-1\nsig "
	if !strings.HasPrefix(string(b), want) {
		t.Fatalf("marker = %q, want it to start %q", b, want)
	}
	got, sig, err := site.ParseMarker(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != m {
		t.Fatalf("parsed %+v, want %+v", got, m)
	}
	if !ed25519.Verify(pub, got.SignedMessage(), sig) {
		t.Fatal("signature does not verify after a round trip")
	}
	if !bytes.HasPrefix(m.SignedMessage(), []byte(site.MarkerDomain)) {
		t.Fatal("the signed message does not start with the domain prefix")
	}
	// Another site's marker is another message.
	if ed25519.Verify(pub, site.Marker{Node: m.Node, Site: "est-2"}.SignedMessage(), sig) {
		t.Fatal("a marker's signature verifies for another site")
	}
}

func TestParseMarkerRejects(t *testing.T) {
	good := "embassy site marker 1\nnode n1\nsite est-1\nsig AAAA\n"
	if _, _, err := site.ParseMarker([]byte(good)); err != nil {
		t.Fatalf("good marker refused: %v", err)
	}
	for name, b := range map[string]string{
		"empty":           "",
		"other header":    "embassy site marker 2\nnode n1\nsite est-1\nsig AAAA\n",
		"fields swapped":  "embassy site marker 1\nsite est-1\nnode n1\nsig AAAA\n",
		"bad site id":     "embassy site marker 1\nnode n1\nsite EST 1\nsig AAAA\n",
		"bad node id":     "embassy site marker 1\nnode n 1\nsite est-1\nsig AAAA\n",
		"no signature":    "embassy site marker 1\nnode n1\nsite est-1\nsig \n",
		"not base64":      "embassy site marker 1\nnode n1\nsite est-1\nsig A*AA\n",
		"unterminated":    "embassy site marker 1\nnode n1\nsite est-1\nsig AAAA",
		"trailing":        good + "label SECRET\n",
		"crlf":            strings.ReplaceAll(good, "\n", "\r\n"),
		"too large":       good[:len(good)-1] + strings.Repeat("A", 20000) + "\n",
		"extra name line": "embassy site marker 1\nnode n1\nname Estonia\nsite est-1\nsig AAAA\n",
	} {
		if _, _, err := site.ParseMarker([]byte(b)); !errors.Is(err, site.ErrMarker) {
			t.Errorf("%s: ParseMarker = %v, want ErrMarker", name, err)
		}
	}
	if _, err := (site.Marker{Node: "n\n1", Site: "est-1"}).Encode([]byte{1}); err == nil {
		t.Error("Encode accepted a node id with a newline")
	}
}

func FuzzParseMarker(f *testing.F) {
	f.Add([]byte("embassy site marker 1\nnode n1\nsite est-1\nsig AAAA\n"))
	f.Add([]byte("embassy site marker 1\nnode \nsite \nsig \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, sig, err := site.ParseMarker(b)
		if err != nil {
			return
		}
		// What parses re-encodes to the same bytes: one encoding per marker.
		again, err := m.Encode(sig)
		if err != nil {
			t.Fatalf("parsed marker does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %q, parsed %q", again, b)
		}
	})
}
