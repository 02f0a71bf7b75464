package taxii

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/vault"
)

// Prefix is where the TAXII server answers on the S3 listener (DESIGN.md
// §7: '_' cannot start a bucket name, so no bucket collides with it), and
// APIRoot the name of the node's one API root under it.
const (
	Prefix  = "/_embassy/taxii2/"
	APIRoot = "api"
)

// maxEnvelopeObjects bounds the objects of one Add Objects request.
const maxEnvelopeObjects = 100000

// ServerConfig configures a Server.
type ServerConfig struct {
	// Store returns the store once the node can serve (it is opened on
	// first use, after unseal).
	Store func() (*Store, error)
	// Credential returns the principal and secret key of an access key
	// (the node's S3 credentials: a TAXII client logs in with the same).
	Credential func(accessKey string) (principal, secret string, ok bool)
	// Principal resolves a principal's name.
	Principal func(name string) access.Principal
	// Ready returns nil when the node serves, the reason otherwise (503).
	Ready func() error
	// Authenticated is told when a request has authenticated (the
	// listener's guard against unauthenticated clients).
	Authenticated func(context.Context)
	// Title and Description are the discovery resource's.
	Title, Description string
	Logger             *slog.Logger
}

// Server is the TAXII 2.1 HTTP surface: net/http, no framework.
type Server struct {
	cfg ServerConfig
	log *slog.Logger
}

// NewServer returns a Server.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Authenticated == nil {
		cfg.Authenticated = func(context.Context) {}
	}
	return &Server{cfg: cfg, log: cfg.Logger}
}

// scope is where a route's role is held.
type scope uint8

const (
	// scopeNode: the role on some vault (or node-wide).
	scopeNode scope = iota
	// scopeCollection: the role on the collection's vault.
	scopeCollection
)

// route is one TAXII endpoint: what it needs and what answers it.
type route struct {
	// name is the endpoint's name in TAXII 2.1.
	name   string
	method string
	// path is under Prefix; {root}, {status}, {collection} and {object}
	// match one segment.
	path   string
	role   access.Role
	scope  scope
	params int
	// note is a word for the docs.
	note   string
	handle func(*Server, *call) error
}

const (
	listParams   = paramAddedAfter | paramLimit | paramNext | paramID | paramType | paramVersion | paramSpecVersion
	objectParams = paramAddedAfter | paramLimit | paramNext | paramVersion | paramSpecVersion
)

// routes is the table of endpoints. Every route names the role it needs;
// TestRoutesAuthorize walks it with principals of every role.
var routes = []route{
	{name: "Server Discovery", method: http.MethodGet, path: "", role: access.RoleReader, scope: scopeNode, handle: (*Server).discovery},
	{name: "Get API Root Information", method: http.MethodGet, path: "{root}", role: access.RoleReader, scope: scopeNode, handle: (*Server).apiRoot},
	{name: "Get Status", method: http.MethodGet, path: "{root}/status/{status}", role: access.RoleReader, scope: scopeNode,
		note: "the caller's own requests; an operator sees every one", handle: (*Server).status},
	{name: "Get Collections", method: http.MethodGet, path: "{root}/collections", role: access.RoleReader, scope: scopeNode,
		note: "the collections on whose vault the caller holds a role", handle: (*Server).collections},
	{name: "Get a Collection", method: http.MethodGet, path: "{root}/collections/{collection}", role: access.RoleReader, scope: scopeCollection, handle: (*Server).collection},
	{name: "Get Object Manifests", method: http.MethodGet, path: "{root}/collections/{collection}/manifest", role: access.RoleReader, scope: scopeCollection, params: listParams,
		note: "objects whose label the caller may not read are left out", handle: (*Server).manifest},
	{name: "Get Objects", method: http.MethodGet, path: "{root}/collections/{collection}/objects", role: access.RoleReader, scope: scopeCollection, params: listParams,
		note: "objects whose label the caller may not read are left out", handle: (*Server).getObjects},
	{name: "Add Objects", method: http.MethodPost, path: "{root}/collections/{collection}/objects", role: access.RoleWriter, scope: scopeCollection,
		note: "a national of the vault's owner; each object's label (from its TLP marking) must be one the caller may write", handle: (*Server).addObjects},
	{name: "Get an Object", method: http.MethodGet, path: "{root}/collections/{collection}/objects/{object}", role: access.RoleReader, scope: scopeCollection, params: objectParams,
		handle: (*Server).getObject},
	{name: "Delete an Object", method: http.MethodDelete, path: "{root}/collections/{collection}/objects/{object}", role: access.RoleOperator, scope: scopeCollection, params: paramVersion | paramSpecVersion,
		note: "removes versions for good, as S3 DeleteObjectVersion; a national of the vault's owner", handle: (*Server).deleteObject},
	{name: "Get Object Versions", method: http.MethodGet, path: "{root}/collections/{collection}/objects/{object}/versions", role: access.RoleReader, scope: scopeCollection,
		params: paramAddedAfter | paramLimit | paramNext | paramSpecVersion, handle: (*Server).versions},
}

