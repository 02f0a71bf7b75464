package sigv4

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
)

// The aws-chunked wire format (S3 API reference, "Signature Calculations
// for the Authorization Header: Transferring Payload in Multiple Chunks"
// and "... Including Trailing Headers"):
//
//	signed:    hex-size ";chunk-signature=" 64-hex CRLF data CRLF ... 0;chunk-signature=<sig> CRLF [trailer] CRLF
//	unsigned:  hex-size CRLF data CRLF ... 0 CRLF [trailer] CRLF
//	trailer:   name ":" value CRLF ... [x-amz-trailer-signature ":" 64-hex CRLF]
//
// Each chunk signature signs
//
//	AWS4-HMAC-SHA256-PAYLOAD \n date \n scope \n previous-signature \n sha256("") \n sha256(data)
//
// chained from the request (seed) signature, and the trailer signature signs
//
//	AWS4-HMAC-SHA256-TRAILER \n date \n scope \n previous-signature \n sha256(trailer)
//
// where trailer is each trailing header but the signature as
// "name:value\n". The decoder accepts a trailer line ended by LF alone and
// blank lines inside the trailer section (minio-go writes both), and reads
// to the end of the body.
const (
	maxChunkLine = 1024 // a chunk header line: size, extension, CRLF
	// minChunkSize is S3's smallest chunk but the last.
	minChunkSize      = 8192
	chunkSigExtension = "chunk-signature="
	// readBufferSize is the decoder's smallest read-ahead; it holds any
	// header line (maxChunkLine); trailer lines may be longer.
	readBufferSize = 4 << 10
	// maxReadAhead is its largest: a body of that much or more (decoded)
	// is read in reads of up to 128 KiB, its chunks' data copied out of the
	// read-ahead. Until the fifteenth pass a chunk's data went straight
	// into the caller's buffer past a 4 KiB read-ahead, to copy less; that
	// took two reads a 64 KiB chunk, and the kernel's side of those reads
	// cost more than the copy saved: PUT 64 MiB at c4 on a quiet machine,
	// the kernel's network receive 0.29-0.52 CPU-s/GB against 0.17-0.21,
	// the copy 0.06-0.16 more, the server's CPU per GB 4-8 % lower in four
	// rounds of four (docs/design.md, "Where the CPU goes, both servers
	// side by side (issue 15, fifteenth pass)").
	maxReadAhead = 128 << 10
)

// readAheadFor returns the read-ahead for a body of want decoded bytes
// (negative: not declared): the body and its framing, within
// readBufferSize and maxReadAhead, so that a small body does not take a
// large buffer.
func readAheadFor(want int64) int {
	if want < 0 || want >= maxReadAhead {
		return maxReadAhead
	}
	return min(maxReadAhead, max(readBufferSize, int(want)+readBufferSize))
}

// chunkedReader decodes an aws-chunked body, verifying chunk and trailer
// signatures when the mode is signed. It holds no chunk in memory: data is
// passed through as it arrives and a chunk's signature is checked at its
// end, before anything after it is read. Checksums over the decoded bytes
// are the Payload's job; the reader only fills in the values the trailer
// carries.
type chunkedReader struct {
	br            *bufio.Reader
	signed        bool // chunks carry signatures
	trailer       bool // a trailer section may carry headers
	signedTrailer bool // and it must be signed
	maxChunk      int64
	maxTrailer    int
	want          int64 // x-amz-decoded-content-length; -1 when absent
	decoded       int64

	mac       hash.Hash // HMAC-SHA256 under the signing key
	chunkHash hash.Hash // SHA-256 of the current chunk's data
	prefix    []byte    // "AWS4-HMAC-SHA256-PAYLOAD\n" date "\n" scope "\n"
	tprefix   []byte    // the same for the trailer
	prev      [32]byte  // the previous signature in the chain
	sent      [32]byte  // the signature the current chunk claims
	scratch   []byte

	remaining int64 // data bytes left in the current chunk
	inChunk   bool
	index     int   // number of the current chunk, from 1
	lastSize  int64 // size of the previous data chunk; -1 before the first
	trailers  []*digest
	err       error
}

