package s3

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/embassy-dev/embassy/vault"
)

func (s *Server) createUpload(q *request) error {
	o, err := s.putOptions(q)
	if err != nil {
		return err
	}
	if o.ChecksumAlgorithm, o.ChecksumType, err = uploadChecksum(q.r.Header); err != nil {
		return err
	}
	up, err := s.e.CreateUpload(q.r.Context(), q.bucket, q.key, o)
	if err != nil {
		return err
	}
	setUploadChecksumHeaders(q.w.Header(), up.ChecksumAlgorithm, up.ChecksumType)
	return q.writeXML(initiateMultipartUploadResult{Xmlns: s3NS, Bucket: q.bucket, Key: q.key, UploadID: up.ID})
}

func partNumber(q *request) (int, error) {
	n, err := strconv.Atoi(q.query.Get("partNumber"))
	if err != nil || n < 1 || n > vault.MaxPartNumber {
		return 0, errorf("InvalidArgument", http.StatusBadRequest, "Part number must be an integer between 1 and %d, inclusive", vault.MaxPartNumber)
	}
	return n, nil
}

func (s *Server) uploadPart(q *request) error {
	n, err := partNumber(q)
	if err != nil {
		return err
	}
	size, err := q.contentLength()
	if err != nil {
		return err
	}
	if size > vault.MaxPartSize {
		return errEntityTooLarge
	}
	up, err := s.e.UploadMeta(q.r.Context(), q.bucket, q.key, q.query.Get("uploadId"))
	if err != nil {
		return err
	}
	payload, err := q.body()
	if err != nil {
		return err
	}
	sum := newPartChecksum(payload, up.ChecksumAlgorithm)
	o := vault.PartOptions{Checksums: func() map[string]string { return sum.sums(payload.Checksums()) }}
	if q.r.Header.Get("Content-MD5") != "" {
		// A part's ETag is the MD5 of its bytes, which the payload has
		// verified against Content-MD5: no need to hash them again.
		o.ETag = func() string { return contentMD5ETag(payload.Checksums()) }
	} else {
		h := newETagHash()
		o.ETag, o.Hash = h.etag, h
	}
	p, err := s.e.PutPartWith(q.r.Context(), q.bucket, q.key, up.ID, n, sum, size, o)
	if err != nil {
		return err
	}
	q.w.Header().Set("ETag", p.ETag)
	for k, v := range p.Checksums {
		q.w.Header().Set(k, v)
	}
	q.ok()
	return nil
}