// call is one authenticated request.
type call struct {
	s      *Store
	w      http.ResponseWriter
	r      *http.Request
	ctx    context.Context
	p      access.Principal
	rt     *route
	vars   map[string]string
	col    CollectionConfig
	filter Filter
}

// match reports whether path (under Prefix, without its trailing '/')
// is the route's, and its variables.
func (rt *route) match(path string) (map[string]string, bool) {
	want, got := strings.Split(rt.path, "/"), strings.Split(path, "/")
	if len(want) != len(got) {
		return nil, false
	}
	vars := map[string]string{}
	for i := range want {
		w := want[i]
		switch {
		case strings.HasPrefix(w, "{"):
			if got[i] == "" {
				return nil, false
			}
			vars[strings.Trim(w, "{}")] = got[i]
		case w != got[i]:
			return nil, false
		}
	}
	if r, ok := vars["root"]; ok && r != APIRoot {
		return nil, false
	}
	return vars, true
}

// apiError is a TAXII error message resource with its HTTP status.
type apiError struct {
	status      int
	title       string
	description string
	header      map[string]string
}

func (e *apiError) Error() string { return e.title + ": " + e.description }

func fail(status int, title, format string, args ...any) *apiError {
	return &apiError{status: status, title: title, description: fmt.Sprintf(format, args...)}
}

// ServeHTTP implements http.Handler for paths under Prefix.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := s.serve(w, r); err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) error {
	if r.TLS == nil && !loopback(r.RemoteAddr) {
		// The password would have crossed the network in the clear.
		return &apiError{status: http.StatusForbidden, title: "TLS required",
			description: "TAXII's basic authentication is accepted only over TLS (or from loopback); configure s3.tls_cert and s3.tls_key",
			header:      map[string]string{"Connection": "close"}}
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			return &apiError{status: http.StatusServiceUnavailable, title: "Service unavailable", description: err.Error(), header: map[string]string{"Retry-After": "10"}}
		}
	}
	p, err := s.authenticate(r)
	if err != nil {
		return err
	}
	s.cfg.Authenticated(r.Context())
	st, err := s.cfg.Store()
	if err != nil {
		return err
	}
	urlPath := r.URL.Path
	if urlPath+"/" == Prefix {
		urlPath = Prefix
	}
	path := strings.TrimSuffix(strings.TrimPrefix(urlPath, Prefix), "/")
	var rt *route
	var vars map[string]string
	pathKnown := false
	for i := range routes {
		if v, ok := routes[i].match(path); ok {
			pathKnown = true
			if routes[i].method == r.Method {
				rt, vars = &routes[i], v
				break
			}
		}
	}
	if rt == nil {
		if pathKnown {
			return fail(http.StatusMethodNotAllowed, "Method not allowed", "%s is not allowed on %s", r.Method, r.URL.Path)
		}
		return fail(http.StatusNotFound, "Not found", "no TAXII resource at %s", r.URL.Path)
	}
	if !acceptable(r.Header.Get("Accept")) {
		return fail(http.StatusNotAcceptable, "Not acceptable", "this server answers with %s; the Accept header asks for %q", MediaTAXII, r.Header.Get("Accept"))
	}
	ctx := vault.WithPrincipal(r.Context(), p)
	c := &call{s: st, w: w, r: r.WithContext(ctx), ctx: ctx, p: p, rt: rt, vars: vars}
	if err := s.authorize(c); err != nil {
		return err
	}
	if rt.params != 0 {
		if c.filter, err = ParseFilter(r.URL.Query(), rt.params); err != nil {
			return fail(http.StatusBadRequest, "Bad filter", "%v", err)
		}
	} else if c.filter, err = ParseFilter(nil, 0); err != nil {
		return err
	}
	return rt.handle(s, c)
}