func newChunkedReader(r io.Reader, a *Auth, trailers []*digest) *chunkedReader {
	c := &chunkedReader{
		br:            bufio.NewReaderSize(r, readAheadFor(a.ContentLength)),
		signed:        a.mode == payloadChunked || a.mode == payloadChunkedTrailer,
		trailer:       a.mode == payloadChunkedTrailer || a.mode == payloadUnsignedTrailer,
		signedTrailer: a.mode == payloadChunkedTrailer,
		maxChunk:      a.opt.MaxChunkSize,
		maxTrailer:    a.opt.MaxTrailerSize,
		want:          a.ContentLength,
		lastSize:      -1,
		trailers:      trailers,
		prev:          a.seed,
	}
	if c.signed {
		c.mac = hmac.New(sha256.New, a.key[:])
		c.chunkHash = sha256.New()
		c.prefix = []byte(chunkAlgorithm + "\n" + a.amzDate + "\n" + a.scope + "\n")
		c.tprefix = []byte(trailerAlgorithm + "\n" + a.amzDate + "\n" + a.scope + "\n")
		c.scratch = make([]byte, 0, len(c.prefix)+3*64+3)
	}
	return c
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, c.err
	}
	for c.err == nil {
		if c.remaining > 0 {
			if int64(len(p)) > c.remaining {
				p = p[:c.remaining]
			}
			n, err := c.br.Read(p)
			if n > 0 {
				if c.signed {
					c.chunkHash.Write(p[:n])
				}
				c.remaining -= int64(n)
				c.decoded += int64(n)
			}
			if err != nil {
				c.err = c.readError(err, "data")
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if c.inChunk {
			c.endChunk()
			continue
		}
		c.nextChunk()
	}
	return 0, c.err
}

func (c *chunkedReader) malformed(detail string) *Error {
	return newError(InvalidRequest, "The request body is not valid aws-chunked encoding.", fmt.Sprintf("chunk %d: %s", c.index, detail))
}

// readError names a read error met while reading part of the body.
func (c *chunkedReader) readError(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &Error{Code: IncompleteBody, Message: msgIncompleteBody,
			Detail: fmt.Sprintf("the aws-chunked body ended inside chunk %d's %s", c.index, what), Err: err}
	}
	return bodyError(err)
}

// readLine reads one line ending in LF, of at most max bytes.
func (c *chunkedReader) readLine(max int, what string) ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if len(line) > max || err == bufio.ErrBufferFull {
		return nil, c.malformed(what + " line is longer than " + itoa(max) + " bytes")
	}
	if err != nil {
		return nil, c.readError(err, what)
	}
	return line, nil
}

// nextChunk reads a chunk header line and starts the chunk; at the final,
// empty chunk it reads the trailer and ends the body.
func (c *chunkedReader) nextChunk() {
	c.index++
	line, err := c.readLine(maxChunkLine, "header")
	if err != nil {
		c.err = err
		return
	}
	line, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok {
		c.err = c.malformed("header line does not end in CRLF")
		return
	}
	sizeHex, ext, hasExt := bytes.Cut(line, []byte(";"))
	if len(sizeHex) == 0 || len(sizeHex) > 16 {
		c.err = c.malformed("chunk size " + quote(string(sizeHex)) + " is not 1 to 16 hex digits")
		return
	}
	usize, perr := strconv.ParseUint(string(sizeHex), 16, 64)
	if perr != nil {
		c.err = c.malformed("chunk size " + quote(string(sizeHex)) + " is not hex")
		return
	}
	if usize > uint64(c.maxChunk) {
		c.err = newError(InvalidChunkSizeError, fmt.Sprintf("Chunk size %d exceeds the maximum of %d bytes.", usize, c.maxChunk),
			fmt.Sprintf("chunk %d is %d bytes, more than the %d allowed", c.index, usize, c.maxChunk))
		return
	}
	size := int64(usize)
	if c.signed {
		sig, ok := bytes.CutPrefix(ext, []byte(chunkSigExtension))
		if !hasExt || !ok {
			c.err = c.malformed("header has no chunk-signature")
			return
		}
		if len(sig) != 64 {
			c.err = newError(SignatureDoesNotMatch, msgSignatureDoesNotMatch, fmt.Sprintf("chunk %d signature is not 64 hex digits", c.index))
			return
		}
		if _, err := hex.Decode(c.sent[:], sig); err != nil {
			c.err = newError(SignatureDoesNotMatch, msgSignatureDoesNotMatch, fmt.Sprintf("chunk %d signature is not hex", c.index))
			return
		}
	} else if hasExt {
		c.err = c.malformed("an unsigned chunk has an extension")
		return
	}
	if size > 0 && c.lastSize >= 0 && c.lastSize < minChunkSize {
		c.err = newError(InvalidChunkSizeError, msgChunkTooSmall,
			fmt.Sprintf("chunk %d is %d bytes and is not the last", c.index-1, c.lastSize),
			Field{"Chunk", itoa(c.index - 1)}, Field{"BadChunkSize", strconv.FormatInt(c.lastSize, 10)})
		return
	}
	if c.want >= 0 && c.decoded+size > c.want {
		c.err = newError(InvalidRequest, "The aws-chunked body is longer than its x-amz-decoded-content-length.",
			fmt.Sprintf("chunk %d brings the body past the declared x-amz-decoded-content-length of %d bytes", c.index, c.want))
		return
	}
	if c.signed {
		c.chunkHash.Reset()
	}
	if size == 0 {
		if c.signed && !c.checkChunkSignature() {
			return
		}
		c.readTrailer()
		return
	}
	c.lastSize, c.remaining, c.inChunk = size, size, true
}

// endChunk reads the CRLF after a chunk's data and checks its signature.
func (c *chunkedReader) endChunk() {
	c.inChunk = false
	for _, want := range []byte("\r\n") {
		b, err := c.br.ReadByte()
		if err != nil {
			c.err = c.readError(err, "data")
			return
		}
		if b != want {
			c.err = c.malformed("data is not followed by CRLF")
			return
		}
	}
	if c.signed {
		c.checkChunkSignature()
	}
}

