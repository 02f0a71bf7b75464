// Package sigv4 owns the authentication of requests to embassy's
// S3-compatible front end: AWS Signature Version 4 as Amazon S3 checks it,
// and the integrity of request bodies that the signature or the client's
// checksums cover. It imports only the standard library and knows nothing
// of buckets, objects or principals: it answers "which access key signed
// this request, and is its body what was signed?".
//
// # What it checks
//
// [Verify] authenticates a request signed in an Authorization header
// (AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...) or as
// a presigned URL (X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date,
// X-Amz-Expires, X-Amz-SignedHeaders, X-Amz-Signature). It rebuilds the
// canonical request exactly as S3 does: the path encoded once per segment
// (S3 does not double-encode), query parameters encoded and sorted, each
// signed header's values trimmed, inner runs of spaces collapsed and
// repeated headers joined with commas, the Host header as sent, port
// included. It compares signatures in constant time.
//
// [Auth.Body] then reads the payload the way x-amz-content-sha256 says it
// was bound to the signature:
//
//   - a hex SHA-256: the body is hashed as it streams and the read that
//     would return io.EOF fails with XAmzContentSHA256Mismatch instead if
//     the hash differs;
//   - UNSIGNED-PAYLOAD: the body is passed through;
//   - STREAMING-AWS4-HMAC-SHA256-PAYLOAD: an aws-chunked body whose every
//     chunk signature is verified, chained from the request signature;
//   - STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: the same, plus a signed
//     trailer carrying an x-amz-checksum-* value;
//   - STREAMING-UNSIGNED-PAYLOAD-TRAILER: unsigned aws-chunked data whose
//     trailing x-amz-checksum-* is verified over the decoded bytes.
//
// In every mode Content-MD5 and an x-amz-checksum-* header (CRC32, CRC32C,
// CRC64NVME, SHA1, SHA256) are verified over the decoded payload (unless
// Options.ObjectChecksums says the header describes an object, as on
// CompleteMultipartUpload), and x-amz-decoded-content-length is enforced.
// CompositeChecksum and FullObjectChecksum make a multipart object's
// checksum from its parts'. SigV4a (AWS4-ECDSA-P256-SHA256)
// and Signature Version 2 are refused with errors that say so.
//
// # S3 behaviours mirrored
//
//   - A header-signed request dated more than 15 minutes from the server's
//     clock is refused with RequestTimeTooSkewed. This is the replay window
//     S3 has; nothing here remembers signatures.
//   - A presigned URL lives at most a week (X-Amz-Expires ≤ 604800) and
//     after it expires is refused with AccessDenied "Request has expired".
//   - Every x-amz-* header must be signed (AccessDenied, "There were headers
//     present in the request which were not signed"), and so must headers of
//     the prefixes in Options.MustSign; host must be signed;
//     header-signed requests must carry x-amz-content-sha256.
//   - An unknown access key is InvalidAccessKeyId; a wrong signature is
//     SignatureDoesNotMatch with the canonical request and string to sign in
//     the error document, as S3 returns them (SSE-C key headers redacted).
//   - aws-chunked chunks other than the last must be at least 8 KiB
//     (InvalidChunkSizeError); one x-amz-checksum algorithm per request.
//   - A request with no authentication at all is reported distinctly
//     ([ErrAnonymous]) with the AccessDenied code S3 uses.
//
// Every error is an *[Error] carrying the S3 error code, its HTTP status,
// S3's message and a lower-case detail naming what was wrong. No error or
// log value carries a secret or a signing key.
//
// # What it does not do
//
// Session tokens (x-amz-security-token) are refused: embassy issues no
// temporary credentials. Browser POST-policy uploads are not handled here.
// Deciding what an authenticated access key may do is package access's
// job.
package sigv4
