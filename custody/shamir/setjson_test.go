package shamir

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSetJSON: a Set is written in snake_case with hex bytes, and the form
// written before (Go field names, arrays of numbers) still reads.
func TestSetJSON(t *testing.T) {
	set, _, err := SplitSet(make([]byte, 32), 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"id":"`, `"threshold":2`, `"total":3`, `"commitment":"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	var back Set
	if err := json.Unmarshal(b, &back); err != nil || back != set {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	// The old form: what json.Marshal made of the struct before.
	type oldSet struct {
		ID         SetID
		Threshold  int
		Total      int
		Commitment [32]byte
	}
	old, _ := json.Marshal(oldSet(set))
	if !strings.Contains(string(old), `"ID":[`) {
		t.Fatalf("old form is not what it was: %s", old)
	}
	var fromOld Set
	if err := json.Unmarshal(old, &fromOld); err != nil || fromOld != set {
		t.Fatalf("old form: %+v, %v", fromOld, err)
	}
	for name, bad := range map[string]string{
		"short id":      `{"id":"00","threshold":2,"total":3,"commitment":"` + strings.Repeat("00", 32) + `"}`,
		"byte too big":  strings.Replace(string(old), `"ID":[`, `"ID":[256,`, 1),
		"not bytes":     `{"id":true}`,
		"not an object": `[]`,
	} {
		var s Set
		if err := json.Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
