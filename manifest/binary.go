package manifest

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/erasure"
)

// The compact encoding (format 2) of a manifest: the envelope plaintext
// written since format 2. It carries the same fields as format 1's JSON
// in a fixed order, so that a small object's manifest takes about a third
// of the bytes: the index holds one envelope per version, and its size is
// what an index costs (docs/design.md, "The index").
//
// uvarint and varint are Go's encoding/binary forms; str and bytes are a
// uvarint length and that many bytes; id is 16 bytes; BE64 is 8 bytes.
//
//	flags        uvarint  bit 0 delete marker, 1 journaled, 2 lock, 3 label
//	                      binding present
//	node         str
//	vault        str
//	key          str
//	version      id
//	created      BE64     Unix nanoseconds, two's complement
//	size         uvarint
//	digest       bytes
//	etag         etag     (below)
//	content type str
//	meta         map
//	label        str
//	label bind.  bytes    only with flag 3
//	k, m         uvarint, uvarint
//	stripe size  uvarint
//	key gen      uvarint
//	parts        uvarint count, then each part (below)
//	copies       uvarint count, then each a str
//	lock         only with flag 2: mode str, until (varint seconds and
//	             uvarint nanoseconds since 1970 UTC, or 0 and 0 for none),
//	             legal hold (one byte, 0 or 1)
//	checksums    map
//	revision     uvarint
//
// A part: flags (uvarint: bit 0 inline, 1 digest equal to the manifest's,
// 2 digest present, 3 block checksum algorithm present), number, size,
// etag, blob (id), sites (uvarint count, then each a str), digest (bytes,
// only with flag 2), key gen (uvarint), wrapped key (bytes), checksums
// (map), block checksum algorithm (uvarint, only with flag 3, never 0:
// without the flag the part's blocks carry BLAKE3 checksums).
//
// A map is a uvarint count, then that many str key and str value pairs,
// keys strictly increasing. An etag is one byte of kind, then: kind 0, a
// str (any ETag, "" for none); kind 1, 16 bytes d, for the ETag `"` hex(d)
// `"`; kind 2, 16 bytes d and a uvarint n, for `"` hex(d) `-` n `"`.
//
// Decoding is strict, like format 1's: unknown flag bits, a map out of
// order, a length past the end, an integer out of range, or bytes left
// over are refused, and Validate runs on the result. It is also canonical:
// a varint longer than it needs to be, an MD5 ETag written as a string, or
// a part digest written out though equal to the manifest's are refused, so
// that a manifest has exactly one encoding (FuzzDecodeBinary checks that
// what decodes encodes back to the same bytes).

// Bits of the manifest's flags.
const (
	binDeleteMarker = 1 << iota
	binJournaled
	binLock
	binBinding
	binKnown = binDeleteMarker | binJournaled | binLock | binBinding
)

// Bits of a part's flags.
const (
	binInline = 1 << iota
	binSameDigest
	binDigest
	binBlockSum
	binPartKnown = binInline | binSameDigest | binDigest | binBlockSum
)

// ETag kinds.
const (
	etagString = iota
	etagMD5
	etagMultipart
)

