package s3

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/manifest"
)

// The route table: every S3 operation the server answers, the handler that
// answers it and what the caller must hold. serve finds the route of a
// request here and checks its role before the handler runs, so a handler
// cannot be reached without the check; the table is also what
// docs/operator-guide.md's table of operations and roles is generated from
// (RouteTable), and what the table-driven authorization test walks.
//
// Roles decide what a principal may change; labels decide what it may see.
// A route's role is checked against the principal's roles on the request's
// bucket (node-wide roles count on every bucket). The other conditions a
// route names (the label admits the caller, the vault owner's nationality,
// the upload's initiator) are enforced by the engine and the node, for every
// interface.

// level is where in the URL space an operation acts.
type level uint8

const (
	levelService level = iota // no bucket
	levelBucket               // /BUCKET
	levelObject               // /BUCKET/KEY
)

func (l level) String() string {
	switch l {
	case levelService:
		return "/"
	case levelBucket:
		return "/BUCKET"
	}
	return "/BUCKET/KEY"
}

// Conditions a route names besides its role. They are documentation and
// test expectations: the checks themselves live where the data is.
type cond uint8

const (
	// condRead: the caller must be able to read what the operation reads
	// or changes (the access decision on the object's label).
	condRead cond = 1 << iota
	// condNation: the caller must be a national of the vault's owner.
	condNation
	// condInitiator: the caller must have started the multipart upload,
	// or hold the operator role on the bucket.
	condInitiator
	// condSource: the caller must hold the reader role on the copy
	// source's bucket and be able to read the source.
	condSource
	// condTwoPerson: the operation, or some forms of it, takes effect only
	// after two custodians approve.
	condTwoPerson
)

// route is one operation.
type route struct {
	// op is the S3 operation's name (as in the AWS API reference).
	op     string
	level  level
	method string
	// params are query parameters the request must carry; header, if set,
	// must be present and non-empty; match, if set, must hold. The first
	// route of a level and method that matches is taken.
	params []string
	header string
	match  func(url.Values) bool
	// role is what the caller must hold on the bucket (on some bucket for
	// service-level operations). Every route names one, or is marked
	// notImplemented.
	role  access.Role
	conds cond
	// note is a further word for the docs (what differs from AWS).
	note   string
	handle func(*Server, *request) error
	// notImplemented routes answer 501 NotImplemented after
	// authentication, and touch nothing.
	notImplemented bool
}

// matches reports whether r selects q.
func (r *route) matches(lv level, method string, q url.Values, h http.Header) bool {
	if r.level != lv || r.method != method {
		return false
	}
	for _, p := range r.params {
		if !q.Has(p) {
			return false
		}
	}
	if r.header != "" && h.Get(r.header) == "" {
		return false
	}
	return r.match == nil || r.match(q)
}

// withVersion matches requests naming a version (an all-zero id names
// none, as the engine takes it).
func withVersion(q url.Values) bool {
	v := q.Get("versionId")
	return v != "" && v != manifest.ID{}.String()
}

// routes is the table. Order matters within a level and method: the first
// match wins, so specific routes precede the default one.
var routes = buildRoutes()