// authenticate checks HTTP Basic credentials: the username is an access
// key, the password its secret key, compared in constant time.
func (s *Server) authenticate(r *http.Request) (access.Principal, error) {
	unauthorized := &apiError{status: http.StatusUnauthorized, title: "Unauthorized", description: "this server needs HTTP Basic authentication with an access key and its secret key",
		header: map[string]string{"WWW-Authenticate": `Basic realm="embassy TAXII", charset="UTF-8"`, "Connection": "close"}}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return access.Principal{}, unauthorized
	}
	name, secret, found := s.cfg.Credential(user)
	// Compare digests, so that neither the length nor the content of
	// the secret shows in the time taken, and compare even for an
	// unknown key.
	want := sha256.Sum256([]byte(secret))
	got := sha256.Sum256([]byte(pass))
	if subtle.ConstantTimeCompare(want[:], got[:]) != 1 || !found || name == "" {
		s.log.InfoContext(r.Context(), "TAXII authentication failed", "access_key", user, "remote", r.RemoteAddr)
		unauthorized.description = "the access key or the secret key is wrong"
		return access.Principal{}, unauthorized
	}
	return s.cfg.Principal(name), nil
}

// authorize checks the route's role, and resolves the collection of a
// collection route. A collection on whose vault the caller holds no role
// at all is not found, so that its existence is not disclosed.
func (s *Server) authorize(c *call) error {
	denied := fail(http.StatusForbidden, "Forbidden", "access denied")
	if c.rt.scope == scopeNode {
		if !c.p.CanSomewhere(c.rt.role) {
			return denied
		}
		return nil
	}
	col, err := c.s.Collection(c.vars["collection"])
	if err != nil || !c.p.Can(col.Vault, access.RoleReader) && !c.p.Can(col.Vault, access.RoleWriter) {
		return fail(http.StatusNotFound, "Not found", "no collection %q in this API root", c.vars["collection"])
	}
	c.col = col
	if !c.p.Can(col.Vault, c.rt.role) {
		return denied
	}
	return nil
}

// acceptable reports whether an Accept header admits TAXII 2.1 JSON.
func acceptable(h string) bool {
	if strings.TrimSpace(h) == "" {
		return true
	}
	for part := range strings.SplitSeq(h, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		v, hasV := params["version"]
		switch mt {
		case "application/taxii+json":
			if !hasV || v == "2.1" {
				return true
			}
		case "*/*", "application/*":
			return true
		}
	}
	return false
}

// taxiiContentType reports whether a Content-Type is TAXII 2.1 JSON.
func taxiiContentType(h string) bool {
	mt, params, err := mime.ParseMediaType(h)
	if err != nil || mt != "application/taxii+json" {
		return false
	}
	v, hasV := params["version"]
	return !hasV || v == "2.1"
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = s.toAPI(r.Context(), err)
	}
	for k, v := range ae.header {
		w.Header().Set(k, v)
	}
	body := struct {
		Title       string `json:"title"`
		Description string `json:"description,omitempty"`
		HTTPStatus  string `json:"http_status"`
	}{ae.title, ae.description, strconv.Itoa(ae.status)}
	writeJSON(w, ae.status, body)
}

// toAPI maps the errors of the store and the engine to TAXII answers.
func (s *Server) toAPI(ctx context.Context, err error) *apiError {
	switch {
	case errors.Is(err, access.ErrDenied):
		s.log.InfoContext(ctx, "TAXII request denied", "err", err)
		return fail(http.StatusForbidden, "Forbidden", "access denied")
	case errors.Is(err, ErrFilter), errors.Is(err, ErrEnvelope):
		return fail(http.StatusBadRequest, "Bad request", "%v", err)
	case errors.Is(err, index.ErrNotFound), errors.Is(err, ErrNoStatus), errors.Is(err, ErrNoCollection), errors.Is(err, vault.ErrNoSuchKey):
		return fail(http.StatusNotFound, "Not found", "%v", err)
	case errors.Is(err, vault.ErrLocked):
		return fail(http.StatusConflict, "Locked", "%v", err)
	case errors.Is(err, vault.ErrApprovalRequired):
		return fail(http.StatusAccepted, "Approval required", "%v", err)
	case errors.Is(err, context.Canceled):
		return fail(http.StatusBadRequest, "Request cancelled", "%v", err)
	}
	s.log.ErrorContext(ctx, "TAXII request failed", "err", err)
	return fail(http.StatusInternalServerError, "Internal error", "%v", err)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"title":"Internal error","http_status":"500"}`)
	}
	w.Header().Set("Content-Type", MediaTAXII)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// The handlers.

func (s *Server) discovery(c *call) error {
	root := Prefix + APIRoot + "/"
	writeJSON(c.w, http.StatusOK, map[string]any{
		"title": s.cfg.Title, "description": s.cfg.Description, "default": root, "api_roots": []string{root},
	})
	return nil
}

func (s *Server) apiRoot(c *call) error {
	writeJSON(c.w, http.StatusOK, map[string]any{
		"title": s.cfg.Title, "description": "the collections of this node", "versions": []string{MediaTAXII},
		"max_content_length": c.s.cfg.Config().ContentLimit(),
	})
	return nil
}

func (s *Server) status(c *call) error {
	st, err := c.s.GetStatus(c.vars["status"], c.p.Name, c.p.CanSomewhere(access.RoleOperator))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, st)
	return nil
}

// collectionResource is a TAXII collection resource.
type collectionResource struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description,omitempty"`
	Alias       string   `json:"alias,omitempty"`
	CanRead     bool     `json:"can_read"`
	CanWrite    bool     `json:"can_write"`
	MediaTypes  []string `json:"media_types"`
}

