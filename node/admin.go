package node

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/internal/httpguard"
	"github.com/embassy-dev/embassy/s3"
	"github.com/embassy-dev/embassy/s3/sigv4"
	"github.com/embassy-dev/embassy/taxii"
)

// The admin API lives beside the S3 API on the same listener, under
// /_embassy/ (a name no bucket can have: bucket names have no '_'), as
// DESIGN.md §7 decides:
//
//   - /_embassy/v1/… for operators: AWS Signature V4 with an S3 credential
//     whose principal holds the operator or admin role (or auditor, for what
//     only reads);
//   - /_embassy/v1/custody/… for custodians: every request signed with the
//     custodian's key from custody.json (see CustodianRequestMessage), so
//     custodians need no S3 credential and a sealed node, which trusts no
//     credential yet, can still be unsealed and decide;
//   - /_embassy/metrics with a bearer token (metrics.token_file), or on a
//     loopback-only listener of its own (metrics.address);
//   - /_embassy/status anonymous, saying only whether the node is sealed.
//
// The unversioned paths of earlier releases (/_embassy/unseal,
// /_embassy/requests…) are kept for one release as aliases of the custodian
// endpoints; they answer with a Deprecation header. The table of endpoints
// is adminRoutes, from which docs/operator-guide.md's table is generated.

// AdminPrefix is the path prefix of the admin API.
const AdminPrefix = "/_embassy/"

// adminAuth is how an endpoint authenticates its caller.
type adminAuth uint8

const (
	authAnonymous adminAuth = iota
	authMetrics
	authOperator
	authCustodian
)

func (a adminAuth) String() string {
	switch a {
	case authMetrics:
		return "metrics token"
	case authOperator:
		return "SigV4"
	case authCustodian:
		return "custodian signature"
	}
	return "none"
}

// adminRoute is one endpoint.
type adminRoute struct {
	method string
	// path is under /_embassy/; a segment "{id}" matches any one segment.
	path string
	auth adminAuth
	// roles are the node-wide roles any of which an operator request's
	// principal must hold.
	roles []access.Role
	// sealed: answered while the node is sealed.
	sealed bool
	// successor, for a deprecated alias, is the path that replaces it.
	successor string
	doc       string
	handle    func(n *Node, w http.ResponseWriter, r *http.Request, c *adminCall)
}

// adminCall is an authenticated request.
type adminCall struct {
	custodian string           // authCustodian
	principal access.Principal // authOperator
	id        string           // the {id} segment
	body      []byte           // the verified body (authCustodian)
}

// readerRoles may call operator endpoints that only read.
var readerRoles = []access.Role{access.RoleOperator, access.RoleAuditor}

