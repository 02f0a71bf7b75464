package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/custody/shamir"
)

// adminFixture is a custodian node with principals of each kind and S3
// credentials for them, its handler behind an httptest server.
type adminFixture struct {
	cn  *custodyNode
	srv *httptest.Server
}

func newAdminFixture(t *testing.T, edit ...func(*Config)) *adminFixture {
	t.Helper()
	cn := newCustodyNode(t)
	c := *cn.n.Config
	c.Principals = append(append([]access.Principal(nil), c.Principals...),
		access.Principal{Name: "ops", Nation: "EST", Roles: []string{"operator"}},
		access.Principal{Name: "aud", Nation: "EST", Roles: []string{"auditor"}},
		access.Principal{Name: "clerk", Nation: "EST", Roles: []string{"writer"}},
	)
	c.S3.Credentials = nil
	for _, p := range []string{"ops", "aud", "clerk"} {
		c.S3.Credentials = append(c.S3.Credentials, CredentialConfig{Principal: p, AccessKey: "AK" + strings.ToUpper(p), SecretKey: "secret-of-" + p})
	}
	for _, f := range edit {
		f(&c)
	}
	if err := cn.n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	f := &adminFixture{cn: cn, srv: httptest.NewServer(cn.n.Handler())}
	t.Cleanup(f.srv.Close)
	return f
}

type adminResp struct {
	status int
	header http.Header
	body   string
}

func (f *adminFixture) send(t *testing.T, req *http.Request) adminResp {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return adminResp{resp.StatusCode, resp.Header, string(b)}
}

func (f *adminFixture) anon(t *testing.T, method, path string, body []byte) adminResp {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	return f.send(t, req)
}

// sigv4 sends a request signed with an S3 credential.
func (f *adminFixture) sigv4(t *testing.T, method, path, ak, sk string) adminResp {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, nil)
	sum := sha256.Sum256(nil)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payload)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}, req, payload, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return f.send(t, req)
}

// custodian sends a request signed by key as custodian name.
func (f *adminFixture) custodian(t *testing.T, method, path, name string, key *custody.CustodianKey, body []byte, edit ...func(*http.Request)) adminResp {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	SignCustodianRequest(req, f.cn.n.Config.Node.ID, name, body, key.Sign, time.Now())
	for _, e := range edit {
		e(req)
	}
	return f.send(t, req)
}

