package s3

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/access"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// labelHeader carries an object's confidentiality label in text form
// (e.g. "NATO SECRET//REL TO EST, LUX"): on PUT, POST ?uploads and copy to
// set it, on GET and HEAD to report it.
const labelHeader = "x-embassy-label"

// storedHeaders are the standard headers kept with an object and returned
// on GET and HEAD. They ride in the manifest's metadata under a ':' prefix,
// which no x-amz-meta-* name can have.
var storedHeaders = []string{"Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires"}

// contentMD5ETag turns the verified Content-MD5 of a payload into an ETag.
func contentMD5ETag(sums map[string]string) string {
	b, err := base64.StdEncoding.DecodeString(sums["content-md5"])
	if err != nil || len(b) != md5.Size {
		return ""
	}
	return "\"" + hex.EncodeToString(b) + "\""
}

// putOptions reads what a new object takes from the request's headers: its
// content type, user metadata, lock and label.
func (s *Server) putOptions(q *request) (vault.PutOptions, error) {
	if err := aclHeaders(q.r.Header); err != nil {
		return vault.PutOptions{}, err
	}
	meta, ct, err := userMetaAndType(q.r.Header)
	if err != nil {
		return vault.PutOptions{}, err
	}
	lock, err := s.lockFromHeaders(q, s.cfg.Now())
	if err != nil {
		return vault.PutOptions{}, err
	}
	return vault.PutOptions{ContentType: ct, Meta: meta, Lock: lock, Label: q.r.Header.Get(labelHeader)}, nil
}

// userMetaAndType collects x-amz-meta-* and the stored standard headers,
// and returns the content type, which defaults to binary/octet-stream as in
// S3.
func userMetaAndType(h http.Header) (map[string]string, string, error) {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "binary/octet-stream"
	}
	meta := map[string]string{}
	size := 0
	for name, vals := range h {
		lower := strings.ToLower(name)
		if k, ok := strings.CutPrefix(lower, "x-amz-meta-"); ok {
			v := strings.Join(vals, ",")
			meta[k] = v
			size += len(k) + len(v)
		}
	}
	if size > MaxUserMetadata {
		return nil, "", errorf("MetadataTooLarge", http.StatusBadRequest, "Your metadata headers exceed the maximum allowed metadata size of %d bytes.", MaxUserMetadata)
	}
	for _, name := range storedHeaders {
		v := h.Get(name)
		if name == "Content-Encoding" {
			// aws-chunked is transfer framing, not the object's encoding.
			var keep []string
			for e := range strings.SplitSeq(v, ",") {
				if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "aws-chunked") {
					keep = append(keep, e)
				}
			}
			v = strings.Join(keep, ",")
		}
		if v != "" {
			meta[":"+strings.ToLower(name)] = v
		}
	}
	if len(meta) == 0 {
		return nil, ct, nil
	}
	return meta, ct, nil
}

// lockFromHeaders reads x-amz-object-lock-* headers, or the vault's default
// retention.
func (s *Server) lockFromHeaders(q *request, now time.Time) (*manifest.Lock, error) {
	h := q.r.Header
	mode, until, hold := h.Get("x-amz-object-lock-mode"), h.Get("x-amz-object-lock-retain-until-date"), h.Get("x-amz-object-lock-legal-hold")
	v, ok := s.cfg.Vaults.VaultInfo(q.bucket)
	if !ok {
		return nil, errNoSuchBucket
	}
	if !v.Lock.Enabled {
		if mode != "" || until != "" || hold != "" {
			return nil, errInvalidLockConfig
		}
		return nil, nil
	}
	var l manifest.Lock
	switch {
	case mode != "" || until != "":
		if mode != vault.Governance && mode != vault.Compliance {
			return nil, errorf("InvalidArgument", http.StatusBadRequest, "x-amz-object-lock-mode must be GOVERNANCE or COMPLIANCE, with x-amz-object-lock-retain-until-date")
		}
		t, err := parseRetainUntil(until)
		if err != nil || !t.After(now) {
			return nil, errorf("InvalidArgument", http.StatusBadRequest, "x-amz-object-lock-retain-until-date must be an ISO 8601 date in the future, before the year 10000")
		}
		l.Mode, l.Until = mode, t
	case v.Lock.Mode != "":
		l.Mode = v.Lock.Mode
		l.Until = now.AddDate(v.Lock.Years, 0, v.Lock.Days).UTC()
	}
	switch hold {
	case "":
	case "ON":
		l.LegalHold = true
	case "OFF":
	default:
		return nil, errorf("InvalidArgument", http.StatusBadRequest, "x-amz-object-lock-legal-hold must be ON or OFF")
	}
	if l == (manifest.Lock{}) {
		return nil, nil
	}
	return &l, nil
}

