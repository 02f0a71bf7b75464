package sigv4

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Credentials finds the secret access key of an access key id. It is the
// only way this package learns a secret; the secret is used to derive a
// signing key and is never stored, logged or put in an error.
type Credentials interface {
	Secret(accessKey string) (secret string, ok bool)
}

// Options tune [Verify]. The zero value is S3's behaviour.
type Options struct {
	// Region, when set, is the only region a credential scope may name;
	// any other is refused as S3 refuses a request signed for the wrong
	// region. When empty, any region is accepted and signatures are
	// checked against the region the client signed for.
	Region string
	// MaxSkew is how far a header-signed request's time may be from now,
	// and how far in the future a presigned URL may be dated. S3 uses 15
	// minutes, the default.
	MaxSkew time.Duration
	// MaxChunkSize bounds one chunk of an aws-chunked body. The default is
	// 16 MiB. The decoder never holds a chunk in memory, so this is a
	// sanity limit rather than a memory one.
	MaxChunkSize int64
	// MaxTrailerSize bounds the trailing section of an aws-chunked body.
	// The default is 16 KiB.
	MaxTrailerSize int
	// Keys, when set, caches derived signing keys.
	Keys *KeyCache
	// MustSign lists further header prefixes (lower case, e.g.
	// "x-embassy-") that, like x-amz-*, must be covered by the signature
	// when present: headers that change what a request does.
	MustSign []string
	// ObjectChecksums says that the request's x-amz-checksum-* headers
	// describe an object the request assembles, not its body
	// (CompleteMultipartUpload, whose x-amz-checksum-sha256 is the
	// checksum of the parts' checksums): they are not checked over the
	// body, and the caller reads and checks them itself. Content-MD5 and
	// trailers are still checked over the body.
	ObjectChecksums bool
}

// Defaults.
const (
	DefaultMaxSkew        = 15 * time.Minute
	DefaultMaxChunkSize   = 16 << 20
	DefaultMaxTrailerSize = 16 << 10
	// MaxPresignExpiry is the longest a presigned URL may live: one week.
	MaxPresignExpiry = 7 * 24 * time.Hour
)

func (o Options) withDefaults() Options {
	if o.MaxSkew <= 0 {
		o.MaxSkew = DefaultMaxSkew
	}
	if o.MaxChunkSize <= 0 {
		o.MaxChunkSize = DefaultMaxChunkSize
	}
	if o.MaxTrailerSize <= 0 {
		o.MaxTrailerSize = DefaultMaxTrailerSize
	}
	return o
}

// The values of x-amz-content-sha256 that are not a hash.
const (
	UnsignedPayload             = "UNSIGNED-PAYLOAD"
	StreamingSigned             = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	StreamingSignedTrailer      = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	StreamingUnsignedTrailer    = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	streamingECDSA              = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
	streamingECDSATrailer       = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER"
	msgContentSHA256Unsupported = "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value."
)

// payloadMode is how the body is bound to the signature.
type payloadMode int

const (
	payloadUnsigned        payloadMode = iota // UNSIGNED-PAYLOAD
	payloadHash                               // a hex SHA-256 of the body
	payloadChunked                            // signed aws-chunked
	payloadChunkedTrailer                     // signed aws-chunked and a signed trailer
	payloadUnsignedTrailer                    // unsigned aws-chunked and a trailer
)

func (m payloadMode) chunked() bool { return m >= payloadChunked }

// Auth is a verified request: who signed it, when, for what region, and
// how its body is bound to the signature. Read the body only through
// [Auth.Body].
type Auth struct {
	// AccessKey is the access key id that signed the request.
	AccessKey string
	// Region is the region of the credential scope.
	Region string
	// Time is when the request was signed (x-amz-date, Date or X-Amz-Date).
	Time time.Time
	// Presigned is set for a presigned URL, unset for an Authorization
	// header.
	Presigned bool
	// Expires is when a presigned URL stops being valid; zero otherwise.
	Expires time.Time
	// SignedHeaders are the lower-case names of the headers the signature
	// covers; host is always among them.
	SignedHeaders []string
	// ContentSHA256 is the payload value the signature covers: a hex
	// SHA-256, UNSIGNED-PAYLOAD or one of the STREAMING-* values.
	ContentSHA256 string
	// ContentLength is the length of the payload the client declared: the
	// x-amz-decoded-content-length of an aws-chunked body, otherwise the
	// request's Content-Length; -1 when unknown.
	ContentLength int64

	mode       payloadMode
	wantSHA256 []byte
	key        [32]byte // signing key: secret-derived, never printed
	seed       [32]byte // the request signature, first link of the chunk chain
	amzDate    string
	scope      string
	trailers   []*digest
	digests    []*digest
	opt        Options
}

