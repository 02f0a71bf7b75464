package node

import (
	"bytes"
	"net/http"
	"slices"
	"testing"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
)

// TestPeerEndpointsRefuse walks every endpoint of the peer protocol
// (peerEndpoints, whichever file added it) and checks that each refuses
// what it must before its handler runs: a node whose TLS key no trusted
// card pins (at the handshake), a trusted peer's request without a
// signature, one signed for another endpoint, and one signed for another
// node; and that each takes POST only.
func TestPeerEndpointsRefuse(t *testing.T) {
	est, lux, xyz := newAllyNode(t, "EST"), newAllyNode(t, "LUX"), newAllyNode(t, "XYZ")
	trust(t, lux, est)
	trust(t, est, lux)
	trust(t, xyz, lux) // LUX does not trust XYZ
	luxPeer, _ := est.peer(lux.Config.Node.ID)
	estLink, err := est.peerClient(luxPeer)
	if err != nil {
		t.Fatal(err)
	}
	luxAtXYZ, _ := xyz.peer(lux.Config.Node.ID)
	strangerLink, err := xyz.peerClient(luxAtXYZ)
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + luxPeer.Card.Endpoint + federation.PathPrefix
	body := []byte("{}")
	send := func(c *http.Client, method, endpoint string, sign func(*http.Request)) (int, error) {
		req, err := http.NewRequestWithContext(t.Context(), method, base+endpoint, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if sign != nil {
			sign(req)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	signAs := func(from, to, path string) func(*http.Request) {
		return func(req *http.Request) {
			r2, _ := http.NewRequest(http.MethodPost, base+path, nil)
			if err := federation.SignRequest(r2, body, from, to, est.now(), est.Keys().SignHybrid); err != nil {
				t.Fatal(err)
			}
			for k, v := range r2.Header {
				req.Header[k] = v
			}
		}
	}
	if len(peerEndpoints) < 7 {
		t.Fatalf("%d peer endpoints: the walk expects at least the grants, list, object, blob, catalog and witness ones", len(peerEndpoints))
	}
	for _, ep := range peerEndpoints {
		t.Run(ep.name, func(t *testing.T) {
			if _, err := send(strangerLink, http.MethodPost, ep.name, signAs(xyz.Config.Node.ID, lux.Config.Node.ID, ep.name)); err == nil {
				t.Error("a node no trusted card pins got past the TLS handshake")
			}
			cases := []struct {
				name   string
				method string
				sign   func(*http.Request)
				want   int
			}{
				{"unsigned", http.MethodPost, nil, http.StatusUnauthorized},
				{"signed for another endpoint", http.MethodPost, signAs(est.Config.Node.ID, lux.Config.Node.ID, otherEndpoint(ep.name)), http.StatusUnauthorized},
				{"signed for another node", http.MethodPost, signAs(est.Config.Node.ID, est.Config.Node.ID, ep.name), http.StatusUnauthorized},
				{"signed as another caller", http.MethodPost, signAs(xyz.Config.Node.ID, lux.Config.Node.ID, ep.name), http.StatusUnauthorized},
				{"GET", http.MethodGet, signAs(est.Config.Node.ID, lux.Config.Node.ID, ep.name), http.StatusMethodNotAllowed},
			}
			for _, c := range cases {
				st, err := send(estLink, c.method, ep.name, c.sign)
				if err != nil || st != c.want {
					t.Errorf("%s: %d %v, want %d", c.name, st, err, c.want)
				}
			}
		})
	}
}

func otherEndpoint(name string) string {
	if name == federation.EndpointGrants {
		return federation.EndpointList
	}
	return federation.EndpointGrants
}

// TestPeerWitnessesBesideAuditWitnesses: which peers witness the node's
// log in the background, and whose logs it witnesses, given its
// configuration: every trusted peer by default; not one listed in
// audit.witnesses (tessera asks that one before publishing); not one opted
// out, either way; a log named in audit.witnessed too is followed once.
func TestPeerWitnessesBesideAuditWitnesses(t *testing.T) {
	est, lux, fin := newAllyNode(t, "EST"), newAllyNode(t, "LUX"), newAllyNode(t, "FIN")
	trust(t, est, lux)
	trust(t, est, fin)
	luxPeer, _ := est.peer(lux.Config.Node.ID)
	nations := func(c *Config) (witnesses []string, witnessed []string) {
		n := &Node{Config: c}
		for _, pw := range n.peerWitnesses() {
			witnesses = append(witnesses, pw.Peer.Card.Nation)
		}
		for _, l := range witnessedLogs(c) {
			switch l.Origin {
			case audit.Origin(lux.Config.Node.ID):
				witnessed = append(witnessed, "LUX")
			case audit.Origin(fin.Config.Node.ID):
				witnessed = append(witnessed, "FIN")
			default:
				witnessed = append(witnessed, l.Origin)
			}
		}
		return
	}
	base := func() *Config {
		c := *est.Config
		c.Alliance.Peers = slices.Clone(c.Alliance.Peers)
		return &c
	}
	c := base()
	if w, d := nations(c); !slices.Equal(w, []string{"LUX", "FIN"}) || !slices.Equal(d, []string{"LUX", "FIN"}) {
		t.Fatalf("by default: witnesses %v, witnessed %v", w, d)
	}
	// LUX in audit.witnesses: asked before publishing, not in the background.
	c.Audit.Witnesses = []WitnessConfig{{Key: custody.WitnessVerifierKey(audit.WitnessName(lux.Config.Node.ID), luxPeer.Card.Identity), URL: "https://lux.example:9000/_embassy/v1/witness"}}
	if w, d := nations(c); !slices.Equal(w, []string{"FIN"}) || !slices.Equal(d, []string{"LUX", "FIN"}) {
		t.Fatalf("LUX in audit.witnesses: witnesses %v, witnessed %v", w, d)
	}
	// LUX's log named in audit.witnessed too: followed once.
	c = base()
	key, err := audit.VerifierKey(audit.Origin(lux.Config.Node.ID), luxPeer.Card.Identity)
	if err != nil {
		t.Fatal(err)
	}
	c.Audit.Witnessed = []WitnessedLogConfig{{Origin: audit.Origin(lux.Config.Node.ID), Key: key}}
	if _, d := nations(c); !slices.Equal(d, []string{"LUX", "FIN"}) {
		t.Fatalf("LUX in audit.witnessed too: witnessed %v", d)
	}
	// FIN opted out: neither way.
	c = base()
	no := false
	c.Alliance.Peers[slicesIndex(c.Alliance.Peers, "FIN")].Witness = &no
	if w, d := nations(c); !slices.Equal(w, []string{"LUX"}) || !slices.Equal(d, []string{"LUX"}) {
		t.Fatalf("FIN opted out: witnesses %v, witnessed %v", w, d)
	}
}
