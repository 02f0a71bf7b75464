package taxii

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Envelope is a TAXII 2.1 envelope: the body of an Add Objects request and
// of a Get Objects response.
type Envelope struct {
	More    bool              `json:"more,omitempty"`
	Next    string            `json:"next,omitempty"`
	Objects []json.RawMessage `json:"objects,omitempty"`
}

// ErrEnvelope: a request body is not a TAXII envelope. Answer 400 with the
// error's text.
var ErrEnvelope = errors.New("not a TAXII 2.1 envelope")

// ParseEnvelope decodes an envelope of at most maxObjects objects. Each
// object must be a JSON object; its STIX content is checked later, object
// by object (ParseObject). A property given twice at the top of the
// envelope is refused; properties TAXII does not define are ignored.
func ParseEnvelope(body []byte, maxObjects int) (*Envelope, error) {
	fail := func(format string, args ...any) (*Envelope, error) {
		return nil, fmt.Errorf("%w: %s", ErrEnvelope, fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return fail("not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fail("the body is not a JSON object")
	}
	env := &Envelope{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail("not JSON: %v", err)
		}
		name, _ := tok.(string)
		if seen[name] {
			return fail("%q given twice", name)
		}
		seen[name] = true
		switch name {
		case "objects":
			if err := decodeObjects(dec, env, maxObjects); err != nil {
				return fail("%v", err)
			}
		case "more":
			if err := dec.Decode(&env.More); err != nil {
				return fail("more: not a boolean")
			}
		case "next":
			if err := dec.Decode(&env.Next); err != nil {
				return fail("next: not a string")
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fail("not JSON: %v", err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return fail("not JSON: %v", err)
	}
	if _, err := dec.Token(); err == nil {
		return fail("more than one JSON value")
	}
	return env, nil
}

func decodeObjects(dec *json.Decoder, env *Envelope, maxObjects int) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("objects: not JSON: %v", err)
	}
	if tok == nil {
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return errors.New("objects: not a list")
	}
	for i := 0; dec.More(); i++ {
		if i >= maxObjects {
			return fmt.Errorf("objects: more than %d objects in one envelope", maxObjects)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("objects[%d]: not JSON: %v", i, err)
		}
		if len(raw) == 0 || raw[0] != '{' {
			return fmt.Errorf("objects[%d]: not a JSON object", i)
		}
		env.Objects = append(env.Objects, raw)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("objects: not JSON: %v", err)
	}
	return nil
}
