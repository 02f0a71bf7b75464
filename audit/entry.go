package audit

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
)

// Keys seals and opens entries (custody.Keyring implements it).
type Keys interface {
	SealAuditEntry(id, aad, plaintext []byte) ([]byte, error)
	OpenAuditEntry(id, aad, sealed []byte) ([]byte, error)
}

// An entry, as the log and every site hold it:
//
//	"EMBA" 0x01                       magic and format
//	commitment [32]                   SHA-256("embassy audit commitment v1\x00" || salt || event)
//	sealed                            AES-256-GCM(salt [32] || event JSON), see custody
//
// The commitment is the entry's id; the AAD of the sealing is everything
// before the sealed part.
const (
	entryMagic  = "EMBA\x01"
	saltSize    = 32
	commitPfx   = "embassy audit commitment v1\x00"
	entryHeader = len(entryMagic) + sha256.Size
	// MaxEntry bounds an entry's bytes (tlog-tiles: 65535).
	MaxEntry = 65535
)

// ErrEntry: an entry is malformed, or does not open with the node's keys.
var ErrEntry = errors.New("audit: unusable entry")

// Opening is what a proof reveals of one entry: the salt and the event's
// JSON, which hash to the entry's commitment.
type Opening struct {
	Salt  []byte
	Event []byte
}

// Commitment is the commitment the opening hashes to.
func (o Opening) Commitment() [32]byte {
	h := sha256.New()
	h.Write([]byte(commitPfx))
	h.Write(o.Salt)
	h.Write(o.Event)
	return [32]byte(h.Sum(nil))
}

// Matches reports whether the opening opens entry, in constant time.
func (o Opening) Matches(entry []byte) bool {
	c, err := Commitment(entry)
	if err != nil || len(o.Salt) != saltSize {
		return false
	}
	oc := o.Commitment()
	return subtle.ConstantTimeCompare(c[:], oc[:]) == 1
}

// Decode decodes the opened event, strictly.
func (o Opening) Decode() (Event, error) {
	return decodeEvent(o.Event)
}

func decodeEvent(b []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, fmt.Errorf("%w: event: %v", ErrEntry, err)
	}
	if dec.More() {
		return Event{}, fmt.Errorf("%w: event: trailing data", ErrEntry)
	}
	if err := e.validate(); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrEntry, err)
	}
	return e, nil
}

// Commitment returns an entry's commitment after checking its structure
// (which needs no key).
func Commitment(entry []byte) ([32]byte, error) {
	if len(entry) < entryHeader+16 || len(entry) > MaxEntry || !bytes.HasPrefix(entry, []byte(entryMagic)) {
		return [32]byte{}, fmt.Errorf("%w: not an embassy audit entry", ErrEntry)
	}
	return [32]byte(entry[len(entryMagic):entryHeader]), nil
}

// SealEntry encodes and seals an event as a log entry.
func SealEntry(keys Keys, e Event) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	ev, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if len(ev) > MaxEvent {
		return nil, fmt.Errorf("%w: %s event of %d bytes exceeds %d", ErrEvent, e.Kind, len(ev), MaxEvent)
	}
	o := Opening{Salt: make([]byte, saltSize), Event: ev}
	if _, err := rand.Read(o.Salt); err != nil {
		return nil, err
	}
	c := o.Commitment()
	out := append([]byte(entryMagic), c[:]...)
	sealed, err := keys.SealAuditEntry(c[:], out, append(bytes.Clone(o.Salt), ev...))
	if err != nil {
		return nil, fmt.Errorf("audit: seal entry: %w", err)
	}
	out = append(out, sealed...)
	if len(out) > MaxEntry {
		return nil, fmt.Errorf("%w: %s entry of %d bytes exceeds %d", ErrEvent, e.Kind, len(out), MaxEntry)
	}
	return out, nil
}

// OpenEntry opens an entry with the node's keys, checks the opening
// against the commitment, and decodes the event.
func OpenEntry(keys Keys, entry []byte) (Event, Opening, error) {
	c, err := Commitment(entry)
	if err != nil {
		return Event{}, Opening{}, err
	}
	pt, err := keys.OpenAuditEntry(c[:], entry[:entryHeader], entry[entryHeader:])
	if err != nil {
		return Event{}, Opening{}, fmt.Errorf("%w: %v", ErrEntry, err)
	}
	if len(pt) < saltSize {
		return Event{}, Opening{}, fmt.Errorf("%w: sealed part too short", ErrEntry)
	}
	o := Opening{Salt: pt[:saltSize], Event: pt[saltSize:]}
	if !o.Matches(entry) {
		return Event{}, Opening{}, fmt.Errorf("%w: does not match its commitment", ErrEntry)
	}
	e, err := o.Decode()
	if err != nil {
		return Event{}, Opening{}, err
	}
	return e, o, nil
}
