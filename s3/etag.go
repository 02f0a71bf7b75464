package s3

import (
	"crypto/md5"
	"encoding/hex"
	"hash"
)

// The ETag of a single PUT or of a part is the MD5 of its bytes, the
// largest single cost of a large PUT (a third of the server's CPU in the
// profiles of docs/design.md, issue 15). It is crypto/md5's, one hash a
// body on the engine's hashing goroutine.
//
// md5-simd (github.com/minio/md5-simd v1.1.2, bodies hashed side by side
// in the lanes of one AVX2 or AVX-512 core) was used when four or more
// large bodies were hashed at once, and is not any more: its scalar path
// (blockScalar, taken whenever fewer than three lanes have data) uses BP
// as a general register in a frameless assembly function, so the
// execution tracer's frame-pointer unwinding crashed the node (SIGSEGV in
// runtime.fpTracebackPCs) when an operator took a trace during large PUTs
// (TestETagHashUnderTracer). Nor did it save CPU at the concurrency where
// it was used: BenchmarkETagMD5 on the 2-core machine of issue 15, CPU-ns
// a byte, crypto/md5 / md5-simd, streams that also read their next stripe
// between writes (as the server's do, so that lanes are not all filled in
// step): 2 streams 2.23 / 2.99, 4: 2.31 / 2.32, 8: 2.69 / 1.59, 16: 2.29
// / 1.37 (a SHA-256 pass over the same bytes included in both).

// etagHash is the MD5 of one body, for its ETag.
type etagHash struct{ hash.Hash }

// newETagHash returns the hash of a body for its ETag: feed it the body
// (Reset starts it again, for a body read again from its start), then
// call etag.
func newETagHash() *etagHash { return &etagHash{md5.New()} }

// etag returns the quoted hex MD5 of what was written.
func (h *etagHash) etag() string { return "\"" + hex.EncodeToString(h.Sum(nil)) + "\"" }
