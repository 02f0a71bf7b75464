package custody

import (
	"bytes"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/seal"
)

func TestPeerKeysSealOpen(t *testing.T) {
	root, _ := GenerateRootKey()
	k, err := NewKeyring(root)
	if err != nil {
		t.Fatal(err)
	}
	p, err := GeneratePeerKeys()
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.SealPeerKeys("n1", p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := k.OpenPeerKeys("n1", b)
	if err != nil {
		t.Fatal(err)
	}
	if q.TLSPin() != p.TLSPin() || !bytes.Equal(q.HPKEPublicKey(), p.HPKEPublicKey()) {
		t.Fatal("reopened keys differ")
	}
	if _, err := k.OpenPeerKeys("n2", b); !errors.Is(err, ErrPeerKeys) {
		t.Errorf("another node's: %v", err)
	}
	other, _ := GenerateRootKey()
	k2, _ := NewKeyring(other)
	if _, err := k2.OpenPeerKeys("n1", b); !errors.Is(err, ErrPeerKeys) {
		t.Errorf("another root: %v", err)
	}
	changed := bytes.Replace(b, []byte(p.TLSPin()), []byte(q.TLSPin()[:10]+"AAAA"+q.TLSPin()[14:]), 1)
	if _, err := k.OpenPeerKeys("n1", changed); !errors.Is(err, ErrPeerKeys) {
		t.Errorf("changed pin: %v", err)
	}
	// The certificate carries the pinned key; a data key wrapped to the
	// HPKE key opens.
	cert, err := p.TLSCertificate("n1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if SPKIPin(x.RawSubjectPublicKeyInfo) != p.TLSPin() {
		t.Error("certificate key is not the pinned one")
	}
	pub, err := ParseHPKEPublicKey(p.HPKEPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	dk, _ := seal.NewDataKey()
	w, err := seal.WrapTo(pub, dk, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.UnwrapDataKey(w, []byte("x")); err != nil {
		t.Fatal(err)
	}
}
