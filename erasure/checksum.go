package erasure

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/zeebo/blake3"
	"github.com/zeebo/xxh3"
)

// Checksum is the algorithm of a part's shard block checksums. The
// manifest records it for every part (absent: BLAKE3), so parts written
// with either stay readable, and every block of one part uses the same.
//
// The checksum only locates accidental damage (bit rot, torn writes,
// misplaced blocks): it has no key, so anyone who can write to a site can
// forge it whatever the algorithm, and the stripe's AEAD tag is what
// catches that. A 128-bit non-cryptographic hash therefore keeps every
// property the checksum is relied on for, at a tenth of BLAKE3's cost.
type Checksum uint8

// The block checksum algorithms. The values are written in manifests:
// never renumber them.
const (
	// BLAKE3 is BLAKE3-256 over "EMBSHDv1" || header || shard bytes,
	// 32 bytes: parts written before XXH3 (the manifest has no field).
	BLAKE3 Checksum = 0
	// XXH3 is XXH3-128 (seed 0, canonical big-endian form) over
	// "EMBSHDv2" || header || shard bytes, 16 bytes.
	XXH3 Checksum = 1

	// Current is the algorithm new parts are written with.
	Current = XXH3
)

// MaxSumSize is the largest checksum of any algorithm.
const MaxSumSize = 32

// Known reports whether c is an algorithm this code reads.
func (c Checksum) Known() bool { return c == BLAKE3 || c == XXH3 }

// Size returns the length of c's checksum in bytes (0 for an unknown
// algorithm).
func (c Checksum) Size() int {
	switch c {
	case BLAKE3:
		return 32
	case XXH3:
		return 16
	}
	return 0
}

// String returns the algorithm's name, as written in format 1 manifests.
func (c Checksum) String() string {
	switch c {
	case BLAKE3:
		return "blake3-256"
	case XXH3:
		return "xxh3-128"
	}
	return fmt.Sprintf("checksum(%d)", uint8(c))
}

// ErrUnknownChecksum is returned for a checksum algorithm this code does
// not know (written by a newer node, or damage): nothing of such a part
// can be verified, so it is not read.
var ErrUnknownChecksum = errors.New("unknown shard block checksum algorithm")

