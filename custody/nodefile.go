package custody

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strconv"
)

// Node files (node.yaml, custody.json, requests.json) are authenticated
// with HMAC-SHA256 under a key derived from the root key ("node-file-mac"),
// over the file's name, its generation and its exact bytes. Whoever can
// write the node directory but does not hold the root key cannot make a
// changed file verify.

// FileMACSize is the length of a node file authenticator.
const FileMACSize = sha256.Size

func (k *Keyring) fileMAC(name string, gen uint64, body []byte) ([]byte, error) {
	key, err := k.root.derive("node-file-mac", 32)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("embassy node file v1\x00" + name + "\x00" + strconv.FormatUint(gen, 10) + "\x00"))
	m.Write(body)
	return m.Sum(nil), nil
}

// FileMAC authenticates generation gen of the node file name whose bytes
// are body.
func (k *Keyring) FileMAC(name string, gen uint64, body []byte) ([]byte, error) {
	return k.fileMAC(name, gen, body)
}

// ErrFileMAC: a node file's authenticator does not verify under this root
// key (nor, during a root rotation, the previous one).
var ErrFileMAC = errors.New("authenticator does not verify")

// VerifyFileMAC checks a node file's authenticator in constant time. It
// reports whether it verified only under the previous root of a rotation
// in progress, in which case the caller should authenticate the file again
// under the current root.
func (k *Keyring) VerifyFileMAC(name string, gen uint64, body, mac []byte) (previous bool, err error) {
	want, err := k.fileMAC(name, gen, body)
	if err != nil {
		return false, err
	}
	if hmac.Equal(want, mac) {
		return false, nil
	}
	if k.prev != nil {
		if _, err := k.prev.VerifyFileMAC(name, gen, body, mac); err == nil {
			return true, nil
		}
	}
	return false, ErrFileMAC
}
