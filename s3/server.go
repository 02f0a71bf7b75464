// Package s3 is embassy's S3-compatible front end: an http.Handler that
// speaks the Amazon S3 REST API (path-style and virtual-host-style
// addressing) over the object engine, so that aws-cli, rclone, restic and
// every SDK store into a data embassy unchanged.
//
// Requests are authenticated with AWS Signature Version 4 (package
// s3/sigv4): headers, presigned URLs and aws-chunked streaming bodies.
// Bodies stream into the engine; nothing is buffered beyond a stripe. Keys
// are opaque names and never touch a filesystem. Every error is an S3 XML
// error document; errors.go is the one place engine errors become S3 codes.
package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/internal/httpguard"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/s3/sigv4"
	"github.com/embassy-dev/embassy/vault"
)

// Credential maps an access key to a principal.
type Credential struct {
	AccessKey string
	SecretKey string
	// Principal names who the key belongs to.
	Principal string
}

// VaultOptions are the settings of a vault created through the S3 API.
type VaultOptions struct {
	// Erasure, Survive and OutsideHome override the node's default policy
	// (headers x-embassy-erasure, x-embassy-survive, x-embassy-outside-home).
	Erasure     string
	Survive     string
	OutsideHome bool
	// ObjectLock enables object lock (x-amz-bucket-object-lock-enabled).
	ObjectLock bool
}

// LockConfig is a vault's object lock configuration.
type LockConfig struct {
	Enabled bool
	// Mode, Days and Years give the default retention of new versions.
	Mode  string
	Days  int
	Years int
}

// VaultInfo describes a vault to the front end.
type VaultInfo struct {
	Name    string
	Created time.Time
	Lock    LockConfig
}

// Vaults creates, describes and removes vaults; the node implements it so
// that changes reach its configuration.
type Vaults interface {
	CreateVault(ctx context.Context, name string, o VaultOptions) error
	DeleteVault(ctx context.Context, name string) error
	VaultInfo(name string) (VaultInfo, bool)
	ListVaults() []VaultInfo
	SetObjectLock(ctx context.Context, name string, c LockConfig) error
}

// ErrVaultExists is returned by Vaults.CreateVault for a name in use.
var ErrVaultExists = errors.New("vault already exists")

// ErrVaultNotEmpty is returned by Vaults.DeleteVault for a vault holding versions.
var ErrVaultNotEmpty = errors.New("vault not empty")

// Config configures a Server.
type Config struct {
	Engine      *vault.Engine
	Vaults      Vaults
	Credentials []Credential
	// Region is the region reported and accepted (default us-east-1).
	Region string
	// Domain, if set, enables virtual-host-style addressing:
	// bucket.Domain.
	Domain string
	Logger *slog.Logger
	// Now is the clock; tests may fix it. Default time.Now.
	Now func() time.Time
	// Principal resolves a credential's principal name to the principal
	// the engine's access decision judges. Default: a principal with only
	// a name (no nation, no clearance).
	Principal func(name string) access.Principal
	// Tokens seals listing positions (see tokens.go). Default: a random key
	// of the server's own.
	Tokens TokenSealer
	// ListScan bounds the index records one listing request examines
	// (default vault.DefaultListScan).
	ListScan int
	// Observe, if set, is called after every request with its operation
	// (the route table's name, "" when no route matched), the status
	// answered and how long it took: the node's metrics.
	Observe func(op string, status int, d time.Duration)
	// Allied, if set, serves allies' shared vaults (allied.go).
	Allied Allied
}

// Server is the S3 front end.
type Server struct {
	cfg    Config
	tokens TokenSealer
	e      *vault.Engine
	creds  map[string]Credential
	keys   *sigv4.KeyCache
	log    *slog.Logger
}