// parseRetainUntil parses a retain-until date, in UTC. A manifest records
// years up to 9999 only: a later date would fail the write that stores it.
func parseRetainUntil(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	t = t.UTC()
	if t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("retain-until date %s is past the year 9999", s)
	}
	return t, nil
}

// contentLength is the decoded payload length the client declared.
func (q *request) contentLength() (int64, error) {
	n := q.auth.ContentLength
	if n < 0 {
		return 0, errMissingContentLen
	}
	return n, nil
}

// writeCondition reads the conditional-write headers of a PutObject,
// CopyObject or CompleteMultipartUpload: If-None-Match (an ETag list or
// "*": create only) and If-Match (replace only a known version). The
// engine holds them as a compare-and-set at the index commit. The
// time-based conditions have no meaning for a write and are refused rather
// than ignored, so that no client believes it holds a lock it does not.
func writeCondition(h http.Header) (index.Precondition, error) {
	for _, name := range []string{"If-Modified-Since", "If-Unmodified-Since"} {
		if h.Get(name) != "" {
			return index.Precondition{}, errorf("NotImplemented", http.StatusNotImplemented, "Conditional writes on %s are not implemented; nothing was written", name)
		}
	}
	return index.Precondition{IfMatch: h.Get("If-Match"), IfNoneMatch: h.Get("If-None-Match")}, nil
}

func (s *Server) putObject(q *request) error {
	cond, err := writeCondition(q.r.Header)
	if err != nil {
		return err
	}
	size, err := q.contentLength()
	if err != nil {
		if !slices.Contains(q.r.TransferEncoding, "chunked") {
			return err
		}
		// Transfer-Encoding: chunked without a declared length: the
		// object streams in, of a size known only at its end, and is
		// refused (nothing stored) once it passes the limit.
		size = -1
	}
	if size > MaxPutSize {
		return errEntityTooLarge
	}
	o, err := s.putOptions(q)
	if err != nil {
		return err
	}
	payload, err := q.body()
	if err != nil {
		return err
	}
	var body io.Reader = payload
	if size < 0 {
		body = &cappedReader{r: payload, left: MaxPutSize}
	}
	etag := func() string { return contentMD5ETag(payload.Checksums()) }
	if q.r.Header.Get("Content-MD5") == "" {
		// The ETag of a single PUT is the MD5 of the body. When the
		// client sent Content-MD5, the payload has already verified it,
		// and hashing again would only cost CPU. Otherwise the engine
		// feeds the MD5 beside its own digest, off the goroutine that
		// reads (and verifies) the body.
		h := newETagHash()
		o.Hash, etag = h, h.etag
	}
	o.Size, o.ETag, o.Checksums, o.If = size, etag, payload.Checksums, cond
	info, err := s.e.Put(q.r.Context(), q.bucket, q.key, body, o)
	if err != nil {
		return err
	}
	h := q.w.Header()
	h.Set("ETag", info.ETag)
	h.Set("x-amz-version-id", info.VersionID.String())
	for k, v := range info.Checksums {
		if strings.HasPrefix(k, "x-amz-checksum-") {
			h.Set(k, v)
		}
	}
	q.ok()
	return nil
}

// cappedReader fails with EntityTooLarge once more than left bytes are
// read: the bound of a body of unknown length.
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errEntityTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, errEntityTooLarge
	}
	return n, err
}