// TestAdminSurface: who may call what on /_embassy/.
func TestAdminSurface(t *testing.T) {
	f := newAdminFixture(t)
	n := f.cn.n
	id := n.Config.Node.ID

	// Anonymous: the status says sealed or not and nothing else; the rest
	// is refused.
	if r := f.anon(t, "GET", "/_embassy/status", nil); r.status != 200 || strings.TrimSpace(r.body) != "{\n  \"sealed\": false\n}" {
		t.Errorf("anonymous status: %d %s", r.status, r.body)
	}
	for _, p := range []struct{ method, path string }{
		{"GET", "/_embassy/v1/status"}, {"GET", "/_embassy/v1/requests"}, {"GET", "/_embassy/v1/custody/status"},
		{"GET", "/_embassy/v1/custody/requests"}, {"GET", "/_embassy/requests"}, {"POST", "/_embassy/unseal"},
		{"POST", "/_embassy/requests/0011/approve"},
	} {
		if r := f.anon(t, p.method, p.path, nil); r.status != 401 && r.status != 403 || strings.Contains(r.body, id) {
			t.Errorf("anonymous %s %s: %d %s", p.method, p.path, r.status, r.body)
		}
	}

	// Operators and auditors, by SigV4; not writers nor strangers.
	for who, want := range map[string]int{"ops": 200, "aud": 200, "clerk": 403} {
		for _, p := range []string{"/_embassy/v1/status", "/_embassy/v1/requests"} {
			r := f.sigv4(t, "GET", p, "AK"+strings.ToUpper(who), "secret-of-"+who)
			if r.status != want {
				t.Errorf("%s GET %s: %d %s, want %d", who, p, r.status, r.body, want)
			}
			if want == 200 && p == "/_embassy/v1/status" && !strings.Contains(r.body, id) {
				t.Errorf("%s: status without the node id: %s", who, r.body)
			}
		}
	}
	// The audit log: auditors only (operators run the node, they do not
	// audit it).
	for who, want := range map[string]int{"ops": 403, "aud": 200, "clerk": 403} {
		r := f.sigv4(t, "GET", "/_embassy/v1/audit/log?kind=config", "AK"+strings.ToUpper(who), "secret-of-"+who)
		if r.status != want {
			t.Errorf("%s GET audit log: %d %s, want %d", who, r.status, r.body, want)
		}
		if want == 200 && !strings.Contains(r.body, `"kind": "config.change"`) {
			t.Errorf("%s: the audit log shows no configuration change: %s", who, r.body)
		}
	}
	if r := f.anon(t, "GET", "/_embassy/v1/audit/log", nil); r.status != 401 && r.status != 403 {
		t.Errorf("anonymous audit log: %d %s", r.status, r.body)
	}
	if r := f.sigv4(t, "GET", "/_embassy/v1/status", "AKOPS", "wrong-secret"); r.status != 403 || strings.Contains(r.body, id) {
		t.Errorf("a wrong secret: %d %s", r.status, r.body)
	}

	// Custodians, by their signatures.
	alice := f.cn.keys["alice"]
	if r := f.custodian(t, "GET", "/_embassy/v1/custody/status", "alice", alice, nil); r.status != 200 || !strings.Contains(r.body, id) {
		t.Errorf("custodian status: %d %s", r.status, r.body)
	}
	if r := f.custodian(t, "GET", "/_embassy/v1/custody/requests", "alice", alice, nil); r.status != 200 {
		t.Errorf("custodian requests: %d %s", r.status, r.body)
	}
	mallory, _ := custody.GenerateCustodian("alice")
	refusals := map[string]adminResp{
		"another key under alice's name": f.custodian(t, "GET", "/_embassy/v1/custody/status", "alice", mallory, nil),
		"not a custodian":                f.custodian(t, "GET", "/_embassy/v1/custody/status", "mallory", mallory, nil),
		"signed ten minutes ago": f.custodian(t, "GET", "/_embassy/v1/custody/status", "alice", alice, nil, func(r *http.Request) {
			SignCustodianRequest(r, id, "alice", nil, alice.Sign, time.Now().Add(-10*time.Minute))
		}),
		"signed for another node": f.custodian(t, "GET", "/_embassy/v1/custody/status", "alice", alice, nil, func(r *http.Request) {
			SignCustodianRequest(r, "0000000000000000", "alice", nil, alice.Sign, time.Now())
		}),
		"a POST for any node": f.custodian(t, "POST", "/_embassy/v1/custody/requests/001122334455/approve", "alice", alice, []byte(`{}`), func(r *http.Request) {
			SignCustodianRequest(r, "-", "alice", []byte(`{}`), alice.Sign, time.Now())
		}),
		"signed for another path": f.custodian(t, "GET", "/_embassy/v1/custody/requests", "alice", alice, nil, func(r *http.Request) {
			r.URL.Path = "/_embassy/v1/custody/status"
		}),
	}
	for name, r := range refusals {
		if r.status != 401 || strings.Contains(r.body, `"node":`) {
			t.Errorf("%s: %d %s, want 401", name, r.status, r.body)
		}
	}
	// A body other than the one signed.
	req, _ := http.NewRequest("POST", f.srv.URL+"/_embassy/v1/custody/requests/001122334455/reject", strings.NewReader(`{"signature": "AAAA"}`))
	SignCustodianRequest(req, id, "alice", []byte(`{"signature": "BBBB"}`), alice.Sign, time.Now())
	if r := f.send(t, req); r.status != 401 || !strings.Contains(r.body, "not the one signed") {
		t.Errorf("a changed body: %d %s", r.status, r.body)
	}

	// The old paths answer as aliases, deprecated.
	r := f.custodian(t, "GET", "/_embassy/requests", "alice", alice, nil)
	if r.status != 200 || r.header.Get("Deprecation") != "true" || !strings.Contains(r.header.Get("Link"), "/_embassy/v1/custody/requests") {
		t.Errorf("the old requests path: %d %v %s", r.status, r.header, r.body)
	}
}