// Format prints an Auth without its signing key.
func (a Auth) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "{AccessKey:%s Region:%s Time:%s Presigned:%t SignedHeaders:%s ContentSHA256:%s ContentLength:%d}",
		a.AccessKey, a.Region, a.Time.Format(time.RFC3339), a.Presigned,
		strings.Join(a.SignedHeaders, ";"), a.ContentSHA256, a.ContentLength)
}

// LogValue logs an Auth without its signing key.
func (a Auth) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("access_key", a.AccessKey),
		slog.String("region", a.Region),
		slog.Time("time", a.Time),
		slog.Bool("presigned", a.Presigned),
		slog.String("content_sha256", a.ContentSHA256),
	)
}

// Verify authenticates an S3 request signed with AWS Signature Version 4,
// in an Authorization header or as a presigned URL, as S3 does, against
// the secrets creds knows and the clock reading now.
//
// It checks everything that precedes the body: the signature over the
// canonical request, the credential scope, the request time (within
// Options.MaxSkew of now for a header signature, unexpired for a presigned
// URL), that every x-amz-* header is signed, and that x-amz-content-sha256,
// x-amz-trailer, x-amz-decoded-content-length, Content-MD5 and the
// x-amz-checksum-* headers are well formed. The body is checked as it is
// read through [Auth.Body].
//
// A request with no authentication at all gets an AccessDenied error that
// wraps [ErrAnonymous]. Every error is an *[Error].
func Verify(r *http.Request, creds Credentials, now time.Time, opt Options) (*Auth, error) {
	a, err := verify(r, creds, now, opt.withDefaults())
	if err != nil {
		return nil, err
	}
	return a, nil
}

func verify(r *http.Request, creds Credentials, now time.Time, opt Options) (*Auth, *Error) {
	authz := r.Header.Values("Authorization")
	params := parseQuery(r.URL.RawQuery)
	presign := false
	for _, p := range params {
		switch p.name {
		case "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature":
			presign = true
		case "Signature", "AWSAccessKeyId":
			if len(authz) == 0 {
				return nil, newError(InvalidRequest, msgV2NotSupported, "signature version 2 presigned urls are not supported")
			}
		}
	}
	switch {
	case len(authz) > 0 && presign:
		return nil, newError(InvalidArgument, "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
			"the request has both an authorization header and a presigned query", Field{"ArgumentName", "Authorization"})
	case len(authz) > 1:
		return nil, headerParse.err("the header appears more than once.", "the request has more than one authorization header")
	case len(authz) == 1:
		return verifyHeader(r, authz[0], params, creds, now, opt)
	case presign:
		return verifyPresigned(r, params, creds, now, opt)
	}
	return nil, &Error{Code: AccessDenied, Message: msgAnonymous, Detail: "the request is not signed", Err: ErrAnonymous}
}

// unsupportedAuthorization explains an Authorization header that is not
// AWS4-HMAC-SHA256.
func unsupportedAuthorization(v string) *Error {
	switch {
	case strings.HasPrefix(v, algorithmV4A):
		return newError(NotImplemented, msgSigV4aNotSupported, "signature version 4a (AWS4-ECDSA-P256-SHA256) is not supported")
	case strings.HasPrefix(v, "AWS "):
		return newError(InvalidRequest, msgV2NotSupported, "signature version 2 is not supported")
	case v == "":
		return headerParse.err("the header is empty.", "the authorization header is empty")
	}
	scheme, _, _ := strings.Cut(v, " ")
	return newError(InvalidArgument, "Unsupported Authorization Type", "authorization scheme "+quote(scheme)+" is not supported",
		Field{"ArgumentName", "Authorization"})
}