// versionID parses the versionId query parameter.
func versionID(s string) (manifest.ID, error) {
	if s == "" {
		return manifest.ID{}, nil
	}
	id, err := manifest.ParseID(s)
	if err != nil || id.IsZero() {
		return id, errorf("InvalidArgument", http.StatusBadRequest, "Invalid version id specified")
	}
	return id, nil
}

// parseRange parses a single HTTP byte range against size. ok is false
// when the header is absent or not a single byte range (S3 then returns
// the whole object).
func parseRange(h string, size int64) (off, length int64, ok bool, err error) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, nil
	}
	switch {
	case a == "":
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, nil
		}
		if n == 0 {
			return 0, 0, false, errInvalidRange
		}
		n = min(n, size)
		return size - n, n, true, nil
	default:
		start, err := strconv.ParseInt(a, 10, 64)
		if err != nil || start < 0 {
			return 0, 0, false, nil
		}
		if start >= size {
			return 0, 0, false, errInvalidRange
		}
		end := size - 1
		if b != "" {
			e, err := strconv.ParseInt(b, 10, 64)
			if err != nil || e < start {
				return 0, 0, false, nil
			}
			end = min(e, size-1)
		}
		return start, end - start + 1, true, nil
	}
}

// etagMatch reports whether an If-Match style list matches etag.
func etagMatch(list, etag string) bool {
	for c := range strings.SplitSeq(list, ",") {
		c = strings.TrimSpace(c)
		if c == "*" || strings.Trim(c, "\"") == strings.Trim(etag, "\"") {
			return true
		}
	}
	return false
}

// preconditions evaluates If-* headers (with prefix "" or
// "x-amz-copy-source-") against an object. notModified is true when the
// answer is 304 rather than 412.
func preconditions(h http.Header, prefix string, info vault.ObjectInfo) (notModified bool, err error) {
	mod := info.Created.Truncate(time.Second)
	im, inm := h.Get(prefix+"If-Match"), h.Get(prefix+"If-None-Match")
	ims, ius := h.Get(prefix+"If-Modified-Since"), h.Get(prefix+"If-Unmodified-Since")
	if im != "" {
		if !etagMatch(im, info.ETag) {
			return false, errPreconditionFailed
		}
	} else if ius != "" {
		if t, err := http.ParseTime(ius); err == nil && mod.After(t) {
			return false, errPreconditionFailed
		}
	}
	if inm != "" {
		if etagMatch(inm, info.ETag) {
			return true, nil
		}
	} else if ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !mod.After(t) {
			return true, nil
		}
	}
	return false, nil
}

func setObjectHeaders(h http.Header, info vault.ObjectInfo, checksums bool) {
	h.Set("ETag", info.ETag)
	h.Set("Last-Modified", info.Created.UTC().Format(http.TimeFormat))
	h.Set("x-amz-version-id", info.VersionID.String())
	h.Set("Accept-Ranges", "bytes")
	h.Set("x-amz-server-side-encryption", "AES256")
	ct := info.ContentType
	if ct == "" {
		ct = "binary/octet-stream"
	}
	h.Set("Content-Type", ct)
	if info.Label != "" {
		h.Set(labelHeader, info.Label)
	}
	for k, v := range info.Meta {
		if std, ok := strings.CutPrefix(k, ":"); ok {
			h.Set(std, v)
		} else {
			// S3 returns metadata names in lower case; a non-canonical key
			// is written as it is.
			h["x-amz-meta-"+k] = []string{v}
		}
	}
	if l := info.Lock; l != nil {
		if l.Mode != "" {
			h.Set("x-amz-object-lock-mode", l.Mode)
			h.Set("x-amz-object-lock-retain-until-date", retainUntil(l.Until))
		}
		if l.LegalHold {
			h.Set("x-amz-object-lock-legal-hold", "ON")
		} else {
			h.Set("x-amz-object-lock-legal-hold", "OFF")
		}
	}
	if multipart(info) {
		h.Set("x-amz-mp-parts-count", strconv.Itoa(len(info.PartSizes)))
	}
	if checksums {
		for k, v := range info.Checksums {
			if strings.HasPrefix(k, "x-amz-checksum-") {
				h.Set(k, v)
			}
		}
	}
}