func (s *Server) uploadPartCopy(q *request) error {
	n, err := partNumber(q)
	if err != nil {
		return err
	}
	up, err := s.e.UploadMeta(q.r.Context(), q.bucket, q.key, q.query.Get("uploadId"))
	if err != nil {
		return err
	}
	src, err := s.openCopySource(q)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := s.e.CheckPartCopy(q.r.Context(), src.Info(), q.bucket, q.key, q.query.Get("uploadId")); err != nil {
		return err
	}
	size := src.Info().Size
	if rh := q.r.Header.Get("x-amz-copy-source-range"); rh != "" {
		first, last, found := strings.Cut(strings.TrimPrefix(rh, "bytes="), "-")
		a, err1 := strconv.ParseInt(first, 10, 64)
		b, err2 := strconv.ParseInt(last, 10, 64)
		if !strings.HasPrefix(rh, "bytes=") || !found || err1 != nil || err2 != nil || a < 0 || b < a {
			return errorf("InvalidArgument", http.StatusBadRequest, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
		}
		// The range must lie within the source, as S3 requires.
		if b >= size {
			return errorf("InvalidRange", http.StatusRequestedRangeNotSatisfiable, "The x-amz-copy-source-range bytes=%d-%d is not within the source object of %d bytes", a, b, size)
		}
		off, length := a, b-a+1
		if err := src.SetRange(off, length); err != nil {
			return err
		}
		size = length
	}
	sum := newPartChecksum(src, up.ChecksumAlgorithm)
	h := newETagHash()
	p, err := s.e.PutPartWith(q.r.Context(), q.bucket, q.key, up.ID, n, sum, size,
		vault.PartOptions{ETag: h.etag, Hash: h, Checksums: func() map[string]string { return sum.sums(nil) }})
	if err != nil {
		return err
	}
	return q.writeXML(copyPartResult{Xmlns: s3NS, LastModified: xmlTime(p.Modified), ETag: p.ETag, checksumFields: checksumXML(p.Checksums)})
}

func (s *Server) completeUpload(q *request) error {
	cond, err := writeCondition(q.r.Header)
	if err != nil {
		return err
	}
	var req completeMultipartUpload
	if err := q.readXML(&req); err != nil {
		return err
	}
	if len(req.Parts) == 0 {
		return errorf("MalformedXML", http.StatusBadRequest, "You must specify at least one part")
	}
	parts := make([]vault.CompletePart, len(req.Parts))
	sums := make(map[int]checksumFields, len(req.Parts))
	for i, p := range req.Parts {
		parts[i] = vault.CompletePart{Number: p.PartNumber, ETag: p.ETag}
		sums[p.PartNumber] = p.checksumFields
	}
	info, err := s.e.CompleteUploadWith(q.r.Context(), q.bucket, q.key, q.query.Get("uploadId"), parts,
		vault.CompleteOptions{If: cond, Checksums: completionChecksums(q.r.Header, sums)})
	if err != nil {
		return err
	}
	q.w.Header().Set("x-amz-version-id", info.VersionID.String())
	res := completeMultipartUploadResult{Xmlns: s3NS, Location: "/" + q.bucket + "/" + q.key, Bucket: q.bucket, Key: q.key, ETag: info.ETag,
		checksumFields: checksumXML(info.Checksums)}
	for _, v := range info.Checksums {
		res.ChecksumType = checksumType(v)
	}
	return q.writeXML(res)
}

func (s *Server) abortUpload(q *request) error {
	if err := s.e.AbortUpload(q.r.Context(), q.bucket, q.key, q.query.Get("uploadId")); err != nil {
		return err
	}
	q.noContent()
	return nil
}

func (s *Server) listParts(q *request) error {
	up, err := s.e.UploadMeta(q.r.Context(), q.bucket, q.key, q.query.Get("uploadId"))
	if err != nil {
		return err
	}
	parts, err := s.e.ListParts(q.r.Context(), q.bucket, q.key, up.ID)
	if err != nil {
		return err
	}
	max, err := maxKeys(q, "max-parts")
	if err != nil {
		return err
	}
	marker := 0
	if m := q.query.Get("part-number-marker"); m != "" {
		if marker, err = strconv.Atoi(m); err != nil || marker < 0 {
			return errorf("InvalidArgument", http.StatusBadRequest, "part-number-marker must be a non-negative integer")
		}
	}
	own := s.owner(q)
	res := listPartsResult{Xmlns: s3NS, Bucket: q.bucket, Key: q.key, UploadID: up.ID, Initiator: own, Owner: own,
		StorageClass: "STANDARD", PartNumberMarker: marker, MaxParts: max, ChecksumAlgorithm: up.ChecksumAlgorithm}
	if up.ChecksumAlgorithm != "" {
		res.ChecksumType = up.ChecksumType
		if res.ChecksumType == "" {
			res.ChecksumType = defaultChecksumType(up.ChecksumAlgorithm)
		}
	}
	for _, p := range parts {
		if p.Number <= marker {
			continue
		}
		if len(res.Parts) == max {
			res.IsTruncated = true
			break
		}
		res.Parts = append(res.Parts, partXML{PartNumber: p.Number, LastModified: xmlTime(p.Modified), ETag: p.ETag, Size: p.Size, checksumFields: checksumXML(p.Checksums)})
		res.NextPartNumberMarker = p.Number
	}
	return q.writeXML(res)
}
