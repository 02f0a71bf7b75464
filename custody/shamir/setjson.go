package shamir

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// setJSON is a Set in JSON: snake_case field names, the id and commitment
// in hex.
type setJSON struct {
	ID         json.RawMessage `json:"id"`
	Threshold  int             `json:"threshold"`
	Total      int             `json:"total"`
	Commitment json.RawMessage `json:"commitment"`
}

// MarshalJSON writes {"id": hex, "threshold", "total", "commitment": hex}.
func (s Set) MarshalJSON() ([]byte, error) {
	id, _ := json.Marshal(hex.EncodeToString(s.ID[:]))
	c, _ := json.Marshal(hex.EncodeToString(s.Commitment[:]))
	return json.Marshal(setJSON{ID: id, Threshold: s.Threshold, Total: s.Total, Commitment: c})
}

// UnmarshalJSON reads what MarshalJSON writes and the form written before
// it (Go field names, the id and commitment as arrays of numbers), which
// old node descriptors and custody.json files hold. Field names match
// case-insensitively.
func (s *Set) UnmarshalJSON(b []byte) error {
	var j setJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if err := decodeBytes(j.ID, s.ID[:]); err != nil {
		return fmt.Errorf("share set id: %w", err)
	}
	if err := decodeBytes(j.Commitment, s.Commitment[:]); err != nil {
		return fmt.Errorf("share set commitment: %w", err)
	}
	s.Threshold, s.Total = j.Threshold, j.Total
	return nil
}

// decodeBytes fills out from a hex string or an array of numbers of
// exactly its length.
func decodeBytes(raw json.RawMessage, out []byte) error {
	var h string
	if err := json.Unmarshal(raw, &h); err == nil {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != len(out) {
			return fmt.Errorf("want %d bytes in hex", len(out))
		}
		copy(out, b)
		return nil
	}
	var a []int
	if err := json.Unmarshal(raw, &a); err != nil || len(a) != len(out) {
		return fmt.Errorf("want %d bytes in hex", len(out))
	}
	for i, v := range a {
		if v < 0 || v > 255 {
			return fmt.Errorf("byte %d out of range", i)
		}
		out[i] = byte(v)
	}
	return nil
}