// retainUntil formats a retain-until date as S3 does, to the millisecond,
// rounded up: a client that waits until the date it is told (as
// ceph/s3-tests' clean-up does before deleting a retained version) must
// not find the version still retained. Whole seconds, as this answered
// before, cut up to a second off a date set with a fraction.
func retainUntil(t time.Time) string {
	return t.Add(time.Millisecond - 1).Truncate(time.Millisecond).UTC().Format(timeFormat)
}

// multipart reports whether an object was assembled by a multipart upload
// (its ETag has S3's "…-N" form), even of one part.
func multipart(info vault.ObjectInfo) bool {
	return len(info.PartSizes) > 1 || strings.Contains(info.ETag, "-")
}

// responseOverrides are the query parameters that override response headers.
var responseOverrides = map[string]string{
	"response-content-type":        "Content-Type",
	"response-content-language":    "Content-Language",
	"response-expires":             "Expires",
	"response-cache-control":       "Cache-Control",
	"response-content-disposition": "Content-Disposition",
	"response-content-encoding":    "Content-Encoding",
}

func (s *Server) getObject(q *request, withBody bool) error {
	id, err := versionID(q.query.Get("versionId"))
	if err != nil {
		return err
	}
	ctx := q.r.Context()
	r, err := s.get(q, vault.GetOptions{VersionID: id, Length: -1})
	if err != nil {
		return err
	}
	defer r.Close()
	info := r.Info()
	h := q.w.Header()
	notModified, err := preconditions(q.r.Header, "", info)
	if err != nil {
		return err
	}
	if notModified {
		h.Set("ETag", info.ETag)
		h.Set("Last-Modified", info.Created.UTC().Format(http.TimeFormat))
		q.status = http.StatusNotModified
		q.w.WriteHeader(http.StatusNotModified)
		return nil
	}
	off, length := int64(0), info.Size
	status := http.StatusOK
	if pn := q.query.Get("partNumber"); pn != "" {
		n, err := strconv.Atoi(pn)
		if err != nil || n < 1 || n > len(info.PartSizes) {
			return errorf("InvalidPart", http.StatusBadRequest, "The requested part number %s is not satisfiable: the object has %d parts", pn, len(info.PartSizes))
		}
		for _, sz := range info.PartSizes[:n-1] {
			off += sz
		}
		length = info.PartSizes[n-1]
		if multipart(info) {
			status = http.StatusPartialContent
		}
	} else if rh := q.r.Header.Get("Range"); rh != "" {
		o, l, ok, err := parseRange(rh, info.Size)
		if err != nil {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
			return err
		}
		if ok {
			off, length, status = o, l, http.StatusPartialContent
		}
	}
	if err := r.SetRange(off, length); err != nil {
		return err
	}
	if withBody {
		// Read the first stripe before any header is set or the status
		// line written: if it cannot be read (too few sites hold intact
		// shards), the client gets an S3 error, not 200 and a cut
		// connection. WriteTo then sends that stripe without reading it
		// again.
		if err := r.Preload(); err != nil {
			return err
		}
	}
	checksumMode := strings.EqualFold(q.r.Header.Get("x-amz-checksum-mode"), "ENABLED")
	setObjectHeaders(h, info, status == http.StatusOK && checksumMode)
	if n, err := strconv.Atoi(q.query.Get("partNumber")); err == nil && checksumMode && multipart(info) {
		// A part of a multipart object: that part's own checksums.
		for k, v := range partChecksums(info, n) {
			h.Set(k, v)
		}
	}
	for param, header := range responseOverrides {
		if v := q.query.Get(param); v != "" {
			h.Set(header, v)
		}
	}
	if status == http.StatusPartialContent {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+length-1, info.Size))
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	q.status = status
	q.w.WriteHeader(status)
	if !withBody || length == 0 {
		return nil
	}
	if _, err := r.WriteTo(q.w); err != nil {
		// The status line is gone: abort the connection so the client
		// sees a truncated body, never a silently short one.
		s.log.ErrorContext(ctx, "GET failed mid-body", "id", q.id, "bucket", q.bucket, "key", q.key, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

func bypassGovernance(h http.Header) bool {
	return strings.EqualFold(h.Get("x-amz-bypass-governance-retention"), "true")
}

func (s *Server) deleteObject(q *request) error {
	cond, err := writeCondition(q.r.Header)
	if err != nil {
		return err
	}
	if cond.IfNoneMatch != "" {
		return errorf("NotImplemented", http.StatusNotImplemented, "DeleteObject takes If-Match, not If-None-Match; nothing was deleted")
	}
	id, err := versionID(q.query.Get("versionId"))
	if err != nil {
		return err
	}
	res, err := s.e.Delete(q.r.Context(), q.bucket, q.key, vault.DeleteOptions{VersionID: id, BypassGovernance: bypassGovernance(q.r.Header), If: cond})
	if err != nil {
		return err
	}
	if !res.VersionID.IsZero() {
		q.w.Header().Set("x-amz-version-id", res.VersionID.String())
	}
	if res.DeleteMarker {
		q.w.Header().Set("x-amz-delete-marker", "true")
	}
	q.noContent()
	return nil
}

func (s *Server) deleteObjects(q *request) error {
	if _, ok := s.cfg.Vaults.VaultInfo(q.bucket); !ok {
		return errNoSuchBucket
	}
	var req deleteRequest
	if err := q.readXML(&req); err != nil {
		return err
	}
	if len(req.Objects) == 0 {
		return errorf("MalformedXML", http.StatusBadRequest, "A delete request must name at least one object")
	}
	if len(req.Objects) > 1000 {
		return errorf("MalformedXML", http.StatusBadRequest, "A delete request may name at most 1000 objects, not %d", len(req.Objects))
	}
	res := deleteResult{Xmlns: s3NS}
	bypass := bypassGovernance(q.r.Header)
	// Each delete waits for its record to be durable on the sites (the
	// audit log's copy), so distinct keys are deleted 16 at a time, their
	// records sharing checkpoints; the entries of one key stay in order.
	type outcome struct {
		r   vault.DeleteResult
		err error
	}
	outs := make([]outcome, len(req.Objects))
	byKey := map[string][]int{}
	var keys []string
	for i, o := range req.Objects {
		if _, ok := byKey[o.Key]; !ok {
			keys = append(keys, o.Key)
		}
		byKey[o.Key] = append(byKey[o.Key], i)
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for _, i := range byKey[k] {
				o := req.Objects[i]
				id, err := versionID(o.VersionID)
				if err == nil {
					err = checkKey(o.Key)
				}
				if err == nil && !id.IsZero() {
					// Removing a version for good is an operator's act, as
					// DeleteObjectVersion is.
					err = access.NeedRole(q.p, q.bucket, access.RoleOperator)
				}
				if err == nil {
					outs[i].r, err = s.e.Delete(q.r.Context(), q.bucket, o.Key, vault.DeleteOptions{VersionID: id, BypassGovernance: bypass})
				}
				outs[i].err = err
			}
		})
	}
	wg.Wait()
	for i, o := range req.Objects {
		if err := outs[i].err; err != nil {
			ae := toAPI(err)
			res.Errors = append(res.Errors, deleteErrorXML{Key: o.Key, VersionID: o.VersionID, Code: ae.Code, Message: ae.Message})
			continue
		}
		if !req.Quiet {
			d := deletedXML{Key: o.Key, VersionID: o.VersionID}
			if r := outs[i].r; r.DeleteMarker {
				d.DeleteMarker = true
				d.DeleteMarkerVersionID = r.VersionID.String()
			}
			res.Deleted = append(res.Deleted, d)
		}
	}
	return q.writeXML(res)
}

