package sigv4

import (
	"strconv"
	"strings"
	"time"
)

// credential is the Credential of a SigV4 signature:
// AKID/YYYYMMDD/REGION/s3/aws4_request.
type credential struct {
	accessKey string
	date      string // YYYYMMDD
	region    string
	scope     string // date/region/s3/aws4_request
}

// signature is what a client sent to authenticate: the parts of an
// Authorization header or of a presigned query.
type signature struct {
	cred          credential
	signedHeaders []string // lower-case names, in the client's order
	signedRaw     string   // the SignedHeaders value as sent
	sig           string   // hex, as sent
}

// parseError builds the error for a malformed Authorization header or
// presigned query, in S3's words for each.
type parseError struct {
	code   Code
	prefix string // S3's sentence opening for the code
}

var (
	headerParse = parseError{AuthorizationHeaderMalformed, "The authorization header is malformed; "}
	queryParse  = parseError{AuthorizationQueryParametersError, "Error parsing the X-Amz-Credential parameter; "}
)

func (p parseError) err(msg, detail string, fields ...Field) *Error {
	return newError(p.code, p.prefix+msg, detail, fields...)
}

// maxAuthLen bounds the Authorization header and the auth query values this
// package will look at; real ones are a few hundred bytes.
const maxAuthLen = 8 << 10

// parseAuthorization parses an Authorization header value of the form
//
//	AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=<hex>
//
// The separators between the three parts may be "," or ", "; their order is
// free; each must appear once.
func parseAuthorization(v string) (signature, *Error) {
	var s signature
	if len(v) > maxAuthLen {
		return s, headerParse.err("the header is too long.", "authorization header is "+itoa(len(v))+" bytes, more than "+itoa(maxAuthLen))
	}
	rest, ok := strings.CutPrefix(v, algorithm)
	if !ok || (rest != "" && rest[0] != ' ') {
		return s, headerParse.err("the algorithm is not "+algorithm+".", "authorization header does not start with "+algorithm)
	}
	var cred, signed, sig string
	var seen [3]bool
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			return s, headerParse.err("the part "+quote(part)+" is not of the form Name=Value.", "authorization part "+quote(part)+" has no '='")
		}
		var slot *string
		var i int
		switch k {
		case "Credential":
			slot, i = &cred, 0
		case "SignedHeaders":
			slot, i = &signed, 1
		case "Signature":
			slot, i = &sig, 2
		default:
			return s, headerParse.err("unknown part "+quote(k)+".", "authorization header has an unknown part "+quote(k))
		}
		if seen[i] {
			return s, headerParse.err("the part "+k+" appears more than once.", "authorization header repeats "+k)
		}
		seen[i] = true
		*slot = val
	}
	switch {
	case !seen[0]:
		return s, headerParse.err("missing Credential.", "authorization header has no Credential")
	case !seen[1]:
		return s, headerParse.err("missing SignedHeaders.", "authorization header has no SignedHeaders")
	case !seen[2]:
		return s, headerParse.err("missing Signature.", "authorization header has no Signature")
	}
	var e *Error
	if s.cred, e = parseCredential(cred, headerParse); e != nil {
		return s, e
	}
	if s.signedHeaders, e = parseSignedHeaders(signed, headerParse.code); e != nil {
		return s, e
	}
	s.signedRaw, s.sig = signed, sig
	return s, nil
}

// parseCredential parses AKID/YYYYMMDD/REGION/SERVICE/aws4_request.
func parseCredential(v string, p parseError) (credential, *Error) {
	var c credential
	parts := strings.Split(v, "/")
	if len(parts) != 5 || parts[0] == "" || parts[2] == "" {
		return c, p.err(msgMalformedCredential, "credential "+quote(v)+" is not AKID/YYYYMMDD/REGION/SERVICE/aws4_request")
	}
	if _, err := time.Parse(yyyymmdd, parts[1]); err != nil || len(parts[1]) != 8 {
		return c, p.err("incorrect date format "+quote(parts[1])+". This date in the credential must be in the format \"yyyyMMdd\".",
			"credential date "+quote(parts[1])+" is not YYYYMMDD")
	}
	if parts[3] != service {
		return c, p.err("incorrect service "+quote(parts[3])+". This endpoint belongs to \"s3\".",
			"credential service is "+quote(parts[3])+", not \"s3\"")
	}
	if parts[4] != terminator {
		return c, p.err("incorrect terminal "+quote(parts[4])+". This endpoint uses \"aws4_request\".",
			"credential terminal is "+quote(parts[4])+", not \"aws4_request\"")
	}
	c.accessKey, c.date, c.region = parts[0], parts[1], parts[2]
	c.scope = c.date + "/" + c.region + "/" + service + "/" + terminator
	return c, nil
}

// parseSignedHeaders parses a SignedHeaders value: lower-case header names
// joined by ';', each at most once, host among them.
func parseSignedHeaders(v string, code Code) ([]string, *Error) {
	fail := func(msg, detail string) ([]string, *Error) {
		if code == AuthorizationHeaderMalformed {
			msg = "The authorization header is malformed; " + msg
		}
		return nil, newError(code, msg, detail)
	}
	if v == "" {
		return fail("SignedHeaders is empty.", "signed headers are empty")
	}
	names := strings.Split(v, ";")
	host := false
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" || n != strings.ToLower(n) || strings.ContainsAny(n, " \t:,") {
			return fail("SignedHeaders contains the invalid name "+quote(n)+".", "signed header name "+quote(n)+" is not a lower-case header name")
		}
		if seen[n] {
			return fail("SignedHeaders names "+quote(n)+" more than once.", "signed headers repeat "+quote(n))
		}
		seen[n] = true
		host = host || n == "host"
	}
	if !host {
		return fail("SignedHeaders must include host.", "signed headers do not include host")
	}
	return names, nil
}

// quote quotes a client-supplied string for a message, cut short so a
// hostile value cannot flood logs.
func quote(s string) string {
	const maxQuoted = 64
	if len(s) > maxQuoted {
		return strconv.Quote(s[:maxQuoted]) + "..."
	}
	return strconv.Quote(s)
}

func itoa(n int) string { return strconv.Itoa(n) }
