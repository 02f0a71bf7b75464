package s3

import (
	"crypto/md5"
	"encoding/hex"
	"hash"
	"sync"
	"sync/atomic"

	md5simd "github.com/minio/md5-simd"
)

// The ETag of a single PUT or of a part is the MD5 of its bytes, the
// largest single cost of a large PUT (a third of the server's CPU in the
// profiles of docs/design.md, issue 15). With several bodies hashed at
// once, md5-simd hashes them side by side in the lanes of one AVX2 or
// AVX-512 core, for less CPU a byte than crypto/md5; with one to three it
// costs more, so a body uses it only when enough others are being hashed.
// Measured on the 2-core machine of issue 15, CPU-ns a byte, crypto/md5
// against md5-simd, for 1 to 16 streams hashed at once: 1.56/1.99,
// 1.60/1.87, 1.49/1.95, 1.85/1.26, 1.85/0.82 (8), 1.69/0.52 (16).
const (
	// simdMinStreams is how many bodies must be hashed at once, this
	// one included, for it to use md5-simd.
	simdMinStreams = 4
	// simdMinSize: a smaller body (or one of unknown size: -1 is below
	// it too, so it is decided by the size it declared) uses crypto/md5,
	// whose setup costs nothing; md5-simd's costs channel round trips.
	simdMinSize = 256 << 10
)

var (
	md5Streams atomic.Int64 // bodies being hashed for their ETag
	md5Server  = sync.OnceValue(md5simd.NewServer)
)

// etagHash is the MD5 of one body, for its ETag.
type etagHash struct {
	hash.Hash
	simd     md5simd.Hasher // the same hash when it is md5-simd's
	sumOnce  func() string
	released atomic.Bool
}

// newETagHash returns the hash of a body of size bytes (-1: unknown) for
// its ETag. Feed it the body, call etag once all of it was fed, and
// release when done with it (after etag).
func newETagHash(size int64) *etagHash {
	n := md5Streams.Add(1)
	h := &etagHash{}
	if size >= simdMinSize && n >= simdMinStreams {
		h.simd = md5Server().NewHash()
		h.Hash = h.simd
	} else {
		h.Hash = md5.New()
	}
	// The engine may ask for the ETag more than once (an object placed
	// again after a site failed), and md5-simd's Sum may be taken once.
	h.sumOnce = sync.OnceValue(func() string { return "\"" + hex.EncodeToString(h.Sum(nil)) + "\"" })
	return h
}

// etag returns the quoted hex MD5 of what was written.
func (h *etagHash) etag() string { return h.sumOnce() }

// Reset starts the hash again, for a body read again from its start.
func (h *etagHash) Reset() {
	h.Hash.Reset()
	h.sumOnce = sync.OnceValue(func() string { return "\"" + hex.EncodeToString(h.Sum(nil)) + "\"" })
}

// release gives back what the hash holds (md5-simd's lane).
func (h *etagHash) release() {
	if h.released.Swap(true) {
		return
	}
	md5Streams.Add(-1)
	if h.simd != nil {
		h.simd.Close()
	}
}
