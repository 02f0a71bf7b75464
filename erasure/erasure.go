// Package erasure owns the Reed-Solomon coding of sealed stripes into shards
// and the checksums that let every shard block be verified on its own.
//
// A sealed stripe of n bytes is padded with zeros to k*s bytes, where
// s = ceil(n/k) is the shard size, split into k data shards and extended
// with m parity shards. Any k of the k+m shards reconstruct the stripe.
//
// On a site each shard block is stored as its s bytes followed by a
// checksum over the block's identity (blob, part, stripe, shard index) and
// its bytes, so bit rot, torn writes and blocks moved from elsewhere are
// detected before decoding. The checksum's algorithm is a [Checksum],
// recorded per part in the manifest: XXH3-128 for parts written now,
// BLAKE3-256 for parts written before (checksum.go).
package erasure

import (
	"errors"
	"fmt"

	"github.com/klauspost/reedsolomon"
)

// MaxShards is the largest k+m supported.
const MaxShards = 64

// Coder encodes stripes into k data and m parity shards.
// It is safe for concurrent use.
type Coder struct {
	k, m int
	enc  reedsolomon.Encoder
}

// New returns a coder for k data and m parity shards.
func New(k, m int) (*Coder, error) {
	if k < 1 || m < 0 || k+m > MaxShards {
		return nil, fmt.Errorf("erasure: invalid coding %d+%d (need k >= 1, m >= 0, k+m <= %d)", k, m, MaxShards)
	}
	c := &Coder{k: k, m: m}
	if m > 0 {
		// One goroutine: the caller's. By default the library splits a
		// shard of 256 KiB into about 16 pieces, each coded by a new
		// goroutine, and waits for them; that work is ~100 us on one
		// core (GFNI), while the engine codes many stripes at once (a
		// scrub repairs eight versions, a node serves many requests),
		// so on a loaded machine the waits for those goroutines to be
		// scheduled were what a repair spent in Reed-Solomon (3.4 s of
		// blocking for 0.1 s of CPU, repairing 1 GiB; docs/design.md).
		enc, err := reedsolomon.New(k, m, reedsolomon.WithMaxGoroutines(1))
		if err != nil {
			return nil, fmt.Errorf("erasure: %w", err)
		}
		c.enc = enc
	}
	return c, nil
}

// K returns the number of data shards.
func (c *Coder) K() int { return c.k }

// M returns the number of parity shards.
func (c *Coder) M() int { return c.m }

// ShardSize returns the size of each shard of a stripe of n sealed bytes.
func (c *Coder) ShardSize(n int) int { return (n + c.k - 1) / c.k }

// BufferSize returns the buffer size Encode needs for a stripe of n bytes.
func (c *Coder) BufferSize(n int) int { return (c.k + c.m) * c.ShardSize(n) }

// Encode splits the stripe held in buf[:n] into shards and computes parity.
// buf must have length at least BufferSize(n); the returned k+m shards
// alias buf. Bytes of buf beyond n in the data area are zeroed.
func (c *Coder) Encode(buf []byte, n int) ([][]byte, error) {
	s := c.ShardSize(n)
	total := (c.k + c.m) * s
	if len(buf) < total {
		return nil, fmt.Errorf("erasure: buffer of %d bytes, need %d", len(buf), total)
	}
	clear(buf[n : c.k*s])
	shards := make([][]byte, c.k+c.m)
	for i := range shards {
		shards[i] = buf[i*s : (i+1)*s : (i+1)*s]
	}
	if c.m > 0 && s > 0 {
		if err := c.enc.Encode(shards); err != nil {
			return nil, fmt.Errorf("erasure: encode: %w", err)
		}
	}
	return shards, nil
}

// ErrTooFewShards is returned when fewer than k shards of a stripe are
// available: the stripe cannot be read from these shards.
var ErrTooFewShards = errors.New("erasure: too few shards to reconstruct")

// ReconstructData fills in the missing (nil or zero-length) data shards.
// Missing shards must have capacity for the shard size or be nil.
func (c *Coder) ReconstructData(shards [][]byte) error {
	if len(shards) != c.k+c.m {
		return fmt.Errorf("erasure: got %d shards, want %d", len(shards), c.k+c.m)
	}
	if err := c.enough(shards); err != nil {
		return err
	}
	if c.m == 0 {
		return nil
	}
	if err := c.enc.ReconstructData(shards); err != nil {
		return fmt.Errorf("erasure: reconstruct: %w", err)
	}
	return nil
}

// enough checks that at least k of shards are present (not nil or empty).
func (c *Coder) enough(shards [][]byte) error {
	have := 0
	for _, s := range shards {
		if len(s) > 0 {
			have++
		}
	}
	if have < c.k {
		return fmt.Errorf("%w: have %d of %d needed", ErrTooFewShards, have, c.k)
	}
	return nil
}

// Reconstruct fills in every missing shard, data and parity.
func (c *Coder) Reconstruct(shards [][]byte) error {
	if err := c.ReconstructData(shards); err != nil {
		return err
	}
	if c.m == 0 {
		return nil
	}
	if err := c.enc.Reconstruct(shards); err != nil {
		return fmt.Errorf("erasure: reconstruct: %w", err)
	}
	return nil
}

// ReconstructSome fills in the missing shards marked in required (one entry
// per shard), and no others. Missing shards must have capacity for the
// shard size or be nil.
func (c *Coder) ReconstructSome(shards [][]byte, required []bool) error {
	if len(shards) != c.k+c.m || len(required) != c.k+c.m {
		return fmt.Errorf("erasure: got %d shards and %d required, want %d", len(shards), len(required), c.k+c.m)
	}
	if err := c.enough(shards); err != nil {
		return err
	}
	if c.m == 0 {
		return nil
	}
	if err := c.enc.ReconstructSome(shards, required); err != nil {
		return fmt.Errorf("erasure: reconstruct: %w", err)
	}
	return nil
}

// Join copies the first n bytes of the data shards into dst, which must be
// at least n bytes long.
func (c *Coder) Join(dst []byte, shards [][]byte, n int) error {
	off := 0
	for i := 0; i < c.k && off < n; i++ {
		if len(shards[i]) == 0 {
			return fmt.Errorf("erasure: join: data shard %d missing", i)
		}
		off += copy(dst[off:n], shards[i])
	}
	if off < n {
		return fmt.Errorf("erasure: join: shards hold %d bytes, want %d", off, n)
	}
	return nil
}