func (s *Server) resource(c *call, col CollectionConfig) (collectionResource, bool) {
	if _, err := c.s.e.Vault(col.Vault); err != nil {
		return collectionResource{}, false
	}
	cr := collectionResource{ID: col.ID, Title: col.Title, Description: col.Description, Alias: col.Alias, MediaTypes: []string{MediaSTIX}}
	if cr.Title == "" {
		cr.Title = col.Name()
	}
	cr.CanRead = c.p.Can(col.Vault, access.RoleReader)
	cr.CanWrite = c.p.Can(col.Vault, access.RoleWriter) && c.s.e.CheckWrite(c.ctx, col.Vault) == nil
	return cr, cr.CanRead || cr.CanWrite
}

func (s *Server) collections(c *call) error {
	out := []collectionResource{}
	for _, col := range c.s.cfg.Config().Collections {
		if cr, ok := s.resource(c, col); ok {
			out = append(out, cr)
		}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"collections": out})
	return nil
}

func (s *Server) collection(c *call) error {
	cr, ok := s.resource(c, c.col)
	if !ok {
		return fail(http.StatusNotFound, "Not found", "no collection %q in this API root", c.vars["collection"])
	}
	writeJSON(c.w, http.StatusOK, cr)
	return nil
}

// addedHeaders sets X-TAXII-Date-Added-First and -Last.
func addedHeaders(w http.ResponseWriter, es []Entry) {
	if len(es) == 0 {
		return
	}
	first, last := es[0].Added, es[0].Added
	for _, e := range es {
		first, last = min(first, e.Added), max(last, e.Added)
	}
	w.Header().Set("X-TAXII-Date-Added-First", FormatTime(Entry{Added: first}.AddedTime()))
	w.Header().Set("X-TAXII-Date-Added-Last", FormatTime(Entry{Added: last}.AddedTime()))
}

type manifestRecord struct {
	ID        string `json:"id"`
	DateAdded string `json:"date_added"`
	Version   string `json:"version"`
	MediaType string `json:"media_type"`
}

func (s *Server) manifest(c *call) error {
	res, err := c.s.List(c.ctx, c.col, c.filter, false)
	if err != nil {
		return err
	}
	recs := make([]manifestRecord, 0, len(res.Entries))
	for _, e := range res.Entries {
		recs = append(recs, manifestRecord{ID: e.ID, DateAdded: FormatTime(e.AddedTime()), Version: FormatVersion(e.VersionTime()), MediaType: MediaSTIX})
	}
	addedHeaders(c.w, res.Entries)
	body := map[string]any{"more": res.More, "objects": recs}
	if res.More {
		body["next"] = res.Next
	}
	writeJSON(c.w, http.StatusOK, body)
	return nil
}

func (s *Server) envelope(c *call, res Result) {
	addedHeaders(c.w, res.Entries)
	env := struct {
		More    bool              `json:"more"`
		Next    string            `json:"next,omitempty"`
		Objects []json.RawMessage `json:"objects"`
	}{res.More, res.Next, res.Objects}
	if env.Objects == nil {
		env.Objects = []json.RawMessage{}
	}
	writeJSON(c.w, http.StatusOK, env)
}

func (s *Server) getObjects(c *call) error {
	res, err := c.s.List(c.ctx, c.col, c.filter, true)
	if err != nil {
		return err
	}
	s.envelope(c, res)
	return nil
}

func (s *Server) getObject(c *call) error {
	id := c.vars["object"]
	if !ValidIdentifier(id) {
		return fail(http.StatusNotFound, "Not found", "%q is not a STIX identifier", id)
	}
	res, err := c.s.Versions(c.ctx, c.col, id, c.filter, true, true)
	if err != nil {
		return err
	}
	s.envelope(c, res)
	return nil
}

