package s3

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The list responses written by hand (listxml.go) are checked against
// encoding/xml, which wrote them before: the oracle is xml.Marshal of the
// same value.

// marshalOracle is how writeXML wrote a list response before listxml.go.
func marshalOracle(t testing.TB, v any) []byte {
	t.Helper()
	body, err := xml.Marshal(v)
	if err != nil {
		t.Fatalf("xml.Marshal: %v", err)
	}
	return body
}

// checkSame fails unless a writes what xml.Marshal writes for it.
func checkSame(t testing.TB, a xmlAppender) {
	t.Helper()
	want := marshalOracle(t, a)
	got := a.appendXML(nil)
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%T differs from encoding/xml at byte %d:\n got  %q\n want %q", a, i, tail(got, i), tail(want, i))
	}
}

func tail(b []byte, i int) []byte {
	return b[max(0, i-40):min(len(b), i+40)]
}

// awkward are strings that encoding/xml escapes or replaces: the five
// special characters, tab, newline and carriage return, other control
// characters (and DEL, which XML allows), invalid UTF-8 (a stray
// continuation byte, a truncated sequence, an overlong encoding, an
// encoded surrogate, a byte that never starts one), U+FFFD itself,
// U+FFFE and U+FFFF (outside XML's range), the last character and a
// character outside the BMP, and a key as encoding-type=url writes it.
var awkward = []string{
	"",
	"plain/key-000001.txt",
	`a&b<c>d"e'f`,
	"tab\there\nnew\rline",
	"nul\x00 soh\x01 us\x1f del\x7f",
	"stray\x80 cont",
	"trunc\xe2\x82",
	"overlong\xc0\xaf",
	"surrogate\xed\xa0\x80",
	"never\xff\xfe",
	"replacement\uFFFD ok",
	"nonchar\uFFFE \uFFFF",
	"last\U0010FFFF astral\U0001F600",
	"ünïcödé/日本語/ключ",
	"&amp; already &#34; escaped ]]> <![CDATA[x]]>",
	urlEncode("url & encoded/ключ?\x00"),
	strings.Repeat("<&>", 400),
}

// fullListBucket is a ListObjects(V2) response with every field set from
// s, the i-th awkward string.
func fullListBucket(s func(int) string, n int) listBucketResult {
	marker, token, keys := s(1), s(2), n
	r := listBucketResult{Xmlns: s(0), Name: s(3), Prefix: s(4), Marker: &marker, NextMarker: s(5), StartAfter: s(6),
		ContinuationToken: &token, NextContinuationToken: s(7), KeyCount: &keys, MaxKeys: n * 3, Delimiter: s(8),
		EncodingType: s(9), IsTruncated: n%2 == 0}
	for i := range n {
		o := owner{ID: s(10 + i), DisplayName: s(11 + i)}
		x := objectXML{Key: s(12 + i), LastModified: xmlTime(time.Unix(0, int64(i)*1e9+123456789)), ETag: s(13 + i), Size: int64(i) << 40, StorageClass: s(14 + i)}
		if i%2 == 0 {
			x.Owner = &o
		}
		r.Contents = append(r.Contents, x)
		r.CommonPrefixes = append(r.CommonPrefixes, commonPrefix{Prefix: s(15 + i)})
	}
	return r
}

func fullListVersions(s func(int) string, n int) listVersionsResult {
	r := listVersionsResult{Xmlns: s(0), Name: s(1), Prefix: s(2), KeyMarker: s(3), VersionIDMarker: s(4), NextKeyMarker: s(5),
		NextVersionIDMarker: s(6), MaxKeys: -n, Delimiter: s(7), EncodingType: s(8), IsTruncated: n%2 == 1}
	for i := range n {
		size := int64(i) - 1
		x := versionXML{Key: s(9 + i), VersionID: s(10 + i), IsLatest: i%3 == 0, LastModified: s(11 + i), ETag: s(12 + i),
			Size: &size, StorageClass: s(13 + i), Owner: owner{ID: s(14 + i), DisplayName: s(15 + i)}}
		switch i % 4 {
		case 0:
			x.XMLName.Local = "Version"
		case 1:
			x.XMLName.Local = "DeleteMarker"
			x.Size, x.ETag, x.StorageClass = nil, "", ""
		case 2:
			x.XMLName = xml.Name{Space: s(16 + i), Local: "Version"}
		case 3:
			x.XMLName = xml.Name{Space: s(16 + i)} // named by the field
		}
		r.Entries = append(r.Entries, x)
		r.CommonPrefixes = append(r.CommonPrefixes, commonPrefix{Prefix: s(17 + i)})
	}
	return r
}

