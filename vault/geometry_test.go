package vault

import (
	"testing"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/manifest"
)

// TestGeometry: block sizes, the stride of a shard blob and the blob's
// size, for both block checksum algorithms, as docs/storage-format.md
// gives them ("Shard blobs"): with c the checksum size (16 for XXH3-128,
// 32 for BLAKE3-256), stride = ceil((S+16)/k) + c and blob size =
// (n-1)·stride + ceil((P-(n-1)·S+16)/k) + c.
func TestGeometry(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name                 string
		k, m, stripe         int
		size                 int64
		sum                  erasure.Checksum
		stride, last, blob   int64
		stripes, shardOfLast int64
	}{
		// 4+2, 1 MiB stripes, 3 MiB + 5: ceil((1 MiB+16)/4) = 262148;
		// the last stripe holds 5 bytes: ceil(21/4) = 6.
		{"xxh3 4+2 3MiB+5", 4, 2, mib, 3*mib + 5, erasure.XXH3, 262148 + 16, 6 + 16, 3*(262148+16) + 6 + 16, 4, 6},
		{"blake3 4+2 3MiB+5", 4, 2, mib, 3*mib + 5, erasure.BLAKE3, 262148 + 32, 6 + 32, 3*(262148+32) + 6 + 32, 4, 6},
		// Exactly two stripes: the last block is a full one.
		{"xxh3 4+2 2 stripes", 4, 2, mib, 2 * mib, erasure.XXH3, 262164, 262164, 2 * 262164, 2, 262148},
		{"blake3 4+2 2 stripes", 4, 2, mib, 2 * mib, erasure.BLAKE3, 262180, 262180, 2 * 262180, 2, 262148},
		// An empty part has one stripe of the tag alone: ceil(16/4) = 4.
		{"xxh3 empty", 4, 2, 4096, 0, erasure.XXH3, 1028 + 16, 4 + 16, 4 + 16, 1, 4},
		{"blake3 empty", 4, 2, 4096, 0, erasure.BLAKE3, 1028 + 32, 4 + 32, 4 + 32, 1, 4},
		// k = 1: a shard is the whole sealed stripe.
		{"xxh3 1+0", 1, 0, 4096, 4097, erasure.XXH3, 4112 + 16, 17 + 16, 4112 + 16 + 17 + 16, 2, 17},
		{"blake3 1+0", 1, 0, 4096, 4097, erasure.BLAKE3, 4112 + 32, 17 + 32, 4112 + 32 + 17 + 32, 2, 17},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &manifest.Manifest{K: tc.k, M: tc.m, StripeSize: tc.stripe}
			g := partGeometry(m, manifest.Part{Size: tc.size, BlockSum: tc.sum})
			n := g.stripes()
			if n != tc.stripes {
				t.Fatalf("%d stripes, want %d", n, tc.stripes)
			}
			if got := g.blockStride(); got != tc.stride {
				t.Errorf("stride %d, want %d", got, tc.stride)
			}
			if got := g.shardSize(n - 1); int64(got) != tc.shardOfLast {
				t.Errorf("last shard %d bytes, want %d", got, tc.shardOfLast)
			}
			if got := g.blockSize(n - 1); int64(got) != tc.last {
				t.Errorf("last block %d bytes, want %d", got, tc.last)
			}
			if got := g.blobSize(); got != tc.blob {
				t.Errorf("blob %d bytes, want %d", got, tc.blob)
			}
			if got := ShardBlobSize(m, manifest.Part{Size: tc.size, BlockSum: tc.sum}); got != tc.blob {
				t.Errorf("ShardBlobSize %d, want %d", got, tc.blob)
			}
			// Every full block is one stride long.
			if n > 1 && int64(g.blockSize(0)) != g.blockStride() {
				t.Errorf("a full block is %d bytes, the stride %d", g.blockSize(0), g.blockStride())
			}
		})
	}
}
