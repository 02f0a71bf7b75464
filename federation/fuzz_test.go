package federation

import (
	"bytes"
	"net/http"
	"strings"
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

func FuzzReplicaBodies(f *testing.F) {
	f.Add([]byte(`{"grant":"0123456789abcdef0123456789abcdef","after":12,"max":100}`))
	f.Add([]byte(`{"entries":[{"index":3,"version":"0123456789abcdef0123456789abcdef","blobs":[{"site":"est-1","name":"m/01/0123456789abcdef0123456789abcdef","size":0}]}],"next":4,"log_size":9,"ticket":"0123456789abcdef0123456789abcdef","recovery_pin":"SHA256:0123456789012345678901234567890123456789012"}`))
	f.Add([]byte(`{"entries":[],"next":9,"done":true,"log_size":9,"ticket":"0123456789abcdef0123456789abcdef","descriptor":{"site":"est-1","name":"node/descriptor","size":0},"log":[{"site":"est-1","name":"log/tile/0/000","size":8192}],"recovery_pin":"SHA256:x"}`))
	f.Add([]byte(`{"after":"b/est-1/m/00","max":10}`))
	f.Add([]byte(`{"owner":"est1","blobs":[{"site":"*","name":"log/checkpoint","size":1}],"deletions":1}`))
	f.Add([]byte(`{"site":"est-1","name":"s/00/x.0"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseReplicateRequest(b)
		if r, err := ParseReplicateResponse(b); err == nil {
			for _, e := range r.Entries {
				for _, br := range e.Blobs {
					if CheckBlobRef(br) != nil || strings.Contains(br.Name, "..") {
						t.Fatalf("accepted blob %+v", br)
					}
				}
			}
		}
		ParseRecoverListRequest(b)
		if r, err := ParseRecoverListResponse(b); err == nil {
			for _, br := range r.Blobs {
				if strings.Contains(br.Name, "..") || strings.HasPrefix(br.Name, "/") {
					t.Fatalf("accepted blob %+v", br)
				}
			}
		}
		if q, err := ParseRecoverBlobRequest(b); err == nil && strings.Contains(q.Name, "..") {
			t.Fatalf("accepted blob name %q", q.Name)
		}
	})
}

func FuzzParseDeletion(f *testing.F) {
	n := newTestNode(f, "est1", "EST")
	d, err := SignDeletion(Deletion{Owner: "est1", Grant: NewGrantID(), Version: "0123456789abcdef0123456789abcdef", LogIndex: 42, Deleted: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)}, n.keys.SignHybrid)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(d.Raw)
	pub := n.keys.Identity().Public()
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _, _, err := parseDeletion(b)
		if err != nil {
			return
		}
		if err := got.validate(); err != nil {
			t.Fatalf("parsed a record that does not validate: %v", err)
		}
		if v, err := ParseDeletion(b, pub); err == nil && !bytes.Equal(v.Raw, b) {
			t.Fatal("a verified record is not the bytes given")
		}
	})
}