func buildRoutes() []route {
	r := []route{
		{op: "ListBuckets", level: levelService, method: http.MethodGet, role: access.RoleReader,
			note: "lists the buckets on which the caller holds the reader role", handle: (*Server).listBuckets},

		{op: "PutBucketVersioning", level: levelBucket, method: http.MethodPut, params: []string{"versioning"}, role: access.RoleOperator, conds: condNation,
			note: "only Enabled is accepted", handle: (*Server).putVersioning},
		{op: "PutObjectLockConfiguration", level: levelBucket, method: http.MethodPut, params: []string{"object-lock"}, role: access.RoleOperator, conds: condNation | condTwoPerson,
			note: "removing or shortening the default retention is two-person", handle: (*Server).putObjectLockConfig},
	}
	for _, sub := range []struct{ param, op string }{
		{"policy", "PutBucketPolicy"}, {"tagging", "PutBucketTagging"}, {"cors", "PutBucketCors"},
		{"lifecycle", "PutBucketLifecycleConfiguration"}, {"encryption", "PutBucketEncryption"}, {"website", "PutBucketWebsite"},
		{"replication", "PutBucketReplication"}, {"notification", "PutBucketNotificationConfiguration"}, {"logging", "PutBucketLogging"},
	} {
		r = append(r, route{op: sub.op, level: levelBucket, method: http.MethodPut, params: []string{sub.param}, notImplemented: true})
	}
	r = append(r,
		route{op: "PutBucketAcl", level: levelBucket, method: http.MethodPut, params: []string{"acl"}, role: access.RoleOperator, conds: condNation,
			note: "only the canned ACLs private and bucket-owner-full-control, or FULL_CONTROL to the owner; changes nothing", handle: (*Server).putACL},
		route{op: "CreateBucket", level: levelBucket, method: http.MethodPut, role: access.RoleOperator, conds: condNation,
			note: "the new vault belongs to the node's nation", handle: (*Server).createBucket},
		route{op: "HeadBucket", level: levelBucket, method: http.MethodHead, role: access.RoleReader, handle: (*Server).headBucket},
		route{op: "DeleteBucket (sub-resource)", level: levelBucket, method: http.MethodDelete, match: func(q url.Values) bool { return len(q) > 0 }, notImplemented: true},
		route{op: "DeleteBucket", level: levelBucket, method: http.MethodDelete, role: access.RoleOperator, conds: condNation | condTwoPerson, handle: (*Server).deleteBucket},
		route{op: "DeleteObjects", level: levelBucket, method: http.MethodPost, params: []string{"delete"}, role: access.RoleWriter, conds: condRead | condNation | condTwoPerson,
			note: "an entry with a VersionId needs the operator role", handle: (*Server).deleteObjects},

		route{op: "GetBucketLocation", level: levelBucket, method: http.MethodGet, params: []string{"location"}, role: access.RoleReader, handle: (*Server).getLocation},
		route{op: "GetBucketVersioning", level: levelBucket, method: http.MethodGet, params: []string{"versioning"}, role: access.RoleReader, handle: (*Server).getVersioning},
		route{op: "GetObjectLockConfiguration", level: levelBucket, method: http.MethodGet, params: []string{"object-lock"}, role: access.RoleReader, handle: (*Server).getObjectLockConfig},
		route{op: "ListObjectVersions", level: levelBucket, method: http.MethodGet, params: []string{"versions"}, role: access.RoleReader, conds: condRead,
			note: "versions and delete markers the caller may not read are left out", handle: (*Server).listVersions},
		route{op: "ListMultipartUploads", level: levelBucket, method: http.MethodGet, params: []string{"uploads"}, role: access.RoleWriter, conds: condInitiator,
			note: "the caller's own uploads; an operator sees all", handle: (*Server).listUploads},
		route{op: "GetBucketEncryption", level: levelBucket, method: http.MethodGet, params: []string{"encryption"}, role: access.RoleReader, handle: (*Server).getEncryption},
		route{op: "GetBucketAcl", level: levelBucket, method: http.MethodGet, params: []string{"acl"}, role: access.RoleReader, handle: (*Server).getACL},
		route{op: "GetBucketTagging", level: levelBucket, method: http.MethodGet, params: []string{"tagging"}, role: access.RoleReader,
			note: "always NoSuchTagSet", handle: func(s *Server, q *request) error {
				return s.needBucket(q, newErr("NoSuchTagSet", http.StatusNotFound, "The TagSet does not exist"))
			}},
		route{op: "GetBucketPolicy", level: levelBucket, method: http.MethodGet, params: []string{"policy"}, role: access.RoleReader,
			note: "always NoSuchBucketPolicy", handle: func(s *Server, q *request) error {
				return s.needBucket(q, newErr("NoSuchBucketPolicy", http.StatusNotFound, "The bucket policy does not exist"))
			}},
		route{op: "GetBucketLifecycleConfiguration", level: levelBucket, method: http.MethodGet, params: []string{"lifecycle"}, role: access.RoleReader,
			note: "always NoSuchLifecycleConfiguration", handle: func(s *Server, q *request) error {
				return s.needBucket(q, newErr("NoSuchLifecycleConfiguration", http.StatusNotFound, "The lifecycle configuration does not exist"))
			}},
		route{op: "GetBucketCors", level: levelBucket, method: http.MethodGet, params: []string{"cors"}, role: access.RoleReader,
			note: "always NoSuchCORSConfiguration", handle: func(s *Server, q *request) error {
				return s.needBucket(q, newErr("NoSuchCORSConfiguration", http.StatusNotFound, "The CORS configuration does not exist"))
			}},
	)
	for _, sub := range []struct{ param, op string }{
		{"website", "GetBucketWebsite"}, {"replication", "GetBucketReplication"}, {"notification", "GetBucketNotificationConfiguration"},
		{"logging", "GetBucketLogging"}, {"accelerate", "GetBucketAccelerateConfiguration"}, {"requestPayment", "GetBucketRequestPayment"},
	} {
		r = append(r, route{op: sub.op, level: levelBucket, method: http.MethodGet, params: []string{sub.param}, notImplemented: true})
	}
	r = append(r,
		route{op: "ListObjectsV2", level: levelBucket, method: http.MethodGet, match: func(q url.Values) bool { return q.Get("list-type") == "2" },
			role: access.RoleReader, conds: condRead, note: "objects the caller may not read are left out; continuation tokens are sealed", handle: (*Server).listObjectsV2},
		route{op: "ListObjects", level: levelBucket, method: http.MethodGet, role: access.RoleReader, conds: condRead,
			note: "objects the caller may not read are left out", handle: (*Server).listObjectsV1},

		route{op: "UploadPartCopy", level: levelObject, method: http.MethodPut, params: []string{"uploadId", "partNumber"}, header: "x-amz-copy-source",
			role: access.RoleWriter, conds: condNation | condInitiator | condSource, handle: (*Server).uploadPartCopy},
		route{op: "UploadPart", level: levelObject, method: http.MethodPut, params: []string{"uploadId", "partNumber"},
			role: access.RoleWriter, conds: condNation | condInitiator, handle: (*Server).uploadPart},
		route{op: "PutObjectRetention", level: levelObject, method: http.MethodPut, params: []string{"retention"},
			role: access.RoleOperator, conds: condRead | condNation | condTwoPerson, note: "shortening GOVERNANCE retention is two-person", handle: (*Server).putRetention},
		route{op: "PutObjectLegalHold", level: levelObject, method: http.MethodPut, params: []string{"legal-hold"},
			role: access.RoleOperator, conds: condRead | condNation, handle: (*Server).putLegalHold},
		route{op: "PutObjectTagging", level: levelObject, method: http.MethodPut, params: []string{"tagging"}, notImplemented: true},
		route{op: "PutObjectAcl", level: levelObject, method: http.MethodPut, params: []string{"acl"}, role: access.RoleWriter, conds: condRead | condNation,
			note: "only the canned ACLs private and bucket-owner-full-control, or FULL_CONTROL to the owner; changes nothing", handle: (*Server).putACL},
		route{op: "CopyObject", level: levelObject, method: http.MethodPut, header: "x-amz-copy-source",
			role: access.RoleWriter, conds: condNation | condSource | condTwoPerson, note: "a copy that widens who may read (label or owner) is two-person", handle: (*Server).copyObject},
		route{op: "PutObject", level: levelObject, method: http.MethodPut, role: access.RoleWriter, conds: condNation, handle: (*Server).putObject},

		route{op: "ListParts", level: levelObject, method: http.MethodGet, params: []string{"uploadId"}, role: access.RoleWriter, conds: condInitiator, handle: (*Server).listParts},
		route{op: "GetObjectRetention", level: levelObject, method: http.MethodGet, params: []string{"retention"}, role: access.RoleReader, conds: condRead, handle: (*Server).getRetention},
		route{op: "GetObjectLegalHold", level: levelObject, method: http.MethodGet, params: []string{"legal-hold"}, role: access.RoleReader, conds: condRead, handle: (*Server).getLegalHold},
		route{op: "GetObjectAcl", level: levelObject, method: http.MethodGet, params: []string{"acl"}, role: access.RoleReader, handle: (*Server).getACL},
		route{op: "GetObjectTagging", level: levelObject, method: http.MethodGet, params: []string{"tagging"}, role: access.RoleReader, conds: condRead,
			note: "always an empty tag set", handle: (*Server).getTagging},
		route{op: "GetObjectAttributes", level: levelObject, method: http.MethodGet, params: []string{"attributes"}, role: access.RoleReader, conds: condRead,
			handle: (*Server).getObjectAttributes},
		route{op: "GetObjectTorrent", level: levelObject, method: http.MethodGet, params: []string{"torrent"}, notImplemented: true},
		route{op: "GetObject", level: levelObject, method: http.MethodGet, role: access.RoleReader, conds: condRead,
			handle: func(s *Server, q *request) error { return s.getObject(q, true) }},
		route{op: "HeadObject", level: levelObject, method: http.MethodHead, role: access.RoleReader, conds: condRead,
			handle: func(s *Server, q *request) error { return s.getObject(q, false) }},

		route{op: "AbortMultipartUpload", level: levelObject, method: http.MethodDelete, params: []string{"uploadId"},
			role: access.RoleWriter, conds: condNation | condInitiator, handle: (*Server).abortUpload},
		route{op: "DeleteObjectTagging", level: levelObject, method: http.MethodDelete, params: []string{"tagging"}, notImplemented: true},
		route{op: "DeleteObjectVersion", level: levelObject, method: http.MethodDelete, match: withVersion,
			role: access.RoleOperator, conds: condRead | condNation | condTwoPerson,
			note: "DeleteObject with a versionId: removes that version for good; bypassing GOVERNANCE retention is two-person", handle: (*Server).deleteObject},
		route{op: "DeleteObject", level: levelObject, method: http.MethodDelete, role: access.RoleWriter, conds: condRead | condNation,
			note: "writes a delete marker", handle: (*Server).deleteObject},

		route{op: "CreateMultipartUpload", level: levelObject, method: http.MethodPost, params: []string{"uploads"},
			role: access.RoleWriter, conds: condNation, handle: (*Server).createUpload},
		route{op: "CompleteMultipartUpload", level: levelObject, method: http.MethodPost, params: []string{"uploadId"},
			role: access.RoleWriter, conds: condNation | condInitiator, handle: (*Server).completeUpload},
	)
	for i := range r {
		if r[i].notImplemented {
			r[i].handle = func(*Server, *request) error { return errNotImplemented }
		}
	}
	return r
}