func verifyHeader(r *http.Request, authz string, params []queryParam, creds Credentials, now time.Time, opt Options) (*Auth, *Error) {
	if !strings.HasPrefix(authz, algorithm+" ") {
		return nil, unsupportedAuthorization(authz)
	}
	s, e := parseAuthorization(authz)
	if e != nil {
		return nil, e
	}
	secret, ok := creds.Secret(s.cred.accessKey)
	if !ok {
		return nil, newError(InvalidAccessKeyID, msgInvalidAccessKeyID, "unknown access key "+quote(s.cred.accessKey),
			Field{"AWSAccessKeyId", s.cred.accessKey})
	}
	if r.Header.Get("X-Amz-Security-Token") != "" {
		return nil, newError(InvalidToken, msgInvalidToken, "session tokens are not supported; sign with a long-term access key")
	}
	if opt.Region != "" && s.cred.region != opt.Region {
		return nil, headerParse.err("the region '"+s.cred.region+"' is wrong; expecting '"+opt.Region+"'",
			"credential region "+quote(s.cred.region)+" is not "+quote(opt.Region), Field{"Region", opt.Region})
	}

	// The request time: x-amz-date, else Date.
	var t time.Time
	if v := r.Header.Get("X-Amz-Date"); v != "" {
		var err error
		if t, err = time.Parse(iso8601Basic, v); err != nil {
			return nil, newError(AccessDenied, msgNeedDate, "x-amz-date "+quote(v)+" is not YYYYMMDDTHHMMSSZ")
		}
	} else if v := r.Header.Get("Date"); v != "" {
		var err error
		if t, err = http.ParseTime(v); err != nil {
			return nil, newError(AccessDenied, msgNeedDate, "date header "+quote(v)+" is not an HTTP date")
		}
	} else {
		return nil, newError(AccessDenied, msgNeedDate, "the request has neither x-amz-date nor date")
	}
	t = t.UTC()
	if t.Format(yyyymmdd) != s.cred.date {
		return nil, headerParse.err("Invalid credential date. Date is not the same as X-Amz-Date.",
			"credential date "+s.cred.date+" is not the day of the request time "+t.Format(iso8601Basic))
	}
	if d := now.Sub(t); d > opt.MaxSkew || d < -opt.MaxSkew {
		return nil, newError(RequestTimeTooSkewed, msgSkewed,
			fmt.Sprintf("request time %s is %s from server time %s; at most %s is allowed",
				t.Format(iso8601Basic), d.Abs().Round(time.Second), now.UTC().Format(iso8601Basic), opt.MaxSkew),
			Field{"RequestTime", t.Format(iso8601Basic)},
			Field{"ServerTime", now.UTC().Format(time.RFC3339)},
			Field{"MaxAllowedSkewMilliseconds", strconv.FormatInt(opt.MaxSkew.Milliseconds(), 10)})
	}

	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		return nil, newError(InvalidRequest, "Missing required header for this request: x-amz-content-sha256",
			"the request has no x-amz-content-sha256 header")
	}
	a := &Auth{
		AccessKey:     s.cred.accessKey,
		Region:        s.cred.region,
		Time:          t,
		SignedHeaders: s.signedHeaders,
		ContentSHA256: payload,
		ContentLength: r.ContentLength,
		amzDate:       t.Format(iso8601Basic),
		scope:         s.cred.scope,
		opt:           opt,
	}
	if e := a.setPayloadMode(payload, false); e != nil {
		return nil, e
	}
	if e := checkAllAmzSigned(r, s.signedHeaders, opt.MustSign); e != nil {
		return nil, e
	}
	canonical := canonicalRequest(r, canonicalURI(r.URL), canonicalQuery(params, ""), s.signedHeaders, s.signedRaw, payload)
	if e := a.checkSignature(secret, canonical, s.sig); e != nil {
		return nil, e
	}
	if e := a.setBodyChecks(r); e != nil {
		return nil, e
	}
	return a, nil
}

// presignRequired are the query parameters every presigned URL carries.
var presignRequired = [...]string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Expires"}

