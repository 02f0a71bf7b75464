package taxii

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// sdo returns a valid indicator with the given properties changed (a nil
// value removes the property).
func sdo(t testing.TB, changes map[string]any) []byte {
	t.Helper()
	o := map[string]any{
		"type":         "indicator",
		"spec_version": "2.1",
		"id":           "indicator--830b74d3-00d1-4c74-804b-a83ae16031a8",
		"created":      "2026-03-02T08:30:00.000Z",
		"modified":     "2026-03-02T08:30:00.000Z",
		"pattern":      "[ipv4-addr:value = '198.51.100.1']",
		"pattern_type": "stix",
		"valid_from":   "2026-03-02T08:30:00Z",
	}
	for k, v := range changes {
		if v == nil {
			delete(o, k)
		} else {
			o[k] = v
		}
	}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseObjectRefuses(t *testing.T) {
	cases := []struct {
		name string
		raw  []byte
		// want is in the error: the property and the rule.
		want string
	}{
		{"not an object", []byte(`[1]`), "not a JSON object"},
		{"not JSON", []byte(`{"type":`), "not JSON"},
		{"trailing value", []byte(`{"type":"x"} {}`), "more than one JSON value"},
		{"no type", sdo(t, map[string]any{"type": nil}), "type: missing"},
		{"type not a string", sdo(t, map[string]any{"type": 7}), "type: not a string"},
		{"type upper case", sdo(t, map[string]any{"type": "Indicator"}), "type: \"Indicator\": a type starts with a letter"},
		{"type too short", sdo(t, map[string]any{"type": "ab", "id": "ab--830b74d3-00d1-4c74-804b-a83ae16031a8"}), "3 to 250"},
		{"no id", sdo(t, map[string]any{"id": nil}), "id: missing"},
		{"id of another type", sdo(t, map[string]any{"id": "malware--830b74d3-00d1-4c74-804b-a83ae16031a8"}), "does not start with the object's type"},
		{"id without uuid", sdo(t, map[string]any{"id": "indicator--1"}), "36"},
		{"id upper case uuid", sdo(t, map[string]any{"id": "indicator--830B74D3-00D1-4C74-804B-A83AE16031A8"}), "lower-case"},
		{"id not RFC 4122", sdo(t, map[string]any{"id": "indicator--830b74d3-00d1-4c74-c04b-a83ae16031a8"}), "RFC 4122"},
		{"id braces", sdo(t, map[string]any{"id": "indicator--{30b74d3-00d1-4c74-804b-a83ae16031a}"}), "hexadecimal"},
		{"no spec_version", sdo(t, map[string]any{"spec_version": nil}), "spec_version: missing"},
		{"STIX 2.0", sdo(t, map[string]any{"spec_version": "2.0"}), "spec_version: \"2.0\" is not supported"},
		{"no created", sdo(t, map[string]any{"created": nil}), "created: missing"},
		{"no modified", sdo(t, map[string]any{"modified": nil}), "modified: missing"},
		{"created not UTC", sdo(t, map[string]any{"created": "2026-03-02T08:30:00.000+02:00"}), "created: \"2026-03-02T08:30:00.000+02:00\" is not a UTC timestamp"},
		{"created in seconds", sdo(t, map[string]any{"created": "2026-03-02T08:30:00Z", "modified": "2026-03-02T08:30:00Z"}), "precision must be at least milliseconds"},
		{"created a number", sdo(t, map[string]any{"created": 1}), "created: not a string"},
		{"created impossible", sdo(t, map[string]any{"created": "2026-02-30T08:30:00.000Z"}), "not a valid date"},
		{"modified before created", sdo(t, map[string]any{"modified": "2026-03-01T08:30:00.000Z"}), "modified: earlier than created"},
		{"missing pattern", sdo(t, map[string]any{"pattern": nil}), "pattern: missing (required of indicator)"},
		{"pattern a number", sdo(t, map[string]any{"pattern": 5}), "pattern"},
		{"valid_until before valid_from", sdo(t, map[string]any{"valid_until": "2026-03-01T00:00:00Z"}), "valid_until: not later than valid_from"},
		{"bad created_by_ref", sdo(t, map[string]any{"created_by_ref": "identity--nope"}), "created_by_ref"},
		{"created_by_ref not identity", sdo(t, map[string]any{"created_by_ref": "malware--830b74d3-00d1-4c74-804b-a83ae16031a8"}), "created_by_ref: \"malware--830b74d3-00d1-4c74-804b-a83ae16031a8\" is not an identity"},
		{"marking ref not a marking", sdo(t, map[string]any{"object_marking_refs": []string{"identity--830b74d3-00d1-4c74-804b-a83ae16031a8"}}), "object_marking_refs[0]: \"identity--830b74d3-00d1-4c74-804b-a83ae16031a8\" is not a marking definition"},
		{"marking refs empty", sdo(t, map[string]any{"object_marking_refs": []string{}}), "object_marking_refs: an empty list"},
		{"marking refs not a list", sdo(t, map[string]any{"object_marking_refs": TLP2Red}), "object_marking_refs: not a list of identifiers"},
		{"granular without selectors", sdo(t, map[string]any{"granular_markings": []any{map[string]any{"marking_ref": TLP2Red}}}), "granular_markings[0].selectors"},
		{"granular ref and lang", sdo(t, map[string]any{"granular_markings": []any{map[string]any{"marking_ref": TLP2Red, "lang": "en", "selectors": []string{"name"}}}}), "exactly one of marking_ref and lang"},
		{"granular ref not a marking", sdo(t, map[string]any{"granular_markings": []any{map[string]any{"marking_ref": "identity--830b74d3-00d1-4c74-804b-a83ae16031a8", "selectors": []string{"name"}}}}), "is not a marking definition"},
		{"duplicate property", []byte(`{"type":"indicator","type":"malware"}`), "type: given twice"},
		{"duplicate markings", []byte(strings.Replace(string(sdo(t, map[string]any{"object_marking_refs": []string{TLP2Red}})), `"object_marking_refs"`, `"object_marking_refs":["`+TLP2Clear+`"],"object_marking_refs"`, 1)), "object_marking_refs: given twice"},
		{"relationship to a marking", []byte(`{"type":"relationship","spec_version":"2.1","id":"relationship--e5d57545-4968-4767-9eca-53531417e752","created":"2026-03-02T08:40:00.000Z","modified":"2026-03-02T08:40:00.000Z","relationship_type":"indicates","source_ref":"indicator--830b74d3-00d1-4c74-804b-a83ae16031a8","target_ref":"` + TLP2Red + `"}`), "target_ref"},
		{"malware family without name", []byte(`{"type":"malware","spec_version":"2.1","id":"malware--c2ab920f-7fad-4234-b29d-467638e99df0","created":"2026-03-02T08:10:00.000Z","modified":"2026-03-02T08:10:00.000Z","is_family":true}`), "name: missing (required of a malware family)"},
		{"malware is_family a string", []byte(`{"type":"malware","spec_version":"2.1","id":"malware--c2ab920f-7fad-4234-b29d-467638e99df0","created":"2026-03-02T08:10:00.000Z","modified":"2026-03-02T08:10:00.000Z","is_family":"yes","name":"x"}`), "is_family: not a boolean"},
		{"report without refs", []byte(`{"type":"report","spec_version":"2.1","id":"report--e8af6341-86a8-4e65-ab7b-7a6217db1572","created":"2026-03-02T10:00:00.000Z","modified":"2026-03-02T10:00:00.000Z","name":"r","published":"2026-03-02T10:00:00Z"}`), "object_refs: missing (required of report)"},
		{"observable with created", []byte(`{"type":"ipv4-addr","spec_version":"2.1","id":"ipv4-addr--0693b0af-4746-4438-a437-8e423ec07442","value":"10.0.0.1","created":"2026-03-02T10:00:00.000Z"}`), "created: a cyber observable has no created"},
		{"observable without value", []byte(`{"type":"ipv4-addr","id":"ipv4-addr--0693b0af-4746-4438-a437-8e423ec07442"}`), "value: missing"},
		{"marking definition versioned", []byte(`{"type":"marking-definition","spec_version":"2.1","id":"marking-definition--0693b0af-4746-4438-a437-8e423ec07442","created":"2026-03-02T10:00:00.000Z","modified":"2026-03-02T10:00:00.000Z","definition_type":"statement","definition":{"statement":"x"}}`), "modified: a marking definition is not versioned"},
		{"marking definition without definition", []byte(`{"type":"marking-definition","spec_version":"2.1","id":"marking-definition--0693b0af-4746-4438-a437-8e423ec07442","created":"2026-03-02T10:00:00.000Z"}`), "definition: missing"},
		{"location nowhere", []byte(`{"type":"location","spec_version":"2.1","id":"location--0693b0af-4746-4438-a437-8e423ec07442","created":"2026-03-02T10:00:00.000Z","modified":"2026-03-02T10:00:00.000Z","name":"x"}`), "region: missing"},
		{"observed data zero", []byte(`{"type":"observed-data","spec_version":"2.1","id":"observed-data--0693b0af-4746-4438-a437-8e423ec07442","created":"2026-03-02T10:00:00.000Z","modified":"2026-03-02T10:00:00.000Z","first_observed":"2026-03-02T10:00:00Z","last_observed":"2026-03-02T10:00:00Z","number_observed":0,"object_refs":["ipv4-addr--0693b0af-4746-4438-a437-8e423ec07442"]}`), "number_observed"},
		{"typed property wrong", sdo(t, map[string]any{"kill_chain_phases": "impact"}), "kill_chain_phases"},
		{"too large", []byte(`{"type":"x","pad":"` + strings.Repeat("a", MaxObjectSize) + `"}`), "bytes is more than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := ParseObject(c.raw)
			if err == nil {
				t.Fatalf("accepted: %+v", o)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestParseObjectAccepts(t *testing.T) {
	env, err := ParseEnvelope(mustRead(t, "testdata/incident.json"), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range env.Objects {
		o, err := ParseObject(raw)
		if err != nil {
			t.Errorf("%s: %v", raw[:60], err)
			continue
		}
		if len(o.Markings) != 1 || MarkingTLP(o.Markings[0]) == TLPNone {
			t.Errorf("%s: markings %v", o.ID, o.Markings)
		}
		// The stored form is the object as received, compacted: every
		// property kept.
		var a, b map[string]any
		json.Unmarshal(raw, &a)
		json.Unmarshal(o.Raw, &b)
		if len(a) != len(b) {
			t.Errorf("%s: %d properties received, %d kept", o.ID, len(a), len(b))
		}
	}

	others := []struct {
		name    string
		raw     string
		version string
	}{
		{"TLP 2.0 marking definition", `{"type":"marking-definition","spec_version":"2.1","id":"` + TLP2Green + `","created":"2022-10-01T00:00:00.000Z","name":"TLP:GREEN","extensions":{"` + TLP2Extension + `":{"extension_type":"property-extension","tlp_2_0":"green"}}}`, "2022-10-01T00:00:00Z"},
		{"statement marking", `{"type":"marking-definition","spec_version":"2.1","id":"marking-definition--0693b0af-4746-4438-a437-8e423ec07442","created":"2026-03-02T10:00:00.000Z","definition_type":"statement","definition":{"statement":"Copyright 2026 CERT-EE"}}`, "2026-03-02T10:00:00Z"},
		{"observable without spec_version", `{"type":"domain-name","id":"domain-name--0693b0af-4746-4438-a437-8e423ec07442","value":"example.net"}`, "0001-01-01T00:00:00Z"},
		{"custom object", `{"type":"x-embassy-note","spec_version":"2.1","id":"x-embassy-note--0693b0af-4746-4438-a437-8e423ec07442","created":"2026-03-02T10:00:00.000Z","modified":"2026-03-02T11:00:00.123456Z","text":"hi"}`, "2026-03-02T11:00:00.123456Z"},
		{"new observable type", `{"type":"x-phone","id":"x-phone--0693b0af-4746-4438-a437-8e423ec07442","number":"+372","extensions":{"extension-definition--0693b0af-4746-4438-a437-8e423ec07442":{"extension_type":"new-sco"}}}`, "0001-01-01T00:00:00Z"},
		{"granular marking", string(sdo(t, map[string]any{"granular_markings": []any{map[string]any{"marking_ref": TLP2Red, "selectors": []string{"pattern"}}}, "object_marking_refs": []string{TLP2Green}})), "2026-03-02T08:30:00Z"},
	}
	for _, c := range others {
		t.Run(c.name, func(t *testing.T) {
			o, err := ParseObject([]byte(c.raw))
			if err != nil {
				t.Fatal(err)
			}
			if got := o.Version().Format("2006-01-02T15:04:05.999999Z07:00"); got != c.version {
				t.Errorf("version %s, want %s", got, c.version)
			}
		})
	}
	o, _ := ParseObject([]byte(others[5].raw))
	if len(o.Markings) != 2 || o.Markings[0] != TLP2Green || o.Markings[1] != TLP2Red {
		t.Errorf("granular markings not counted: %v", o.Markings)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
