package custody

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
)

// Listing tokens: the S3 front end hands out where a listing stopped as an
// opaque token (the position may name an object the caller may not see).
// The keyring seals them under keys derived from the root, so tokens survive
// a restart and are the same on every gateway of a node.

// ErrBadToken: a token did not open (forged, altered, or sealed under
// another root).
var ErrBadToken = errors.New("custody: token does not open")

// Since the twentieth pass each token is sealed under a key of its own,
// derived from the root with a random 16-byte salt the token carries
// (tokenVersion || salt || AES-256-GCM with a zero nonce): no key seals
// more than one message, so no nonce can repeat, and the token key needs
// no count (see SealCounter). Tokens of the form before, nonce || sealed
// under the one "listing-token" key, still open.
const (
	tokenVersion = 2
	tokenSalt    = 16
)

// tokenAEAD derives the key of the token with salt (nil: the key of
// tokens made before, "listing-token").
func (k *Keyring) tokenAEAD(salt []byte) (cipher.AEAD, error) {
	info := "listing-token"
	if salt != nil {
		info = "listing-token/v2\x00" + string(salt)
	}
	key, err := k.root.derive(info, 32)
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

var tokenAAD = []byte("embassy listing token v1")

// SealToken encrypts and authenticates plain into a token only this node
// can open.
func (k *Keyring) SealToken(plain []byte) ([]byte, error) {
	out := make([]byte, 1+tokenSalt, 1+tokenSalt+len(plain)+16)
	out[0] = tokenVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	a, err := k.tokenAEAD(out[1 : 1+tokenSalt])
	if err != nil {
		return nil, err
	}
	return a.Seal(out, make([]byte, a.NonceSize()), plain, tokenAAD), nil
}

// OpenToken returns what SealToken sealed, or ErrBadToken.
func (k *Keyring) OpenToken(token []byte) ([]byte, error) {
	if len(token) >= 1+tokenSalt+16 && token[0] == tokenVersion {
		a, err := k.tokenAEAD(token[1 : 1+tokenSalt])
		if err != nil {
			return nil, err
		}
		if p, err := a.Open(nil, make([]byte, a.NonceSize()), token[1+tokenSalt:], tokenAAD); err == nil {
			return p, nil
		}
		// A token of the form before whose nonce begins with the
		// version byte: tried below.
	}
	a, err := k.tokenAEAD(nil)
	if err != nil {
		return nil, err
	}
	if len(token) < a.NonceSize()+a.Overhead() {
		return nil, ErrBadToken
	}
	p, err := a.Open(nil, token[:a.NonceSize()], token[a.NonceSize():], tokenAAD)
	if err != nil {
		return nil, ErrBadToken
	}
	return p, nil
}

// sealTokenV1 seals a token of the form before the twentieth pass (tests).
func (k *Keyring) sealTokenV1(plain []byte) ([]byte, error) {
	a, err := k.tokenAEAD(nil)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	rand.Read(nonce)
	return a.Seal(nonce, nonce, plain, tokenAAD), nil
}
