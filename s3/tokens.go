package s3

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Listing positions handed to clients. A listing shows a principal only
// what it may read, and may stop past the last thing it showed (a page of
// hidden objects ends the scan budget). Where it stopped is then a key the
// caller must not learn, so it leaves the server sealed: the v2
// continuation token always, and NextMarker, NextKeyMarker and
// NextUploadIdMarker whenever the position is not the last item returned.
// A sealed position names the listing it belongs to (the bucket, prefix,
// delimiter, kind and principal) and is refused elsewhere.

// TokenSealer seals and opens listing tokens. The node's keyring is one
// (custody.Keyring); a Server without one seals with a random key of its
// own, so its tokens do not survive a restart.
type TokenSealer interface {
	SealToken(plain []byte) ([]byte, error)
	OpenToken(token []byte) ([]byte, error)
}

// tokenPrefix starts every sealed marker, so that a marker parameter that
// is a plain key is told apart from one that is sealed.
const tokenPrefix = "embassy-cursor-1."

// cursor is what a token holds.
type cursor struct {
	Kind      string `json:"kind"` // "objects", "versions" or "uploads"
	Bucket    string `json:"bucket"`
	Prefix    string `json:"prefix"`
	Delimiter string `json:"delimiter"`
	Principal string `json:"principal"`
	Key       string `json:"key"`
	ID        string `json:"id,omitempty"`
}

var errBadToken = errorf("InvalidArgument", http.StatusBadRequest, "The continuation token provided is incorrect")

// sealCursor returns the token for a position of this request's listing.
func (s *Server) sealCursor(q *request, kind, prefix, delimiter, key, id string) (string, error) {
	b, err := json.Marshal(cursor{Kind: kind, Bucket: q.bucket, Prefix: prefix, Delimiter: delimiter, Principal: q.principal, Key: key, ID: id})
	if err != nil {
		return "", err
	}
	t, err := s.tokens.SealToken(b)
	if err != nil {
		return "", err
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(t), nil
}

// openCursor opens a token of this request's listing. ok is false when s
// is not a sealed token at all (a plain key); a token that does not open,
// or belongs to another listing, is errBadToken.
func (s *Server) openCursor(q *request, kind, prefix, delimiter, v string) (c cursor, ok bool, err error) {
	rest, found := strings.CutPrefix(v, tokenPrefix)
	if !found {
		return c, false, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return c, true, errBadToken
	}
	plain, err := s.tokens.OpenToken(raw)
	if err != nil {
		return c, true, errBadToken.with(err)
	}
	if err := json.Unmarshal(plain, &c); err != nil {
		return c, true, errBadToken.with(err)
	}
	if c.Kind != kind || c.Bucket != q.bucket || c.Prefix != prefix || c.Delimiter != delimiter || c.Principal != q.principal {
		return c, true, errBadToken.with(errors.New("the token belongs to another listing"))
	}
	return c, true, nil
}

// randomSealer seals with a key of its own.
type randomSealer struct{ aead cipher.AEAD }

func newRandomSealer() *randomSealer {
	key := make([]byte, 32)
	rand.Read(key)
	b, _ := aes.NewCipher(key)
	a, _ := cipher.NewGCM(b)
	return &randomSealer{aead: a}
}

func (r *randomSealer) SealToken(plain []byte) ([]byte, error) {
	nonce := make([]byte, r.aead.NonceSize())
	rand.Read(nonce)
	return r.aead.Seal(nonce, nonce, plain, nil), nil
}

func (r *randomSealer) OpenToken(t []byte) ([]byte, error) {
	n := r.aead.NonceSize()
	if len(t) < n {
		return nil, errors.New("token too short")
	}
	return r.aead.Open(nil, t[:n], t[n:], nil)
}
