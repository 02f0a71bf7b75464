package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Query limits.
const (
	MaxTerms   = 32
	MaxTermLen = 256
)

// Query is a catalogue search: every term must match (AND). A term is
// matched ignoring case as a substring of the dataset's identifier, title,
// description, keywords, themes, spatial coverage, media types or label;
// FIELD:TEXT narrows it to one field (see Fields).
type Query struct {
	terms []term
}

type term struct {
	field string // "" for any field
	text  string // lower case
}

// Fields are the qualifiers a term may carry, FIELD:TEXT.
var Fields = []string{"id", "title", "description", "keyword", "theme", "spatial", "media", "label", "temporal"}

// ParseQuery parses search terms as typed: each argument may hold several
// terms separated by spaces. A word before the first ':' that is not one
// of Fields is part of the text (so an IRI is a plain term).
func ParseQuery(args []string) (Query, error) {
	var q Query
	for _, a := range args {
		if !utf8.ValidString(a) {
			return Query{}, fmt.Errorf("search term %q: not valid UTF-8", a)
		}
		for _, w := range strings.Fields(a) {
			if len(w) > MaxTermLen {
				return Query{}, fmt.Errorf("search term %.20q…: %d bytes is longer than %d", w, len(w), MaxTermLen)
			}
			t := term{text: strings.ToLower(w)}
			if f, rest, ok := strings.Cut(w, ":"); ok && slices.Contains(Fields, strings.ToLower(f)) {
				if rest == "" {
					return Query{}, fmt.Errorf("search term %q: nothing to match after the %s qualifier", w, f)
				}
				t = term{field: strings.ToLower(f), text: strings.ToLower(rest)}
			}
			q.terms = append(q.terms, t)
			if len(q.terms) > MaxTerms {
				return Query{}, fmt.Errorf("search: more than %d terms", MaxTerms)
			}
		}
	}
	return q, nil
}

// Empty reports whether the query has no terms (it matches everything).
func (q Query) Empty() bool { return len(q.terms) == 0 }

// String writes the query back as terms separated by spaces.
func (q Query) String() string {
	var parts []string
	for _, t := range q.terms {
		if t.field != "" {
			parts = append(parts, t.field+":"+t.text)
		} else {
			parts = append(parts, t.text)
		}
	}
	return strings.Join(parts, " ")
}

// Match reports whether d matches every term.
func (q Query) Match(d Dataset) bool {
	for _, t := range q.terms {
		if !t.match(d) {
			return false
		}
	}
	return true
}

func (t term) match(d Dataset) bool {
	has := func(vals ...string) bool {
		for _, v := range vals {
			if strings.Contains(strings.ToLower(v), t.text) {
				return true
			}
		}
		return false
	}
	switch t.field {
	case "id":
		return has(d.ID())
	case "title":
		return has(d.Title)
	case "description":
		return has(d.Description)
	case "keyword":
		return has(d.Keywords...)
	case "theme":
		return has(d.Themes...)
	case "spatial":
		return has(d.Spatial...)
	case "media":
		return has(d.MediaTypes...)
	case "label":
		return has(d.Label)
	case "temporal":
		return has(d.Temporal)
	}
	return has(d.ID(), d.Title, d.Description, d.Label) || has(d.Keywords...) || has(d.Themes...) || has(d.Spatial...) || has(d.MediaTypes...)
}

// PeerRequest is the body of a catalogue request from one node to another
// (the peer protocol's catalog endpoint): the search terms, as typed.
type PeerRequest struct {
	Q []string `json:"q,omitempty"`
}

// MaxPeerRequest caps the size of a PeerRequest body.
const MaxPeerRequest = 16 << 10

// ParsePeerRequest parses a catalogue request a peer sent: an empty body
// asks for everything; otherwise one JSON object, unknown fields and
// trailing data refused, whose terms must parse (ParseQuery).
func ParsePeerRequest(body []byte) (Query, error) {
	if len(body) > MaxPeerRequest {
		return Query{}, fmt.Errorf("catalogue request: %d bytes is more than %d", len(body), MaxPeerRequest)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return Query{}, nil
	}
	var r PeerRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Query{}, fmt.Errorf("catalogue request: %w", err)
	}
	if dec.More() {
		return Query{}, errors.New("catalogue request: more than one JSON value")
	}
	return ParseQuery(r.Q)
}

// Terms returns the query's terms as ParseQuery reads them back.
func (q Query) Terms() []string { return strings.Fields(q.String()) }
