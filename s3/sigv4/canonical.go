package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The fixed strings of the algorithm.
const (
	algorithm        = "AWS4-HMAC-SHA256"
	algorithmV4A     = "AWS4-ECDSA-P256-SHA256"
	service          = "s3"
	terminator       = "aws4_request"
	iso8601Basic     = "20060102T150405Z"
	yyyymmdd         = "20060102"
	emptySHA256      = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	chunkAlgorithm   = "AWS4-HMAC-SHA256-PAYLOAD"
	trailerAlgorithm = "AWS4-HMAC-SHA256-TRAILER"
)

// uriEncode percent-encodes s the way SigV4 requires: every byte outside
// the RFC 3986 unreserved set (A-Z a-z 0-9 - . _ ~) becomes %XX with
// upper-case hex. A slash is kept when keepSlash is set.
func uriEncode(b *strings.Builder, s string, keepSlash bool) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/' && keepSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
}

// canonicalURI is the CanonicalURI of the request: its path exactly as the
// client named it, with every segment encoded once by SigV4's rules. S3 does
// not double-encode and does not normalise "." or ".." segments or repeated
// slashes.
//
// The path is taken as it came on the wire (so an encoded slash, %2F, stays
// distinct from a separator) and each segment is decoded and re-encoded, so
// a client that left a character such as '$' or '(' unencoded on the wire,
// or wrote lower-case hex, still verifies.
func canonicalURI(u *url.URL) string {
	raw := u.EscapedPath()
	if raw == "" {
		return "/"
	}
	var b strings.Builder
	b.Grow(len(raw) + len(raw)/4)
	for i, seg := range strings.Split(raw, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		if dec, err := url.PathUnescape(seg); err == nil {
			seg = dec
		}
		uriEncode(&b, seg, false)
	}
	return b.String()
}

// queryParam is one decoded name=value pair of a query string.
type queryParam struct {
	name, value string
}

// parseQuery splits a raw query string into decoded pairs, keeping every
// pair in order, including repeats. A component that does not decode is kept
// as it came, so it is encoded (and so signed) as its literal bytes.
func parseQuery(raw string) []queryParam {
	if raw == "" {
		return nil
	}
	params := make([]queryParam, 0, strings.Count(raw, "&")+1)
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		if dec, err := url.QueryUnescape(name); err == nil {
			name = dec
		}
		if dec, err := url.QueryUnescape(value); err == nil {
			value = dec
		}
		params = append(params, queryParam{name, value})
	}
	return params
}

// canonicalQuery is the CanonicalQueryString: every parameter except skip
// (the signature of a presigned URL), names and values encoded, sorted by
// encoded name and then encoded value, joined with '&'.
func canonicalQuery(params []queryParam, skip string) string {
	enc := make([]queryParam, 0, len(params))
	for _, p := range params {
		if skip != "" && p.name == skip {
			continue
		}
		var n, v strings.Builder
		uriEncode(&n, p.name, false)
		uriEncode(&v, p.value, false)
		enc = append(enc, queryParam{n.String(), v.String()})
	}
	slices.SortFunc(enc, func(a, b queryParam) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.value, b.value)
	})
	var b strings.Builder
	for i, p := range enc {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// headerValues returns the values of the named header (lower-case name).
// Go's server keeps Host, Content-Length and Transfer-Encoding apart from
// r.Header; they are put back as the client sent them.
func headerValues(r *http.Request, name string) []string {
	switch name {
	case "host":
		if r.Host != "" {
			return []string{r.Host}
		}
		if r.URL != nil && r.URL.Host != "" {
			return []string{r.URL.Host}
		}
		return nil
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) > 0 {
			return v
		}
		if r.ContentLength >= 0 {
			return []string{strconv.FormatInt(r.ContentLength, 10)}
		}
		return nil
	case "transfer-encoding":
		if v := r.Header.Values("Transfer-Encoding"); len(v) > 0 {
			return v
		}
		if len(r.TransferEncoding) > 0 {
			return []string{strings.Join(r.TransferEncoding, ",")}
		}
		return nil
	}
	if v, ok := r.Header[textproto.CanonicalMIMEHeaderKey(name)]; ok {
		return v
	}
	// Names that are not valid tokens are not canonicalised by Go.
	for k, v := range r.Header {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// trimAll trims leading and trailing spaces and collapses runs of spaces
// inside the value into one, as SigV4's canonical headers require.
func trimAll(b *strings.Builder, v string) {
	v = strings.Trim(v, " \t")
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteByte(c)
	}
}

// canonicalRequest builds the canonical request for r.
func canonicalRequest(r *http.Request, uri, query string, signed []string, signedRaw, payload string) string {
	var b strings.Builder
	b.Grow(256 + len(uri) + len(query))
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(uri)
	b.WriteByte('\n')
	b.WriteString(query)
	b.WriteByte('\n')
	for _, name := range signed {
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range headerValues(r, name) {
			if i > 0 {
				b.WriteByte(',')
			}
			trimAll(&b, v)
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(signedRaw)
	b.WriteByte('\n')
	b.WriteString(payload)
	return b.String()
}

// stringToSign is the string the seed signature signs.
func stringToSign(amzDate, scope, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// deriveKey derives the signing key of a secret for a day and region.
func deriveKey(secret, date, region string) [32]byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, terminator)
	return [32]byte(k)
}

// equalHexSignature compares a signature the client sent, in hex, with the
// one computed, in constant time. Hex of either case is accepted.
func equalHexSignature(sent string, want []byte) bool {
	var got [32]byte
	if len(sent) != 2*len(got) {
		return false
	}
	if _, err := hex.Decode(got[:], []byte(sent)); err != nil {
		return false
	}
	return hmac.Equal(got[:], want)
}

// redactedHeaders carry keys a client sends (SSE-C); their values are left
// out of the canonical request an error document shows.
var redactedHeaders = [...]string{
	"x-amz-server-side-encryption-customer-key:",
	"x-amz-copy-source-server-side-encryption-customer-key:",
}

// redactCanonical blanks the values of key-carrying headers in a canonical
// request so that it can go into an error document or a log.
func redactCanonical(c string) string {
	lines := strings.Split(c, "\n")
	for i, l := range lines {
		for _, h := range redactedHeaders {
			if strings.HasPrefix(l, h) {
				lines[i] = h + "REDACTED"
			}
		}
	}
	return strings.Join(lines, "\n")
}
