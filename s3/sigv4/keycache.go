package sigv4

import (
	"crypto/sha256"
	"sync"
)

// KeyCache remembers derived signing keys so that a busy client costs one
// hash and a map look-up per request instead of four HMACs. A signing key
// is good for one secret, one day and one region; entries are found by a
// SHA-256 of the three, so the cache holds neither secrets nor access keys
// as map keys. It holds at most its size in entries and forgets an
// arbitrary one when full. It is safe for concurrent use.
type KeyCache struct {
	mu   sync.Mutex
	max  int
	keys map[[32]byte][32]byte
}

// NewKeyCache returns a cache of at most size signing keys. A size below
// one is taken as one.
func NewKeyCache(size int) *KeyCache {
	return &KeyCache{max: max(size, 1), keys: make(map[[32]byte][32]byte)}
}

// Len reports how many keys the cache holds.
func (c *KeyCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys)
}

// signingKey returns the signing key for secret, date (YYYYMMDD) and region,
// from the cache when it can. A nil cache derives every time.
func (c *KeyCache) signingKey(secret, date, region string) [32]byte {
	if c == nil {
		return deriveKey(secret, date, region)
	}
	h := sha256.New()
	// Each part is length-prefixed so that no two triples collide.
	for _, s := range [...]string{secret, date, region} {
		n := len(s)
		h.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		h.Write([]byte(s))
	}
	id := [32]byte(h.Sum(nil))
	c.mu.Lock()
	k, ok := c.keys[id]
	c.mu.Unlock()
	if ok {
		return k
	}
	k = deriveKey(secret, date, region)
	c.mu.Lock()
	if len(c.keys) >= c.max {
		for old := range c.keys {
			delete(c.keys, old)
			break
		}
	}
	c.keys[id] = k
	c.mu.Unlock()
	return k
}
