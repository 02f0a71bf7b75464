package custody

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
)

// Listing tokens: the S3 front end hands out where a listing stopped as an
// opaque token (the position may name an object the caller may not see).
// The keyring seals them under a key derived from the root ("listing-token"),
// so tokens survive a restart and are the same on every gateway of a node.

// ErrBadToken: a token did not open (forged, altered, or sealed under
// another root).
var ErrBadToken = errors.New("custody: token does not open")

// tokenAEAD derives the token key. Listings are rare next to reads, so
// the key is derived for each token rather than kept.
func (k *Keyring) tokenAEAD() (cipher.AEAD, error) {
	key, err := k.root.derive("listing-token", 32)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// SealToken encrypts and authenticates plain into a token only this node
// can open.
func (k *Keyring) SealToken(plain []byte) ([]byte, error) {
	a, err := k.tokenAEAD()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	rand.Read(nonce)
	return a.Seal(nonce, nonce, plain, []byte("embassy listing token v1")), nil
}

// OpenToken returns what SealToken sealed, or ErrBadToken.
func (k *Keyring) OpenToken(token []byte) ([]byte, error) {
	a, err := k.tokenAEAD()
	if err != nil {
		return nil, err
	}
	if len(token) < a.NonceSize()+a.Overhead() {
		return nil, ErrBadToken
	}
	p, err := a.Open(nil, token[:a.NonceSize()], token[a.NonceSize():], []byte("embassy listing token v1"))
	if err != nil {
		return nil, ErrBadToken
	}
	return p, nil
}
