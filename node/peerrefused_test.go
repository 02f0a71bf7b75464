package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/federation"
)

// TestPeerRefusedCertificate: a peer that does not trust this node
// refuses its certificate after the TLS 1.3 handshake has ended on this
// side. The call then fails with ErrCertificateRefused, whether the
// peer's alert was read or the connection broke first (the peer closed
// it right after the handshake, before any answer: here a listener with
// EST's key that does exactly that). A connection that breaks before the
// handshake is not called a refusal.
func TestPeerRefusedCertificate(t *testing.T) {
	est, fin := newAllyNode(t, "EST"), newAllyNode(t, "FIN")
	trust(t, fin, est) // EST does not trust FIN
	call := func() error {
		var resp federation.GrantsResponse
		return fin.CallPeer(t.Context(), est.Config.Node.ID, federation.EndpointGrants, struct{}{}, &resp)
	}
	for range 3 {
		if err := call(); !errors.Is(err, ErrCertificateRefused) || !strings.Contains(err.Error(), "the peer refused this node's certificate") || !strings.Contains(err.Error(), "it has no card of this node") {
			t.Errorf("EST refuses FIN: %v", err)
		}
	}
	// The same through the witness's raw posts.
	if _, _, err := fin.peerPost(t.Context(), est.Config.Node.ID, federation.EndpointGrants, []byte("{}")); !errors.Is(err, ErrCertificateRefused) {
		t.Errorf("EST refuses FIN's post: %v", err)
	}

	// In EST's place, a listener with EST's key that closes each
	// connection (a reset) right after the handshake, or before it.
	cfg, err := est.peerServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	cfg.VerifyPeerCertificate = func([][]byte, [][]*x509.Certificate) error { return nil }
	addr := est.Config.Alliance.Listen
	est.stop()
	var ln net.Listener
	deadline := time.Now().Add(time.Minute)
	for ln, err = net.Listen("tcp", addr); err != nil; ln, err = net.Listen("tcp", addr) {
		if time.Now().After(deadline) {
			t.Fatalf("EST's peer address stays taken: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { ln.Close() })
	handshake := make(chan bool, 1)
	handshake <- true
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if <-handshake {
				tls.Server(c, cfg).Handshake()
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	if err := call(); !errors.Is(err, ErrCertificateRefused) || !strings.Contains(err.Error(), "closed the connection right after the TLS handshake, before any answer") {
		t.Errorf("closed right after the handshake: %v", err)
	}
	handshake <- false
	if err := call(); err == nil || errors.Is(err, ErrCertificateRefused) {
		t.Errorf("closed before the handshake: %v, want a broken connection, not a refusal", err)
	}
}
