package custody

import "errors"

// RecoveryKeys are peer keys derived from the root key (the HKDF info
// "peer-recovery-keys"): what a node that lost its directory, and with it
// its identity and peer keys, presents to an ally holding its replica to
// prove it holds the root (the ally pinned their TLS key when it last
// pulled). Anyone with the root key or T custodians' shares can make
// them; a root key rotation changes them, and the node gives its allies
// the new pin with the next pull.
func (k *Keyring) RecoveryKeys() (*PeerKeys, error) {
	if !k.root.Valid() {
		return nil, errors.New("custody: recovery keys need the root key")
	}
	seed, err := k.root.derive("peer-recovery-keys", 64)
	if err != nil {
		return nil, err
	}
	return newPeerKeys(seed)
}