// MarshalText implements encoding.TextMarshaler (format 1 manifests and
// multipart part records hold the name).
func (c Checksum) MarshalText() ([]byte, error) {
	if !c.Known() {
		return nil, fmt.Errorf("%w %d", ErrUnknownChecksum, uint8(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Checksum) UnmarshalText(b []byte) error {
	for _, k := range []Checksum{BLAKE3, XXH3} {
		if string(b) == k.String() {
			*c = k
			return nil
		}
	}
	return fmt.Errorf("%w %q", ErrUnknownChecksum, b)
}

// BlockID names one shard block: it is bound into the block's checksum so
// that a block copied from another stripe, shard or object fails to verify.
type BlockID struct {
	Version [16]byte // the part's blob id
	Part    uint32
	Stripe  uint64
	Shard   uint8
}

// header is the 37 bytes hashed before the shard: the algorithm's domain
// tag and the block's identity.
func (id BlockID) header(domain string) [37]byte {
	var hdr [8 + 16 + 4 + 8 + 1]byte
	copy(hdr[0:8], domain)
	copy(hdr[8:24], id.Version[:])
	binary.BigEndian.PutUint32(hdr[24:28], id.Part)
	binary.BigEndian.PutUint64(hdr[28:36], id.Stripe)
	hdr[36] = id.Shard
	return hdr
}

var (
	blake3Pool = sync.Pool{New: func() any { return blake3.New() }}
	xxh3Pool   = sync.Pool{New: func() any { return xxh3.New() }}
)

// Sum writes the checksum of a shard block into dst[:c.Size()] and
// returns that slice. dst must hold at least c.Size() bytes; c must be
// Known.
func (c Checksum) Sum(dst []byte, id BlockID, block []byte) []byte {
	switch c {
	case BLAKE3:
		h := blake3Pool.Get().(*blake3.Hasher)
		h.Reset()
		hdr := id.header("EMBSHDv1")
		h.Write(hdr[:])
		h.Write(block)
		out := h.Sum(dst[:0])
		blake3Pool.Put(h)
		return out
	case XXH3:
		h := xxh3Pool.Get().(*xxh3.Hasher)
		h.Reset()
		hdr := id.header("EMBSHDv2")
		h.Write(hdr[:])
		h.Write(block)
		sum := h.Sum128().Bytes()
		xxh3Pool.Put(h)
		return append(dst[:0], sum[:]...)
	}
	panic(fmt.Sprintf("erasure: Sum with %v", c))
}

// HeadRoom is how many bytes a buffer may keep in front of a stored block
// for VerifyIn (and in front of a block to sum, for SumIn and SumShards):
// room for the checksum's header, so that an XXH3 block is
// hashed in one pass over contiguous memory. The streaming hasher, given
// the header first, copies every byte of the block through its own buffer
// (zeebo/xxh3 hashes in place only what comes first), which cost as much
// as the hash.
const HeadRoom = 64

// VerifyIn is Verify of the stored block buf[HeadRoom:], overwriting
// buf[:HeadRoom] (scratch, whatever it held) to hash the block in place.
// It returns the data part, within buf.
func (c Checksum) VerifyIn(id BlockID, buf []byte) ([]byte, error) {
	if c != XXH3 || len(buf) < HeadRoom {
		return c.Verify(id, buf[min(len(buf), HeadRoom):])
	}
	stored := buf[HeadRoom:]
	size := c.Size()
	if len(stored) < size {
		return nil, fmt.Errorf("%w: block of %d bytes is shorter than its checksum", ErrChecksum, len(stored))
	}
	n := len(stored) - size
	hdr := id.header("EMBSHDv2")
	start := HeadRoom - len(hdr)
	copy(buf[start:HeadRoom], hdr[:])
	sum := xxh3.Hash128(buf[start : HeadRoom+n]).Bytes()
	if !bytes.Equal(sum[:], stored[n:]) {
		return nil, fmt.Errorf("%w: stripe %d shard %d", ErrChecksum, id.Stripe, id.Shard)
	}
	return stored[:n], nil
}

// SumIn is Sum of the block buf[HeadRoom:], overwriting buf[:HeadRoom]
// (scratch) to hash it in place, as VerifyIn does.
func (c Checksum) SumIn(dst []byte, id BlockID, buf []byte) []byte {
	if c != XXH3 || len(buf) < HeadRoom {
		return c.Sum(dst, id, buf[min(len(buf), HeadRoom):])
	}
	hdr := id.header("EMBSHDv2")
	start := HeadRoom - len(hdr)
	copy(buf[start:HeadRoom], hdr[:])
	sum := xxh3.Hash128(buf[start:]).Bytes()
	return append(dst[:0], sum[:]...)
}

// SumShards writes the checksums of the shards that Encode laid out one
// after another in buf[HeadRoom:], each of size bytes, into sums: shard i's
// into sums[i][:c.Size()], under id with Shard i, for each of len(sums)
// shards. It is Sum of each shard, and gives the same bytes, but hashes an
// XXH3 block in place (SumIn) with its header written into the bytes just
// before it, buf[:HeadRoom] for the first shard and the end of the shard
// before for the others; those bytes are put back as soon as the block is
// hashed. So buf holds what it held once SumShards returns, but nothing
// else may read it meanwhile. This is what keeps the put from copying
// every block through the streaming hasher, as Sum does, with the shards
// left where Encode put them: only the first needs room of its own.
func (c Checksum) SumShards(sums [][MaxSumSize]byte, id BlockID, buf []byte, size int) {
	for i := range sums {
		id.Shard = uint8(i)
		at := HeadRoom + i*size
		var saved [HeadRoom]byte
		copy(saved[:], buf[at-HeadRoom:at])
		c.SumIn(sums[i][:], id, buf[at-HeadRoom:at+size])
		copy(buf[at-HeadRoom:at], saved[:])
	}
}

// ErrChecksum is returned by Verify for a block whose checksum does not
// match: the block is corrupt and must be rebuilt from the other shards.
var ErrChecksum = errors.New("erasure: shard checksum mismatch")

// Verify checks a stored block (data followed by its checksum of c) and
// returns the data part.
func (c Checksum) Verify(id BlockID, stored []byte) ([]byte, error) {
	size := c.Size()
	if size == 0 {
		return nil, fmt.Errorf("erasure: %w %d", ErrUnknownChecksum, uint8(c))
	}
	if len(stored) < size {
		return nil, fmt.Errorf("%w: block of %d bytes is shorter than its checksum", ErrChecksum, len(stored))
	}
	data, sum := stored[:len(stored)-size], stored[len(stored)-size:]
	var want [MaxSumSize]byte
	if !bytes.Equal(c.Sum(want[:], id, data), sum) {
		return nil, fmt.Errorf("%w: stripe %d shard %d", ErrChecksum, id.Stripe, id.Shard)
	}
	return data, nil
}
