package label

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

// labelJSON is the JSON form of a label. Its fields are declared in sorted
// key order, so encoding/json writes them sorted as RFC 8785 requires.
type labelJSON struct {
	Categories     []categoryJSON `json:"categories,omitempty"`
	Classification string         `json:"classification"`
	Created        string         `json:"created,omitempty"`
	Policy         string         `json:"policy"`
	PolicyURI      string         `json:"policyUri,omitempty"`
	PrivacyMark    string         `json:"privacyMark,omitempty"`
	ReviewAt       string         `json:"reviewAt,omitempty"`
}

type categoryJSON struct {
	TagName string   `json:"tagName"`
	Type    string   `json:"type"`
	Values  []string `json:"values"`
}

func (l Label) toJSON() labelJSON {
	j := labelJSON{
		Classification: l.Classification,
		Policy:         l.Policy,
		PolicyURI:      l.PolicyURI,
		PrivacyMark:    l.PrivacyMark,
	}
	if !l.Created.IsZero() {
		j.Created = formatTime(l.Created)
	}
	if !l.ReviewAt.IsZero() {
		j.ReviewAt = formatTime(l.ReviewAt)
	}
	for _, c := range l.Categories {
		j.Categories = append(j.Categories, categoryJSON{TagName: c.TagName, Type: c.Type.String(), Values: c.Values})
	}
	return j
}

func (j labelJSON) toLabel() (Label, error) {
	l := Label{
		Policy:         j.Policy,
		PolicyURI:      j.PolicyURI,
		Classification: j.Classification,
		PrivacyMark:    j.PrivacyMark,
	}
	var err error
	if j.Created != "" {
		if l.Created, err = parseTime(j.Created); err != nil {
			return Label{}, fmt.Errorf("created: %w", err)
		}
	}
	if j.ReviewAt != "" {
		if l.ReviewAt, err = parseTime(j.ReviewAt); err != nil {
			return Label{}, fmt.Errorf("reviewAt: %w", err)
		}
	}
	if len(j.Categories) > MaxCategories {
		return Label{}, fmt.Errorf("categories: %d exceed the limit of %d", len(j.Categories), MaxCategories)
	}
	for i, c := range j.Categories {
		t, err := ParseCategoryType(c.Type)
		if err != nil {
			return Label{}, fmt.Errorf("categories[%d]: %w", i, err)
		}
		l.Categories = append(l.Categories, Category{TagName: c.TagName, Type: t, Values: c.Values})
	}
	if err := l.Validate(); err != nil {
		return Label{}, err
	}
	return l, nil
}

// Canonical returns the canonical encoding of the label, the bytes that are
// signed: compact JSON with keys sorted, empty optional fields left out,
// categories and values in label order, times in RFC 3339 UTC. For a valid
// label this is also the RFC 8785 (JCS) canonical form of that JSON. Equal
// labels have equal canonical bytes.
func (l Label) Canonical() []byte {
	return canonicalJSON(l.toJSON())
}

// Digest returns the SHA-256 digest of the label's canonical encoding.
func (l Label) Digest() [sha256.Size]byte {
	return sha256.Sum256(l.Canonical())
}

// MarshalJSON returns the canonical encoding.
func (l Label) MarshalJSON() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("encode label json: %w", err)
	}
	return l.Canonical(), nil
}

// UnmarshalJSON parses the JSON form written by MarshalJSON, refusing unknown
// fields and invalid labels.
func (l *Label) UnmarshalJSON(data []byte) error {
	var j labelJSON
	if err := decodeStrict(data, &j); err != nil {
		return fmt.Errorf("parse label json: %w", err)
	}
	m, err := j.toLabel()
	if err != nil {
		return fmt.Errorf("parse label json: %w", err)
	}
	*l = m
	return nil
}

// MarshalText returns the compact text form, so labels can be written as
// strings in configuration files.
func (l Label) MarshalText() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("encode label text: %w", err)
	}
	return []byte(l.String()), nil
}

// UnmarshalText parses the compact text form.
func (l *Label) UnmarshalText(text []byte) error {
	m, err := ParseText(string(text))
	if err != nil {
		return err
	}
	*l = m
	return nil
}

// canonicalJSON encodes v compactly without HTML escaping. v's types declare
// their fields in sorted key order and hold no floats or maps.
func canonicalJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only unsupported types fail, and v is one of ours.
		panic("label: canonical json: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	if _, err := dec.Token(); err == nil {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}
