package s3

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
)

type objectAttributesResult struct {
	XMLName      xml.Name               `xml:"GetObjectAttributesResponse"`
	Xmlns        string                 `xml:"xmlns,attr"`
	ETag         string                 `xml:"ETag,omitempty"`
	Checksum     *attributesChecksum    `xml:"Checksum,omitempty"`
	ObjectParts  *attributesObjectParts `xml:"ObjectParts,omitempty"`
	StorageClass string                 `xml:"StorageClass,omitempty"`
	ObjectSize   *int64                 `xml:"ObjectSize,omitempty"`
}

type attributesChecksum struct {
	checksumFields
	ChecksumType string `xml:"ChecksumType,omitempty"`
}

type attributesObjectParts struct {
	PartsCount           int              `xml:"PartsCount"`
	PartNumberMarker     int              `xml:"PartNumberMarker"`
	NextPartNumberMarker int              `xml:"NextPartNumberMarker"`
	MaxParts             int              `xml:"MaxParts"`
	IsTruncated          bool             `xml:"IsTruncated"`
	Parts                []attributesPart `xml:"Part"`
}

type attributesPart struct {
	PartNumber int   `xml:"PartNumber"`
	Size       int64 `xml:"Size"`
	checksumFields
}

// objectAttributes are the names x-amz-object-attributes may list.
var objectAttributes = map[string]bool{"ETag": true, "Checksum": true, "ObjectParts": true, "StorageClass": true, "ObjectSize": true}

// getObjectAttributes answers GetObjectAttributes: the attributes named in
// x-amz-object-attributes of a version, without its body. Parts are those
// of an object made by a multipart upload, paged by x-amz-max-parts and
// x-amz-part-number-marker. Checksums are the whole-object ones verified
// when the object was put or, for an upload created with a checksum
// algorithm, the composite one made from its parts' (and each part's own).
func (s *Server) getObjectAttributes(q *request) error {
	want := map[string]bool{}
	for _, v := range q.r.Header.Values("x-amz-object-attributes") {
		for a := range strings.SplitSeq(v, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			if !objectAttributes[a] {
				return errorf("InvalidArgument", http.StatusBadRequest, "Invalid attribute name specified: %q (want ETag, Checksum, ObjectParts, StorageClass or ObjectSize)", a)
			}
			want[a] = true
		}
	}
	if len(want) == 0 {
		return errorf("InvalidArgument", http.StatusBadRequest, "x-amz-object-attributes must name at least one of ETag, Checksum, ObjectParts, StorageClass, ObjectSize")
	}
	maxParts, marker := 1000, 0
	if v := q.r.Header.Get("x-amz-max-parts"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errorf("InvalidArgument", http.StatusBadRequest, "x-amz-max-parts must be a non-negative integer")
		}
		maxParts = min(n, 1000)
	}
	if v := q.r.Header.Get("x-amz-part-number-marker"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errorf("InvalidArgument", http.StatusBadRequest, "x-amz-part-number-marker must be a non-negative integer")
		}
		marker = n
	}
	id, err := versionID(q.query.Get("versionId"))
	if err != nil {
		return err
	}
	info, err := s.e.Stat(q.r.Context(), q.bucket, q.key, id)
	if err != nil {
		return err
	}
	if _, err := preconditions(q.r.Header, "", info); err != nil {
		return err
	}
	res := objectAttributesResult{Xmlns: s3NS}
	if want["ETag"] {
		res.ETag = strings.Trim(info.ETag, `"`)
	}
	if want["StorageClass"] {
		res.StorageClass = "STANDARD"
	}
	if want["ObjectSize"] {
		size := info.Size
		res.ObjectSize = &size
	}
	if want["Checksum"] {
		c := attributesChecksum{checksumFields: checksumXML(info.Checksums)}
		if c.checksumFields != (checksumFields{}) {
			c.ChecksumType = "FULL_OBJECT"
			for k, v := range info.Checksums {
				if strings.HasPrefix(k, "x-amz-checksum-") {
					c.ChecksumType = checksumType(v)
				}
			}
			res.Checksum = &c
		}
	}
	if want["ObjectParts"] && multipart(info) {
		op := &attributesObjectParts{PartsCount: len(info.PartSizes), PartNumberMarker: marker, MaxParts: maxParts}
		for i, sz := range info.PartSizes {
			n := i + 1
			if n <= marker {
				continue
			}
			if len(op.Parts) == maxParts {
				op.IsTruncated = true
				break
			}
			op.Parts = append(op.Parts, attributesPart{PartNumber: n, Size: sz, checksumFields: checksumXML(partChecksums(info, n))})
			op.NextPartNumberMarker = n
		}
		res.ObjectParts = op
	}
	h := q.w.Header()
	h.Set("Last-Modified", info.Created.UTC().Format(http.TimeFormat))
	h.Set("x-amz-version-id", info.VersionID.String())
	return q.writeXML(res)
}