// Limits of the API, as S3 has them.
const (
	MaxObjectSize   = 5 << 40 // through multipart
	MaxPutSize      = 5 << 30 // single PUT
	MaxXMLBody      = 2 << 20
	MaxUserMetadata = 2 << 10
	MaxHeaderBytes  = 64 << 10
)

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil || cfg.Vaults == nil {
		return nil, errors.New("s3: Engine and Vaults are required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, e: cfg.Engine, creds: map[string]Credential{}, keys: sigv4.NewKeyCache(256), log: cfg.Logger, tokens: cfg.Tokens}
	if s.tokens == nil {
		s.tokens = newRandomSealer()
	}
	for _, c := range cfg.Credentials {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("s3: %w", err)
		}
		if _, dup := s.creds[c.AccessKey]; dup {
			return nil, errors.New("s3: access key " + c.AccessKey + " configured twice")
		}
		s.creds[c.AccessKey] = c
	}
	return s, nil
}

// Secret implements sigv4.Credentials.
func (s *Server) Secret(accessKey string) (string, bool) {
	c, ok := s.creds[accessKey]
	return c.SecretKey, ok
}

// request carries what every handler needs.
type request struct {
	w         http.ResponseWriter
	r         *http.Request
	id        string
	bucket    string
	key       string
	query     url.Values
	auth      *sigv4.Auth
	principal string
	p         access.Principal // who the request acts as
	op        string           // the route's operation
	start     time.Time
	status    int
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var idb [8]byte
	rand.Read(idb[:])
	q := &request{w: w, r: r, id: strings.ToUpper(hex.EncodeToString(idb[:])), query: r.URL.Query(), start: time.Now()}
	h := w.Header()
	h.Set("x-amz-request-id", q.id)
	h.Set("x-amz-id-2", q.id)
	h.Set("Server", "embassy")
	q.bucket, q.key = s.route(r)
	err := s.serve(q)
	if err != nil {
		s.writeError(q, s.redact(q, err))
	}
	if s.cfg.Observe != nil {
		s.cfg.Observe(q.op, q.status, time.Since(q.start))
	}
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		var amz []string
		for name, v := range r.Header {
			if l := strings.ToLower(name); strings.HasPrefix(l, "x-amz-") && l != "x-amz-security-token" {
				amz = append(amz, l+"="+strings.Join(v, ","))
			}
		}
		// The query without signature material.
		query := r.URL.Query()
		query.Del("X-Amz-Signature")
		query.Del("X-Amz-Credential")
		s.log.DebugContext(r.Context(), "s3 request", "id", q.id, "method", r.Method, "bucket", q.bucket, "key", q.key,
			"op", q.op, "query", query.Encode(), "amz_headers", amz, "status", q.status, "principal", q.principal, "duration", time.Since(q.start))
	}
}

// route finds the bucket and key of a request, path-style or
// virtual-host-style.
func (s *Server) route(r *http.Request) (bucket, key string) {
	path := r.URL.Path
	if raw := r.URL.RawPath; raw != "" {
		if p, err := url.PathUnescape(raw); err == nil {
			path = p
		}
	}
	if d := s.cfg.Domain; d != "" {
		host := r.Host
		if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
			host = host[:i]
		}
		if b, ok := strings.CutSuffix(host, "."+d); ok && b != "" {
			return b, strings.TrimPrefix(path, "/")
		}
	}
	path = strings.TrimPrefix(path, "/")
	bucket, key, _ = strings.Cut(path, "/")
	return bucket, key
}

