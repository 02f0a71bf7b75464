package s3_test

// The authorization table test: every operation the route table routes is
// sent, for real, by a principal of each role, by one of another nation and
// by a credential no configuration knows, and the answer is checked against
// the table in docs/operator-guide.md. A new route without a row there, or
// without a probe here, fails; so does a handler whose decision differs
// from what the table documents.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/vault"
)

// rolesLabel is readable by every principal of the fixture (all are
// cleared NATO SECRET, and LUX is in the releasability list), so that a
// refusal in the table test is the role's or the nationality's, never the
// label's.
const rolesLabel = "NATO CONFIDENTIAL//REL TO EST, LUX"

// rolesPrincipals are the principals of the fixture: one per role, one
// without roles, one of another nation holding the operator role, and a
// credential whose principal is not configured.
var rolesPrincipals = []struct {
	name       string
	nation     string
	roles      []string
	vaultRoles map[string][]string
}{
	{"reader", "EST", []string{"reader"}, nil},
	{"writer", "EST", []string{"writer"}, nil},
	{"operator", "EST", []string{"operator"}, nil},
	{"admin", "EST", []string{"admin"}, nil},
	{"auditor", "EST", []string{"auditor"}, nil},
	{"noroles", "EST", nil, nil},
	{"regclerk", "EST", nil, map[string][]string{"reg": {"writer"}}},
	{"regop", "EST", []string{"reader"}, map[string][]string{"reg": {"operator"}}},
	{"foreign", "LUX", []string{"operator"}, nil},
	{"ally", "LUX", nil, nil},
	{"stranger", "", nil, nil}, // a credential only
}

func rolesCred(name string) s3.Credential {
	return s3.Credential{AccessKey: "AK" + strings.ToUpper(name) + "0000", SecretKey: "secret-of-" + name + "-0123456789", Principal: name}
}

// rolesHarness is a node that is not a development node, with the
// principals above, a vault "reg" with object lock, and its S3 server.
type rolesHarness struct {
	*harness
	seq atomic.Int64
}

func newRolesHarness(t testing.TB, edit ...func(*node.Config)) *rolesHarness {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "node")
	if _, err := node.InitDev(dir, node.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := node.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	c.Node.Dev = false
	for _, p := range rolesPrincipals {
		if p.nation != "" && p.name != "admin" {
			c.Principals = append(c.Principals, access.Principal{Name: p.name, Nation: p.nation, Clearances: map[string]string{"NATO": "SECRET"}, Roles: p.roles, VaultRoles: p.vaultRoles})
		}
		cr := rolesCred(p.name)
		c.S3.Credentials = append(c.S3.Credentials, node.CredentialConfig{Principal: cr.Principal, AccessKey: cr.AccessKey, SecretKey: cr.SecretKey})
	}
	for _, f := range edit {
		f(c)
	}
	if err := node.SaveConfig(dir, c); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, root: root}
	n, err := node.Open(context.Background(), dir, slog.New(&recordingHandler{h: h}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	h.n = n
	if err := n.AddVault(node.VaultConfig{Name: "reg", Erasure: "4+2", Survive: "jurisdictions=1", ObjectLock: &node.ObjectLockConfig{}}); err != nil {
		t.Fatal(err)
	}
	handler, err := n.S3Handler()
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(handler)
	t.Cleanup(h.srv.Close)
	h.url = h.srv.URL
	h.host = strings.TrimPrefix(h.srv.URL, "http://")
	h.sdk = h.client(rolesCred("admin"))
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, f := range h.failed {
			t.Errorf("server failed a request: %s", f)
		}
	})
	return &rolesHarness{harness: h}
}

// as returns a context acting as the named principal, for setting up
// fixtures through the engine.
func (h *rolesHarness) as(name string) context.Context {
	return h.n.As(context.Background(), name)
}