// TestMetricsNeedAToken: metrics on the S3 listener answer only with the
// bearer token of metrics.token_file; without one configured, not at all.
func TestMetricsNeedAToken(t *testing.T) {
	f := newAdminFixture(t)
	if r := f.anon(t, "GET", "/_embassy/metrics", nil); r.status != 404 || strings.Contains(r.body, "embassy_") {
		t.Errorf("metrics without a configured token: %d %s", r.status, r.body)
	}
	tok := "a-metrics-token-0123456789"
	if err := os.WriteFile(filepath.Join(f.cn.dir, "metrics.token"), []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := *f.cn.n.Config
	c.Metrics.TokenFile = "metrics.token"
	if err := f.cn.n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"", "Bearer wrong-token-0123456789", "Basic " + tok, "Bearer " + tok[:10]} {
		req, _ := http.NewRequest("GET", f.srv.URL+"/_embassy/metrics", nil)
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		if r := f.send(t, req); r.status != 401 || strings.Contains(r.body, "embassy_") {
			t.Errorf("Authorization %q: %d %s", h, r.status, r.body)
		}
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/_embassy/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if r := f.send(t, req); r.status != 200 || !strings.Contains(r.body, "embassy_sealed 0") {
		t.Errorf("with the token: %d %s", r.status, r.body)
	}
	// A metrics listener that is not on loopback is a configuration error.
	c.Metrics.Address = "0.0.0.0:9464"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "metrics.address") {
		t.Errorf("metrics.address on every interface: %v", err)
	}
}

