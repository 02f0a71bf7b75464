package node

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
)

// TestPeerEndpointsAuthorize keeps every endpoint of the peer listener
// honest about what a grant gives (TestPeerEndpointsRefuse, about who may
// call at all):
// a trusted peer that holds only a catalog grant asks each endpoint for
// what that grant does not give, and is refused; the recovery endpoints
// are not reachable with a peer's own key, and a key that is no owner's
// recovery key is refused at the handshake. An endpoint added to the
// table without a case here fails the test.
func TestPeerEndpointsAuthorize(t *testing.T) {
	est, lux := newAllyNode(t, "EST"), newAllyNode(t, "LUX")
	trust(t, est, lux)
	trust(t, lux, est)
	withReplicaVault(t, est)
	g, err := est.Grant(est.As(t.Context(), "admin"), GrantRequest{Scope: "registry", To: "LUX", Level: "catalog", Ceiling: "NATO SECRET", Expires: "30d"})
	if err != nil {
		t.Fatal(err)
	}
	officer := federation.Principal{Name: "officer", Nation: "LUX", Clearances: map[string]string{"NATO": "SECRET"}}
	cases := map[string]struct {
		body  any
		code  string // "" when the answer is 200 and must give nothing away
		check func(t *testing.T, b []byte)
		// refused: any 4xx will do (the witness endpoints answer in
		// tlog-witness's terms, not JSON codes); notFoundOK: a 404 is as
		// good as an answer that gives nothing away.
		refused, notFoundOK bool
	}{
		federation.EndpointGrants: {body: struct{}{}, check: func(t *testing.T, b []byte) {
			r, err := federation.ParseGrantsResponse(b)
			if err != nil || len(r.Grants) != 1 || !strings.Contains(r.Grants[0], "level catalog") {
				t.Errorf("grants: %s", b)
			}
		}},
		federation.EndpointList:      {body: federation.ListRequest{Grant: g.ID, Principal: officer}, code: "not_granted"},
		federation.EndpointObject:    {body: federation.ObjectRequest{Grant: g.ID, Principal: officer, Key: "2026/x"}, code: "not_granted"},
		federation.EndpointBlob:      {body: federation.BlobRequest{Ticket: g.ID, Site: "est-1", Name: "node/descriptor", Length: -1}, code: "not_granted"},
		federation.EndpointReplicate: {body: federation.ReplicateRequest{Grant: g.ID}, code: "not_granted"},
		// A caller submits only its own log's checkpoints, in tlog-witness
		// form, and learns only what was cosigned of its own log.
		PeerWitnessEndpoint: {body: struct{}{}, refused: true},
		// A restart is a proof file of a log.restart entry of the caller's
		// own log naming what the witness cosigned of it.
		PeerWitnessRestartEndpoint: {body: struct{}{}, refused: true},
		PeerWitnessLatestEndpoint: {body: struct{}{}, notFoundOK: true, check: func(t *testing.T, b []byte) {
			if !bytes.HasPrefix(b, []byte(audit.Origin(lux.Config.Node.ID)+"\n")) {
				t.Errorf("witness/checkpoint gave LUX another log's checkpoint: %q", b)
			}
		}},
		// What a witness cosigned of a log it witnesses is public like the
		// log's checkpoints; a body that names no log it follows is 404.
		PeerWitnessOfEndpoint: {body: struct{}{}, notFoundOK: true, check: func(t *testing.T, b []byte) {
			t.Errorf("witness/of answered a body that names no log: %q", b)
		}},
		// EST hosts nobody: a trusted peer reaches no store. A put sent as
		// a JSON request lacks the signed Embassy-Hosted-Put header.
		federation.EndpointHostedPut:    {body: struct{}{}, refused: true},
		federation.EndpointHostedGet:    {body: federation.HostedBlob{Name: "node/site-marker", Length: -1}, code: federation.CodeNotHosted},
		federation.EndpointHostedStat:   {body: federation.HostedBlob{Name: "node/site-marker"}, code: federation.CodeNotHosted},
		federation.EndpointHostedDelete: {body: federation.HostedBlob{Name: "node/site-marker"}, code: federation.CodeNotHosted},
		federation.EndpointHostedList:   {body: federation.HostedList{}, code: federation.CodeNotHosted},
		federation.EndpointHostedUsage:  {body: struct{}{}, code: federation.CodeNotHosted},
		PeerCatalogEndpoint: {body: struct{}{}, check: func(t *testing.T, b []byte) {
			if bytes.Contains(b, []byte(`"dct:identifier"`)) {
				t.Errorf("catalog with no description released: %s", b)
			}
		}},
	}
	for _, ep := range peerEndpoints {
		c, ok := cases[ep.name]
		if !ok {
			t.Errorf("peer endpoint %s has no case in TestPeerEndpointsAuthorize", ep.name)
			continue
		}
		t.Run(ep.name, func(t *testing.T) {
			rc, err := lux.callPeerRaw(t.Context(), est.Config.Node.ID, ep.name, c.body)
			var pe *PeerError
			switch {
			case c.refused:
				if err == nil {
					rc.Close()
				}
				if !errors.As(err, &pe) || pe.Status < 400 || pe.Status >= 500 {
					t.Errorf("%s: %v, want refused (4xx)", ep.name, err)
				}
			case c.notFoundOK && errors.As(err, &pe) && pe.Status == http.StatusNotFound:
			case c.code == "" && err != nil:
				t.Fatalf("%s: %v", ep.name, err)
			case c.code == "":
				b, _ := io.ReadAll(rc)
				rc.Close()
				c.check(t, b)
			case !errors.As(err, &pe) || pe.Code != c.code:
				if err == nil {
					rc.Close()
				}
				t.Errorf("%s: %v, want %s", ep.name, err, c.code)
			}
		})
	}

	// The recovery endpoints answer an owner's recovery key only: not a
	// peer's own key...
	for name := range recoveryEndpoints {
		_, err := lux.callPeerRaw(t.Context(), est.Config.Node.ID, name, federation.RecoverListRequest{})
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Status != http.StatusNotFound {
			t.Errorf("%s with LUX's peer key: %v, want 404", name, err)
		}
	}
	// ...and a key no replica's owner gave is refused at the handshake.
	root, _ := custody.GenerateRootKey()
	kr, _ := custody.NewKeyring(root)
	rk, _ := kr.RecoveryKeys()
	card, _ := est.card(t)
	c, _ := federation.ParseCard(card)
	client, err := recoveryClient(c, rk, "stranger")
	if err != nil {
		t.Fatal(err)
	}
	_, err = recoveryCall(t.Context(), client, c, federation.EndpointRecoverList, federation.RecoverListRequest{})
	if err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("a stranger's recovery key: %v, want refused at the TLS handshake", err)
	}
	// A certificate presented for a key pinned by nobody, on any path.
	cert, err := rk.TLSCertificate("x", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true,
		VerifyPeerCertificate: func([][]byte, [][]*x509.Certificate) error { return nil }}}}
	for _, path := range []string{federation.EndpointReplicate, federation.EndpointRecoverBlob} {
		resp, err := tc.Post("https://"+c.Endpoint+federation.PathPrefix+path, "application/json", strings.NewReader(`{}`))
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s from an unknown key: %d, want refused at the handshake", path, resp.StatusCode)
		}
	}
}