func (s *Server) versions(c *call) error {
	id := c.vars["object"]
	if !ValidIdentifier(id) {
		return fail(http.StatusNotFound, "Not found", "%q is not a STIX identifier", id)
	}
	res, err := c.s.Versions(c.ctx, c.col, id, c.filter, false, false)
	if err != nil {
		return err
	}
	vs := make([]string, 0, len(res.Entries))
	for _, e := range res.Entries {
		vs = append(vs, FormatVersion(e.VersionTime()))
	}
	addedHeaders(c.w, res.Entries)
	body := map[string]any{"more": res.More, "versions": vs}
	if res.More {
		body["next"] = res.Next
	}
	writeJSON(c.w, http.StatusOK, body)
	return nil
}

func (s *Server) deleteObject(c *call) error {
	id := c.vars["object"]
	if !ValidIdentifier(id) {
		return fail(http.StatusNotFound, "Not found", "%q is not a STIX identifier", id)
	}
	if _, err := c.s.Delete(c.ctx, c.col, id, c.filter); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) addObjects(c *call) error {
	if !taxiiContentType(c.r.Header.Get("Content-Type")) {
		return fail(http.StatusUnsupportedMediaType, "Unsupported media type", "send an envelope as %s, not %q", MediaTAXII, c.r.Header.Get("Content-Type"))
	}
	if !c.p.Can(c.col.Vault, access.RoleWriter) {
		return fail(http.StatusForbidden, "Forbidden", "access denied")
	}
	if err := c.s.e.CheckWrite(c.ctx, c.col.Vault); err != nil {
		return err
	}
	limit := c.s.cfg.Config().ContentLimit()
	if c.r.ContentLength > limit {
		return &apiError{status: http.StatusRequestEntityTooLarge, title: "Request too large",
			description: fmt.Sprintf("%d bytes is more than this API root's max_content_length %d", c.r.ContentLength, limit), header: map[string]string{"Connection": "close"}}
	}
	body, err := io.ReadAll(io.LimitReader(c.r.Body, limit+1))
	if err != nil {
		return fail(http.StatusBadRequest, "Bad request", "reading the body: %v", err)
	}
	if int64(len(body)) > limit {
		return &apiError{status: http.StatusRequestEntityTooLarge, title: "Request too large",
			description: fmt.Sprintf("the body is more than this API root's max_content_length %d", limit), header: map[string]string{"Connection": "close"}}
	}
	env, err := ParseEnvelope(body, maxEnvelopeObjects)
	if err != nil {
		return err
	}
	st, err := c.s.Add(c.ctx, c.col, env.Objects)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusAccepted, st)
	return nil
}

// FormatVersion writes a STIX version timestamp with at least millisecond
// precision and as much more as it has.
func FormatVersion(t time.Time) string {
	s := t.UTC().Format("2006-01-02T15:04:05.000000000")
	s = strings.TrimRight(s, "0")
	if i := strings.IndexByte(s, '.'); len(s)-i-1 < 3 {
		s += strings.Repeat("0", 3-(len(s)-i-1))
	}
	return s + "Z"
}

// RouteInfo describes one endpoint for documentation and tests.
type RouteInfo struct {
	Name   string
	Method string
	// Path is the URL path, e.g. /_embassy/taxii2/{root}/status/{status}/.
	Path string
	Role access.Role
	// OnVault: the role is needed on the collection's vault (otherwise on
	// some vault).
	OnVault bool
	Note    string
}

// Routes describes every endpoint, in table order.
func Routes() []RouteInfo {
	out := make([]RouteInfo, 0, len(routes))
	for _, r := range routes {
		p := Prefix + r.path
		if r.path != "" {
			p += "/"
		}
		out = append(out, RouteInfo{Name: r.name, Method: r.method, Path: p, Role: r.role, OnVault: r.scope == scopeCollection, Note: r.note})
	}
	return out
}

// RouteTable renders Routes as the Markdown table of docs/threat-intel.md.
func RouteTable() string {
	var b strings.Builder
	b.WriteString("| endpoint | request | role | held on | also |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range Routes() {
		on := "some vault"
		if r.OnVault {
			on = "the collection's vault"
		}
		fmt.Fprintf(&b, "| %s | `%s %s` | %s | %s | %s |\n", r.Name, r.Method, r.Path, r.Role, on, r.Note)
	}
	return b.String()
}
