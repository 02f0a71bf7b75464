package sigv4

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
)

// Payload is a request body read as the client meant it: aws-chunked
// framing removed, and every check the request promised made as the bytes
// pass. It returns io.EOF only once all of them have passed: the
// x-amz-content-sha256 hash, each chunk signature, the trailer signature,
// x-amz-decoded-content-length, Content-MD5 and the x-amz-checksum-*
// header or trailer. Any failure is an *[Error], returned in place of
// io.EOF.
//
// Bytes are handed on as they arrive, before the checks that cover them
// are complete (a hash over the whole body cannot be checked sooner), so a
// consumer must treat nothing it has read as genuine until Read returns
// io.EOF, and must discard what it read if Read returns any other error.
type Payload struct {
	src     io.Reader
	sha     hash.Hash // for a hex x-amz-content-sha256
	wantSHA []byte
	digests []*digest
	n       int64
	err     error
}

// Body returns the request body r (r.Body of the verified request) as a
// [Payload] that decodes and checks it according to the request's
// x-amz-content-sha256 mode. Call it once per request.
func (a *Auth) Body(r io.Reader) *Payload {
	if r == nil {
		r = http.NoBody
	}
	p := &Payload{src: r, digests: cloneDigests(a.digests)}
	if a.mode == payloadHash {
		p.sha, p.wantSHA = sha256.New(), a.wantSHA256
	}
	if a.mode.chunked() {
		trailers := cloneDigests(a.trailers)
		p.digests = append(p.digests, trailers...)
		p.src = newChunkedReader(r, a, trailers)
	}
	return p
}

// CheckDigests returns body as a [Payload] that verifies the Content-MD5
// and x-amz-checksum-* headers of h over it (BadDigest at the end of the
// body if one does not match). A header that is not a well-formed digest
// is refused at once (InvalidDigest for Content-MD5, InvalidRequest for a
// checksum). [Auth.Body] already does this for a verified request; this is
// for bodies that reach the server another way.
func CheckDigests(h http.Header, body io.Reader) (*Payload, error) {
	d, e := headerDigests(h, nil, true)
	if e != nil {
		return nil, e
	}
	if body == nil {
		body = http.NoBody
	}
	return &Payload{src: body, digests: d}, nil
}

func cloneDigests(ds []*digest) []*digest {
	out := make([]*digest, 0, len(ds))
	for _, d := range ds {
		c := newDigest(d.alg)
		c.want, c.encoded, c.trailer = d.want, d.encoded, d.trailer
		out = append(out, c)
	}
	return out
}

// Read reads decoded payload bytes.
func (p *Payload) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n, err := p.src.Read(b)
	if n > 0 {
		p.n += int64(n)
		if p.sha != nil {
			p.sha.Write(b[:n])
		}
		for _, d := range p.digests {
			d.h.Write(b[:n])
		}
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		if e := p.finish(); e != nil {
			p.err = e
			return n, e
		}
		p.err = io.EOF
	default:
		p.err = bodyError(err)
	}
	return n, p.err
}

// Len is the number of payload bytes read so far.
func (p *Payload) Len() int64 { return p.n }

// Checksums returns the checksums that were verified over the payload,
// keyed by lower-case header name (content-md5, x-amz-checksum-crc32, ...)
// with their base64 values. It is empty until Read has returned io.EOF.
func (p *Payload) Checksums() map[string]string {
	if p.err != io.EOF {
		return nil
	}
	m := make(map[string]string, len(p.digests))
	for _, d := range p.digests {
		m[d.alg.header] = d.encoded
	}
	return m
}

func (p *Payload) finish() *Error {
	if p.sha != nil {
		got := p.sha.Sum(nil)
		if !bytes.Equal(got, p.wantSHA) {
			return newError(XAmzContentSHA256Mismatch, msgContentSHA256Mismatch,
				fmt.Sprintf("x-amz-content-sha256 is %x but the %d-byte body hashes to %x", p.wantSHA, p.n, got),
				Field{"ClientComputedContentSHA256", hex.EncodeToString(p.wantSHA)},
				Field{"S3ComputedContentSHA256", hex.EncodeToString(got)})
		}
	}
	for _, d := range p.digests {
		if d.want == nil {
			// A declared trailer that never came; the chunked reader
			// reports that before EOF, so this is unreachable in practice.
			return newError(MalformedTrailerError, msgMalformedTrailer, d.alg.header+" was declared but not received")
		}
		if e := d.check(); e != nil {
			return e
		}
	}
	return nil
}

// bodyError turns a read error from the request body into the error a
// Payload returns: a body shorter than its Content-Length is IncompleteBody,
// our own errors pass through, anything else is wrapped.
func bodyError(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Code: IncompleteBody, Message: msgIncompleteBody, Detail: "the request body ended early", Err: err}
	}
	return fmt.Errorf("read request body: %w", err)
}