// copySource parses x-amz-copy-source: "[/]bucket/key[?versionId=id]",
// URL-encoded.
func copySource(v string) (bucket, key string, id manifest.ID, err error) {
	path, query, _ := strings.Cut(v, "?")
	p, uerr := url.PathUnescape(path)
	if uerr != nil {
		return "", "", id, errorf("InvalidArgument", http.StatusBadRequest, "x-amz-copy-source is not URL-encoded")
	}
	bucket, key, _ = strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if bucket == "" || key == "" {
		return "", "", id, errorf("InvalidArgument", http.StatusBadRequest, "x-amz-copy-source must name bucket/key")
	}
	if query != "" {
		qv, perr := url.ParseQuery(query)
		if perr != nil {
			return "", "", id, errorf("InvalidArgument", http.StatusBadRequest, "x-amz-copy-source query is malformed")
		}
		if id, err = versionID(qv.Get("versionId")); err != nil {
			return "", "", id, err
		}
	}
	return bucket, key, id, nil
}

// openCopySource opens a copy source after checking its preconditions.
func (s *Server) openCopySource(q *request) (*vault.Reader, error) {
	b, k, id, err := copySource(q.r.Header.Get("x-amz-copy-source"))
	if err != nil {
		return nil, err
	}
	r, err := s.e.Get(q.r.Context(), b, k, vault.GetOptions{VersionID: id, Length: -1})
	if err != nil {
		if errors.Is(err, vault.ErrDeleteMarker) {
			return nil, errNoSuchKey.with(err)
		}
		return nil, err
	}
	if _, err := preconditions(q.r.Header, "x-amz-copy-source-", r.Info()); err != nil {
		r.Close()
		return nil, err
	}
	// A copy source's If-None-Match / If-Modified-Since failure is a 412.
	if nm, _ := preconditions(q.r.Header, "x-amz-copy-source-", r.Info()); nm {
		r.Close()
		return nil, errPreconditionFailed
	}
	if src := r.Info(); src.Size > MaxPutSize {
		r.Close()
		return nil, errorf("InvalidRequest", http.StatusBadRequest, "The specified copy source is larger than the maximum allowable size for a copy source: %d", MaxPutSize)
	}
	if v := r.Info().VersionID; !v.IsZero() {
		q.w.Header().Set("x-amz-copy-source-version-id", v.String())
	}
	return r, nil
}

