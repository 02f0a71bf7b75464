package s3

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/vault"
)

// urlEncode percent-encodes a key for encoding-type=url responses, keeping
// unreserved characters and '/'.
func urlEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteString("%" + strings.ToUpper(strconv.FormatUint(uint64(c)>>4, 16)) + strings.ToUpper(strconv.FormatUint(uint64(c)&15, 16)))
		}
	}
	return b.String()
}

type encoder func(string) string

func encoding(q *request) (encoder, string, error) {
	switch q.query.Get("encoding-type") {
	case "":
		return func(s string) string { return s }, "", nil
	case "url":
		return urlEncode, "url", nil
	}
	return nil, "", errorf("InvalidArgument", http.StatusBadRequest, "Invalid Encoding Method specified in Request")
}

func maxKeys(q *request, name string) (int, error) {
	v := q.query.Get(name)
	if v == "" {
		return 1000, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errorf("InvalidArgument", http.StatusBadRequest, "%s must be a non-negative integer", name)
	}
	return min(n, 1000), nil
}

func (s *Server) listPage(q *request, o index.ListOptions, max int) (index.ListPage, error) {
	if max == 0 {
		if !s.bucketExists(q) {
			return index.ListPage{}, errNoSuchBucket
		}
		return index.ListPage{}, nil
	}
	o.Max, o.Scan = max, s.cfg.ListScan
	if IsAlliedBucket(q.bucket) {
		return s.cfg.Allied.AlliedList(q.r.Context(), q.bucket, o)
	}
	return s.e.List(q.r.Context(), q.bucket, o)
}

func (s *Server) contents(q *request, page index.ListPage, enc encoder, fetchOwner bool) ([]objectXML, []commonPrefix) {
	objs := make([]objectXML, 0, len(page.Entries))
	o := s.owner(q)
	for _, e := range page.Entries {
		x := objectXML{Key: enc(e.Key), LastModified: xmlTime(time.Unix(0, e.Created)), ETag: e.ETag, Size: e.Size, StorageClass: "STANDARD"}
		if fetchOwner {
			x.Owner = &o
		}
		objs = append(objs, x)
	}
	cps := make([]commonPrefix, 0, len(page.CommonPrefixes))
	for _, p := range page.CommonPrefixes {
		cps = append(cps, commonPrefix{Prefix: enc(p)})
	}
	return objs, cps
}

// lastListed is the last key or common prefix a page returns (they sort
// together), or "".
func lastListed(page index.ListPage) string {
	last := ""
	if n := len(page.Entries); n > 0 {
		last = page.Entries[n-1].Key
	}
	if n := len(page.CommonPrefixes); n > 0 && page.CommonPrefixes[n-1] > last {
		last = page.CommonPrefixes[n-1]
	}
	return last
}

func (s *Server) listObjectsV1(q *request) error {
	enc, et, err := encoding(q)
	if err != nil {
		return err
	}
	max, err := maxKeys(q, "max-keys")
	if err != nil {
		return err
	}
	qs := q.query
	o := index.ListOptions{Prefix: qs.Get("prefix"), Delimiter: qs.Get("delimiter"), After: qs.Get("marker")}
	if c, sealed, err := s.openCursor(q, "objects", o.Prefix, o.Delimiter, o.After); err != nil {
		return err
	} else if sealed {
		o.After = c.Key
	}
	page, err := s.listPage(q, o, max)
	if err != nil {
		return err
	}
	marker := enc(qs.Get("marker"))
	// v1 encodes Marker, NextMarker, Delimiter, keys and common prefixes
	// for encoding-type=url, but not Prefix: S3 returns it as given, and
	// clients do not decode it.
	res := listBucketResult{Xmlns: s3NS, Name: q.bucket, Prefix: o.Prefix, Marker: &marker, MaxKeys: max,
		Delimiter: enc(o.Delimiter), EncodingType: et, IsTruncated: page.Truncated}
	res.Contents, res.CommonPrefixes = s.contents(q, page, enc, true)
	if page.Truncated {
		// NextMarker names only a key or prefix this page returned; when
		// the listing stopped past it (hidden keys used up the scan), the
		// position is sealed.
		if page.Next == lastListed(page) && page.Next != "" {
			if o.Delimiter != "" {
				res.NextMarker = enc(page.Next)
			}
		} else if res.NextMarker, err = s.sealCursor(q, "objects", o.Prefix, o.Delimiter, page.Next, ""); err != nil {
			return err
		}
	}
	return q.writeXML(res)
}

