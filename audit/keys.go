package audit

import (
	"fmt"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/embassy-dev/embassy/custody"
)

// Verifiers returns the checkpoint verifiers of origin for the given node
// identities: Ed25519 signed-note verifiers (what every C2SP verifier
// checks) and ML-DSA-44 cosignature verifiers (post-quantum), in the order
// given.
func Verifiers(origin string, ids ...custody.PublicIdentity) (ed, pq []note.Verifier, err error) {
	for _, id := range ids {
		vkey, err := note.NewEd25519VerifierKey(origin, id.Ed25519)
		if err != nil {
			return nil, nil, fmt.Errorf("audit: %w", err)
		}
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return nil, nil, fmt.Errorf("audit: %w", err)
		}
		ed = append(ed, v)
		m, err := fnote.NewMLDSAVerifier(custody.MLDSAVerifierKey(origin, id))
		if err != nil {
			return nil, nil, fmt.Errorf("audit: %w", err)
		}
		pq = append(pq, m)
	}
	return ed, pq, nil
}

// VerifierKey is the C2SP verifier key (vkey) of a node's checkpoints:
// what a witness or a monitor configures to follow the log.
func VerifierKey(origin string, id custody.PublicIdentity) (string, error) {
	return note.NewEd25519VerifierKey(origin, id.Ed25519)
}