// findRoute returns the route of a request, or nil when no operation
// matches (MethodNotAllowed).
func findRoute(lv level, method string, q url.Values, h http.Header) *route {
	for i := range routes {
		if routes[i].matches(lv, method, q, h) {
			return &routes[i]
		}
	}
	return nil
}

// authorize checks the route's role for principal p.
func (r *route) authorize(p access.Principal, bucket string) error {
	if r.notImplemented {
		return nil
	}
	if r.level == levelService {
		if p.CanSomewhere(r.role) {
			return nil
		}
		return access.NeedRole(p, "", r.role)
	}
	return access.NeedRole(p, bucket, r.role)
}

// RouteInfo describes one S3 operation for documentation.
type RouteInfo struct {
	Operation string
	// Request is the method and the shape of the URL, e.g.
	// "DELETE /BUCKET/KEY?versionId".
	Request string
	// Role is the role needed, or "" for operations that are not
	// implemented.
	Role access.Role
	// Read, Nation, Initiator, Source and TwoPerson name the further
	// conditions (see the table in docs/operator-guide.md).
	Read, Nation, Initiator, Source, TwoPerson bool
	Note                                       string
}

// Routes describes every operation of the route table, in table order.
func Routes() []RouteInfo {
	out := make([]RouteInfo, 0, len(routes))
	for _, r := range routes {
		req := r.method + " " + r.level.String()
		qs := append([]string(nil), r.params...)
		switch {
		case r.op == "ListObjectsV2":
			qs = append(qs, "list-type=2")
		case r.op == "DeleteObjectVersion":
			qs = append(qs, "versionId")
		case r.op == "DeleteBucket (sub-resource)":
			qs = append(qs, "…")
		}
		if len(qs) > 0 {
			req += "?" + strings.Join(qs, "&")
		}
		if r.header != "" {
			req += " + " + r.header
		}
		ri := RouteInfo{Operation: r.op, Request: req, Role: r.role, Note: r.note,
			Read: r.conds&condRead != 0, Nation: r.conds&condNation != 0, Initiator: r.conds&condInitiator != 0,
			Source: r.conds&condSource != 0, TwoPerson: r.conds&condTwoPerson != 0}
		out = append(out, ri)
	}
	return out
}

// RouteTable renders Routes as the Markdown table docs/operator-guide.md
// shows.
func RouteTable() string {
	var b strings.Builder
	b.WriteString("| operation | request | role | label must admit | owner's nationality | also |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	yes := func(v bool) string {
		if v {
			return "yes"
		}
		return "—"
	}
	for _, r := range Routes() {
		role := string(r.Role)
		if role == "" {
			role = "— (501 NotImplemented)"
		}
		var also []string
		if r.Initiator {
			also = append(also, "initiator or operator")
		}
		if r.Source {
			also = append(also, "reader of the source")
		}
		if r.TwoPerson {
			also = append(also, "two-person (some forms)")
		}
		if r.Note != "" {
			also = append(also, r.Note)
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s |\n", r.Operation, r.Request, role, yes(r.Read), yes(r.Nation), strings.Join(also, "; "))
	}
	return b.String()
}