// checkChunkSignature checks the current chunk's signature against its
// data and moves the chain on.
func (c *chunkedReader) checkChunkSignature() bool {
	var sum [32]byte
	c.chunkHash.Sum(sum[:0])
	b := append(c.scratch[:0], c.prefix...)
	b = hex.AppendEncode(b, c.prev[:])
	b = append(b, "\n"+emptySHA256+"\n"...)
	b = hex.AppendEncode(b, sum[:])
	if !c.sign(b) {
		c.err = newError(SignatureDoesNotMatch, msgSignatureDoesNotMatch,
			fmt.Sprintf("chunk %d signature does not match its data and the signatures before it", c.index))
		return false
	}
	return true
}

// sign computes the HMAC of a string to sign, compares it in constant
// time with the one sent, and on a match makes it the previous signature.
func (c *chunkedReader) sign(sts []byte) bool {
	c.mac.Reset()
	c.mac.Write(sts)
	var got [32]byte
	c.mac.Sum(got[:0])
	if !hmac.Equal(got[:], c.sent[:]) {
		return false
	}
	c.prev = got
	return true
}

// readTrailer reads what follows the final chunk to the end of the body:
// the trailing headers, if the mode has them, and blank lines.
func (c *chunkedReader) readTrailer() {
	trailerErr := func(detail string) {
		c.err = newError(MalformedTrailerError, msgMalformedTrailer, detail)
	}
	var canon strings.Builder
	var sig string
	sigSeen := false
	total := 0
	var long []byte // the start of a line longer than the read-ahead
	for {
		line, err := c.br.ReadSlice('\n')
		total += len(line)
		if total > c.maxTrailer {
			trailerErr("the trailer is longer than " + itoa(c.maxTrailer) + " bytes")
			return
		}
		if err == bufio.ErrBufferFull {
			long = append(long, line...)
			continue
		}
		if long != nil {
			line, long = append(long, line...), nil
		}
		if err != nil && err != io.EOF {
			c.err = bodyError(err)
			return
		}
		text := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		if strings.TrimSpace(text) != "" {
			if !c.trailer {
				trailerErr("data follows the final chunk of a body that has no trailer")
				return
			}
			name, value, ok := strings.Cut(text, ":")
			if !ok {
				trailerErr("trailer line " + quote(text) + " is not name:value")
				return
			}
			name, value = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)
			switch {
			case sigSeen:
				trailerErr("trailer " + quote(name) + " follows x-amz-trailer-signature")
				return
			case name == "x-amz-trailer-signature":
				if !c.signedTrailer {
					trailerErr("x-amz-trailer-signature in an unsigned trailer")
					return
				}
				sig, sigSeen = value, true
			default:
				if e := c.trailerValue(name, value); e != nil {
					c.err = e
					return
				}
				canon.WriteString(name + ":" + value + "\n")
			}
		}
		if err == io.EOF {
			break
		}
	}
	for _, d := range c.trailers {
		if d.want == nil {
			trailerErr("x-amz-trailer declares " + d.alg.header + " but the trailer does not carry it")
			return
		}
	}
	if c.signedTrailer {
		if !sigSeen || len(sig) != 64 {
			c.err = newError(SignatureDoesNotMatch, msgSignatureDoesNotMatch, "the trailer has no x-amz-trailer-signature of 64 hex digits")
			return
		}
		if _, err := hex.Decode(c.sent[:], []byte(sig)); err != nil {
			c.err = newError(SignatureDoesNotMatch, msgSignatureDoesNotMatch, "x-amz-trailer-signature is not hex")
			return
		}
		sum := sha256.Sum256([]byte(canon.String()))
		b := append(c.scratch[:0], c.tprefix...)
		b = hex.AppendEncode(b, c.prev[:])
		b = append(b, '\n')
		b = hex.AppendEncode(b, sum[:])
		if !c.sign(b) {
			c.err = newError(SignatureDoesNotMatch, msgSignatureDoesNotMatch, "the trailer signature does not match the trailer and the chunk signatures before it")
			return
		}
	}
	if c.want >= 0 && c.decoded != c.want {
		c.err = newError(IncompleteBody, msgIncompleteBody,
			fmt.Sprintf("the aws-chunked body decoded to %d bytes; x-amz-decoded-content-length is %d", c.decoded, c.want))
		return
	}
	c.err = io.EOF
}

// trailerValue records the value of a trailing checksum.
func (c *chunkedReader) trailerValue(name, value string) *Error {
	for _, d := range c.trailers {
		if d.alg.header != name {
			continue
		}
		if d.want != nil {
			return newError(MalformedTrailerError, msgMalformedTrailer, "the trailer repeats "+name)
		}
		want, ok := decodeDigest(d.alg, value)
		if !ok {
			return newError(InvalidRequest, "Value for "+name+" trailing header is invalid.",
				name+" trailer must be one base64-encoded "+itoa(d.alg.size)+"-byte digest")
		}
		d.want, d.encoded = want, value
		return nil
	}
	return newError(MalformedTrailerError, msgMalformedTrailer, "the trailer carries "+quote(name)+", which x-amz-trailer does not declare")
}
