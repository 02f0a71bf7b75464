// Package audit keeps the node's tamper-evident audit log (DESIGN.md
// invariant 8): an append-only Merkle log of everything security-relevant
// the node does, in the C2SP formats (tlog-tiles, tlog-checkpoint,
// signed-note, tlog-cosignature, tlog-witness, tlog-proof), built on
// github.com/transparency-dev/tessera's POSIX storage in the node directory.
//
// # Entries
//
// An entry is one [Event], sealed: what a site or a witness sees is a
// commitment to the event (SHA-256 over a random salt and the event's JSON)
// followed by the salt and the event sealed under the node's audit log key
// (custody). Only the node can open an entry; a proof file ([Proof])
// reveals one entry's salt and event, which anyone can check against the
// commitment in the log.
//
// # Appending
//
// [Log.Append] returns once the entries are durable in the node's local
// journal, a group-committed append-only file (one fdatasync for every
// concurrent caller): that is the acknowledgement point. A single sequencer
// then adds them, in journal order, to the tessera log, which integrates
// them into the Merkle tree and publishes a checkpoint signed by the node
// identity (Ed25519, C2SP signed-note) and cosigned by its ML-DSA-44 key
// (C2SP ML-DSA-44 cosignature). Entry i of the journal is entry i of the
// log; a journal segment is removed once the log holds all of it, and on
// opening the log takes over what the journal holds beyond it.
//
// # Copies on the sites
//
// Tiles and entry bundles, then the checkpoint, are copied to every site
// under "log/" in the tlog-tiles layout, asynchronously; a site that
// misses a copy catches up on the next one. [Log.Sync] waits until chosen
// sites hold a checkpoint covering an entry: deletion records use it, so
// that a tombstone is durable where the version's blobs are before the
// delete commits. Any one site, with the node's public key, is enough to
// verify the log and to rebuild it.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/manifest"
)

// Event is one thing that happened, as the log records it. Kinds are
// dotted names ("object.put", "evidence.delete", "request.approve", ...);
// the fields a kind does not use are empty.
type Event struct {
	Kind string `json:"kind"`
	// Time is when it happened (Unix nanoseconds, set by Append when 0).
	Time int64 `json:"time"`
	// Actor is who did it: a principal, a custodian ("custodian:NAME"),
	// or "node" for the node's own work.
	Actor string `json:"actor,omitempty"`
	// Vault, Key, Version and Revision name the object version concerned.
	Vault    string      `json:"vault,omitempty"`
	Key      string      `json:"key,omitempty"`
	Version  manifest.ID `json:"version,omitzero"`
	Revision int         `json:"revision,omitempty"`
	// Site names the site concerned.
	Site string `json:"site,omitempty"`
	// Outcome is empty for a change that took effect, or says why it did
	// not ("refused: ...", "failed: ...").
	Outcome string `json:"outcome,omitempty"`
	// Detail carries kind-specific fields, for a person to read.
	Detail map[string]string `json:"detail,omitempty"`
	// Record is a structured record of another package (the evidence
	// records of package evidence), opaque here.
	Record json.RawMessage `json:"record,omitempty"`
}

// MaxEvent bounds an event's JSON encoding (a tlog-tiles entry holds at
// most 65535 bytes, and the sealing adds to it).
const MaxEvent = 60 << 10

// ErrEvent: an event is not fit for the log.
var ErrEvent = errors.New("audit: invalid event")

func (e Event) validate() error {
	if e.Kind == "" || len(e.Kind) > 64 || strings.ContainsFunc(e.Kind, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
	}) {
		return fmt.Errorf("%w: kind %q", ErrEvent, e.Kind)
	}
	if e.Time <= 0 {
		return fmt.Errorf("%w: no time", ErrEvent)
	}
	return nil
}

// At returns the event's time.
func (e Event) At() time.Time { return time.Unix(0, e.Time).UTC() }

// Origin is the checkpoint origin of a node's log.
func Origin(nodeID string) string { return "embassy/" + nodeID }