func fullListUploads(s func(int) string, n int) listMultipartUploadsResult {
	r := listMultipartUploadsResult{Xmlns: s(0), Bucket: s(1), KeyMarker: s(2), UploadIDMarker: s(3), NextKeyMarker: s(4),
		NextUploadIDMarker: s(5), Prefix: s(6), Delimiter: s(7), EncodingType: s(8), MaxUploads: n, IsTruncated: n > 0}
	for i := range n {
		r.Uploads = append(r.Uploads, uploadXML{Key: s(9 + i), UploadID: s(10 + i), Initiator: owner{ID: s(11 + i), DisplayName: s(12 + i)},
			Owner: owner{ID: s(13 + i), DisplayName: s(14 + i)}, StorageClass: s(15 + i), Initiated: s(16 + i),
			ChecksumAlgorithm: s(17 + i), ChecksumType: s(18 + i)})
		r.CommonPrefixes = append(r.CommonPrefixes, commonPrefix{Prefix: s(19 + i)})
	}
	return r
}

// allSet fails if a field of v (through pointers, structs and slices'
// elements) is never set, so that a field added to a list type without
// its appendXML fails the oracle tests rather than passing them empty.
func allSet(t *testing.T, path string, v reflect.Value, set map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			set[path] = true
			allSet(t, path, v.Elem(), set)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.Name == "XMLName" && f.Tag.Get("xml") != "" {
				continue // named by its tag; the value is not written
			}
			allSet(t, path+"."+f.Name, v.Field(i), set)
		}
	case reflect.Slice:
		for i := range v.Len() {
			allSet(t, path+"[]", v.Index(i), set)
		}
		if _, ok := set[path]; !ok {
			set[path] = false
		}
		if v.Len() > 0 {
			set[path] = true
		}
	default:
		if _, ok := set[path]; !ok {
			set[path] = false
		}
		if !v.IsZero() {
			set[path] = true
		}
	}
}

// The hand-written list responses are byte for byte what encoding/xml
// writes, for every field, with the awkward strings in each.
func TestListXMLMatchesEncodingXML(t *testing.T) {
	for shift := range awkward {
		s := func(i int) string { return awkward[(i+shift)%len(awkward)] }
		for _, n := range []int{0, 1, 2, 5, len(awkward)} {
			t.Run(fmt.Sprintf("shift%d/n%d", shift, n), func(t *testing.T) {
				checkSame(t, fullListBucket(s, n))
				checkSame(t, fullListVersions(s, n))
				checkSame(t, fullListUploads(s, n))
			})
		}
	}
	// The handlers' usual shapes: no marker, no token, no owner.
	checkSame(t, listBucketResult{Xmlns: s3NS, Name: "b", MaxKeys: 1000})
	checkSame(t, listVersionsResult{Xmlns: s3NS, Name: "b", MaxKeys: 1000})
	checkSame(t, listMultipartUploadsResult{Xmlns: s3NS, Bucket: "b", MaxUploads: 1000})
	// Every field is set (to something other than its zero value) in
	// some case above.
	s := func(i int) string { return awkward[1+i%(len(awkward)-1)] }
	for _, vs := range [][]any{
		{fullListBucket(s, 4), fullListBucket(s, 5)},
		{fullListVersions(s, 4), fullListVersions(s, 5)},
		{fullListUploads(s, 4), fullListUploads(s, 5)},
	} {
		set := map[string]bool{}
		for _, v := range vs {
			allSet(t, fmt.Sprintf("%T", v), reflect.ValueOf(v), set)
		}
		for path, ok := range set {
			if !ok {
				t.Errorf("%s is never set: the oracle tests do not cover it", path)
			}
		}
	}
}

