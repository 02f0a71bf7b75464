package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/label"
)

// Describe is a change to one dataset description, as 'embassy dataset
// describe' and POST /_embassy/v1/datasets take it: the fields given
// replace the description's, the others keep their values (a new
// description starts empty). An empty string or list clears a field.
type Describe struct {
	// Dataset names it: VAULT or VAULT/PREFIX.
	Dataset     string    `json:"dataset"`
	Title       *string   `json:"title,omitempty"`
	Description *string   `json:"description,omitempty"`
	Keywords    *[]string `json:"keywords,omitempty"`
	// Themes and Spatial are IRIs, or short codes (ParseTheme,
	// ParseSpatial).
	Themes  *[]string `json:"themes,omitempty"`
	Spatial *[]string `json:"spatial,omitempty"`
	// Temporal is START/END (ParsePeriod); "" removes it.
	Temporal   *string   `json:"temporal,omitempty"`
	MediaTypes *[]string `json:"media_types,omitempty"`
	// Label is the description's label in text form.
	Label *string `json:"label,omitempty"`
}

// MaxDescribe caps the size of a describe request body.
const MaxDescribe = 64 << 10

// ParseDescribe parses a describe request: one JSON object, unknown fields,
// trailing data and a missing dataset refused with what was wrong named.
// The values themselves are checked by Apply.
func ParseDescribe(body []byte) (Describe, error) {
	var q Describe
	if len(body) > MaxDescribe {
		return q, fmt.Errorf("describe: %d bytes is more than %d", len(body), MaxDescribe)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return q, errors.New("malformed request: the body is empty; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		return Describe{}, fmt.Errorf("malformed request: %w", err)
	}
	if dec.More() {
		return Describe{}, errors.New("malformed request: more than one JSON value")
	}
	if _, _, err := ParseRef(q.Dataset); err != nil {
		return Describe{}, err
	}
	return q, nil
}

// Apply returns old changed by q, each value parsed and put in its
// canonical form (short theme and country codes expanded, media types in
// lower case, the label normalised with reg, the period as String writes
// it), validated. A new description (old zero) is issued at now; a changed
// one is modified at now; one q does not change keeps its times.
func (q Describe) Apply(reg *label.Registry, old Dataset, now time.Time) (Dataset, error) {
	vault, prefix, err := ParseRef(q.Dataset)
	if err != nil {
		return Dataset{}, err
	}
	d := old
	d.Vault, d.Prefix = vault, prefix
	if q.Title != nil {
		d.Title = strings.TrimSpace(*q.Title)
	}
	if q.Description != nil {
		d.Description = strings.TrimSpace(*q.Description)
	}
	list := func(field string, in *[]string, parse func(string) (string, error), to *[]string) error {
		if in == nil {
			return nil
		}
		if len(*in) > MaxList {
			return fmt.Errorf("%s: %d values, at most %d", field, len(*in), MaxList)
		}
		var out []string
		for _, v := range *in {
			got, err := parse(strings.TrimSpace(v))
			if err != nil {
				return err
			}
			if !slices.Contains(out, got) {
				out = append(out, got)
			}
		}
		*to = out
		return nil
	}
	if err := list("keywords", q.Keywords, ParseKeyword, &d.Keywords); err != nil {
		return Dataset{}, err
	}
	if err := list("themes", q.Themes, ParseTheme, &d.Themes); err != nil {
		return Dataset{}, err
	}
	if err := list("spatial", q.Spatial, ParseSpatial, &d.Spatial); err != nil {
		return Dataset{}, err
	}
	if err := list("media_types", q.MediaTypes, ParseMediaType, &d.MediaTypes); err != nil {
		return Dataset{}, err
	}
	if q.Temporal != nil {
		d.Temporal = ""
		if t := strings.TrimSpace(*q.Temporal); t != "" {
			p, err := ParsePeriod(t)
			if err != nil {
				return Dataset{}, fmt.Errorf("temporal: %w", err)
			}
			d.Temporal = p.String()
		}
	}
	if q.Label != nil {
		if reg == nil {
			return Dataset{}, errors.New("label: this node has no label policies")
		}
		l, err := reg.ParseText(strings.TrimSpace(*q.Label))
		if err != nil {
			return Dataset{}, fmt.Errorf("label: %w", err)
		}
		d.Label = l.String()
	}
	now = now.UTC().Truncate(time.Second)
	switch {
	case old.Vault == "":
		d.Issued, d.Modified = now, now
	case !reflect.DeepEqual(old, d):
		d.Modified = now
	}
	if err := d.Validate(reg); err != nil {
		return Dataset{}, err
	}
	return d, nil
}
