package federation

import (
	"net/http"
	"testing"
	"time"
)

func FuzzParseCard(f *testing.F) {
	n := newTestNode(f, "est1", "EST")
	f.Add(n.card)
	f.Add([]byte(cardHeader + "node x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCard(b)
		if err != nil {
			return
		}
		// A card that parses is signed by its own identity over its body.
		if c.Fingerprint == "" || c.NodeID == "" {
			t.Fatalf("accepted card lacks fields: %+v", c)
		}
	})
}

func FuzzParseGrant(f *testing.F) {
	n := newTestNode(f, "est1", "EST")
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	g, err := SignGrant(Grant{ID: NewGrantID(), Owner: "est1", OwnerNation: "EST", Vault: "registry", Prefix: "2026/", To: "LUX",
		Grantee: "lux1", GranteeCard: "SHA256:x", Level: LevelRead, Ceiling: "NATO SECRET", Issued: now, Expires: now.Add(time.Hour)}, n.keys.SignHybrid)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(g.Raw)
	pub := n.keys.Identity().Public()
	f.Fuzz(func(t *testing.T, b []byte) {
		g, _, _, err := parseGrant(b)
		if err != nil {
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("parsed a grant that does not validate: %v", err)
		}
		ParseGrant(b, pub)
	})
}

func FuzzParseRequestAuth(f *testing.F) {
	f.Add("lux1", "1796461200", "0123456789abcdef0123456789abcdef", "AAAA")
	f.Fuzz(func(t *testing.T, from, ts, nonce, sig string) {
		h := http.Header{}
		h.Set(HeaderFrom, from)
		h.Set(HeaderTime, ts)
		h.Set(HeaderNonce, nonce)
		h.Set(HeaderSignature, sig)
		ParseRequestAuth(h)
	})
}

func FuzzPeerBodies(f *testing.F) {
	f.Add([]byte(`{"grant":"0123456789abcdef0123456789abcdef","principal":{"name":"a","nation":"LUX","clearances":{"NATO":"SECRET"}},"prefix":"2026/","max":10}`))
	f.Add([]byte(`{"grant":"0123456789abcdef0123456789abcdef","principal":{"name":"a","nation":"LUX"},"key":"k"}`))
	f.Add([]byte(`{"ticket":"0123456789abcdef0123456789abcdef","site":"s1","name":"m/x","offset":0,"length":-1}`))
	f.Add([]byte(`{"manifest":{},"ticket":"0123456789abcdef0123456789abcdef"}`))
	f.Add([]byte(`{"grants":["x"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseListRequest(b)
		ParseObjectRequest(b)
		ParseBlobRequest(b)
		ParseGrantsRequest(b)
		ParseGrantsResponse(b)
		ParseListResponse(b)
		ParseObjectResponse(b)
	})
}

func FuzzHostedBodies(f *testing.F) {
	f.Add([]byte(`{"name":"s/ab/cd.0","offset":10,"length":-1}`))
	f.Add([]byte(`{"prefix":"m/"}`))
	f.Add([]byte(`{"name":"node/site-marker","size":123,"modified":1796461200000000000}`))
	f.Add([]byte(`{"bytes":1,"blobs":2,"quota":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if q, err := ParseHostedBlob(b); err == nil && (q.Name == "" || q.Offset < 0 || q.Length < -1) {
			t.Fatalf("accepted %+v", q)
		}
		ParseHostedList(b)
		if i, err := ParseHostedInfo(b); err == nil && i.Size < 0 {
			t.Fatalf("accepted %+v", i)
		}
		ParseHostedUsage(b)
		ParseHostedListLine(b)
		if _, p, err := ParseHostedPut(string(b)); err == nil && (p.Name == "" || p.Size < -1) {
			t.Fatalf("accepted %+v", p)
		}
	})
}