func (s *Server) listObjectsV2(q *request) error {
	enc, et, err := encoding(q)
	if err != nil {
		return err
	}
	max, err := maxKeys(q, "max-keys")
	if err != nil {
		return err
	}
	qs := q.query
	o := index.ListOptions{Prefix: qs.Get("prefix"), Delimiter: qs.Get("delimiter"), After: qs.Get("start-after")}
	token := qs.Get("continuation-token")
	var echo *string
	if qs.Has("continuation-token") {
		// Echoed as given, even empty, as S3 does.
		echo = &token
	}
	if token != "" {
		c, sealed, err := s.openCursor(q, "objects", o.Prefix, o.Delimiter, token)
		if err != nil {
			return err
		}
		if !sealed {
			return errBadToken
		}
		o.After = c.Key
	}
	page, err := s.listPage(q, o, max)
	if err != nil {
		return err
	}
	res := listBucketResult{Xmlns: s3NS, Name: q.bucket, Prefix: enc(o.Prefix), MaxKeys: max, Delimiter: enc(o.Delimiter),
		EncodingType: et, IsTruncated: page.Truncated, ContinuationToken: echo, StartAfter: enc(qs.Get("start-after"))}
	res.Contents, res.CommonPrefixes = s.contents(q, page, enc, qs.Get("fetch-owner") == "true")
	n := len(res.Contents) + len(res.CommonPrefixes)
	res.KeyCount = &n
	if page.Truncated {
		if res.NextContinuationToken, err = s.sealCursor(q, "objects", o.Prefix, o.Delimiter, page.Next, ""); err != nil {
			return err
		}
	}
	return q.writeXML(res)
}

func (s *Server) listVersions(q *request) error {
	enc, et, err := encoding(q)
	if err != nil {
		return err
	}
	max, err := maxKeys(q, "max-keys")
	if err != nil {
		return err
	}
	qs := q.query
	o := index.VersionOptions{Prefix: qs.Get("prefix"), Delimiter: qs.Get("delimiter"), KeyMarker: qs.Get("key-marker"), Max: max, Scan: s.cfg.ListScan}
	c, sealed, err := s.openCursor(q, "versions", o.Prefix, o.Delimiter, o.KeyMarker)
	switch {
	case err != nil:
		return err
	case sealed:
		o.KeyMarker = c.Key
		if c.ID != "" {
			if o.VersionMarker, err = manifest.ParseID(c.ID); err != nil {
				return errBadToken.with(err)
			}
		}
	default:
		if vm := qs.Get("version-id-marker"); vm != "" {
			if o.KeyMarker == "" {
				return errorf("InvalidArgument", http.StatusBadRequest, "A version-id marker cannot be specified without a key marker.")
			}
			if o.VersionMarker, err = manifest.ParseID(vm); err != nil {
				return errorf("InvalidArgument", http.StatusBadRequest, "Invalid version id specified")
			}
		}
	}
	var page index.VersionPage
	if max > 0 {
		// A marker naming a version deleted since it was handed out
		// (a client emptying a bucket page by page) continues after
		// where that version was: the index keeps the position.
		if page, err = s.e.Versions(q.r.Context(), q.bucket, o); err != nil {
			return err
		}
	} else if _, ok := s.cfg.Vaults.VaultInfo(q.bucket); !ok {
		return errNoSuchBucket
	}
	res := listVersionsResult{Xmlns: s3NS, Name: q.bucket, Prefix: enc(o.Prefix), KeyMarker: enc(qs.Get("key-marker")), VersionIDMarker: qs.Get("version-id-marker"),
		MaxKeys: max, Delimiter: enc(o.Delimiter), EncodingType: et, IsTruncated: page.Truncated}
	own := s.owner(q)
	lastKey, lastID := "", ""
	res.Entries = make([]versionXML, 0, len(page.Versions))
	for _, v := range page.Versions {
		x := versionXML{Key: enc(v.Key), VersionID: v.ID.String(), IsLatest: v.IsLatest, LastModified: xmlTime(time.Unix(0, v.Created)), Owner: own}
		if v.DeleteMarker {
			x.XMLName.Local = "DeleteMarker"
		} else {
			x.XMLName.Local = "Version"
			size := v.Size
			x.Size, x.ETag, x.StorageClass = &size, v.ETag, "STANDARD"
		}
		res.Entries = append(res.Entries, x)
		lastKey, lastID = v.Key, x.VersionID
	}
	for _, p := range page.CommonPrefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: enc(p)})
		if p > lastKey {
			lastKey, lastID = p, ""
		}
	}
	if page.Truncated {
		nextID := ""
		if !page.NextVersionMarker.IsZero() {
			nextID = page.NextVersionMarker.String()
		}
		if page.NextKeyMarker == lastKey && nextID == lastID && lastKey != "" {
			res.NextKeyMarker, res.NextVersionIDMarker = enc(lastKey), lastID
		} else if res.NextKeyMarker, err = s.sealCursor(q, "versions", o.Prefix, o.Delimiter, page.NextKeyMarker, nextID); err != nil {
			return err
		}
	}
	return q.writeXML(res)
}

