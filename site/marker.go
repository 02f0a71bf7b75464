package site

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
)

// MarkerBlob is the name of the marker blob every site holds.
const MarkerBlob = "node/marker"

// MarkerDomain prefixes the message a marker's signature covers, so that
// no other record the node signs can pass for a marker.
const MarkerDomain = "embassy/v1 site marker\x00"

// maxMarker bounds a marker blob: two ids and a signature (Ed25519 today,
// a post-quantum signature beside it later).
const maxMarker = 16 << 10

const markerHeader = "embassy site marker 1\n"

// A Marker says which node, and which of its sites, a site belongs to. The
// node writes it when the site is added (signed with the node's signing
// key), and a site whose marker names another node or site, or that has
// none, is refused. It holds plaintext ids and a signature only: no names,
// no labels, nothing a site should not learn.
//
// Encoding (text, one field a line, in this order, each line ending in
// "\n"):
//
//	embassy site marker 1
//	node <node id>
//	site <site id>
//	sig <standard base64 of the signature>
//
// The signature covers [MarkerDomain] followed by the first three lines.
type Marker struct {
	Node string
	Site string
}

var markerNodeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks that the ids can be written in a marker.
func (m Marker) Validate() error {
	if !markerNodeRE.MatchString(m.Node) {
		return fmt.Errorf("site marker: node id %q: must be 1-64 of letters, digits, '.', '_', '-'", m.Node)
	}
	if err := ValidID(m.Site); err != nil {
		return fmt.Errorf("site marker: %w", err)
	}
	return nil
}

func (m Marker) body() []byte {
	return []byte(markerHeader + "node " + m.Node + "\nsite " + m.Site + "\n")
}

// SignedMessage returns what the marker's signature covers.
func (m Marker) SignedMessage() []byte {
	return append([]byte(MarkerDomain), m.body()...)
}

// Encode returns the marker blob carrying sig, a signature of
// [Marker.SignedMessage].
func (m Marker) Encode(sig []byte) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if len(sig) == 0 {
		return nil, errors.New("site marker: empty signature")
	}
	b := m.body()
	b = append(b, "sig "...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	b = append(b, '\n')
	if len(b) > maxMarker {
		return nil, fmt.Errorf("site marker: %d bytes is larger than the %d-byte limit", len(b), maxMarker)
	}
	return b, nil
}

// ErrMarker means a blob is not a well-formed site marker.
var ErrMarker = errors.New("not a site marker")

// ParseMarker decodes a marker blob strictly and returns the marker and its
// signature, which the caller verifies against [Marker.SignedMessage].
func ParseMarker(b []byte) (Marker, []byte, error) {
	var m Marker
	if len(b) > maxMarker {
		return m, nil, fmt.Errorf("%w: %d bytes is larger than the %d-byte limit", ErrMarker, len(b), maxMarker)
	}
	rest, ok := bytes.CutPrefix(b, []byte(markerHeader))
	if !ok {
		return m, nil, fmt.Errorf("%w: bad header", ErrMarker)
	}
	field := func(name string) (string, error) {
		line, after, ok := bytes.Cut(rest, []byte{'\n'})
		if !ok {
			return "", fmt.Errorf("%w: %s: missing or unterminated line", ErrMarker, name)
		}
		v, ok := bytes.CutPrefix(line, []byte(name+" "))
		if !ok {
			return "", fmt.Errorf("%w: expected the %s line", ErrMarker, name)
		}
		rest = after
		return string(v), nil
	}
	var err error
	if m.Node, err = field("node"); err != nil {
		return Marker{}, nil, err
	}
	if m.Site, err = field("site"); err != nil {
		return Marker{}, nil, err
	}
	s, err := field("sig")
	if err != nil {
		return Marker{}, nil, err
	}
	if len(rest) != 0 {
		return Marker{}, nil, fmt.Errorf("%w: trailing bytes after the signature", ErrMarker)
	}
	if err := m.Validate(); err != nil {
		return Marker{}, nil, fmt.Errorf("%w: %v", ErrMarker, err)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(sig) == 0 {
		return Marker{}, nil, fmt.Errorf("%w: signature is not base64", ErrMarker)
	}
	return m, sig, nil
}