func verifyPresigned(r *http.Request, params []queryParam, creds Credentials, now time.Time, opt Options) (*Auth, *Error) {
	q := make(map[string]string, len(presignRequired)+1)
	for _, p := range params {
		if strings.HasPrefix(p.name, "X-Amz-") {
			if _, dup := q[p.name]; dup {
				return nil, newError(AuthorizationQueryParametersError, "The query parameter "+p.name+" appears more than once.",
					"presigned query repeats "+quote(p.name))
			}
			if len(p.value) > maxAuthLen {
				return nil, newError(AuthorizationQueryParametersError, "The query parameter "+p.name+" is too long.",
					"presigned query parameter "+quote(p.name)+" is "+itoa(len(p.value))+" bytes")
			}
			q[p.name] = p.value
		}
	}
	switch alg := q["X-Amz-Algorithm"]; alg {
	case algorithm:
	case algorithmV4A:
		return nil, newError(NotImplemented, msgSigV4aNotSupported, "signature version 4a (AWS4-ECDSA-P256-SHA256) is not supported")
	default:
		if _, ok := q["X-Amz-Algorithm"]; ok {
			return nil, newError(AuthorizationQueryParametersError, "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
				"x-amz-algorithm "+quote(alg)+" is not "+algorithm)
		}
	}
	for _, name := range presignRequired {
		if _, ok := q[name]; !ok {
			return nil, newError(AuthorizationQueryParametersError, msgQueryParamsRequired, "presigned query has no "+name)
		}
	}
	cred, e := parseCredential(q["X-Amz-Credential"], queryParse)
	if e != nil {
		return nil, e
	}
	secret, ok := creds.Secret(cred.accessKey)
	if !ok {
		return nil, newError(InvalidAccessKeyID, msgInvalidAccessKeyID, "unknown access key "+quote(cred.accessKey),
			Field{"AWSAccessKeyId", cred.accessKey})
	}
	if q["X-Amz-Security-Token"] != "" || r.Header.Get("X-Amz-Security-Token") != "" {
		return nil, newError(InvalidToken, msgInvalidToken, "session tokens are not supported; sign with a long-term access key")
	}
	if opt.Region != "" && cred.region != opt.Region {
		return nil, queryParse.err("the region '"+cred.region+"' is wrong; expecting '"+opt.Region+"'",
			"credential region "+quote(cred.region)+" is not "+quote(opt.Region), Field{"Region", opt.Region})
	}
	t, err := time.Parse(iso8601Basic, q["X-Amz-Date"])
	if err != nil {
		return nil, newError(AuthorizationQueryParametersError, "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
			"x-amz-date "+quote(q["X-Amz-Date"])+" is not YYYYMMDDTHHMMSSZ")
	}
	if t.Format(yyyymmdd) != cred.date {
		return nil, queryParse.err("Invalid credential date. Date is not the same as X-Amz-Date.",
			"credential date "+cred.date+" is not the day of x-amz-date "+t.Format(iso8601Basic))
	}
	expStr := q["X-Amz-Expires"]
	secs, err := strconv.ParseInt(expStr, 10, 64)
	switch {
	case err != nil && strings.HasPrefix(expStr, "-"):
		fallthrough
	case err == nil && secs < 0:
		return nil, newError(AuthorizationQueryParametersError, "X-Amz-Expires must be non-negative", "x-amz-expires "+quote(expStr)+" is negative")
	case err != nil:
		return nil, newError(AuthorizationQueryParametersError, "X-Amz-Expires should be a number", "x-amz-expires "+quote(expStr)+" is not a number")
	case secs > int64(MaxPresignExpiry/time.Second):
		return nil, newError(AuthorizationQueryParametersError, "X-Amz-Expires must be less than a week (in seconds) that is 604800",
			"x-amz-expires "+expStr+" is longer than a week")
	}
	expires := t.Add(time.Duration(secs) * time.Second)
	if t.Sub(now) > opt.MaxSkew {
		return nil, newError(AccessDenied, msgNotYetValid,
			fmt.Sprintf("presigned url is dated %s, %s after server time %s", t.Format(iso8601Basic), t.Sub(now).Round(time.Second), now.UTC().Format(iso8601Basic)),
			Field{"RequestTime", t.Format(iso8601Basic)}, Field{"ServerTime", now.UTC().Format(time.RFC3339)})
	}
	if now.After(expires) {
		return nil, newError(AccessDenied, msgExpired,
			fmt.Sprintf("presigned url expired at %s, %s before server time %s", expires.Format(iso8601Basic), now.Sub(expires).Round(time.Second), now.UTC().Format(iso8601Basic)),
			Field{"X-Amz-Expires", expStr}, Field{"Expires", expires.Format(time.RFC3339)}, Field{"ServerTime", now.UTC().Format(time.RFC3339)})
	}
	signed, e := parseSignedHeaders(q["X-Amz-SignedHeaders"], AuthorizationQueryParametersError)
	if e != nil {
		return nil, e
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		payload = UnsignedPayload
	}
	a := &Auth{
		AccessKey:     cred.accessKey,
		Region:        cred.region,
		Time:          t,
		Presigned:     true,
		Expires:       expires,
		SignedHeaders: signed,
		ContentSHA256: payload,
		ContentLength: r.ContentLength,
		amzDate:       t.Format(iso8601Basic),
		scope:         cred.scope,
		opt:           opt,
	}
	if e := a.setPayloadMode(payload, true); e != nil {
		return nil, e
	}
	if e := checkAllAmzSigned(r, signed, opt.MustSign); e != nil {
		return nil, e
	}
	canonical := canonicalRequest(r, canonicalURI(r.URL), canonicalQuery(params, "X-Amz-Signature"), signed, q["X-Amz-SignedHeaders"], payload)
	if e := a.checkSignature(secret, canonical, q["X-Amz-Signature"]); e != nil {
		return nil, e
	}
	if e := a.setBodyChecks(r); e != nil {
		return nil, e
	}
	return a, nil
}