func (s *Server) listUploads(q *request) error {
	enc, et, err := encoding(q)
	if err != nil {
		return err
	}
	max, err := maxKeys(q, "max-uploads")
	if err != nil {
		return err
	}
	qs := q.query
	o := index.UploadOptions{Prefix: qs.Get("prefix"), Delimiter: qs.Get("delimiter"), KeyMarker: qs.Get("key-marker"), IDMarker: qs.Get("upload-id-marker"), Max: max, Scan: s.cfg.ListScan}
	if c, sealed, err := s.openCursor(q, "uploads", o.Prefix, o.Delimiter, o.KeyMarker); err != nil {
		return err
	} else if sealed {
		o.KeyMarker, o.IDMarker = c.Key, c.ID
	}
	var page index.UploadPage
	if max > 0 {
		if page, err = s.e.ListUploads(q.r.Context(), q.bucket, o); err != nil {
			return err
		}
	} else if _, ok := s.cfg.Vaults.VaultInfo(q.bucket); !ok {
		return errNoSuchBucket
	}
	res := listMultipartUploadsResult{Xmlns: s3NS, Bucket: q.bucket, KeyMarker: enc(qs.Get("key-marker")), UploadIDMarker: qs.Get("upload-id-marker"),
		Prefix: enc(o.Prefix), Delimiter: enc(o.Delimiter), MaxUploads: max, IsTruncated: page.Truncated, EncodingType: et}
	own := s.owner(q)
	lastKey, lastID := "", ""
	for _, u := range page.Uploads {
		who := own
		if name := vault.UploadInitiator(u); name != "" {
			who = owner{ID: name, DisplayName: name}
		}
		x := uploadXML{Key: enc(u.Key), UploadID: u.ID, Initiator: who, Owner: who, StorageClass: "STANDARD", Initiated: xmlTime(time.Unix(0, u.Created))}
		if x.ChecksumAlgorithm, x.ChecksumType = vault.UploadChecksum(u); x.ChecksumAlgorithm != "" && x.ChecksumType == "" {
			x.ChecksumType = defaultChecksumType(x.ChecksumAlgorithm)
		}
		res.Uploads = append(res.Uploads, x)
		lastKey, lastID = u.Key, u.ID
	}
	for _, p := range page.CommonPrefixes {
		res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{Prefix: enc(p)})
		if p > lastKey {
			lastKey, lastID = p, ""
		}
	}
	if page.Truncated {
		if page.NextKeyMarker == lastKey && page.NextIDMarker == lastID && lastKey != "" {
			res.NextKeyMarker, res.NextUploadIDMarker = enc(lastKey), lastID
		} else if res.NextKeyMarker, err = s.sealCursor(q, "uploads", o.Prefix, o.Delimiter, page.NextKeyMarker, page.NextIDMarker); err != nil {
			return err
		}
	}
	return q.writeXML(res)
}