// adminRoutes is the table of endpoints. The order matters only for the
// docs.
var adminRoutes = []adminRoute{
	{method: http.MethodGet, path: "status", auth: authAnonymous, sealed: true,
		doc: "`{\"sealed\": BOOL}`, nothing else", handle: (*Node).adminSealedOnly},
	{method: http.MethodGet, path: "metrics", auth: authMetrics, sealed: true,
		doc: "Prometheus text; `Authorization: Bearer` with `metrics.token_file`'s token", handle: (*Node).adminMetrics},
	{method: http.MethodGet, path: "v1/status", auth: authOperator, roles: readerRoles,
		doc: "node id, nation, custody, seal state", handle: (*Node).adminStatus},
	{method: http.MethodGet, path: "v1/requests", auth: authOperator, roles: readerRoles,
		doc: "two-person requests, newest first", handle: (*Node).adminRequests},
	{method: http.MethodGet, path: "v1/audit/log", auth: authOperator, roles: []access.Role{access.RoleAuditor},
		doc: "audit log events, newest first; `since` (RFC 3339), `vault`, `kind`, `limit` (default 1000)", handle: (*Node).adminAuditLog},
	{method: http.MethodPost, path: "v1/audit/verify", auth: authOperator, roles: []access.Role{access.RoleAuditor},
		doc: "`embassy audit verify`'s report: the log's copies, the index, every manifest and descriptor against the log", handle: (*Node).adminAuditVerify},
	{method: http.MethodPost, path: "v1/witness/add-checkpoint", auth: authAnonymous,
		doc: "C2SP tlog-witness: cosigns a checkpoint of a log in `audit.witnessed`, authenticated by the log's signature and a consistency proof", handle: (*Node).adminWitness},
	{method: http.MethodGet, path: "v1/witness/checkpoint", auth: authAnonymous,
		doc: "the latest checkpoint cosigned of the log `origin` (a query parameter), with the cosignature: what `audit verify` on that log's node asks", handle: (*Node).adminWitnessLatest},
	{method: http.MethodGet, path: "v1/custody/status", auth: authCustodian, sealed: true,
		doc: "node id, nation, custody, seal state", handle: (*Node).adminStatus},
	{method: http.MethodPost, path: "v1/custody/unseal", auth: authCustodian, sealed: true,
		doc: "`{\"share\": BASE64}`: the custodian's own share", handle: (*Node).adminUnseal},
	{method: http.MethodGet, path: "v1/custody/requests", auth: authCustodian, sealed: true,
		doc: "two-person requests, newest first", handle: (*Node).adminRequests},
	{method: http.MethodPost, path: "v1/custody/requests/{id}/approve", auth: authCustodian, sealed: true,
		doc: "`{\"signature\": BASE64}`: the approval (`ApprovalMessage`) signed", handle: (*Node).adminDecide},
	{method: http.MethodPost, path: "v1/custody/requests/{id}/reject", auth: authCustodian, sealed: true,
		doc: "`{\"signature\": BASE64}`: the rejection signed", handle: (*Node).adminDecide},

	{method: http.MethodPost, path: "unseal", auth: authCustodian, sealed: true, successor: "v1/custody/unseal", handle: (*Node).adminUnseal},
	{method: http.MethodGet, path: "requests", auth: authCustodian, sealed: true, successor: "v1/custody/requests", handle: (*Node).adminRequests},
	{method: http.MethodPost, path: "requests/{id}/approve", auth: authCustodian, sealed: true, successor: "v1/custody/requests/{id}/approve", handle: (*Node).adminDecide},
	{method: http.MethodPost, path: "requests/{id}/reject", auth: authCustodian, sealed: true, successor: "v1/custody/requests/{id}/reject", handle: (*Node).adminDecide},
}

// match reports whether the route serves method and path, and the {id}.
func (rt *adminRoute) match(method, path string) (string, bool) {
	if rt.method != method {
		return "", false
	}
	want, got := strings.Split(rt.path, "/"), strings.Split(path, "/")
	if len(want) != len(got) {
		return "", false
	}
	id := ""
	for i := range want {
		switch {
		case want[i] == "{id}" && got[i] != "":
			id = got[i]
		case want[i] != got[i]:
			return "", false
		}
	}
	return id, true
}

// AdminRouteInfo describes one admin endpoint for documentation.
type AdminRouteInfo struct {
	Request   string // "GET /_embassy/v1/status"
	Auth      string
	Roles     []access.Role
	Sealed    bool   // answered while sealed
	Successor string // for a deprecated alias, what replaces it
	Doc       string
}

// AdminRoutes describes every admin endpoint.
func AdminRoutes() []AdminRouteInfo {
	out := make([]AdminRouteInfo, 0, len(adminRoutes))
	for _, r := range adminRoutes {
		i := AdminRouteInfo{Request: r.method + " " + AdminPrefix + r.path, Auth: r.auth.String(), Roles: r.roles, Sealed: r.sealed, Doc: r.doc}
		if r.successor != "" {
			i.Successor = AdminPrefix + r.successor
		}
		out = append(out, i)
	}
	return out
}

// AdminRouteTable renders AdminRoutes as the Markdown table of
// docs/operator-guide.md.
func AdminRouteTable() string {
	var b strings.Builder
	b.WriteString("| endpoint | authentication | role | while sealed | answers |\n")
	b.WriteString("| --- | --- | --- | --- | --- |\n")
	for _, r := range AdminRoutes() {
		role := "—"
		if len(r.Roles) > 0 {
			var rs []string
			for _, x := range r.Roles {
				rs = append(rs, string(x))
			}
			role = strings.Join(rs, " or ")
		}
		sealed := "503"
		if r.Sealed {
			sealed = "yes"
		}
		doc := r.Doc
		if r.Successor != "" {
			doc = "deprecated alias of `" + r.Successor + "` (one release)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", r.Request, r.Auth, role, sealed, doc)
	}
	return b.String()
}