// object stores a fresh labelled object as admin and returns its key and
// version.
func (h *rolesHarness) object() (string, string) {
	h.t.Helper()
	key := fmt.Sprintf("obj-%d", h.seq.Add(1))
	info, err := h.n.Engine.Put(h.as("admin"), "reg", key, strings.NewReader("payload"), vault.PutOptions{Size: 7, Label: rolesLabel})
	if err != nil {
		h.t.Fatal(err)
	}
	return key, info.VersionID.String()
}

// upload starts an upload as who if who may, else as admin, with one part
// uploaded, and returns the key, the upload id and the part's ETag.
func (h *rolesHarness) upload(who string) (key, id, etag string) {
	h.t.Helper()
	key = fmt.Sprintf("up-%d", h.seq.Add(1))
	ctx := h.as(who)
	up, err := h.n.Engine.CreateUpload(ctx, "reg", key, vault.PutOptions{Label: rolesLabel})
	if err != nil {
		ctx = h.as("admin")
		if up, err = h.n.Engine.CreateUpload(ctx, "reg", key, vault.PutOptions{Label: rolesLabel}); err != nil {
			h.t.Fatal(err)
		}
	}
	p, err := h.n.Engine.PutPart(ctx, "reg", key, up.ID, 1, strings.NewReader("part"), 4, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return key, up.ID, p.ETag
}

// emptyBucket creates an empty vault as admin.
func (h *rolesHarness) emptyBucket() string {
	h.t.Helper()
	name := fmt.Sprintf("empty-%d", h.seq.Add(1))
	if err := h.n.AddVault(node.VaultConfig{Name: name, Erasure: "4+2"}); err != nil {
		h.t.Fatal(err)
	}
	return name
}

func xmlBody(s string) []byte { return []byte(`<?xml version="1.0" encoding="UTF-8"?>` + s) }

// probes builds, for each operation, a request that succeeds when the
// caller is allowed (given fresh fixtures).
var probes = map[string]func(h *rolesHarness, who string) rawRequest{
	"ListBuckets": func(h *rolesHarness, who string) rawRequest { return rawRequest{method: "GET", path: "/"} },
	"PutBucketVersioning": func(h *rolesHarness, who string) rawRequest {
		return rawRequest{method: "PUT", path: "/reg?versioning", body: xmlBody(`<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>`)}
	},
	"PutObjectLockConfiguration": func(h *rolesHarness, who string) rawRequest {
		return rawRequest{method: "PUT", path: "/reg?object-lock", body: xmlBody(`<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>`)}
	},
	"CreateBucket": func(h *rolesHarness, who string) rawRequest {
		return rawRequest{method: "PUT", path: fmt.Sprintf("/new-%d", h.seq.Add(1))}
	},
	"HeadBucket": func(h *rolesHarness, who string) rawRequest { return rawRequest{method: "HEAD", path: "/reg"} },
	"DeleteBucket": func(h *rolesHarness, who string) rawRequest {
		return rawRequest{method: "DELETE", path: "/" + h.emptyBucket()}
	},
	"DeleteBucket (sub-resource)": func(h *rolesHarness, who string) rawRequest {
		return rawRequest{method: "DELETE", path: "/reg?cors"}
	},
	"DeleteObjects": func(h *rolesHarness, who string) rawRequest {
		key, _ := h.object()
		body := xmlBody(`<Delete><Object><Key>` + key + `</Key></Object></Delete>`)
		return rawRequest{method: "POST", path: "/reg?delete", body: body, header: http.Header{"Content-Md5": {md5b64(body)}}}
	},
	"GetBucketLocation":               bucketGet("location"),
	"GetBucketVersioning":             bucketGet("versioning"),
	"GetObjectLockConfiguration":      bucketGet("object-lock"),
	"ListObjectVersions":              bucketGet("versions"),
	"ListMultipartUploads":            bucketGet("uploads"),
	"GetBucketEncryption":             bucketGet("encryption"),
	"GetBucketAcl":                    bucketGet("acl"),
	"GetBucketTagging":                bucketGet("tagging"),
	"GetBucketPolicy":                 bucketGet("policy"),
	"GetBucketLifecycleConfiguration": bucketGet("lifecycle"),
	"GetBucketCors":                   bucketGet("cors"),
	"ListObjectsV2":                   bucketGet("list-type=2"),
	"ListObjects": func(h *rolesHarness, who string) rawRequest {
		return rawRequest{method: "GET", path: "/reg"}
	},
	"UploadPartCopy": func(h *rolesHarness, who string) rawRequest {
		src, _ := h.object()
		key, id, _ := h.upload(who)
		return rawRequest{method: "PUT", path: "/reg/" + key + "?partNumber=2&uploadId=" + id, header: http.Header{"X-Amz-Copy-Source": {"/reg/" + src}}}
	},
	"UploadPart": func(h *rolesHarness, who string) rawRequest {
		key, id, _ := h.upload(who)
		return rawRequest{method: "PUT", path: "/reg/" + key + "?partNumber=2&uploadId=" + id, body: []byte("more")}
	},
	"PutObjectRetention": func(h *rolesHarness, who string) rawRequest {
		key, v := h.object()
		until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		body := xmlBody(`<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>` + until + `</RetainUntilDate></Retention>`)
		return rawRequest{method: "PUT", path: "/reg/" + key + "?retention&versionId=" + v, body: body, header: http.Header{"Content-Md5": {md5b64(body)}}}
	},
	"PutObjectLegalHold": func(h *rolesHarness, who string) rawRequest {
		key, v := h.object()
		body := xmlBody(`<LegalHold><Status>ON</Status></LegalHold>`)
		return rawRequest{method: "PUT", path: "/reg/" + key + "?legal-hold&versionId=" + v, body: body, header: http.Header{"Content-Md5": {md5b64(body)}}}
	},
	"CopyObject": func(h *rolesHarness, who string) rawRequest {
		src, _ := h.object()
		return rawRequest{method: "PUT", path: fmt.Sprintf("/reg/copy-%d", h.seq.Add(1)), header: http.Header{"X-Amz-Copy-Source": {"/reg/" + src}}}
	},
	"PutObject": func(h *rolesHarness, who string) rawRequest {
		return rawRequest{method: "PUT", path: fmt.Sprintf("/reg/put-%d", h.seq.Add(1)), body: []byte("data"), header: http.Header{"X-Embassy-Label": {rolesLabel}}}
	},
	"ListParts": func(h *rolesHarness, who string) rawRequest {
		key, id, _ := h.upload(who)
		return rawRequest{method: "GET", path: "/reg/" + key + "?uploadId=" + id}
	},
	"GetObjectRetention": objectGet("retention"),
	"GetObjectLegalHold": objectGet("legal-hold"),
	"GetObjectAcl":       objectGet("acl"),
	"GetObjectTagging":   objectGet("tagging"),
	"GetObjectAttributes": func(h *rolesHarness, who string) rawRequest {
		rr := objectGet("attributes")(h, who)
		rr.header = http.Header{"X-Amz-Object-Attributes": {"ETag,ObjectSize"}}
		return rr
	},
	"PutObjectAcl": func(h *rolesHarness, who string) rawRequest {
		key, v := h.object()
		return rawRequest{method: "PUT", path: "/reg/" + key + "?acl&versionId=" + v, header: http.Header{"X-Amz-Acl": {"private"}}}
	},
	"PutBucketAcl": func(h *rolesHarness, who string) rawRequest {
		return rawRequest{method: "PUT", path: "/reg?acl", header: http.Header{"X-Amz-Acl": {"private"}}}
	},
	"GetObject": objectGet(""),
	"HeadObject": func(h *rolesHarness, who string) rawRequest {
		key, _ := h.object()
		return rawRequest{method: "HEAD", path: "/reg/" + key}
	},
	"AbortMultipartUpload": func(h *rolesHarness, who string) rawRequest {
		key, id, _ := h.upload(who)
		return rawRequest{method: "DELETE", path: "/reg/" + key + "?uploadId=" + id}
	},
	"DeleteObjectVersion": func(h *rolesHarness, who string) rawRequest {
		key, v := h.object()
		return rawRequest{method: "DELETE", path: "/reg/" + key + "?versionId=" + v}
	},
	"DeleteObject": func(h *rolesHarness, who string) rawRequest {
		key, _ := h.object()
		return rawRequest{method: "DELETE", path: "/reg/" + key}
	},
	"CreateMultipartUpload": func(h *rolesHarness, who string) rawRequest {
		return rawRequest{method: "POST", path: fmt.Sprintf("/reg/mp-%d?uploads", h.seq.Add(1)), header: http.Header{"X-Embassy-Label": {rolesLabel}}}
	},
	"CompleteMultipartUpload": func(h *rolesHarness, who string) rawRequest {
		key, id, etag := h.upload(who)
		body := xmlBody(`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>` + etag + `</ETag></Part></CompleteMultipartUpload>`)
		return rawRequest{method: "POST", path: "/reg/" + key + "?uploadId=" + id, body: body}
	},
}

func bucketGet(sub string) func(h *rolesHarness, who string) rawRequest {
	return func(h *rolesHarness, who string) rawRequest { return rawRequest{method: "GET", path: "/reg?" + sub} }
}

func objectGet(sub string) func(h *rolesHarness, who string) rawRequest {
	return func(h *rolesHarness, who string) rawRequest {
		key, _ := h.object()
		if sub == "" {
			return rawRequest{method: "GET", path: "/reg/" + key}
		}
		return rawRequest{method: "GET", path: "/reg/" + key + "?" + sub}
	}
}

// docRow is one row of the documented table.
type docRow struct {
	request   string
	role      string // "" for not implemented
	nation    bool
	initiator bool
}

// documentedRoutes reads the S3 table from docs/operator-guide.md.
func documentedRoutes(t *testing.T) (map[string]docRow, string) {
	t.Helper()
	doc, err := os.ReadFile("../docs/operator-guide.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- BEGIN S3 ROUTE TABLE")
	if !ok {
		t.Fatal("docs/operator-guide.md has no S3 route table (<!-- BEGIN S3 ROUTE TABLE … -->)")
	}
	_, rest, _ = strings.Cut(rest, "-->\n")
	table, _, ok := strings.Cut(rest, "<!-- END S3 ROUTE TABLE -->")
	if !ok {
		t.Fatal("docs/operator-guide.md: the S3 route table does not end")
	}
	rows := map[string]docRow{}
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[2:] {
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 6 {
			t.Fatalf("route table row %q: %d cells, want 6", line, len(cells))
		}
		op := strings.TrimSpace(cells[0])
		role := strings.TrimSpace(cells[2])
		if strings.HasPrefix(role, "—") {
			role = ""
		}
		rows[op] = docRow{request: strings.Trim(cells[1], "` "), role: role, nation: strings.TrimSpace(cells[4]) == "yes",
			initiator: strings.Contains(cells[5], "initiator or operator")}
	}
	return rows, table
}

// TestRouteTableDocumented: the table in the operator guide is the route
// table, row for row.
func TestRouteTableDocumented(t *testing.T) {
	_, table := documentedRoutes(t)
	if strings.TrimSpace(table) != strings.TrimSpace(s3.RouteTable()) {
		t.Errorf("docs/operator-guide.md's S3 route table differs from s3.RouteTable(); regenerate it with go test ./node -run TestRouteTableDoc -update\n--- doc\n%s\n--- code\n%s", table, s3.RouteTable())
	}
}

// TestAuthorizationTable walks every route for every principal and checks
// the decision against the documented table.
func TestAuthorizationTable(t *testing.T) {
	h := newRolesHarness(t)
	rows, _ := documentedRoutes(t)
	for _, r := range s3.Routes() {
		row, ok := rows[r.Operation]
		if !ok {
			t.Errorf("operation %s is routed but not in the documented table", r.Operation)
			continue
		}
		if row.role != string(r.Role) || row.nation != r.Nation {
			t.Errorf("operation %s: documented role %q nation %v, routed role %q nation %v", r.Operation, row.role, row.nation, r.Role, r.Nation)
		}
	}
	for _, r := range s3.Routes() {
		t.Run(r.Operation, func(t *testing.T) {
			h.t = t
			defer func() { h.t = h.harness.t }()
			row := rows[r.Operation]
			probe := probes[r.Operation]
			if probe == nil && row.role != "" {
				t.Fatalf("no probe for operation %s: add one to probes", r.Operation)
			}
			for _, who := range rolesPrincipals {
				var rr rawRequest
				if probe != nil {
					rr = probe(h, who.name)
				} else {
					rr = notImplementedProbe(r.Request)
				}
				cred := rolesCred(who.name)
				rr.as = &cred
				if len(rr.body) > 0 && rr.header.Get("Content-Md5") == "" && rr.method == "POST" {
					if rr.header == nil {
						rr.header = http.Header{}
					}
					rr.header.Set("Content-Md5", md5b64(rr.body))
				}
				resp := h.do(rr)
				want := "allowed"
				switch {
				case row.role == "":
					want = "not implemented"
				case !allows(who.nation, who.roles, who.vaultRoles, access.Role(row.role), bucketOf(rr.path)):
					want = "denied (role)"
				case row.nation && who.nation != "EST":
					want = "denied (nation)"
				case row.initiator && r.Operation != "ListMultipartUploads" && who.nation != "EST" && !allows(who.nation, who.roles, who.vaultRoles, access.RoleOperator, "reg"):
					// The upload is the prober's own when it may start
					// one (a national writer); otherwise admin's. (A
					// listing is not refused: it shows only one's own.)
					want = "denied (not the initiator)"
				}
				got := decision(resp, rr.method)
				if (got == "denied") != strings.HasPrefix(want, "denied") || (want == "not implemented") != (got == "not implemented") {
					t.Errorf("%s as %s: %s (status %d: %s), want %s", r.Operation, who.name, got, resp.status, firstLine(resp.body), want)
				}
			}
		})
	}
}

// allows is the documented role rule.
// on bucket ("" for service-level operations: a role on any bucket).
func allows(nation string, roles []string, vaultRoles map[string][]string, want access.Role, bucket string) bool {
	if nation == "" {
		return false
	}
	p := access.Principal{Nation: nation, Roles: roles, VaultRoles: vaultRoles}
	if bucket == "" {
		return p.CanSomewhere(want)
	}
	return p.Can(bucket, want)
}

// bucketOf returns the bucket a request path names.
func bucketOf(path string) string {
	path, _, _ = strings.Cut(path, "?")
	b, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return b
}

// decision classifies a response: "denied" is a plain 403 AccessDenied
// (a pending two-person request is also a 403, but says so).
func decision(resp rawResponse, method string) string {
	if resp.status == http.StatusNotImplemented {
		return "not implemented"
	}
	if resp.status != http.StatusForbidden {
		return "allowed"
	}
	if method == http.MethodHead || bytes.Contains(resp.body, []byte("<Message>Access Denied</Message>")) {
		return "denied"
	}
	return "allowed"
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(b) > 200 {
		return string(b[:200])
	}
	return s
}

// notImplementedProbe turns a documented request shape ("PUT
// /BUCKET?acl") into a request on vault reg.
func notImplementedProbe(shape string) rawRequest {
	method, path, _ := strings.Cut(shape, " ")
	path, _, _ = strings.Cut(path, " ")
	path = strings.Replace(path, "/BUCKET/KEY", "/reg/some-key", 1)
	path = strings.Replace(path, "/BUCKET", "/reg", 1)
	path = strings.ReplaceAll(path, "…", "cors")
	return rawRequest{method: method, path: path}
}

// TestProbesMatchRoutes: every probe names a routed operation (a probe for
// a route that was removed is stale).
func TestProbesMatchRoutes(t *testing.T) {
	var ops []string
	for _, r := range s3.Routes() {
		ops = append(ops, r.Operation)
	}
	for op := range probes {
		if !slices.Contains(ops, op) {
			t.Errorf("probe for %s, which is not routed", op)
		}
	}
}
