package s3

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"
)

// The list responses (ListObjects, ListObjectsV2, ListObjectVersions,
// ListMultipartUploads) are written by hand: encoding/xml's reflection
// was most of the server's CPU in a listing (docs/design.md, "LIST
// responses"). Each appendXML writes exactly the bytes xml.Marshal writes
// for the same value; listxml_test.go keeps encoding/xml as the oracle
// (a table and a fuzz test). A field added to one of these types must be
// added to its appendXML too: the oracle tests fill every field, so they
// fail until it is.

// xmlAppender is a response body that writes itself as XML (without the
// XML declaration).
type xmlAppender interface {
	appendXML(b []byte) []byte
}

// xmlBufs holds buffers for written responses; a page of 1,000 keys
// takes about 250 KiB.
var xmlBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledXML is the largest buffer kept for reuse: a page of long keys
// that need escaping can take megabytes, and is left to the collector.
const maxPooledXML = 1 << 20

// writeAppended writes a as writeXML writes a marshalled value: the
// status, the content type, the XML declaration and the body.
func (q *request) writeAppended(a xmlAppender) error {
	bp := xmlBufs.Get().(*[]byte)
	b := append((*bp)[:0], xml.Header...)
	b = a.appendXML(b)
	q.w.Header().Set("Content-Type", "application/xml")
	q.status = http.StatusOK
	q.w.WriteHeader(http.StatusOK)
	q.w.Write(b)
	if cap(b) <= maxPooledXML {
		*bp = b[:0]
		xmlBufs.Put(bp)
	}
	return nil
}

// xmlPlain says which bytes encoding/xml writes as they are in text and
// attribute values: ASCII from space up, except the five it escapes.
var xmlPlain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"'&<>` {
		t[c] = false
	}
	return t
}()

// appendEscaped appends s escaped as encoding/xml's EscapeString does (for
// both character data and attribute values): the five special characters
// as &#34; &#39; &amp; &lt; &gt;, tab, newline and carriage return as
// character references, and each character outside XML's range and each
// byte of invalid UTF-8 as U+FFFD.
func appendEscaped(b []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf && xmlPlain[c] {
			i++
			continue
		}
		var esc string
		width := 1
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				esc = "&#34;"
			case '\'':
				esc = "&#39;"
			case '&':
				esc = "&amp;"
			case '<':
				esc = "&lt;"
			case '>':
				esc = "&gt;"
			case '\t':
				esc = "&#x9;"
			case '\n':
				esc = "&#xA;"
			case '\r':
				esc = "&#xD;"
			default: // the other control characters
				esc = "\uFFFD"
			}
		} else {
			var r rune
			r, width = utf8.DecodeRuneInString(s[i:])
			if inXMLRange(r) && (r != utf8.RuneError || width != 1) {
				i += width
				continue
			}
			esc = "\uFFFD"
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		i += width
		last = i
	}
	return append(b, s[last:]...)
}