func (s *Server) copyObject(q *request) error {
	cond, err := writeCondition(q.r.Header)
	if err != nil {
		return err
	}
	if err := aclHeaders(q.r.Header); err != nil {
		return err
	}
	src, err := s.openCopySource(q)
	if err != nil {
		return err
	}
	defer src.Close()
	info := src.Info()
	o := vault.PutOptions{Size: info.Size, ContentType: info.ContentType, Meta: info.Meta, Checksums: func() map[string]string { return wholeObjectChecksums(info.Checksums) }}
	replace := strings.EqualFold(q.r.Header.Get("x-amz-metadata-directive"), "REPLACE")
	if replace {
		if o.Meta, o.ContentType, err = userMetaAndType(q.r.Header); err != nil {
			return err
		}
	} else if info.Vault == q.bucket && info.Key == q.key && q.query.Get("versionId") == "" {
		sb, sk, sid, _ := copySource(q.r.Header.Get("x-amz-copy-source"))
		if sb == q.bucket && sk == q.key && sid.IsZero() {
			return errorf("InvalidRequest", http.StatusBadRequest, "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
		}
	}
	if o.Lock, err = s.lockFromHeaders(q, s.cfg.Now()); err != nil {
		return err
	}
	o.Label = info.Label
	if l := q.r.Header.Get(labelHeader); l != "" {
		o.Label = l
	}
	// A copy that lets more nations or lower clearances read the data
	// (its label, or the owner of the vault it goes to) is lowering the
	// label: a two-person request the node carries out once approved.
	params := map[string]string{"content_type": o.ContentType}
	if len(o.Meta) > 0 {
		b, _ := json.Marshal(o.Meta)
		params["meta"] = string(b)
	}
	if err := s.e.CheckCopy(q.r.Context(), info, q.bucket, q.key, o.Label, params); err != nil {
		return err
	}
	// A copy is one part: its ETag is the MD5 of its bytes.
	h := newETagHash()
	o.ETag, o.Hash, o.If = h.etag, h, cond
	dst, err := s.e.Put(q.r.Context(), q.bucket, q.key, src, o)
	if err != nil {
		return err
	}
	q.w.Header().Set("x-amz-version-id", dst.VersionID.String())
	return q.writeXML(copyObjectResult{Xmlns: s3NS, LastModified: xmlTime(dst.Created), ETag: dst.ETag})
}

func (s *Server) lockEnabled(q *request) error {
	v, ok := s.cfg.Vaults.VaultInfo(q.bucket)
	if !ok {
		return errNoSuchBucket
	}
	if !v.Lock.Enabled {
		return errInvalidLockConfig
	}
	return nil
}

func (s *Server) getRetention(q *request) error {
	if err := s.lockEnabled(q); err != nil {
		return err
	}
	id, err := versionID(q.query.Get("versionId"))
	if err != nil {
		return err
	}
	info, err := s.e.Stat(q.r.Context(), q.bucket, q.key, id)
	if err != nil {
		return err
	}
	if info.Lock == nil || info.Lock.Mode == "" {
		return errNoSuchRetention
	}
	return q.writeXML(retentionXML{Xmlns: s3NS, Mode: info.Lock.Mode, RetainUntilDate: retainUntil(info.Lock.Until)})
}

func (s *Server) putRetention(q *request) error {
	if err := s.lockEnabled(q); err != nil {
		return err
	}
	id, err := versionID(q.query.Get("versionId"))
	if err != nil {
		return err
	}
	var rx retentionXML
	if err := q.readXML(&rx); err != nil {
		return err
	}
	var until time.Time
	if rx.Mode != "" || rx.RetainUntilDate != "" {
		if _, err := time.Parse(time.RFC3339, rx.RetainUntilDate); err != nil {
			return errMalformedXML.with(err)
		}
		if until, err = parseRetainUntil(rx.RetainUntilDate); err != nil {
			return errorf("InvalidArgument", http.StatusBadRequest, "RetainUntilDate must be before the year 10000").with(err)
		}
		if rx.Mode != vault.Governance && rx.Mode != vault.Compliance {
			return errMalformedXML
		}
	}
	if _, err := s.e.SetRetention(q.r.Context(), q.bucket, q.key, id, rx.Mode, until, bypassGovernance(q.r.Header)); err != nil {
		if errors.Is(err, vault.ErrApprovalRequired) || errors.Is(err, access.ErrDenied) {
			return err
		}
		if errors.Is(err, vault.ErrLocked) {
			return errObjectLocked.with(err)
		}
		if ae, ok := errors.AsType[*apiError](err); ok {
			return ae
		}
		if !errors.Is(err, vault.ErrNoSuchKey) && !errors.Is(err, vault.ErrNoSuchVersion) && !errors.Is(err, vault.ErrDeleteMarker) && !errors.Is(err, vault.ErrNoSuchVault) {
			return errorf("InvalidArgument", http.StatusBadRequest, "%v", err)
		}
		return err
	}
	q.ok()
	return nil
}

func (s *Server) getLegalHold(q *request) error {
	if err := s.lockEnabled(q); err != nil {
		return err
	}
	id, err := versionID(q.query.Get("versionId"))
	if err != nil {
		return err
	}
	info, err := s.e.Stat(q.r.Context(), q.bucket, q.key, id)
	if err != nil {
		return err
	}
	status := "OFF"
	if info.Lock != nil && info.Lock.LegalHold {
		status = "ON"
	}
	return q.writeXML(legalHoldXML{Xmlns: s3NS, Status: status})
}

func (s *Server) putLegalHold(q *request) error {
	if err := s.lockEnabled(q); err != nil {
		return err
	}
	id, err := versionID(q.query.Get("versionId"))
	if err != nil {
		return err
	}
	var lh legalHoldXML
	if err := q.readXML(&lh); err != nil {
		return err
	}
	if lh.Status != "ON" && lh.Status != "OFF" {
		return errMalformedXML
	}
	if _, err := s.e.SetLegalHold(q.r.Context(), q.bucket, q.key, id, lh.Status == "ON"); err != nil {
		return err
	}
	q.ok()
	return nil
}