// Status is the node's status as the admin API reports it.
type Status struct {
	Node    string       `json:"node"`
	Nation  string       `json:"nation"`
	Dev     bool         `json:"dev"`
	Custody string       `json:"custody"` // "local key file" or "shamir t-of-n"
	Unseal  UnsealStatus `json:"unseal"`
	Note    string       `json:"note,omitempty"`
	// Sites is each site's state once the node is unsealed: a site whose
	// marker names another node or site, or that has none, is
	// unavailable, with the reason.
	Sites []SiteState `json:"sites"`
	// Descriptor is the node descriptor's generation on the sites, and
	// why the node does not publish it, if it does not.
	Descriptor DescriptorState `json:"descriptor"`
	// Keys is the count of encryptions under each key that encrypts with
	// random GCM nonces (the manifest key, each vault key generation),
	// with the fraction of its limit, once the node has started.
	Keys []custody.SealState `json:"keys,omitempty"`
}

// Status returns the node's status.
func (n *Node) Status() Status {
	st := Status{Node: n.conf().Node.ID, Nation: n.conf().Node.Nation, Dev: n.conf().Node.Dev, Custody: "local root key file"}
	n.sealMu.Lock()
	st.Unseal = n.statusLocked()
	n.sealMu.Unlock()
	if n.Custody != nil {
		st.Custody = "shamir " + itoa(n.Custody.Set.Threshold) + " of " + itoa(len(n.Custody.Custodians))
	}
	if st.Dev {
		st.Note = "DEVELOPMENT NODE: the root key is a local file and the node unseals itself; not for real data"
	}
	st.Sites = []SiteState{}
	if !st.Unseal.Sealed {
		st.Sites = append(st.Sites, n.SiteStates(context.Background(), 10*time.Second)...)
		st.Descriptor = n.Descriptor()
		st.Keys = n.SealStates()
	}
	return st
}

