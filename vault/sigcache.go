package vault

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// sigCache remembers which manifest signatures the engine has verified, so
// that reading the same version again does not verify the same Ed25519
// signature again (a tenth of a small GET's CPU, by the server's profile).
// An entry is the SHA-256 of the exact signed bytes and signature: a hit
// means these very bytes were verified under the keys in force, so every
// read still verifies its envelope, by hash instead of by signature. It
// holds no plaintext (never a manifest, name or key): the envelope is
// still opened, and its AEAD tag checked, on every read.
//
// It is bounded: two generations of at most sigCacheSize entries each
// (about 5 MiB in all); when the newer fills, the older is dropped.
// SetKeys empties it, and a verification that started under other keys
// is not remembered.
type sigCache struct {
	mu       sync.Mutex
	gen      uint64 // of the keys the entries were verified with
	cur, old map[[sha256.Size]byte]struct{}
	max      int
}

const sigCacheSize = 1 << 16

func newSigCache(max int) *sigCache {
	return &sigCache{cur: map[[sha256.Size]byte]struct{}{}, max: max}
}

func sigKey(msg, sig []byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(msg)))
	h.Write(n[:])
	h.Write(msg)
	h.Write(sig)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// verify checks sig over msg with keys (of generation gen), unless these
// exact bytes were verified under that generation before.
func (c *sigCache) verify(keys Keys, gen uint64, msg, sig []byte) error {
	k := sigKey(msg, sig)
	c.mu.Lock()
	hit := false
	if c.gen == gen {
		_, hit = c.cur[k]
		if !hit {
			_, hit = c.old[k]
		}
	}
	c.mu.Unlock()
	if hit {
		return nil
	}
	if err := keys.Verify(msg, sig); err != nil {
		return err
	}
	c.add(gen, k)
	return nil
}

// remember records sig over msg as verified under keys of generation gen,
// for a signature the engine has just made with those keys (Sign): a read
// of these very bytes then needs no verification, as after a first read.
// It claims nothing Verify would not: the keys verify what they sign
// (TestSignedIsRemembered checks it). A put's GET right after it verified
// the signature the put had made a moment before: a sixth of a 4 KiB GET's
// CPU in the server's profile.
func (c *sigCache) remember(gen uint64, msg, sig []byte) {
	c.add(gen, sigKey(msg, sig))
}

func (c *sigCache) add(gen uint64, k [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		if gen < c.gen {
			return // verified with keys since replaced: not remembered
		}
		c.gen, c.cur, c.old = gen, map[[sha256.Size]byte]struct{}{}, nil
	}
	c.cur[k] = struct{}{}
	if len(c.cur) >= c.max {
		c.old, c.cur = c.cur, map[[sha256.Size]byte]struct{}{}
	}
}

// cachedKeys is the engine's keys with verifications, and the signatures
// they make, remembered by a sigCache.
type cachedKeys struct {
	Keys
	c   *sigCache
	gen uint64
}

func (k cachedKeys) Verify(msg, sig []byte) error {
	if k.c == nil {
		return k.Keys.Verify(msg, sig)
	}
	return k.c.verify(k.Keys, k.gen, msg, sig)
}

func (k cachedKeys) Sign(msg []byte) ([]byte, error) {
	sig, err := k.Keys.Sign(msg)
	if err == nil && k.c != nil {
		k.c.remember(k.gen, msg, sig)
	}
	return sig, err
}