// TestForgedSharesCannotResetTheCeremony: the share set's id is printed on
// every share file, so anyone can make a share that looks like one of this
// node's. Posted to a sealed node, unsigned or signed with a key that is
// not a custodian's, it is refused before it touches the ceremony: the
// shares already given stay given, and the real custodians finish.
func TestForgedSharesCannotResetTheCeremony(t *testing.T) {
	f := newAdminFixture(t)
	cn := f.cn
	cn.n.Close()
	n := cn.open(t)
	f.srv.Config.Handler = n.Handler()
	shareBody := func(share []byte) []byte {
		b, _ := json.Marshal(map[string][]byte{"share": share})
		return b
	}
	if r := f.custodian(t, "POST", "/_embassy/v1/custody/unseal", "alice", cn.keys["alice"], shareBody(cn.share(t, "alice"))); r.status != 200 || !strings.Contains(r.body, `"given": 1`) {
		t.Fatalf("alice's share: %d %s", r.status, r.body)
	}
	// A forged share of the same set: right set id, threshold and index,
	// wrong value.
	real, err := shamir.ParseSetShare(cn.share(t, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	real.Share.Y[0] ^= 0xff
	forged, err := real.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	mallory, _ := custody.GenerateCustodian("bob")
	for name, r := range map[string]adminResp{
		"unsigned":                   f.anon(t, "POST", "/_embassy/v1/custody/unseal", shareBody(forged)),
		"unsigned, old path":         f.anon(t, "POST", "/_embassy/unseal", shareBody(forged)),
		"signed with another key":    f.custodian(t, "POST", "/_embassy/v1/custody/unseal", "bob", mallory, shareBody(forged)),
		"signed by nobody in charge": f.custodian(t, "POST", "/_embassy/v1/custody/unseal", "mallory", mallory, shareBody(forged)),
	} {
		if r.status != 401 {
			t.Errorf("%s: %d %s, want 401", name, r.status, r.body)
		}
		if st := n.unsealStatus(); st.Given != 1 || !st.Sealed {
			t.Fatalf("after the forged share (%s): %+v, want alice's share still given", name, st)
		}
	}
	// A real custodian giving a share that is not theirs (carol signs,
	// the share is bob's index): refused before the ceremony sees it.
	if r := f.custodian(t, "POST", "/_embassy/v1/custody/unseal", "carol", cn.keys["carol"], shareBody(forged)); r.status != 400 || !strings.Contains(r.body, "is not custodian carol's") {
		t.Errorf("carol giving bob's share: %d %s, want 400", r.status, r.body)
	}
	if st := n.unsealStatus(); st.Given != 1 || !st.Sealed {
		t.Fatalf("after carol gave bob's share: %+v, want alice's share still given", st)
	}
	if r := f.custodian(t, "POST", "/_embassy/v1/custody/unseal", "bob", cn.keys["bob"], shareBody(cn.share(t, "bob"))); r.status != 200 || !strings.Contains(r.body, `"sealed": false`) {
		t.Fatalf("bob's share: %d %s", r.status, r.body)
	}
}

// TestAdminRouteWalk walks every endpoint of the admin route table (the
// deprecated aliases included) as each kind of caller — anonymous, a
// writer, an auditor and an operator by SigV4, a custodian by signature,
// the metrics token — and checks that exactly the callers the table names
// get past authentication. A refusal names nothing of the node.
func TestAdminRouteWalk(t *testing.T) {
	f := newAdminFixture(t)
	n := f.cn.n
	id := n.Config.Node.ID
	tok := "a-metrics-token-0123456789"
	if err := os.WriteFile(filepath.Join(f.cn.dir, "metrics.token"), []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := *n.Config
	c.Metrics.TokenFile = "metrics.token"
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
	alice := f.cn.keys["alice"]
	callers := []string{"anonymous", "writer", "auditor", "operator", "custodian", "metrics token"}
	send := func(caller, method, path string) adminResp {
		body := []byte(`{}`)
		if method == http.MethodGet {
			body = nil
		}
		switch caller {
		case "writer":
			return f.sigv4(t, method, path, "AKCLERK", "secret-of-clerk")
		case "auditor":
			return f.sigv4(t, method, path, "AKAUD", "secret-of-aud")
		case "operator":
			return f.sigv4(t, method, path, "AKOPS", "secret-of-ops")
		case "custodian":
			return f.custodian(t, method, path, "alice", alice, body)
		case "metrics token":
			req, _ := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			return f.send(t, req)
		}
		return f.anon(t, method, path, body)
	}
	allowed := func(rt adminRoute, caller string) bool {
		switch rt.auth {
		case authAnonymous:
			return true
		case authMetrics:
			return caller == "metrics token"
		case authCustodian:
			return caller == "custodian"
		case authOperator:
			role := map[string]access.Role{"writer": access.RoleWriter, "auditor": access.RoleAuditor, "operator": access.RoleOperator}[caller]
			// Roles nest (reader ⊂ writer ⊂ operator ⊂ admin): a route
			// open to readers is open to writers and operators.
			return role != "" && slices.ContainsFunc(rt.roles, role.Grants)
		}
		t.Fatalf("route %s %s: unknown authentication %d", rt.method, rt.path, rt.auth)
		return false
	}
	for _, rt := range adminRoutes {
		path := AdminPrefix + strings.ReplaceAll(rt.path, "{id}", "001122334455")
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			for _, caller := range callers {
				r := send(caller, rt.method, path)
				// A bearer token on a SigV4 endpoint is a malformed
				// Authorization (400), as in S3.
				refused := r.status == http.StatusUnauthorized || r.status == http.StatusForbidden ||
					r.status == http.StatusBadRequest && strings.Contains(r.body, "Unsupported Authorization Type")
				if want := allowed(rt, caller); refused == want {
					t.Errorf("%s: %d %s; want allowed=%v", caller, r.status, strings.TrimSpace(r.body), want)
				}
				if refused && strings.Contains(r.body, id) {
					t.Errorf("%s: the refusal names the node: %s", caller, r.body)
				}
			}
		})
	}
}