// SealedStatus is all an anonymous caller learns.
type SealedStatus struct {
	Sealed bool `json:"sealed"`
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// Handler returns the node's HTTP handler: the admin API and, once the node
// is unsealed, the S3 API (503 ServiceUnavailable before).
func (n *Node) Handler(extra ...s3.Credential) http.Handler {
	front := &s3Front{n: n, extra: extra}
	adminSrv := &adminServer{n: n, extra: extra, keys: sigv4.NewKeyCache(64)}
	admin := n.countAdmin(adminSrv)
	taxiiH := n.taxiiHandler(adminSrv)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, taxii.Prefix) || r.URL.Path+"/" == taxii.Prefix {
			// TAXII 2.1 (docs/threat-intel.md): HTTP Basic over TLS, the
			// route table and roles of package taxii.
			taxiiH.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, AdminPrefix) {
			admin.ServeHTTP(w, r)
			return
		}
		if err := n.Ready(); err != nil {
			w.Header().Set("Content-Type", "application/xml")
			w.Header().Set("Retry-After", "10")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>ServiceUnavailable</Code><Message>The node is sealed: custodians must unseal it (embassy unseal).</Message></Error>`)
			return
		}
		s3h, s3err := front.handler()
		if s3err != nil {
			http.Error(w, s3err.Error(), http.StatusInternalServerError)
			return
		}
		s3h.ServeHTTP(w, r)
	})
}

// adminServer serves the admin API.
type adminServer struct {
	n     *Node
	extra []s3.Credential
	keys  *sigv4.KeyCache
	// metricsOpen serves metrics without a token (the loopback-only
	// metrics listener).
	metricsOpen bool
}

// Secret implements sigv4.Credentials over the node's S3 credentials.
func (a *adminServer) Secret(accessKey string) (string, bool) {
	if p, s, ok := a.credential(accessKey); ok && p != "" {
		return s, true
	}
	return "", false
}

func (a *adminServer) credential(accessKey string) (principal, secret string, ok bool) {
	for _, c := range a.extra {
		if c.AccessKey == accessKey {
			return c.Principal, c.SecretKey, true
		}
	}
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	for _, c := range a.n.conf().S3.Credentials {
		if c.AccessKey == accessKey {
			return c.Principal, c.SecretKey, true
		}
	}
	return "", "", false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

type adminError struct {
	Error string `json:"error"`
}

// adminRefuse answers an unauthenticated request and closes the connection
// without reading what the client still sends.
func adminRefuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Connection", "close")
	writeJSON(w, status, adminError{msg})
}

func (a *adminServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, AdminPrefix)
	var rt *adminRoute
	c := &adminCall{}
	methodOK := false
	for i := range adminRoutes {
		if id, ok := adminRoutes[i].match(r.Method, path); ok {
			rt, c.id = &adminRoutes[i], id
			break
		}
		if _, ok := adminRoutes[i].match(adminRoutes[i].method, path); ok {
			methodOK = true
		}
	}
	if rt == nil {
		if methodOK {
			adminRefuse(w, http.StatusMethodNotAllowed, "method not allowed: "+r.Method+" "+r.URL.Path)
			return
		}
		adminRefuse(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
		return
	}
	if rt.successor != "" {
		w.Header().Set("Deprecation", "true")
		w.Header().Set("Link", "<"+AdminPrefix+strings.ReplaceAll(rt.successor, "{id}", c.id)+`>; rel="successor-version"`)
	}
	switch rt.auth {
	case authMetrics:
		if !a.metricsOpen {
			if status, msg := a.n.checkMetricsToken(r); status != 0 {
				adminRefuse(w, status, msg)
				return
			}
		}
		httpguard.Authenticated(r.Context())
	case authOperator:
		if err := a.n.Ready(); err != nil {
			// A sealed node has not verified node.yaml, where the
			// credentials are: it trusts none yet.
			w.Header().Set("Retry-After", "10")
			adminRefuse(w, http.StatusServiceUnavailable, "the node is sealed: operator endpoints answer once custodians have unsealed it")
			return
		}
		p, auth, err := a.operator(r, rt.roles)
		if err == nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
			c.body, err = readSignedBody(r, auth)
		}
		if err != nil {
			status := http.StatusForbidden
			if se, ok := errors.AsType[*sigv4.Error](err); ok {
				status = se.Status()
			}
			a.n.Log.DebugContext(r.Context(), "admin request refused", "path", r.URL.Path, "err", err)
			msg := "access denied"
			if se, ok := errors.AsType[*sigv4.Error](err); ok {
				msg = string(se.Code) + ": " + se.Message
			}
			adminRefuse(w, status, msg)
			return
		}
		httpguard.Authenticated(r.Context())
		c.principal = p
	case authCustodian:
		name, body, err := a.n.verifyCustodianRequest(r)
		if err != nil {
			a.n.Log.InfoContext(r.Context(), "custodian request refused", "path", r.URL.Path, "err", err)
			adminRefuse(w, http.StatusUnauthorized, err.Error())
			return
		}
		c.custodian, c.body = name, body
	}
	if !rt.sealed {
		if err := a.n.Ready(); err != nil {
			w.Header().Set("Retry-After", "10")
			writeJSON(w, http.StatusServiceUnavailable, adminError{err.Error()})
			return
		}
	}
	rt.handle(a.n, w, r, c)
}

// operator authenticates a SigV4 request and checks its principal's
// node-wide roles.
func (a *adminServer) operator(r *http.Request, roles []access.Role) (access.Principal, *sigv4.Auth, error) {
	auth, err := sigv4.Verify(r, a, time.Now(), sigv4.Options{Region: a.n.region(), Keys: a.keys, MustSign: []string{"x-embassy-"}})
	if err != nil {
		return access.Principal{}, nil, err
	}
	name, _, _ := a.credential(auth.AccessKey)
	p := a.n.Principal(name)
	for _, want := range roles {
		if p.Can("", want) {
			return p, auth, nil
		}
	}
	return p, nil, access.NeedRole(p, "", roles[0])
}

func (n *Node) region() string {
	if n.conf().S3.Region != "" {
		return n.conf().S3.Region
	}
	return "us-east-1"
}

func (n *Node) adminSealedOnly(w http.ResponseWriter, r *http.Request, _ *adminCall) {
	writeJSON(w, http.StatusOK, SealedStatus{Sealed: n.Sealed()})
}

func (n *Node) adminMetrics(w http.ResponseWriter, r *http.Request, _ *adminCall) { n.metrics(w, r) }

func (n *Node) adminStatus(w http.ResponseWriter, r *http.Request, _ *adminCall) {
	writeJSON(w, http.StatusOK, n.Status())
}

func (n *Node) adminRequests(w http.ResponseWriter, r *http.Request, _ *adminCall) {
	rs, err := n.Requests()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, adminError{err.Error()})
		return
	}
	if rs == nil {
		rs = []*Request{}
	}
	writeJSON(w, http.StatusOK, rs)
}

func (n *Node) adminUnseal(w http.ResponseWriter, r *http.Request, c *adminCall) {
	var req struct {
		Share string `json:"share"`
	}
	if err := json.Unmarshal(c.body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, adminError{"malformed request: " + err.Error()})
		return
	}
	share, err := base64.StdEncoding.DecodeString(req.Share)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, adminError{"share is not base64"})
		return
	}
	st, err := n.UnsealAs(c.custodian, share)
	clear(share)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, struct {
			adminError
			UnsealStatus
		}{adminError{err.Error()}, st})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (n *Node) adminDecide(w http.ResponseWriter, r *http.Request, c *adminCall) {
	var req struct {
		Custodian string `json:"custodian"`
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(c.body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, adminError{"malformed request: " + err.Error()})
		return
	}
	if req.Custodian != "" && req.Custodian != c.custodian {
		writeJSON(w, http.StatusForbidden, adminError{"the decision names custodian " + req.Custodian + " but the request is signed by " + c.custodian})
		return
	}
	sig, err := base64.StdEncoding.DecodeString(req.Signature)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, adminError{"signature is not base64"})
		return
	}
	approve := strings.HasSuffix(r.URL.Path, "/approve")
	rq, err := n.Decide(r.Context(), c.id, c.custodian, approve, sig)
	if err != nil {
		status := http.StatusForbidden
		switch {
		case errors.Is(err, ErrNoSuchRequest):
			status = http.StatusNotFound
		case errors.Is(err, ErrNotPending), errors.Is(err, ErrSealed):
			status = http.StatusConflict
		}
		writeJSON(w, status, adminError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, rq)
}

// Custodian requests. A custodian signs every request to the custodian
// endpoints with their Ed25519 key (the one approvals are verified with),
// over CustodianRequestMessage, and sends:
//
//	X-Embassy-Custodian:      the custodian's name in custody.json
//	X-Embassy-Node:           the node's id ("-" for a GET, by a custodian
//	                          who does not know it yet)
//	X-Embassy-Date:           the time, YYYYMMDDTHHMMSSZ, within 5 minutes
//	X-Embassy-Content-Sha256: the hex SHA-256 of the body
//	X-Embassy-Signature:      the signature, base64
//
// The node checks the signature against custody.json before it reads the
// body, then the body against its hash. A forged request — a share or a
// decision from anyone without a custodian's key — is refused without
// touching the unseal ceremony or the requests.

// Custodian request headers.
const (
	HeaderCustodian     = "X-Embassy-Custodian"
	HeaderNode          = "X-Embassy-Node"
	HeaderDate          = "X-Embassy-Date"
	HeaderContentSHA256 = "X-Embassy-Content-Sha256"
	HeaderSignature     = "X-Embassy-Signature"
	custodianDateFormat = "20060102T150405Z"
	custodianMaxSkew    = 5 * time.Minute
	maxAdminBody        = 64 << 10
)

// CustodianRequestMessage is what a custodian signs for one request to the
// custodian endpoints.
func CustodianRequestMessage(node, custodian, date, method, path, bodySHA256 string) []byte {
	return fmt.Appendf(nil, "embassy custodian request v1\nnode %s\ncustodian %s\ndate %s\nmethod %s\npath %s\nbody-sha256 %s\n",
		node, custodian, date, method, path, bodySHA256)
}

// SignCustodianRequest adds the custodian headers to r, signed with sign
// (a custodian key's Sign). node is the node's id, or "-" for a GET when it
// is not known.
func SignCustodianRequest(r *http.Request, node, custodian string, body []byte, sign func([]byte) []byte, now time.Time) {
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:])
	date := now.UTC().Format(custodianDateFormat)
	r.Header.Set(HeaderCustodian, custodian)
	r.Header.Set(HeaderNode, node)
	r.Header.Set(HeaderDate, date)
	r.Header.Set(HeaderContentSHA256, h)
	r.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sign(CustodianRequestMessage(node, custodian, date, r.Method, r.URL.Path, h))))
}

// errCustodianAuth wraps every refusal of a custodian request.
var errCustodianAuth = errors.New("custodian authentication failed")

// verifyCustodianRequest authenticates a custodian request and returns the
// custodian and the body.
func (n *Node) verifyCustodianRequest(r *http.Request) (string, []byte, error) {
	fail := func(format string, args ...any) (string, []byte, error) {
		return "", nil, fmt.Errorf("%w: %s", errCustodianAuth, fmt.Sprintf(format, args...))
	}
	name := r.Header.Get(HeaderCustodian)
	if name == "" || r.Header.Get(HeaderSignature) == "" {
		return fail("this endpoint needs a custodian's signature (%s, %s, …); sign it with embassy's custodian commands", HeaderCustodian, HeaderSignature)
	}
	n.sealMu.Lock()
	rec := n.Custody
	n.sealMu.Unlock()
	if rec == nil {
		return fail("this node has no custodians")
	}
	c, ok := rec.Custodian(name)
	if !ok {
		return fail("%s is not a custodian of this node", name)
	}
	date := r.Header.Get(HeaderDate)
	t, err := time.Parse(custodianDateFormat, date)
	if err != nil {
		return fail("%s %q is not YYYYMMDDTHHMMSSZ", HeaderDate, date)
	}
	if d := time.Since(t); d > custodianMaxSkew || d < -custodianMaxSkew {
		return fail("the request was signed at %s, more than %s from the node's clock", t.Format(time.RFC3339), custodianMaxSkew)
	}
	node := r.Header.Get(HeaderNode)
	if node != n.conf().Node.ID && (node != "-" || r.Method != http.MethodGet) {
		return fail("the request is signed for node %q, not this one", node)
	}
	want := r.Header.Get(HeaderContentSHA256)
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get(HeaderSignature))
	if err != nil {
		return fail("%s is not base64", HeaderSignature)
	}
	if err := c.VerifySignature(CustodianRequestMessage(node, name, date, r.Method, r.URL.Path, want), sig); err != nil {
		return fail("%v", err)
	}
	// Only now is the body read: a client without a custodian's key holds
	// nothing open, and the body must be what was signed.
	httpguard.Authenticated(r.Context())
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return fail("reading the body: %v", err)
	}
	if len(body) > maxAdminBody {
		return fail("the body is larger than %d bytes", maxAdminBody)
	}
	sum := sha256.Sum256(body)
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(want)) != 1 {
		return fail("the body is not the one signed")
	}
	return name, body, nil
}

// checkMetricsToken authorizes a metrics request on the S3 listener: 0 if
// it carries the configured bearer token, else a status and a message.
func (n *Node) checkMetricsToken(r *http.Request) (int, string) {
	tok, err := n.metricsToken()
	switch {
	case err != nil:
		return http.StatusInternalServerError, "metrics token: " + err.Error()
	case tok == "":
		return http.StatusNotFound, "metrics are not served on this listener: set metrics.token_file (for a bearer token) or metrics.address (a loopback-only listener)"
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(tok)) != 1 {
		return http.StatusUnauthorized, "metrics need Authorization: Bearer and the token in metrics.token_file"
	}
	return 0, ""
}

// metricsToken reads the bearer token of /_embassy/metrics, or "" when none
// is configured.
func (n *Node) metricsToken() (string, error) {
	f := n.conf().Metrics.TokenFile
	if f == "" {
		return "", nil
	}
	b, err := os.ReadFile(n.path(f))
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("%s holds %d characters; a token needs at least 16", f, len(tok))
	}
	return tok, nil
}