// writeXML writes a list response as it did with encoding/xml: the same
// status, headers and bytes.
func TestWriteListXMLResponse(t *testing.T) {
	s := func(i int) string { return awkward[i%len(awkward)] }
	for _, v := range []xmlAppender{fullListBucket(s, 3), fullListVersions(s, 3), fullListUploads(s, 3), listBucketResult{Xmlns: s3NS}} {
		got := httptest.NewRecorder()
		if err := (&request{w: got}).writeXML(v); err != nil {
			t.Fatal(err)
		}
		want := httptest.NewRecorder()
		body := marshalOracle(t, v)
		want.Header().Set("Content-Type", "application/xml")
		want.WriteHeader(http.StatusOK)
		io.WriteString(want, xml.Header)
		want.Write(body)
		if got.Code != want.Code || !reflect.DeepEqual(got.Header(), want.Header()) || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
			t.Errorf("%T: got %d %v %q, want %d %v %q", v, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
	}
}

// FuzzListXML compares the hand-written list responses with encoding/xml
// on any strings in any field.
//
//	go test -run '^$' -fuzz FuzzListXML -fuzztime 60s ./s3/
func FuzzListXML(f *testing.F) {
	for i, a := range awkward {
		f.Add(a, awkward[(i+1)%len(awkward)], awkward[(i+5)%len(awkward)], uint8(i))
	}
	f.Fuzz(func(t *testing.T, a, b, c string, n uint8) {
		parts := []string{a, b, c, a + b, b + c, c + a, urlEncode(a)}
		s := func(i int) string { return parts[(i+int(n))%len(parts)] }
		k := int(n % 6)
		checkSame(t, fullListBucket(s, k))
		checkSame(t, fullListVersions(s, k))
		checkSame(t, fullListUploads(s, k))
	})
}

// BenchmarkListXML writes a page of 1,000 keys with encoding/xml (the
// oracle, as before listxml.go) and by hand, in the same run.
//
//	go test -run '^$' -bench ListXML -count 6 ./s3/
func BenchmarkListXML(b *testing.B) {
	page := listBucketResult{Xmlns: s3NS, Name: "list", MaxKeys: 1000, IsTruncated: true, NextContinuationToken: strings.Repeat("t", 120)}
	for i := range 1000 {
		page.Contents = append(page.Contents, objectXML{Key: fmt.Sprintf("dir/obj-%06d", i), LastModified: xmlTime(time.Unix(1765000000, int64(i))),
			ETag: `"9dd4e461268c8034f5c8564e155c67a6"`, Size: 1, StorageClass: "STANDARD"})
	}
	versions := listVersionsResult{Xmlns: s3NS, Name: "list", MaxKeys: 1000}
	for _, x := range page.Contents {
		size := x.Size
		v := versionXML{Key: x.Key, VersionID: "0123456789abcdef0123456789abcdef", IsLatest: true, LastModified: x.LastModified,
			ETag: x.ETag, Size: &size, StorageClass: x.StorageClass, Owner: owner{ID: "alice", DisplayName: "alice"}}
		v.XMLName.Local = "Version"
		versions.Entries = append(versions.Entries, v)
	}
	for _, c := range []struct {
		name string
		v    xmlAppender
	}{{"v2", page}, {"versions", versions}} {
		b.Run(c.name+"/encoding-xml", func(b *testing.B) {
			for b.Loop() {
				if _, err := xml.Marshal(c.v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/by-hand", func(b *testing.B) {
			var buf []byte
			for b.Loop() {
				buf = c.v.appendXML(buf[:0])
			}
		})
	}
}

// xmlTime writes what Format writes, for times across and beyond the years
// it writes by hand, and at the edges of a millisecond.
func TestXMLTimeMatchesFormat(t *testing.T) {
	check := func(tm time.Time) {
		t.Helper()
		if got, want := xmlTime(tm), tm.UTC().Format(timeFormat); got != want {
			t.Fatalf("xmlTime(%v) = %q, want %q", tm, got, want)
		}
	}
	zone := time.FixedZone("east", 5*3600+1800)
	for _, tm := range []time.Time{
		{}, time.Unix(0, 0), time.Unix(0, -1), time.Unix(0, 999999), time.Unix(0, 1000000), time.Unix(1765000000, 999999999),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(0, 3, 1, 1, 2, 3, 4e6, time.UTC), time.Date(2024, 2, 29, 23, 59, 59, 0, zone), time.Date(1, 1, 1, 0, 0, 0, 0, zone),
		time.Unix(1<<62, 0), time.Unix(-1<<62, 0),
	} {
		check(tm)
	}
	for i := range 100000 {
		check(time.Unix(0, int64(i)*922337203685477+int64(i)*7919)) // 1970 to 2262, spread
		check(time.Unix(int64(i)*3155760000+int64(i%1000), int64(i)*1000003%1e9).In(zone))
	}
}

// FuzzXMLTime compares xmlTime with Format at any instant.
func FuzzXMLTime(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(253402300799), int64(999999999))
	f.Add(int64(-62135596800), int64(0))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		tm := time.Unix(sec, nsec)
		if got, want := xmlTime(tm), tm.UTC().Format(timeFormat); got != want {
			t.Fatalf("xmlTime(%d, %d) = %q, want %q", sec, nsec, got, want)
		}
	})
}
