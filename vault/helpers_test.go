package vault

import (
	"time"

	"github.com/embassy-dev/embassy/erasure"
	"github.com/embassy-dev/embassy/manifest"
)

func timeNow() time.Time { return time.Now() }

// forgeSum writes into dst a valid checksum of algorithm c for a tampered
// block, as an attacker with write access to a site could.
func forgeSum(c erasure.Checksum, data []byte, blob manifest.ID, part uint32, stripe uint64, shard uint8, dst []byte) {
	var s [erasure.MaxSumSize]byte
	copy(dst, c.Sum(s[:], erasure.BlockID{Version: blob, Part: part, Stripe: stripe, Shard: shard}, data))
}