// inXMLRange is encoding/xml's isInCharacterRange: the characters XML
// allows.
func inXMLRange(r rune) bool {
	return r == 0x09 ||
		r == 0x0A ||
		r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

func appendOpen(b []byte, name string) []byte {
	b = append(b, '<')
	b = append(b, name...)
	return append(b, '>')
}

func appendClose(b []byte, name string) []byte {
	b = append(b, "</"...)
	b = append(b, name...)
	return append(b, '>')
}

// appendString appends <name>v</name>, v escaped.
func appendString(b []byte, name, v string) []byte {
	b = appendOpen(b, name)
	b = appendEscaped(b, v)
	return appendClose(b, name)
}

// appendNonEmpty is appendString for a field marked omitempty.
func appendNonEmpty(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendString(b, name, v)
}

func appendInt(b []byte, name string, v int64) []byte {
	b = appendOpen(b, name)
	b = strconv.AppendInt(b, v, 10)
	return appendClose(b, name)
}

func appendBool(b []byte, name string, v bool) []byte {
	b = appendOpen(b, name)
	b = strconv.AppendBool(b, v)
	return appendClose(b, name)
}

// appendStart appends a start tag with an xmlns attribute, as
// encoding/xml writes an `xml:"xmlns,attr"` field (even when empty).
func appendStart(b []byte, name, xmlns string) []byte {
	b = append(b, '<')
	b = append(b, name...)
	b = append(b, ` xmlns="`...)
	b = appendEscaped(b, xmlns)
	return append(b, `">`...)
}

func (o owner) appendXML(b []byte, name string) []byte {
	b = appendOpen(b, name)
	b = appendString(b, "ID", o.ID)
	b = appendString(b, "DisplayName", o.DisplayName)
	return appendClose(b, name)
}

func appendPrefixes(b []byte, cps []commonPrefix) []byte {
	for _, p := range cps {
		b = append(b, "<CommonPrefixes>"...)
		b = appendString(b, "Prefix", p.Prefix)
		b = append(b, "</CommonPrefixes>"...)
	}
	return b
}

func (x objectXML) appendXML(b []byte) []byte {
	b = append(b, "<Contents>"...)
	b = appendString(b, "Key", x.Key)
	b = appendString(b, "LastModified", x.LastModified)
	b = appendString(b, "ETag", x.ETag)
	b = appendInt(b, "Size", x.Size)
	b = appendString(b, "StorageClass", x.StorageClass)
	if x.Owner != nil {
		b = x.Owner.appendXML(b, "Owner")
	}
	return append(b, "</Contents>"...)
}

func (r listBucketResult) appendXML(b []byte) []byte {
	b = appendStart(b, "ListBucketResult", r.Xmlns)
	b = appendString(b, "Name", r.Name)
	b = appendString(b, "Prefix", r.Prefix)
	if r.Marker != nil {
		b = appendString(b, "Marker", *r.Marker)
	}
	b = appendNonEmpty(b, "NextMarker", r.NextMarker)
	b = appendNonEmpty(b, "StartAfter", r.StartAfter)
	if r.ContinuationToken != nil {
		b = appendString(b, "ContinuationToken", *r.ContinuationToken)
	}
	b = appendNonEmpty(b, "NextContinuationToken", r.NextContinuationToken)
	if r.KeyCount != nil {
		b = appendInt(b, "KeyCount", int64(*r.KeyCount))
	}
	b = appendInt(b, "MaxKeys", int64(r.MaxKeys))
	b = appendNonEmpty(b, "Delimiter", r.Delimiter)
	b = appendNonEmpty(b, "EncodingType", r.EncodingType)
	b = appendBool(b, "IsTruncated", r.IsTruncated)
	for _, x := range r.Contents {
		b = x.appendXML(b)
	}
	b = appendPrefixes(b, r.CommonPrefixes)
	return append(b, "</ListBucketResult>"...)
}

func (x versionXML) appendXML(b []byte) []byte {
	// The element's name is XMLName's (Version or DeleteMarker), or the
	// field's in listVersionsResult when it has none, as encoding/xml
	// names it.
	name := x.XMLName.Local
	if name == "" {
		name = "Entries"
		x.XMLName.Space = ""
	}
	b = append(b, '<')
	b = append(b, name...)
	if x.XMLName.Space != "" {
		b = append(b, ` xmlns="`...)
		b = appendEscaped(b, x.XMLName.Space)
		b = append(b, '"')
	}
	b = append(b, '>')
	b = appendString(b, "Key", x.Key)
	b = appendString(b, "VersionId", x.VersionID)
	b = appendBool(b, "IsLatest", x.IsLatest)
	b = appendString(b, "LastModified", x.LastModified)
	b = appendNonEmpty(b, "ETag", x.ETag)
	if x.Size != nil {
		b = appendInt(b, "Size", *x.Size)
	}
	b = appendNonEmpty(b, "StorageClass", x.StorageClass)
	b = x.Owner.appendXML(b, "Owner")
	return appendClose(b, name)
}

func (r listVersionsResult) appendXML(b []byte) []byte {
	b = appendStart(b, "ListVersionsResult", r.Xmlns)
	b = appendString(b, "Name", r.Name)
	b = appendString(b, "Prefix", r.Prefix)
	b = appendString(b, "KeyMarker", r.KeyMarker)
	b = appendString(b, "VersionIdMarker", r.VersionIDMarker)
	b = appendNonEmpty(b, "NextKeyMarker", r.NextKeyMarker)
	b = appendNonEmpty(b, "NextVersionIdMarker", r.NextVersionIDMarker)
	b = appendInt(b, "MaxKeys", int64(r.MaxKeys))
	b = appendNonEmpty(b, "Delimiter", r.Delimiter)
	b = appendNonEmpty(b, "EncodingType", r.EncodingType)
	b = appendBool(b, "IsTruncated", r.IsTruncated)
	for _, x := range r.Entries {
		b = x.appendXML(b)
	}
	b = appendPrefixes(b, r.CommonPrefixes)
	return append(b, "</ListVersionsResult>"...)
}

func (x uploadXML) appendXML(b []byte) []byte {
	b = append(b, "<Upload>"...)
	b = appendString(b, "Key", x.Key)
	b = appendString(b, "UploadId", x.UploadID)
	b = x.Initiator.appendXML(b, "Initiator")
	b = x.Owner.appendXML(b, "Owner")
	b = appendString(b, "StorageClass", x.StorageClass)
	b = appendString(b, "Initiated", x.Initiated)
	b = appendNonEmpty(b, "ChecksumAlgorithm", x.ChecksumAlgorithm)
	b = appendNonEmpty(b, "ChecksumType", x.ChecksumType)
	return append(b, "</Upload>"...)
}

func (r listMultipartUploadsResult) appendXML(b []byte) []byte {
	b = appendStart(b, "ListMultipartUploadsResult", r.Xmlns)
	b = appendString(b, "Bucket", r.Bucket)
	b = appendString(b, "KeyMarker", r.KeyMarker)
	b = appendString(b, "UploadIdMarker", r.UploadIDMarker)
	b = appendString(b, "NextKeyMarker", r.NextKeyMarker)
	b = appendString(b, "NextUploadIdMarker", r.NextUploadIDMarker)
	b = appendString(b, "Prefix", r.Prefix)
	b = appendNonEmpty(b, "Delimiter", r.Delimiter)
	b = appendNonEmpty(b, "EncodingType", r.EncodingType)
	b = appendInt(b, "MaxUploads", int64(r.MaxUploads))
	b = appendBool(b, "IsTruncated", r.IsTruncated)
	for _, x := range r.Uploads {
		b = x.appendXML(b)
	}
	b = appendPrefixes(b, r.CommonPrefixes)
	return append(b, "</ListMultipartUploadsResult>"...)
}