// encodeBinary returns m in the compact encoding. It refuses negative
// numbers, which the encoding cannot hold.
func encodeBinary(m *Manifest) ([]byte, error) {
	small := func(vs ...int) bool {
		for _, v := range vs {
			if v < 0 || v > math.MaxInt32 {
				return false
			}
		}
		return true
	}
	if m.Size < 0 || !small(m.K, m.M, m.StripeSize, m.KeyGen, m.Revision) {
		return nil, errors.New("manifest: size, coding, stripe size, key generation or revision out of range")
	}
	for _, p := range m.Parts {
		if p.Size < 0 || !small(p.Number, p.KeyGen) {
			return nil, fmt.Errorf("manifest: part %d: number, size or key generation out of range", p.Number)
		}
	}
	b := make([]byte, 0, 256+len(m.LabelBinding)+len(m.Parts)*128)
	var flags uint64
	if m.DeleteMarker {
		flags |= binDeleteMarker
	}
	if m.Journaled {
		flags |= binJournaled
	}
	if m.Lock != nil {
		flags |= binLock
	}
	if len(m.LabelBinding) > 0 {
		flags |= binBinding
	}
	b = binary.AppendUvarint(b, flags)
	b = appendStr(b, m.Node)
	b = appendStr(b, m.Vault)
	b = appendStr(b, m.Key)
	b = append(b, m.Version[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Created))
	b = binary.AppendUvarint(b, uint64(m.Size))
	b = appendStr(b, string(m.Digest))
	b = appendETag(b, m.ETag)
	b = appendStr(b, m.ContentType)
	b = appendMap(b, m.Meta)
	b = appendStr(b, m.Label)
	if flags&binBinding != 0 {
		b = appendStr(b, string(m.LabelBinding))
	}
	b = binary.AppendUvarint(b, uint64(m.K))
	b = binary.AppendUvarint(b, uint64(m.M))
	b = binary.AppendUvarint(b, uint64(m.StripeSize))
	b = binary.AppendUvarint(b, uint64(m.KeyGen))
	b = binary.AppendUvarint(b, uint64(len(m.Parts)))
	for _, p := range m.Parts {
		var pf uint64
		if p.Inline {
			pf |= binInline
		}
		switch {
		case len(p.Digest) == 0:
		case bytes.Equal(p.Digest, m.Digest):
			pf |= binSameDigest
		default:
			pf |= binDigest
		}
		if p.BlockSum != erasure.BLAKE3 {
			pf |= binBlockSum
		}
		b = binary.AppendUvarint(b, pf)
		b = binary.AppendUvarint(b, uint64(p.Number))
		b = binary.AppendUvarint(b, uint64(p.Size))
		b = appendETag(b, p.ETag)
		b = append(b, p.Blob[:]...)
		b = binary.AppendUvarint(b, uint64(len(p.Sites)))
		for _, s := range p.Sites {
			b = appendStr(b, s)
		}
		if pf&binDigest != 0 {
			b = appendStr(b, string(p.Digest))
		}
		b = binary.AppendUvarint(b, uint64(p.KeyGen))
		b = appendStr(b, string(p.WrappedKey))
		b = appendMap(b, p.Checksums)
		if pf&binBlockSum != 0 {
			b = binary.AppendUvarint(b, uint64(p.BlockSum))
		}
	}
	b = binary.AppendUvarint(b, uint64(len(m.Copies)))
	for _, s := range m.Copies {
		b = appendStr(b, s)
	}
	if l := m.Lock; l != nil {
		b = appendStr(b, l.Mode)
		var s int64
		var ns uint64
		if !l.Until.IsZero() {
			s, ns = l.Until.Unix(), uint64(l.Until.Nanosecond())
		}
		b = binary.AppendVarint(b, s)
		b = binary.AppendUvarint(b, ns)
		if l.LegalHold {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	b = appendMap(b, m.Checksums)
	return binary.AppendUvarint(b, uint64(m.Revision)), nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendMap(b []byte, m map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b = appendStr(b, k)
		b = appendStr(b, m[k])
	}
	return b
}

// AppendETag appends etag in the compact encoding's ETag form (the
// shortest kind that gives back exactly etag); ReadETag reads it back.
func AppendETag(b []byte, etag string) []byte { return appendETag(b, etag) }

// ReadETag reads an ETag written by AppendETag from the start of b and
// returns it with the rest of b.
func ReadETag(b []byte) (etag string, rest []byte, err error) {
	r := &binReader{b: b}
	etag = r.etag("etag")
	return etag, r.b, r.err
}

// SkipETag checks the ETag AppendETag wrote at the start of b as ReadETag
// does, failing exactly where it fails, and returns the rest of b without
// building the ETag's string.
func SkipETag(b []byte) (rest []byte, err error) {
	r := &binReader{b: b}
	r.etagParts("etag")
	return r.b, r.err
}

func appendETag(b []byte, etag string) []byte {
	if inner, ok := strings.CutPrefix(etag, `"`); ok && len(etag) >= 34 {
		inner = strings.TrimSuffix(inner, `"`)
		if len(inner) == len(etag)-2 {
			d, n, ok := parseMD5ETag(inner)
			if ok && formatETag(d, n) == etag {
				if n == 0 {
					return append(append(b, etagMD5), d[:]...)
				}
				b = append(append(b, etagMultipart), d[:]...)
				return binary.AppendUvarint(b, n)
			}
		}
	}
	return appendStr(append(b, etagString), etag)
}

// parseMD5ETag parses hex(d) or hex(d)-n (n ≥ 1).
func parseMD5ETag(s string) (d [16]byte, n uint64, ok bool) {
	h, count, multi := strings.Cut(s, "-")
	if len(h) != 32 {
		return d, 0, false
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, 0, false
	}
	if multi {
		v, err := strconv.ParseUint(count, 10, 64)
		if err != nil || v == 0 {
			return d, 0, false
		}
		n = v
	}
	return d, n, true
}

func formatETag(d [16]byte, n uint64) string {
	// Built in place: one allocation, the string's (listings decode an
	// ETag per key).
	var buf [1 + 32 + 1 + 20 + 1]byte
	return string(appendETagText(buf[:0], d, n))
}

// appendETagText appends formatETag(d, n) to b.
func appendETagText(b []byte, d [16]byte, n uint64) []byte {
	b = append(b, '"')
	b = hex.AppendEncode(b, d[:])
	if n != 0 {
		b = strconv.AppendUint(append(b, '-'), n, 10)
	}
	return append(b, '"')
}

// AppendETagText is ReadETag appending the ETag's text to dst instead of
// returning a string of its own (a listing builds one string holding a
// key and its ETag). It fails exactly where ReadETag fails; what it
// appends then is undefined.
func AppendETagText(dst, b []byte) (out, rest []byte, err error) {
	r := &binReader{b: b}
	p := r.etagParts("etag")
	return p.appendText(dst), r.b, r.err
}

// binReader reads the compact encoding; the first error sticks.
type binReader struct {
	b   []byte
	err error
}

func (r *binReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: decode: %s", ErrCorrupt, what)
	}
}

// uvarint reads a uvarint of at most max in its shortest form (a longer
// one would be a second encoding of the same manifest).
func (r *binReader) uvarint(what string, max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > max || n != uvarintLen(v) {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varint reads a varint in its shortest form.
func (r *binReader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || n != len(binary.AppendVarint(nil, v)) {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

func (r *binReader) int(what string) int { return int(r.uvarint(what, math.MaxInt32)) }

func (r *binReader) fixed(what string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail(what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *binReader) bytes(what string) []byte {
	n := r.uvarint(what, uint64(len(r.b)))
	if r.err != nil {
		return nil
	}
	return slices.Clone(r.fixed(what, int(n)))
}

// optBytes is bytes, nil when empty (as format 1's omitempty gives).
func (r *binReader) optBytes(what string) []byte {
	if b := r.bytes(what); len(b) > 0 {
		return b
	}
	return nil
}

func (r *binReader) str(what string) string {
	return string(r.fixed(what, int(r.uvarint(what, uint64(len(r.b))))))
}

func (r *binReader) id(what string) (id ID) {
	copy(id[:], r.fixed(what, 16))
	return id
}

func (r *binReader) strMap(what string) map[string]string {
	n := r.uvarint(what, uint64(len(r.b))/2)
	if r.err != nil || n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	prev := ""
	for i := range n {
		k, v := r.str(what), r.str(what)
		if r.err != nil {
			return nil
		}
		if i > 0 && k <= prev {
			r.fail(what + ": keys out of order")
			return nil
		}
		m[k], prev = v, k
	}
	return m
}

func (r *binReader) etag(what string) string {
	p := r.etagParts(what)
	if p.md5 {
		return formatETag(p.d, p.n)
	}
	return string(p.text)
}

// etagParts is an ETag as AppendETag wrote it: the text of one kept as a
// string, or the digest and part count (0: not multipart) of an MD5 one.
type etagParts struct {
	text []byte // points into what was read
	md5  bool
	d    [16]byte
	n    uint64
}

// etagParts reads and checks an ETag AppendETag wrote: the one decoder
// behind ReadETag, SkipETag and AppendETagText, so that they fail alike.
func (r *binReader) etagParts(what string) (p etagParts) {
	switch kind := r.fixed(what, 1); {
	case kind == nil:
	case kind[0] == etagString:
		p.text = r.fixed(what, int(r.uvarint(what, uint64(len(r.b)))))
		if r.err == nil && appendETag(nil, string(p.text))[0] != etagString {
			r.fail(what + ": an MD5 ETag written as a string")
		}
	case kind[0] == etagMD5:
		p.md5 = true
		copy(p.d[:], r.fixed(what, 16))
	case kind[0] == etagMultipart:
		p.md5 = true
		copy(p.d[:], r.fixed(what, 16))
		if p.n = r.uvarint(what, math.MaxUint64); p.n == 0 {
			r.fail(what)
		}
	default:
		r.fail(what + ": unknown kind")
	}
	return p
}

// appendText appends the ETag's text to dst.
func (p etagParts) appendText(dst []byte) []byte {
	if p.md5 {
		return appendETagText(dst, p.d, p.n)
	}
	return append(dst, p.text...)
}

// decodeBinary parses and validates a manifest in the compact encoding.
func decodeBinary(plain []byte) (*Manifest, error) {
	r := &binReader{b: plain}
	m := &Manifest{Format: FormatCompact}
	flags := r.uvarint("flags", math.MaxUint64)
	if flags&^binKnown != 0 {
		r.fail("unknown flags")
	}
	m.DeleteMarker, m.Journaled = flags&binDeleteMarker != 0, flags&binJournaled != 0
	m.Node = r.str("node")
	m.Vault = r.str("vault")
	m.Key = r.str("key")
	m.Version = r.id("version")
	if c := r.fixed("created", 8); c != nil {
		m.Created = int64(binary.BigEndian.Uint64(c))
	}
	m.Size = int64(r.uvarint("size", math.MaxInt64))
	m.Digest = r.optBytes("digest")
	m.ETag = r.etag("etag")
	m.ContentType = r.str("content type")
	m.Meta = r.strMap("meta")
	m.Label = r.str("label")
	if flags&binBinding != 0 {
		if m.LabelBinding = r.optBytes("label binding"); m.LabelBinding == nil {
			r.fail("empty label binding")
		}
	}
	m.K, m.M = r.int("k"), r.int("m")
	m.StripeSize = r.int("stripe size")
	m.KeyGen = r.int("key gen")
	parts := r.uvarint("parts", MaxParts)
	for range parts {
		if r.err != nil {
			break
		}
		var p Part
		pf := r.uvarint("part flags", math.MaxUint64)
		if pf&^binPartKnown != 0 || pf&binSameDigest != 0 && pf&binDigest != 0 {
			r.fail("unknown part flags")
		}
		p.Inline = pf&binInline != 0
		p.Number = r.int("part number")
		p.Size = int64(r.uvarint("part size", math.MaxInt64))
		p.ETag = r.etag("part etag")
		p.Blob = r.id("part blob")
		sites := r.uvarint("part sites", 64)
		for range sites {
			p.Sites = append(p.Sites, r.str("part site"))
		}
		switch {
		case pf&binSameDigest != 0:
			if len(m.Digest) == 0 {
				r.fail("part digest refers to a missing digest")
			}
			p.Digest = slices.Clone(m.Digest)
		case pf&binDigest != 0:
			p.Digest = r.bytes("part digest")
			if r.err == nil && (len(p.Digest) == 0 || bytes.Equal(p.Digest, m.Digest)) {
				r.fail("part digest empty or written out though equal to the manifest's")
			}
		}
		p.KeyGen = r.int("part key gen")
		p.WrappedKey = r.bytes("wrapped key")
		p.Checksums = r.strMap("part checksums")
		if pf&binBlockSum != 0 {
			switch v := r.uvarint("part block checksum", math.MaxUint64); {
			case r.err != nil:
			case v == 0:
				r.fail("part block checksum: BLAKE3 written out")
			case v > math.MaxUint8 || !erasure.Checksum(v).Known():
				r.err = fmt.Errorf("%w: decode: part %d: %w %d (written by a newer node?)", ErrCorrupt, p.Number, erasure.ErrUnknownChecksum, v)
			default:
				p.BlockSum = erasure.Checksum(v)
			}
		}
		m.Parts = append(m.Parts, p)
	}
	copies := r.uvarint("copies", uint64(len(r.b)))
	for range copies {
		m.Copies = append(m.Copies, r.str("copy"))
	}
	if flags&binLock != 0 {
		l := &Lock{Mode: r.str("lock mode")}
		s := r.varint("lock until")
		ns := r.uvarint("lock until", 999_999_999)
		if s != 0 || ns != 0 {
			l.Until = time.Unix(s, int64(ns)).UTC()
		}
		switch h := r.fixed("legal hold", 1); {
		case h == nil:
		case h[0] == 0:
		case h[0] == 1:
			l.LegalHold = true
		default:
			r.fail("legal hold")
		}
		m.Lock = l
	}
	m.Checksums = r.strMap("checksums")
	m.Revision = r.int("revision")
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) > 0 {
		return nil, fmt.Errorf("%w: trailing data after manifest", ErrCorrupt)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return m, nil
}
