// Package shamir owns Shamir secret sharing for embassy's custody: splitting a
// secret (the node's root key) into shares for custodians, and recovering it
// from enough of them.
//
// # Two layers
//
// Split and Combine are plain threshold sharing over GF(2^8): each byte of
// the secret is the constant term of its own random polynomial of degree
// t-1, and a share is the value of every polynomial at one non-zero x. Any t
// shares recover the secret; t-1 shares say nothing about it. Combine cannot
// know t, so too few shares, foreign shares or a corrupt share silently yield
// a wrong secret.
//
// SplitSet and CombineSet (or Set.Combine) add what custody needs on top: every
// share carries a Set, which names the split with a random 16-byte id, states
// its threshold t and size n, and commits to the secret with
//
//	HMAC-SHA256(key = secret, "embassy shamir commitment v1" || id || t || n)
//
// so that combining reports "need 3 shares, have 2", "share 4 belongs to
// another share set", or a commitment mismatch (naming the disagreeing shares
// when there are spares), and never returns a wrong secret. Because the
// commitment lets whoever holds a share test guesses of the secret, a set's
// secret must be at least 16 bytes: a key, not a password.
//
// # Arithmetic
//
// The field is GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1 (0x11b).
// Multiplication is a carry-less shift-and-add loop with masks and inversion
// is exponentiation to the 254th power, so no operation branches on or
// indexes memory by secret data. Shares are made with x = 1..n and the
// polynomial coefficients come from crypto/rand.
//
// # Encoding of a share
//
// SetShare.MarshalBinary writes version 1, all integers big-endian:
//
//	offset  size  field
//	0       1     version, 0x01
//	1       16    share-set id
//	17      1     threshold t, 2..n
//	18      1     total n, t..255
//	19      32    commitment
//	51      1     x, 1..n
//	52      2     length L of y, 16..1024
//	54      L     y, the share's value at x for each byte of the secret
//
// An encoding is exactly 54+L bytes. ParseSetShare rejects any other
// version, length or out-of-range field. The encoding is secret (y is); the
// sharefile package encrypts it for one custodian.
package shamir