// setPayloadMode classifies x-amz-content-sha256.
func (a *Auth) setPayloadMode(v string, presigned bool) *Error {
	switch v {
	case UnsignedPayload:
		a.mode = payloadUnsigned
		return nil
	case StreamingSigned:
		a.mode = payloadChunked
	case StreamingSignedTrailer:
		a.mode = payloadChunkedTrailer
	case StreamingUnsignedTrailer:
		a.mode = payloadUnsignedTrailer
	case streamingECDSA, streamingECDSATrailer:
		return newError(NotImplemented, msgSigV4aNotSupported, "x-amz-content-sha256 "+v+" needs signature version 4a, which is not supported")
	default:
		if len(v) != 64 {
			return newError(InvalidArgument, msgContentSHA256Unsupported, "x-amz-content-sha256 "+quote(v)+" is not a payload mode or a hex sha-256",
				Field{"ArgumentName", "x-amz-content-sha256"})
		}
		b, err := hex.DecodeString(v)
		if err != nil {
			return newError(InvalidArgument, msgContentSHA256Unsupported, "x-amz-content-sha256 "+quote(v)+" is not a payload mode or a hex sha-256",
				Field{"ArgumentName", "x-amz-content-sha256"})
		}
		a.mode, a.wantSHA256 = payloadHash, b
		return nil
	}
	if presigned {
		return newError(InvalidRequest, "aws-chunked payloads cannot be sent with a presigned URL",
			"x-amz-content-sha256 "+v+" is not allowed with a presigned url")
	}
	return nil
}

// checkAllAmzSigned refuses a request with an x-amz-* header (or one with
// a prefix of mustSign) the signature does not cover, as S3 does: an
// unsigned x-amz-* header could change what the request means (storage
// class, lock mode, checksum) behind the signer's back — and whoever holds a
// presigned URL could add it.
func checkAllAmzSigned(r *http.Request, signed, mustSign []string) *Error {
	var missing []string
	for k := range r.Header {
		lk := strings.ToLower(k)
		must := strings.HasPrefix(lk, "x-amz-")
		for _, p := range mustSign {
			must = must || strings.HasPrefix(lk, p)
		}
		if must && !slices.Contains(signed, lk) {
			missing = append(missing, lk)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	list := strings.Join(missing, ", ")
	return newError(AccessDenied, msgUnsignedHeaders, "the signature does not cover "+list, Field{"HeadersNotSigned", list})
}

// checkSignature derives the signing key and compares the request
// signature in constant time.
func (a *Auth) checkSignature(secret, canonical, sent string) *Error {
	a.key = a.opt.Keys.signingKey(secret, a.scope[:8], a.Region)
	sts := stringToSign(a.amzDate, a.scope, canonical)
	want := hmacSHA256(a.key[:], sts)
	if !equalHexSignature(sent, want) {
		return newError(SignatureDoesNotMatch, msgSignatureDoesNotMatch, "the request signature does not match",
			Field{"AWSAccessKeyId", a.AccessKey},
			Field{"StringToSign", sts},
			Field{"SignatureProvided", truncate(sent, 128)},
			Field{"CanonicalRequest", redactCanonical(canonical)})
	}
	a.seed = [32]byte(want)
	return nil
}

// setBodyChecks reads the headers that say how to check the body:
// x-amz-trailer, x-amz-decoded-content-length, Content-MD5 and the
// x-amz-checksum-* headers.
func (a *Auth) setBodyChecks(r *http.Request) *Error {
	var e *Error
	if a.mode == payloadChunkedTrailer || a.mode == payloadUnsignedTrailer {
		if a.trailers, e = declaredTrailers(r.Header); e != nil {
			return e
		}
	} else if r.Header.Get("X-Amz-Trailer") != "" {
		return newError(InvalidRequest, "x-amz-trailer is only allowed with STREAMING-UNSIGNED-PAYLOAD-TRAILER or STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
			"x-amz-trailer is set but x-amz-content-sha256 is "+quote(a.ContentSHA256))
	}
	if a.digests, e = headerDigests(r.Header, a.trailers, !a.opt.ObjectChecksums); e != nil {
		return e
	}
	if a.mode.chunked() {
		a.ContentLength = -1
		if v := r.Header.Get("X-Amz-Decoded-Content-Length"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return newError(InvalidArgument, "x-amz-decoded-content-length must be a non-negative integer",
					"x-amz-decoded-content-length "+quote(v)+" is not a non-negative integer",
					Field{"ArgumentName", "x-amz-decoded-content-length"})
			}
			a.ContentLength = n
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
