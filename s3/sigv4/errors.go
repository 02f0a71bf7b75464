package sigv4

import (
	"errors"
	"net/http"
)

// Code is an S3 error code, the text of the <Code> element of an S3 error
// document.
type Code string

// The S3 error codes this package reports. Each has one HTTP status, given
// by [Code.Status].
const (
	AccessDenied                      Code = "AccessDenied"
	SignatureDoesNotMatch             Code = "SignatureDoesNotMatch"
	InvalidAccessKeyID                Code = "InvalidAccessKeyId"
	AuthorizationHeaderMalformed      Code = "AuthorizationHeaderMalformed"
	AuthorizationQueryParametersError Code = "AuthorizationQueryParametersError"
	RequestTimeTooSkewed              Code = "RequestTimeTooSkewed"
	XAmzContentSHA256Mismatch         Code = "XAmzContentSHA256Mismatch"
	BadDigest                         Code = "BadDigest"
	InvalidDigest                     Code = "InvalidDigest"
	IncompleteBody                    Code = "IncompleteBody"
	MissingContentLength              Code = "MissingContentLength"
	InvalidArgument                   Code = "InvalidArgument"
	InvalidRequest                    Code = "InvalidRequest"
	InvalidToken                      Code = "InvalidToken"
	InvalidChunkSizeError             Code = "InvalidChunkSizeError"
	MalformedTrailerError             Code = "MalformedTrailerError"
	NotImplemented                    Code = "NotImplemented"
)

// Status is the HTTP status S3 answers with for the code.
func (c Code) Status() int {
	switch c {
	case AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyID, RequestTimeTooSkewed:
		return http.StatusForbidden
	case MissingContentLength:
		return http.StatusLengthRequired
	case NotImplemented:
		return http.StatusNotImplemented
	default:
		return http.StatusBadRequest
	}
}

// ErrAnonymous is wrapped by the error [Verify] returns for a request that
// carries no authentication at all: no Authorization header and no
// presigned query. The error's code is AccessDenied. A server that serves
// nothing anonymously answers it as it is; one that does should check
// errors.Is(err, ErrAnonymous) and decide by its own policy.
var ErrAnonymous = errors.New("anonymous request")

// Field is an extra element of an S3 error document, such as RequestTime
// and ServerTime for RequestTimeTooSkewed or CanonicalRequest for
// SignatureDoesNotMatch. None ever holds a secret or a signing key.
type Field struct {
	Name, Value string
}

// Error is every error this package returns about a request or its body.
// A server answers it with an S3 error document built from Code, Message
// and Fields, and the status Code.Status().
type Error struct {
	// Code is the S3 error code.
	Code Code
	// Message is what S3 puts in <Message>: a sentence for the client.
	Message string
	// Detail names exactly what was wrong, for logs and for Error. It is
	// lower-case and never holds a secret.
	Detail string
	// Fields are extra elements S3 adds to the error document for this
	// code, in document order.
	Fields []Field
	// Err is the underlying cause, if any (ErrAnonymous, or an I/O error
	// from the request body).
	Err error
}

func (e *Error) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = e.Message
	}
	return "sigv4: " + string(e.Code) + ": " + msg
}

func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status of the error's code.
func (e *Error) Status() int { return e.Code.Status() }

func newError(code Code, message, detail string, fields ...Field) *Error {
	return &Error{Code: code, Message: message, Detail: detail, Fields: fields}
}

// S3's own messages, used where S3 has one sentence for a code.
const (
	msgSignatureDoesNotMatch = "The request signature we calculated does not match the signature you provided. Check your key and signing method."
	msgInvalidAccessKeyID    = "The AWS Access Key Id you provided does not exist in our records."
	msgSkewed                = "The difference between the request time and the current time is too large."
	msgExpired               = "Request has expired"
	msgNotYetValid           = "Request is not valid yet"
	msgContentSHA256Mismatch = "The provided 'x-amz-content-sha256' header does not match what was computed."
	msgIncompleteBody        = "You did not provide the number of bytes specified by the Content-Length HTTP header."
	msgChunkTooSmall         = "Only the last chunk is allowed to have a size less than 8192 bytes"
	msgMalformedTrailer      = "The request contained trailing data that was not well-formed or did not conform to our published schema."
	msgUnsignedHeaders       = "There were headers present in the request which were not signed"
	msgAnonymous             = "Access Denied"
	msgInvalidToken          = "The provided token is malformed or otherwise invalid."
	msgBadContentMD5         = "The Content-MD5 you specified did not match what we received."
	msgInvalidContentMD5     = "The Content-MD5 you specified is not valid."
	msgNeedDate              = "AWS authentication requires a valid Date or x-amz-date header"
	msgQueryParamsRequired   = "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
	msgMalformedCredential   = "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."
	msgV2NotSupported        = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
	msgSigV4aNotSupported    = "Signature Version 4A (AWS4-ECDSA-P256-SHA256) is not supported by this endpoint. Please use AWS4-HMAC-SHA256."
)