func (s *Server) serve(q *request) error {
	r := q.r
	if r.ContentLength > MaxPutSize && r.Header.Get("x-amz-decoded-content-length") == "" && !q.query.Has("partNumber") {
		return errEntityTooLarge
	}
	// x-embassy-* headers choose a label, an erasure code, a placement
	// policy: like x-amz-*, they must be signed, so that whoever holds a
	// presigned URL cannot add them.
	// CompleteMultipartUpload's x-amz-checksum-* headers are the object's
	// checksum, made from its parts' (completeUpload checks them), not
	// the checksum of its XML body.
	completion := r.Method == http.MethodPost && q.key != "" && q.query.Has("uploadId")
	auth, err := sigv4.Verify(r, s, s.cfg.Now(), sigv4.Options{Region: s.cfg.Region, Keys: s.keys, MustSign: []string{"x-embassy-"}, ObjectChecksums: completion})
	if err != nil {
		return err
	}
	q.auth = auth
	httpguard.Authenticated(r.Context())
	q.principal = s.creds[auth.AccessKey].Principal
	q.p = access.Principal{Name: q.principal}
	if s.cfg.Principal != nil {
		q.p = s.cfg.Principal(q.principal)
	}
	q.r = q.r.WithContext(vault.WithPrincipal(q.r.Context(), q.p))
	if q.key != "" {
		if err := checkKey(q.key); err != nil {
			return err
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if p := unknownSubresource(q.query, q.key != ""); p != "" {
			return errorf("NotImplemented", http.StatusNotImplemented, "The %s sub-resource is not implemented", p)
		}
	}
	lv := levelObject
	switch {
	case q.bucket == "":
		lv = levelService
	case q.key == "":
		lv = levelBucket
	}
	rt := findRoute(lv, r.Method, q.query, r.Header)
	if rt == nil {
		return errMethodNotAllowed
	}
	q.op = rt.op
	if err := rt.authorize(q.p, q.bucket); err != nil {
		return err
	}
	if IsAlliedBucket(q.bucket) && rt.op != "CreateBucket" {
		if err := s.checkAllied(q); err != nil {
			return err
		}
		return rt.handle(s, q)
	}
	if rt.conds&condNation != 0 && rt.level != levelService && rt.op != "CreateBucket" {
		// Writing into a vault needs its owner's nationality. The engine
		// checks it again on every change; checking here as well refuses
		// the whole request (a DeleteObjects, an upload) before any part
		// of it runs. A vault that does not exist is the handler's answer.
		if err := s.e.CheckWrite(q.r.Context(), q.bucket); err != nil && !errors.Is(err, vault.ErrNoSuchVault) {
			return err
		}
	}
	return rt.handle(s, q)
}

// bucketWriteParams and objectWriteParams are the query parameters a PUT,
// POST or DELETE of a bucket or an object may carry, besides x-amz-* ones
// (presigned URLs, hoisted headers) and x-id (the operation name the SDKs
// append): the sub-resources the front end dispatches on and the
// parameters of those requests. Any other parameter names a sub-resource
// embassy does not implement, and such a write must be refused rather than
// fall through to a plain PUT or DELETE that creates a bucket, overwrites
// an object or deletes it.
var (
	bucketWriteParams = map[string]bool{
		"delete": true, "versioning": true, "object-lock": true, "tagging": true, "acl": true, "policy": true,
		"cors": true, "lifecycle": true, "encryption": true, "website": true, "replication": true,
		"notification": true, "logging": true,
	}
	objectWriteParams = map[string]bool{
		"versionId": true, "partNumber": true, "uploadId": true, "uploads": true,
		"retention": true, "legal-hold": true, "tagging": true, "acl": true,
	}
)

// unknownSubresource returns the first query parameter of a write that the
// bucket or object level does not know, or "".
func unknownSubresource(q url.Values, object bool) string {
	known := bucketWriteParams
	if object {
		known = objectWriteParams
	}
	for k := range q {
		if !known[k] && k != "x-id" && !strings.HasPrefix(strings.ToLower(k), "x-amz-") {
			return k
		}
	}
	return ""
}

// checkKey refuses, as S3 does, a key the engine would not store: too
// long, empty, not UTF-8 or holding a NUL byte.
func checkKey(key string) error {
	if len(key) > manifest.MaxKeyLen {
		return errKeyTooLong
	}
	if err := manifest.ValidKey(key); err != nil {
		if key == "" {
			return errorf("InvalidArgument", http.StatusBadRequest, "An object key must not be empty").with(err)
		}
		return errInvalidURI.with(err)
	}
	return nil
}

// redact keeps the node's topology from clients that have no business
// with it: a placement failure names sites, providers and jurisdictions,
// which only an operator of the bucket is told. Others get a generic
// answer, and the details go to the log.
func (s *Server) redact(q *request, err error) error {
	if !errors.Is(err, placement.ErrInfeasible) || q.p.Can(q.bucket, access.RoleOperator) {
		return err
	}
	s.log.WarnContext(q.r.Context(), "placement failed; the client was told only that no placement is possible now", "id", q.id, "bucket", q.bucket, "key", q.key, "principal", q.principal, "err", err)
	return errorf("ServiceUnavailable", http.StatusServiceUnavailable, "Not enough sites are available to store the object under its bucket's placement policy; the node's operators have the details (request %s).", q.id).with(errors.New("placement details withheld"))
}

// needBucket returns err if the bucket exists, NoSuchBucket otherwise.
func (s *Server) needBucket(q *request, err error) error {
	if _, ok := s.cfg.Vaults.VaultInfo(q.bucket); !ok {
		return errNoSuchBucket
	}
	return err
}

func (s *Server) writeError(q *request, err error) {
	ae := toAPI(err)
	if ae.Status >= 500 {
		s.log.ErrorContext(q.r.Context(), "s3 request failed", "id", q.id, "method", q.r.Method, "bucket", q.bucket, "key", q.key, "code", ae.Code, "err", err)
	} else {
		s.log.DebugContext(q.r.Context(), "s3 request refused", "id", q.id, "code", ae.Code, "err", err)
	}
	for k, v := range ae.Headers {
		q.w.Header().Set(k, v)
	}
	q.status = ae.Status
	if q.r.Method == http.MethodHead {
		q.w.WriteHeader(ae.Status)
		return
	}
	doc := errorDoc{Code: ae.Code, Message: ae.Message, Resource: q.r.URL.Path, RequestID: q.id, HostID: q.id}
	for _, f := range ae.Fields {
		doc.Extra = append(doc.Extra, extraField{XMLName: xml.Name{Local: f.Name}, Value: f.Value})
	}
	switch ae.Code {
	case "NoSuchBucket":
		doc.Extra = append(doc.Extra, extraField{XMLName: xml.Name{Local: "BucketName"}, Value: q.bucket})
	case "NoSuchKey":
		doc.Extra = append(doc.Extra, extraField{XMLName: xml.Name{Local: "Key"}, Value: q.key})
	}
	body, _ := xml.Marshal(doc)
	q.w.Header().Set("Content-Type", "application/xml")
	q.w.WriteHeader(ae.Status)
	io.WriteString(q.w, xml.Header)
	q.w.Write(body)
}

// writeXML writes a 200 response with an XML body.
func (q *request) writeXML(v any) error {
	if a, ok := v.(xmlAppender); ok {
		return q.writeAppended(a)
	}
	body, err := xml.Marshal(v)
	if err != nil {
		return err
	}
	q.w.Header().Set("Content-Type", "application/xml")
	q.status = http.StatusOK
	q.w.WriteHeader(http.StatusOK)
	io.WriteString(q.w, xml.Header)
	q.w.Write(body)
	return nil
}

// readXML decodes a bounded XML request body into v.
func (q *request) readXML(v any) error {
	body, err := q.body()
	if err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(body, MaxXMLBody+1))
	if err != nil {
		return err
	}
	if len(b) > MaxXMLBody {
		return errorf("MalformedXML", http.StatusBadRequest, "The XML you provided was larger than %d bytes.", MaxXMLBody)
	}
	if err := xml.Unmarshal(b, v); err != nil {
		return errMalformedXML.with(err)
	}
	return nil
}

// body returns the request payload, decoded and verified as signed.
func (q *request) body() (*sigv4.Payload, error) {
	return q.auth.Body(q.r.Body), nil
}

func (q *request) ok() {
	q.status = http.StatusOK
	q.w.WriteHeader(http.StatusOK)
}

func (q *request) noContent() {
	q.status = http.StatusNoContent
	q.w.WriteHeader(http.StatusNoContent)
}
